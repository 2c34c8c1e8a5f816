package kernels

import (
	"encoding/binary"

	"github.com/verdictnet/verdict/internal/tensor"
)

// The scalar reference code of the weight types beyond Q8_0 and Q4_0:
// Q4_1, Q5_0 and Q5_1 (32-element blocks, against Q8 activations) and the
// K types Q4_K, Q5_K and Q6_K (256-element super-blocks, against Q8K
// activations). docs/determinism.md (sections 3 and 4.2) specifies them bit
// for bit; every integer sum below is exact in int32 (the bounds are proved
// there).

// QuantizeQ8K quantises x (a multiple of 256 long) to super-blocks of 256
// int8 values q with one float32 scale d per super-block, exactly as
// QuantizeQ8 does per 32-element block (amax/127, round to even, clamp to
// [-127, 127]), and writes s[k], the sum of q[16k..16k+15], for every run of
// 16 quanta (|s[k]| <= 2032).
func QuantizeQ8K(x []float32, q []int8, d []float32, s []int16) {
	for b := 0; b < len(x)/tensor.QKK; b++ {
		quantBlock(x[b*tensor.QKK:(b+1)*tensor.QKK], q[b*tensor.QKK:(b+1)*tensor.QKK], &d[b])
	}
	sums16(q[:len(x)/tensor.QKK*tensor.QKK], s)
}

// sums16 writes s[k] = q[16k] + ... + q[16k+15].
func sums16(q []int8, s []int16) {
	for k := 0; k < len(q)/16; k++ {
		var t int16
		for _, v := range q[16*k : 16*k+16] {
			t += int16(v)
		}
		s[k] = t
	}
}

// sums32 writes s32[k] = s16[2k] + s16[2k+1] (|s32[k]| <= 4064).
func sums32(s16, s32 []int16) {
	for k := range s32 {
		s32[k] = s16[2*k] + s16[2*k+1]
	}
}

// quantBlock quantises one block of any length (QuantizeQ8's rule).
func quantBlock(xs []float32, qs []int8, d *float32) {
	var amax float32
	for _, v := range xs {
		if v < 0 {
			v = -v
		}
		if v > amax {
			amax = v
		}
	}
	db := amax / 127
	var id float32
	if db != 0 {
		id = 1 / db
	}
	*d = db
	for i, v := range xs {
		r := roundEven(float32(v * id))
		if r > 127 {
			r = 127
		} else if r < -127 {
			r = -127
		} else if r != r {
			// NaN (a NaN input, or 0 ⊗ ∞ when 1/d overflows): 0. Go
			// leaves int8(NaN) to the platform (0 on amd64 and arm64,
			// -1 on riscv64); the AVX-512 kernel gives 0.
			r = 0
		}
		qs[i] = int8(r)
	}
}

func f16At(b []byte, off int) float32 { return F16ToF32(binary.LittleEndian.Uint16(b[off:])) }

// Q4_1, Q5_0 and Q5_1: the quanta of one 32-element block, element order
// as GGML's dequantize_row_*: byte j of qs holds element j in its low
// nibble and element j+16 in its high nibble; the fifth bit of element j is
// bit j of the little-endian uint32 qh.

// unpack4 writes the 4-bit quanta of a block (qs, 16 bytes) to q.
func unpack4(qs []byte, q *[tensor.QK]int32) {
	for j := 0; j < tensor.QK/2; j++ {
		q[j] = int32(qs[j] & 0x0f)
		q[j+16] = int32(qs[j] >> 4)
	}
}

// unpack5 writes the 5-bit quanta (0..31) of a block to q.
func unpack5(qh uint32, qs []byte, q *[tensor.QK]int32) {
	unpack4(qs, q)
	for j := 0; j < tensor.QK; j++ {
		q[j] |= int32(qh>>j&1) << 4
	}
}

// blockQ5 decodes block b of a Q4_1 / Q5_0 / Q5_1 row: the scale d, the
// offset m (0 for Q5_0) and the quanta (Q5_0 already minus 16).
func blockQ5(t tensor.Type, row []byte, b int, q *[tensor.QK]int32) (d, m float32) {
	switch t {
	case tensor.Q4_1:
		blk := row[b*20 : b*20+20]
		unpack4(blk[4:], q)
		return f16At(blk, 0), f16At(blk, 2)
	case tensor.Q5_0:
		blk := row[b*22 : b*22+22]
		unpack5(binary.LittleEndian.Uint32(blk[2:]), blk[6:], q)
		for j := range q {
			q[j] -= 16
		}
		return f16At(blk, 0), 0
	default: // Q5_1
		blk := row[b*24 : b*24+24]
		unpack5(binary.LittleEndian.Uint32(blk[4:]), blk[8:], q)
		return f16At(blk, 0), f16At(blk, 2)
	}
}

// dotQ5 is the matrix-times-activation value of a Q4_1, Q5_0 or Q5_1 row
// against Q8 activations (q, d): per block b in increasing order,
//
//	isum = Σ_j q_j·qx_j, xsum = Σ_j qx_j (exact int32)
//	Q5_0:        acc = acc ⊕ ((dw ⊗ dx) ⊗ f32(isum))
//	Q4_1, Q5_1:  acc = acc ⊕ (((dw ⊗ dx) ⊗ f32(isum)) ⊕ ((mw ⊗ dx) ⊗ f32(xsum)))
func dotQ5(t tensor.Type, row []byte, q []int8, d []float32) float32 {
	var acc float32
	bs := t.BlockBytes()
	for b := 0; b < len(q)/tensor.QK; b++ {
		blk := row[b*bs : (b+1)*bs]
		var qh uint32
		var qs []byte
		switch t {
		case tensor.Q4_1:
			qs = blk[4:20]
		case tensor.Q5_0:
			qh, qs = binary.LittleEndian.Uint32(blk[2:]), blk[6:22]
		default: // Q5_1
			qh, qs = binary.LittleEndian.Uint32(blk[4:]), blk[8:24]
		}
		x0, x1 := q[b*tensor.QK:b*tensor.QK+16], q[b*tensor.QK+16:(b+1)*tensor.QK]
		// u_j = nibble | high bit << 4 (unsigned); Q5_0's q_j is u_j - 16.
		var isum, xsum int32
		for j, v := range qs {
			lo := int32(v&15) | int32(qh>>j&1)<<4
			hi := int32(v>>4) | int32(qh>>(j+16)&1)<<4
			a, e := int32(x0[j]), int32(x1[j])
			isum += lo*a + hi*e
			xsum += a + e
		}
		dw := f16At(blk, 0)
		if t == tensor.Q5_0 {
			isum -= 16 * xsum
			acc = acc + float32(float32(dw*d[b])*float32(isum))
			continue
		}
		mw := f16At(blk, 2)
		acc = acc + (float32(float32(dw*d[b])*float32(isum)) + float32(float32(mw*d[b])*float32(xsum)))
	}
	return acc
}

// K types. A super-block of 256 elements has sub-blocks of 32 (Q4_K, Q5_K:
// 8 of them, each with a 6-bit scale and a 6-bit min) or of 16 (Q6_K: 16,
// each with an int8 scale).

// scalesK4 decodes the 12 bytes of packed 6-bit scales and mins of a Q4_K or
// Q5_K super-block (GGML's get_scale_min_k4): for j < 4, sc = b[j] & 63 and
// m = b[j+4] & 63; for j >= 4, sc = (b[j+4] & 15) | (b[j-4] >> 6) << 4 and
// m = (b[j+4] >> 4) | (b[j] >> 6) << 4.
func scalesK4(b []byte) (sc, m [8]int32) {
	for j := 0; j < 4; j++ {
		sc[j] = int32(b[j] & 63)
		m[j] = int32(b[j+4] & 63)
	}
	for j := 4; j < 8; j++ {
		sc[j] = int32(b[j+4]&15 | (b[j-4]>>6)<<4)
		m[j] = int32(b[j+4]>>4 | (b[j]>>6)<<4)
	}
	return sc, m
}

// superK holds one decoded K super-block: the f16 scales as f32, the
// sub-block scales (and mins) and the 256 quanta in element order.
type superK struct {
	d, dmin float32
	sc, m   [16]int32 // Q4_K/Q5_K: 8 of each; Q6_K: 16 scales
	q       [tensor.QKK]int32
}

// decodeK decodes super-block b of a Q4_K, Q5_K or Q6_K row.
//
// Q4_K (144 bytes: d, dmin, scales[12], qs[128]) and Q5_K (176 bytes: d,
// dmin, scales[12], qh[32], qs[128]): for chunk c = 0..3 of 64 elements,
// element 64c+l (l < 32) is the low nibble of qs[32c+l] and element 64c+32+l
// its high nibble; sub-block 2c and 2c+1 respectively. Q5_K adds 16 when bit
// 2c (for the low nibble) or 2c+1 (high) of qh[l] is set.
//
// Q6_K (210 bytes: ql[128], qh[64], scales[16] int8, d): for half h = 0, 1
// and l < 32, with L = ql[64h:], H = qh[32h:], element 128h+l is
// (L[l] & 15) | ((H[l] >> 0) & 3) << 4, element 128h+32+l is
// (L[l+32] & 15) | ((H[l] >> 2) & 3) << 4, element 128h+64+l is
// (L[l] >> 4) | ((H[l] >> 4) & 3) << 4 and element 128h+96+l is
// (L[l+32] >> 4) | ((H[l] >> 6) & 3) << 4, each minus 32; element e has
// scale scales[e/16].
func decodeK(t tensor.Type, row []byte, b int, s *superK) {
	switch t {
	case tensor.Q4_K, tensor.Q5_K:
		bs := t.BlockBytes()
		blk := row[b*bs : (b+1)*bs]
		s.d, s.dmin = f16At(blk, 0), f16At(blk, 2)
		sc, m := scalesK4(blk[4:16])
		copy(s.sc[:8], sc[:])
		copy(s.m[:8], m[:])
		qs := blk[16:]
		var qh []byte
		if t == tensor.Q5_K {
			qh, qs = blk[16:48], blk[48:]
		}
		for c := 0; c < 4; c++ {
			for l := 0; l < 32; l++ {
				lo, hi := int32(qs[32*c+l]&15), int32(qs[32*c+l]>>4)
				if qh != nil {
					lo |= int32(qh[l]>>(2*c)&1) << 4
					hi |= int32(qh[l]>>(2*c+1)&1) << 4
				}
				s.q[64*c+l], s.q[64*c+32+l] = lo, hi
			}
		}
	default: // Q6_K
		blk := row[b*210 : b*210+210]
		s.d, s.dmin = f16At(blk, 208), 0
		for k := 0; k < 16; k++ {
			s.sc[k] = int32(int8(blk[192+k]))
		}
		for h := 0; h < 2; h++ {
			L, H := blk[64*h:], blk[128+32*h:]
			for l := 0; l < 32; l++ {
				s.q[128*h+l] = int32(L[l]&15|(H[l]&3)<<4) - 32
				s.q[128*h+32+l] = int32(L[l+32]&15|(H[l]>>2&3)<<4) - 32
				s.q[128*h+64+l] = int32(L[l]>>4|(H[l]>>4&3)<<4) - 32
				s.q[128*h+96+l] = int32(L[l+32]>>4|(H[l]>>6&3)<<4) - 32
			}
		}
	}
}

// dotK is the matrix-times-activation value of a K-type row against Q8K
// activations (q, d): per super-block b in increasing order, with the
// sub-block sums σ_s = Σ_{j in s} q_j·qx_j and ξ_s = Σ_{j in s} qx_j,
//
//	isum = Σ_s sc_s·σ_s (exact int32)
//	Q6_K:        acc = acc ⊕ ((d ⊗ dx) ⊗ f32(isum))
//	Q4_K, Q5_K:  msum = Σ_s m_s·ξ_s (exact int32)
//	             acc = acc ⊕ (((d ⊗ dx) ⊗ f32(isum)) ⊖ ((dmin ⊗ dx) ⊗ f32(msum)))
func dotK(t tensor.Type, row []byte, q []int8, d []float32) float32 {
	var acc float32
	bs := t.BlockBytes()
	for b := 0; b < len(q)/tensor.QKK; b++ {
		blk := row[b*bs : (b+1)*bs]
		qx := q[b*tensor.QKK : (b+1)*tensor.QKK]
		var v float32
		if t == tensor.Q6_K {
			v = float32(float32(f16At(blk, 208)*d[b]) * float32(isumQ6K(blk, qx)))
		} else {
			isum, msum := sumsQ45K(t, blk, qx)
			v = float32(float32(f16At(blk, 0)*d[b])*float32(isum)) - float32(float32(f16At(blk, 2)*d[b])*float32(msum))
		}
		acc = acc + v
	}
	return acc
}

// sumsQ45K returns isum = Σ_s sc_s·σ_s and msum = Σ_s m_s·ξ_s of a Q4_K or
// Q5_K super-block against 256 activation quanta, reading the quanta in
// decodeK's element order straight from the bytes.
func sumsQ45K(t tensor.Type, blk []byte, qx []int8) (isum, msum int32) {
	sc, m := scalesK4(blk[4:16])
	if t == tensor.Q4_K {
		qs := blk[16:144]
		for c := 0; c < 4; c++ {
			q := qs[32*c : 32*c+32]
			x0, x1 := qx[64*c:64*c+32], qx[64*c+32:64*c+64]
			var s0, s1, m0, m1 int32
			for l, b := range q {
				a, e := int32(x0[l]), int32(x1[l])
				s0 += int32(b&15) * a
				s1 += int32(b>>4) * e
				m0 += a
				m1 += e
			}
			isum += sc[2*c]*s0 + sc[2*c+1]*s1
			msum += m[2*c]*m0 + m[2*c+1]*m1
		}
		return isum, msum
	}
	qh, qs := blk[16:48], blk[48:176]
	for c := 0; c < 4; c++ {
		q := qs[32*c : 32*c+32]
		x0, x1 := qx[64*c:64*c+32], qx[64*c+32:64*c+64]
		sh := uint(2 * c)
		var s0, s1, m0, m1 int32
		for l, b := range q {
			h := qh[l] >> sh
			a, e := int32(x0[l]), int32(x1[l])
			s0 += int32(b&15|(h&1)<<4) * a
			s1 += int32(b>>4|(h&2)<<3) * e
			m0 += a
			m1 += e
		}
		isum += sc[2*c]*s0 + sc[2*c+1]*s1
		msum += m[2*c]*m0 + m[2*c+1]*m1
	}
	return isum, msum
}

// isumQ6K returns Σ_s sc_s·σ_s of a Q6_K super-block against 256
// activation quanta, reading the quanta in decodeK's element order straight
// from the bytes.
func isumQ6K(blk []byte, qx []int8) int32 {
	var isum int32
	for h := 0; h < 2; h++ {
		L, H := blk[64*h:64*h+64], blk[128+32*h:160+32*h]
		sc := blk[192+8*h : 200+8*h]
		x := qx[128*h : 128*h+128]
		for i := 0; i < 2; i++ { // elements 16i..16i+15 of each run of 32
			var a0, a1, a2, a3 int32
			for l := 16 * i; l < 16*i+16; l++ {
				hb, l0, l1 := H[l], L[l], L[l+32]
				a0 += (int32(l0&15|(hb&3)<<4) - 32) * int32(x[l])
				a1 += (int32(l1&15|(hb>>2&3)<<4) - 32) * int32(x[32+l])
				a2 += (int32(l0>>4|(hb>>4&3)<<4) - 32) * int32(x[64+l])
				a3 += (int32(l1>>4|(hb>>6)<<4) - 32) * int32(x[96+l])
			}
			isum += int32(int8(sc[i]))*a0 + int32(int8(sc[2+i]))*a1 + int32(int8(sc[4+i]))*a2 + int32(int8(sc[6+i]))*a3
		}
	}
	return isum
}

// dequantQ5 writes the float32 values of a Q4_1, Q5_0 or Q5_1 row:
// d ⊗ f32(q) (Q5_0), (d ⊗ f32(q)) ⊕ m (Q4_1, Q5_1).
func dequantQ5(t tensor.Type, row []byte, out []float32) {
	var q [tensor.QK]int32
	for b := 0; b < len(out)/tensor.QK; b++ {
		d, m := blockQ5(t, row, b, &q)
		for j, v := range q {
			x := float32(d * float32(v))
			if t != tensor.Q5_0 {
				x = x + m
			}
			out[b*tensor.QK+j] = x
		}
	}
}

// dequantK writes the float32 values of a K-type row:
// ((d ⊗ f32(sc)) ⊗ f32(q)) ⊖ (dmin ⊗ f32(m)) (Q4_K, Q5_K; sub-blocks of 32)
// and (d ⊗ f32(sc)) ⊗ f32(q) (Q6_K; sub-blocks of 16).
func dequantK(t tensor.Type, row []byte, out []float32) {
	var s superK
	for b := 0; b < len(out)/tensor.QKK; b++ {
		decodeK(t, row, b, &s)
		o := out[b*tensor.QKK : (b+1)*tensor.QKK]
		if t == tensor.Q6_K {
			for j := range o {
				o[j] = float32(float32(s.d*float32(s.sc[j/16])) * float32(s.q[j]))
			}
			continue
		}
		for k := 0; k < 8; k++ {
			ds := float32(s.d * float32(s.sc[k]))
			ms := float32(s.dmin * float32(s.m[k]))
			for j := 32 * k; j < 32*k+32; j++ {
				o[j] = float32(ds*float32(s.q[j])) - ms
			}
		}
	}
}
