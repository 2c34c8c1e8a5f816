package kernels

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// halfInputs returns float32 bit patterns that probe binary16 rounding:
// every binary16 value, the midpoints between neighbours and one unit in
// the last place either side of them, a sweep over all float32 patterns,
// and NaNs with payloads, infinities, the largest finite values and the
// subnormal range.
func halfInputs() []float32 {
	var bits []uint32
	for h := range 1 << 16 {
		v := math.Float32bits(F16ToF32(uint16(h)))
		bits = append(bits, v)
		if h&0x7c00 != 0x7c00 && h&0x7fff != 0x7bff { // a finite next value of the same sign
			mid := v + (math.Float32bits(F16ToF32(uint16(h+1)))-v)/2
			bits = append(bits, mid-1, mid, mid+1)
		}
	}
	for b := uint64(0); b < 1<<32; b += 65521 {
		bits = append(bits, uint32(b))
	}
	bits = append(bits, 0x7f800001, 0xff800001, 0x7fbfffff, 0x7fc00001, 0xffffffff, 0x7f800000, 0xff800000,
		0x477fe000, 0x477fefff, 0x477ff000, 0x477ff001, 0x33000000, 0x33000001, 0x32ffffff, 0xb3000000, 0x00000001)
	x := make([]float32, len(bits))
	for i, b := range bits {
		x[i] = math.Float32frombits(b)
	}
	return x
}

// TestRoundF16 compares RoundF16 and F32sToF16 with their scalar
// definitions, bit for bit, on halfInputs at every offset modulo 8 (the
// fast path's tail), and checks the definitions on known roundings.
func TestRoundF16(t *testing.T) {
	in := halfInputs()
	for _, off := range []int{0, 3} {
		x := in[off:]
		got, want := append([]float32(nil), x...), append([]float32(nil), x...)
		RoundF16(got)
		RoundF16Ref(want)
		h := make([]uint16, len(x))
		F32sToF16(h, x)
		for i := range x {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("RoundF16(%#08x) = %#08x, reference %#08x", math.Float32bits(x[i]), math.Float32bits(got[i]), math.Float32bits(want[i]))
			}
			if w := F32ToF16(x[i]); h[i] != w {
				t.Fatalf("F32sToF16(%#08x) = %#04x, F32ToF16 %#04x", math.Float32bits(x[i]), h[i], w)
			}
		}
	}
	for _, c := range []struct{ in, want uint32 }{
		{0x3f801000, 0x3f800000}, // 1 + 2^-11: a tie, to the even 1
		{0x3f801001, 0x3f802000}, // just above it: up
		{0x3f803000, 0x3f804000}, // 1 + 3*2^-11: a tie, to the even 1 + 2^-9
		{0x477fe000, 0x477fe000}, // 65504, the largest finite binary16
		{0x477fefff, 0x477fe000}, // below the midpoint to 65536: down
		{0x477ff000, 0x7f800000}, // 65520: a tie, to the even "65536", infinity
		{0x33000000, 0x00000000}, // 2^-25: a tie between 0 and 2^-24, to 0
		{0x33000001, 0x33800000}, // just above: 2^-24
		{0xb3000001, 0xb3800000}, // negative
		{0x7f800001, 0x7fc00000}, // a signalling NaN: the quiet NaN
		{0xffa00000, 0xffc00000}, // a negative NaN with a payload: its sign kept
	} {
		got := []float32{math.Float32frombits(c.in)}
		RoundF16Ref(got)
		if math.Float32bits(got[0]) != c.want {
			t.Errorf("RoundF16Ref(%#08x) = %#08x, want %#08x", c.in, math.Float32bits(got[0]), c.want)
		}
	}
}

// TestF16sToF32 checks F16sToF32 on every binary16 value: exactly
// F16ToF32 but for signalling NaNs, which come back quiet.
func TestF16sToF32(t *testing.T) {
	src := make([]uint16, 1<<16+5)
	for i := range src {
		src[i] = uint16(i)
	}
	for _, off := range []int{0, 5} {
		s := src[off:]
		got := make([]float32, len(s))
		F16sToF32(got, s)
		for i, h := range s {
			want := F16ToF32(h)
			if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
				want = math.Float32frombits(math.Float32bits(want) | 0x400000)
			}
			if math.Float32bits(got[i]) != math.Float32bits(want) {
				t.Fatalf("F16sToF32(%#04x) = %#08x, want %#08x", h, math.Float32bits(got[i]), math.Float32bits(want))
			}
			if F32ToF16(got[i]) != h && h&0x7c00 != 0x7c00 {
				t.Fatalf("F32ToF16(F16sToF32(%#04x)) = %#04x", h, F32ToF16(got[i]))
			}
		}
	}
}

// FuzzRoundF16 compares RoundF16 and F32sToF16 with their definitions on
// arbitrary float32 bit patterns.
func FuzzRoundF16(f *testing.F) {
	f.Add([]byte{0, 0x10, 0x80, 0x3f, 1, 0, 0x80, 0x7f, 0, 0xf0, 0x7f, 0x47})
	f.Fuzz(func(t *testing.T, b []byte) {
		x := make([]float32, len(b)/4)
		for i := range x {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		got, want := append([]float32(nil), x...), append([]float32(nil), x...)
		RoundF16(got)
		RoundF16Ref(want)
		h := make([]uint16, len(x))
		F32sToF16(h, x)
		for i := range x {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) || h[i] != F32ToF16(x[i]) {
				t.Fatalf("%#08x: RoundF16 %#08x (reference %#08x), F32sToF16 %#04x (reference %#04x)", math.Float32bits(x[i]),
					math.Float32bits(got[i]), math.Float32bits(want[i]), h[i], F32ToF16(x[i]))
			}
		}
	})
}

// halves returns n binary16 values: with special, any bit pattern (NaNs,
// infinities, subnormals among them); else those of normal values around 1.
func halves(r *rand.Rand, n int, special bool) []uint16 {
	h := make([]uint16, n)
	for i := range h {
		if special && r.IntN(4) == 0 {
			h[i] = uint16(r.Uint32())
		} else {
			h[i] = F32ToF16(float32(r.NormFloat64()))
		}
	}
	return h
}

// TestAttentionF16 compares DotManyF16 and WeightedSumGroupF16 with
// DotMany and WeightedSumGroup (and its scalar reference) over the same
// keys and values converted to float32, bit for bit: head sizes the
// AVX-512 kernels take and others, runs shorter and longer than a block of
// 16 keys, groups of heads up to and past the kernels' 6.
func TestAttentionF16(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, hd := range []int{6, 16, 64, 80, 128, 256} {
		for _, n := range []int{1, 15, 16, 17, 40, 300} {
			for _, special := range []bool{false, true} {
				keys, vals := halves(r, n*hd, special), halves(r, n*hd, special)
				kf, vf := make([]float32, n*hd), make([]float32, n*hd)
				F16sToF32(kf, keys)
				F16sToF32(vf, vals)
				q := values(r, hd, special)
				got, want := make([]float32, n), make([]float32, n)
				DotManyF16(got, q, keys)
				DotMany(want, q, kf, hd, 0)
				for i := range got {
					if !same(got[i], want[i]) {
						t.Fatalf("DotManyF16 hd %d n %d special %v: score %d %#08x, DotMany %#08x", hd, n, special, i, math.Float32bits(got[i]), math.Float32bits(want[i]))
					}
				}
				for _, group := range []int{1, 4, 7} {
					a := values(r, group*n, special)
					start := values(r, group*hd, false)
					o1, o2, o3 := append([]float32(nil), start...), append([]float32(nil), start...), append([]float32(nil), start...)
					WeightedSumGroupF16(o1, group, a, n, n, vals, hd)
					WeightedSumGroup(o2, group, a, n, n, vf, hd)
					WeightedSumGroupRef(o3, group, a, n, n, vf, hd)
					for i := range o1 {
						if !same(o1[i], o2[i]) || !same(o1[i], o3[i]) {
							t.Fatalf("WeightedSumGroupF16 hd %d n %d group %d special %v: out[%d] %#08x, WeightedSumGroup %#08x, reference %#08x", hd, n, group, special, i,
								math.Float32bits(o1[i]), math.Float32bits(o2[i]), math.Float32bits(o3[i]))
						}
					}
				}
			}
		}
	}
}
