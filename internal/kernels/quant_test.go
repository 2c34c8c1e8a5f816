package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/verdictnet/verdict/internal/tensor"
)

// newQuantTypes are the weight types beyond Q8_0 and Q4_0.
var newQuantTypes = []tensor.Type{tensor.Q4_1, tensor.Q5_0, tensor.Q5_1, tensor.Q4_K, tensor.Q5_K, tensor.Q6_K}

// ggmlBlock is one block decoded the way GGML's dequantize_row_* functions
// (ggml-quants.c) walk it, written independently of decodeK/blockQ5: q[e]
// is the quantum of element e, scale[e] and min[e] its (sub-)block scale
// and min as integers (1 and 0 where the type has none), d and m the f16
// block scales (m: the Q4_1/Q5_1 offset or the K dmin).
type ggmlBlock struct {
	q, scale, min []int32
	d, m          float32
}

func ggmlDecode(t tensor.Type, blk []byte) ggmlBlock {
	n := t.BlockSize()
	g := ggmlBlock{q: make([]int32, n), scale: make([]int32, n), min: make([]int32, n)}
	for i := range g.scale {
		g.scale[i] = 1
	}
	h := func(off int) float32 { return F16ToF32(binary.LittleEndian.Uint16(blk[off:])) }
	switch t {
	case tensor.Q4_1, tensor.Q5_0, tensor.Q5_1:
		// block_q4_1 {d, m, qs[16]}; block_q5_0 {d, qh[4], qs[16]};
		// block_q5_1 {d, m, qh[4], qs[16]}.
		var qh uint32
		qs := blk[4:]
		g.d = h(0)
		switch t {
		case tensor.Q4_1:
			g.m = h(2)
		case tensor.Q5_0:
			qh, qs = binary.LittleEndian.Uint32(blk[2:]), blk[6:]
		case tensor.Q5_1:
			g.m = h(2)
			qh, qs = binary.LittleEndian.Uint32(blk[4:]), blk[8:]
		}
		for j := 0; j < 16; j++ {
			xh0 := ((qh >> j) << 4) & 0x10
			xh1 := (qh >> (j + 12)) & 0x10
			x0 := int32(uint32(qs[j]&0x0f) | xh0)
			x1 := int32(uint32(qs[j]>>4) | xh1)
			if t == tensor.Q5_0 {
				x0, x1 = x0-16, x1-16
			}
			g.q[j], g.q[j+16] = x0, x1
		}
	case tensor.Q4_K, tensor.Q5_K:
		g.d, g.m = h(0), h(2)
		sc := blk[4:16]
		scaleMin := func(j int) (int32, int32) { // get_scale_min_k4
			if j < 4 {
				return int32(sc[j] & 63), int32(sc[j+4] & 63)
			}
			return int32((sc[j+4] & 0xF) | ((sc[j-4] >> 6) << 4)), int32((sc[j+4] >> 4) | ((sc[j] >> 6) << 4))
		}
		ql, qh := blk[16:], []byte(nil)
		if t == tensor.Q5_K {
			qh, ql = blk[16:48], blk[48:]
		}
		y, is := 0, 0
		u1, u2 := byte(1), byte(2)
		for j := 0; j < 256; j += 64 {
			s1, m1 := scaleMin(is)
			s2, m2 := scaleMin(is + 1)
			for l := 0; l < 32; l++ {
				v := int32(ql[l] & 0xF)
				if qh != nil && qh[l]&u1 != 0 {
					v += 16
				}
				g.q[y], g.scale[y], g.min[y] = v, s1, m1
				y++
			}
			for l := 0; l < 32; l++ {
				v := int32(ql[l] >> 4)
				if qh != nil && qh[l]&u2 != 0 {
					v += 16
				}
				g.q[y], g.scale[y], g.min[y] = v, s2, m2
				y++
			}
			ql = ql[32:]
			is += 2
			u1 <<= 2
			u2 <<= 2
		}
	case tensor.Q6_K:
		// block_q6_K {ql[128], qh[64], scales[16], d}.
		g.d = h(208)
		ql, qh, sc := blk[0:128], blk[128:192], blk[192:208]
		y := 0
		for n := 0; n < 256; n += 128 {
			for l := 0; l < 32; l++ {
				is := l / 16
				q1 := int32(int8((ql[l+0]&0xF)|(((qh[l]>>0)&3)<<4))) - 32
				q2 := int32(int8((ql[l+32]&0xF)|(((qh[l]>>2)&3)<<4))) - 32
				q3 := int32(int8((ql[l+0]>>4)|(((qh[l]>>4)&3)<<4))) - 32
				q4 := int32(int8((ql[l+32]>>4)|(((qh[l]>>6)&3)<<4))) - 32
				g.q[y+l+0], g.scale[y+l+0] = q1, int32(int8(sc[is+0]))
				g.q[y+l+32], g.scale[y+l+32] = q2, int32(int8(sc[is+2]))
				g.q[y+l+64], g.scale[y+l+64] = q3, int32(int8(sc[is+4]))
				g.q[y+l+96], g.scale[y+l+96] = q4, int32(int8(sc[is+6]))
			}
			y += 128
			ql, qh, sc = ql[64:], qh[32:], sc[8:]
		}
	}
	return g
}

// ggmlValue is the f32 value of element e (the GGML definition, every
// product rounded, as docs/determinism.md section 3 states).
func (g ggmlBlock) value(t tensor.Type, e int) float32 {
	switch t {
	case tensor.Q5_0:
		return float32(float32(g.q[e]) * g.d)
	case tensor.Q4_1, tensor.Q5_1:
		return float32(float32(g.q[e])*g.d) + g.m
	case tensor.Q6_K:
		return float32(float32(g.d*float32(g.scale[e])) * float32(g.q[e]))
	}
	d1 := float32(g.d * float32(g.scale[e]))
	m1 := float32(g.m * float32(g.min[e]))
	return float32(d1*float32(g.q[e])) - m1
}

// quantRow returns one row of cols elements of type t: random bytes with
// f16 scales drawn from a plausible range, or (special) random bit patterns,
// NaN and Inf included, some of the time.
func quantRow(r *rand.Rand, t tensor.Type, cols int, special bool) []byte {
	rb, err := tensor.RowBytes(t, cols)
	if err != nil {
		panic(err)
	}
	row := make([]byte, rb)
	for i := range row {
		row[i] = byte(r.Uint32())
	}
	bb := t.BlockBytes()
	for b := 0; b+bb <= len(row); b += bb {
		for _, off := range scaleOffsets(t) {
			d := F32ToF16(float32(r.NormFloat64() * 0.01))
			if special && r.IntN(8) == 0 {
				d = uint16(r.Uint32())
			}
			binary.LittleEndian.PutUint16(row[b+off:], d)
		}
	}
	return row
}

// scaleOffsets are the byte offsets of the f16 scales in a block of t.
func scaleOffsets(t tensor.Type) []int {
	switch t {
	case tensor.Q8_0, tensor.Q4_0, tensor.Q5_0:
		return []int{0}
	case tensor.Q4_1, tensor.Q5_1, tensor.Q4_K, tensor.Q5_K:
		return []int{0, 2}
	case tensor.Q6_K:
		return []int{208}
	}
	return nil
}

// TestDequantGGML checks DequantRow against the GGML definition of every
// new type, bit for bit, on random blocks.
func TestDequantGGML(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 1))
	for _, typ := range newQuantTypes {
		for _, special := range []bool{false, true} {
			cols := 2 * typ.BlockSize()
			w := &tensor.Tensor{Name: "w", Type: typ, Dims: []int{cols, 3}}
			for i := 0; i < 3; i++ {
				w.Data = append(w.Data, quantRow(r, typ, cols, special)...)
			}
			out := make([]float32, cols)
			for row := 0; row < 3; row++ {
				DequantRow(w, row, out)
				bb := typ.BlockBytes()
				for b := 0; b < cols/typ.BlockSize(); b++ {
					g := ggmlDecode(typ, w.Row(row)[b*bb:(b+1)*bb])
					for e := 0; e < typ.BlockSize(); e++ {
						want := g.value(typ, e)
						if got := out[b*typ.BlockSize()+e]; !same(got, want) {
							t.Fatalf("%s row %d block %d element %d: %g, GGML %g", typ, row, b, e, got, want)
						}
					}
				}
			}
		}
	}
}

// specDot is section 4.2 of docs/determinism.md for the new types, written
// from the GGML decoding above: per block, exact integer sums by
// (sub-)block, then the specified float sequence.
func specDot(typ tensor.Type, row []byte, q []int8, d []float32) float32 {
	bs, bb := typ.BlockSize(), typ.BlockBytes()
	sub := map[tensor.Type]int{tensor.Q4_K: 32, tensor.Q5_K: 32, tensor.Q6_K: 16}[typ]
	var acc float32
	for b := 0; b < len(q)/bs; b++ {
		g := ggmlDecode(typ, row[b*bb:(b+1)*bb])
		qx := q[b*bs : (b+1)*bs]
		var isum, msum int64
		if sub == 0 {
			var xsum int64
			for j := range qx {
				isum += int64(g.q[j]) * int64(qx[j])
				xsum += int64(qx[j])
			}
			v := float32(float32(g.d*d[b]) * float32(isum))
			if typ != tensor.Q5_0 {
				v = v + float32(float32(g.m*d[b])*float32(xsum))
			}
			acc = acc + v
			continue
		}
		for s := 0; s < bs; s += sub {
			var dot, xs int64
			for j := s; j < s+sub; j++ {
				dot += int64(g.q[j]) * int64(qx[j])
				xs += int64(qx[j])
			}
			isum += int64(g.scale[s]) * dot
			msum += int64(g.min[s]) * xs
		}
		if isum != int64(int32(isum)) || msum != int64(int32(msum)) {
			panic("int32 overflow")
		}
		v := float32(float32(g.d*d[b]) * float32(isum))
		if typ != tensor.Q6_K {
			v = v - float32(float32(g.m*d[b])*float32(msum))
		}
		acc = acc + v
	}
	return acc
}

// actsOf returns n prepared activation rows of cols random values.
func actsOf(r *rand.Rand, typ tensor.Type, n, cols int, special bool) *Acts {
	a := new(Acts)
	a.Prepare(typ, values(r, n*cols, special), n, cols)
	return a
}

func quantTensor(r *rand.Rand, typ tensor.Type, rows, cols int, special bool) *tensor.Tensor {
	w := &tensor.Tensor{Name: "w", Type: typ, Dims: []int{cols, rows}}
	for i := 0; i < rows; i++ {
		w.Data = append(w.Data, quantRow(r, typ, cols, special)...)
	}
	return w
}

// TestMatMulSpec checks MatMulRef (and MatMul, with whatever fast path this
// CPU has) against specDot bit for bit, including NaN and Inf scales and
// extreme activations.
func TestMatMulSpec(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 2))
	for _, typ := range newQuantTypes {
		for _, nb := range []int{1, 2, 5} {
			for _, special := range []bool{false, true} {
				cols, rows, n := nb*typ.BlockSize(), 1+r.IntN(6), 1+r.IntN(5)
				w := quantTensor(r, typ, rows, cols, special)
				a := actsOf(r, typ, n, cols, special)
				ref, got := make([]float32, n*rows), make([]float32, n*rows)
				MatMulRef(w, a, ref, rows, 0, rows)
				MatMul(w, a, got, rows, 0, rows)
				q, d := a.Q, a.D
				if typ.SuperBlock() {
					q, d = a.KQ, a.KD
				}
				for p := 0; p < n; p++ {
					for i := 0; i < rows; i++ {
						want := specDot(typ, w.Row(i), q[p*cols:(p+1)*cols], d[p*cols/typ.BlockSize():])
						if !same(ref[p*rows+i], want) {
							t.Fatalf("%s cols %d special %v: MatMulRef row %d act %d = %g, spec %g", typ, cols, special, i, p, ref[p*rows+i], want)
						}
						if !same(got[p*rows+i], want) {
							t.Fatalf("%s cols %d special %v: MatMul (%s) row %d act %d = %g, spec %g", typ, cols, special, FastPath, i, p, got[p*rows+i], want)
						}
					}
				}
			}
		}
	}
}

// TestMatMulFloat64 compares the quantised products with a plain float64
// dot product of the dequantised weights and the float activations: the
// difference must stay within the activation quantisation error (at most
// half a quantum, dx/2, per element) plus float32 rounding.
func TestMatMulFloat64(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 3))
	for _, typ := range newQuantTypes {
		cols, rows, n := 4*tensor.QKK, 8, 3
		w := quantTensor(r, typ, rows, cols, false)
		x := make([]float32, n*cols)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		var a Acts
		a.Prepare(typ, x, n, cols)
		got := make([]float32, n*rows)
		MatMul(w, &a, got, rows, 0, rows)
		wf := make([]float32, cols)
		bs := tensor.QK
		if typ.SuperBlock() {
			bs = tensor.QKK
		}
		for i := 0; i < rows; i++ {
			DequantRow(w, i, wf)
			for p := 0; p < n; p++ {
				xs := x[p*cols : (p+1)*cols]
				var want, bound, mag float64
				for b := 0; b < cols/bs; b++ {
					var amax float64
					for _, v := range xs[b*bs : (b+1)*bs] {
						amax = math.Max(amax, math.Abs(float64(v)))
					}
					for j := b * bs; j < (b+1)*bs; j++ {
						want += float64(wf[j]) * float64(xs[j])
						bound += math.Abs(float64(wf[j])) * amax / 127 / 2
						mag += math.Abs(float64(wf[j]) * float64(xs[j]))
					}
				}
				bound = 1.001*bound + 1e-5*mag
				if diff := math.Abs(float64(got[p*rows+i]) - want); diff > bound {
					t.Errorf("%s row %d act %d: %g, float64 %g (difference %g > bound %g)", typ, i, p, got[p*rows+i], want, diff, bound)
				}
			}
		}
	}
}

// TestQuantizeQ8K checks the super-block activation quantisation against
// QuantizeQ8's rule and the sums of 16.
func TestQuantizeQ8K(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 4))
	x := values(r, 3*tensor.QKK, false)
	q, d, s := make([]int8, len(x)), make([]float32, 3), make([]int16, len(x)/16)
	QuantizeQ8K(x, q, d, s)
	for b := 0; b < 3; b++ {
		var amax float32
		for _, v := range x[b*256 : (b+1)*256] {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		if d[b] != amax/127 {
			t.Fatalf("block %d: d = %g, want amax/127 = %g", b, d[b], amax/127)
		}
		for j := b * 256; j < (b+1)*256; j++ {
			want := float32(math.RoundToEven(float64(float32(x[j] * (1 / d[b])))))
			want = max(-127, min(127, want))
			if float32(q[j]) != want {
				t.Fatalf("q[%d] = %d, want %g", j, q[j], want)
			}
		}
	}
	for k := range s {
		var sum int
		for _, v := range q[16*k : 16*k+16] {
			sum += int(v)
		}
		if int(s[k]) != sum {
			t.Fatalf("s[%d] = %d, want %d", k, s[k], sum)
		}
	}
}

// TestQuantizeNaNQuanta: where x ⊗ id is NaN the quantum is 0
// (docs/determinism.md 4.2): a block whose largest value is tiny enough
// that 1/d overflows (0 ⊗ ∞), and NaN inputs. Go leaves int8(NaN) to the
// platform (-1 on riscv64, where this test failed: qemu-riscv64); the
// kernels give 0 on every one, Q8 and Q8_K,
// and quantQ8Z (AVX-512) as the Go code.
func TestQuantizeNaNQuanta(t *testing.T) {
	nan := float32(math.NaN())
	for _, tc := range []struct {
		name string
		x0   []float32
		want []int8
	}{
		{"1/d overflows", []float32{1e-38, 0, -1e-45, 1e-45}, []int8{127, 0, -127, 127}},
		{"NaN inputs", []float32{1, nan, -1, nan}, []int8{127, 0, -127, 0}},
	} {
		x := make([]float32, tensor.QKK)
		copy(x, tc.x0)
		q, d := make([]int8, tensor.QK), make([]float32, 1)
		QuantizeQ8(x[:tensor.QK], q, d)
		qk, dk, sk := make([]int8, tensor.QKK), make([]float32, 1), make([]int16, tensor.QKK/16)
		QuantizeQ8K(x, qk, dk, sk)
		for i, w := range tc.want {
			if q[i] != w || qk[i] != w {
				t.Errorf("%s: quantum %d: Q8 %d, Q8_K %d, want %d", tc.name, i, q[i], qk[i], w)
			}
		}
	}
}

// TestPrepareTypes: one Acts prepared for several weight types holds every
// quantisation they need, identical to preparing for each alone.
func TestPrepareTypes(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 5))
	cols, n := 512, 3
	x := values(r, n*cols, false)
	var both, q8, q8k Acts
	both.PrepareTypes([]tensor.Type{tensor.Q5_0, tensor.Q6_K, tensor.F16}, x, n, cols, nil)
	q8.Prepare(tensor.Q5_0, x, n, cols)
	q8k.Prepare(tensor.Q4_K, x, n, cols)
	if both.Formats != ActQ8|ActQ8K {
		t.Fatalf("formats %b", both.Formats)
	}
	if fmt.Sprint(both.Q, both.D) != fmt.Sprint(q8.Q, q8.D) || fmt.Sprint(both.KQ, both.KD, both.KS, both.KS32) != fmt.Sprint(q8k.KQ, q8k.KD, q8k.KS, q8k.KS32) {
		t.Fatal("PrepareTypes differs from Prepare per type")
	}
	for _, typ := range []tensor.Type{tensor.Q5_0, tensor.Q6_K} {
		w := quantTensor(r, typ, 4, cols, false)
		a, b := make([]float32, n*4), make([]float32, n*4)
		MatMul(w, &both, a, 4, 0, 4)
		single := &q8
		if typ.SuperBlock() {
			single = &q8k
		}
		MatMul(w, single, b, 4, 0, 4)
		compareSlices(t, typ.String(), a, b)
	}
}

// FuzzQuantBlocks runs arbitrary bytes as weight blocks of every new type
// through DequantRow and MatMul: no panic, and MatMul (fast path or not)
// equals the specification.
func FuzzQuantBlocks(f *testing.F) {
	f.Add([]byte{0}, []byte{1, 2, 3})
	f.Add([]byte{0xff, 0x7c, 0x00, 0x7e, 0x01, 0xfc}, []byte("\x00\x00\x80\x7f\x00\x00\xc0\x7f"))
	f.Fuzz(func(t *testing.T, wb, xb []byte) {
		for _, typ := range newQuantTypes {
			cols := typ.BlockSize() * (1 + len(wb)%2)
			rb, _ := tensor.RowBytes(typ, cols)
			w := &tensor.Tensor{Name: "w", Type: typ, Dims: []int{cols, 2}, Data: make([]byte, 2*rb)}
			for i := range w.Data {
				if len(wb) > 0 {
					w.Data[i] = wb[i%len(wb)] ^ byte(i/len(wb))
				}
			}
			x := make([]float32, cols)
			xf := floatsFrom(xb)
			for i := range x {
				if len(xf) > 0 {
					x[i] = xf[i%len(xf)]
				}
			}
			out := make([]float32, cols)
			DequantRow(w, 1, out)
			var a Acts
			a.Prepare(typ, x, 1, cols)
			got := make([]float32, 2)
			MatMul(w, &a, got, 2, 0, 2)
			q, d := a.Q, a.D
			if typ.SuperBlock() {
				q, d = a.KQ, a.KD
			}
			for i := 0; i < 2; i++ {
				if want := specDot(typ, w.Row(i), q, d); !same(got[i], want) {
					t.Fatalf("%s row %d: %g, spec %g", typ, i, got[i], want)
				}
			}
		}
	})
}

// TestKAnyInt8 feeds the K kernels quantised activations that QuantizeQ8K
// never makes (-128, all extremes) and extreme scales: MatMul (fast path or
// not) equals the specification for any int8, with 1 to 9 activation rows
// (every tile width).
func TestKAnyInt8(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 6))
	for _, typ := range []tensor.Type{tensor.Q4_K, tensor.Q5_K, tensor.Q6_K} {
		for n := 1; n <= 9; n++ {
			cols, rows := 512, 3
			w := quantTensor(r, typ, rows, cols, true)
			a := &Acts{N: n, Cols: cols, F: make([]float32, n*cols), Formats: ActQ8K,
				KQ: make([]int8, n*cols), KD: make([]float32, n*cols/256), KS: make([]int16, n*cols/16), KS32: make([]int16, n*cols/32)}
			for i := range a.KQ {
				a.KQ[i] = []int8{-128, 127, -127, 0, int8(r.Uint32())}[r.IntN(5)]
			}
			sums16(a.KQ, a.KS)
			sums32(a.KS, a.KS32)
			for i := range a.KD {
				a.KD[i] = value(r, true)
			}
			got := make([]float32, n*rows)
			MatMul(w, a, got, rows, 0, rows)
			for p := 0; p < n; p++ {
				for i := 0; i < rows; i++ {
					want := specDot(typ, w.Row(i), a.KQ[p*cols:(p+1)*cols], a.KD[p*2:])
					if !same(got[p*rows+i], want) {
						t.Fatalf("%s n=%d row %d act %d: %g (%#08x), spec %g (%#08x)", typ, n, i, p,
							got[p*rows+i], math.Float32bits(got[p*rows+i]), want, math.Float32bits(want))
					}
				}
			}
		}
	}
}

// TestQ5AnyInt8 is TestKAnyInt8 for Q4_1, Q5_0 and Q5_1 against Q8
// activations, with block counts that leave every remainder of four.
func TestQ5AnyInt8(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 8))
	for _, typ := range []tensor.Type{tensor.Q4_1, tensor.Q5_0, tensor.Q5_1} {
		for n := 1; n <= 6; n++ {
			for _, nb := range []int{1, 3, 4, 6, 9} {
				cols, rows := 32*nb, 3
				w := quantTensor(r, typ, rows, cols, true)
				a := &Acts{N: n, Cols: cols, F: make([]float32, n*cols), Formats: ActQ8,
					Q: make([]int8, n*cols), D: make([]float32, n*nb)}
				for i := range a.Q {
					a.Q[i] = []int8{-128, 127, -127, 0, int8(r.Uint32())}[r.IntN(5)]
				}
				for i := range a.D {
					a.D[i] = value(r, true)
				}
				got := make([]float32, n*rows)
				MatMul(w, a, got, rows, 0, rows)
				for p := 0; p < n; p++ {
					for i := 0; i < rows; i++ {
						want := specDot(typ, w.Row(i), a.Q[p*cols:(p+1)*cols], a.D[p*nb:])
						if !same(got[p*rows+i], want) {
							t.Fatalf("%s n=%d nb=%d row %d act %d: %g (%#08x), spec %g (%#08x)", typ, n, nb, i, p,
								got[p*rows+i], math.Float32bits(got[p*rows+i]), want, math.Float32bits(want))
						}
					}
				}
			}
		}
	}
}
