//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/verdictnet/verdict/internal/tensor"
)

// The VNNI tiles are checked against MatMulRef (dotQ8_0/dotQ4_0), the
// scalar oracle of docs/determinism.md 4.2: every output must have the same
// bits.

func needVNNI(tb testing.TB) {
	tb.Helper()
	if !hasVNNI || !hasFast {
		tb.Skip("no AVX-512 VNNI on this CPU (or fast paths off): the AVX2 and reference kernels run")
	}
	was := setAVX512(true)
	tb.Cleanup(func() { setAVX512(was) })
}

// actsMode picks how the activation quanta and scales are drawn.
type actsMode int

const (
	actsPrepared actsMode = iota // QuantizeQ8 of random floats
	actsExtreme                  // q in {-127, 127, 0, random}, scales 0/subnormal/huge
	actsAnyInt8                  // any int8 quanta, -128 included
)

// checkVNNI compares matMulVNNI with MatMulRef for rows x cols weights of
// type typ and n activation rows.
// quantInputs makes rows x cols weights of type typ (with special: extreme
// and all-zero Q8_0 blocks too) and n prepared activation rows; unless mode
// is actsPrepared, the quanta and scales are then replaced by extreme ones
// (actsAnyInt8: -128 included), which a caller must pack again.
func quantInputs(r *rand.Rand, typ tensor.Type, rows, cols, n int, special bool, mode actsMode) (*tensor.Tensor, *Acts) {
	w := weights(r, typ, rows, cols, special)
	if special && typ == tensor.Q8_0 {
		for blk := 0; blk+34 <= len(w.Data); blk += 34 {
			switch r.IntN(6) {
			case 0: // extreme quanta, -128 included
				for i := 0; i < 32; i++ {
					w.Data[blk+2+i] = []byte{0x80, 0x81, 0x7f}[r.IntN(3)]
				}
			case 1: // all-zero block
				clear(w.Data[blk+2 : blk+34])
			}
		}
	}
	x := values(r, n*cols, special)
	a := new(Acts)
	a.Prepare(typ, x, n, cols)
	if mode == actsPrepared {
		return w, a
	}
	for i := range a.Q {
		switch k := r.IntN(8); {
		case k == 0:
			a.Q[i] = 127
		case k == 1:
			a.Q[i] = -127
		case k == 2:
			a.Q[i] = 0
		case k == 3 && mode == actsAnyInt8:
			a.Q[i] = -128
		default:
			a.Q[i] = int8(r.IntN(255) - 127)
		}
	}
	for b := 0; b < n*cols/32; b++ {
		if r.IntN(4) == 0 {
			clear(a.Q[32*b : 32*b+32])
		}
	}
	for i := range a.D {
		switch r.IntN(6) {
		case 0:
			a.D[i] = 0
		case 1:
			a.D[i] = math.Float32frombits(r.Uint32() & 0x007fffff) // subnormal
		case 2:
			a.D[i] = float32(r.NormFloat64() * 1e38)
		default:
			a.D[i] = value(r, special)
		}
	}
	return w, a
}

func checkVNNI(t *testing.T, r *rand.Rand, typ tensor.Type, rows, cols, n int, special bool, mode actsMode) {
	t.Helper()
	w, a := quantInputs(r, typ, rows, cols, n, special, mode)
	if mode != actsPrepared {
		a.packed = packVNNI(a, typ, nil)
		if !a.packed {
			t.Fatalf("packVNNI declined %s cols=%d n=%d", typ, cols, n)
		}
	}
	// Prepare packs for these tiles from vnniMinRows rows, where the
	// vnniWT tiles do not take the weights.
	if want := n >= vnniMinRows && !wtTakes(typ, n); mode == actsPrepared && a.packed != want {
		t.Fatalf("Prepare %s cols=%d n=%d: packed %v, want %v (VNNI rows from %d)", typ, cols, n, a.packed, want, vnniMinRows)
	}
	if !a.packed { // few rows: pack by hand, the tiles take any n
		a.packed = packVNNI(a, typ, nil)
		if !a.packed {
			t.Fatalf("packVNNI declined %s cols=%d n=%d", typ, cols, n)
		}
	}
	r0 := r.IntN(rows)
	r1 := r0 + 1 + r.IntN(rows-r0)
	ld := rows + r.IntN(3)
	got := make([]float32, n*ld)
	want := make([]float32, n*ld)
	if !matMulVNNI(w, a, got, ld, r0, r1) {
		t.Fatalf("matMulVNNI declined %s %dx%d n=%d", typ, rows, cols, n)
	}
	MatMulRef(w, a, want, ld, r0, r1)
	for i := range got {
		if !same(got[i], want[i]) {
			t.Fatalf("%s rows [%d,%d) of %dx%d, n=%d: out[%d] = %g (%#08x), reference %g (%#08x)",
				typ, r0, r1, rows, cols, n, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

func TestVNNITable(t *testing.T) {
	needVNNI(t)
	quantTable(t, rand.New(rand.NewPCG(7, 8)), []int{1, 2, 3, 4, 15, 16, 17, 31, 32, 33, 47, 48, 64, 70}, checkVNNI)
}

// TestVNNIEveryN runs every n from 1 to 70 once per type.
func TestVNNIEveryN(t *testing.T) {
	needVNNI(t)
	quantEveryN(t, rand.New(rand.NewPCG(9, 10)), checkVNNI)
}

// quantCheck compares one packed quantised prefill path with MatMulRef on
// random rows x cols weights of type typ and n activation rows.
type quantCheck func(t *testing.T, r *rand.Rand, typ tensor.Type, rows, cols, n int, special bool, mode actsMode)

// quantTable runs check over both quantised types, several widths, the
// given activation row counts, every activation mode and special values.
func quantTable(t *testing.T, r *rand.Rand, ns []int, check quantCheck) {
	for _, typ := range []tensor.Type{tensor.Q8_0, tensor.Q4_0} {
		for _, cols := range []int{32, 64, 96, 288, 768} {
			for _, n := range ns {
				for _, mode := range []actsMode{actsPrepared, actsExtreme, actsAnyInt8} {
					for _, special := range []bool{false, true} {
						name := fmt.Sprintf("%s/cols=%d/n=%d/mode=%d/special=%v", typ, cols, n, mode, special)
						t.Run(name, func(t *testing.T) {
							check(t, r, typ, 1+r.IntN(14), cols, n, special, mode)
						})
					}
				}
			}
		}
	}
}

// quantEveryN runs check once per type for every n from 1 to 70.
func quantEveryN(t *testing.T, r *rand.Rand, check quantCheck) {
	for _, typ := range []tensor.Type{tensor.Q8_0, tensor.Q4_0} {
		for n := 1; n <= 70; n++ {
			check(t, r, typ, 1+r.IntN(20), 32*(1+r.IntN(8)), n, n%3 == 0, actsMode(n%3))
		}
	}
}

// TestVNNIDispatch checks when Prepare packs (prefill with quantised
// weights and the VNNI path on) and that MatMul then takes the VNNI path.
func TestVNNIDispatch(t *testing.T) {
	needVNNI(t)
	r := rand.New(rand.NewPCG(11, 12))
	const rows, cols = 8, 64
	var a Acts
	for _, c := range []struct {
		typ    tensor.Type
		n      int
		avx512 bool
		packed bool
	}{
		{tensor.Q8_0, 1, true, false},
		{tensor.Q8_0, vnniMinRows - 1, true, false},
		{tensor.Q8_0, vnniMinRows, true, false}, // the vnniWT tiles take Q8_0 to vnniWTMaxRowsQ8 rows
		{tensor.Q4_0, 40, true, false},
		{tensor.Q4_0, vnniWTMaxRowsQ4 + 1, true, true},
		{tensor.Q8_0, vnniWTMaxRowsQ8 + 1, true, true},
		{tensor.Q4_1, vnniMinRows, true, true},
		{tensor.F32, 40, true, false},
		{tensor.F16, 40, true, false},
		{tensor.Q8_0, 40, false, true}, // packed for the AVX2 q2 tiles (q2_amd64.go)
	} {
		setAVX512(c.avx512)
		a.Prepare(c.typ, values(r, c.n*cols, false), c.n, cols)
		if a.packed != c.packed || useVNNI != c.avx512 {
			t.Errorf("%s n=%d avx512=%v: packed %v, useVNNI %v", c.typ, c.n, c.avx512, a.packed, useVNNI)
		}
	}
	setAVX512(true)
	// Rows packed for one quantised type serve the other: the packing does
	// not depend on it (Q4_1, which the vnniWT tiles do not take, has
	// them packed at 20 rows).
	a.Prepare(tensor.Q4_1, values(r, 20*cols, false), 20, cols)
	for _, typ := range []tensor.Type{tensor.Q8_0, tensor.Q4_0} {
		w := weights(r, typ, rows, cols, false)
		got, want := make([]float32, 20*rows), make([]float32, 20*rows)
		if !matMulVNNI(w, &a, got, rows, 0, rows) {
			t.Fatalf("matMulVNNI declined %s weights", typ)
		}
		MatMulRef(w, &a, want, rows, 0, rows)
		compareSlices(t, typ.String(), got, want)
	}
	if matMulVNNI(weights(r, tensor.F16, rows, cols, false), &a, make([]float32, 20*rows), rows, 0, rows) {
		t.Fatal("matMulVNNI took F16 weights")
	}
}

// TestVNNIParallelPrepare checks that packing through a run function that
// splits the groups gives the same packed bytes.
func TestVNNIParallelPrepare(t *testing.T) {
	needVNNI(t)
	r := rand.New(rand.NewPCG(13, 14))
	const n, cols = 53, 128
	x := values(r, n*cols, false)
	var a, b Acts
	a.Prepare(tensor.Q4_1, x, n, cols) // Q4_1: packed for these tiles at any n >= vnniMinRows
	b.PrepareParallel(tensor.Q4_1, x, n, cols, func(n int, fn func(lo, hi int)) {
		done := make(chan bool)
		for lo := 0; lo < n; lo += 2 {
			go func() { fn(lo, min(n, lo+2)); done <- true }()
		}
		for lo := 0; lo < n; lo += 2 {
			<-done
		}
	})
	if !a.packed || !b.packed || string(a.pk) != string(b.pk) {
		t.Fatal("packing in parallel changed the packed rows")
	}
}

func FuzzVNNI(f *testing.F) {
	f.Add(uint64(1), false, uint8(1), uint8(17), uint8(5), uint8(0), true)
	f.Add(uint64(2), true, uint8(3), uint8(2), uint8(13), uint8(1), false)
	f.Add(uint64(3), false, uint8(24), uint8(70), uint8(7), uint8(2), true)
	f.Add(uint64(4), true, uint8(9), uint8(33), uint8(1), uint8(1), true)
	f.Fuzz(func(t *testing.T, seed uint64, q4 bool, blocks, n, rows, mode uint8, special bool) {
		needVNNI(t)
		typ := tensor.Q8_0
		if q4 {
			typ = tensor.Q4_0
		}
		r := rand.New(rand.NewPCG(seed, uint64(blocks)))
		checkVNNI(t, r, typ, 1+int(rows)%16, 32*(1+int(blocks)%24), 1+int(n)%70, special, actsMode(mode%3))
	})
}

// BenchmarkPrefillQ8 times the 110m prefill shapes (2048x768 and 768x2048
// weights) against 64 and 256 activation rows, one thread: vnni=true is the
// AVX-512 path (quantQ8Z, packVNNI and the VNNI tiles), vnni=false the AVX2
// quantised kernels with QuantizeQ8. Each op is Prepare + MatMul.
func BenchmarkPrefillQ8(b *testing.B) {
	if !hasFast {
		b.Skip("no fast path")
	}
	r := rand.New(rand.NewPCG(1, 1))
	for _, typ := range []tensor.Type{tensor.Q8_0, tensor.Q4_0} {
		for _, shape := range [][2]int{{2048, 768}, {768, 2048}} {
			rows, cols := shape[0], shape[1]
			w := weights(r, typ, rows, cols, false)
			for _, n := range []int{64, 256} {
				x := make([]float32, n*cols) // activations: normal floats
				for i := range x {
					x[i] = float32(r.NormFloat64())
				}
				out := make([]float32, n*rows)
				for _, vnni := range []bool{true, false} {
					if vnni && !hasVNNI {
						continue
					}
					name := fmt.Sprintf("%s/%dx%d/n=%d/vnni=%v", typ, rows, cols, n, vnni)
					b.Run(name, func(b *testing.B) {
						was := setAVX512(vnni)
						defer setAVX512(was)
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

// checkQuantQ8Z compares quantizeQ8Z with QuantizeQ8 on x.
func checkQuantQ8Z(t *testing.T, x []float32) {
	t.Helper()
	nb := len(x) / 32
	q, d := make([]int8, 32*nb), make([]float32, nb)
	qr, dr := make([]int8, 32*nb), make([]float32, nb)
	quantizeQ8Z(x[:32*nb], q, d)
	QuantizeQ8(x[:32*nb], qr, dr)
	for b := 0; b < nb; b++ {
		if math.Float32bits(d[b]) != math.Float32bits(dr[b]) {
			t.Fatalf("block %d of %d: d = %#08x, reference %#08x", b, nb, math.Float32bits(d[b]), math.Float32bits(dr[b]))
		}
	}
	for i := range q {
		if q[i] != qr[i] {
			t.Fatalf("x[%d] = %g (%#08x): q = %d, reference %d (d %g)", i, x[i], math.Float32bits(x[i]), q[i], qr[i], dr[i/32])
		}
	}
}

func TestQuantQ8ZTable(t *testing.T) {
	if !hasAVX512 {
		t.Skip("no AVX-512F on this CPU: QuantizeQ8 runs")
	}
	r := rand.New(rand.NewPCG(15, 16))
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	sub := math.Float32frombits(1)
	blocks := []struct {
		name string
		f    func(i int) float32
	}{
		{"zeros", func(i int) float32 { return 0 }},
		{"negzeros", func(i int) float32 { return float32(math.Copysign(0, -1)) }},
		{"normal", func(i int) float32 { return float32(r.NormFloat64()) }},
		{"subnormal", func(i int) float32 { return math.Float32frombits(r.Uint32() & 0x807fffff) }},
		{"tiny", func(i int) float32 { return sub * float32(i%3-1) }},
		{"onesub", func(i int) float32 { return []float32{sub, 0}[min(i, 1)] }},
		{"huge", func(i int) float32 { return float32(r.NormFloat64() * 1e38) }},
		{"max", func(i int) float32 { return []float32{math.MaxFloat32, -math.MaxFloat32}[i%2] }},
		{"nan", func(i int) float32 { return []float32{nan, float32(r.NormFloat64())}[i%2] }},
		{"allnan", func(i int) float32 { return nan }},
		{"inf", func(i int) float32 { return []float32{inf, -inf, 1, 0}[i%4] }},
		{"neginf", func(i int) float32 { return []float32{-inf, 2}[i%2] }},
		{"nanandinf", func(i int) float32 { return []float32{nan, inf, -3}[i%3] }},
		{"ties", func(i int) float32 { return float32(i) - 15.5 }},
		{"127ths", func(i int) float32 { return float32(i-16) / 127 }},
		{"anybits", func(i int) float32 { return math.Float32frombits(r.Uint32()) }},
		{"smallscale", func(i int) float32 { return float32(r.NormFloat64() * 1e-38) }},
	}
	for _, c := range blocks {
		t.Run(c.name, func(t *testing.T) {
			x := make([]float32, 32*5)
			for i := range x {
				x[i] = c.f(i % 32)
			}
			checkQuantQ8Z(t, x)
		})
	}
}

func FuzzQuantQ8Z(f *testing.F) {
	f.Add([]byte{0, 0, 0x80, 0x7f, 1, 0, 0, 0, 0, 0, 0xc0, 0xff})
	f.Add(make([]byte, 128))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !hasAVX512 {
			t.Skip("no AVX-512F")
		}
		if len(raw) > 4096 {
			raw = raw[:4096]
		}
		x := make([]float32, 32*(1+len(raw)/128))
		for i := range x {
			// Fill from raw (cycled), so short inputs still give full blocks.
			if len(raw) >= 4 {
				j := (4 * i) % (len(raw) - len(raw)%4)
				x[i] = math.Float32frombits(uint32(raw[j]) | uint32(raw[j+1])<<8 | uint32(raw[j+2])<<16 | uint32(raw[j+3])<<24)
			}
		}
		checkQuantQ8Z(t, x)
	})
}

// TestVNNIManyRows crosses matMulVNNI's chunks of vnniRC weight rows.
func TestVNNIManyRows(t *testing.T) {
	needVNNI(t)
	r := rand.New(rand.NewPCG(17, 18))
	for _, typ := range []tensor.Type{tensor.Q8_0, tensor.Q4_0} {
		for _, rows := range []int{vnniRC - 1, vnniRC + 1, 2*vnniRC + 7, 3*vnniRC + 5} {
			for _, n := range []int{5, 33, 50} {
				checkVNNI(t, r, typ, rows, 64, n, n == 33, actsMode(n%3))
			}
		}
	}
}
