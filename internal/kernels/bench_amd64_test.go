//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/verdictnet/verdict/internal/tensor"
)

// BenchmarkFewRowsOff runs BenchmarkMatMulSmallN and
// BenchmarkMatMulSmallNDRAM without the few-row Q8_0 tiles (packActs8 off:
// the kernels that ran before them), for comparison.
func BenchmarkFewRowsOff(b *testing.B) {
	was := packActs8
	packActs8 = nil
	defer func() { packActs8 = was }()
	b.Run("SmallN", BenchmarkMatMulSmallN)
	b.Run("SmallNDRAM", BenchmarkMatMulSmallNDRAM)
}

// BenchmarkKWTOff runs BenchmarkMatMulSmallN, BenchmarkMatMulSmallNDRAM and
// BenchmarkMatVecK without the kwt tiles of the K types (the kernels that
// ran before them), for comparison.
func BenchmarkKWTOff(b *testing.B) {
	was, wasMax := kwtTiles, kwtMaxRows
	kwtTiles, kwtMaxRows = [3][kwtP + 1]kwtFn{}, 0
	defer func() { kwtTiles, kwtMaxRows = was, wasMax }()
	b.Run("SmallN", BenchmarkMatMulSmallN)
	b.Run("SmallNDRAM", BenchmarkMatMulSmallNDRAM)
	b.Run("MatVecK", BenchmarkMatVecK)
}

// BenchmarkQ8Decode times Q8_0 decode (one activation row) on the
// llama3.2-1b FFN shape, 2048 x 8192, streaming from memory as
// BenchmarkMatVecK does, with the vnniWT tile (wt=true, where the CPU has
// VNNI) and with the AVX2 kernel q8DotM that ran before it (wt=false).
// cpu-GB/s (one thread) is weight bytes per CPU second of the benchmark's
// thread, steadier than GB/s on a shared machine.
func BenchmarkQ8Decode(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const rows, cols, copies = 8192, 2048, 6
	ws := make([]*tensor.Tensor, copies)
	for i := range ws {
		ws[i] = weights(r, tensor.Q8_0, rows, cols, false)
	}
	x := values(r, cols, false)
	out := make([]float32, rows)
	for _, wt := range []bool{false, true} {
		if wt && q8FewMinRows != 1 {
			continue // no vnniWT tiles here
		}
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("wt=%v/threads=%d", wt, threads), func(b *testing.B) {
				was := q8FewMinRows
				if !wt {
					q8FewMinRows = 2
				}
				defer func() { q8FewMinRows = was }()
				var a Acts
				a.Prepare(tensor.Q8_0, x, 1, cols)
				if a.packed8 != wt {
					b.Fatalf("packed8 %v, want %v", a.packed8, wt)
				}
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				cpu0 := threadCPU()
				i := 0
				for b.Loop() {
					w := ws[i%copies]
					i++
					matMulHalves(w, &a, out, rows, threads)
				}
				cpu := threadCPU() - cpu0
				b.ReportMetric(float64(len(ws[0].Data))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
				if threads == 1 {
					b.ReportMetric(float64(len(ws[0].Data))*float64(b.N)/cpu.Seconds()/1e9, "cpu-GB/s")
				}
			})
		}
	}
}
