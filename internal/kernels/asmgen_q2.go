//go:build ignore

package main

import "fmt"

// The AVX2 prefill tiles of the quantised matrix product for CPUs without
// AVX-512 VNNI (run with asmgen.go): q2Q8R{R}G{G} and q2Q4R{R}G{G}(w *byte,
// ws int, pk0, pk1 *byte, nb int, out *float32, ld int) multiply R weight
// rows (Q8_0 or Q4_0, row stride ws bytes) by G halves of 8 activation rows
// of the packVNNI layout (vnni_amd64.go): half h of a 16-row group is the
// h-th 32 bytes of each 64-byte unit, so pk0 (and pk1 when G = 2) point at
// a group plus 0 or 32. Lane j of (row r, half g) goes to
// out[(8g+j)*ld + r].
//
// Per block and (row, half), lane j holds activation row j of the half:
//
//	Q8_0: isum = Σ_k VPMADDWD(ones, VPMADDUBSW(|w_k|, sign(w_k)·x_k)),
//	      w_k the broadcast dword k of the weights (VPABSB, VPSIGNB). Exact:
//	      |w| <= 128 and |x| <= 127 (the activations never hold -128), so a
//	      byte pair sums to at most 32512 in int16.
//	Q4_0: isum = VPMADDWD(ones, Σ_k VPMADDUBSW(nibbles_k, x_k)) + 8·(-Σq_x)
//	      (the packed correction; nibble = w+8), the sum over k in int16
//	      lanes: 16 products of at most 15·128 each, 30720, is exact.
//
// Then t = f32(dw) ⊗ dx_j; t = t ⊗ f32(isum_j); acc_j = acc_j ⊕ t (VMULPS,
// VMULPS, VADDPS; never FMA), blocks in increasing order: dotQ8_0/dotQ4_0
// bit for bit.
const q2Blk = 640 // vnniBlk

var q2Shapes = [][2]int{{1, 1}, {2, 1}, {3, 1}, {4, 1}, {1, 2}, {2, 2}}

func avx2QuantKernels() {
	for _, q4 := range []bool{false, true} {
		for _, s := range q2Shapes {
			q2Tile(q4, s[0], s[1])
		}
	}
}

func q2Tile(q4 bool, R, G int) {
	kind, bs := "Q8", 34
	if q4 {
		kind, bs = "Q4", 18
	}
	name := fmt.Sprintf("q2%sR%dG%d", kind, R, G)
	wp := []string{"SI", "R8", "R10", "R11"}[:R]
	ap := []string{"DI", "BX"}[:G]
	// Registers: Y15 int16 ones; Q8: Y14 w, Y13 |w|, Y12 t, Y11-Y10
	// activations; Q4: Y14 nibble mask, Y13 low, Y12 high nibbles, Y11 w_k,
	// Y10 t. The float accumulators from Y0, then the int accumulators.
	const ones, wr = 15, 14
	absr, tr := 13, 12
	if q4 {
		tr = 10
	}
	act := func(g int) int { return 11 - g }
	facc := func(r, g int) int { return r*G + g }
	iacc := func(r, g int) int { return R*G + r*G + g }
	if lim := act(G - 1); q4 && iacc(R-1, G-1) >= tr || !q4 && iacc(R-1, G-1) >= lim {
		panic(name + ": too many registers")
	}
	fmt.Fprintf(&b, "// func %s(w *byte, ws int, pk0 *byte, pk1 *byte, nb int, out *float32, ld int)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-56\n", name)
	p("MOVQ w+0(FP), SI")
	p("MOVQ ws+8(FP), AX")
	for i := 1; i < R; i++ {
		p("LEAQ (%s)(AX*1), %s", wp[i-1], wp[i])
	}
	p("MOVQ pk0+16(FP), DI")
	if G > 1 {
		p("MOVQ pk1+24(FP), BX")
	}
	p("MOVQ nb+32(FP), CX")
	p("MOVL $0x00010001, AX")
	p("VMOVD AX, X15")
	p("VPBROADCASTD X15, Y%d", ones)
	if q4 {
		p("MOVL $0x0f0f0f0f, AX")
		p("VMOVD AX, X14")
		p("VPBROADCASTD X14, Y14")
	}
	for r := 0; r < R; r++ {
		for g := 0; g < G; g++ {
			p("VXORPS %s, %s, %s", y(facc(r, g)), y(facc(r, g)), y(facc(r, g)))
		}
	}
	p("TESTQ CX, CX")
	p("JZ %s_done", name)
	label(name + "_loop")
	if q4 {
		for r := 0; r < R; r++ {
			// The 16 nibble bytes in both 128-bit lanes: low nibbles are
			// elements 0-15, high nibbles 16-31; VPSHUFD replicates dword k.
			p("VBROADCASTI128 2(%s), Y12", wp[r])
			p("VPAND Y14, Y12, Y13")
			p("VPSRLW $4, Y12, Y12")
			p("VPAND Y14, Y12, Y12")
			for k := 0; k < 8; k++ {
				src := "Y13"
				if k >= 4 {
					src = "Y12"
				}
				p("VPSHUFD $0x%02x, %s, Y11", (k%4)*0x55, src)
				for g := 0; g < G; g++ {
					// nibble (u8) · x (s8), pairs summed in int16; the
					// int16 lanes add up over the block, 16 products of at
					// most 15·128 each: 30720, exact.
					if k == 0 {
						p("VPMADDUBSW %d(%s), Y11, %s", 64*k, ap[g], y(iacc(r, g)))
						continue
					}
					p("VPMADDUBSW %d(%s), Y11, %s", 64*k, ap[g], y(tr))
					p("VPADDW %s, %s, %s", y(tr), y(iacc(r, g)), y(iacc(r, g)))
				}
			}
			for g := 0; g < G; g++ {
				i := y(iacc(r, g))
				p("VPMADDWD Y%d, %s, %s", ones, i, i)     // the two int16 lanes of each dword
				p("VPSLLD $3, 576(%s), %s", ap[g], y(tr)) // 8·(-Σq_x)
				p("VPADDD %s, %s, %s", y(tr), i, i)
			}
		}
	} else {
		for r := 0; r < R; r++ {
			for g := 0; g < G; g++ {
				p("VPXOR %s, %s, %s", y(iacc(r, g)), y(iacc(r, g)), y(iacc(r, g)))
			}
		}
		for k := 0; k < 8; k++ {
			for g := 0; g < G; g++ {
				p("VMOVDQU %d(%s), %s", 64*k, ap[g], y(act(g)))
			}
			for r := 0; r < R; r++ {
				p("VPBROADCASTD %d(%s), Y%d", 2+4*k, wp[r], wr)
				p("VPABSB Y%d, Y%d", wr, absr)
				for g := 0; g < G; g++ {
					p("VPSIGNB Y%d, %s, %s", wr, y(act(g)), y(tr))  // x·sign(w)
					p("VPMADDUBSW %s, Y%d, %s", y(tr), absr, y(tr)) // |w| (u8) · that (s8)
					p("VPMADDWD Y%d, %s, %s", ones, y(tr), y(tr))   // pairs of int16 -> int32
					p("VPADDD %s, %s, %s", y(tr), y(iacc(r, g)), y(iacc(r, g)))
				}
			}
		}
	}
	dw := "Y11" // free in the float part
	for r := 0; r < R; r++ {
		p("VPBROADCASTW (%s), X11", wp[r])
		p("VCVTPH2PS X11, %s", dw) // exact
		for g := 0; g < G; g++ {
			i, f := y(iacc(r, g)), y(facc(r, g))
			p("VMULPS 512(%s), %s, %s", ap[g], dw, y(tr)) // dw*dx
			p("VCVTDQ2PS %s, %s", i, i)                   // exact: |isum| < 2^24
			p("VMULPS %s, %s, %s", i, y(tr), y(tr))       // (dw*dx)*isum
			p("VADDPS %s, %s, %s", y(tr), f, f)
		}
	}
	for _, r := range wp {
		p("ADDQ $%d, %s", bs, r)
	}
	for _, a := range ap {
		p("ADDQ $%d, %s", q2Blk, a)
	}
	p("DECQ CX")
	p("JNZ %s_loop", name)
	label(name + "_done")
	// Lane j of (row r, half g) goes to out[(8g+j)*ld + r]: VMOVSS and
	// VEXTRACTPS, four lanes from each 128-bit half; R12 steps through the
	// quads of lanes, AX = 4*ld bytes, R9 = 3*AX.
	p("MOVQ out+40(FP), DX")
	p("MOVQ ld+48(FP), AX")
	p("SHLQ $2, AX")
	p("LEAQ (AX)(AX*2), R9")
	idx := []string{"", "(AX*1)", "(AX*2)", "(R9*1)"}
	for r := 0; r < R; r++ {
		p("MOVQ DX, R12")
		for g := 0; g < G; g++ {
			f := facc(r, g)
			for h := 0; h < 2; h++ {
				src := x(f)
				if h == 1 {
					p("VEXTRACTF128 $1, %s, X%d", y(f), tr)
					src = x(tr)
				}
				if g+h > 0 {
					p("LEAQ (R12)(AX*4), R12")
				}
				for j := 0; j < 4; j++ {
					if j == 0 {
						p("VMOVSS %s, %d(R12)", src, 4*r)
					} else {
						p("VEXTRACTPS $%d, %s, %d(R12)%s", j, src, 4*r, idx[j])
					}
				}
			}
		}
	}
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}
