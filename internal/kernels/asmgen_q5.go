//go:build ignore

package main

import "fmt"

// The AVX2 kernels of Q4_1, Q5_0 and Q5_1 (run with asmgen.go):
// q41Dot{P}, q50Dot{P}, q51Dot{P}(w *byte, q *int8, qs int, d *float32,
// ds int, nb int, out *float32) multiply one weight row (nb blocks of 32) by
// P activation rows quantised to Q8 blocks (row p at q + p*qs, its scales
// at d + p*ds; strides in bytes) and write out[p], the value of dotQ5 bit
// for bit (docs/determinism.md 4.2):
//
//	u = nibble | high bit << 4 (unsigned; Q4_1 without the high bit), the
//	32 quanta of a block in one ymm, element order as the specification;
//	Q4_1/Q5_1: isum = Σ u·qx, xsum = Σ qx (VPMADDUBSW with ones);
//	Q5_0: isum = Σ (u − 16)·qx, the 16·qx pairs subtracted in int16
//	(|Σ u·qx pair| <= 2·31·128, |16·qx pair| <= 4096: no overflow);
//	VPMADDWD by ones widens to int32. Four blocks at a time: their sums are
//	reduced together (VPHADDD), the products (dw ⊗ dx) ⊗ f32(isum) [⊕ (mw
//	⊗ dx) ⊗ f32(xsum)] formed as four lanes, then added to acc one after
//	the other, in block order. Exact for any int8 activation.
func q5Kernels() {
	// kBits: byte j of the 32 selects bit j%8; kBitShuf replicates qh byte
	// j/8 to byte j.
	for i := 0; i < 4; i++ {
		fmt.Fprintf(&b, "DATA kBits<>+%d(SB)/8, $0x8040201008040201\n", 8*i)
		fmt.Fprintf(&b, "DATA kBitShuf<>+%d(SB)/8, $0x%016x\n", 8*i, uint64(i)*0x0101010101010101)
	}
	b.WriteString("GLOBL kBits<>(SB), RODATA|NOPTR, $32\nGLOBL kBitShuf<>(SB), RODATA|NOPTR, $32\n")
	for i := 0; i < 4; i++ {
		fmt.Fprintf(&b, "DATA kSixteen<>+%d(SB)/8, $0x1010101010101010\n", 8*i)
	}
	b.WriteString("GLOBL kSixteen<>(SB), RODATA|NOPTR, $32\n\n")
	for _, P := range []int{1, 2, 4} {
		for _, t := range []string{"41", "50", "51"} {
			q5Dot(t, P)
		}
	}
	q5VNNIKernels()
}

type q5Layout struct {
	bs, qs, qh int // block bytes, offset of the nibbles, of the high bits (-1: none)
	min        bool
}

var q5Layouts = map[string]q5Layout{
	"41": {20, 4, -1, true},
	"50": {22, 6, 2, false},
	"51": {24, 8, 4, true},
}

// q5Unpack writes the 32 unsigned quanta of the block at off(SI) to Y(dst),
// using Y4-Y6.
func q5Unpack(L q5Layout, off, dst int) {
	p("VMOVDQU %d(SI), X4", off+L.qs)
	p("VPSRLW $4, X4, X5")
	p("VPAND kLow4<>(SB), X4, X4")
	p("VPAND kLow4<>(SB), X5, X5")
	p("VINSERTI128 $1, X5, Y4, %s", y(dst))
	if L.qh >= 0 {
		p("VPBROADCASTD %d(SI), Y6", off+L.qh)
		p("VPSHUFB kBitShuf<>(SB), Y6, Y6")
		p("VPAND kBits<>(SB), Y6, Y6")
		p("VPCMPEQB kBits<>(SB), Y6, Y6")
		p("VPAND kSixteen<>(SB), Y6, Y6")
		p("VPOR Y6, %s, %s", y(dst), y(dst))
	}
}

// q5Sums leaves in Y(ti) the int32 lanes of isum and, for the types with a
// min, in Y(tx) those of xsum, for the weights in Y(w) and the activation
// block at addr. Y13 holds ones (bytes) or sixteens, Y14 int16 ones.
func q5Sums(L q5Layout, w int, addr string, ti, tx int) {
	p("VPMADDUBSW %s, %s, %s", addr, y(w), y(ti))
	p("VPMADDUBSW %s, Y13, %s", addr, y(tx))
	if !L.min {
		p("VPSUBW %s, %s, %s", y(tx), y(ti), y(ti))
	}
	p("VPMADDWD Y14, %s, %s", y(ti), y(ti))
	if L.min {
		p("VPMADDWD Y14, %s, %s", y(tx), y(tx))
	}
}

func q5Dot(t string, P int) {
	L := q5Layouts[t]
	name := fmt.Sprintf("q%sDot%d", t, P)
	fmt.Fprintf(&b, "// func %s(w *byte, q *int8, qs int, d *float32, ds int, nb int, out *float32)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-56\n", name)
	p("MOVQ w+0(FP), SI")
	p("MOVQ q+8(FP), DI")
	p("MOVQ qs+16(FP), R8")
	p("MOVQ d+24(FP), DX")
	p("MOVQ ds+32(FP), R10")
	p("MOVQ nb+40(FP), CX")
	p("MOVQ out+48(FP), AX")
	p("LEAQ (DI)(R8*2), R11")
	p("LEAQ (DX)(R10*2), R13")
	for i := 0; i < P; i++ {
		p("MOVL $0, %d(AX)", 4*i)
	}
	p("VPCMPEQW Y14, Y14, Y14")
	p("VPSRLW $15, Y14, Y14") // int16 ones
	if L.min {
		p("VMOVDQU kOne<>(SB), Y13") // byte ones
	} else {
		p("VMOVDQU kSixteen<>(SB), Y13")
	}
	p("MOVQ CX, BX")
	p("SHRQ $2, BX")
	p("JZ %s_single", name)
	label(name + "_loop4")
	for k := 0; k < 4; k++ {
		q5Unpack(L, k*L.bs, k)
	}
	// dw (and mw) of the four blocks, exactly: X12 (and X15).
	p("MOVWLZX (SI), R14")
	p("VMOVD R14, X12")
	for k := 1; k < 4; k++ {
		p("VPINSRW $%d, %d(SI), X12, X12", k, k*L.bs)
	}
	p("VCVTPH2PS X12, X12")
	if L.min {
		p("MOVWLZX 2(SI), R14")
		p("VMOVD R14, X15")
		for k := 1; k < 4; k++ {
			p("VPINSRW $%d, %d(SI), X15, X15", k, k*L.bs+2)
		}
		p("VCVTPH2PS X15, X15")
	}
	for r := 0; r < P; r++ {
		for k := 0; k < 4; k++ {
			q5Sums(L, k, qAddr(r, 32*k), 4+k, 8+k)
		}
		p("VPHADDD Y5, Y4, Y4")
		p("VPHADDD Y7, Y6, Y6")
		p("VPHADDD Y6, Y4, Y4")
		p("VEXTRACTI128 $1, Y4, X5")
		p("VPADDD X5, X4, X4") // the four blocks' isum
		p("VCVTDQ2PS X4, X4")  // f32(isum), to nearest
		p("VMOVDQU %s, X6", dAddr(r))
		p("VMULPS X6, X12, X7") // dw ⊗ dx
		p("VMULPS X4, X7, X7")  // ⊗ f32(isum)
		if L.min {
			p("VPHADDD Y9, Y8, Y8")
			p("VPHADDD Y11, Y10, Y10")
			p("VPHADDD Y10, Y8, Y8")
			p("VEXTRACTI128 $1, Y8, X9")
			p("VPADDD X9, X8, X8") // xsum
			p("VCVTDQ2PS X8, X8")
			p("VMULPS X6, X15, X9") // mw ⊗ dx
			p("VMULPS X8, X9, X9")  // ⊗ f32(xsum)
			p("VADDPS X9, X7, X7")
		}
		// Y0-Y3 hold the weights for the next row: X10, X11 are free.
		p("VMOVSS %d(AX), X10", 4*r)
		p("VADDSS X7, X10, X10")
		p("VMOVSHDUP X7, X11")
		p("VADDSS X11, X10, X10")
		p("VMOVHLPS X7, X7, X11")
		p("VADDSS X11, X10, X10")
		p("VSHUFPS $0xff, X7, X7, X11")
		p("VADDSS X11, X10, X10")
		p("VMOVSS X10, %d(AX)", 4*r)
	}
	p("ADDQ $%d, SI", 4*L.bs)
	p("ADDQ $128, DI")
	p("ADDQ $128, R11")
	p("ADDQ $16, DX")
	p("ADDQ $16, R13")
	p("DECQ BX")
	p("JNZ %s_loop4", name)
	label(name + "_single")
	p("ANDQ $3, CX")
	p("JZ %s_done", name)
	label(name + "_loop1")
	q5Unpack(L, 0, 0)
	p("VMOVD (SI), X12")
	p("VCVTPH2PS X12, X12") // [dw, mw] (Q5_0: lane 1 unused)
	for r := 0; r < P; r++ {
		q5Sums(L, 0, qAddr(r, 0), 4, 8)
		if !L.min {
			p("VPXOR Y8, Y8, Y8")
		}
		p("VPHADDD Y8, Y4, Y4")
		p("VEXTRACTI128 $1, Y4, X5")
		p("VPADDD X5, X4, X4")
		p("VPHADDD X4, X4, X4") // [isum, xsum, isum, xsum]
		p("VCVTDQ2PS X4, X4")
		p("VBROADCASTSS %s, X6", dAddr(r))
		p("VMULPS X12, X6, X6") // [dw ⊗ dx, mw ⊗ dx]
		p("VMULPS X4, X6, X6")
		if L.min {
			p("VMOVSHDUP X6, X7")
			p("VADDSS X7, X6, X6")
		}
		p("VADDSS %d(AX), X6, X6", 4*r)
		p("VMOVSS X6, %d(AX)", 4*r)
	}
	p("ADDQ $%d, SI", L.bs)
	p("ADDQ $32, DI")
	p("ADDQ $32, R11")
	p("ADDQ $4, DX")
	p("ADDQ $4, R13")
	p("DECQ CX")
	p("JNZ %s_loop1", name)
	label(name + "_done")
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// The AVX-512 VNNI prefill tiles of Q4_1, Q5_0 and Q5_1 (as asmgen_vnni.go's
// for Q4_0, on the same packed activations): vnni{41,50,51}R{R}G{G}(w *byte,
// ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int). Per
// block, row and group, an int32 zmm starts at 0 (Q4_1, Q5_1) or at the
// correction −16·Σq_x (Q5_0: the quanta enter as u = q + 16) and VPDPBUSD
// adds Σ u·q_x: lane j ends at isum_j. The high bits of Q5_0/Q5_1 are
// spread to bit 4 of their bytes (VPSHUFB of the broadcast qh, VPANDD with
// the bit of each byte, VPMINUB with 1, VPSLLW by 4). Then lane by lane
// t = (dw ⊗ dx) ⊗ f32(isum), for Q4_1/Q5_1 t = t ⊕ ((mw ⊗ dx) ⊗ f32(xsum))
// with xsum = Σq_x (the negated packed correction), and acc = acc ⊕ t.
var q5VNNIShapes = []int{1, 2, 3, 4}

func q5VNNIKernels() {
	for i := 0; i < 4; i++ { // per 128-bit lane: qh bytes 0,1 (elements 0-15) or 2,3 (16-31)
		fmt.Fprintf(&b, "DATA kHBLo<>+%d(SB)/8, $0x0000000000000000\nDATA kHBLo<>+%d(SB)/8, $0x0101010101010101\n", 16*i, 16*i+8)
		fmt.Fprintf(&b, "DATA kHBHi<>+%d(SB)/8, $0x0202020202020202\nDATA kHBHi<>+%d(SB)/8, $0x0303030303030303\n", 16*i, 16*i+8)
	}
	for i := 0; i < 8; i++ {
		fmt.Fprintf(&b, "DATA kBitsZ<>+%d(SB)/8, $0x8040201008040201\n", 8*i)
		fmt.Fprintf(&b, "DATA kOnesZ<>+%d(SB)/8, $0x0101010101010101\n", 8*i)
	}
	b.WriteString("GLOBL kHBLo<>(SB), RODATA|NOPTR, $64\nGLOBL kHBHi<>(SB), RODATA|NOPTR, $64\n")
	b.WriteString("GLOBL kBitsZ<>(SB), RODATA|NOPTR, $64\nGLOBL kOnesZ<>(SB), RODATA|NOPTR, $64\n\n")
	for _, t := range []string{"41", "50", "51"} {
		for _, R := range q5VNNIShapes {
			for G := 1; G <= 2; G++ {
				q5VNNITile(t, R, G)
			}
		}
	}
}

func q5VNNITile(t string, R, G int) {
	L := q5Layouts[t]
	name := fmt.Sprintf("vnni%sR%dG%d", t, R, G)
	wp := []string{"SI", "R8", "R10", "R11"}[:R]
	ap := []string{"DI", "BX"}[:G]
	// Registers: Z0 dw, Z1 t, Z2 weight dword, Z3/Z4 nibbles, Z5.. the
	// activations (unused: memory operands), then the float and int
	// accumulators; Z23-Z28 scratch; Z31 nibble mask.
	facc := func(r, g int) int { return 7 + r*G + g }
	iacc := func(r, g int) int { return 7 + R*G + r*G + g }
	if iacc(R-1, G-1) >= 23 {
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
	p("MOVL $0x0f0f0f0f, AX")
	p("VPBROADCASTD AX, Z31")
	for r := 0; r < R; r++ {
		for g := 0; g < G; g++ {
			p("VPXORD %s, %s, %s", z(facc(r, g)), z(facc(r, g)), z(facc(r, g)))
		}
	}
	p("TESTQ CX, CX")
	p("JZ %s_done", name)
	label(name + "_loop")
	for r := 0; r < R; r++ {
		for g := 0; g < G; g++ {
			if t == "50" {
				p("VPSLLD $4, 576(%s), %s", ap[g], z(iacc(r, g))) // -16·Σq_x
			} else {
				p("VPXORD %s, %s, %s", z(iacc(r, g)), z(iacc(r, g)), z(iacc(r, g)))
			}
		}
	}
	for r := 0; r < R; r++ {
		p("VBROADCASTI32X4 %d(%s), Z4", L.qs, wp[r])
		p("VPANDD Z31, Z4, Z3")
		p("VPSRLW $4, Z4, Z4")
		p("VPANDD Z31, Z4, Z4")
		if L.qh >= 0 {
			p("VPBROADCASTD %d(%s), Z23", L.qh, wp[r])
			for h, dst := range []string{"Z3", "Z4"} {
				p("VPSHUFB %s<>(SB), Z23, Z24", []string{"kHBLo", "kHBHi"}[h])
				p("VPANDD kBitsZ<>(SB), Z24, Z24")
				p("VPMINUB kOnesZ<>(SB), Z24, Z24")
				p("VPSLLW $4, Z24, Z24")
				p("VPORD Z24, %s, %s", dst, dst)
			}
		}
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
	for r := 0; r < R; r++ {
		p("VPBROADCASTW (%s), Y0", wp[r])
		p("VCVTPH2PS Y0, Z0") // dw, exact
		if L.min {
			p("VPBROADCASTW 2(%s), Y25", wp[r])
			p("VCVTPH2PS Y25, Z25") // mw, exact
		}
		for g := 0; g < G; g++ {
			i, f := z(iacc(r, g)), z(facc(r, g))
			p("VMULPS 512(%s), Z0, Z1", ap[g]) // dw ⊗ dx
			p("VCVTDQ2PS %s, %s", i, i)
			p("VMULPS %s, Z1, Z1", i) // ⊗ f32(isum)
			if L.min {
				p("VMULPS 512(%s), Z25, Z26", ap[g]) // mw ⊗ dx
				p("VPXORD Z27, Z27, Z27")
				p("VPSUBD 576(%s), Z27, Z27", ap[g]) // xsum = Σq_x
				p("VCVTDQ2PS Z27, Z27")
				p("VMULPS Z27, Z26, Z26")
				p("VADDPS Z26, Z1, Z1")
			}
			p("VADDPS Z1, %s, %s", f, f)
		}
	}
	for _, r := range wp {
		p("ADDQ $%d, %s", L.bs, r)
	}
	for _, a := range ap {
		p("ADDQ $640, %s", a)
	}
	p("DECQ CX")
	p("JNZ %s_loop", name)
	label(name + "_done")
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
			p("KMOVW K%d, K3", g+1)
			p("VSCATTERDPS %s, K3, %d(%s)(%s*4)", z(facc(r, g)), 4*r, base[g], idx)
		}
	}
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}
