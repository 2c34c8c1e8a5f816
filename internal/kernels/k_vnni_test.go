//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/verdictnet/verdict/internal/tensor"
)

// The VNNI tiles of the K types against the specification (specDot), for
// activation row counts that fill 1 to 4 groups partly or wholly and more
// than one tile pass, random and extreme inputs, and hand-made quanta
// (-128 included).
func TestKVNNI(t *testing.T) {
	needVNNI(t)
	r := rand.New(rand.NewPCG(16, 7))
	for _, typ := range []tensor.Type{tensor.Q4_K, tensor.Q5_K, tensor.Q6_K} {
		for _, n := range []int{4, 5, 16, 17, 33, 64, 65, 100} {
			for _, mode := range []string{"prepared", "special", "anyint8"} {
				t.Run(fmt.Sprintf("%s/n=%d/%s", typ, n, mode), func(t *testing.T) {
					cols, rows := 256*(1+r.IntN(3)), 1+r.IntN(70)
					w := quantTensor(r, typ, rows, cols, mode != "prepared")
					a := actsOf(r, typ, n, cols, mode == "special")
					if mode == "anyint8" {
						for i := range a.KQ {
							a.KQ[i] = []int8{-128, 127, -127, 0, int8(r.Uint32())}[r.IntN(5)]
						}
						sums16(a.KQ, a.KS)
						for i := range a.KD {
							a.KD[i] = value(r, true)
						}
						a.packedK = packK(a, nil)
					}
					if !a.packedK {
						t.Fatal("activations not packed")
					}
					ld := rows + r.IntN(3)
					r0 := r.IntN(rows)
					r1 := r0 + 1 + r.IntN(rows-r0)
					got := make([]float32, n*ld)
					if !matMulVNNIK(w, a, got, ld, r0, r1) {
						t.Fatal("matMulVNNIK declined")
					}
					for p := 0; p < n; p++ {
						for i := r0; i < r1; i++ {
							want := specDot(typ, w.Row(i), a.KQ[p*cols:(p+1)*cols], a.KD[p*cols/256:])
							if g := got[p*ld+i]; !same(g, want) {
								t.Fatalf("row %d act %d: %g (%#08x), spec %g (%#08x)", i, p, g, math.Float32bits(g), want, math.Float32bits(want))
							}
						}
					}
				})
			}
		}
	}
}
