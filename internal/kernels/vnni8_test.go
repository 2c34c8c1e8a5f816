//go:build amd64 && !purego

package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/verdictnet/verdict/internal/tensor"
)

// The vnni8 tiles (Q8_0 weights, a few activation rows) are checked against
// MatMulRef (dotQ8_0), bit for bit.

// checkVNNI8 compares matMulVNNI8 with MatMulRef for rows x cols Q8_0
// weights and n activation rows (packed by hand when Prepare did not: the
// tiles take any n up to vnni8MaxRows).
func checkVNNI8(t *testing.T, r *rand.Rand, rows, cols, n int, special bool, mode actsMode) {
	t.Helper()
	w, a := quantInputs(r, tensor.Q8_0, rows, cols, n, special, mode)
	if mode == actsPrepared && a.packed8 != (n >= 2 && n <= vnni8MaxRows) {
		t.Fatalf("Prepare cols=%d n=%d: packed8 %v (vnni8 rows 2 to %d)", cols, n, a.packed8, vnni8MaxRows)
	}
	if mode != actsPrepared || !a.packed8 {
		a.packed8 = packVNNI8(a)
		if !a.packed8 {
			t.Fatalf("packVNNI8 declined cols=%d n=%d", cols, n)
		}
	}
	r0 := r.IntN(rows)
	r1 := r0 + 1 + r.IntN(rows-r0)
	ld := rows + r.IntN(3)
	got := make([]float32, n*ld)
	want := make([]float32, n*ld)
	if !matMulVNNI8(w, a, got, ld, r0, r1) {
		t.Fatalf("matMulVNNI8 declined %dx%d n=%d", rows, cols, n)
	}
	MatMulRef(w, a, want, ld, r0, r1)
	for i := range got {
		if !same(got[i], want[i]) {
			t.Fatalf("rows [%d,%d) of %dx%d, n=%d, mode %d, special %v: out[%d] = %g (%#08x), reference %g (%#08x)",
				r0, r1, rows, cols, n, mode, special, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

func TestVNNI8Table(t *testing.T) {
	needVNNI(t)
	r := rand.New(rand.NewPCG(21, 22))
	for _, cols := range []int{32, 64, 96, 288, 768} {
		for _, n := range []int{1, 2, 3, 4, 5, 7, 8, 9, 14, 15} {
			for _, mode := range []actsMode{actsPrepared, actsExtreme, actsAnyInt8} {
				for _, special := range []bool{false, true} {
					checkVNNI8(t, r, 1+r.IntN(14), cols, n, special, mode)
				}
			}
		}
	}
}

// TestVNNI8ManyRows crosses the chunks of vnniRC weight rows and runs every
// n the dispatch sends here.
func TestVNNI8ManyRows(t *testing.T) {
	needVNNI(t)
	r := rand.New(rand.NewPCG(23, 24))
	for n := 2; n <= vnni8MaxRows; n++ {
		rows := []int{vnniRC - 1, vnniRC + 1, 2*vnniRC + 7}[n%3]
		checkVNNI8(t, r, rows, 32*(1+r.IntN(8)), n, n%4 == 0, actsMode(n%3))
	}
}

// TestVNNI8Dispatch checks that MatMul takes the vnni8 tiles for Q8_0
// weights against 2 to vnni8MaxRows prepared rows, and that rows prepared
// for Q8_0 and Q4_0 weights at once serve both.
func TestVNNI8Dispatch(t *testing.T) {
	needVNNI(t)
	r := rand.New(rand.NewPCG(25, 26))
	const rows, cols = 8, 64
	for _, n := range []int{1, 2, 3, 4, 16, vnni8MaxRows, vnni8MaxRows + 1} {
		var a Acts
		a.PrepareTypes([]tensor.Type{tensor.Q8_0, tensor.Q4_0}, values(r, n*cols, false), n, cols, nil)
		if want := n >= 2 && n <= vnni8MaxRows; a.packed8 != want {
			t.Fatalf("n=%d: packed8 %v, want %v", n, a.packed8, want)
		}
		if want := n >= vnniMinRows; a.packed != want {
			t.Fatalf("n=%d: packed %v, want %v", n, a.packed, want)
		}
		for _, typ := range []tensor.Type{tensor.Q8_0, tensor.Q4_0} {
			w := weights(r, typ, rows, cols, false)
			got, want := make([]float32, n*rows), make([]float32, n*rows)
			MatMul(w, &a, got, rows, 0, rows)
			MatMulRef(w, &a, want, rows, 0, rows)
			compareSlices(t, typ.String(), got, want)
		}
		if matMulVNNI8(weights(r, tensor.Q4_0, rows, cols, false), &a, make([]float32, n*rows), rows, 0, rows) {
			t.Fatal("matMulVNNI8 took Q4_0 weights")
		}
	}
}

func FuzzVNNI8(f *testing.F) {
	f.Add(uint64(1), uint8(1), uint8(17), uint8(5), uint8(0), true)
	f.Add(uint64(2), uint8(3), uint8(2), uint8(13), uint8(1), false)
	f.Add(uint64(3), uint8(24), uint8(14), uint8(7), uint8(2), true)
	f.Add(uint64(4), uint8(9), uint8(15), uint8(1), uint8(1), true)
	f.Fuzz(func(t *testing.T, seed uint64, blocks, n, rows, mode uint8, special bool) {
		needVNNI(t)
		r := rand.New(rand.NewPCG(seed, uint64(blocks)))
		checkVNNI8(t, r, 1+int(rows)%16, 32*(1+int(blocks)%24), 1+int(n)%vnni8MaxRows, special, actsMode(mode%3))
	})
}
