package kernels

import (
	"encoding/binary"
	"fmt"
	"sync"
	"unsafe"

	"github.com/verdictnet/verdict/internal/tensor"
)

// Acts holds n activation rows of length cols, prepared for the weight
// types that will use them: F32, F16 and BF16 weights use the float rows;
// Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 weights the rows quantised to Q8 blocks of
// 32 (Q, D; see QuantizeQ8); Q4_K, Q5_K and Q6_K weights the rows quantised
// to Q8K super-blocks of 256 (KQ, KD, KS, KS32; see QuantizeQ8K). One Acts can hold
// both quantisations at once, for matrices of different types that share an
// input.
type Acts struct {
	N, Cols int
	F       []float32 // n*cols
	Q       []int8    // n*cols, for the 32-element block types
	D       []float32 // n*cols/32 block scales, for the 32-element block types
	KQ      []int8    // n*cols, for the K types
	KD      []float32 // n*cols/256 super-block scales, for the K types
	KS      []int16   // n*cols/16 sums of 16 consecutive KQ, for the K types
	KS32    []int16   // n*cols/32 sums of 32 consecutive KQ (KS[2k] + KS[2k+1])

	// Formats records which quantisations the Acts hold (those asked for
	// whose block size divides cols). Prepare sets it; Acts filled by hand
	// must set it too.
	Formats ActFormat

	// noMin128 records that Prepare filled Q (QuantizeQ8 clamps to
	// [-127, 127]), which lets a fast path use kernels that are exact only
	// without -128. Acts filled by hand never set it. (The K-type kernels
	// are exact for any int8 and need no such flag.)
	noMin128 bool

	// pk holds the quantised rows repacked for the AVX-512 VNNI tiles (see
	// vnni_amd64.go) or the AVX2 q2 tiles (q2_amd64.go; same layout) when
	// packed is set; PrepareParallel fills it where one of those paths is
	// on, once per matmul.
	pk     []byte
	packed bool
	// pk8 holds the quantised rows repacked for the AVX-512 VNNI tiles of
	// Q8_0, Q4_0 and Q5_0 weights against a few rows (vnniwt_amd64.go)
	// when packed8 is set; where it is, those weights use it (pk, made as
	// before, then serves the other types, and is not made when there are
	// none: fewTakeAll).
	pk8     []byte
	packed8 bool
	// pk8Once, when set, makes pk8 on first use: packActs8 left it
	// unmade because the AMX tiles take every activation row, and only
	// weight rows past a multiple of 16 (wtTail) read it.
	pk8Once *sync.Once
	// pkA holds packedA groups of 16 quantised rows (a last one padded)
	// repacked for the AMX tiles of Q8_0 weights (amx_amd64.go, packAMX),
	// where the CPU has them.
	pkA     []byte
	packedA int
	// pkK holds the Q8K rows repacked for the AVX-512 VNNI tiles of the K
	// types (k_vnni_amd64.go) when packedK is set.
	pkK     []byte
	packedK bool
	// pkKW holds the Q8K rows repacked for the AVX-512 VNNI tiles of the K
	// types against a few rows (kwt_amd64.go) when packedKW is set.
	pkKW     []byte
	packedKW bool
	// f32o holds F again with its first element 32 bytes past a 64-byte
	// line, its rows f32bXStride(Cols) floats apart, for the float32
	// batch tiles on weights at that offset (f32b_amd64.go), when hasF32o
	// is set.
	f32o    []float32
	hasF32o bool
}

// prepF32o fills a.f32o where the float32 batch tiles take it (nil where
// none do).
var prepF32o func(a *Acts) bool

// ActFormat is a set of activation quantisations.
type ActFormat uint8

const (
	ActQ8  ActFormat = 1 << iota // 32-element blocks: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 weights
	ActQ8K                       // 256-element super-blocks: Q4_K, Q5_K, Q6_K weights
)

// FormatOf returns the activation quantisation weights of type t need (0
// for the float types).
func FormatOf(t tensor.Type) ActFormat {
	switch {
	case t.SuperBlock():
		return ActQ8K
	case t.Quantized():
		return ActQ8
	}
	return 0
}

// quantizeFast and quantizeFastK, when set by an architecture-specific
// file, are QuantizeQ8 and QuantizeQ8K with identical bits.
var (
	quantizeFast  func(x []float32, q []int8, d []float32)
	quantizeFastK func(x []float32, q []int8, d []float32, s []int16)
)

// packActs, when set by an architecture-specific file, repacks a's
// quantised rows for weights of type t (possibly in parallel through run)
// and reports whether it did.
var packActs func(a *Acts, t tensor.Type, run func(n int, fn func(lo, hi int))) bool

// packActs8, when set by an architecture-specific file, repacks a's
// quantised rows for Q8_0, Q4_0 and Q5_0 weights against a few rows (possibly in parallel through run) and
// reports whether it did; ts are the weight types that will use them.
var packActs8 func(a *Acts, ts []tensor.Type, run func(n int, fn func(lo, hi int))) bool

// fewTakes, set by an architecture-specific file with packActs8, reports
// whether packActs8's tiles take weights of type t against n rows (all of
// them: the last rows of a range too, so that those weights never read
// packActs's packing).
var fewTakes func(t tensor.Type, n int) bool

// q8FewMinRows is the fewest activation rows for which PrepareTypes packs
// for packActs8's tiles when the weights are Q8_0 (Q4_0 and Q5_0: from one
// row). Set by an architecture-specific file with packActs8.
var q8FewMinRows = 2

// packActsK, when set by an architecture-specific file, repacks a's Q8K
// rows for the K-type tiles and reports whether it did.
var packActsK func(a *Acts, run func(n int, fn func(lo, hi int))) bool

// Prepare fills a with the n rows of x (n*cols floats) for weights of type t.
// It reuses a's buffers.
func (a *Acts) Prepare(t tensor.Type, x []float32, n, cols int) {
	a.PrepareParallel(t, x, n, cols, nil)
}

// PrepareParallel is Prepare with the quantisation of the rows handed to
// run (when not nil), which calls fn on ranges of rows covering [0, n),
// possibly in parallel. Each row is quantised on its own, so the split never
// changes a bit.
func (a *Acts) PrepareParallel(t tensor.Type, x []float32, n, cols int, run func(n int, fn func(lo, hi int))) {
	a.PrepareTypes([]tensor.Type{t}, x, n, cols, run)
}

// FewRowsPackBytes is the extra activation memory, in bytes per row and
// input column (as a fraction num/den), that PrepareTypes may hold for the
// few-row tiles when weights of type t are in the product: the packed
// groups of 8 rows (vnniWTBlk bytes a block of 32 columns, 40 a row) where
// the architecture has those tiles, else nothing.
func FewRowsPackBytes(t tensor.Type) (num, den int) {
	if packActs8 != nil && (t == tensor.Q8_0 || t == tensor.Q4_0 || t == tensor.Q5_0) {
		return 40, tensor.QK
	}
	return 0, 1
}

// PrepareTypes is PrepareParallel for several weight types at once (the
// matrices that share this input): every quantisation any of them needs is
// made, once.
func (a *Acts) PrepareTypes(ts []tensor.Type, x []float32, n, cols int, run func(n int, fn func(lo, hi int))) {
	a.N, a.Cols, a.F = n, cols, x[:n*cols]
	a.noMin128 = false
	a.packed, a.packedK, a.packed8, a.packedKW, a.packedA = false, false, false, false, 0
	a.pk8Once = nil
	a.hasF32o = false
	for _, t := range ts {
		if t == tensor.F32 && prepF32o != nil {
			a.hasF32o = prepF32o(a)
			break
		}
	}
	var f ActFormat
	few := false // weights that the few-row tiles take at this n
	pack := tensor.F32
	for _, t := range ts {
		f |= FormatOf(t)
		few = few || t == tensor.Q8_0 && n >= q8FewMinRows || t == tensor.Q4_0 || t == tensor.Q5_0
		if t == tensor.Q8_0 || t == tensor.Q4_0 || pack == tensor.F32 && (t == tensor.Q4_1 || t == tensor.Q5_0 || t == tensor.Q5_1) {
			pack = t
		}
	}
	a.Formats = 0
	if f&ActQ8 != 0 && cols%tensor.QK == 0 {
		a.Formats |= ActQ8
		a.Q = grow(a.Q, n*cols)
		a.D = grow(a.D, n*cols/tensor.QK)
		nb := cols / tensor.QK
		quantize := QuantizeQ8
		if quantizeFast != nil {
			quantize = quantizeFast
		}
		fn := func(lo, hi int) {
			quantize(a.F[lo*cols:hi*cols], a.Q[lo*cols:hi*cols], a.D[lo*nb:hi*nb])
		}
		if run == nil {
			fn(0, n)
		} else {
			run(n, fn)
		}
		a.noMin128 = true
		a.packed8 = few && packActs8 != nil && packActs8(a, ts, run)
		// The packing for the prefill tiles, unless the few-row tiles
		// take every type that would read it.
		a.packed = pack != tensor.F32 && packActs != nil && !(a.packed8 && fewTakeAll(ts, n)) && packActs(a, pack, run)
	}
	if f&ActQ8K != 0 && cols%tensor.QKK == 0 {
		a.Formats |= ActQ8K
		a.KQ = grow(a.KQ, n*cols)
		a.KD = grow(a.KD, n*cols/tensor.QKK)
		a.KS = grow(a.KS, n*cols/16)
		a.KS32 = grow(a.KS32, n*cols/32)
		nb := cols / tensor.QKK
		quantize := QuantizeQ8K
		if quantizeFastK != nil {
			quantize = quantizeFastK
		}
		fn := func(lo, hi int) {
			quantize(a.F[lo*cols:hi*cols], a.KQ[lo*cols:hi*cols], a.KD[lo*nb:hi*nb], a.KS[lo*cols/16:hi*cols/16])
			sums32(a.KS[lo*cols/16:hi*cols/16], a.KS32[lo*cols/32:hi*cols/32])
		}
		if run == nil {
			fn(0, n)
		} else {
			run(n, fn)
		}
		a.packedK = packActsK != nil && packActsK(a, run)
	}
}

// fewTakeAll reports whether packActs8's tiles take every type of ts
// that uses the 32-element block quantisation against n rows.
func fewTakeAll(ts []tensor.Type, n int) bool {
	for _, t := range ts {
		if FormatOf(t) == ActQ8 && (fewTakes == nil || !fewTakes(t, n)) {
			return false
		}
	}
	return true
}

func grow[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n)
}

// roundEven rounds v (|v| < 2^22) to the nearest integer, ties to even, by
// adding and subtracting 1.5 * 2^23.
func roundEven(v float32) float32 { return float32(v+12582912) - 12582912 }

// QuantizeQ8 quantises x (a multiple of 32 long) to blocks of 32 int8 values
// q with one scale d per block, as llama.cpp's quantize_row_q8_0 does:
//
//	amax = max |x_i|; s = amax / 127; id = 1/s (0 when s = 0)
//	q_i = roundEven(float32(x_i * id)), clamped to [-127, 127]
//	d = s rounded to binary16 (block_q8_0's ggml_half), as float32
//
// The quanta use the unrounded s; the products use d.
func QuantizeQ8(x []float32, q []int8, d []float32) {
	for b := 0; b < len(x)/tensor.QK; b++ {
		quantBlock(x[b*tensor.QK:(b+1)*tensor.QK], q[b*tensor.QK:(b+1)*tensor.QK], &d[b])
		d[b] = F16ToF32(F32ToF16(d[b]))
	}
}

// F32Row views little-endian float32 bytes as floats (no copy).
func F32Row(b []byte) []float32 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}

// MatMul computes out[p*ld + r] = row r of w applied to activation row p, for
// rows r in [r0, r1) and every activation row p. ld is the row stride of out
// (usually w.Rows()). The result of each element depends only on its weight
// row and activation row: how rows are split among threads never matters.
func MatMul(w *tensor.Tensor, a *Acts, out []float32, ld, r0, r1 int) {
	if fastMatMul != nil && fastMatMul(w, a, out, ld, r0, r1) {
		return
	}
	MatMulRef(w, a, out, ld, r0, r1)
}

// fastMatMul, when set by an architecture-specific file, computes MatMul
// with identical bits and reports whether it handled the call.
var fastMatMul func(w *tensor.Tensor, a *Acts, out []float32, ld, r0, r1 int) bool

// MatMulRef is the scalar reference of MatMul.
func MatMulRef(w *tensor.Tensor, a *Acts, out []float32, ld, r0, r1 int) {
	cols := a.Cols
	if f := FormatOf(w.Type); a.Formats&f != f {
		panic(fmt.Sprintf("kernels: activations not prepared for %s weights", w.Type)) // a caller bug
	}
	for r := r0; r < r1; r++ {
		row := w.Row(r)
		for p := 0; p < a.N; p++ {
			var v float32
			switch w.Type {
			case tensor.F32:
				v = DotRef(F32Row(row), a.F[p*cols:(p+1)*cols])
			case tensor.F16:
				v = dotF16(row, a.F[p*cols:(p+1)*cols])
			case tensor.BF16:
				v = dotBF16(row, a.F[p*cols:(p+1)*cols])
			case tensor.Q8_0:
				v = dotQ8_0(row, a.Q[p*cols:(p+1)*cols], a.D[p*cols/tensor.QK:])
			case tensor.Q4_0:
				v = dotQ4_0(row, a.Q[p*cols:(p+1)*cols], a.D[p*cols/tensor.QK:])
			case tensor.Q4_1, tensor.Q5_0, tensor.Q5_1:
				v = dotQ5(w.Type, row, a.Q[p*cols:(p+1)*cols], a.D[p*cols/tensor.QK:])
			case tensor.Q4_K, tensor.Q5_K, tensor.Q6_K:
				v = dotK(w.Type, row, a.KQ[p*cols:(p+1)*cols], a.KD[p*cols/tensor.QKK:])
			default:
				panic(fmt.Sprintf("kernels: unsupported weight type %s", w.Type)) // model.Check rejects these first
			}
			out[p*ld+r] = v
		}
	}
}

func dotF16(row []byte, x []float32) float32 {
	var acc [Lanes]float32
	for i := range x {
		w := F16ToF32(binary.LittleEndian.Uint16(row[2*i:]))
		acc[i%Lanes] = acc[i%Lanes] + float32(w*x[i])
	}
	return fold(&acc)
}

func dotBF16(row []byte, x []float32) float32 {
	var acc [Lanes]float32
	for i := range x {
		w := BF16ToF32(binary.LittleEndian.Uint16(row[2*i:]))
		acc[i%Lanes] = acc[i%Lanes] + float32(w*x[i])
	}
	return fold(&acc)
}

// dotQ8_0: per block, an exact integer dot product of the weight and
// activation quanta, then acc = acc + float32(float32(dw*dx) * float32(isum)),
// blocks in increasing order.
func dotQ8_0(row []byte, q []int8, d []float32) float32 {
	var acc float32
	for b := 0; b < len(q)/tensor.QK; b++ {
		blk := row[b*34 : b*34+34]
		dw := F16ToF32(binary.LittleEndian.Uint16(blk))
		qs := q[b*tensor.QK : (b+1)*tensor.QK]
		var isum int32
		for i := 0; i < tensor.QK; i++ {
			isum += int32(int8(blk[2+i])) * int32(qs[i])
		}
		acc = acc + float32(float32(dw*d[b])*float32(isum))
	}
	return acc
}

// dotQ4_0: like dotQ8_0; weight quantum j of a block is the low nibble of
// byte j minus 8 for j < 16 and the high nibble of byte j-16 minus 8 after.
func dotQ4_0(row []byte, q []int8, d []float32) float32 {
	var acc float32
	for b := 0; b < len(q)/tensor.QK; b++ {
		blk := row[b*18 : b*18+18]
		dw := F16ToF32(binary.LittleEndian.Uint16(blk))
		qs := q[b*tensor.QK : (b+1)*tensor.QK]
		var isum int32
		for j := 0; j < tensor.QK/2; j++ {
			lo := int32(blk[2+j]&0x0f) - 8
			hi := int32(blk[2+j]>>4) - 8
			isum += lo*int32(qs[j]) + hi*int32(qs[j+16])
		}
		acc = acc + float32(float32(dw*d[b])*float32(isum))
	}
	return acc
}

// DequantRow writes row r of w as float32 into out (len w.Cols()): exact for
// F32/F16/BF16; for Q8_0 and Q4_0 each value is float32(d * float32(q));
// for the other quantised types see dequantQ5 and dequantK.
func DequantRow(w *tensor.Tensor, r int, out []float32) {
	row := w.Row(r)
	switch w.Type {
	case tensor.F32:
		copy(out, F32Row(row))
	case tensor.F16:
		for i := range out {
			out[i] = F16ToF32(binary.LittleEndian.Uint16(row[2*i:]))
		}
	case tensor.BF16:
		for i := range out {
			out[i] = BF16ToF32(binary.LittleEndian.Uint16(row[2*i:]))
		}
	case tensor.Q8_0:
		for b := 0; b < len(out)/tensor.QK; b++ {
			blk := row[b*34:]
			d := F16ToF32(binary.LittleEndian.Uint16(blk))
			for i := 0; i < tensor.QK; i++ {
				out[b*tensor.QK+i] = float32(d * float32(int8(blk[2+i])))
			}
		}
	case tensor.Q4_0:
		for b := 0; b < len(out)/tensor.QK; b++ {
			blk := row[b*18:]
			d := F16ToF32(binary.LittleEndian.Uint16(blk))
			for j := 0; j < tensor.QK/2; j++ {
				out[b*tensor.QK+j] = float32(d * float32(int32(blk[2+j]&0x0f)-8))
				out[b*tensor.QK+j+16] = float32(d * float32(int32(blk[2+j]>>4)-8))
			}
		}
	case tensor.Q4_1, tensor.Q5_0, tensor.Q5_1:
		dequantQ5(w.Type, row, out)
	case tensor.Q4_K, tensor.Q5_K, tensor.Q6_K:
		dequantK(w.Type, row, out)
	default:
		panic(fmt.Sprintf("kernels: unsupported weight type %s", w.Type))
	}
}
