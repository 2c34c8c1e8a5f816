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
// (-128 included). The dispatch takes the kwt tiles for every n
// (kwtMaxRows); with kwtMaxRows 0, as where the kwt tiles are off,
// Prepare packs for these.
func TestKVNNI(t *testing.T) {
	needVNNI(t)
	wasMax := kwtMaxRows
	kwtMaxRows = 0
	defer func() { kwtMaxRows = wasMax }()
	for _, R := range []int{1, 2} {
		t.Run(fmt.Sprintf("R=%d", R), func(t *testing.T) {
			was := kvnniR
			kvnniR = R
			defer func() { kvnniR = was }()
			testKVNNI(t)
		})
	}
}

func testKVNNI(t *testing.T) {
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
						sums32(a.KS, a.KS32)
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

// TestQuantizeQ8KZ compares the AVX-512 Q8K quantisation with QuantizeQ8K
// bit for bit on ordinary, extreme and special values (NaN, Inf, zeros,
// subnormals, all-zero super-blocks).
func TestQuantizeQ8KZ(t *testing.T) {
	if !hasAVX512 {
		t.Skip("no AVX-512F")
	}
	r := rand.New(rand.NewPCG(18, 9))
	for iter := 0; iter < 200; iter++ {
		nb := 1 + r.IntN(4)
		x := values(r, nb*256, iter%2 == 1)
		if iter%7 == 0 {
			clear(x[:256])
		}
		q1, d1, s1 := make([]int8, len(x)), make([]float32, nb), make([]int16, len(x)/16)
		q2, d2, s2 := make([]int8, len(x)), make([]float32, nb), make([]int16, len(x)/16)
		QuantizeQ8K(x, q1, d1, s1)
		quantizeQ8KZ(x, q2, d2, s2)
		for b := range d1 {
			if !same(d1[b], d2[b]) {
				t.Fatalf("iter %d block %d: d %g, reference %g", iter, b, d2[b], d1[b])
			}
		}
		for i := range q1 {
			if q1[i] != q2[i] {
				t.Fatalf("iter %d: q[%d] = %d, reference %d (x %g)", iter, i, q2[i], q1[i], x[i])
			}
		}
		for i := range s1 {
			if s1[i] != s2[i] {
				t.Fatalf("iter %d: s[%d] = %d, reference %d", iter, i, s2[i], s1[i])
			}
		}
	}
}

// TestQ5VNNI checks the VNNI tiles of Q4_1, Q5_0 and Q5_1 against the
// specification, as TestKVNNI does for the K types.
func TestQ5VNNI(t *testing.T) {
	needVNNI(t)
	r := rand.New(rand.NewPCG(19, 10))
	for _, typ := range []tensor.Type{tensor.Q4_1, tensor.Q5_0, tensor.Q5_1} {
		for _, n := range []int{4, 5, 16, 17, 33, 40} {
			for _, mode := range []string{"prepared", "special", "anyint8"} {
				t.Run(fmt.Sprintf("%s/n=%d/%s", typ, n, mode), func(t *testing.T) {
					cols, rows := 32*(1+r.IntN(9)), 1+r.IntN(140)
					w := quantTensor(r, typ, rows, cols, mode != "prepared")
					a := actsOf(r, typ, n, cols, mode == "special")
					if mode == "anyint8" {
						for i := range a.Q {
							a.Q[i] = []int8{-128, 127, -127, 0, int8(r.Uint32())}[r.IntN(5)]
						}
						for i := range a.D {
							a.D[i] = value(r, true)
						}
						a.packed = packVNNI(a, typ, nil)
					}
					if !a.packed && wtTakes(typ, n) { // Prepare leaves Q5_0 to the vnniWT tiles
						a.packed = packVNNI(a, typ, nil)
					}
					if !a.packed {
						t.Fatal("activations not packed")
					}
					ld := rows + r.IntN(3)
					r0 := r.IntN(rows)
					r1 := r0 + 1 + r.IntN(rows-r0)
					got := make([]float32, n*ld)
					if !matMulVNNIQ5(w, a, got, ld, r0, r1) {
						t.Fatal("matMulVNNIQ5 declined")
					}
					nb := cols / 32
					for p := 0; p < n; p++ {
						for i := r0; i < r1; i++ {
							want := specDot(typ, w.Row(i), a.Q[p*cols:(p+1)*cols], a.D[p*nb:])
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

// TestQ2K checks the AVX2 tiles of the K types (packed halves of 8 rows)
// against the specification, with the AVX-512 tiles off as on a CPU with
// AVX2 only.
func TestQ2K(t *testing.T) {
	needQ2(t)
	r := rand.New(rand.NewPCG(20, 11))
	for ti, typ := range []tensor.Type{tensor.Q4_K, tensor.Q5_K, tensor.Q6_K} {
		for _, n := range []int{3, 4, 8, 9, 16, 17, 33, 70} {
			for _, mode := range []string{"prepared", "special", "anyint8"} {
				t.Run(fmt.Sprintf("%s/n=%d/%s", typ, n, mode), func(t *testing.T) {
					cols, rows := 256*(1+r.IntN(3)), 1+r.IntN(110)
					w := quantTensor(r, typ, rows, cols, mode != "prepared")
					a := actsOf(r, typ, n, cols, mode == "special")
					if mode == "anyint8" {
						for i := range a.KQ {
							a.KQ[i] = []int8{-128, 127, -127, 0, int8(r.Uint32())}[r.IntN(5)]
						}
						sums16(a.KQ, a.KS)
						sums32(a.KS, a.KS32)
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
					if !matMulQ2K(w, a, got, ld, r0, r1, ti) {
						t.Fatal("matMulQ2K declined")
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
