//go:build ignore

package main

import (
	"fmt"
	"os"
)

// The kwt tiles for 16 activation rows in one call (run with asmgen.go):
// kwt4W16 and kwt6W16(w *byte, ws int, pk *byte, gs int, nb int, out
// *float32, ld int, scr *byte) are kwt4P8 and kwt6P8 (asmgen_kwt.go) for
// the two groups of 8 rows packed by packKWT (group stride gs bytes)
// against the same 16 Q4_K or Q6_K weight rows, so that each super-block's
// headers are unpacked and its quanta loaded, made unsigned and transposed
// once for 16 activation rows instead of once per group of 8 (the decode
// step of 16 streams called the P8 tile twice), as vnniWT16Q8
// (asmgen_wt16.go) does for Q8_0. out[p*ld + i] (i < 16, p < 16) is the
// value of section 4.2 of docs/determinism.md for weight row i and
// activation row p, bit for bit: the integer sums are those of the P8
// tiles (exact; only the order of their int32 additions differs), the
// float sequence per super-block and the accumulation over super-blocks
// are theirs.
//
// Registers: Z16-Z31 hold isum of the 16 activation rows through a
// super-block (the P8 tiles keep 8); the float accumulators are in scr
// (kwt16Acc + 64p). The 32 bytes of a chunk of the 16 weight rows take
// eight registers and are transposed in place with a ninth (kwt16Transpose),
// one sub-block at a time (Q4_K: the low nibbles, then the high ones
// reloaded; Q6_K: a quarter's two sub-blocks of 16), which leaves the rest
// for the sub-block sums σ and the masks. Per activation row and sub-block,
// σ is a chain of VPDPBUSD (8 for Q4_K, 4 for Q6_K) split into kwt16Split
// independent chains added at the end (integer: exact in any order), and
// the rows' chains are written kwt16IL at a time, interleaved, so that
// enough independent VPDPBUSD are in flight for the two VNNI pipes.
var (
	kwt16Split = 1 // chains per σ (1 or 2)
	kwt16IL    = 4 // activation rows whose chains are interleaved
	// For measurements: the prefetch instruction, and how many tiles of
	// 16 rows ahead it reads (1: the next tile).
	kwt16PfOp    = "PREFETCHT0"
	kwt16PfDist  = 1
	kwt16PfParts = 8 // the super-block's steps the prefetches are spread over (1: all at the top)
)

// kwt16Prefetch is kwtPrefetch with kwt16PfOp.
func kwt16Prefetch(bytes, parts int) func(i int) {
	lines := (bytes + 63) / 64
	return func(i int) {
		for c := i * lines / parts; c < (i+1)*lines/parts; c++ {
			p("%s %d(R9)", kwt16PfOp, 64*c)
		}
	}
}

const kwt16Acc = 1600 // scr offset of the 16 float accumulators

// kwt16Transpose transposes the eight registers regs (kwtLoad32's input
// order) in place, with the free register t, as kwtTranspose does: it
// returns the registers W_k (lane i of W_k is dword k of row i) and the
// free register.
func kwt16Transpose(regs [8]int, t int) ([8]int, int) {
	A := regs
	var B [8]int
	// B(2m) = lo(A2m, A2m+1), B(2m+1) = hi(A2m, A2m+1).
	for m := 0; m < 4; m++ {
		p("VPUNPCKLDQ %s, %s, %s", z(A[2*m+1]), z(A[2*m]), z(t))
		p("VPUNPCKHDQ %s, %s, %s", z(A[2*m+1]), z(A[2*m]), z(A[2*m+1]))
		B[2*m], B[2*m+1], t = t, A[2*m+1], A[2*m]
	}
	for h := 0; h < 8; h += 4 {
		p("VPUNPCKLQDQ %s, %s, %s", z(B[h+2]), z(B[h]), z(t))
		p("VPUNPCKHQDQ %s, %s, %s", z(B[h+2]), z(B[h]), z(B[h+2]))
		A[h], A[h+1], t = t, B[h+2], B[h]
		p("VPUNPCKLQDQ %s, %s, %s", z(B[h+3]), z(B[h+1]), z(t))
		p("VPUNPCKHQDQ %s, %s, %s", z(B[h+3]), z(B[h+1]), z(B[h+3]))
		A[h+2], A[h+3], t = t, B[h+3], B[h+1]
	}
	for x := 0; x < 4; x++ {
		p("VSHUFI32X4 $0x88, %s, %s, %s", z(A[4+x]), z(A[x]), z(t))
		p("VSHUFI32X4 $0xdd, %s, %s, %s", z(A[4+x]), z(A[x]), z(A[4+x]))
		B[x], B[4+x], t = t, A[4+x], A[x]
	}
	return B, t
}

// kwt16Sums writes, for the 16 activation rows, the sums of sub-blocks
// subs (one per group of len(ks[i]) weight registers W[ks[i][k]]) against
// the activation dwords at actOff(s, k) of each row (k the weight
// register's index), times the scale of the
// sub-block (scr offset scOff(s)), added to isum (Z16+q; set by the first
// sub-block of the super-block, first). σ registers: sig.
func kwt16Sums(W [8]int, subs []int, ks [][]int, actOff func(s, k int) int, scOff func(s int) int, first bool, sig []int) {
	pk := func(q int) string { return []string{"DI", "R13"}[q/8] }
	split := kwt16Split
	if kwt16IL*split > len(sig) || 16%kwt16IL != 0 {
		panic(fmt.Sprintf("kwt16: %d rows of %d chains need more than %d σ registers", kwt16IL, split, len(sig)))
	}
	next := 0
	take := func() string {
		r := z(sig[next%len(sig)])
		next++
		return r
	}
	for q0 := 0; q0 < 16; q0 += kwt16IL {
		for si, s := range subs {
			type chain struct {
				q    int
				regs []string
			}
			var cs []chain
			for q := q0; q < q0+kwt16IL; q++ {
				c := chain{q: q}
				for i := 0; i < split; i++ {
					r := take()
					p("VPXORD %s, %s, %s", r, r, r)
					c.regs = append(c.regs, r)
				}
				cs = append(cs, c)
			}
			n := len(ks[si])
			for k := 0; k < n; k++ {
				for _, c := range cs {
					acc := c.regs[k*split/n]
					p("VPDPBUSD.BCST %d(%s), %s, %s", 256*(c.q%8)+actOff(s, ks[si][k]), pk(c.q), z(W[ks[si][k]]), acc)
				}
			}
			for _, c := range cs {
				sg := c.regs[0]
				for _, r := range c.regs[1:] {
					p("VPADDD %s, %s, %s", r, sg, sg)
				}
				if first && si == 0 {
					p("VPMULLD %d(BX), %s, %s", scOff(s), sg, z(16+c.q))
					continue
				}
				p("VPMULLD %d(BX), %s, %s", scOff(s), sg, sg)
				p("VPADDD %s, %s, %s", sg, z(16+c.q), z(16+c.q))
			}
		}
	}
}

// kwt16Prologue writes the function header and the register setup common
// to both tiles, up to the loop label.
func kwt16Prologue(name string, frame int) {
	fmt.Fprintf(&b, "// func %s(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, scr *byte)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $%d-64\n", name, frame)
	p("MOVQ w+0(FP), SI")
	p("MOVQ ws+8(FP), AX")
	p("LEAQ (AX)(AX*2), R12")
	p("LEAQ (SI)(AX*4), R8")
	p("LEAQ (R8)(AX*4), R10")
	p("LEAQ (R10)(AX*4), R11")
	p("LEAQ (R11)(AX*4), R9") // the next tile's rows: one sequential stream
	p("MOVQ pk+16(FP), DI")
	p("MOVQ gs+24(FP), R13")
	p("ADDQ DI, R13")
	p("MOVQ nb+32(FP), CX")
	p("MOVQ scr+56(FP), BX")
	for i := 1; i < kwt16PfDist; i++ {
		p("LEAQ (R9)(AX*8), R9")
		p("LEAQ (R9)(AX*8), R9")
	}
	p("VPXORD Z0, Z0, Z0")
	for q := 0; q < 16; q++ {
		p("VMOVUPS Z0, %d(BX)", kwt16Acc+64*q)
	}
}

// kwt16Epilogue steps the pointers, closes the loop and stores the 16
// accumulators.
func kwt16Epilogue(name string, bs int) {
	for _, r := range []string{"SI", "R8", "R10", "R11"} {
		p("ADDQ $%d, %s", bs, r)
	}
	p("ADDQ $%d, DI", kwtRow*kwtMaxP)
	p("ADDQ $%d, R13", kwtRow*kwtMaxP)
	p("ADDQ $%d, R9", 16*bs)
	p("DECQ CX")
	p("JNZ %s_loop", name)
	label(name + "_done")
	p("MOVQ out+40(FP), DX")
	p("MOVQ ld+48(FP), R13")
	p("SHLQ $2, R13")
	for q := 0; q < 16; q++ {
		p("VMOVUPS %d(BX), Z0", kwt16Acc+64*q)
		p("VMOVUPS Z0, (DX)")
		if q+1 < 16 {
			p("ADDQ R13, DX")
		}
	}
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

func kwt16Kernels() {
	if v := os.Getenv("KWT16_SPLIT"); v != "" {
		fmt.Sscan(v, &kwt16Split)
	}
	if v := os.Getenv("KWT16_IL"); v != "" {
		fmt.Sscan(v, &kwt16IL)
	}
	if v := os.Getenv("KWT16_PFOP"); v != "" {
		kwt16PfOp = v
	}
	if v := os.Getenv("KWT16_PFDIST"); v != "" {
		fmt.Sscan(v, &kwt16PfDist)
	}
	if v := os.Getenv("KWT16_PFPARTS"); v != "" {
		fmt.Sscan(v, &kwt16PfParts)
	}
	b.WriteString("DATA kwt0f<>+0(SB)/4, $0x0f0f0f0f\nGLOBL kwt0f<>(SB), RODATA|NOPTR, $4\n\n")
	kwt16Q4()
	kwt16Q6()
}

// kwt16Q4 writes kwt4W16.
func kwt16Q4() {
	const name, bs = "kwt4W16", 144
	bases := []string{"SI", "R8", "R10", "R11"}
	rowAt := func(off, i int) string {
		return fmt.Sprintf("%d(%s)%s", off, bases[i/4], []string{"", "(AX*1)", "(AX*2)", "(R12*1)"}[i%4])
	}
	// scr (BX): as kwtTile's: 0 d, 64 dmin (float32), 128+64s the scale
	// of sub-block s (int32), 640+64t the pairs (m_2t, m_2t+1) (int16);
	// then 896+64k the high nibbles of the current chunk (W_k).
	const fD, fDmin, fSc, fMp = 0, 64, 128, 640
	kwt16Prologue(name, 0)
	p("TESTQ CX, CX")
	p("JZ %s_done", name)
	label(name + "_loop")
	pf := kwt16Prefetch(16*bs, kwt16PfParts) // spread over the eight sub-blocks

	// The headers, as kwtTile (Z0-Z15 are free at the top of a step).
	kwtHeaders(rowAt, 0)
	p("VPMOVDW Z0, Y4")
	p("VCVTPH2PS Y4, Z4") // d, exact
	p("VMOVUPS Z4, %d(BX)", fD)
	p("VPSRLD $16, Z0, Z5")
	p("VPMOVDW Z5, Y5")
	p("VCVTPH2PS Y5, Z5") // dmin
	p("VMOVUPS Z5, %d(BX)", fDmin)
	for _, c := range []struct {
		v   uint32
		reg string
	}{{0x03, "Z28"}, {0x0f, "Z29"}, {0x3f, "Z30"}} {
		p("MOVL $0x%08x, DX", c.v)
		p("VPBROADCASTD DX, %s", c.reg)
	}
	kwt4Scales(fSc, fMp)

	// Registers through the sums: Z0-Z8 the weights (eight and a free
	// one), Z9-Z14 σ, Z15 0x0f bytes, Z16-Z31 isum.
	p("VPBROADCASTD kwt0f<>(SB), Z15")
	sig := []int{9, 10, 11, 12, 13, 14}
	ks := [][]int{{0, 1, 2, 3, 4, 5, 6, 7}}
	// Per chunk, the 16 rows' 32 bytes are transposed once: the low
	// nibbles stay in the registers for sub-block 2c, the high ones go to
	// scr (fHi) and come back for sub-block 2c+1.
	const fHi = 896
	for c := 0; c < 4; c++ {
		pf(2 * c)
		in := [8]int{0, 1, 2, 3, 4, 5, 6, 7}
		kwtLoad32(rowAt, 16+32*c, func(j int) int { return in[j] })
		W, t := kwt16Transpose(in, 8)
		for k := 0; k < 8; k++ {
			p("VPSRLD $4, %s, %s", z(W[k]), z(t))
			p("VPANDD Z15, %s, %s", z(t), z(t))
			p("VMOVDQU32 %s, %d(BX)", z(t), fHi+64*k)
			p("VPANDD Z15, %s, %s", z(W[k]), z(W[k]))
		}
		kwt16Sums(W, []int{2 * c}, ks, func(s, k int) int { return 32*s + 4*k }, func(s int) int { return fSc + 64*s }, c == 0, sig)
		pf(2*c + 1)
		for k := 0; k < 8; k++ {
			p("VMOVDQU32 %d(BX), %s", fHi+64*k, z(W[k]))
		}
		kwt16Sums(W, []int{2*c + 1}, ks, func(s, k int) int { return 32*s + 4*k }, func(s int) int { return fSc + 64*s }, false, sig)
	}

	// msum and the float sequence, as kwtTile's.
	p("VMOVUPS %d(BX), Z8", fD)
	p("VMOVUPS %d(BX), Z9", fDmin)
	for t := 0; t < 4; t++ {
		p("VMOVDQU32 %d(BX), %s", fMp+64*t, z(4+t))
	}
	for q := 0; q < 16; q++ {
		pkb, j := []string{"DI", "R13"}[q/8], q%8
		m, t1, t2, t3 := "Z0", "Z1", "Z2", "Z3"
		if q%2 == 1 {
			m, t1, t2, t3 = "Z10", "Z11", "Z12", "Z13"
		}
		p("VPXORD %s, %s, %s", m, m, m)
		for t := 0; t < 4; t++ {
			p("VPDPWSSD.BCST %d(%s), %s, %s", 260*kwtMaxP+16*j+4*t, pkb, z(4+t), m)
		}
		p("VMULPS.BCST %d(%s), Z8, %s", 256*kwtMaxP+4*j, pkb, t1) // d ⊗ dx
		p("VCVTDQ2PS %s, %s", z(16+q), t2)
		p("VMULPS %s, %s, %s", t2, t1, t1)                        // ⊗ f32(isum)
		p("VMULPS.BCST %d(%s), Z9, %s", 256*kwtMaxP+4*j, pkb, t3) // dmin ⊗ dx
		p("VCVTDQ2PS %s, %s", m, m)
		p("VMULPS %s, %s, %s", m, t3, t3) // ⊗ f32(msum)
		p("VSUBPS %s, %s, %s", t3, t1, t1)
		p("VADDPS %d(BX), %s, %s", kwt16Acc+64*q, t1, t1)
		p("VMOVUPS %s, %d(BX)", t1, kwt16Acc+64*q)
	}
	kwt16Epilogue(name, bs)
}

// kwt16Q6 writes kwt6W16.
func kwt16Q6() {
	const name, bs = "kwt6W16", 210
	bases := []string{"SI", "R8", "R10", "R11"}
	rowAt := func(off, i int) string {
		return fmt.Sprintf("%d(%s)%s", off, bases[i/4], []string{"", "(AX*1)", "(AX*2)", "(R12*1)"}[i%4])
	}
	// scr (BX): as kwtTile6's: 0 d (float32), 64+64s the scale of
	// sub-block s (int32), 1088+64t the pairs (sc_2t, sc_2t+1) (int16).
	// The frame holds the gather offsets (lane i: i*ws).
	const fD, fSc, fPair = 0, 64, 1088
	kwt16Prologue(name, 64)
	p("VPBROADCASTD AX, Z0")
	p("VPMULLD vnniIota<>(SB), Z0, Z0")
	p("VMOVDQU32 Z0, (SP)")
	p("TESTQ CX, CX")
	p("JZ %s_done", name)
	label(name + "_loop")
	pf := kwt16Prefetch(16*bs, kwt16PfParts)

	// The scales and d, as kwtTile6 (Z0-Z15 free; Z30 0xffff).
	p("MOVL $0x0000ffff, DX")
	p("VPBROADCASTD DX, Z30")
	kwt6Scales(rowAt, fSc, fPair)
	p("VMOVDQU32 (SP), Z7")
	p("KXNORW K1, K1, K1")
	p("VPGATHERDD 206(SI)(Z7*1), K1, Z4")
	p("VPSRLD $16, Z4, Z4")
	p("VPMOVDW Z4, Y4")
	p("VCVTPH2PS Y4, Z4") // d, exact
	p("VMOVUPS Z4, %d(BX)", fD)

	// Registers through the sums: Z0-Z8 the weights (eight and a free
	// one, which takes qh while u is made), Z9-Z13 σ, Z14 0x30 bytes, Z15
	// 0x0f bytes, Z16-Z31 isum.
	p("VPBROADCASTD kwt0f<>(SB), Z15")
	p("MOVL $0x30303030, DX")
	p("VPBROADCASTD DX, Z14")
	sig := []int{9, 10, 11, 12, 13}
	ks := [][]int{{0, 1, 2, 3}, {4, 5, 6, 7}}
	for h := 0; h < 2; h++ {
		for kq := 0; kq < 4; kq++ {
			pf(4*h + kq)
			in := [8]int{0, 1, 2, 3, 4, 5, 6, 7}
			const t = 8
			for j := 0; j < 8; j++ {
				lo, hi := j, j+4
				if j >= 4 {
					lo, hi = j+4, j+8
				}
				a := z(in[j])
				p("VMOVDQU %s, %s", rowAt(64*h+32*(kq%2), lo), y(in[j]))
				p("VINSERTI64X4 $1, %s, %s, %s", rowAt(64*h+32*(kq%2), hi), a, a)
				p("VMOVDQU %s, %s", rowAt(128+32*h, lo), y(t))
				p("VINSERTI64X4 $1, %s, %s, %s", rowAt(128+32*h, hi), z(t), z(t))
				if kq >= 2 {
					p("VPSRLD $4, %s, %s", a, a)
				}
				p("VPANDD Z15, %s, %s", a, a)
				switch kq {
				case 0:
					p("VPSLLD $4, %s, %s", z(t), z(t))
				case 1:
					p("VPSLLD $2, %s, %s", z(t), z(t))
				case 3:
					p("VPSRLD $2, %s, %s", z(t), z(t))
				}
				// u = q + 32: (qh bits & 0x30) | nibble.
				p("VPTERNLOGD $0xf8, Z14, %s, %s", z(t), a)
			}
			W, _ := kwt16Transpose(in, t)
			sa := 8*h + 2*kq
			kwt16Sums(W, []int{sa, sa + 1}, ks, func(s, k int) int { return 128*h + 32*kq + 4*k }, func(s int) int { return fSc + 64*s }, h == 0 && kq == 0, sig)
		}
	}

	// The correction and the float sequence, as kwtTile6's.
	for t := 0; t < 8; t++ {
		p("VMOVDQU32 %d(BX), %s", fPair+64*t, z(t))
	}
	p("VMOVUPS %d(BX), Z8", fD)
	for q := 0; q < 16; q++ {
		pkb, j := []string{"DI", "R13"}[q/8], q%8
		m, t1, t2 := "Z9", "Z10", "Z11"
		if q%2 == 1 {
			m, t1, t2 = "Z12", "Z13", "Z14"
		}
		p("VPXORD %s, %s, %s", m, m, m)
		for t := 0; t < 8; t++ {
			p("VPDPWSSD.BCST %d(%s), %s, %s", 276*kwtMaxP+32*j+4*t, pkb, z(t), m)
		}
		p("VPSLLD $5, %s, %s", m, m)
		p("VPSUBD %s, %s, %s", m, z(16+q), z(16+q))               // isum
		p("VMULPS.BCST %d(%s), Z8, %s", 256*kwtMaxP+4*j, pkb, t1) // d ⊗ dx
		p("VCVTDQ2PS %s, %s", z(16+q), t2)
		p("VMULPS %s, %s, %s", t2, t1, t1) // ⊗ f32(isum)
		p("VADDPS %d(BX), %s, %s", kwt16Acc+64*q, t1, t1)
		p("VMOVUPS %s, %d(BX)", t1, kwt16Acc+64*q)
	}
	kwt16Epilogue(name, bs)
}
