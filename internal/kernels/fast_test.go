package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/verdictnet/verdict/internal/tensor"
)

// The fast paths are checked against the scalar reference code of this
// package (DotRef, SumRef, MatMulRef and the reference expressions of the
// element-wise kernels), which is the oracle: every result must have the
// same bits. NaNs compare equal to any NaN (payloads are not specified).

func needFast(tb testing.TB) {
	tb.Helper()
	if FastPath == "" {
		tb.Skip("no fast path on this CPU/architecture: the reference code runs everywhere")
	}
}

func same(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
}

// value draws a float32 from a mix that exercises rounding: ordinary values,
// subnormals, signed zeros, large magnitudes (whose products overflow) and,
// if special is set, infinities and NaNs.
func value(r *rand.Rand, special bool) float32 {
	switch k := r.IntN(20); {
	case k == 0:
		return math.Float32frombits(r.Uint32() & 0x807fffff) // subnormal or zero
	case k == 1:
		return float32(math.Copysign(0, float64(r.IntN(2)*2-1)))
	case k == 2:
		return float32(r.NormFloat64() * 1e37)
	case k == 3 && special:
		return math.Float32frombits(r.Uint32()) // anything, NaN and Inf included
	case k == 4:
		return float32(r.NormFloat64() * 1e-20)
	default:
		return float32(r.NormFloat64())
	}
}

func values(r *rand.Rand, n int, special bool) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = value(r, special)
	}
	return v
}

// weights returns a random rows x cols tensor of type t. Scales of quantised
// blocks and halves are random bit patterns part of the time.
func weights(r *rand.Rand, t tensor.Type, rows, cols int, special bool) *tensor.Tensor {
	rb, err := tensor.RowBytes(t, cols)
	if err != nil {
		panic(err)
	}
	w := &tensor.Tensor{Name: "w", Type: t, Dims: []int{cols, rows}, Data: make([]byte, rb*rows)}
	switch t {
	case tensor.F32:
		for i, v := range values(r, rows*cols, special) {
			binary.LittleEndian.PutUint32(w.Data[4*i:], math.Float32bits(v))
		}
	case tensor.F16, tensor.BF16:
		for i, v := range values(r, rows*cols, special) {
			h := F32ToF16(v)
			if t == tensor.BF16 {
				h = F32ToBF16(v)
			}
			if r.IntN(16) == 0 {
				h = uint16(r.Uint32())
				if !special && (h&0x7c00 == 0x7c00 && t == tensor.F16 || h&0x7f80 == 0x7f80 && t == tensor.BF16) {
					h &^= 0x4000
				}
			}
			binary.LittleEndian.PutUint16(w.Data[2*i:], h)
		}
	case tensor.Q4_1, tensor.Q5_0, tensor.Q5_1, tensor.Q4_K, tensor.Q5_K, tensor.Q6_K:
		w.Data = w.Data[:0]
		for i := 0; i < rows; i++ {
			w.Data = append(w.Data, quantRow(r, t, cols, special)...)
		}
	case tensor.Q8_0, tensor.Q4_0:
		bb := t.BlockBytes()
		for i := range w.Data {
			w.Data[i] = byte(r.Uint32())
		}
		for b := 0; b+bb <= len(w.Data); b += bb {
			d := F32ToF16(float32(r.NormFloat64() * 0.01))
			if special && r.IntN(8) == 0 {
				d = uint16(r.Uint32())
			}
			binary.LittleEndian.PutUint16(w.Data[b:], d)
		}
	}
	return w
}

// prefillPaths runs f once with each float32 prefill tile set this CPU has:
// the AVX2 tiles, and the AVX-512F tiles where the CPU has AVX-512F.
func prefillPaths(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	was := setAVX512(false)
	defer setAVX512(was)
	t.Run("avx2", f)
	if hasAVX512 {
		setAVX512(true)
		t.Run("avx512", f)
	}
}

func TestFastMatMulTable(t *testing.T) {
	needFast(t)
	prefillPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		colsF := []int{1, 2, 7, 8, 9, 15, 16, 17, 23, 31, 33, 47, 64, 100, 129, 260, 768}
		colsQ := []int{32, 64, 96, 160, 288, 768}
		colsK := []int{256, 512, 768, 2048}
		for _, typ := range []tensor.Type{tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_1, tensor.Q5_0, tensor.Q5_1, tensor.Q4_K, tensor.Q5_K, tensor.Q6_K} {
			cs := colsF
			if typ.Quantized() {
				cs = colsQ
			}
			if typ.SuperBlock() {
				cs = colsK
			}
			for _, cols := range cs {
				for _, n := range []int{1, 2, 3, 4, 5, 7, 9} {
					for _, special := range []bool{false, true} {
						name := fmt.Sprintf("%s/cols=%d/n=%d/special=%v", typ, cols, n, special)
						t.Run(name, func(t *testing.T) {
							rows := 1 + r.IntN(11)
							checkMatMul(t, r, typ, rows, cols, n, special)
						})
					}
				}
			}
		}
	})
}

func checkMatMul(t *testing.T, r *rand.Rand, typ tensor.Type, rows, cols, n int, special bool) {
	t.Helper()
	w := weights(r, typ, rows, cols, special)
	x := values(r, n*cols, special)
	var a Acts
	a.Prepare(typ, x, n, cols)
	r0 := r.IntN(rows)
	r1 := r0 + 1 + r.IntN(rows-r0)
	ld := rows + r.IntN(3)
	got := make([]float32, n*ld)
	want := make([]float32, n*ld)
	if !fastMatMul(w, &a, got, ld, r0, r1) {
		t.Fatalf("fast path declined %s %dx%d n=%d", typ, rows, cols, n)
	}
	MatMulRef(w, &a, want, ld, r0, r1)
	for i := range got {
		if !same(got[i], want[i]) {
			t.Fatalf("%s rows [%d,%d) of %dx%d, n=%d: out[%d] = %g (%#08x), reference %g (%#08x)",
				typ, r0, r1, rows, cols, n, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

// TestFastQuantAnyInt8 feeds quantised activations outside QuantizeQ8's
// range (-128): the integer block dots are exact for every int8.
func TestFastQuantAnyInt8(t *testing.T) {
	needFast(t)
	r := rand.New(rand.NewPCG(3, 4))
	for _, typ := range []tensor.Type{tensor.Q8_0, tensor.Q4_0} {
		for _, cols := range []int{32, 256} {
			w := weights(r, typ, 5, cols, false)
			if typ == tensor.Q8_0 {
				for i := 2; i < len(w.Data); i += 34 { // every weight quantum -128
					for j := 0; j < 32; j++ {
						w.Data[i+j] = 0x80
					}
				}
			}
			a := Acts{N: 2, Cols: cols, Formats: ActQ8, F: make([]float32, 2*cols), Q: make([]int8, 2*cols), D: make([]float32, 2*cols/32)}
			for i := range a.Q {
				a.Q[i] = -128
			}
			for i := range a.D {
				a.D[i] = value(r, false)
			}
			got, want := make([]float32, 10), make([]float32, 10)
			fastMatMul(w, &a, got, 5, 0, 5)
			MatMulRef(w, &a, want, 5, 0, 5)
			for i := range got {
				if !same(got[i], want[i]) {
					t.Fatalf("%s cols %d: out[%d] = %#08x, reference %#08x", typ, cols, i, math.Float32bits(got[i]), math.Float32bits(want[i]))
				}
			}
		}
	}
}

// floatsFrom reads little-endian float32 bit patterns from b.
func floatsFrom(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func FuzzDot(f *testing.F) {
	f.Add([]byte{0, 0, 128, 63, 0, 0, 0, 64}, uint8(1))
	f.Add(make([]byte, 4*33), uint8(0))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 128, 127, 255, 255, 127, 127, 0, 0, 0, 128}, uint8(3))
	f.Add(make([]byte, 4*100), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, seed uint8) {
		needFast(t)
		v := floatsFrom(data)
		n := len(v) / 2
		a, b := v[:n], v[n:2*n]
		if seed&1 == 1 { // mix in random values so that short inputs still vary
			r := rand.New(rand.NewPCG(uint64(seed), uint64(len(data))))
			for i := range a {
				if r.IntN(2) == 0 {
					a[i] = value(r, true)
				}
			}
		}
		if got, want := Dot(a, b), DotRef(a, b); !same(got, want) {
			t.Fatalf("Dot of %d: %#08x, reference %#08x", n, math.Float32bits(got), math.Float32bits(want))
		}
		if got, want := Sum(v), SumRef(v); !same(got, want) {
			t.Fatalf("Sum of %d: %#08x, reference %#08x", len(v), math.Float32bits(got), math.Float32bits(want))
		}
		// Element-wise kernels against their reference expressions.
		if n == 0 {
			return
		}
		s := a[0]
		out, ref := append([]float32(nil), b...), append([]float32(nil), b...)
		AxpyInto(out, s, a)
		for i := range ref {
			ref[i] = ref[i] + float32(s*a[i])
		}
		compareSlices(t, "AxpyInto", out, ref)
		out, ref = append(out[:0], b...), append(ref[:0], b...)
		Add(out, a)
		for i := range ref {
			ref[i] = ref[i] + a[i]
		}
		compareSlices(t, "Add", out, ref)
		scaleMul(out, a, b, s)
		for i := range ref {
			ref[i] = float32(b[i] * float32(s*a[i]))
		}
		compareSlices(t, "scaleMul", out, ref)
	})
}

func compareSlices(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range got {
		if !same(got[i], want[i]) {
			t.Fatalf("%s of %d: [%d] = %#08x, reference %#08x", what, len(got), i, math.Float32bits(got[i]), math.Float32bits(want[i]))
		}
	}
}

func FuzzMatMul(f *testing.F) {
	f.Add(uint64(1), uint8(0), uint16(17), uint8(3), uint8(5), true)
	f.Add(uint64(2), uint8(1), uint16(33), uint8(1), uint8(4), false)
	f.Add(uint64(3), uint8(2), uint16(64), uint8(4), uint8(2), true)
	f.Add(uint64(4), uint8(3), uint16(3), uint8(2), uint8(9), true)
	f.Add(uint64(5), uint8(4), uint16(5), uint8(5), uint8(3), false)
	types := []tensor.Type{tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q4_0}
	f.Fuzz(func(t *testing.T, seed uint64, typ uint8, cols uint16, n, rows uint8, special bool) {
		needFast(t)
		tt := types[int(typ)%len(types)]
		c := 1 + int(cols)%300
		if tt == tensor.Q8_0 || tt == tensor.Q4_0 {
			c = 32 * (1 + int(cols)%10)
		}
		run := func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, uint64(typ)))
			checkMatMul(t, r, tt, 1+int(rows)%12, c, 1+int(n)%12, special)
		}
		was := setAVX512(false)
		defer setAVX512(was)
		run(t)
		if hasAVX512 {
			setAVX512(true)
			run(t)
		}
	})
}

func TestUseFast(t *testing.T) {
	needFast(t)
	a := []float32{1, 2, 3}
	was := UseFast(false)
	if FastPath != "" || !was {
		t.Fatalf("UseFast(false): FastPath %q, was %v", FastPath, was)
	}
	ref := Dot(a, a)
	UseFast(true)
	if FastPath == "" || Dot(a, a) != ref || ref != 14 {
		t.Fatalf("UseFast(true): FastPath %q, Dot %g, scalar %g", FastPath, Dot(a, a), ref)
	}
}

// checkAttention compares DotMany and WeightedSum with the reference loops
// (DotRef per key; out zeroed, then the AxpyInto expression per position).
func checkAttention(t *testing.T, r *rand.Rand, hd, n, stride, off int, special bool) {
	t.Helper()
	keys := values(r, max(0, (n-1)*stride+off+hd), special)
	vals := values(r, len(keys), special)
	q := values(r, hd, special)
	got, want := make([]float32, n), make([]float32, n)
	DotMany(got, q, keys, stride, off)
	for i := range want {
		want[i] = DotRef(q, keys[i*stride+off:i*stride+off+hd])
	}
	compareSlices(t, fmt.Sprintf("DotMany hd=%d n=%d stride=%d off=%d", hd, n, stride, off), got, want)
	a := values(r, n, special)
	out, ref := values(r, hd, true), make([]float32, hd)
	WeightedSum(out, a, vals, stride, off)
	for i := 0; i < n; i++ {
		v := vals[i*stride+off:]
		for j := range ref {
			ref[j] = ref[j] + float32(a[i]*v[j])
		}
	}
	compareSlices(t, fmt.Sprintf("WeightedSum hd=%d n=%d stride=%d off=%d", hd, n, stride, off), out, ref)
}

// attnPaths runs f with the AVX2 attention kernels and, where the CPU has
// AVX-512F, with the AVX-512 ones (dotK16, wsumZ).
func attnPaths(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	was := setAVX512(false)
	defer setAVX512(was)
	f(t)
	if hasAVX512 && hasFast {
		setAVX512(true)
		if !useAttnZ {
			t.Fatal("AVX-512 on, but the attention kernels do not use it")
		}
		f(t)
	}
}

func TestAttentionKernels(t *testing.T) {
	attnPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		for _, hd := range []int{1, 7, 8, 15, 16, 17, 33, 48, 64, 100, 128, 200} {
			for _, n := range []int{0, 1, 3, 4, 5, 9, 15, 16, 17, 32, 47, 64, 100} {
				stride := hd + r.IntN(3)*hd
				checkAttention(t, r, hd, n, stride, r.IntN(stride-hd+1), n%2 == 1)
			}
		}
	})
}

// TestDotManyExtremes: keys of huge, tiny, signed-zero, infinite and NaN
// values in blocks of 16 and their tails, every key of a block different.
func TestDotManyExtremes(t *testing.T) {
	attnPaths(t, func(t *testing.T) {
		specials := []float32{0, float32(math.Copysign(0, -1)), 1e38, -1e38, 1e-45, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 3.4028235e38, 1}
		r := rand.New(rand.NewPCG(8, 9))
		for _, hd := range []int{16, 17, 64} {
			for _, n := range []int{16, 33} {
				keys := make([]float32, n*hd)
				for i := range keys {
					keys[i] = specials[r.IntN(len(specials))]
				}
				q := make([]float32, hd)
				for i := range q {
					q[i] = specials[r.IntN(len(specials))]
				}
				got := make([]float32, n)
				DotMany(got, q, keys, hd, 0)
				for k := range got {
					if want := DotRef(q, keys[k*hd:(k+1)*hd]); !same(got[k], want) {
						t.Fatalf("hd %d, key %d of %d: %#08x, reference %#08x", hd, k, n, math.Float32bits(got[k]), math.Float32bits(want))
					}
				}
			}
		}
	})
}

func FuzzAttention(f *testing.F) {
	f.Add(uint64(1), uint8(64), uint8(9), uint8(2), true)
	f.Add(uint64(2), uint8(7), uint8(0), uint8(0), false)
	f.Add(uint64(3), uint8(200), uint8(33), uint8(1), true)
	f.Add(uint64(4), uint8(63), uint8(48), uint8(0), true)
	f.Fuzz(func(t *testing.T, seed uint64, hd, n, extra uint8, special bool) {
		attnPaths(t, func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			h := 1 + int(hd)
			stride := h * (1 + int(extra)%3)
			checkAttention(t, r, h, int(n)%70, stride, r.IntN(stride-h+1), special)
		})
	})
}

// checkWeightedSumGroup compares WeightedSumGroup with its reference loop,
// continuing from random sums (NaN and Inf among them when special).
func checkWeightedSumGroup(t *testing.T, r *rand.Rand, group, hd, n, aStride, stride int, special bool) {
	t.Helper()
	vals := values(r, max(0, (n-1)*stride+hd), special)
	a := values(r, max(0, (group-1)*aStride+n), special)
	out := values(r, group*hd, special)
	ref := append([]float32(nil), out...)
	WeightedSumGroup(out, group, a, aStride, n, vals, stride)
	WeightedSumGroupRef(ref, group, a, aStride, n, vals, stride)
	compareSlices(t, fmt.Sprintf("WeightedSumGroup group=%d hd=%d n=%d aStride=%d stride=%d", group, hd, n, aStride, stride), out, ref)
}

func TestWeightedSumGroup(t *testing.T) {
	attnPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(10, 11))
		for _, group := range []int{1, 2, 3, 4, 5, 6, 7, 8, 13} {
			for _, hd := range []int{1, 7, 8, 15, 16, 17, 33, 64, 100, 128, 200} {
				for _, n := range []int{0, 1, 3, 16, 17, 40} {
					checkWeightedSumGroup(t, r, group, hd, n, n+r.IntN(3), hd+r.IntN(2)*hd, n%2 == 1)
				}
			}
		}
	})
}

func FuzzWeightedSumGroup(f *testing.F) {
	f.Add(uint64(1), uint8(4), uint8(64), uint8(9), uint8(2), true)
	f.Add(uint64(2), uint8(1), uint8(7), uint8(0), uint8(0), false)
	f.Add(uint64(3), uint8(7), uint8(200), uint8(33), uint8(1), true)
	f.Fuzz(func(t *testing.T, seed uint64, group, hd, n, extra uint8, special bool) {
		attnPaths(t, func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 12))
			g, h, m := 1+int(group)%12, 1+int(hd), int(n)%70
			checkWeightedSumGroup(t, r, g, h, m, m+int(extra)%5, h*(1+int(extra)%3), special)
		})
	})
}

func TestWeightedSumGroupBounds(t *testing.T) {
	for _, tc := range []struct{ out, group, a, aStride, n, v, stride int }{
		{8, 3, 10, 4, 2, 16, 4}, // 8 outputs in 3 heads
		{8, 2, 5, 3, 3, 12, 4},  // head 1's weights pass the end
		{8, 2, 6, 3, 3, 11, 4},  // the last value row passes the end
		{8, 2, 6, -1, 3, 12, 4}, // negative weight stride
		{8, 0, 6, 3, 3, 12, 4},  // no heads
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("WeightedSumGroup %+v: no panic", tc)
				}
			}()
			WeightedSumGroup(make([]float32, tc.out), tc.group, make([]float32, tc.a), tc.aStride, tc.n, make([]float32, tc.v), tc.stride)
		}()
	}
}

func TestAttentionBounds(t *testing.T) {
	for _, tc := range []struct{ l, n, stride, off, hd int }{{10, 2, 8, 0, 4}, {8, 1, 4, 5, 4}, {100, 3, -1, 0, 4}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("DotMany %+v: no panic", tc)
				}
			}()
			DotMany(make([]float32, tc.n), make([]float32, tc.hd), make([]float32, tc.l), tc.stride, tc.off)
		}()
	}
	DotMany(make([]float32, 5), make([]float32, 4), make([]float32, 4), 0, 0) // stride 0: one key, fine
}
