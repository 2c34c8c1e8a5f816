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
	const rows, cols = q8DRAMRows, q8DRAMCols
	ws := q8DRAMCopies(r)
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
					w := ws[i%len(ws)]
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

// BenchmarkAttentionRun times the attention kernels on one run of 256
// cached positions of head size 64 (64 KiB of keys, 64 KiB of values: from
// the core's caches, the arithmetic alone) with the AVX2 and, where the
// CPU has it, the AVX-512 kernels: DotMany scores one query against the
// run; WeightedSumGroup sums the values of a group of 1 and of 4 heads.
func BenchmarkAttentionRun(b *testing.B) {
	const n, hd = 256, 64
	r := rand.New(rand.NewPCG(1, 2))
	keys, vals := values(r, n*hd, false), values(r, n*hd, false)
	q, scores := values(r, hd, false), make([]float32, n)
	a := values(r, 4*n, false)
	out := make([]float32, 4*hd)
	paths := []bool{false}
	if hasAVX512 {
		paths = append(paths, true)
	}
	for _, z := range paths {
		name := "avx2"
		if z {
			name = "avx512"
		}
		b.Run(name, func(b *testing.B) {
			was := setAVX512(z)
			defer setAVX512(was)
			b.Run("DotMany", func(b *testing.B) {
				for b.Loop() {
					DotMany(scores, q, keys, hd, 0)
				}
			})
			for _, g := range []int{1, 4} {
				b.Run(fmt.Sprintf("WeightedSumGroup%d", g), func(b *testing.B) {
					for b.Loop() {
						WeightedSumGroup(out[:g*hd], g, a, n, n, vals, hd)
					}
				})
			}
		})
	}
}
