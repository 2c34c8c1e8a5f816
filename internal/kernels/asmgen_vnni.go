//go:build ignore

package main

import "fmt"

// The AVX-512 VNNI prefill tiles of the quantised matrix product (run with
// asmgen.go): vnniQ8R{R}G{G} and vnniQ4R{R}G{G}(w *byte, ws int, pk *byte,
// gs int, nb int, out *float32, ld int, mask int) multiply R weight rows
// (Q8_0 or Q4_0, row stride ws bytes) by G groups of 16 activation rows
// packed by packVNNI (group stride gs bytes; see vnni_amd64.go for the
// layout) over nb blocks, and store lane j of (row r, group g) at
// out[(16g+j)*ld + r] if bit 16g+j of mask is set.
//
// Per block b and (row, group): an int32 zmm starts at the correction
// c_j = -s*Σq_x (s = 128 for Q8_0, 8 for Q4_0; the packed -Σq_x shifted
// left) and VPDPBUSD adds
// Σ u·q_x over the block, where u = w+128 (w XOR 0x80, Q8_0) or the nibble
// w+8 (Q4_0) is the unsigned operand: lane j ends at exactly isum_j. Then
// t = f32(dw) ⊗ dx_j; t = t ⊗ f32(isum_j); acc_j = acc_j ⊕ t (VMULPS,
// VMULPS, VADDPS: the spec's order, never FMA), blocks in increasing order.
const (
	vnniBlk  = 640 // packed bytes per (group, block): 512 quanta, 64 dx, 64 c
	vnniMaxR = 6
	vnniMaxG = 2
)

func vnniKernels() {
	for i := 0; i < 16; i++ {
		fmt.Fprintf(&b, "DATA vnniIota<>+%d(SB)/4, $%d\n", 4*i, i)
	}
	b.WriteString("GLOBL vnniIota<>(SB), RODATA|NOPTR, $64\n\n")
	quantQ8Z()
	for _, q4 := range []bool{false, true} {
		for r := 1; r <= vnniMaxR; r++ {
			for g := 1; g <= vnniMaxG; g++ {
				vnniTile(q4, r, g)
			}
		}
	}
	vnni8Idx(2)
	vnni8Idx(4)
	for _, s := range []int{1, 2, 4} {
		for r := 1; r <= vnniMaxR; r++ {
			vnni8Tile(r, s)
		}
	}
}

func vnniTile(q4 bool, R, G int) {
	kind, bs := "Q8", 34
	if q4 {
		kind, bs = "Q4", 18
	}
	name := fmt.Sprintf("vnni%sR%dG%d", kind, R, G)
	wp := []string{"SI", "R8", "R10", "R11", "R12", "R13"}[:R]
	ap := []string{"DI", "BX"}[:G]
	// Registers: Z0 dw, Z1 t, Z2 weight dword, Z3/Z4 Q4 nibbles,
	// Z5.. activations, then the float and the int accumulators; Z31 const.
	act := func(g int) int { return 5 + g }
	facc := func(r, g int) int { return 5 + G + r*G + g }
	iacc := func(r, g int) int { return 5 + G + R*G + r*G + g }
	if iacc(R-1, G-1) >= 31 {
		panic(name + ": too many registers")
	}
	fmt.Fprintf(&b, "// func %s(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-64\n", name)
	p("MOVQ w+0(FP), SI")
	p("MOVQ ws+8(FP), AX")
	for i := 1; i < R; i++ {
		p("LEAQ (%s)(AX*1), %s", wp[i-1], wp[i])
	}
	p("MOVQ pk+16(FP), DI")
	if G > 1 {
		p("MOVQ gs+24(FP), AX")
		p("LEAQ (DI)(AX*1), BX")
	}
	p("MOVQ nb+32(FP), CX")
	if q4 {
		p("MOVL $0x0f0f0f0f, AX")
	} else {
		p("MOVL $0x80808080, AX")
	}
	p("VPBROADCASTD AX, Z31")
	for r := 0; r < R; r++ {
		for g := 0; g < G; g++ {
			p("VPXORD %s, %s, %s", z(facc(r, g)), z(facc(r, g)), z(facc(r, g)))
		}
	}
	p("TESTQ CX, CX")
	p("JZ %s_done", name)
	label(name + "_loop")
	shift := 7 // c = -Σq_x << 7 = -128*Σq_x: the weights enter as w+128
	if q4 {
		shift = 3 // -8*Σq_x: the nibbles are w+8
	}
	for r := 0; r < R; r++ {
		for g := 0; g < G; g++ {
			p("VPSLLD $%d, 576(%s), %s", shift, ap[g], z(iacc(r, g)))
		}
	}
	if q4 {
		// Row by row: the 16 bytes broadcast to the four 128-bit lanes,
		// low nibbles (elements 0-15) and high nibbles (16-31); dword k of
		// the 32 unpacked bytes is replicated by VPSHUFD.
		for r := 0; r < R; r++ {
			p("VBROADCASTI32X4 2(%s), Z4", wp[r])
			p("VPANDD Z31, Z4, Z3")
			p("VPSRLW $4, Z4, Z4")
			p("VPANDD Z31, Z4, Z4")
			for k := 0; k < 8; k++ {
				src := "Z3"
				if k >= 4 {
					src = "Z4"
				}
				p("VPSHUFD $0x%02x, %s, Z2", (k%4)*0x55, src)
				for g := 0; g < G; g++ {
					p("VPDPBUSD %d(%s), Z2, %s", 64*k, ap[g], z(iacc(r, g)))
				}
			}
		}
	} else {
		for k := 0; k < 8; k++ {
			for g := 0; g < G; g++ {
				p("VMOVDQU32 %d(%s), %s", 64*k, ap[g], z(act(g)))
			}
			for r := 0; r < R; r++ {
				p("VPBROADCASTD %d(%s), Z2", 2+4*k, wp[r])
				p("VPXORD Z31, Z2, Z2")
				for g := 0; g < G; g++ {
					p("VPDPBUSD %s, Z2, %s", z(act(g)), z(iacc(r, g)))
				}
			}
		}
	}
	for r := 0; r < R; r++ {
		p("VPBROADCASTW (%s), Y0", wp[r])
		p("VCVTPH2PS Y0, Z0") // exact
		for g := 0; g < G; g++ {
			i, f := z(iacc(r, g)), z(facc(r, g))
			p("VMULPS 512(%s), Z0, Z1", ap[g]) // dw*dx
			p("VCVTDQ2PS %s, %s", i, i)        // exact: |isum| < 2^24
			p("VMULPS %s, Z1, Z1", i)          // (dw*dx)*isum
			p("VADDPS Z1, %s, %s", f, f)
		}
	}
	for _, r := range wp {
		p("ADDQ $%d, %s", bs, r)
	}
	for _, a := range ap {
		p("ADDQ $%d, %s", vnniBlk, a)
	}
	p("DECQ CX")
	p("JNZ %s_loop", name)
	label(name + "_done")
	// Lane j of (row r, group g) goes to out[(16g+j)*ld + r] where bit j
	// of mask>>(16g) is set: VSCATTERDPS with indices j*ld (the int
	// accumulators are free now).
	idx := z(iacc(0, 0))
	p("MOVQ out+40(FP), DX")
	p("MOVQ ld+48(FP), AX")
	p("VPBROADCASTD AX, %s", idx)
	p("VPMULLD vnniIota<>(SB), %s, %s", idx, idx)
	if G > 1 {
		p("SHLQ $6, AX")
		p("LEAQ (DX)(AX*1), R9")
	}
	p("MOVQ mask+56(FP), AX")
	p("KMOVW AX, K1")
	p("SHRQ $16, AX")
	p("KMOVW AX, K2")
	base := []string{"DX", "R9"}
	for r := 0; r < R; r++ {
		for g := 0; g < G; g++ {
			p("KMOVW K%d, K3", g+1) // the scatter clears its mask
			p("VSCATTERDPS %s, K3, %d(%s)(%s*4)", z(facc(r, g)), 4*r, base[g], idx)
		}
	}
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// vnni8Tile writes vnni8R{R}S{S}(w *byte, ws int, pk *byte, gs int, nb int,
// out *float32, ld int, mask int), the Q8_0 tiles on the rows packed by
// packVNNI8 (vnni8_amd64.go) for L = 16/S lanes per part: L-1 activation
// rows (lane j: row j) whose quanta enter as the unsigned q_x+128, and a
// last lane whose quanta are all 128; the 8 dwords of a block are split
// among S parts of 8/S dwords, part h in lanes h*L..h*L+L-1. The weights stay
// signed: S = 1 takes each weight dword straight from the weight row as
// VPDPBUSD's broadcast memory operand; S = 2 and 4 load the 32 weight bytes
// of a block once and VPERMD gives part h dword h*8/S+k' for step k'. So a
// block costs 8/S VPDPBUSD per weight row. Then the parts are added (lane
// j of every part, in int32: exact), lane j minus lane L-1 is exactly isum_j
// (|Σ| < 32·255·128), and the float sequence of dotQ8_0 follows, as in
// vnniTile: t = f32(dw) ⊗ dx_j; t = t ⊗ f32(isum_j); acc_j = acc_j ⊕ t
// (lanes from L-1 on have dx = 0 and are never stored). Lane j of row r goes
// to out[j*ld + r] if bit j of mask is set (gs is unused: one group).
func vnni8Tile(R, S int) {
	L := 16 / S
	K := 8 / S       // dwords per part
	blk := 64*K + 64 // packed bytes per block: quanta, dx
	name := fmt.Sprintf("vnni8R%dS%d", R, S)
	wp := []string{"SI", "R8", "R10", "R11", "R12", "R13"}[:R]
	// Registers: Z0 dw, Z1 t, Z2 a weight operand, Z3 the weight block
	// (S > 1); activations from Z4 (K of them for S > 1, one for S = 1),
	// then the VPERMD indices (S > 1), the float and the int accumulators;
	// Z31 the index of lane L-1.
	nact := K
	if S == 1 {
		nact = 1
	}
	act := func(k int) int { return 4 + k%nact }
	nidx := 0
	if S > 1 {
		nidx = K
	}
	idxr := func(k int) int { return 4 + nact + k }
	facc := func(r int) int { return 4 + nact + nidx + r }
	iacc := func(r int) int { return 4 + nact + nidx + R + r }
	if iacc(R-1) >= 31 {
		panic(name + ": too many registers")
	}
	fmt.Fprintf(&b, "// func %s(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-64\n", name)
	p("MOVQ w+0(FP), SI")
	p("MOVQ ws+8(FP), AX")
	for i := 1; i < R; i++ {
		p("LEAQ (%s)(AX*1), %s", wp[i-1], wp[i])
	}
	p("MOVQ pk+16(FP), DI")
	p("MOVQ nb+32(FP), CX")
	p("MOVL $%d, AX", L-1)
	p("VPBROADCASTD AX, Z31")
	for k := 0; k < nidx; k++ {
		p("VMOVDQU32 vnni8Idx%d<>+%d(SB), %s", S, 64*k, z(idxr(k)))
	}
	for r := 0; r < R; r++ {
		p("VPXORD %s, %s, %s", z(facc(r)), z(facc(r)), z(facc(r)))
	}
	p("TESTQ CX, CX")
	p("JZ %s_done", name)
	label(name + "_loop")
	for r := 0; r < R; r++ {
		p("VPXORD %s, %s, %s", z(iacc(r)), z(iacc(r)), z(iacc(r)))
	}
	if S == 1 {
		for k := 0; k < 8; k++ {
			p("VMOVDQU32 %d(DI), %s", 64*k, z(act(k)))
			for r := 0; r < R; r++ {
				p("VPDPBUSD.BCST %d(%s), %s, %s", 2+4*k, wp[r], z(act(k)), z(iacc(r)))
			}
		}
	} else {
		for k := 0; k < K; k++ {
			p("VMOVDQU32 %d(DI), %s", 64*k, z(act(k)))
		}
		for r := 0; r < R; r++ {
			p("VMOVDQU 2(%s), Y3", wp[r]) // the 32 weight bytes; upper lanes 0
			for k := 0; k < K; k++ {
				p("VPERMD Z3, %s, Z2", z(idxr(k)))
				p("VPDPBUSD Z2, %s, %s", z(act(k)), z(iacc(r)))
			}
		}
	}
	for r := 0; r < R; r++ {
		p("VPBROADCASTW (%s), Y0", wp[r])
		p("VCVTPH2PS Y0, Z0") // exact
		i, f := z(iacc(r)), z(facc(r))
		if S >= 2 {
			p("VSHUFI64X2 $0x4e, %s, %s, Z1", i, i) // swap the 256-bit halves
			p("VPADDD Z1, %s, %s", i, i)
		}
		if S == 4 {
			p("VSHUFI64X2 $0xb1, %s, %s, Z1", i, i) // swap the 128-bit pairs
			p("VPADDD Z1, %s, %s", i, i)
		}
		p("VPERMD %s, Z31, Z1", i)       // lane L-1: 128·Σw
		p("VPSUBD Z1, %s, %s", i, i)     // isum_j
		p("VMULPS %d(DI), Z0, Z1", 64*K) // dw*dx
		p("VCVTDQ2PS %s, %s", i, i)      // exact: |isum| < 2^24
		p("VMULPS %s, Z1, Z1", i)        // (dw*dx)*isum
		p("VADDPS Z1, %s, %s", f, f)
	}
	for _, r := range wp {
		p("ADDQ $34, %s", r)
	}
	p("ADDQ $%d, DI", blk)
	p("DECQ CX")
	p("JNZ %s_loop", name)
	label(name + "_done")
	idx := z(iacc(0))
	p("MOVQ out+40(FP), DX")
	p("MOVQ ld+48(FP), AX")
	p("VPBROADCASTD AX, %s", idx)
	p("VPMULLD vnniIota<>(SB), %s, %s", idx, idx)
	p("MOVQ mask+56(FP), AX")
	p("KMOVW AX, K1")
	for r := 0; r < R; r++ {
		p("KMOVW K1, K3") // the scatter clears its mask
		p("VSCATTERDPS %s, K3, %d(DX)(%s*4)", z(facc(r)), 4*r, idx)
	}
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// vnni8Idx writes the VPERMD indices of vnni8Tile for S parts: for step
// k', lane h*L+j takes dword h*8/S+k' of the weight block.
func vnni8Idx(S int) {
	L, K := 16/S, 8/S
	for k := 0; k < K; k++ {
		for lane := 0; lane < 16; lane++ {
			fmt.Fprintf(&b, "DATA vnni8Idx%d<>+%d(SB)/4, $%d\n", S, 64*k+4*lane, lane/L*K+k)
		}
	}
	fmt.Fprintf(&b, "GLOBL vnni8Idx%d<>(SB), RODATA|NOPTR, $%d\n\n", S, 64*K)
}

// quantQ8Z writes quantQ8Z(x *float32, q *int8, d *float32, nb int), the
// AVX-512 form of QuantizeQ8 over nb blocks, with the same bits:
//
//	amax: VMAXPS with |v| as the first source (a NaN |v| keeps the running
//	      maximum, as `if v > amax` does), then a horizontal maximum (the
//	      values are then >= +0 and not NaN, so any order gives the same);
//	d = amax / 127 (VDIVSS); id = 1/d (VDIVSS), or 0 when d == 0;
//	r = float32(float32(v*id) + 1.5*2^23) - 1.5*2^23 (VMULPS, VADDPS, VSUBPS);
//	clamp with VMINPS/VMAXPS taking r as the second source, so a NaN stays
//	NaN as in the Go code; VCVTTPS2DQ and VPMOVDB, like Go's int8(r)
//	(CVTTSS2SL, low byte: a NaN gives 0).
func quantQ8Z() {
	name := "quantQ8Z"
	fmt.Fprintf(&b, "// func %s(x *float32, q *int8, d *float32, nb int)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-32\n", name)
	p("MOVQ x+0(FP), SI")
	p("MOVQ q+8(FP), DI")
	p("MOVQ d+16(FP), DX")
	p("MOVQ nb+24(FP), CX")
	consts := []struct {
		reg  int
		bits uint32
	}{
		{31, 0x7fffffff}, // |v| mask
		{30, 0x42fe0000}, // 127
		{29, 0xc2fe0000}, // -127
		{28, 0x4b400000}, // 1.5 * 2^23
		{27, 0x3f800000}, // 1
	}
	for _, c := range consts {
		p("MOVL $0x%08x, AX", c.bits)
		p("VPBROADCASTD AX, %s", z(c.reg))
	}
	p("TESTQ CX, CX")
	p("JZ %s_done", name)
	label(name + "_loop")
	p("VMOVUPS (SI), Z0")
	p("VMOVUPS 64(SI), Z1")
	p("VPANDD Z31, Z0, Z2")
	p("VPANDD Z31, Z1, Z3")
	p("VPXORD Z4, Z4, Z4")
	p("VMAXPS Z4, Z2, Z4") // (|v| > m) ? |v| : m
	p("VMAXPS Z4, Z3, Z4")
	p("VEXTRACTF64X4 $1, Z4, Y5")
	p("VMAXPS Y5, Y4, Y4")
	p("VEXTRACTF128 $1, Y4, X5")
	p("VMAXPS X5, X4, X4")
	p("VPERMILPS $0x4e, X4, X5")
	p("VMAXPS X5, X4, X4")
	p("VPERMILPS $0xb1, X4, X5")
	p("VMAXPS X5, X4, X4")  // lane 0: amax
	p("VDIVSS X30, X4, X6") // d = amax/127
	p("VMOVSS X6, (DX)")
	p("VXORPS X7, X7, X7")
	p("VUCOMISS X7, X6")
	p("JEQ %s_zero", name)  // d == 0 (d is never NaN): id = 0
	p("VDIVSS X6, X27, X7") // id = 1/d
	label(name + "_zero")
	p("VBROADCASTSS X7, Z7")
	for _, v := range []int{0, 1} {
		r := z(v)
		p("VMULPS Z7, %s, %s", r, r)
		p("VADDPS Z28, %s, %s", r, r)
		p("VSUBPS Z28, %s, %s", r, r)
		p("VMINPS %s, Z30, %s", r, r) // (127 < r) ? 127 : r
		p("VMAXPS %s, Z29, %s", r, r) // (-127 > r) ? -127 : r
		p("VCVTTPS2DQ %s, %s", r, r)
		p("VPMOVDB %s, %d(DI)", r, 16*v)
	}
	p("ADDQ $128, SI")
	p("ADDQ $32, DI")
	p("ADDQ $4, DX")
	p("DECQ CX")
	p("JNZ %s_loop", name)
	label(name + "_done")
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}
