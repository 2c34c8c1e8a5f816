//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/verdictnet/verdict/internal/tensor"
)

// BenchmarkWT16Off runs BenchmarkMatMulSmallN, BenchmarkMatMulSmallNDRAM
// and BenchmarkQ8Rows without the pair tiles vnniWT{9..16}* (9 or more
// activation rows then take one vnniWT*P* call per group of 8 and 16
// weight rows), for comparison.
func BenchmarkWT16Off(b *testing.B) {
	was := useWT16
	useWT16 = false
	defer func() { useWT16 = was }()
	b.Run("SmallN", BenchmarkMatMulSmallN)
	b.Run("SmallNDRAM", BenchmarkMatMulSmallNDRAM)
	b.Run("Q8Rows", BenchmarkQ8Rows)
}

// BenchmarkQ8Rows times the Q8_0 matrix product against n = 1 to 32
// activation rows (decode and the decode steps of a continuous batch: the
// vnniWT tiles, in pairs of groups of 8 from 9 rows on) on the 110m shapes
// 768 x 768 (attention), 2048 x 768 (FFN up), 768 x 2048 (FFN down) and
// 32000 x 768 (the output), one thread, with the weights streaming from
// memory as in a real step: copies of the matrix, over 40 MB in all (beyond
// the L3 cache), are cycled. cpu-GMAC/s is the multiply-adds (rows x cols x
// n) per CPU second of the benchmark's thread.
func BenchmarkQ8Rows(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const total = 40 << 20
	for _, sh := range [][2]int{{768, 768}, {2048, 768}, {768, 2048}, {32000, 768}} {
		rows, cols := sh[0], sh[1]
		bytes := rows * cols / tensor.QK * tensor.Q8_0.BlockBytes()
		ws := make([]*tensor.Tensor, max(2, (total+bytes-1)/bytes))
		for i := range ws {
			ws[i] = weights(r, tensor.Q8_0, rows, cols, false)
		}
		for _, n := range []int{1, 4, 8, 12, 16, 24, 32} {
			x := values(r, n*cols, false)
			var a Acts
			a.Prepare(tensor.Q8_0, x, n, cols)
			out := make([]float32, n*rows)
			b.Run(fmt.Sprintf("%dx%d/n=%d", rows, cols, n), func(b *testing.B) { benchCycled(b, ws, &a, out, rows, cols, n) })
		}
	}
}

// BenchmarkQ8RowsCached is BenchmarkQ8Rows with one 256 x 768 matrix
// (208 KB) that stays in the L2 cache: the arithmetic ceiling of the tiles,
// without the memory stream.
func BenchmarkQ8RowsCached(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const rows, cols = 256, 768
	w := weights(r, tensor.Q8_0, rows, cols, false)
	for _, n := range []int{1, 4, 8, 16, 32} {
		x := values(r, n*cols, false)
		var a Acts
		a.Prepare(tensor.Q8_0, x, n, cols)
		out := make([]float32, n*rows)
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu0 := threadCPU()
			for b.Loop() {
				MatMul(w, &a, out, rows, 0, rows)
			}
			cpu := threadCPU() - cpu0
			b.ReportMetric(float64(rows*cols*n)*float64(b.N)/cpu.Seconds()/1e9, "cpu-GMAC/s")
		})
	}
}
