package synth

import (
	"encoding/binary"
	"math"

	"github.com/verdictnet/verdict/internal/kernels"
	"github.com/verdictnet/verdict/internal/tensor"
)

// The quantisers of Q4_1, Q5_0, Q5_1 and the K types write valid blocks in
// GGML's layouts (docs/determinism.md section 3). Q4_1, Q5_0 and Q5_1
// follow ggml's quantize_row_*_ref. The K types use the plain min/max
// rule of ggml's reference without its iterative search for better scales
// (make_qkx2_quants, make_qx_quants with rmse_type 1): the blocks are valid
// and dequantise to within a quantisation step of the input, but their
// bytes differ from llama.cpp's quantizer.

// nearest rounds to the nearest integer, ties to even (ggml's nearest_int).
func nearest(v float32) int { return int(math.RoundToEven(float64(v))) }

// appendQ4_1Q5_1 follows quantize_row_q4_1_ref / quantize_row_q5_1_ref:
// d = (max-min)/(2^bits - 1), m = min, q = min(top, int8((x-min)/d + 0.5)).
func appendQ4_1Q5_1(dst []byte, t tensor.Type, x []float32) []byte {
	mn, mx := x[0], x[0]
	for _, v := range x[1:] {
		mn, mx = min(mn, v), max(mx, v)
	}
	top := float32(15)
	if t == tensor.Q5_1 {
		top = 31
	}
	d := (mx - mn) / top
	var id float32
	if d != 0 {
		id = 1 / d
	}
	le := binary.LittleEndian
	dst = le.AppendUint16(dst, kernels.F32ToF16(d))
	dst = le.AppendUint16(dst, kernels.F32ToF16(mn))
	var q [tensor.QK]byte
	for j, v := range x {
		q[j] = byte(min(int(top), int(int8(float32(float32(v-mn)*id)+0.5))))
	}
	if t == tensor.Q5_1 {
		dst = le.AppendUint32(dst, highBits(&q))
	}
	return appendNibbles(dst, &q)
}

// appendQ5_0 follows quantize_row_q5_0_ref: the value of largest magnitude
// (with its sign) gives d = max / -16; q = min(31, int8(x/d + 16.5)).
func appendQ5_0(dst []byte, x []float32) []byte {
	var amax, mx float32
	for _, v := range x {
		if amax < abs32(v) {
			amax, mx = abs32(v), v
		}
	}
	d := mx / -16
	var id float32
	if d != 0 {
		id = 1 / d
	}
	le := binary.LittleEndian
	dst = le.AppendUint16(dst, kernels.F32ToF16(d))
	var q [tensor.QK]byte
	for j, v := range x {
		q[j] = byte(min(31, int(int8(float32(v*id)+16.5))))
	}
	dst = le.AppendUint32(dst, highBits(&q))
	return appendNibbles(dst, &q)
}

// highBits collects bit 4 of quantum j into bit j.
func highBits(q *[tensor.QK]byte) uint32 {
	var h uint32
	for j, v := range q {
		h |= uint32(v>>4&1) << j
	}
	return h
}

// appendNibbles packs quanta j and j+16 into the low and high nibble of
// byte j.
func appendNibbles(dst []byte, q *[tensor.QK]byte) []byte {
	for j := 0; j < tensor.QK/2; j++ {
		dst = append(dst, q[j]&15|(q[j+16]&15)<<4)
	}
	return dst
}

// appendQ4_KQ5_K encodes one super-block: per sub-block of 32 a scale
// (max-min)/top and a min -min (min clamped to <= 0), both quantised to 6
// bits against the super-block's d = max scale/63 and dmin = max min/63;
// then every value to the nearest of its sub-block's levels.
func appendQ4_KQ5_K(dst []byte, t tensor.Type, x []float32) []byte {
	top := 15
	if t == tensor.Q5_K {
		top = 31
	}
	var scale, mins [8]float32
	var maxScale, maxMin float32
	for s := 0; s < 8; s++ {
		xs := x[32*s : 32*s+32]
		mn, mx := xs[0], xs[0]
		for _, v := range xs[1:] {
			mn, mx = min(mn, v), max(mx, v)
		}
		mn = min(mn, 0)
		scale[s], mins[s] = (mx-mn)/float32(top), -mn
		maxScale, maxMin = max(maxScale, scale[s]), max(maxMin, mins[s])
	}
	var ls, lm [8]int
	var d, dmin float32
	if maxScale > 0 {
		is := 63 / maxScale
		for s := range ls {
			ls[s] = min(63, nearest(is*scale[s]))
		}
		d = maxScale / 63
	}
	if maxMin > 0 {
		im := 63 / maxMin
		for s := range lm {
			lm[s] = min(63, nearest(im*mins[s]))
		}
		dmin = maxMin / 63
	}
	hd, hm := kernels.F32ToF16(d), kernels.F32ToF16(dmin)
	// Quantise against the scales as they will be decoded.
	dd, dm := kernels.F16ToF32(hd), kernels.F16ToF32(hm)
	var q [tensor.QKK]int
	for s := 0; s < 8; s++ {
		sd := float32(dd * float32(ls[s]))
		if sd == 0 {
			continue
		}
		sm := float32(dm * float32(lm[s]))
		for j := 32 * s; j < 32*s+32; j++ {
			q[j] = max(0, min(top, nearest((x[j]+sm)/sd)))
		}
	}
	var sc [12]byte
	for j := 0; j < 8; j++ {
		if j < 4 {
			sc[j], sc[j+4] = byte(ls[j]), byte(lm[j])
		} else {
			sc[j+4] = byte(ls[j]&15 | (lm[j]&15)<<4)
			sc[j-4] |= byte(ls[j]>>4) << 6
			sc[j] |= byte(lm[j]>>4) << 6
		}
	}
	le := binary.LittleEndian
	dst = le.AppendUint16(dst, hd)
	dst = le.AppendUint16(dst, hm)
	dst = append(dst, sc[:]...)
	if t == tensor.Q5_K {
		var qh [32]byte
		for c := 0; c < 4; c++ {
			for l := 0; l < 32; l++ {
				qh[l] |= byte(q[64*c+l]>>4&1) << (2 * c)
				qh[l] |= byte(q[64*c+32+l]>>4&1) << (2*c + 1)
			}
		}
		dst = append(dst, qh[:]...)
	}
	for c := 0; c < 4; c++ {
		for l := 0; l < 32; l++ {
			dst = append(dst, byte(q[64*c+l]&15|(q[64*c+32+l]&15)<<4))
		}
	}
	return dst
}

// appendQ6_K encodes one super-block: per sub-block of 16 the value of
// largest magnitude (with its sign) gives the scale max/-32; the scales are
// quantised to int8 against d = (largest scale, signed)/-128; every value
// to the nearest level in [-32, 31].
func appendQ6_K(dst []byte, x []float32) []byte {
	var scale [16]float32
	var maxScale, amaxScale float32
	for s := 0; s < 16; s++ {
		var amax, mx float32
		for _, v := range x[16*s : 16*s+16] {
			if abs32(v) > amax {
				amax, mx = abs32(v), v
			}
		}
		scale[s] = mx / -32
		if abs32(scale[s]) > amaxScale {
			amaxScale, maxScale = abs32(scale[s]), scale[s]
		}
	}
	var ls [16]int
	var d float32
	if amaxScale > 0 {
		is := -128 / maxScale
		for s := range ls {
			ls[s] = min(127, nearest(is*scale[s]))
		}
		d = 1 / is
	}
	hd := kernels.F32ToF16(d)
	dd := kernels.F16ToF32(hd)
	var q [tensor.QKK]int
	for s := 0; s < 16; s++ {
		sd := float32(dd * float32(ls[s]))
		for j := 16 * s; j < 16*s+16; j++ {
			if sd != 0 {
				q[j] = max(-32, min(31, nearest(x[j]/sd)))
			}
			q[j] += 32
		}
	}
	var ql [128]byte
	var qh [64]byte
	for h := 0; h < 2; h++ {
		for l := 0; l < 32; l++ {
			q1, q2, q3, q4 := q[128*h+l], q[128*h+32+l], q[128*h+64+l], q[128*h+96+l]
			ql[64*h+l] = byte(q1&15 | (q3&15)<<4)
			ql[64*h+32+l] = byte(q2&15 | (q4&15)<<4)
			qh[32*h+l] = byte(q1>>4 | (q2>>4)<<2 | (q3>>4)<<4 | (q4>>4)<<6)
		}
	}
	dst = append(dst, ql[:]...)
	dst = append(dst, qh[:]...)
	for _, v := range ls {
		dst = append(dst, byte(int8(v)))
	}
	return binary.LittleEndian.AppendUint16(dst, hd)
}
