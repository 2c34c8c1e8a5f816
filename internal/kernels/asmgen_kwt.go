//go:build ignore

package main

import "fmt"

// The AVX-512 VNNI tiles of the K types with the lanes on the weight rows
// (run with asmgen.go): kwt4P{P}, kwt5P{P} and kwt6P{P}(w *byte, ws int,
// pk *byte, nb int, out *float32, ld int, scr *byte) multiply 16 Q4_K,
// Q5_K or Q6_K weight rows (row stride ws
// bytes) by P <= 8 activation rows packed by packKWT (kwt_amd64.go) over
// nb super-blocks: out[p*ld + i] (i < 16, p < P) is the value of section
// 4.2 of docs/determinism.md for weight row i and activation row p, bit
// for bit (dotK). The design is vnniWTTile's (asmgen_vnni.go) for the
// super-blocks of the K types:
//
//   - the 16-byte headers of the 16 rows (d, dmin, the 12 scale bytes) are
//     loaded four rows to a register and transposed in 128-bit lanes, so
//     that lane i of each result is dword k of row i's header; the 8 scales
//     and 8 mins of the 16 rows are unpacked lane-wise (get_scale_min_k4)
//     as exact int32, and d, dmin converted (VCVTPH2PS, exact); they go to
//     scr (kwtScratch bytes);
//   - per chunk c of 64 elements (32 bytes of nibbles per row), the 16 rows'
//     32 bytes are transposed as in vnniWTTile (lane i of W_k is dword k of
//     row i), and split into the low nibbles (sub-block 2c) and the high
//     ones (sub-block 2c+1) (Q5_K: each sub-block's unsigned quanta, with
//     its bit of qh as 16, made bytewise before its own transposition);
//     per activation row, eight VPDPBUSD with the
//     activation dwords as broadcast operand make σ_2c and σ_2c+1 exactly
//     (at most 32·31·128 per lane, any int8 quanta), VPMULLD by the
//     sub-block scales and VPADDD make isum;
//   - msum = Σ_s m_s·ξ_s by four VPDPWSSD of the pairs (m_2t, m_2t+1) and
//     the broadcast packed pairs of sums of 32 (ξ_2t, ξ_2t+1);
//   - then, lane by lane, the float sequence of the specification:
//     (d ⊗ dx) ⊗ f32(isum) ⊖ (dmin ⊗ dx) ⊗ f32(msum), acc ⊕ that, super-blocks
//     in increasing order. Never a fused multiply-add.
//
// Each super-block step prefetches the 16·bs bytes (bs = 144, 176, 210) of the
// next tile's rows (contiguous in memory), as vnniWTTile does, spread over
// the chunks: issued in one burst at the top of the step, Q6_K weights
// streamed from memory at 15 GB/s per CPU second, spread at 31 (8192 x
// 2048, one activation row; the AVX2 one-row kernel 29). Q4_K: 37 and 43.
const (
	// Packed bytes per activation row and super-block (packKWT): a group
	// of P rows takes kwtRow*P bytes per super-block, the quanta of row q
	// at 256q, its dx at 256P+4q, its sums of 32 at 260P+16q and of 16 at
	// 276P+32q.
	kwtRow  = 308
	kwtMaxP = 8
	kwtAcc  = 1600 // scr offset of the float accumulators when P > 4
)

// kwtRegs are the registers of a kwt tile for P activation rows: isum of
// row q in Z16+q; the sub-block sums σ in Z20-Z23 (P <= 4) or Z24-Z27; the
// float accumulators in Z24+q (P <= 4) or in scr at kwtAcc+64q.
type kwtRegs struct{ P int }

func (r kwtRegs) isum(q int) string { return z(16 + q) }
func (r kwtRegs) sig(i int) string {
	if r.P > 4 {
		return z(24 + i%4)
	}
	return z(20 + i%4)
}

// accInit zeroes the float accumulators.
func (r kwtRegs) accInit() {
	if r.P > 4 {
		p("VPXORD Z0, Z0, Z0")
	}
	for q := 0; q < r.P; q++ {
		if r.P > 4 {
			p("VMOVUPS Z0, %d(BX)", kwtAcc+64*q)
			continue
		}
		p("VPXORD %s, %s, %s", z(24+q), z(24+q), z(24+q))
	}
}

// accAdd adds register t to accumulator q (acc ⊕ t).
func (r kwtRegs) accAdd(q int, t string) {
	if r.P > 4 {
		p("VADDPS %d(BX), %s, %s", kwtAcc+64*q, t, t)
		p("VMOVUPS %s, %d(BX)", t, kwtAcc+64*q)
		return
	}
	p("VADDPS %s, %s, %s", t, z(24+q), z(24+q))
}

// store writes the accumulators to out[q*ld] (16 floats each) and returns.
func (r kwtRegs) store() {
	p("MOVQ out+32(FP), DX")
	p("MOVQ ld+40(FP), R13")
	p("SHLQ $2, R13")
	for q := 0; q < r.P; q++ {
		src := z(24 + q)
		if r.P > 4 {
			src = "Z0"
			p("VMOVUPS %d(BX), Z0", kwtAcc+64*q)
		}
		p("VMOVUPS %s, (DX)", src)
		if q+1 < r.P {
			p("ADDQ R13, DX")
		}
	}
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

func kwtKernels() {
	b.WriteString("DATA kwt10<>+0(SB)/4, $0x10101010\nGLOBL kwt10<>(SB), RODATA|NOPTR, $4\n\n")
	for _, t := range []int{4, 5} {
		for P := 1; P <= kwtMaxP; P++ {
			kwtTile(t, P)
		}
	}
	for P := 1; P <= kwtMaxP; P++ {
		kwtTile6(P)
	}
}

// kwtTranspose transposes the 16 rows' 32 bytes loaded in Z0-Z7 (Z_j =
// [row j | row j+4] for j < 4, [row j+4 | row j+8] for j >= 4) into
// Z8-Z15: lane i of Z(8+k) is dword k of row i. Z0-Z7 are clobbered.
func kwtTranspose() {
	A := func(i int) string { return z(i) }
	Bz := func(i int) string { return z(8 + i) }
	for m := 0; m < 4; m++ {
		p("VPUNPCKLDQ %s, %s, %s", A(2*m+1), A(2*m), Bz(2*m))
		p("VPUNPCKHDQ %s, %s, %s", A(2*m+1), A(2*m), Bz(2*m+1))
	}
	for h := 0; h < 8; h += 4 {
		p("VPUNPCKLQDQ %s, %s, %s", Bz(h+2), Bz(h), A(h))
		p("VPUNPCKHQDQ %s, %s, %s", Bz(h+2), Bz(h), A(h+1))
		p("VPUNPCKLQDQ %s, %s, %s", Bz(h+3), Bz(h+1), A(h+2))
		p("VPUNPCKHQDQ %s, %s, %s", Bz(h+3), Bz(h+1), A(h+3))
	}
	for x := 0; x < 4; x++ {
		p("VSHUFI32X4 $0x88, %s, %s, %s", A(4+x), A(x), Bz(x))
		p("VSHUFI32X4 $0xdd, %s, %s, %s", A(4+x), A(x), Bz(4+x))
	}
}

// kwtLoad32 loads 32 bytes at offset off of each of the 16 rows into the
// registers reg(0..7) in kwtTranspose's input order.
func kwtLoad32(rowAt func(off, i int) string, off int, reg func(int) int) {
	for j := 0; j < 8; j++ {
		lo, hi := j, j+4
		if j >= 4 {
			lo, hi = j+4, j+8
		}
		p("VMOVDQU %s, %s", rowAt(off, lo), y(reg(j)))
		p("VINSERTI64X4 $1, %s, %s, %s", rowAt(off, hi), z(reg(j)), z(reg(j)))
	}
}

// kwtTile6 writes kwt6P{P}, kwtTile for Q6_K weights (210-byte
// super-blocks: ql[128], qh[64], 16 int8 scales, d). Per half h and
// quarter k' (elements 128h+32k'..+31, sub-blocks 8h+2k' and 8h+2k'+1), the
// unsigned quanta u = q + 32 of the 16 rows' 32 bytes are made bytewise
// from ql and qh before the transposition (a permutation of whole dwords,
// which bytewise operations commute with); per activation row, four
// VPDPBUSD for each of the two sub-blocks, VPMULLD by their scales (exact
// int32, sign-extended), and VPADDD make Σ_s sc_s·Σ u·q_x; the correction
// −32·Σ_s sc_s·ξ_s comes from eight VPDPWSSD of the pairs (sc_2t, sc_2t+1)
// and the broadcast packed pairs of sums of 16 (ξ_2t, ξ_2t+1). Then the
// float sequence: (d ⊗ dx) ⊗ f32(isum), acc ⊕ that. d (the word at 208)
// comes from one VPGATHERDD of the dwords at 206.
func kwtTile6(P int) {
	name := fmt.Sprintf("kwt6P%d", P)
	const bs = 210
	bases := []string{"SI", "R8", "R10", "R11"}
	rowAt := func(off, i int) string {
		return fmt.Sprintf("%d(%s)%s", off, bases[i/4], []string{"", "(AX*1)", "(AX*2)", "(R12*1)"}[i%4])
	}
	// Registers: Z0-Z7 ql, then u; Z8-Z15 qh, then the transposed u; Z16
	// and up isum, σ and the float accumulators (kwtRegs); Z28 0x30 bytes, Z29
	// the gather offsets (lane i: i*ws), Z30 0xffff (dwords), Z31 0x0f
	// bytes.
	rg := kwtRegs{P}
	isum, sig := rg.isum, rg.sig
	// scr (BX): 0 d (float32), 64+64s the scale of sub-block s (int32),
	// 1088+64t the pairs (sc_2t, sc_2t+1) (int16).
	const fD, fSc, fPair = 0, 64, 1088
	fmt.Fprintf(&b, "// func %s(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-56\n", name)
	p("MOVQ w+0(FP), SI")
	p("MOVQ ws+8(FP), AX")
	p("LEAQ (AX)(AX*2), R12")
	p("LEAQ (SI)(AX*4), R8")
	p("LEAQ (R8)(AX*4), R10")
	p("LEAQ (R10)(AX*4), R11")
	p("LEAQ (R11)(AX*4), R9") // the next tile's rows: one sequential stream
	p("MOVQ pk+16(FP), DI")
	p("MOVQ nb+24(FP), CX")
	p("MOVQ scr+48(FP), BX")
	p("VPBROADCASTD AX, Z29")
	p("VPMULLD vnniIota<>(SB), Z29, Z29")
	for _, c := range []struct {
		v   uint32
		reg string
	}{{0x30303030, "Z28"}, {0xffff, "Z30"}, {0x0f0f0f0f, "Z31"}} {
		p("MOVL $0x%08x, DX", c.v)
		p("VPBROADCASTD DX, %s", c.reg)
	}
	rg.accInit()
	p("TESTQ CX, CX")
	p("JZ %s_done", name)
	label(name + "_loop")
	// The prefetches of the next tile's 16*bs bytes are spread over the
	// eight quarters (kwtPrefetch).
	pf := kwtPrefetch(16*bs, 8)

	// The scales: as kwtTile's headers, the 16 bytes at 192; dword i of
	// T_k (Z0-Z3) is scales 4k..4k+3 of row i.
	kwt6Scales(rowAt, fSc, fPair)
	p("KXNORW K1, K1, K1")
	p("VPGATHERDD 206(SI)(Z29*1), K1, Z4")
	p("VPSRLD $16, Z4, Z4")
	p("VPMOVDW Z4, Y4")
	p("VCVTPH2PS Y4, Z4") // d, exact
	p("VMOVUPS Z4, %d(BX)", fD)

	first := true
	for h := 0; h < 2; h++ {
		for kq := 0; kq < 4; kq++ {
			pf(4*h + kq)
			kwtLoad32(rowAt, 64*h+32*(kq%2), func(j int) int { return j })
			kwtLoad32(rowAt, 128+32*h, func(j int) int { return 8 + j })
			for j := 0; j < 8; j++ {
				a, hb := z(j), z(8+j)
				if kq < 2 {
					p("VPANDD Z31, %s, %s", a, a)
				} else {
					p("VPSRLD $4, %s, %s", a, a)
					p("VPANDD Z31, %s, %s", a, a)
				}
				switch kq {
				case 0:
					p("VPSLLD $4, %s, %s", hb, hb)
				case 1:
					p("VPSLLD $2, %s, %s", hb, hb)
				case 3:
					p("VPSRLD $2, %s, %s", hb, hb)
				}
				p("VPANDD Z28, %s, %s", hb, hb)
				p("VPORD %s, %s, %s", hb, a, a) // u = q + 32
			}
			kwtTranspose()
			sa := 8*h + 2*kq
			for q := 0; q < P; q++ {
				lo, hi := sig(2*q), sig(2*q+1)
				p("VPXORD %s, %s, %s", lo, lo, lo)
				p("VPXORD %s, %s, %s", hi, hi, hi)
				for k := 0; k < 8; k++ {
					acc := lo
					if k >= 4 {
						acc = hi
					}
					p("VPDPBUSD.BCST %d(DI), %s, %s", 256*q+128*h+32*kq+4*k, z(8+k), acc)
				}
				p("VPMULLD %d(BX), %s, %s", fSc+64*sa, lo, lo)
				p("VPMULLD %d(BX), %s, %s", fSc+64*(sa+1), hi, hi)
				if first {
					p("VPADDD %s, %s, %s", hi, lo, isum(q))
				} else {
					p("VPADDD %s, %s, %s", lo, isum(q), isum(q))
					p("VPADDD %s, %s, %s", hi, isum(q), isum(q))
				}
			}
			first = false
		}
	}

	// The correction and the float sequence.
	for t := 0; t < 8; t++ {
		p("VMOVDQU32 %d(BX), %s", fPair+64*t, z(t))
	}
	p("VMOVUPS %d(BX), Z8", fD)
	for q := 0; q < P; q++ {
		p("VPXORD Z9, Z9, Z9")
		for t := 0; t < 8; t++ {
			p("VPDPWSSD.BCST %d(DI), %s, Z9", 276*P+32*q+4*t, z(t))
		}
		p("VPSLLD $5, Z9, Z9")
		p("VPSUBD Z9, %s, %s", isum(q), isum(q))    // isum
		p("VMULPS.BCST %d(DI), Z8, Z10", 256*P+4*q) // d ⊗ dx
		p("VCVTDQ2PS %s, Z11", isum(q))
		p("VMULPS Z11, Z10, Z10") // ⊗ f32(isum)
		rg.accAdd(q, "Z10")
	}
	for _, r := range bases {
		p("ADDQ $%d, %s", bs, r)
	}
	p("ADDQ $%d, DI", kwtRow*P)
	p("ADDQ $%d, R9", 16*bs)
	p("DECQ CX")
	p("JNZ %s_loop", name)
	label(name + "_done")
	rg.store()
}

func kwtTile(typ, P int) {
	name := fmt.Sprintf("kwt%dP%d", typ, P)
	q5 := typ == 5
	bs := 144
	if q5 {
		bs = 176
	}
	bases := []string{"SI", "R8", "R10", "R11"}
	rowAt := func(off, i int) string {
		return fmt.Sprintf("%d(%s)%s", off, bases[i/4], []string{"", "(AX*1)", "(AX*2)", "(R12*1)"}[i%4])
	}
	// Registers: Z0-Z7 the loaded rows, then the high nibbles; Z8-Z15 the
	// transposed rows, then the low nibbles; Z16 and up isum, σ and the
	// float accumulators (kwtRegs); Z28
	// 0x03, Z29 0x0f, Z30 0x3f (dwords), Z31 0x0f bytes.
	A := func(i int) string { return z(i) }
	Bz := func(i int) string { return z(8 + i) }
	rg := kwtRegs{P}
	isum, sig := rg.isum, rg.sig
	// scr (BX): 0 d, 64 dmin (float32), 128+64s the scale of sub-block s
	// (int32), 640+64t the pairs (m_2t, m_2t+1) (int16).
	const fD, fDmin, fSc, fMp = 0, 64, 128, 640
	fmt.Fprintf(&b, "// func %s(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-56\n", name)
	p("MOVQ w+0(FP), SI")
	p("MOVQ ws+8(FP), AX")
	p("LEAQ (AX)(AX*2), R12")
	p("LEAQ (SI)(AX*4), R8")
	p("LEAQ (R8)(AX*4), R10")
	p("LEAQ (R10)(AX*4), R11")
	p("LEAQ (R11)(AX*4), R9") // the next tile's rows: one sequential stream
	p("MOVQ pk+16(FP), DI")
	p("MOVQ nb+24(FP), CX")
	p("MOVQ scr+48(FP), BX")
	for _, c := range []struct {
		v   uint32
		reg string
	}{{0x03, "Z28"}, {0x0f, "Z29"}, {0x3f, "Z30"}, {0x0f0f0f0f, "Z31"}} {
		p("MOVL $0x%08x, DX", c.v)
		p("VPBROADCASTD DX, %s", c.reg)
	}
	rg.accInit()
	p("TESTQ CX, CX")
	p("JZ %s_done", name)
	label(name + "_loop")
	pf := kwtPrefetch(16*bs, 4) // spread over the four chunks

	// The headers: Z_a holds rows a, 4+a, 8+a, 12+a in its 128-bit lanes;
	// after the in-lane 4x4 transposition, dword i of T_k (Z0-Z3) is
	// dword k of row i's header: T0 [d, dmin], T1 bytes u0-u3, T2 u4-u7,
	// T3 u8-u11.
	kwtHeaders(rowAt, 0)
	p("VPMOVDW Z0, Y4")
	p("VCVTPH2PS Y4, Z4") // d, exact
	p("VMOVUPS Z4, %d(BX)", fD)
	p("VPSRLD $16, Z0, Z5")
	p("VPMOVDW Z5, Y5")
	p("VCVTPH2PS Y5, Z5") // dmin
	p("VMOVUPS Z5, %d(BX)", fDmin)
	// Scales: sc_j = u_j & 63 (j < 4), (u_{j+4} & 15) | (u_{j-4} >> 6) << 4
	// (j >= 4); mins: m_j = u_{j+4} & 63 (j < 4), (u_{j+4} >> 4) |
	// (u_j >> 6) << 4 (j >= 4). Mins in Z8-Z15.
	kwt4Scales(fSc, fMp)

	for c := 0; c < 4; c++ {
		pf(c)
		if q5 {
			// Two passes: the unsigned quanta of sub-block 2c (low
			// nibbles, bit 2c of qh as 16), then of 2c+1 (high nibbles,
			// bit 2c+1), each made bytewise before its transposition.
			for half := 0; half < 2; half++ {
				kwtLoad32(rowAt, 48+32*c, func(j int) int { return j })
				kwtLoad32(rowAt, 16, func(j int) int { return 8 + j })
				bit := 2*c + half // of qh, to bit 4
				for j := 0; j < 8; j++ {
					a, h := A(j), Bz(j)
					if half == 1 {
						p("VPSRLD $4, %s, %s", a, a)
					}
					p("VPANDD Z31, %s, %s", a, a)
					switch {
					case bit < 4:
						p("VPSLLD $%d, %s, %s", 4-bit, h, h)
					case bit > 4:
						p("VPSRLD $%d, %s, %s", bit-4, h, h)
					}
					p("VPANDD.BCST kwt10<>(SB), %s, %s", h, h)
					p("VPORD %s, %s, %s", h, a, a)
				}
				kwtTranspose()
				s := 2*c + half
				for q := 0; q < P; q++ {
					acc := sig(2*q + half)
					p("VPXORD %s, %s, %s", acc, acc, acc)
					for k := 0; k < 8; k++ {
						p("VPDPBUSD.BCST %d(DI), %s, %s", 256*q+32*s+4*k, Bz(k), acc)
					}
					p("VPMULLD %d(BX), %s, %s", fSc+64*s, acc, acc)
					if s == 0 {
						p("VMOVDQA32 %s, %s", acc, isum(q))
					} else {
						p("VPADDD %s, %s, %s", acc, isum(q), isum(q))
					}
				}
			}
			continue
		}
		kwtLoad32(rowAt, 16+32*c, func(j int) int { return j })
		kwtTranspose()
		// Lane i of Bz(k) is dword k of row i's 32 bytes: its low nibbles
		// are elements 64c+4k..64c+4k+3, its high ones 64c+32+4k...
		for k := 0; k < 8; k++ {
			p("VPSRLD $4, %s, %s", Bz(k), A(k))
			p("VPANDD Z31, %s, %s", A(k), A(k))
			p("VPANDD Z31, %s, %s", Bz(k), Bz(k))
		}
		for q := 0; q < P; q++ {
			lo, hi := sig(2*q), sig(2*q+1)
			p("VPXORD %s, %s, %s", lo, lo, lo)
			p("VPXORD %s, %s, %s", hi, hi, hi)
			for k := 0; k < 8; k++ {
				p("VPDPBUSD.BCST %d(DI), %s, %s", 256*q+64*c+4*k, Bz(k), lo)
				p("VPDPBUSD.BCST %d(DI), %s, %s", 256*q+64*c+32+4*k, A(k), hi)
			}
			p("VPMULLD %d(BX), %s, %s", fSc+64*(2*c), lo, lo)
			p("VPMULLD %d(BX), %s, %s", fSc+64*(2*c+1), hi, hi)
			if c == 0 {
				p("VPADDD %s, %s, %s", hi, lo, isum(q))
			} else {
				p("VPADDD %s, %s, %s", lo, isum(q), isum(q))
				p("VPADDD %s, %s, %s", hi, isum(q), isum(q))
			}
		}
	}

	// msum and the float sequence.
	p("VMOVUPS %d(BX), Z8", fD)
	p("VMOVUPS %d(BX), Z9", fDmin)
	for t := 0; t < 4; t++ {
		p("VMOVDQU32 %d(BX), %s", fMp+64*t, z(4+t))
	}
	for q := 0; q < P; q++ {
		p("VPXORD Z0, Z0, Z0")
		for t := 0; t < 4; t++ {
			p("VPDPWSSD.BCST %d(DI), %s, Z0", 260*P+16*q+4*t, z(4+t))
		}
		p("VMULPS.BCST %d(DI), Z8, Z1", 256*P+4*q) // d ⊗ dx
		p("VCVTDQ2PS %s, Z2", isum(q))
		p("VMULPS Z2, Z1, Z1")                     // ⊗ f32(isum)
		p("VMULPS.BCST %d(DI), Z9, Z3", 256*P+4*q) // dmin ⊗ dx
		p("VCVTDQ2PS Z0, Z0")
		p("VMULPS Z0, Z3, Z3") // ⊗ f32(msum)
		p("VSUBPS Z3, Z1, Z1")
		rg.accAdd(q, "Z1")
	}
	for _, r := range bases {
		p("ADDQ $%d, %s", bs, r)
	}
	p("ADDQ $%d, DI", kwtRow*P)
	p("ADDQ $%d, R9", 16*bs)
	p("DECQ CX")
	p("JNZ %s_loop", name)
	label(name + "_done")
	rg.store()
}

// kwtPrefetch returns pf(i), which writes part i of parts of the
// prefetches (kwtPfOp) of the bytes cache lines at R9 (the next tile's
// rows; R9 steps by bytes at the end of each super-block).
func kwtPrefetch(bytes, parts int) func(i int) {
	lines := (bytes + 63) / 64
	return func(i int) {
		for c := i * lines / parts; c < (i+1)*lines/parts; c++ {
			p("%s %d(R9)", kwtPfOp, 64*c)
		}
	}
}

// kwtPfOp is kwtPrefetch's instruction: PREFETCHT1, into L2 (session 12,
// Sapphire Rapids VM, single-stream decode from memory, three alternated
// rounds: Qwen3 0.6B Q4_K_M 33.8-34.6 tok/s against 30.2-30.7 with
// PREFETCHT0, Llama 3.2 1B Q4_K_M 21.8-22.1 against 20.8-21.4; as for the
// AMX and vnniWT tiles, a PREFETCHT0 miss holds one of the core's few L1
// fill buffers until memory answers).
const kwtPfOp = "PREFETCHT1"

// kwt6Scales writes the 16 Q6_K rows' sub-block scales (the 16 bytes at 192
// of each row, rowAt(192, row)) into the frame, sign-extended: scale s of
// the 16 rows as 16 dwords at fSc+64*s, and scales 2m and 2m+1 as 16-bit
// pairs at fPair+64*m. It uses Z0-Z7 and expects 0xffff in each dword of
// Z30.
func kwt6Scales(rowAt func(off, row int) string, fSc, fPair int) {
	kwtHeaders(rowAt, 192)
	for s := 0; s < 16; s++ {
		reg := z(4 + s%2)
		if sh := 24 - 8*(s%4); sh > 0 {
			p("VPSLLD $%d, %s, %s", sh, z(s/4), reg)
			p("VPSRAD $24, %s, %s", reg, reg)
		} else {
			p("VPSRAD $24, %s, %s", z(s/4), reg)
		}
		p("VMOVDQU32 %s, %d(BX)", reg, fSc+64*s)
		if s%2 == 1 {
			p("VPSLLD $16, Z5, Z5")
			p("VPANDD Z30, Z4, Z4")
			p("VPORD Z5, Z4, Z4")
			p("VMOVDQU32 Z4, %d(BX)", fPair+64*(s/2))
		}
	}
}

// kwtHeaders loads the 16 bytes at off of 16 weight rows (rowAt(off, row))
// and transposes them in-lane 4x4: dword i of Z_k (k < 4) is dword k of
// row i's 16 bytes. It uses Z0-Z7.
func kwtHeaders(rowAt func(off, row int) string, off int) {
	for a := 0; a < 4; a++ {
		p("VMOVDQU %s, %s", rowAt(off, a), x(a))
		for L := 1; L < 4; L++ {
			p("VINSERTI32X4 $%d, %s, %s, %s", L, rowAt(off, 4*L+a), z(a), z(a))
		}
	}
	p("VPUNPCKLDQ Z1, Z0, Z4")
	p("VPUNPCKHDQ Z1, Z0, Z5")
	p("VPUNPCKLDQ Z3, Z2, Z6")
	p("VPUNPCKHDQ Z3, Z2, Z7")
	p("VPUNPCKLQDQ Z6, Z4, Z0")
	p("VPUNPCKHQDQ Z6, Z4, Z1")
	p("VPUNPCKLQDQ Z7, Z5, Z2")
	p("VPUNPCKHQDQ Z7, Z5, Z3")
}

// kwt4Scales writes the 16 Q4_K rows' 6-bit scales and mins, unpacked from
// the headers kwtHeaders left in Z1-Z3 (masks 63, 15 and 3 in Z30, Z29,
// Z28): scale j of the 16 rows as 16 dwords at fSc+64*j, mins 2t and 2t+1
// as 16-bit pairs at fMp+64*t. It uses Z4, Z5 and Z8-Z15.
func kwt4Scales(fSc, fMp int) {
	for j := 0; j < 4; j++ {
		shifted("Z4", "Z1", 8*j, "Z30")
		p("VMOVDQU32 Z4, %d(BX)", fSc+64*j)
		shifted(z(8+j), "Z2", 8*j, "Z30")
		shifted("Z4", "Z3", 8*j, "Z29")
		shifted("Z5", "Z1", 8*j+6, "Z28")
		p("VPSLLD $4, Z5, Z5")
		p("VPORD Z5, Z4, Z4")
		p("VMOVDQU32 Z4, %d(BX)", fSc+64*(4+j))
		shifted(z(12+j), "Z3", 8*j+4, "Z29")
		shifted("Z5", "Z2", 8*j+6, "Z28")
		p("VPSLLD $4, Z5, Z5")
		p("VPORD Z5, %s, %s", z(12+j), z(12+j))
	}
	for t := 0; t < 4; t++ {
		p("VPSLLD $16, %s, Z4", z(8+2*t+1))
		p("VPORD Z4, %s, Z4", z(8+2*t))
		p("VMOVDQU32 Z4, %d(BX)", fMp+64*t)
	}
}

// shifted writes dst = (src >> sh) & mask.
func shifted(dst, src string, sh int, mask string) {
	if sh == 0 {
		p("VPANDD %s, %s, %s", mask, src, dst)
		return
	}
	p("VPSRLD $%d, %s, %s", sh, src, dst)
	p("VPANDD %s, %s, %s", mask, dst, dst)
}
