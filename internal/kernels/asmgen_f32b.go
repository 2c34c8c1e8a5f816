//go:build ignore

package main

import (
	"fmt"
	"log"
)

// The AVX-512F float32 tiles of the batch decode step and of prefill
// chunks (run with asmgen.go): f32ZB6x{P}L{L}(w *float32, ws int, x
// *float32, xs int, n int, out *float32, pf uintptr, pfs int) is f32Z6x{P}
// (zmmTile: one zmm accumulator per (weight row, activation row) sum, the
// 16 canonical lanes, the canonical fold) that, in each 16-element step of
// its main loop, also prefetches the L cache lines at pf and then advances
// pf by pfs bytes. The Go caller (matF32Batch) points pf at the next block
// of 6 weight rows (contiguous in memory) and chooses the calls' pf and pfs
// so that the calls of one block, one per group of up to 4 activation
// rows, together prefetch the whole next block: the weights then stream
// from memory while the tiles compute, instead of the first group's call
// stalling on 6 interleaved row streams (measured here, 2048 x 768 from
// memory, 16 activation rows: 13 GB/s of weights per CPU second without,
// 19.5 with). A block takes 6*cols/16 lines over calls*cols/16 steps, so
// the step prefetches L = 6/calls lines (rounded up); L comes in 1, 2, 3
// and 6, because a surplus prefetch costs (measured: three lines a step
// where two do, 7% slower at 16 activation rows).
//
// Row r of the weights is at SI + r*ws (rows 3-5 at R8 = SI + 3*ws), row q
// of the activations at DI + q*xs (row 3 at R12 = DI + 3*xs); the pointers
// advance. R10 is pf, R11 pfs.

// f32bLines are the prefetch lines per step generated (L).
var f32bLines = []int{1, 2, 3, 6}

func f32bKernels() {
	for _, L := range f32bLines {
		for P := 1; P <= 4; P++ {
			f32bTile(6, P, L)
		}
	}
}

func f32bTile(R, P, L int) {
	name := fmt.Sprintf("f32ZB%dx%dL%d", R, P, L)
	fmt.Fprintf(&b, "// func %s(w *float32, ws int, x *float32, xs int, n int, out *float32, pf uintptr, pfs int)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-64\n", name)
	p("MOVQ w+0(FP), SI")
	p("MOVQ ws+8(FP), R9")
	p("SHLQ $2, R9")
	p("LEAQ (SI)(R9*2), R8")
	p("ADDQ R9, R8")
	p("MOVQ x+16(FP), DI")
	p("MOVQ xs+24(FP), BX")
	p("SHLQ $2, BX")
	p("LEAQ (DI)(BX*2), R12")
	p("ADDQ BX, R12")
	p("MOVQ n+32(FP), CX")
	p("MOVQ out+40(FP), DX")
	p("MOVQ pf+48(FP), R10")
	p("MOVQ pfs+56(FP), R11")
	waddr := []string{"(SI)", "(SI)(R9*1)", "(SI)(R9*2)", "(R8)", "(R8)(R9*1)", "(R8)(R9*2)"}
	xaddr := []string{"(DI)", "(DI)(BX*1)", "(DI)(BX*2)", "(R12)"}
	if R > len(waddr) || P > len(xaddr) {
		log.Fatalf("%s: too many rows", name)
	}
	nacc := R * P
	acc := func(r, q int) int { return r*P + q }
	wbase := max(16, nacc)
	wreg := func(r int) int { return wbase + r }
	xreg := wbase + R // one register: each activation vector is loaded, used by R products
	tbase := xreg + 1
	if tbase > 31 {
		log.Fatalf("%s: not enough registers", name)
	}
	tmpN := 0
	tmp := func() int { t := tbase + tmpN%(32-tbase); tmpN++; return t }
	for i := 0; i < nacc; i++ {
		p("VPXORD %s, %s, %s", z(i), z(i), z(i))
	}
	body := func(load func(addr string, dst int), prefetch bool) {
		for r := 0; r < R; r++ {
			load(waddr[r], wreg(r))
		}
		for q := 0; q < P; q++ {
			load(xaddr[q], xreg)
			for r := 0; r < R; r++ {
				t := tmp()
				p("VMULPS %s, %s, %s", z(xreg), z(wreg(r)), z(t))
				a := z(acc(r, q))
				p("VADDPS %s, %s, %s", z(t), a, a)
			}
			// The step's prefetches, spread over its activation rows.
			for c := 0; prefetch && c < L; c++ {
				if c*P/L == q {
					p("PREFETCHT0 %d(R10)", 64*c)
				}
			}
		}
	}
	p("MOVQ CX, AX")
	p("SHRQ $4, AX")
	p("JZ %s_tail", name)
	label(name + "_loop")
	body(func(addr string, dst int) { p("VMOVUPS %s, %s", addr, z(dst)) }, true)
	for _, r := range []string{"SI", "R8", "DI", "R12"} {
		p("ADDQ $64, %s", r)
	}
	p("ADDQ R11, R10")
	p("DECQ AX")
	p("JNZ %s_loop", name)
	label(name + "_tail")
	p("ANDQ $15, CX")
	p("JZ %s_fold", name)
	p("MOVL $1, AX")
	p("SHLL CX, AX")
	p("DECL AX")
	p("KMOVW AX, K1")
	body(func(addr string, dst int) { p("VMOVUPS.Z %s, K1, %s", addr, z(dst)) }, false)
	label(name + "_fold")
	foldZ(nacc, wbase)
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}
