package kernels

import "fmt"

// The half-precision key/value cache (docs/determinism.md, section 13)
// holds binary16 values: a key or value vector is rounded once, when it is
// computed (RoundF16), stored as binary16 (F32sToF16, exact on rounded
// values) and read back exactly (F16sToF32). The fast paths give the bits
// of the scalar definitions for every input, NaNs included.

// RoundF16 rounds every value of x to binary16 and back, in place: x[i] =
// F16ToF32(F32ToF16(x[i])) (to nearest, ties to even; overflow to
// infinity; every NaN to the quiet NaN of its sign, 0x7fc00000).
func RoundF16(x []float32) {
	n := 0
	if hasFast {
		n = roundF16Fast(x)
	}
	RoundF16Ref(x[n:])
}

// RoundF16Ref is RoundF16's scalar definition.
func RoundF16Ref(x []float32) {
	for i, v := range x {
		x[i] = F16ToF32(F32ToF16(v))
	}
}

// F32sToF16 converts src to binary16 into dst (len(dst) >= len(src)):
// dst[i] = F32ToF16(src[i]).
func F32sToF16(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	n := 0
	if hasFast {
		n = toF16Fast(dst, src)
	}
	for i := n; i < len(src); i++ {
		dst[i] = F32ToF16(src[i])
	}
}

// F16sToF32 converts src to float32 into dst (len(dst) >= len(src)),
// exactly, every NaN made quiet (its top mantissa bit set, the rest of the
// payload kept, as F16C's VCVTPH2PS does); F32sToF16 never writes another.
func F16sToF32(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	n := 0
	if hasFast {
		n = fromF16Fast(dst, src)
	}
	for i := n; i < len(src); i++ {
		dst[i] = f16Quiet(src[i])
	}
}

// f16Quiet is F16ToF32 with NaNs made quiet.
func f16Quiet(h uint16) float32 {
	if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
		h |= 0x200
	}
	return F16ToF32(h)
}

// DotManyF16 is DotMany over a run of binary16 keys, contiguous: out[t] =
// Dot(q, key t) for t < len(out), key t being keys[t*hd:(t+1)*hd] (hd =
// len(q)) converted exactly (F16sToF32). The AVX-512 kernel converts each
// 16 halves as it loads them (head sizes that are multiples of 16); the
// rest is converted a few keys at a time and scored by DotMany.
func DotManyF16(out, q []float32, keys []uint16) {
	n, hd := len(out), len(q)
	if n == 0 || hd == 0 {
		clear(out)
		return
	}
	if len(keys)/hd < n {
		panic(fmt.Sprintf("kernels.DotManyF16: %d keys of %d in %d halves", n, hd, len(keys)))
	}
	t := 0
	if hasFast {
		t = dotManyF16Fast(out, q, keys)
	}
	var stack [512]float32
	buf := stack[:]
	if hd > len(buf) {
		buf = make([]float32, hd)
	}
	per := len(buf) / hd
	for t < n {
		m := min(per, n-t)
		F16sToF32(buf[:m*hd], keys[t*hd:(t+m)*hd])
		DotMany(out[t:t+m], q, buf[:m*hd], hd, 0)
		t += m
	}
}

// WeightedSumGroupF16 is WeightedSumGroup over binary16 values (value t
// at values[t*stride:], stride in halves), each converted exactly
// (F16sToF32) where WeightedSumGroup reads it: the same bits.
func WeightedSumGroupF16(out []float32, group int, a []float32, aStride, n int, values []uint16, stride int) {
	hd := groupShape("WeightedSumGroupF16", len(out), group, len(a), aStride, n, len(values), stride)
	if hd == 0 {
		return
	}
	i := 0
	if hasFast {
		i = weightedSumGroupF16Fast(out, group, hd, a, aStride, n, values, stride)
	}
	for h := 0; h < group && i < hd; h++ {
		o, w := out[h*hd:(h+1)*hd], a[h*aStride:h*aStride+n]
		for t, at := range w {
			v := values[t*stride : t*stride+hd]
			for j := i; j < hd; j++ {
				o[j] = o[j] + float32(at*f16Quiet(v[j]))
			}
		}
	}
}
