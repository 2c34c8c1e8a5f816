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
// accumulators; Z8-Z15 the transposed weights; Z5 the 16 weight scales;
// Z16-Z31 the float accumulators of the 16 activation rows. The 0x80 bytes
// of the XOR are broadcast into Z0 after the transposition. The
// prefetches of the next tile's 16 rows are those of vnniWTTile for P > 1:
// at the top of each block step.
//
// What bounds it here (AMD Zen 5, measured with variants of this
// generator on a 256 x 768 matrix in the L2 cache, 16 rows): the vector
// loads, two a cycle, one per VPDPBUSD (its broadcast activation dword)
// and one per row for the correction and for dx. The 16 scales are read
// with integer loads (wtScales) rather than a VPGATHERDD (its 16 loads on
// the same ports): 299 -> 322 GMAC per CPU second. Each activation row's
// 8 VPDPBUSD run as two chains of 4 (dwords 0-3 from the correction,
// 4-7 from zero, then VPADDD: the integer sums are exact, so the bits do
// not change), three rows interleaved: 271-282 -> 299-302.
//
// vnniWT{8+P}Q8 for P < 8 is the same for 8+P activation rows: the second
// group holds P. vnniWT{8+P}Q4 and vnniWT{8+P}Q50 are the same for Q4_0
// and Q5_0 weights, their rows unpacked as in vnniWTTile (the constants of
// the unpacking in Z14 and Z15, free until the transposition writes them).
func vnniWT16(kind string, P int) {
	bs, shift, qoff := 34, 7, 2
	switch kind {
	case "Q4":
		bs, shift = 18, 3
	case "Q50":
		bs, shift, qoff = 22, 4, 6
	}
	q4 := kind != "Q8"
	n := 8 + P // activation rows
	name := fmt.Sprintf("vnniWT%d%s", n, kind)
	A := func(i int) string { return z(i) }
	Bz := func(i int) string { return z(8 + i) }
	facc := func(q int) string { return z(16 + q) }
	bases := []string{"SI", "R8", "R10", "R11"}
	rowAt := func(off, i int) string {
		return fmt.Sprintf("%d(%s)%s", off, bases[i/4], []string{"", "(AX*1)", "(AX*2)", "(R12*1)"}[i%4])
	}
	row := func(i int) string { return rowAt(qoff, i) }
	// pk of activation row q: group q/8 at DI or R13 = DI + gs.
	pkb := func(q int) string { return []string{"DI", "R13"}[q/8] }
	fmt.Fprintf(&b, "// func %s(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-56\n", name)
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
	if q4 {
		p("MOVL $0xff00ff00, DX") // the words of 128-bit chunks 1 and 3
		p("KMOVD DX, K2")
	} else {
		p("MOVL $0x80808080, DX")
	}
	for q := 0; q < n; q++ {
		p("VPXORD %s, %s, %s", facc(q), facc(q), facc(q))
	}
	p("TESTQ CX, CX")
	p("JZ %s_done", name)
	label(name + "_loop")
	for c := 0; c < (16*bs+63)/64; c++ {
		p("PREFETCHT0 %d(R9)", 64*c)
	}
	p("ADDQ $%d, R9", 16*bs)
	if q4 {
		p("MOVL $0x0f0f0f0f, DX")
		p("VPBROADCASTD DX, Z15")
		if kind == "Q50" {
			p("MOVL $0x10101010, DX")
			p("VPBROADCASTD DX, Z14")
		}
		wtTransposeQ4(kind == "Q50", row, func(i int) string { return rowAt(2, i) }, A, Bz)
	} else {
		wtTranspose(row, A, Bz)
		p("VPBROADCASTD DX, Z0")
		for k := 0; k < 8; k++ {
			p("VPXORD Z0, %s, %s", Bz(k), Bz(k)) // w+128
		}
	}
	wtScales(bases, "X6", "X7", "Z5")
	// Rows in threes, each row's sum in two chains of 4 VPDPBUSD (a:
	// dwords 0-3 from the correction, b: dwords 4-7 from zero),
	// interleaved, then a += b (exact integers); b then holds t.
	free := []string{"Z0", "Z1", "Z2", "Z3", "Z4", "Z6"}
	for q0 := 0; q0 < n; q0 += 3 {
		rows := min(3, n-q0)
		ra := func(i int) string { return free[2*i] }
		rb := func(i int) string { return free[2*i+1] }
		for i := 0; i < rows; i++ {
			base, j := pkb(q0+i), (q0+i)%8
			p("VPBROADCASTD %d(%s), %s", 4*j, base, ra(i)) // -Σq_x
			p("VPSLLD $%d, %s, %s", shift, ra(i), ra(i))
			p("VPXORD %s, %s, %s", rb(i), rb(i), rb(i))
		}
		for k := 0; k < 4; k++ {
			for i := 0; i < rows; i++ {
				base, j := pkb(q0+i), (q0+i)%8
				p("VPDPBUSD.BCST %d(%s), %s, %s", 64+32*j+4*k, base, Bz(k), ra(i))
				p("VPDPBUSD.BCST %d(%s), %s, %s", 64+32*j+4*(k+4), base, Bz(k+4), rb(i))
			}
		}
		for i := 0; i < rows; i++ {
			q := q0 + i
			base, j := pkb(q), q%8
			a, t := ra(i), rb(i)
			p("VPADDD %s, %s, %s", t, a, a)
			p("VMULPS.BCST %d(%s), Z5, %s", 32+4*j, base, t) // dw*dx
			p("VCVTDQ2PS %s, %s", a, a)                      // exact: |isum| < 2^24
			p("VMULPS %s, %s, %s", a, t, a)                  // (dw*dx)*isum
			p("VADDPS %s, %s, %s", a, facc(q), facc(q))
		}
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
	for q := 0; q < n; q++ {
		p("VMOVUPS %s, (DX)", facc(q))
		if q+1 < n {
			p("ADDQ BX, DX")
		}
	}
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// wtTranspose loads dwords 0-7 of the quanta of 16 weight rows (row(i):
// the address of row i's quanta) into A(0..7) and transposes them (via
// Bz(0..7)) so that lane i of Bz(k) is dword k of row i.
func wtTranspose(row func(int) string, A, Bz func(int) string) {
	// A(j) = [row j | row j+4] for j < 4, [row j+4 | row j+8] for j >= 4.
	for j := 0; j < 8; j++ {
		lo, hi := j, j+4
		if j >= 4 {
			lo, hi = j+4, j+8
		}
		p("VMOVDQU %s, Y%s", row(lo), A(j)[1:])
		p("VINSERTI64X4 $1, %s, %s, %s", row(hi), A(j), A(j))
	}
	wtShuffle(A, Bz)
}

// wtTransposeQ4 is wtTranspose for Q4_0 (q5 false) and Q5_0 rows, unpacked
// as vnniWTTile does: the 16 bytes of nibbles of each row twice, the low
// nibbles (elements 0-15) in 128-bit chunks 0 and 2, the high ones in 1 and
// 3 (VPSRLW under K2, VPANDD with the 0x0f bytes of Z15); Q5_0 adds the
// 0x10 bytes of Z14 where the element's bit of qh (qh(i): its address) is
// set. DX, BX and K3 are clobbered.
func wtTransposeQ4(q5 bool, row, qh func(int) string, A, Bz func(int) string) {
	for j := 0; j < 8; j++ {
		lo, hi := j, j+4
		if j >= 4 {
			lo, hi = j+4, j+8
		}
		p("VBROADCASTI32X4 %s, %s", row(lo), A(j))
		p("VINSERTI32X4 $2, %s, %s, %s", row(hi), A(j), A(j))
		p("VINSERTI32X4 $3, %s, %s, %s", row(hi), A(j), A(j))
		p("VPSRLW $4, %s, K2, %s", A(j), A(j))
		p("VPANDD Z15, %s, %s", A(j), A(j))
		if q5 {
			p("MOVL %s, DX", qh(lo))
			p("MOVL %s, BX", qh(hi))
			p("SHLQ $32, BX")
			p("ORQ BX, DX")
			p("KMOVQ DX, K3")
			p("VPADDB Z14, %s, K3, %s", A(j), A(j))
		}
	}
	wtShuffle(A, Bz)
}

// wtShuffle is the transposition of wtTranspose: A(0..7) to Bz(0..7).
func wtShuffle(A, Bz func(int) string) {
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

// wtScales converts the F16 scales of 16 weight rows (row 4m+i at
// bases[m] + i*ws, ws in AX, 3*ws in R12) into the 16 float32 lanes of
// dst (exact), by integer loads, four to a quadword in BX (row 4m+3 first,
// each next one under it: MOVW writes the low 16 bits), then lo (rows 0-7)
// and hi (8-15), two xmm registers.
func wtScales(bases []string, lo, hi, dst string) { wtScalesAt(bases, 0, lo, hi, dst) }

// wtScalesAt is wtScales for the scales off bytes past the row bases.
func wtScalesAt(bases []string, off int, lo, hi, dst string) {
	disp := ""
	if off != 0 {
		disp = fmt.Sprint(off)
	}
	for m := 0; m < 4; m++ {
		for i := 3; i >= 0; i-- {
			at := fmt.Sprintf("%s(%s)%s", disp, bases[m], []string{"", "(AX*1)", "(AX*2)", "(R12*1)"}[i])
			if i == 3 {
				p("MOVWQZX %s, BX", at)
				continue
			}
			p("SHLQ $16, BX")
			p("MOVW %s, BX", at)
		}
		switch m {
		case 0:
			p("VMOVQ BX, %s", lo)
		case 1:
			p("VPINSRQ $1, BX, %s, %s", lo, lo)
		case 2:
			p("VMOVQ BX, %s", hi)
		case 3:
			p("VPINSRQ $1, BX, %s, %s", hi, hi)
		}
	}
	p("VINSERTI128 $1, %s, Y%s, Y%s", hi, lo[1:], lo[1:])
	p("VCVTPH2PS Y%s, %s", lo[1:], dst) // exact
}
