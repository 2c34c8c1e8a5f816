//go:build ignore

package main

import "fmt"

// The AVX2 kernels of the K types (run with asmgen.go): q4kDot{P},
// q5kDot{P} and q6kDot{P}(w *byte, q *int8, qs int, s *int16, ss int,
// d *float32, ds int, nb int, out *float32) multiply one weight row (nb
// super-blocks of 256) by P activation rows quantised to Q8K: row p's
// quanta at q + p*qs, its sums of 16 at s + p*ss, its scales at d + p*ds
// (strides in bytes). out[p] is the value of section 4.2 of
// docs/determinism.md for row p, bit for bit (dotK):
//
//	Q4_K/Q5_K: per chunk c of 64 elements, the 32 bytes of nibbles give
//	  sub-blocks 2c (low) and 2c+1 (high); VPMADDUBSW(nibbles (u8), qx (s8))
//	  sums pairs (at most 2·31·128 < 2^15: exact for any int8 activation),
//	  VPMADDWD by the sub-block's scale (broadcast int16 by VPSHUFB) gives
//	  int32, and the chunks add up in eight int32 lanes: their sum is isum.
//	  msum = Σ_s m_s·ξ_s with ξ_s = s[2s] + s[2s+1] (VPHADDW, VPMADDWD).
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

// kAdvance steps every pointer to the next super-block and loops.
func kAdvance(name string, bs int) {
	p("ADDQ $%d, SI", bs)
	p("ADDQ $256, DI")
	p("ADDQ $256, R11")
	p("ADDQ $32, BX")
	p("ADDQ $32, R12")
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
	name, bs, qs := fmt.Sprintf("q4kDot%d", P), 144, 16
	if q5 {
		name, bs, qs = fmt.Sprintf("q5kDot%d", P), 176, 48
	}
	kArgs(name, P)
	p("VMOVDQU kLow4<>(SB), Y15")
	label(name + "_loop")
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
		p("VMOVDQU %s, X5", sAddr(r, 0))
		p("VPHADDW %s, X5, X5", sAddr(r, 16)) // ξ_0..ξ_7
		p("VPMADDWD X13, X5, X5")             // m_s·ξ_s, pairs summed
		p("VEXTRACTI128 $1, %s, X1", y(acc))
		p("VPADDD X1, %s, X1", x(acc))
		p("VPHADDD X5, X1, X1")
		p("VPHADDD X1, X1, X1") // [isum, msum, isum, msum]
		p("VCVTDQ2PS X1, X1")
		p("VBROADCASTSS %s, X0", dAddr(r))
		p("VMULPS X12, X0, X0") // [d ⊗ dx, dmin ⊗ dx]
		p("VMULPS X1, X0, X0")  // [A, B]
		p("VMOVSHDUP X0, X1")
		p("VSUBSS X1, X0, X0")          // A ⊖ B
		p("VADDSS %d(AX), X0, X0", 4*r) // acc ⊕ (A ⊖ B)
		p("VMOVSS X0, %d(AX)", 4*r)
	}
	kAdvance(name, bs)
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
		p("VADDSS %d(AX), X0, X0", 4*r)
		p("VMOVSS X0, %d(AX)", 4*r)
	}
	kAdvance(name, 210)
}
