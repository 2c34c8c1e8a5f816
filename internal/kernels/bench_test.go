package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/verdictnet/verdict/internal/tensor"
)

// BenchmarkMatMul times one weight matrix of the 110m shape (768 x 2048)
// against 1 (decode) and 64 (prefill) activation rows, fast and reference.
// The reported GB/s is weight bytes read per second.
func BenchmarkMatMul(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const rows, cols = 2048, 768
	for _, typ := range []tensor.Type{tensor.F32, tensor.F16, tensor.Q8_0, tensor.Q4_0} {
		w := weights(r, typ, rows, cols, false)
		for _, n := range []int{1, 64} {
			x := values(r, n*cols, false)
			var a Acts
			a.Prepare(typ, x, n, cols)
			out := make([]float32, n*rows)
			for _, fast := range []bool{true, false} {
				if fast && FastPath == "" {
					continue
				}
				name := fmt.Sprintf("%s/n=%d/fast=%v", typ, n, fast)
				b.Run(name, func(b *testing.B) {
					for b.Loop() {
						if !fast || !fastMatMul(w, &a, out, rows, 0, rows) {
							MatMulRef(w, &a, out, rows, 0, rows)
						}
					}
					b.ReportMetric(float64(len(w.Data))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
					b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
				})
			}
		}
	}
}

func BenchmarkDot64(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	x, y := values(r, 64, false), values(r, 64, false)
	var s float32
	for b.Loop() {
		s += Dot(x, y)
	}
	_ = s
}

// BenchmarkMatVecDRAM streams a 32000 x 768 float32 matrix (98 MB, larger
// than the caches) against one vector: the decode bandwidth of the kernel.
func BenchmarkMatVecDRAM(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const rows, cols = 32000, 768
	w := weights(r, tensor.F32, rows, cols, false)
	x := values(r, cols, false)
	var a Acts
	a.Prepare(tensor.F32, x, 1, cols)
	out := make([]float32, rows)
	b.SetBytes(int64(len(w.Data)))
	for b.Loop() {
		MatMul(w, &a, out, rows, 0, rows)
	}
}

// BenchmarkPrefillF32 times the float32 prefill tiles (110m shape, 64
// activation rows) with the AVX2 and, where the CPU has them, the AVX-512F
// tiles.
func BenchmarkPrefillF32(b *testing.B) {
	if FastPath == "" {
		b.Skip("no fast path on this CPU")
	}
	r := rand.New(rand.NewPCG(1, 1))
	const rows, cols, n = 2048, 768, 64
	w := weights(r, tensor.F32, rows, cols, false)
	x := values(r, n*cols, false)
	var a Acts
	a.Prepare(tensor.F32, x, n, cols)
	out := make([]float32, n*rows)
	was := setAVX512(false)
	defer setAVX512(was)
	for _, z := range []bool{false, true} {
		if z && !hasAVX512 {
			continue
		}
		setAVX512(z)
		name := "avx2"
		if z {
			name = "avx512"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				MatMul(w, &a, out, rows, 0, rows)
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
