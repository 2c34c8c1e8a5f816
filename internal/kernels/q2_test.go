//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/verdictnet/verdict/internal/tensor"
)

// The AVX2 q2 tiles are checked against MatMulRef (dotQ8_0/dotQ4_0), the
// scalar oracle of docs/determinism.md 4.2: every output must have the same
// bits. They run with the AVX-512 tiles switched off, as on a CPU with AVX2
// only.

func needQ2(tb testing.TB) {
	tb.Helper()
	if !hasAVX2 || !hasFast {
		tb.Skip("no AVX2 on this CPU (or fast paths off): the reference kernels run")
	}
	was := setAVX512(false)
	tb.Cleanup(func() { setAVX512(was) })
	if !useQ2 || useVNNI {
		tb.Fatalf("setAVX512(false): useQ2 %v, useVNNI %v", useQ2, useVNNI)
	}
}

// withQ2Shape runs f with the tiles of R weight rows by G halves.
func withQ2Shape(R, G int, f func()) {
	r, g := q2R, q2G
	q2R, q2G = R, G
	defer func() { q2R, q2G = r, g }()
	f()
}

// q2Shapes are the tile shapes matMulQ2 can run.
var q2TestShapes = [][2]int{{1, 1}, {2, 1}, {3, 1}, {4, 1}, {1, 2}, {2, 2}}

// checkQ2 compares matMulQ2 (and MatMul) with MatMulRef for rows x cols
// weights of type typ and n activation rows. actsAnyInt8 (-128 among the
// quanta) must make matMulQ2 decline.
func checkQ2(t *testing.T, r *rand.Rand, typ tensor.Type, rows, cols, n int, special bool, mode actsMode) {
	t.Helper()
	w, a := quantInputs(r, typ, rows, cols, n, special, mode)
	if mode == actsPrepared && a.packed != (n >= q2MinRows) {
		t.Fatalf("Prepare %s cols=%d n=%d: packed %v (q2 rows from %d)", typ, cols, n, a.packed, q2MinRows)
	}
	if mode != actsPrepared {
		a.noMin128 = mode != actsAnyInt8
	}
	// Pack (again: the quanta may have changed), for any n.
	a.packed = packVNNI(a, typ, nil)
	if !a.packed {
		t.Fatalf("packVNNI declined %s cols=%d n=%d", typ, cols, n)
	}
	r0 := r.IntN(rows)
	r1 := r0 + 1 + r.IntN(rows-r0)
	ld := rows + r.IntN(3)
	want := make([]float32, n*ld)
	MatMulRef(w, a, want, ld, r0, r1)
	for _, s := range q2TestShapes {
		got := make([]float32, n*ld)
		var took bool
		withQ2Shape(s[0], s[1], func() { took = matMulQ2(w, a, got, ld, r0, r1) })
		if took != (mode != actsAnyInt8) {
			t.Fatalf("matMulQ2 %s %dx%d n=%d mode=%d: took %v", typ, rows, cols, n, mode, took)
		}
		if !took {
			MatMul(w, a, got, ld, r0, r1) // the four-row and one-row AVX2 kernels
		}
		for i := range got {
			if !same(got[i], want[i]) {
				t.Fatalf("%s R%dG%d rows [%d,%d) of %dx%d, n=%d: out[%d] = %g (%#08x), reference %g (%#08x)",
					typ, s[0], s[1], r0, r1, rows, cols, n, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
			}
		}
	}
}

func TestQ2Table(t *testing.T) {
	needQ2(t)
	quantTable(t, rand.New(rand.NewPCG(27, 28)), []int{1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 24, 31, 33, 47, 64, 65, 70}, checkQ2)
}

// TestQ2EveryN runs every n from 1 to 70 once per type.
func TestQ2EveryN(t *testing.T) {
	needQ2(t)
	quantEveryN(t, rand.New(rand.NewPCG(29, 30)), checkQ2)
}

// TestQ2ManyRows crosses matMulQ2's chunks of weight and activation rows.
func TestQ2ManyRows(t *testing.T) {
	needQ2(t)
	r := rand.New(rand.NewPCG(31, 32))
	for _, typ := range []tensor.Type{tensor.Q8_0, tensor.Q4_0} {
		for _, rows := range []int{q2RC - 1, q2RC + 1, 2*q2RC + 7} {
			for _, n := range []int{5, q2PC + 3, 2*q2PC + 9} {
				checkQ2(t, r, typ, rows, 64, n, n == 5, actsMode(n%2))
			}
		}
	}
}

// TestQ2Dispatch checks that with the AVX-512 tiles off Prepare packs for
// n >= q2MinRows quantised rows and MatMul then takes the q2 path (a
// counting wrapper would need a hook; instead the packed rows are spoiled
// after packing, which only the q2 tiles read).
func TestQ2Dispatch(t *testing.T) {
	needQ2(t)
	r := rand.New(rand.NewPCG(33, 34))
	const rows, cols = 8, 64
	for _, c := range []struct {
		typ    tensor.Type
		n      int
		packed bool
	}{
		{tensor.Q8_0, 1, false},
		{tensor.Q8_0, q2MinRows - 1, false},
		{tensor.Q8_0, q2MinRows, true},
		{tensor.Q4_0, 40, true},
		{tensor.F32, 40, false},
		{tensor.F16, 40, false},
	} {
		var a Acts
		a.Prepare(c.typ, values(r, c.n*cols, false), c.n, cols)
		if a.packed != c.packed {
			t.Errorf("%s n=%d: packed %v", c.typ, c.n, a.packed)
		}
		if !a.packed {
			continue
		}
		w := weights(r, c.typ, rows, cols, false)
		got, want := make([]float32, c.n*rows), make([]float32, c.n*rows)
		MatMul(w, &a, got, rows, 0, rows)
		MatMulRef(w, &a, want, rows, 0, rows)
		compareSlices(t, c.typ.String(), got, want)
		clear(a.pk) // the q2 tiles now see zero scales: every result +0
		MatMul(w, &a, got, rows, 0, rows)
		for i, v := range got {
			if v != 0 || math.Signbit(float64(v)) {
				t.Fatalf("%s n=%d: MatMul did not take the q2 path (out[%d] = %g with the packed rows zeroed)", c.typ, c.n, i, v)
			}
		}
	}
}

func FuzzQ2(f *testing.F) {
	f.Add(uint64(1), false, uint8(1), uint8(17), uint8(5), uint8(0), true)
	f.Add(uint64(2), true, uint8(3), uint8(2), uint8(13), uint8(1), false)
	f.Add(uint64(3), false, uint8(24), uint8(70), uint8(7), uint8(2), true)
	f.Add(uint64(4), true, uint8(9), uint8(33), uint8(1), uint8(1), true)
	f.Fuzz(func(t *testing.T, seed uint64, q4 bool, blocks, n, rows, mode uint8, special bool) {
		needQ2(t)
		typ := tensor.Q8_0
		if q4 {
			typ = tensor.Q4_0
		}
		r := rand.New(rand.NewPCG(seed, uint64(blocks)))
		checkQ2(t, r, typ, 1+int(rows)%16, 32*(1+int(blocks)%24), 1+int(n)%70, special, actsMode(mode%3))
	})
}

// BenchmarkPrefillQ8AVX2 times the 110m prefill shapes (2048x768 and
// 768x2048 weights) against 64 and 256 activation rows, one thread, with
// the AVX-512 tiles off: q2=false is the previous AVX2 path (q8Tile2x4,
// q8Tile4 and their Q4_0 forms), q2=true the q2 tiles (packVNNI + the
// ymm tiles). Each op is Prepare + MatMul.
func BenchmarkPrefillQ8AVX2(b *testing.B) {
	if !hasAVX2 || !hasFast {
		b.Skip("no AVX2")
	}
	r := rand.New(rand.NewPCG(1, 1))
	for _, typ := range []tensor.Type{tensor.Q8_0, tensor.Q4_0} {
		for _, shape := range [][2]int{{2048, 768}, {768, 2048}} {
			rows, cols := shape[0], shape[1]
			w := weights(r, typ, rows, cols, false)
			for _, n := range []int{4, 8, 16, 64, 256} {
				x := make([]float32, n*cols)
				for i := range x {
					x[i] = float32(r.NormFloat64())
				}
				out := make([]float32, n*rows)
				for _, q2 := range []bool{false, true} {
					name := fmt.Sprintf("%s/%dx%d/n=%d/q2=%v", typ, rows, cols, n, q2)
					b.Run(name, func(b *testing.B) {
						was := setAVX512(false)
						defer setAVX512(was)
						if !q2 {
							packActs, useQ2 = nil, false
						}
						var a Acts
						for b.Loop() {
							a.Prepare(typ, x, n, cols)
							MatMul(w, &a, out, rows, 0, rows)
						}
						b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
					})
				}
			}
		}
	}
}

// TestQ2Extremes drives the int16 steps to their bounds: Q8_0 weights -128
// against activations ±127 (a VPMADDUBSW pair of 2·128·127 = 32512) and
// Q4_0 nibbles 15 or 0 against ±127 (an int16 lane summing 16 products of
// 15·127 = 30480 over a block), with every sign pattern.
func TestQ2Extremes(t *testing.T) {
	needQ2(t)
	const rows, cols, n = 6, 96, 24
	for _, typ := range []tensor.Type{tensor.Q8_0, tensor.Q4_0} {
		for _, wb := range []byte{0x80, 0x7f, 0x81, 0xff, 0x00, 0x88} {
			for _, xs := range []int8{127, -127} {
				w := weights(rand.New(rand.NewPCG(1, 2)), typ, rows, cols, false)
				bs := typ.BlockBytes()
				for blk := 0; blk < len(w.Data); blk += bs {
					for i := 2; i < bs; i++ {
						w.Data[blk+i] = wb
					}
				}
				var a Acts
				a.Prepare(typ, values(rand.New(rand.NewPCG(3, 4)), n*cols, false), n, cols)
				for i := range a.Q {
					a.Q[i] = xs
					if i%7 == 3 && wb == 0x88 { // mixed signs
						a.Q[i] = -xs
					}
				}
				a.packed = packVNNI(&a, typ, nil)
				got, want := make([]float32, n*rows), make([]float32, n*rows)
				if !matMulQ2(w, &a, got, rows, 0, rows) {
					t.Fatalf("matMulQ2 declined %s", typ)
				}
				MatMulRef(w, &a, want, rows, 0, rows)
				compareSlices(t, fmt.Sprintf("%s w=%#02x x=%d", typ, wb, xs), got, want)
			}
		}
	}
}

// BenchmarkQ2Shapes times matMulQ2 alone (2048x768 weights, 64 activation
// rows, packed once) with each tile shape, to choose q2R and q2G.
func BenchmarkQ2Shapes(b *testing.B) {
	if !hasAVX2 || !hasFast {
		b.Skip("no AVX2")
	}
	r := rand.New(rand.NewPCG(1, 1))
	for _, typ := range []tensor.Type{tensor.Q8_0, tensor.Q4_0} {
		const rows, cols, n = 2048, 768, 64
		w := weights(r, typ, rows, cols, false)
		x := values(r, n*cols, false)
		out := make([]float32, n*rows)
		for _, s := range q2TestShapes {
			b.Run(fmt.Sprintf("%s/R%dG%d", typ, s[0], s[1]), func(b *testing.B) {
				was := setAVX512(false)
				defer setAVX512(was)
				var a Acts
				a.Prepare(typ, x, n, cols)
				withQ2Shape(s[0], s[1], func() {
					for b.Loop() {
						MatMul(w, &a, out, rows, 0, rows)
					}
				})
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			})
		}
	}
}
