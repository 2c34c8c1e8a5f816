//go:build ignore

package main

import "fmt"

// vnniWT16Q8(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld
// int) (run with asmgen.go) is vnniWTQ8P8 (asmgen_vnni.go, vnniWTTile)
// for 16 activation rows in one call: the two groups of 8 packed by
// packVNNIWT (group stride gs bytes) against the same 16 weight rows, so
// that each block's weights are loaded, transposed and made unsigned once
// for 16 rows instead of once per group of 8 (the batch decode step of 16
// streams called vnniWTQ8P8 twice). The arithmetic per (weight row,
// activation row) is vnniWTTile's, bit for bit (dotQ8_0).
//
// Registers: Z0-Z7 the loaded rows, then (once transposed) the int
// accumulators (Z0-Z3), t (Z4), the 16 weight scales (Z5), the gather's
// destination (Z6) and offsets (Z7, reloaded each block from the frame);
// Z8-Z15 the transposed weights; Z16-Z31 the float accumulators of the 16
// activation rows. The 0x80 bytes of the XOR are broadcast into Z0 after
// the transposition. The prefetches of the next tile's 16 rows are those
// of vnniWTTile for P > 1: at the top of each block step.
func vnniWT16() {
	const bs, shift, qoff = 34, 7, 2
	name := "vnniWT16Q8"
	A := func(i int) string { return z(i) }
	Bz := func(i int) string { return z(8 + i) }
	facc := func(q int) string { return z(16 + q) }
	bases := []string{"SI", "R8", "R10", "R11"}
	row := func(i int) string {
		return fmt.Sprintf("%d(%s)%s", qoff, bases[i/4], []string{"", "(AX*1)", "(AX*2)", "(R12*1)"}[i%4])
	}
	// pk of activation row q: group q/8 at DI or R13 = DI + gs.
	pkb := func(q int) string { return []string{"DI", "R13"}[q/8] }
	fmt.Fprintf(&b, "// func %s(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $64-56\n", name)
	p("MOVQ w+0(FP), SI")
	p("MOVQ ws+8(FP), AX")
	p("LEAQ (AX)(AX*2), R12")
	p("LEAQ (SI)(AX*4), R8")
	p("LEAQ (R8)(AX*4), R10")
	p("LEAQ (R10)(AX*4), R11")
	p("MOVQ pk+16(FP), DI")
	p("MOVQ gs+24(FP), R13")
	p("ADDQ DI, R13")
	p("MOVQ nb+32(FP), CX")
	p("LEAQ (R11)(AX*4), R9") // the next tile's rows: one sequential stream
	p("VPBROADCASTD AX, Z7")
	p("VPMULLD vnniIota<>(SB), Z7, Z7")
	p("VMOVDQU32 Z7, (SP)") // the gather offsets
	p("MOVL $0x80808080, DX")
	for q := 0; q < 16; q++ {
		p("VPXORD %s, %s, %s", facc(q), facc(q), facc(q))
	}
	p("TESTQ CX, CX")
	p("JZ %s_done", name)
	label(name + "_loop")
	for c := 0; c < (16*bs+63)/64; c++ {
		p("PREFETCHT0 %d(R9)", 64*c)
	}
	p("ADDQ $%d, R9", 16*bs)
	// Z_j = [row j | row j+4] for j < 4, [row j+4 | row j+8] for j >= 4.
	for j := 0; j < 8; j++ {
		lo, hi := j, j+4
		if j >= 4 {
			lo, hi = j+4, j+8
		}
		p("VMOVDQU %s, %s", row(lo), y(j))
		p("VINSERTI64X4 $1, %s, %s, %s", row(hi), A(j), A(j))
	}
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
	p("VPBROADCASTD DX, Z0")
	for k := 0; k < 8; k++ {
		p("VPXORD Z0, %s, %s", Bz(k), Bz(k)) // w+128
	}
	p("VMOVDQU32 (SP), Z7")
	p("KXNORW K1, K1, K1")
	p("VPGATHERDD (SI)(Z7*1), K1, Z6")
	p("VPMOVDW Z6, Y6")
	p("VCVTPH2PS Y6, Z5") // exact
	for q := 0; q < 16; q++ {
		acc := A(q % 4)
		base, j := pkb(q), q%8
		p("VPBROADCASTD %d(%s), %s", 4*j, base, acc) // -Σq_x
		p("VPSLLD $%d, %s, %s", shift, acc, acc)
		for k := 0; k < 8; k++ {
			p("VPDPBUSD.BCST %d(%s), %s, %s", 64+32*j+4*k, base, Bz(k), acc)
		}
		p("VMULPS.BCST %d(%s), Z5, Z4", 32+4*j, base) // dw*dx
		p("VCVTDQ2PS %s, %s", acc, acc)               // exact: |isum| < 2^24
		p("VMULPS %s, Z4, %s", acc, acc)              // (dw*dx)*isum
		p("VADDPS %s, %s, %s", acc, facc(q), facc(q))
	}
	for _, r := range bases {
		p("ADDQ $%d, %s", bs, r)
	}
	p("ADDQ $%d, DI", vnniWTBlk)
	p("ADDQ $%d, R13", vnniWTBlk)
	p("DECQ CX")
	p("JNZ %s_loop", name)
	label(name + "_done")
	p("MOVQ out+40(FP), DX")
	p("MOVQ ld+48(FP), BX")
	p("SHLQ $2, BX")
	for q := 0; q < 16; q++ {
		p("VMOVUPS %s, (DX)", facc(q))
		if q+1 < 16 {
			p("ADDQ BX, DX")
		}
	}
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}
