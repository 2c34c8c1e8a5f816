//go:build amd64 && !purego

package kernels

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/verdictnet/verdict/internal/tensor"
)

// TestAMX runs Q8_0 weights against 10 to 80 prepared activation rows on
// the AMX tiles (a last group of amxMinRows to 15 padded with zero rows) (where the CPU has them: the test says so and checks that
// they ran) and compares every result with the vnniWT tiles' and with
// MatMulRef, bit for bit: more tiles of 16 weight rows than one call
// takes (amxChunk), an odd and an even number of blocks, activation rows
// past the last 16 (the vnniWT tiles take them), weight rows past the last
// 16 (wtTail), and an output row stride that is a multiple of 1024 floats.
func TestAMX(t *testing.T) {
	needVNNI(t)
	if !hasAMX {
		t.Skip("no AMX-INT8 here (or VERDICT_AMX=0): the vnniWT tiles run alone")
	}
	r := rand.New(rand.NewPCG(41, 42))
	rows := 16*(2*amxChunk+1) + 5
	for _, cols := range []int{96, 256} {
		for _, n := range []int{amxMinRows, 8, 9, 11, 15, 16, 17, 24, 25, 26, 32, 39, 42, 48, 63, 80} {
			for _, special := range []bool{false, true} {
				w, a := quantInputs(r, tensor.Q8_0, rows, cols, n, special, actsPrepared)
				if want := (amxRows(n) + 15) / 16; a.packedA != want || want == 0 {
					t.Fatalf("cols %d n %d: %d groups of 16 packed for the AMX tiles, want %d (> 0)", cols, n, a.packedA, want)
				}
				for _, ld := range []int{rows, 1024} {
					got, vnni, ref := make([]float32, n*ld), make([]float32, n*ld), make([]float32, n*ld)
					if !matMulVNNIWT(w, a, got, ld, 0, rows) {
						t.Fatalf("matMulVNNIWT declined n=%d", n)
					}
					useAMX = false
					matMulVNNIWT(w, a, vnni, ld, 0, rows)
					useAMX = true
					MatMulRef(w, a, ref, ld, 0, rows)
					for i := range got {
						if !same(got[i], vnni[i]) || !same(got[i], ref[i]) {
							t.Fatalf("cols %d n %d ld %d special %v: out[%d] (activation row %d, weight row %d) = %#08x, vnniWT %#08x, reference %#08x",
								cols, n, ld, special, i, i/ld, i%ld, math.Float32bits(got[i]), math.Float32bits(vnni[i]), math.Float32bits(ref[i]))
						}
					}
				}
			}
		}
	}
}

// TestAMXTailPackedOnUse: where the AMX tiles take every activation row,
// the vnniWT packing is made only when a weight row tail needs it, once,
// by whichever of the concurrent matmuls sharing the activations gets
// there first (run it under -race). Two goroutines take row ranges that
// both end in a tail; the results equal MatMulRef's.
func TestAMXTailPackedOnUse(t *testing.T) {
	needVNNI(t)
	if !hasAMX {
		t.Skip("no AMX-INT8 here (or VERDICT_AMX=0)")
	}
	r := rand.New(rand.NewPCG(43, 44))
	const rows, cols, n = 16*5 + 7, 256, 32
	w, a := quantInputs(r, tensor.Q8_0, rows, cols, n, false, actsPrepared)
	if a.pk8Once == nil {
		t.Fatalf("%d rows: the vnniWT packing was made at preparation, want it left for first use", n)
	}
	got, ref := make([]float32, n*rows), make([]float32, n*rows)
	var wg sync.WaitGroup
	for _, rg := range [][2]int{{0, 40}, {40, rows}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !matMulVNNIWT(w, a, got, rows, rg[0], rg[1]) {
				t.Errorf("matMulVNNIWT declined rows [%d, %d)", rg[0], rg[1])
			}
		}()
	}
	wg.Wait()
	MatMulRef(w, a, ref, rows, 0, rows)
	for i := range got {
		if !same(got[i], ref[i]) {
			t.Fatalf("out[%d] (activation row %d, weight row %d) = %#08x, reference %#08x", i, i/rows, i%rows, math.Float32bits(got[i]), math.Float32bits(ref[i]))
		}
	}
}

// BenchmarkAMX compares the AMX tiles with the vnniWT tiles they replace
// on 16 and 32 activation rows, weights in the L2 cache
// (BenchmarkQ8RowsCached) and streaming from memory (the 110m shape's
// 2048 x 768 FFN matrix, BenchmarkQ8Rows).
func BenchmarkAMX(b *testing.B) {
	if !hasAMX {
		b.Skip("no AMX here")
	}
	for _, on := range []bool{true, false} {
		b.Run(map[bool]string{true: "amx", false: "vnniwt"}[on], func(b *testing.B) {
			defer func(was bool) { useAMX = was }(useAMX)
			useAMX = on
			b.Run("cached", BenchmarkQ8RowsCached)
			b.Run("dram", func(b *testing.B) {
				r := rand.New(rand.NewPCG(1, 1))
				const rows, cols = 2048, 768
				ws := make([]*tensor.Tensor, 24)
				for i := range ws {
					ws[i] = weights(r, tensor.Q8_0, rows, cols, false)
				}
				for _, n := range []int{16, 32} {
					var a Acts
					a.Prepare(tensor.Q8_0, values(r, n*cols, false), n, cols)
					out := make([]float32, n*rows)
					b.Run(map[int]string{16: "n=16", 32: "n=32"}[n], func(b *testing.B) { benchCycled(b, ws, &a, out, rows, cols, n) })
				}
			})
		})
	}
}
