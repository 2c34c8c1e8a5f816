//go:build amd64 && !purego

package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/verdictnet/verdict/internal/tensor"
)

// The vnniWT tiles (Q8_0, Q4_0 and Q5_0 weights, lanes on weight rows) are
// checked against MatMulRef (dotQ8_0, dotQ4_0, dotQ5), bit for bit.

// checkVNNIWT compares matMulVNNIWT with MatMulRef for rows x cols weights
// of type typ and n activation rows (packed by hand when Prepare did not: the
// tiles take one row too).
func checkVNNIWT(t *testing.T, r *rand.Rand, typ tensor.Type, rows, cols, n int, special bool, mode actsMode) {
	t.Helper()
	w, a := quantInputs(r, typ, rows, cols, n, special, mode)
	if want := wtTakes(typ, n); mode == actsPrepared && a.packed8 != want {
		t.Fatalf("Prepare %s cols=%d n=%d: packed8 %v, want %v", typ, cols, n, a.packed8, want)
	}
	if mode != actsPrepared || !a.packed8 {
		a.packed8 = packVNNIWT(a, nil)
		if !a.packed8 {
			t.Fatalf("packVNNIWT declined cols=%d n=%d", cols, n)
		}
		if hasAMX && useAMX && amxRows(n) > 0 && typ == tensor.Q8_0 {
			packAMX(a, nil) // the AMX tiles take these inputs too
		}
	}
	if !wtTakes(typ, n) {
		if matMulVNNIWT(w, a, make([]float32, n*rows), rows, 0, rows) {
			t.Fatalf("matMulVNNIWT took %s weights against %d rows", typ, n)
		}
		return
	}
	// All the rows (as many 16-row tiles as fit), then a random range.
	r0 := r.IntN(rows)
	r1 := r0 + 1 + r.IntN(rows-r0)
	for _, rg := range [][2]int{{0, rows}, {r0, r1}} {
		ld := rows + r.IntN(3)
		got := make([]float32, n*ld)
		want := make([]float32, n*ld)
		if !matMulVNNIWT(w, a, got, ld, rg[0], rg[1]) {
			t.Fatalf("matMulVNNIWT declined %s %dx%d n=%d", typ, rows, cols, n)
		}
		MatMulRef(w, a, want, ld, rg[0], rg[1])
		for i := range got {
			if !same(got[i], want[i]) {
				t.Fatalf("%s rows [%d,%d) of %dx%d, n=%d, mode %d, special %v: out[%d] = %g (%#08x), reference %g (%#08x)",
					typ, rg[0], rg[1], rows, cols, n, mode, special, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
			}
		}
	}
}

func TestVNNIWTTable(t *testing.T) {
	needVNNI(t)
	r := rand.New(rand.NewPCG(21, 22))
	for _, typ := range []tensor.Type{tensor.Q8_0, tensor.Q4_0, tensor.Q5_0} {
		for _, cols := range []int{32, 64, 96, 288, 768} {
			for _, n := range []int{1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 24, 25, 31, 32, 33, 47, 64} {
				for _, mode := range []actsMode{actsPrepared, actsExtreme, actsAnyInt8} {
					for _, special := range []bool{false, true} {
						checkVNNIWT(t, r, typ, 16+r.IntN(40), cols, n, special, mode)
					}
				}
			}
		}
	}
}

// TestVNNIWTEveryN runs every n the dispatch sends here, on row counts
// that leave every remainder of 16.
func TestVNNIWTEveryN(t *testing.T) {
	needVNNI(t)
	r := rand.New(rand.NewPCG(23, 24))
	for _, typ := range []tensor.Type{tensor.Q8_0, tensor.Q4_0, tensor.Q5_0} {
		for n := 1; n <= 32; n++ {
			for _, rows := range []int{1, 15, 16, 17, 31, 32, 77} {
				checkVNNIWT(t, r, typ, rows, 32*(1+r.IntN(8)), n, n%4 == 0, actsMode(n%3))
			}
		}
	}
}

// TestVNNIWTManyRows runs Q8_0 and Q5_0 against the most activation rows
// the vnniWT tiles take and around it, on row counts that leave a remainder of
// 16 (run by one more tile into a scratch buffer: wtTail).
func TestVNNIWTManyRows(t *testing.T) {
	needVNNI(t)
	r := rand.New(rand.NewPCG(27, 28))
	for _, n := range []int{100, vnniWTMaxRowsQ8 - 1, vnniWTMaxRowsQ8, vnniWTMaxRowsQ8 + 1} {
		for i, rows := range []int{16, 37} {
			checkVNNIWT(t, r, tensor.Q8_0, rows, 64, n, i == 1, actsMode(i))
		}
	}
	for _, n := range []int{33, vnniWTMaxRowsQ5, vnniWTMaxRowsQ5 + 1} {
		for i, rows := range []int{16, 37} {
			checkVNNIWT(t, r, tensor.Q5_0, rows, 64, n, i == 1, actsMode(i))
		}
	}
}

// TestPackVNNIWTParallel checks that packing the groups of 8 rows in
// parallel ranges writes the bytes of the packing in one go, over whatever
// a.pk8 held.
func TestPackVNNIWTParallel(t *testing.T) {
	r := rand.New(rand.NewPCG(29, 30))
	for _, n := range []int{1, 9, 40, 77} {
		var a Acts
		a.Prepare(tensor.Q8_0, values(r, n*96, false), n, 96)
		if !packVNNIWT(&a, nil) {
			t.Fatalf("n=%d: packVNNIWT declined", n)
		}
		want := append([]byte(nil), a.pk8...)
		for i := range a.pk8 {
			a.pk8[i] = 0xa5 // the padding rows' slots too must be written
		}
		if !packVNNIWT(&a, func(n int, fn func(lo, hi int)) {
			for lo := 0; lo < n; lo += 3 { // ranges of 3 groups, last first
				defer fn(lo, min(n, lo+3))
			}
		}) {
			t.Fatalf("n=%d: packVNNIWT declined", n)
		}
		if string(a.pk8) != string(want) {
			t.Fatalf("n=%d: the packing in parallel ranges differs", n)
		}
		if amxRows(n) == 0 {
			continue
		}
		packAMX(&a, nil) // the AMX packing alike (it runs on any amd64 CPU)
		wantA := append([]byte(nil), a.pkA...)
		clear(a.pkA)
		packAMX(&a, func(n int, fn func(lo, hi int)) {
			for lo := 0; lo < n; lo += 5 {
				defer fn(lo, min(n, lo+5))
			}
		})
		if a.packedA != (amxRows(n)+15)/16 || string(a.pkA) != string(wantA) {
			t.Fatalf("n=%d: the AMX packing in parallel ranges differs (%d groups)", n, a.packedA)
		}
	}
}

// TestVNNIWTDispatch checks when PrepareTypes packs for the vnniWT tiles
// (rows for Q8_0 and Q4_0 weights at once serve both) and that they take
// no other type.
func TestVNNIWTDispatch(t *testing.T) {
	needVNNI(t)
	r := rand.New(rand.NewPCG(25, 26))
	const rows, cols = 40, 64
	for _, n := range []int{1, 2, 3, 4, 16, 17, 25, 32, 33, vnniWTMaxRowsQ5, vnniWTMaxRowsQ5 + 1, vnniWTMaxRowsQ8, vnniWTMaxRowsQ8 + 1} {
		var b Acts // without Q8_0: up to vnniWTMaxRowsQ5
		b.PrepareTypes([]tensor.Type{tensor.Q4_0, tensor.Q5_0}, values(r, n*cols, false), n, cols, nil)
		if want := n <= vnniWTMaxRowsQ5; b.packed8 != want {
			t.Fatalf("n=%d, Q4_0 and Q5_0: packed8 %v, want %v", n, b.packed8, want)
		}
		var c Acts // Q4_0 alone: up to vnniWTMaxRowsQ4
		c.PrepareTypes([]tensor.Type{tensor.Q4_0}, values(r, n*cols, false), n, cols, nil)
		if want := n <= vnniWTMaxRowsQ4; c.packed8 != want {
			t.Fatalf("n=%d, Q4_0: packed8 %v, want %v", n, c.packed8, want)
		}
		var a Acts
		a.PrepareTypes([]tensor.Type{tensor.Q8_0, tensor.Q4_0, tensor.Q5_0}, values(r, n*cols, false), n, cols, nil)
		if want := n <= vnniWTMaxRowsQ8; a.packed8 != want {
			t.Fatalf("n=%d: packed8 %v, want %v", n, a.packed8, want)
		}
		// The prefill tiles' packing only where the vnniWT tiles do not
		// take all three types (Q4_0 past vnniWTMaxRowsQ4).
		if want := n >= vnniMinRows && n > vnniWTMaxRowsQ4; a.packed != want {
			t.Fatalf("n=%d: packed %v, want %v", n, a.packed, want)
		}
		if want := n >= vnniMinRows && n > vnniWTMaxRowsQ4; b.packed != want {
			t.Fatalf("n=%d, Q4_0 and Q5_0: packed %v, want %v", n, b.packed, want)
		}
		var d Acts // Q4_1 reads the prefill packing at any n
		d.PrepareTypes([]tensor.Type{tensor.Q8_0, tensor.Q4_1}, values(r, n*cols, false), n, cols, nil)
		if want := n >= vnniMinRows; d.packed != want || d.packed8 != (n <= vnniWTMaxRowsQ8) {
			t.Fatalf("n=%d, Q8_0 and Q4_1: packed %v, packed8 %v", n, d.packed, d.packed8)
		}
		for _, typ := range []tensor.Type{tensor.Q8_0, tensor.Q4_1} {
			w := weights(r, typ, rows, cols, false)
			got, want := make([]float32, n*rows), make([]float32, n*rows)
			MatMul(w, &d, got, rows, 0, rows)
			MatMulRef(w, &d, want, rows, 0, rows)
			compareSlices(t, typ.String(), got, want)
		}
		for _, typ := range []tensor.Type{tensor.Q8_0, tensor.Q4_0, tensor.Q5_0} {
			w := weights(r, typ, rows, cols, false)
			got, want := make([]float32, n*rows), make([]float32, n*rows)
			MatMul(w, &a, got, rows, 0, rows)
			MatMulRef(w, &a, want, rows, 0, rows)
			compareSlices(t, typ.String(), got, want)
		}
		for _, typ := range []tensor.Type{tensor.Q4_1, tensor.Q5_1, tensor.F16} {
			if matMulVNNIWT(weights(r, typ, rows, cols, false), &a, make([]float32, n*rows), rows, 0, rows) {
				t.Fatalf("matMulVNNIWT took %s weights", typ)
			}
		}
	}
}

func FuzzVNNIWT(f *testing.F) {
	f.Add(uint64(1), uint8(1), uint8(1), uint8(17), uint8(0), true)
	f.Add(uint64(2), uint8(3), uint8(2), uint8(33), uint8(1), false)
	f.Add(uint64(3), uint8(24), uint8(16), uint8(7), uint8(2), true)
	f.Add(uint64(4), uint8(9), uint8(9), uint8(64), uint8(1), true)
	f.Add(uint64(6), uint8(5), uint8(23), uint8(47), uint8(0), false) // Q8_0, 24 rows: a pair and a group of 8
	f.Add(uint64(9), uint8(2), uint8(30), uint8(62), uint8(1), true)  // Q8_0, 31 rows: two pairs
	f.Add(uint64(3), uint8(2), uint8(199), uint8(40), uint8(0), true) // Q8_0, 200 rows
	f.Add(uint64(7), uint8(3), uint8(26), uint8(33), uint8(2), false) // Q4_0, 27 rows: declined
	f.Fuzz(func(t *testing.T, seed uint64, blocks, n, rows, mode uint8, special bool) {
		needVNNI(t)
		r := rand.New(rand.NewPCG(seed, uint64(blocks)))
		typ := []tensor.Type{tensor.Q8_0, tensor.Q4_0, tensor.Q5_0}[seed%3]
		rn := 1 + int(n) // 1 to 256 rows (Q4_0 and Q5_0 also past what they take)
		checkVNNIWT(t, r, typ, 1+int(rows), 32*(1+int(blocks)%24), rn, special, actsMode(mode%3))
	})
}
