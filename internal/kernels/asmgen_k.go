//go:build ignore

package main

import "fmt"

// The AVX2 kernels of the K types (run with asmgen.go): q4kDot{P},
// q5kDot{P} and q6kDot{P}(w *byte, q *int8, qs int, s *int16, ss int,
// d *float32, ds int, nb int, out *float32) multiply one weight row (nb
// super-blocks of 256) by P activation rows quantised to Q8K: row p's
// quanta at q + p*qs, its sums (Q4_K/Q5_K: of 32, Acts.KS32; Q6_K: of 16,
// Acts.KS) at s + p*ss, its scales at d + p*ds
// (strides in bytes). out[p] is the value of section 4.2 of
// docs/determinism.md for row p, bit for bit (dotK):
//
//	Q4_K/Q5_K: per chunk c of 64 elements, the 32 bytes of nibbles give
//	  sub-blocks 2c (low) and 2c+1 (high); VPMADDUBSW(nibbles (u8), qx (s8))
//	  sums pairs (at most 2·31·128 < 2^15: exact for any int8 activation),
//	  VPMADDWD by the sub-block's scale (broadcast int16 by VPSHUFB) gives
//	  int32, and the chunks add up in eight int32 lanes: their sum is isum.
//	  msum = Σ_s m_s·ξ_s with ξ_s the sum of 32 s[s] (VPMADDWD).
//	Q6_K: the quanta are taken as u = q + 32 ∈ [0, 63] (unsigned), pairs
//	  at most 2·63·128 < 2^15; isum = Σ_s sc_s·Σ u·qx − 32·Σ_s sc_s·s_s,
//	  the correction from the sums of 16 (VPMADDWD of scales and sums).
//
// Then, per super-block in increasing order, the float sequence of the
// specification: [d, dmin] ⊗ dx (VMULPS), ⊗ [f32(isum), f32(msum)]
// (VCVTDQ2PS rounds to nearest even, as Go's float32(int32)), A ⊖ B, and
// acc ⊕ that, acc kept in out[p] (the sums never overlap in time: each
// chain is sequential). Never a fused multiply-add.

var kTiles = []int{1, 2, 4}

func kQuantKernels() {
	bytes32 := func(name string, v byte) {
		for i := 0; i < 4; i++ {
			fmt.Fprintf(&b, "DATA %s<>+%d(SB)/8, $0x%016x\n", name, 8*i, uint64(v)*0x0101010101010101)
		}
		fmt.Fprintf(&b, "GLOBL %s<>(SB), RODATA|NOPTR, $32\n", name)
	}
	bytes32("kLow4", 0x0f)
	bytes32("kLow2", 0x03)
	bytes32("kOne", 0x01)
	bytes32("k3f", 0x3f)
	// kShift: dword shifts [0, 4, 0, 0] (VPSRLVD) for the scale unpacking.
	fmt.Fprintf(&b, "DATA kShift<>+0(SB)/8, $0x0000000400000000\nDATA kShift<>+8(SB)/8, $0\nGLOBL kShift<>(SB), RODATA|NOPTR, $16\n")
	// shufK4 + 32i: VPSHUFB indices that broadcast int16 word i of each
	// 128-bit lane to the whole lane.
	for i := 0; i < 8; i++ {
		for j := 0; j < 32; j += 2 {
			fmt.Fprintf(&b, "DATA shufK4<>+%d(SB)/2, $0x%02x%02x\n", 32*i+j, 2*i+1, 2*i)
		}
	}
	b.WriteString("GLOBL shufK4<>(SB), RODATA|NOPTR, $256\n")
	// shufK6 + 32k: the low lane broadcasts word 2k, the high lane word 2k+1.
	for k := 0; k < 4; k++ {
		for j := 0; j < 32; j += 2 {
			w := 2 * k
			if j >= 16 {
				w++
			}
			fmt.Fprintf(&b, "DATA shufK6<>+%d(SB)/2, $0x%02x%02x\n", 32*k+j, 2*w+1, 2*w)
		}
	}
	b.WriteString("GLOBL shufK6<>(SB), RODATA|NOPTR, $128\n\n")
	for _, P := range kTiles {
		kDot(false, P)
		kDot(true, P)
		k6Dot(P)
	}
	for _, t := range []int{4, 5, 6} {
		kRows(t)
	}
	kVNNIKernels()
	quantQ8KZ()
	for _, t := range []int{4, 5, 6} {
		for G := 1; G <= 2; G++ {
			q2kTile(t, G)
		}
	}
}

// kArgs loads the arguments: SI w, DI/R11 the quanta of rows 0-1 / 2-3
// (stride R8), BX/R12 the sums (stride R9), DX/R13 the scales (stride
// R10), CX nb, AX out; and zeroes out[0..P).
func kArgs(name string, P int) {
	fmt.Fprintf(&b, "// func %s(w *byte, q *int8, qs int, s *int16, ss int, d *float32, ds int, nb int, out *float32)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-72\n", name)
	p("MOVQ w+0(FP), SI")
	p("MOVQ q+8(FP), DI")
	p("MOVQ qs+16(FP), R8")
	p("MOVQ s+24(FP), BX")
	p("MOVQ ss+32(FP), R9")
	p("MOVQ d+40(FP), DX")
	p("MOVQ ds+48(FP), R10")
	p("MOVQ nb+56(FP), CX")
	p("MOVQ out+64(FP), AX")
	p("LEAQ (DI)(R8*2), R11")
	p("LEAQ (BX)(R9*2), R12")
	p("LEAQ (DX)(R10*2), R13")
	for i := 0; i < P; i++ {
		p("MOVL $0, %d(AX)", 4*i)
	}
	p("TESTQ CX, CX")
	p("JZ %s_done", name)
}

// rowAddr is the address of row p's data at offset off from the row-0/row-2
// base registers b0, b2 and stride register st.
func rowAddr(p, off int, b0, b2, st string) string {
	base := b0
	if p >= 2 {
		base = b2
	}
	if p%2 == 1 {
		return fmt.Sprintf("%d(%s)(%s*1)", off, base, st)
	}
	return fmt.Sprintf("%d(%s)", off, base)
}

func qAddr(p, off int) string { return rowAddr(p, off, "DI", "R11", "R8") }
func sAddr(p, off int) string { return rowAddr(p, off, "BX", "R12", "R9") }
func dAddr(p int) string      { return rowAddr(p, 0, "DX", "R13", "R10") }

// kAdvance steps every pointer to the next super-block and loops; ss is
// the bytes of activation sums per super-block (32 for the 16 sums of 16 of
// Q6_K, 16 for the 8 sums of 32 of Q4_K/Q5_K).
func kAdvance(name string, bs, ss int) {
	p("ADDQ $%d, SI", bs)
	p("ADDQ $256, DI")
	p("ADDQ $256, R11")
	p("ADDQ $%d, BX", ss)
	p("ADDQ $%d, R12", ss)
	p("ADDQ $4, DX")
	p("ADDQ $4, R13")
	p("DECQ CX")
	p("JNZ %s_loop", name)
	label(name + "_done")
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// kDot writes q4kDot{P} (q5 false) or q5kDot{P}.
//
// Registers: Y15 nibble mask; Y14 the eight scales (int16, both lanes);
// X13 the eight mins (int16); X12 [d, dmin]; Y0/Y1 the low/high quanta of
// a chunk; Y2/Y3 their scales; Y4 product; Y7 qh (Q5_K), Y6 scratch;
// Y8.. the int accumulators of rows 0..P-1.
func kDot(q5 bool, P int) {
	name, bs := fmt.Sprintf("q4kDot%d", P), 144
	if q5 {
		name, bs = fmt.Sprintf("q5kDot%d", P), 176
	}
	kArgs(name, P)
	p("VMOVDQU kLow4<>(SB), Y15")
	label(name + "_loop")
	kBody(q5, P, "")
	kAdvance(name, bs, 16)
}

// kBody is one super-block of kDot: SI the weights, the activations as
// kArgs sets them, AX out.
func kBody(q5 bool, P int, accReg string) {
	qs := 16
	if q5 {
		qs = 48
	}
	// Scales and mins: X0 = bytes 4..19 (u0, u1, u2 = the 12 scale bytes).
	p("VMOVDQU 4(SI), X0")
	p("VPAND k3f<>(SB), X0, X1")      // [sc 0-3, m 0-3]
	p("VPSRLD $6, X0, X2")            //
	p("VPAND kLow2<>(SB), X2, X2")    //
	p("VPSLLD $4, X2, X2")            // [(u0>>6&3)<<4, (u1>>6&3)<<4]
	p("VPSHUFD $0x0a, X0, X3")        // [u2, u2]
	p("VPSRLVD kShift<>(SB), X3, X3") // [u2, u2>>4]
	p("VPAND kLow4<>(SB), X3, X3")
	p("VPOR X2, X3, X3")       // [sc 4-7, m 4-7]
	p("VPUNPCKLDQ X3, X1, X1") // [sc 0-3, sc 4-7, m 0-3, m 4-7]
	p("VPMOVZXBW X1, X2")
	p("VINSERTI128 $1, X2, Y2, Y14")
	p("VPSRLDQ $8, X1, X1")
	p("VPMOVZXBW X1, X13")
	p("VMOVD 0(SI), X12")
	p("VCVTPH2PS X12, X12") // [d, dmin], exact
	if q5 {
		p("VMOVDQU 16(SI), Y7")
	}
	for c := 0; c < 4; c++ {
		p("VMOVDQU %d(SI), Y0", qs+32*c)
		p("VPSRLW $4, Y0, Y1")
		p("VPAND Y15, Y0, Y0")
		p("VPAND Y15, Y1, Y1")
		if q5 {
			for h, dst := range []string{"Y0", "Y1"} {
				sh := 2*c + h
				if sh == 0 {
					p("VPAND kOne<>(SB), Y7, Y6")
				} else {
					p("VPSRLW $%d, Y7, Y6", sh)
					p("VPAND kOne<>(SB), Y6, Y6")
				}
				p("VPSLLW $4, Y6, Y6")
				p("VPOR Y6, %s, %s", dst, dst)
			}
		}
		p("VPSHUFB shufK4<>+%d(SB), Y14, Y2", 32*(2*c))
		p("VPSHUFB shufK4<>+%d(SB), Y14, Y3", 32*(2*c+1))
		for r := 0; r < P; r++ {
			acc := y(8 + r)
			p("VPMADDUBSW %s, Y0, Y4", qAddr(r, 64*c))
			p("VPMADDWD Y2, Y4, Y4")
			if c == 0 {
				p("VMOVDQA Y4, %s", acc)
			} else {
				p("VPADDD Y4, %s, %s", acc, acc)
			}
			p("VPMADDUBSW %s, Y1, Y4", qAddr(r, 64*c+32))
			p("VPMADDWD Y3, Y4, Y4")
			p("VPADDD Y4, %s, %s", acc, acc)
		}
	}
	for r := 0; r < P; r++ {
		acc := 8 + r
		p("VPMADDWD %s, X13, X5", sAddr(r, 0)) // m_s·ξ_s (the sums of 32), pairs summed
		p("VEXTRACTI128 $1, %s, X1", y(acc))
		p("VPADDD X1, %s, X1", x(acc))
		p("VPHADDD X5, X1, X1")
		p("VPHADDD X1, X1, X1") // [isum, msum, isum, msum]
		p("VCVTDQ2PS X1, X1")
		p("VBROADCASTSS %s, X0", dAddr(r))
		p("VMULPS X12, X0, X0") // [d ⊗ dx, dmin ⊗ dx]
		p("VMULPS X1, X0, X0")  // [A, B]
		p("VMOVSHDUP X0, X1")
		p("VSUBSS X1, X0, X0") // A ⊖ B
		if accReg != "" {      // P = 1, the accumulator in a register
			p("VADDSS X0, %s, %s", accReg, accReg) // acc ⊕ (A ⊖ B)
			continue
		}
		p("VADDSS %d(AX), X0, X0", 4*r) // acc ⊕ (A ⊖ B)
		p("VMOVSS X0, %d(AX)", 4*r)
	}
}

// k6Dot writes q6kDot{P}.
//
// Registers: Y14 the sixteen scales (int16); Y13/Y12 scales 0-7 / 8-15 in
// both lanes; X11 d; Y0/Y1 ql, Y2 qh, Y3 u, Y4 high bits, Y5 the scales of
// u, Y6 product; Y7.. the int accumulators.
func k6Dot(P int) {
	name := fmt.Sprintf("q6kDot%d", P)
	kArgs(name, P)
	label(name + "_loop")
	k6Body(P, "")
	kAdvance(name, 210, 32)
}

// k6Body is one super-block of k6Dot.
func k6Body(P int, accReg string) {
	p("VPMOVSXBW 192(SI), Y14")
	p("VPERM2I128 $0x00, Y14, Y14, Y13")
	p("VPERM2I128 $0x11, Y14, Y14, Y12")
	p("MOVWLZX 208(SI), R14")
	p("VMOVD R14, X11")
	p("VCVTPH2PS X11, X11")
	for r := 0; r < P; r++ {
		acc := y(7 + r)
		p("VPMADDWD %s, Y14, Y6", sAddr(r, 0)) // sc_s·s_s, pairs summed
		p("VPSLLD $5, Y6, Y6")
		p("VPXOR %s, %s, %s", acc, acc, acc)
		p("VPSUBD Y6, %s, %s", acc, acc) // −32·Σ sc_s·s_s
	}
	for h := 0; h < 2; h++ {
		p("VMOVDQU %d(SI), Y0", 64*h)
		p("VMOVDQU %d(SI), Y1", 64*h+32)
		p("VMOVDQU %d(SI), Y2", 128+32*h)
		sc := "Y13"
		if h == 1 {
			sc = "Y12"
		}
		for k := 0; k < 4; k++ {
			src := "Y0"
			if k%2 == 1 {
				src = "Y1"
			}
			if k < 2 {
				p("VPAND kLow4<>(SB), %s, Y3", src)
			} else {
				p("VPSRLW $4, %s, Y3", src)
				p("VPAND kLow4<>(SB), Y3, Y3")
			}
			if k == 0 {
				p("VPAND kLow2<>(SB), Y2, Y4")
			} else {
				p("VPSRLW $%d, Y2, Y4", 2*k)
				p("VPAND kLow2<>(SB), Y4, Y4")
			}
			p("VPSLLW $4, Y4, Y4")
			p("VPOR Y4, Y3, Y3") // u = q + 32
			p("VPSHUFB shufK6<>+%d(SB), %s, Y5", 32*k, sc)
			for r := 0; r < P; r++ {
				acc := y(7 + r)
				p("VPMADDUBSW %s, Y3, Y6", qAddr(r, 128*h+32*k))
				p("VPMADDWD Y5, Y6, Y6")
				p("VPADDD Y6, %s, %s", acc, acc)
			}
		}
	}
	for r := 0; r < P; r++ {
		acc := 7 + r
		p("VEXTRACTI128 $1, %s, X1", y(acc))
		p("VPADDD X1, %s, X1", x(acc))
		p("VPSHUFD $0x4e, X1, X2")
		p("VPADDD X2, X1, X1")
		p("VPSHUFD $0xb1, X1, X2")
		p("VPADDD X2, X1, X1") // isum
		p("VCVTDQ2PS X1, X1")
		p("VMULSS %s, X11, X0", dAddr(r)) // d ⊗ dx
		p("VMULSS X1, X0, X0")            // ⊗ f32(isum)
		if accReg != "" {
			p("VADDSS X0, %s, %s", accReg, accReg)
			continue
		}
		p("VADDSS %d(AX), X0, X0", 4*r)
		p("VMOVSS X0, %d(AX)", 4*r)
	}
}

// kRows writes q4kRows, q5kRows and q6kRows(w *byte, ws int, rows int,
// q *int8, s *int16, d *float32, nb int, out *float32): out[i] = the value
// of weight row i (at w + i*ws) against one activation row, for i < rows,
// each exactly as kDot with P = 1 (decode without a call per row).
func kRows(typ int) {
	name := fmt.Sprintf("q%dkRows", typ)
	bs := map[int]int{4: 144, 5: 176, 6: 210}[typ]
	fmt.Fprintf(&b, "// func %s(w *byte, ws int, rows int, q *int8, s *int16, d *float32, nb int, out *float32)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-64\n", name)
	p("MOVQ w+0(FP), R9") // the row; R8 counts rows (P = 1 bodies use neither)
	p("MOVQ rows+16(FP), R8")
	p("MOVQ out+56(FP), AX")
	p("VMOVDQU kLow4<>(SB), Y15")
	p("TESTQ R8, R8")
	p("JZ %s_done", name)
	label(name + "_row")
	p("MOVQ R9, SI")
	p("MOVQ q+24(FP), DI")
	p("MOVQ s+32(FP), BX")
	p("MOVQ d+40(FP), DX")
	p("MOVQ nb+48(FP), CX")
	// The accumulator: X8 (Q6_K, whose P = 1 body leaves Y8-Y10 free) or
	// X9 (Q4_K/Q5_K: Y9-Y11 free).
	acc := "X9"
	if typ == 6 {
		acc = "X8"
	}
	p("VXORPS %s, %s, %s", acc, acc, acc)
	p("TESTQ CX, CX")
	p("JZ %s_next", name)
	label(name + "_loop")
	if typ == 6 {
		k6Body(1, acc)
	} else {
		kBody(typ == 5, 1, acc)
	}
	ss := 16 // the sums of 32 (Q4_K, Q5_K) or of 16 (Q6_K) of a super-block
	if typ == 6 {
		ss = 32
	}
	p("ADDQ $%d, SI", bs)
	p("ADDQ $256, DI")
	p("ADDQ $%d, BX", ss)
	p("ADDQ $4, DX")
	p("DECQ CX")
	p("JNZ %s_loop", name)
	label(name + "_next")
	p("VMOVSS %s, 0(AX)", acc)
	p("ADDQ ws+8(FP), R9")
	p("ADDQ $4, AX")
	p("DECQ R8")
	p("JNZ %s_row", name)
	label(name + "_done")
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// The AVX-512 VNNI prefill tiles of the K types: kvnni{4,5,6}R1G{G}(w *byte,
// ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)
// multiply one weight row (Q4_K, Q5_K or Q6_K) by G groups of 16 activation
// rows packed by packK (k_vnni_amd64.go; group stride gs bytes) over nb
// super-blocks, and store lane j of group g at out[(16g+j)*ld] if bit
// 16g+j of mask is set. Lane j holds activation row 16g+j throughout.
//
// Per super-block and group: for each sub-block, VPDPBUSD of the unsigned
// quanta (one dword of 4 weights broadcast, unpacked with VPANDD/VPSRLD)
// and the packed activation dwords gives Σ u·q_x exactly (a zmm starting at
// 0, at most 32·31·128 per lane); VPMULLD by the sub-block scale and VPADDD
// make isum. Q4_K/Q5_K: msum = Σ_s m_s·ξ_s by VPDPWSSD of the packed pairs
// of activation sums of 16 and the broadcast (m_s, m_s). Q6_K: u = q + 32
// and isum −= 32·Σ_s sc_s·ξ_s (VPDPWSSD of the packed pairs and the scale
// pairs). Then, lane by lane, the spec's float sequence: (d ⊗ dx) ⊗ f32(isum)
// (VMULPS, VCVTDQ2PS, VMULPS), ⊖ (dmin ⊗ dx) ⊗ f32(msum), and acc ⊕ that
// (VADDPS); never FMA.
const (
	kBlk   = 4672 // packed bytes per (group, super-block): 4096 quanta, 64 dx, 512 sum pairs
	kDX    = 4096
	kPairs = 4160
)

var kvnniGs = []int{1, 2, 3, 4}

func kVNNIKernels() {
	for _, t := range []int{4, 5, 6} {
		for _, G := range kvnniGs {
			kvnniTile(t, G)
		}
		for _, G := range []int{1, 2} {
			kvnniTile2(t, G)
		}
	}
}

func kvnniTile(typ, G int) {
	name := fmt.Sprintf("kvnni%dR1G%d", typ, G)
	bs := map[int]int{4: 144, 5: 176, 6: 210}[typ]
	ap := []string{"DI", "BX", "R9", "R10"}[:G]
	// Registers: Z0-Z3 scratch (the VEX-encoded scale unpacking uses
	// X0-X3); Z31 0x0f bytes, Z30 0x03 / 0x01 bytes, Z29 d, Z28 dmin; per
	// group g: Z(4+g) float acc, Z(8+g) isum, Z(12+g) msum (Q6_K: the
	// correction), Z(16+g) and Z(20+g) sub-block sums.
	facc := func(g int) string { return z(4 + g) }
	isum := func(g int) string { return z(8 + g) }
	msum := func(g int) string { return z(12 + g) }
	s0 := func(g int) string { return z(16 + g) }
	s1 := func(g int) string { return z(20 + g) }
	fmt.Fprintf(&b, "// func %s(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $128-64\n", name)
	p("MOVQ w+0(FP), SI")
	p("MOVQ pk+16(FP), DI")
	p("MOVQ gs+24(FP), AX")
	for g := 1; g < G; g++ {
		p("LEAQ (%s)(AX*1), %s", ap[g-1], ap[g])
	}
	p("MOVQ nb+32(FP), CX")
	p("MOVL $0x0f0f0f0f, AX")
	p("VPBROADCASTD AX, Z31")
	if typ == 6 {
		p("MOVL $0x03030303, AX")
	} else {
		p("MOVL $0x01010101, AX")
	}
	p("VPBROADCASTD AX, Z30")
	for g := 0; g < G; g++ {
		p("VPXORD %s, %s, %s", facc(g), facc(g), facc(g))
	}
	p("TESTQ CX, CX")
	p("JZ %s_done", name)
	label(name + "_loop")
	for g := 0; g < G; g++ {
		p("VPXORD %s, %s, %s", isum(g), isum(g), isum(g))
		p("VPXORD %s, %s, %s", msum(g), msum(g), msum(g))
	}
	// Stack: 0(SP) the scales as int32 (8 or 16), 64(SP) the pairs for
	// VPDPWSSD: (m_s, m_s) (Q4_K/Q5_K) or (sc_2t, sc_2t+1) (Q6_K).
	if typ == 6 {
		p("VPMOVSXBD 192(SI), Z0")
		p("VMOVDQU32 Z0, 0(SP)")
		p("VPMOVSXBW 192(SI), Y0")
		p("VMOVDQU Y0, 64(SP)")
		p("VPBROADCASTW 208(SI), Y0")
		p("VCVTPH2PS Y0, Z29") // d, exact
	} else {
		p("VMOVDQU 4(SI), X0")
		p("VPAND k3f<>(SB), X0, X1")
		p("VPSRLD $6, X0, X2")
		p("VPAND kLow2<>(SB), X2, X2")
		p("VPSLLD $4, X2, X2")
		p("VPSHUFD $0x0a, X0, X3")
		p("VPSRLVD kShift<>(SB), X3, X3")
		p("VPAND kLow4<>(SB), X3, X3")
		p("VPOR X2, X3, X3")
		p("VPUNPCKLDQ X3, X1, X1") // [sc 0-7, m 0-7] bytes
		p("VPMOVZXBD X1, Z0")
		p("VMOVDQU32 Z0, 0(SP)") // sc_s at 4s, m_s at 32+4s (int32)
		p("VPSRLDQ $8, X1, X1")
		p("VPMOVZXBW X1, X2")      // m as int16
		p("VPUNPCKLWD X2, X2, X3") // (m0,m0) .. (m3,m3)
		p("VPUNPCKHWD X2, X2, X2") // (m4,m4) .. (m7,m7)
		p("VMOVDQU X3, 64(SP)")
		p("VMOVDQU X2, 80(SP)")
		p("VPBROADCASTW 0(SI), Y0")
		p("VCVTPH2PS Y0, Z29") // d
		p("VPBROADCASTW 2(SI), Y0")
		p("VCVTPH2PS Y0, Z28") // dmin
	}
	// msum (Q6_K: the correction) from the pairs of activation sums of 16.
	for t := 0; t < 8; t++ {
		for g := 0; g < G; g++ {
			p("VMOVDQU32 %d(%s), Z1", kPairs+64*t, ap[g])
			p("VPDPWSSD.BCST %d(SP), Z1, %s", 64+4*t, msum(g))
		}
	}
	if typ == 6 {
		for h := 0; h < 2; h++ {
			for k := 0; k < 4; k++ {
				for j := 0; j < 8; j++ {
					p("VPBROADCASTD %d(SI), Z0", 64*h+32*(k&1)+4*j)
					if k >= 2 {
						p("VPSRLD $4, Z0, Z0")
					}
					p("VPANDD Z31, Z0, Z0")
					p("VPBROADCASTD %d(SI), Z1", 128+32*h+4*j)
					if k > 0 {
						p("VPSRLD $%d, Z1, Z1", 2*k)
					}
					p("VPANDD Z30, Z1, Z1")
					p("VPSLLD $4, Z1, Z1")
					p("VPORD Z1, Z0, Z0") // u = q + 32
					t := 32*h + 8*k + j
					for g := 0; g < G; g++ {
						if j%4 == 0 {
							p("VPXORD %s, %s, %s", s0(g), s0(g), s0(g))
						}
						p("VPDPBUSD %d(%s), Z0, %s", 64*t, ap[g], s0(g))
					}
					if j%4 == 3 {
						sub := 8*h + 2*k + j/4
						for g := 0; g < G; g++ {
							p("VPMULLD.BCST %d(SP), %s, %s", 4*sub, s0(g), s0(g))
							p("VPADDD %s, %s, %s", s0(g), isum(g), isum(g))
						}
					}
				}
			}
		}
		for g := 0; g < G; g++ {
			p("VPSLLD $5, %s, %s", msum(g), msum(g))
			p("VPSUBD %s, %s, %s", msum(g), isum(g), isum(g))
		}
	} else {
		qs := 16
		if typ == 5 {
			qs = 48
		}
		for c := 0; c < 4; c++ {
			for g := 0; g < G; g++ {
				p("VPXORD %s, %s, %s", s0(g), s0(g), s0(g))
				p("VPXORD %s, %s, %s", s1(g), s1(g), s1(g))
			}
			for k := 0; k < 8; k++ {
				p("VPBROADCASTD %d(SI), Z0", qs+32*c+4*k)
				p("VPSRLD $4, Z0, Z1")
				p("VPANDD Z31, Z0, Z0")
				p("VPANDD Z31, Z1, Z1")
				if typ == 5 {
					p("VPBROADCASTD %d(SI), Z2", 16+4*k)
					for hh, dst := range []string{"Z0", "Z1"} {
						sh := 2*c + hh
						if sh > 0 {
							p("VPSRLD $%d, Z2, Z3", sh)
							p("VPANDD Z30, Z3, Z3")
						} else {
							p("VPANDD Z30, Z2, Z3")
						}
						p("VPSLLD $4, Z3, Z3")
						p("VPORD Z3, %s, %s", dst, dst)
					}
				}
				for g := 0; g < G; g++ {
					p("VPDPBUSD %d(%s), Z0, %s", 64*(16*c+k), ap[g], s0(g))
					p("VPDPBUSD %d(%s), Z1, %s", 64*(16*c+8+k), ap[g], s1(g))
				}
			}
			for g := 0; g < G; g++ {
				p("VPMULLD.BCST %d(SP), %s, %s", 4*(2*c), s0(g), s0(g))
				p("VPMULLD.BCST %d(SP), %s, %s", 4*(2*c+1), s1(g), s1(g))
				p("VPADDD %s, %s, %s", s0(g), isum(g), isum(g))
				p("VPADDD %s, %s, %s", s1(g), isum(g), isum(g))
			}
		}
	}
	for g := 0; g < G; g++ {
		p("VMULPS %d(%s), Z29, Z0", kDX, ap[g]) // d ⊗ dx
		p("VCVTDQ2PS %s, %s", isum(g), isum(g))
		p("VMULPS %s, Z0, Z0", isum(g)) // ⊗ f32(isum)
		if typ != 6 {
			p("VMULPS %d(%s), Z28, Z1", kDX, ap[g]) // dmin ⊗ dx
			p("VCVTDQ2PS %s, %s", msum(g), msum(g))
			p("VMULPS %s, Z1, Z1", msum(g))
			p("VSUBPS Z1, Z0, Z0") // A ⊖ B
		}
		p("VADDPS Z0, %s, %s", facc(g), facc(g))
	}
	p("ADDQ $%d, SI", bs)
	for _, a := range ap {
		p("ADDQ $%d, %s", kBlk, a)
	}
	p("DECQ CX")
	p("JNZ %s_loop", name)
	label(name + "_done")
	// Lane j of group g goes to out[(16g+j)*ld] where bit 16g+j of mask
	// is set (VSCATTERDPS with indices j*ld).
	idx := "Z0"
	p("MOVQ out+40(FP), DX")
	p("MOVQ ld+48(FP), AX")
	p("VPBROADCASTD AX, %s", idx)
	p("VPMULLD vnniIota<>(SB), %s, %s", idx, idx)
	p("SHLQ $6, AX") // 16 rows of ld floats
	p("MOVQ mask+56(FP), R11")
	for g := 0; g < G; g++ {
		if g > 0 {
			p("ADDQ AX, DX")
			p("SHRQ $16, R11")
		}
		p("KMOVW R11, K1")
		p("VSCATTERDPS %s, K1, (DX)(%s*4)", facc(g), idx)
	}
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// quantQ8KZ writes quantQ8KZ(x *float32, q *int8, d *float32, nb int), the
// AVX-512 form of the quantisation of QuantizeQ8K over nb super-blocks of
// 256, with the same bits: quantQ8Z's operations (see there) on 16 zmm
// registers (Z8-Z23) per super-block; the reduction of amax uses the
// VEX-encodable Z0-Z4. The sums of 16 are left to the Go caller.
func quantQ8KZ() {
	name := "quantQ8KZ"
	fmt.Fprintf(&b, "// func %s(x *float32, q *int8, d *float32, nb int)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-32\n", name)
	p("MOVQ x+0(FP), SI")
	p("MOVQ q+8(FP), DI")
	p("MOVQ d+16(FP), DX")
	p("MOVQ nb+24(FP), CX")
	for _, c := range []struct {
		reg  int
		bits uint32
	}{{31, 0x7fffffff}, {30, 0x42fe0000}, {29, 0xc2fe0000}, {28, 0x4b400000}, {27, 0x3f800000}} {
		p("MOVL $0x%08x, AX", c.bits)
		p("VPBROADCASTD AX, %s", z(c.reg))
	}
	p("TESTQ CX, CX")
	p("JZ %s_done", name)
	label(name + "_loop")
	p("VPXORD Z0, Z0, Z0")
	for i := 0; i < 16; i++ {
		p("VMOVUPS %d(SI), %s", 64*i, z(8+i))
		p("VPANDD Z31, %s, Z4", z(8+i))
		p("VMAXPS Z0, Z4, Z0") // (|v| > m) ? |v| : m
	}
	p("VEXTRACTF64X4 $1, Z0, Y1")
	p("VMAXPS Y1, Y0, Y0")
	p("VEXTRACTF128 $1, Y0, X1")
	p("VMAXPS X1, X0, X0")
	p("VPERMILPS $0x4e, X0, X1")
	p("VMAXPS X1, X0, X0")
	p("VPERMILPS $0xb1, X0, X1")
	p("VMAXPS X1, X0, X0")  // lane 0: amax
	p("VDIVSS X30, X0, X2") // d = amax/127
	p("VMOVSS X2, (DX)")
	p("VXORPS X3, X3, X3")
	p("VUCOMISS X3, X2")
	p("JEQ %s_zero", name)  // d == 0: id = 0
	p("VDIVSS X2, X27, X3") // id = 1/d
	label(name + "_zero")
	p("VBROADCASTSS X3, Z3")
	for i := 0; i < 16; i++ {
		r := z(8 + i)
		p("VMULPS Z3, %s, %s", r, r)
		p("VADDPS Z28, %s, %s", r, r)
		p("VSUBPS Z28, %s, %s", r, r)
		p("VMINPS %s, Z30, %s", r, r)
		p("VMAXPS %s, Z29, %s", r, r)
		p("VCVTTPS2DQ %s, %s", r, r)
		p("VPMOVDB %s, %d(DI)", r, 16*i)
	}
	p("ADDQ $1024, SI")
	p("ADDQ $256, DI")
	p("ADDQ $4, DX")
	p("DECQ CX")
	p("JNZ %s_loop", name)
	label(name + "_done")
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// kvnniTile2 writes kvnni{4,5,6}R{R}G{G} for R = 2: as kvnniTile, two
// weight rows (w, w+ws) against G groups, each activation vector loaded
// once into a register for both rows. The low and high nibbles of a Q4_K /
// Q5_K chunk go in two passes over its dwords, one sub-block sum register
// per (row, group).
//
// Registers: Z0/Z1 the unpacked dword of row 0/1, Z2/Z3 scratch, Z20+g
// the activations of group g; per (row r, group g), i = r*G+g: Z(4+i)
// float acc, Z(8+i) isum, Z(12+i) msum (Q6_K: correction), Z(16+i)
// sub-block sum; Z24/Z25 d/dmin of row 0, Z26/Z27 of row 1; Z30, Z31
// masks.
func kvnniTile2(typ, G int) {
	const R = 2
	name := fmt.Sprintf("kvnni%dR%dG%d", typ, R, G)
	bs := map[int]int{4: 144, 5: 176, 6: 210}[typ]
	ap := []string{"DI", "BX"}[:G]
	wp := []string{"SI", "R8"}
	idx := func(r, g int) int { return r*G + g }
	facc := func(r, g int) string { return z(4 + idx(r, g)) }
	isum := func(r, g int) string { return z(8 + idx(r, g)) }
	msum := func(r, g int) string { return z(12 + idx(r, g)) }
	sub := func(r, g int) string { return z(16 + idx(r, g)) }
	act := func(g int) string { return z(20 + g) }
	dreg := func(r int) string { return z(24 + 2*r) }
	mreg := func(r int) string { return z(25 + 2*r) }
	fmt.Fprintf(&b, "// func %s(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $256-64\n", name)
	p("MOVQ w+0(FP), SI")
	p("MOVQ ws+8(FP), AX")
	p("LEAQ (SI)(AX*1), R8")
	p("MOVQ pk+16(FP), DI")
	if G > 1 {
		p("MOVQ gs+24(FP), AX")
		p("LEAQ (DI)(AX*1), BX")
	}
	p("MOVQ nb+32(FP), CX")
	p("MOVL $0x0f0f0f0f, AX")
	p("VPBROADCASTD AX, Z31")
	if typ == 6 {
		p("MOVL $0x3f3f3f3f, AX")
	} else {
		p("MOVL $0x01010101, AX")
	}
	p("VPBROADCASTD AX, Z30")
	for r := 0; r < R; r++ {
		for g := 0; g < G; g++ {
			p("VPXORD %s, %s, %s", facc(r, g), facc(r, g), facc(r, g))
		}
	}
	p("TESTQ CX, CX")
	p("JZ %s_done", name)
	label(name + "_loop")
	for r := 0; r < R; r++ {
		for g := 0; g < G; g++ {
			p("VPXORD %s, %s, %s", isum(r, g), isum(r, g), isum(r, g))
			p("VPXORD %s, %s, %s", msum(r, g), msum(r, g), msum(r, g))
		}
	}
	// Stack, row r at 128r: the scales as int32 at +0, the pairs for
	// VPDPWSSD at +64.
	for r := 0; r < R; r++ {
		w, o := wp[r], 128*r
		if typ == 6 {
			p("VPMOVSXBD 192(%s), Z0", w)
			p("VMOVDQU32 Z0, %d(SP)", o)
			p("VPMOVSXBW 192(%s), Y0", w)
			p("VMOVDQU Y0, %d(SP)", o+64)
			p("VPBROADCASTW 208(%s), Y0", w)
			p("VCVTPH2PS Y0, %s", dreg(r))
			continue
		}
		p("VMOVDQU 4(%s), X0", w)
		p("VPAND k3f<>(SB), X0, X1")
		p("VPSRLD $6, X0, X2")
		p("VPAND kLow2<>(SB), X2, X2")
		p("VPSLLD $4, X2, X2")
		p("VPSHUFD $0x0a, X0, X3")
		p("VPSRLVD kShift<>(SB), X3, X3")
		p("VPAND kLow4<>(SB), X3, X3")
		p("VPOR X2, X3, X3")
		p("VPUNPCKLDQ X3, X1, X1")
		p("VPMOVZXBD X1, Z0")
		p("VMOVDQU32 Z0, %d(SP)", o)
		p("VPSRLDQ $8, X1, X1")
		p("VPMOVZXBW X1, X2")
		p("VPUNPCKLWD X2, X2, X3")
		p("VPUNPCKHWD X2, X2, X2")
		p("VMOVDQU X3, %d(SP)", o+64)
		p("VMOVDQU X2, %d(SP)", o+80)
		p("VPBROADCASTW 0(%s), Y0", w)
		p("VCVTPH2PS Y0, %s", dreg(r))
		p("VPBROADCASTW 2(%s), Y0", w)
		p("VCVTPH2PS Y0, %s", mreg(r))
	}
	for t := 0; t < 8; t++ {
		for g := 0; g < G; g++ {
			p("VMOVDQU32 %d(%s), %s", kPairs+64*t, ap[g], act(g))
			for r := 0; r < R; r++ {
				p("VPDPWSSD.BCST %d(SP), %s, %s", 128*r+64+4*t, act(g), msum(r, g))
			}
		}
	}
	// dpb adds the activation dword vector t of every group times the
	// unpacked weights Z0 (row 0) and Z1 (row 1) to the sub-block sums.
	dpb := func(t int) {
		for g := 0; g < G; g++ {
			p("VMOVDQU32 %d(%s), %s", 64*t, ap[g], act(g))
		}
		for r := 0; r < R; r++ {
			for g := 0; g < G; g++ {
				p("VPDPBUSD %s, %s, %s", act(g), z(r), sub(r, g))
			}
		}
	}
	clearSub := func() {
		for r := 0; r < R; r++ {
			for g := 0; g < G; g++ {
				p("VPXORD %s, %s, %s", sub(r, g), sub(r, g), sub(r, g))
			}
		}
	}
	scaleSub := func(s int) {
		for r := 0; r < R; r++ {
			for g := 0; g < G; g++ {
				p("VPMULLD.BCST %d(SP), %s, %s", 128*r+4*s, sub(r, g), sub(r, g))
				p("VPADDD %s, %s, %s", sub(r, g), isum(r, g), isum(r, g))
			}
		}
	}
	if typ == 6 {
		for h := 0; h < 2; h++ {
			for k := 0; k < 4; k++ {
				for j := 0; j < 8; j++ {
					if j%4 == 0 {
						clearSub()
					}
					// u = (ql nibble) | (qh bits 2k, 2k+1) << 4: the
					// nibble from the (shifted) ql dword where the mask
					// Z31 is set, bits 4-7 from the qh dword shifted so
					// that bits 2k, 2k+1 land on 4, 5 (VPTERNLOGD 0xe4:
					// C ? A : B), then & 0x3f.
					for r := 0; r < R; r++ {
						w, u := wp[r], z(r)
						p("VPBROADCASTD %d(%s), %s", 64*h+32*(k&1)+4*j, w, u)
						if k >= 2 {
							p("VPSRLD $4, %s, %s", u, u)
						}
						p("VPBROADCASTD %d(%s), Z2", 128+32*h+4*j, w)
						switch k {
						case 0:
							p("VPSLLD $4, Z2, Z2")
						case 1:
							p("VPSLLD $2, Z2, Z2")
						case 3:
							p("VPSRLD $2, Z2, Z2")
						}
						p("VPTERNLOGD $0xe4, Z31, Z2, %s", u)
						p("VPANDD Z30, %s, %s", u, u)
					}
					dpb(32*h + 8*k + j)
					if j%4 == 3 {
						scaleSub(8*h + 2*k + j/4)
					}
				}
			}
		}
		for r := 0; r < R; r++ {
			for g := 0; g < G; g++ {
				p("VPSLLD $5, %s, %s", msum(r, g), msum(r, g))
				p("VPSUBD %s, %s, %s", msum(r, g), isum(r, g), isum(r, g))
			}
		}
	} else {
		qs := 16
		if typ == 5 {
			qs = 48
		}
		for c := 0; c < 4; c++ {
			for hh := 0; hh < 2; hh++ { // low nibbles: sub-block 2c; high: 2c+1
				clearSub()
				for k := 0; k < 8; k++ {
					for r := 0; r < R; r++ {
						w, u := wp[r], z(r)
						p("VPBROADCASTD %d(%s), %s", qs+32*c+4*k, w, u)
						if hh == 1 {
							p("VPSRLD $4, %s, %s", u, u)
						}
						p("VPANDD Z31, %s, %s", u, u)
						if typ == 5 {
							p("VPBROADCASTD %d(%s), Z2", 16+4*k, w)
							if sh := 2*c + hh; sh > 0 {
								p("VPSRLD $%d, Z2, Z2", sh)
							}
							p("VPANDD Z30, Z2, Z2")
							p("VPSLLD $4, Z2, Z2")
							p("VPORD Z2, %s, %s", u, u)
						}
					}
					dpb(16*c + 8*hh + k)
				}
				scaleSub(2*c + hh)
			}
		}
	}
	for r := 0; r < R; r++ {
		for g := 0; g < G; g++ {
			p("VMULPS %d(%s), %s, Z2", kDX, ap[g], dreg(r))
			p("VCVTDQ2PS %s, %s", isum(r, g), isum(r, g))
			p("VMULPS %s, Z2, Z2", isum(r, g))
			if typ != 6 {
				p("VMULPS %d(%s), %s, Z3", kDX, ap[g], mreg(r))
				p("VCVTDQ2PS %s, %s", msum(r, g), msum(r, g))
				p("VMULPS %s, Z3, Z3", msum(r, g))
				p("VSUBPS Z3, Z2, Z2")
			}
			p("VADDPS Z2, %s, %s", facc(r, g), facc(r, g))
		}
	}
	p("ADDQ $%d, SI", bs)
	p("ADDQ $%d, R8", bs)
	for _, a := range ap {
		p("ADDQ $%d, %s", kBlk, a)
	}
	p("DECQ CX")
	p("JNZ %s_loop", name)
	label(name + "_done")
	p("MOVQ out+40(FP), DX")
	p("MOVQ ld+48(FP), AX")
	p("VPBROADCASTD AX, Z0")
	p("VPMULLD vnniIota<>(SB), Z0, Z0")
	p("SHLQ $6, AX")
	p("MOVQ mask+56(FP), R11")
	for g := 0; g < G; g++ {
		if g > 0 {
			p("ADDQ AX, DX")
			p("SHRQ $16, R11")
		}
		for r := 0; r < R; r++ {
			p("KMOVW R11, K1")
			p("VSCATTERDPS %s, K1, %d(DX)(Z0*4)", facc(r, g), 4*r)
		}
	}
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// The AVX2 prefill tiles of the K types for CPUs without AVX-512 VNNI:
// q2k{4,5,6}G{G}(w *byte, pk0, pk1 *byte, nb int, out *float32, ld int)
// multiply one weight row by G halves of 8 activation rows of packK's
// layout (half h of a group: bytes [32h, 32h+32) of each 64-byte unit; pk0,
// pk1 point at a group plus 0 or 32) and store lane j of half g at
// out[(8g+j)*ld]. Per sub-block, VPMADDUBSW of the broadcast unpacked
// weight dword (u8) and the activation dwords (s8) sums pairs into int16,
// which add up over at most 4 dwords (Q4_K/Q5_K: 4·2·31·128 = 31744) or 2
// (Q6_K: 2·2·63·128 = 32256) before VPMADDWD by the broadcast (sc, sc)
// pair widens and scales them to int32; msum (or the Q6_K correction) is
// VPMADDWD of the packed pairs of sums of 16 with (m_s, m_s) (or
// (sc_2t, sc_2t+1)). Then the spec's float sequence lane by lane.
func q2kTile(typ, G int) {
	name := fmt.Sprintf("q2k%dG%d", typ, G)
	bs := map[int]int{4: 144, 5: 176, 6: 210}[typ]
	ap := []string{"DI", "BX"}[:G]
	// Registers: Y0 weight dword, Y1 product, Y2 high bits, Y3 scale pair;
	// per half g: Y(4+g) float acc, Y(6+g) isum, Y(8+g) msum, Y(10+g)
	// int16 sums; Y12 d, Y13 dmin; Y15 0x0f bytes, Y14 0x01/0x03 bytes.
	facc := func(g int) string { return y(4 + g) }
	isum := func(g int) string { return y(6 + g) }
	msum := func(g int) string { return y(8 + g) }
	s16 := func(g int) string { return y(10 + g) }
	fmt.Fprintf(&b, "// func %s(w *byte, pk0 *byte, pk1 *byte, nb int, out *float32, ld int)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $128-48\n", name)
	p("MOVQ w+0(FP), SI")
	p("MOVQ pk0+8(FP), DI")
	if G > 1 {
		p("MOVQ pk1+16(FP), BX")
	}
	p("MOVQ nb+24(FP), CX")
	p("VMOVDQU kLow4<>(SB), Y15")
	if typ == 6 {
		p("VMOVDQU kLow2<>(SB), Y14")
	} else {
		p("VMOVDQU kOne<>(SB), Y14")
	}
	for g := 0; g < G; g++ {
		p("VXORPS %s, %s, %s", facc(g), facc(g), facc(g))
	}
	p("TESTQ CX, CX")
	p("JZ %s_done", name)
	label(name + "_loop")
	// Stack: 0(SP) the (sc, sc) int16 pairs of the sub-blocks (8 or 16
	// dwords), 64(SP) the pairs for the sums of 16: (m_s, m_s) (Q4_K/Q5_K)
	// or (sc_2t, sc_2t+1) (Q6_K).
	if typ == 6 {
		p("VPMOVSXBW 192(SI), Y0") // sc_0..15 as int16
		p("VMOVDQU Y0, 64(SP)")    // (sc_2t, sc_2t+1)
		p("VPUNPCKLWD Y0, Y0, Y1") // (sc, sc) pairs, lanes interleaved by 128-bit halves
		p("VPUNPCKHWD Y0, Y0, Y2")
		p("VPERM2I128 $0x20, Y2, Y1, Y3") // sub-blocks 0-3, 4-7
		p("VPERM2I128 $0x31, Y2, Y1, Y1") // 8-11, 12-15
		p("VMOVDQU Y3, 0(SP)")
		p("VMOVDQU Y1, 32(SP)")
		p("VPBROADCASTW 208(SI), X12")
		p("VCVTPH2PS X12, Y12")
	} else {
		p("VMOVDQU 4(SI), X0")
		p("VPAND k3f<>(SB), X0, X1")
		p("VPSRLD $6, X0, X2")
		p("VPAND kLow2<>(SB), X2, X2")
		p("VPSLLD $4, X2, X2")
		p("VPSHUFD $0x0a, X0, X3")
		p("VPSRLVD kShift<>(SB), X3, X3")
		p("VPAND kLow4<>(SB), X3, X3")
		p("VPOR X2, X3, X3")
		p("VPUNPCKLDQ X3, X1, X1") // bytes [sc 0-7, m 0-7]
		p("VPMOVZXBW X1, Y0")      // sc 0-7, m 0-7 as int16
		p("VPUNPCKLWD Y0, Y0, Y1") // (sc0,sc0)..(sc3,sc3) | (m0,m0)..(m3,m3)
		p("VPUNPCKHWD Y0, Y0, Y2") // (sc4,sc4)..(sc7,sc7) | (m4,m4)..(m7,m7)
		p("VPERM2I128 $0x20, Y2, Y1, Y3")
		p("VPERM2I128 $0x31, Y2, Y1, Y1")
		p("VMOVDQU Y3, 0(SP)")  // sc pairs
		p("VMOVDQU Y1, 64(SP)") // m pairs
		p("VPBROADCASTW 0(SI), X12")
		p("VCVTPH2PS X12, Y12")
		p("VPBROADCASTW 2(SI), X13")
		p("VCVTPH2PS X13, Y13")
	}
	for g := 0; g < G; g++ {
		p("VPXOR %s, %s, %s", isum(g), isum(g), isum(g))
		p("VPXOR %s, %s, %s", msum(g), msum(g), msum(g))
	}
	for t := 0; t < 8; t++ {
		p("VPBROADCASTD %d(SP), Y3", 64+4*t)
		for g := 0; g < G; g++ {
			p("VPMADDWD %d(%s), Y3, Y1", kPairs+64*t, ap[g])
			p("VPADDD Y1, %s, %s", msum(g), msum(g))
		}
	}
	// flush adds the int16 sums, scaled by the pair at off(SP), to isum.
	flush := func(off int) {
		p("VPBROADCASTD %d(SP), Y3", off)
		for g := 0; g < G; g++ {
			p("VPMADDWD Y3, %s, %s", s16(g), s16(g))
			p("VPADDD %s, %s, %s", s16(g), isum(g), isum(g))
		}
	}
	madd := func(t int, first bool) {
		for g := 0; g < G; g++ {
			if first {
				p("VPMADDUBSW %d(%s), Y0, %s", 64*t, ap[g], s16(g))
				continue
			}
			p("VPMADDUBSW %d(%s), Y0, Y1", 64*t, ap[g])
			p("VPADDW Y1, %s, %s", s16(g), s16(g))
		}
	}
	if typ == 6 {
		for h := 0; h < 2; h++ {
			for k := 0; k < 4; k++ {
				for j := 0; j < 8; j++ {
					p("VPBROADCASTD %d(SI), Y0", 64*h+32*(k&1)+4*j)
					if k >= 2 {
						p("VPSRLW $4, Y0, Y0")
					}
					p("VPAND Y15, Y0, Y0")
					p("VPBROADCASTD %d(SI), Y2", 128+32*h+4*j)
					if k > 0 {
						p("VPSRLW $%d, Y2, Y2", 2*k)
					}
					p("VPAND Y14, Y2, Y2")
					p("VPSLLW $4, Y2, Y2")
					p("VPOR Y2, Y0, Y0") // u = q + 32
					madd(32*h+8*k+j, j%2 == 0)
					if j%2 == 1 {
						flush(4 * (8*h + 2*k + j/4))
					}
				}
			}
		}
		for g := 0; g < G; g++ {
			p("VPSLLD $5, %s, %s", msum(g), msum(g))
			p("VPSUBD %s, %s, %s", msum(g), isum(g), isum(g))
		}
	} else {
		qs := 16
		if typ == 5 {
			qs = 48
		}
		for c := 0; c < 4; c++ {
			for hh := 0; hh < 2; hh++ {
				for k := 0; k < 8; k++ {
					p("VPBROADCASTD %d(SI), Y0", qs+32*c+4*k)
					if hh == 1 {
						p("VPSRLW $4, Y0, Y0")
					}
					p("VPAND Y15, Y0, Y0")
					if typ == 5 {
						p("VPBROADCASTD %d(SI), Y2", 16+4*k)
						if sh := 2*c + hh; sh > 0 {
							p("VPSRLW $%d, Y2, Y2", sh)
						}
						p("VPAND Y14, Y2, Y2")
						p("VPSLLW $4, Y2, Y2")
						p("VPOR Y2, Y0, Y0")
					}
					madd(16*c+8*hh+k, k%4 == 0)
					if k%4 == 3 {
						flush(4 * (2*c + hh))
					}
				}
			}
		}
	}
	for g := 0; g < G; g++ {
		p("VMULPS %d(%s), Y12, Y1", kDX, ap[g]) // d ⊗ dx
		p("VCVTDQ2PS %s, %s", isum(g), isum(g))
		p("VMULPS %s, Y1, Y1", isum(g))
		if typ != 6 {
			p("VMULPS %d(%s), Y13, Y2", kDX, ap[g]) // dmin ⊗ dx
			p("VCVTDQ2PS %s, %s", msum(g), msum(g))
			p("VMULPS %s, Y2, Y2", msum(g))
			p("VSUBPS Y2, Y1, Y1")
		}
		p("VADDPS Y1, %s, %s", facc(g), facc(g))
	}
	p("ADDQ $%d, SI", bs)
	for _, a := range ap {
		p("ADDQ $%d, %s", kBlk, a)
	}
	p("DECQ CX")
	p("JNZ %s_loop", name)
	label(name + "_done")
	// Lane j of half g goes to out[(8g+j)*ld]: VMOVSS and VEXTRACTPS;
	// AX = 4*ld bytes, R9 = 3*AX.
	p("MOVQ out+32(FP), DX")
	p("MOVQ ld+40(FP), AX")
	p("SHLQ $2, AX")
	p("LEAQ (AX)(AX*2), R9")
	idx := []string{"", "(AX*1)", "(AX*2)", "(R9*1)"}
	for g := 0; g < G; g++ {
		for h := 0; h < 2; h++ {
			src := x(4 + g)
			if h == 1 {
				p("VEXTRACTF128 $1, %s, X1", facc(g))
				src = "X1"
			}
			if g+h > 0 {
				p("LEAQ (DX)(AX*4), DX")
			}
			for j := 0; j < 4; j++ {
				if j == 0 {
					p("VMOVSS %s, (DX)", src)
				} else {
					p("VEXTRACTPS $%d, %s, (DX)%s", j, src, idx[j])
				}
			}
		}
	}
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}
