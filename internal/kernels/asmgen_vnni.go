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
	for _, kind := range []string{"Q8", "Q4", "Q50"} {
		for q := 1; q <= 8; q++ {
			vnniWTTile(kind, q)
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

// vnniWTTile writes vnniWTQ8P{P}, vnniWTQ4P{P} and vnniWTQ50P{P}(w *byte,
// ws int, pk *byte, nb int, out *float32, ld int), the Q8_0, Q4_0 and Q5_0
// tiles of 16 weight rows (row stride ws bytes)
// against P <= 8 activation rows packed by packVNNIWT (vnniwt_amd64.go),
// over nb blocks: out[p*ld + i] (i < 16, p < P) = the dotQ8_0 of weight row
// i and activation row p. Here the lanes are weight rows: per block, the
// 32 weight bytes of the 16 rows are loaded and transposed (VPUNPCK*DQ,
// VSHUFI32X4) into eight registers W_k whose lane i is dword k of row i,
// made unsigned (Q8_0: w+128, an XOR; Q4_0: the nibbles, w+8, split
// into the low and high halves of each row's 32 bytes; Q5_0: those plus 16
// where the element's bit of qh is set, w+16); each activation
// dword is VPDPBUSD's broadcast memory operand, so a block costs 8
// VPDPBUSD per activation row for all 16 weight rows. The int accumulator
// of activation row p starts at its packed -Σq_x over the block times 128
// (Q8_0), 8 (Q4_0) or 16 (Q5_0) and so ends at exactly isum (|Σ| < 32·255·128, any
// int8 quanta); for P > 1 each row's 8 VPDPBUSD are two chains of 4
// (dwords 0-3 from the correction, 4-7 from zero, then VPADDD: exact),
// four rows interleaved. The 16 weight scales come from 16 integer loads
// (wtScales, asmgen_wt16.go) or, for P = 1, one VPGATHERDD (the dword at
// each row's block), and VCVTPH2PS (exact).
// Then the float sequence of dotQ8_0: t = f32(dw) ⊗ dx_p; t = t ⊗
// f32(isum); acc = acc ⊕ t, blocks in increasing order.
func vnniWTTile(kind string, P int) {
	bs, shift := 34, 7 // Q8: the correction is -Σq_x times 128
	switch kind {
	case "Q4":
		bs, shift = 18, 3 // times 8: the nibbles are w+8
	case "Q50":
		bs, shift = 22, 4 // times 16: nibble | high bit << 4 is w+16
	}
	q4 := kind != "Q8" // the quanta are nibbles (Q5_0: plus a bit)
	qoff := 2          // offset of the quanta in a block
	if kind == "Q50" {
		qoff = 6
	}
	name := fmt.Sprintf("vnniWT%sP%d", kind, P)
	// Z0-Z7 the loaded rows, then the int accumulators (P > 1: two per
	// row, the second then t); Z8-Z15 the transposed weights; Z16.. the
	// float accumulators; Z24 dw, Z25 t (P = 1), Z26 the gathered scales
	// and Z30 the gather offsets (P = 1), Z31 0x80 bytes.
	A := func(i int) string { return z(i) }
	Bz := func(i int) string { return z(8 + i) }
	facc := func(p int) string { return z(16 + p) }
	bases := []string{"SI", "R8", "R10", "R11"}
	rowAt := func(off, i int) string {
		return fmt.Sprintf("%d(%s)%s", off, bases[i/4], []string{"", "(AX*1)", "(AX*2)", "(R12*1)"}[i%4])
	}
	row := func(i int) string { return rowAt(qoff, i) }
	fmt.Fprintf(&b, "// func %s(w *byte, ws int, pk *byte, nb int, out *float32, ld int)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-48\n", name)
	p("MOVQ w+0(FP), SI")
	p("MOVQ ws+8(FP), AX")
	p("LEAQ (AX)(AX*2), R12")
	p("LEAQ (SI)(AX*4), R8")
	p("LEAQ (R8)(AX*4), R10")
	p("LEAQ (R10)(AX*4), R11")
	p("MOVQ pk+16(FP), DI")
	p("MOVQ nb+24(FP), CX")
	if wtPrefetch {
		p("LEAQ (R11)(AX*4), R9") // the next tile's rows: one sequential stream
	}
	if P == 1 {
		p("VPBROADCASTD AX, Z30") // the gather offsets
		p("VPMULLD vnniIota<>(SB), Z30, Z30")
	}
	if q4 {
		p("MOVL $0x0f0f0f0f, DX")
		p("VPBROADCASTD DX, Z31")
		p("MOVL $0xff00ff00, DX") // the words of 128-bit chunks 1 and 3
		p("KMOVD DX, K2")
		if kind == "Q50" {
			p("MOVL $0x10101010, DX")
			p("VPBROADCASTD DX, Z29")
		}
	} else {
		p("MOVL $0x80808080, DX")
		p("VPBROADCASTD DX, Z31")
	}
	for q := 0; q < P; q++ {
		p("VPXORD %s, %s, %s", facc(q), facc(q), facc(q))
	}
	p("TESTQ CX, CX")
	p("JZ %s_done", name)
	label(name + "_loop")
	// Sixteen row streams are more than the hardware prefetchers follow
	// (measured here from memory, one activation row: 14 GB/s, against
	// 33 for the AVX2 kernel's single stream): each block step prefetches
	// 16*34 bytes of the next tile's rows (contiguous in memory) in order.
	// With one activation row (decode: little arithmetic per block) the
	// Q8_0 tile spreads those prefetches over eight points of the block
	// step (wtPrefetchParts) rather than issuing them at once.
	parts := 1
	if kind == "Q8" && P == 1 {
		parts = wtPrefetchParts
	}
	lines := (16*bs + 63) / 64
	pf := func(i int) { // prefetch point i of 8
		if !wtPrefetch || i%(8/parts) != 0 {
			return
		}
		k := i / (8 / parts)
		for c := k * lines / parts; c < (k+1)*lines/parts; c++ {
			p("%s %d(R9)", wtPrefetchOp, 64*c)
		}
		if k == parts-1 {
			p("ADDQ $%d, R9", 16*bs)
		}
	}
	pf(0)
	// Z_j = [row j | row j+4] for j < 4, [row j+4 | row j+8] for j >= 4.
	for j := 0; j < 8; j++ {
		lo, hi := j, j+4
		if j >= 4 {
			lo, hi = j+4, j+8
		}
		if q4 {
			// The 16 bytes of each row twice, then the low nibbles
			// (elements 0-15) in chunks 0 and 2, the high ones (16-31)
			// in chunks 1 and 3.
			p("VBROADCASTI32X4 %s, %s", row(lo), A(j))
			p("VINSERTI32X4 $2, %s, %s, %s", row(hi), A(j), A(j))
			p("VINSERTI32X4 $3, %s, %s, %s", row(hi), A(j), A(j))
			p("VPSRLW $4, %s, K2, %s", A(j), A(j))
			p("VPANDD Z31, %s, %s", A(j), A(j))
			if kind == "Q50" {
				// Byte e of each row's 32 gets 16 where bit e of its
				// qh is set: a 64-bit mask of the two rows' qh.
				p("MOVL %s, DX", rowAt(2, lo))
				p("MOVL %s, BX", rowAt(2, hi))
				p("SHLQ $32, BX")
				p("ORQ BX, DX")
				p("KMOVQ DX, K3")
				p("VPADDB Z29, %s, K3, %s", A(j), A(j))
			}
			continue
		}
		p("VMOVDQU %s, %s", row(lo), y(j))
		p("VINSERTI64X4 $1, %s, %s, %s", row(hi), A(j), A(j))
		if j%2 == 1 && j < 7 {
			pf(1 + j/2)
		}
	}
	pf(4)
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
	pf(5)
	for x := 0; x < 4; x++ {
		p("VSHUFI32X4 $0x88, %s, %s, %s", A(4+x), A(x), Bz(x))
		p("VSHUFI32X4 $0xdd, %s, %s, %s", A(4+x), A(x), Bz(4+x))
	}
	pf(6)
	if !q4 {
		for k := 0; k < 8; k++ {
			p("VPXORD Z31, %s, %s", Bz(k), Bz(k)) // w+128
		}
	}
	if P == 1 {
		// Decode streams the weights from memory: there the gather was
		// measured faster (768 x 2048 Q8_0: 47 against 34 GMAC per CPU
		// second with wtScales), in the L2 cache slower (64 against 90).
		p("KXNORW K1, K1, K1")
		p("VPGATHERDD (SI)(Z30*1), K1, Z26")
		p("VPMOVDW Z26, Y26")
		p("VCVTPH2PS Y26, Z24") // exact
	} else {
		wtScales(bases, "X0", "X1", "Z24")
	}
	pf(7)
	// Rows in fours, each row's sum in two chains of 4 VPDPBUSD (a:
	// dwords 0-3 from the correction, b: dwords 4-7 from zero),
	// interleaved, then a += b (exact integers); b then holds t.
	for q0 := 0; q0 < P && P == 1; q0++ { // as before
		acc := A(0)
		p("VPBROADCASTD 0(DI), %s", acc) // -Σq_x
		p("VPSLLD $%d, %s, %s", shift, acc, acc)
		for k := 0; k < 8; k++ {
			p("VPDPBUSD.BCST %d(DI), %s, %s", 64+4*k, Bz(k), acc)
		}
		p("VMULPS.BCST 32(DI), Z24, Z25") // dw*dx
		p("VCVTDQ2PS %s, %s", acc, acc)   // exact: |isum| < 2^24
		p("VMULPS %s, Z25, %s", acc, acc) // (dw*dx)*isum
		p("VADDPS %s, %s, %s", acc, facc(0), facc(0))
	}
	for q0 := 0; q0 < P && P > 1; q0 += 4 {
		rows := min(4, P-q0)
		ra := func(i int) string { return A(2 * i) }
		rb := func(i int) string { return A(2*i + 1) }
		for i := 0; i < rows; i++ {
			q := q0 + i
			p("VPBROADCASTD %d(DI), %s", 4*q, ra(i)) // -Σq_x
			p("VPSLLD $%d, %s, %s", shift, ra(i), ra(i))
			p("VPXORD %s, %s, %s", rb(i), rb(i), rb(i))
		}
		for k := 0; k < 4; k++ {
			for i := 0; i < rows; i++ {
				q := q0 + i
				p("VPDPBUSD.BCST %d(DI), %s, %s", 64+32*q+4*k, Bz(k), ra(i))
				p("VPDPBUSD.BCST %d(DI), %s, %s", 64+32*q+4*(k+4), Bz(k+4), rb(i))
			}
		}
		for i := 0; i < rows; i++ {
			q := q0 + i
			a, t := ra(i), rb(i)
			p("VPADDD %s, %s, %s", t, a, a)
			p("VMULPS.BCST %d(DI), Z24, %s", 32+4*q, t) // dw*dx
			p("VCVTDQ2PS %s, %s", a, a)                 // exact: |isum| < 2^24
			p("VMULPS %s, %s, %s", a, t, a)             // (dw*dx)*isum
			p("VADDPS %s, %s, %s", a, facc(q), facc(q))
		}
	}
	for _, r := range bases {
		p("ADDQ $%d, %s", bs, r)
	}
	p("ADDQ $%d, DI", vnniWTBlk)
	p("DECQ CX")
	p("JNZ %s_loop", name)
	label(name + "_done")
	p("MOVQ out+32(FP), DX")
	p("MOVQ ld+40(FP), BX")
	p("SHLQ $2, BX")
	for q := 0; q < P; q++ {
		p("VMOVUPS %s, (DX)", facc(q))
		if q+1 < P {
			p("ADDQ BX, DX")
		}
	}
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// wtPrefetch is whether vnniWTTile prefetches the next tile's weight rows
// (with wtPrefetchOp: PREFETCHT1, into L2, since session 12 on the
// Sapphire Rapids VM: a 8192 x 2048 product against 1 to 8 rows from
// memory on two threads (BenchmarkQ8RowsDRAM), four alternated rounds, 1 row 20.3-24.3 GB/s
// against 17.4-19.4 with PREFETCHT0, 2 rows 15.1-17.7 against 12.4-15.8,
// 4 and 8 rows within the noise; Llama 3.2 1B Q8_0 decode 14.7-14.9 tok/s
// against 13.3-13.4: a PREFETCHT0 miss holds one of the core's few L1
// fill buffers until memory answers).
var (
	wtPrefetch   = true
	wtPrefetchOp = "PREFETCHT1"
	// wtPrefetchParts is the number of parts (1, 2, 4 or 8) over which
	// vnniWTQ8P1 spreads each block step's prefetches.
	wtPrefetchParts = 8
)

// vnniWTBlk is the packed bytes per (group of 8 activation rows, block) of
// vnniWTTile: 8 corrections, 8 dx, 8 x 32 quanta.
const vnniWTBlk = 320
