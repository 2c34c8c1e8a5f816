//go:build amd64 && !purego

package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/verdictnet/verdict/internal/tensor"
)

// The kwt tiles (K types, lanes on weight rows) against the specification
// (specDot) and MatMulRef, bit for bit.

// kwtTypes are the K types that have kwt tiles.
var kwtTypes = []tensor.Type{tensor.Q4_K, tensor.Q5_K, tensor.Q6_K}

// kwtExtreme makes every super-block of w extreme: Q4_K (Q5_K: with every
// high bit, quanta 31) nibbles 15 and
// sub-block scales and mins 63 (every byte but d and dmin 0xff; or 0xc0:
// nibbles 0 and 12, the scales' top bits set), d the largest f16; Q6_K
// quanta 31 or -32 (0xff or 0x00) and scales -128 or 127, d the largest
// f16 or random.
func kwtExtreme(w *tensor.Tensor, r *rand.Rand) {
	bb := w.Type.BlockBytes()
	for b := 0; b+bb <= len(w.Data); b += bb {
		blk := w.Data[b : b+bb]
		switch w.Type {
		case tensor.Q4_K, tensor.Q5_K:
			fill := []byte{0xff, 0xc0}[r.IntN(2)]
			for i := 4; i < bb; i++ {
				blk[i] = fill
			}
			binary.LittleEndian.PutUint16(blk, F32ToF16(65504))
			binary.LittleEndian.PutUint16(blk[2:], F32ToF16(float32(r.NormFloat64())))
		case tensor.Q6_K:
			fill := []byte{0xff, 0x00}[r.IntN(2)]
			for i := 0; i < 192; i++ {
				blk[i] = fill
			}
			for i := 192; i < 208; i++ {
				blk[i] = []byte{0x80, 0x7f}[r.IntN(2)]
			}
			binary.LittleEndian.PutUint16(blk[208:], []uint16{F32ToF16(65504), F32ToF16(float32(r.NormFloat64()))}[r.IntN(2)])
		}
	}
}

// checkKWT compares matMulKWT with specDot (and MatMul with MatMulRef) for
// rows x cols weights of type typ and n activation rows.
func checkKWT(t *testing.T, r *rand.Rand, typ tensor.Type, rows, cols, n int, mode string) {
	t.Helper()
	w, a := kwtInputs(t, r, typ, rows, cols, n, mode)
	r0 := r.IntN(rows)
	r1 := r0 + 1 + r.IntN(rows-r0)
	for _, rg := range [][2]int{{0, rows}, {r0, r1}} {
		ld := rows + r.IntN(3)
		got := make([]float32, n*ld)
		if !matMulKWT(w, a, got, ld, rg[0], rg[1], kwtIndex(typ)) {
			t.Fatalf("matMulKWT declined %s %dx%d n=%d", typ, rows, cols, n)
		}
		ref := make([]float32, n*ld)
		MatMulRef(w, a, ref, ld, rg[0], rg[1])
		for p := 0; p < n; p++ {
			for i := rg[0]; i < rg[1]; i++ {
				want := specDot(typ, w.Row(i), a.KQ[p*cols:(p+1)*cols], a.KD[p*cols/256:])
				g := got[p*ld+i]
				if !same(g, want) || !same(ref[p*ld+i], want) {
					t.Fatalf("%s %s rows [%d,%d) of %dx%d n=%d: row %d act %d: %g (%#08x), spec %g (%#08x), reference %g",
						typ, mode, rg[0], rg[1], rows, cols, n, i, p, g, math.Float32bits(g), want, math.Float32bits(want), ref[p*ld+i])
				}
			}
		}
	}
}

// kwtInputs makes the rows x cols weights of type typ and the n activation
// rows, packed for the kwt tiles, of checkKWT's mode.
func kwtInputs(t *testing.T, r *rand.Rand, typ tensor.Type, rows, cols, n int, mode string) (*tensor.Tensor, *Acts) {
	t.Helper()
	w := quantTensor(r, typ, rows, cols, mode != "prepared")
	if mode == "maxweights" {
		kwtExtreme(w, r)
	}
	a := actsOf(r, typ, n, cols, mode == "special")
	if mode == "dense" { // every quantum in play (value's outliers make most 0)
		x := make([]float32, n*cols)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		a.Prepare(typ, x, n, cols)
	}
	if want := n <= kwtMaxRows; a.packedKW != want {
		t.Fatalf("Prepare n=%d: packedKW %v, want %v", n, a.packedKW, want)
	}
	if mode == "anyint8" || mode == "maxweights" {
		for i := range a.KQ {
			a.KQ[i] = []int8{-128, 127, -127, 0, int8(r.Uint32())}[r.IntN(5)]
			if mode == "maxweights" {
				a.KQ[i] = []int8{-128, 127}[r.IntN(2)]
			}
		}
		sums16(a.KQ, a.KS)
		sums32(a.KS, a.KS32)
		for i := range a.KD {
			a.KD[i] = value(r, true)
		}
		if !packKWT(a, nil) {
			t.Fatal("packKWT declined")
		}
	}
	return w, a
}

// kwtTestRows are the activation row counts TestKWT runs: every tile size
// and group count up to 16 rows, then batches and prefill chunks (partial
// and whole groups of 8, several passes).
var kwtTestRows = []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 24, 31, 32, 33, 48, 64, 65, 129}

// TestKWT runs the kwt tiles for kwtTestRows on row counts that leave
// every kind of remainder of 16 (the tail goes to the AVX2 kernels), with
// random, dense (normal activations: every quantum in play), special
// (NaN/Inf/huge scales), any-int8 (-128 included) and extreme (kwtExtreme)
// inputs; past 16 rows, with passes (kwtChunkBytes) of every group, of one
// group and of two.
func TestKWT(t *testing.T) {
	needVNNI(t)
	r := rand.New(rand.NewPCG(31, 32))
	was := kwtChunkBytes
	defer func() { kwtChunkBytes = was }()
	for _, typ := range kwtTypes {
		for _, n := range kwtTestRows {
			for _, mode := range []string{"prepared", "dense", "special", "anyint8", "maxweights"} {
				t.Run(fmt.Sprintf("%s/n=%d/%s", typ, n, mode), func(t *testing.T) {
					rows := []int{1, 15, 16, 17, 32, 47, 64 + r.IntN(40)}[r.IntN(7)]
					nb := 1 + r.IntN(3)
					kwtChunkBytes = []int{was, 1, 2 * kwtP * nb * kwtRow}[r.IntN(3)]
					checkKWT(t, r, typ, rows, 256*nb, n, mode)
				})
			}
		}
	}
}

// TestKWTDispatch checks that MatMul takes the kwt path for n <= kwtMaxRows
// (every n: the output equals MatMulRef and the Acts are packed for it, not
// for the kvnni tiles) with AVX-512 on, and not with it off; and that an
// Acts reused across row counts is packed for the path of each.
func TestKWTDispatch(t *testing.T) {
	needVNNI(t)
	r := rand.New(rand.NewPCG(33, 34))
	matches := func(t *testing.T, typ tensor.Type, a *Acts, rows, cols int) {
		t.Helper()
		w := quantTensor(r, typ, rows, cols, false)
		got := make([]float32, a.N*rows)
		want := make([]float32, a.N*rows)
		MatMul(w, a, got, rows, 0, rows)
		MatMulRef(w, a, want, rows, 0, rows)
		for i := range got {
			if !same(got[i], want[i]) {
				t.Fatalf("%s n=%d: out[%d] = %g, reference %g", typ, a.N, i, got[i], want[i])
			}
		}
	}
	for _, avx512 := range []bool{true, false} {
		was := setAVX512(avx512)
		for _, typ := range []tensor.Type{tensor.Q4_K, tensor.Q5_K, tensor.Q6_K} {
			for _, n := range []int{1, 2, 5, 16, 17, 32, 33, 48, 129} {
				rows, cols := 48+r.IntN(20), 512
				a := actsOf(r, typ, n, cols, false)
				if want := avx512 && n <= kwtMaxRows; a.packedKW != want {
					t.Errorf("avx512 %v n=%d: packedKW %v, want %v", avx512, n, a.packedKW, want)
				}
				if avx512 && a.packedK {
					t.Errorf("n=%d: packed for the kvnni tiles too", n)
				}
				matches(t, typ, a, rows, 512)
			}
		}
		setAVX512(was)
	}
	// One Acts reused: packed for the kwt tiles at every n, regrown.
	var a Acts
	x := values(r, 129*256, false)
	for _, n := range []int{4, 129, 17, 1} {
		a.Prepare(tensor.Q4_K, x[:n*256], n, 256)
		if !a.packedKW {
			t.Fatalf("n=%d: not packed for the kwt tiles", n)
		}
		matches(t, tensor.Q4_K, &a, 40, 256)
	}
	// With kwtMaxRows 16: n=17 after n=4 goes to the kvnni tiles.
	wasMax := kwtMaxRows
	kwtMaxRows = 16
	defer func() { kwtMaxRows = wasMax }()
	a.Prepare(tensor.Q4_K, x[:4*256], 4, 256)
	if !a.packedKW || a.packedK {
		t.Fatalf("kwtMaxRows 16, n=4: packedKW %v, packedK %v", a.packedKW, a.packedK)
	}
	a.Prepare(tensor.Q4_K, x[:17*256], 17, 256)
	if a.packedKW || !a.packedK {
		t.Fatalf("kwtMaxRows 16, n=17 after n=4: packedKW %v, packedK %v", a.packedKW, a.packedK)
	}
	matches(t, tensor.Q4_K, &a, 40, 256)
}

// FuzzKWT feeds arbitrary weight bytes and activation quanta to the kwt
// tiles: their results must equal the specification bit for bit (NaN
// payloads aside).
func FuzzKWT(f *testing.F) {
	f.Add([]byte{0xff, 0x7b, 0x00, 0x3c}, []byte{0x80, 0x7f}, uint8(1), uint8(17))
	f.Add([]byte{0x00}, []byte{0x01, 0x02, 0x03}, uint8(5), uint8(16))
	f.Add([]byte{0x12, 0x34, 0x56}, []byte{0xff}, uint8(16), uint8(33))
	f.Add([]byte{0x9a, 0x01}, []byte{0x7f, 0x80, 0x00}, uint8(128), uint8(20))
	f.Fuzz(func(t *testing.T, wb, qb []byte, nb, rb uint8) {
		if !hasVNNI || !hasFast || len(wb) == 0 || len(qb) == 0 {
			t.Skip()
		}
		n := 1 + int(nb) // 1 to 256: every tile size, up to 32 groups
		rows := 1 + int(rb)%48
		const cols = 256
		for _, typ := range kwtTypes {
			rs := typ.BlockBytes()
			w := &tensor.Tensor{Name: "w", Type: typ, Dims: []int{cols, rows}, Data: make([]byte, rows*rs)}
			for i := range w.Data {
				w.Data[i] = wb[i%len(wb)] ^ byte(i/len(wb))
			}
			a := &Acts{N: n, Cols: cols, Formats: ActQ8K, KQ: make([]int8, n*cols), KD: make([]float32, n), KS: make([]int16, n*cols/16), KS32: make([]int16, n*cols/32)}
			for i := range a.KQ {
				a.KQ[i] = int8(qb[i%len(qb)] + byte(i/len(qb)))
			}
			for p := range a.KD {
				a.KD[p] = math.Float32frombits(binary.LittleEndian.Uint32(append(append([]byte{}, wb...), 0, 0, 0, 0)[:4]) + uint32(p))
			}
			sums16(a.KQ, a.KS)
			sums32(a.KS, a.KS32)
			a.packedKW = packKWT(a, nil)
			got := make([]float32, n*rows)
			if !matMulKWT(w, a, got, rows, 0, rows, kwtIndex(typ)) {
				t.Fatal("matMulKWT declined")
			}
			for p := 0; p < n; p++ {
				for i := 0; i < rows; i++ {
					if want := specDot(typ, w.Row(i), a.KQ[p*cols:(p+1)*cols], a.KD[p:]); !same(got[p*rows+i], want) {
						t.Fatalf("%s row %d act %d: %g, spec %g", typ, i, p, got[p*rows+i], want)
					}
				}
			}
		}
	})
}

// kwtIndex is the index of a K type in the kernel tables.
func kwtIndex(t tensor.Type) int {
	return map[tensor.Type]int{tensor.Q4_K: 0, tensor.Q5_K: 1, tensor.Q6_K: 2}[t]
}
