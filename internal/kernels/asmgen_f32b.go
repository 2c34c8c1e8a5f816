//go:build ignore

package main

import (
	"fmt"
	"log"
)

// f32bPfOp is the F32 batch tiles' weight prefetch: PREFETCHT1, into L2
// (session 12, Sapphire Rapids VM, BenchmarkBatchStep on the 110m F32
// file, two threads, alternated rounds, four for n = 4 and two for the
// others: n = 4 195-204 tok/s against 174-182 with PREFETCHT0, n = 8
// 341-349 against 303-324, n = 2 103-117 against 99-104, n = 16 513-521
// against 492-509; as for the Q8_0 and K-quant tiles, a PREFETCHT0 miss
// holds one of the core's few L1 fill buffers until memory answers).
const f32bPfOp = "PREFETCHT1"

// The AVX-512F float32 tiles of the batch decode step and of prefill
// chunks (run with asmgen.go): f32ZB6x{P}L{L}(w *float32, ws int, x
// *float32, xs int, n int, out *float32, ld int, pf uintptr, pfs int, acc
// *float32, mode int) is f32Z6x{P} (zmmTile: one zmm accumulator per
// (weight row, activation row) sum, the 16 canonical lanes, the canonical
// fold) that writes the sum of weight row r and activation row q to
// out[q*ld+r] itself (f32Z writes them in order for the Go caller to copy
// out, which took about a tenth of the time at 16 activation rows: 81 ->
// 90 G multiply-adds per CPU second without the copy) and, in each 16-element step of
// its main loop, also prefetches the L cache lines at pf and then advances
// pf by pfs bytes. The Go caller (matF32Batch) points pf at the next block
// of 6 weight rows (contiguous in memory) and chooses the calls' pf and pfs
// so that the calls of one block, one per group of up to 4 activation
// rows, together prefetch the whole next block: the weights then stream
// from memory while the tiles compute, instead of the first group's call
// stalling on 6 interleaved row streams (measured here, 2048 x 768 from
// memory, 16 activation rows: 13 GB/s of weights per CPU second without,
// 19.5 with). A block takes 6*cols/16 lines over calls*cols/16 steps, so
// the step prefetches about 6/calls lines: pfs is the block's bytes a step
// rounded to a multiple of 32 (1.5 lines at 16 activation rows), L the
// lines that cover pfs bytes from 0 or 32 bytes into a line
// (f32bPrefetch); L comes in 1, 2, 3 and 6, because a surplus prefetch
// costs (measured: three lines a step where two do, 7% slower at 16
// activation rows; two lines a step where 1.5 do, 5% slower on 768 x
// 2048).
//
// The accumulator of weight row r and activation row q is Z(q*R+r), so
// that after the fold activation row q's R sums are consecutive lanes,
// stored with one or two masked VMOVUPS (masked-off lanes touch no memory).
//
// With mode&f32bLoad the accumulators start from the R*P raw registers
// stored at acc (16 floats each, accumulator i at acc + 64*i bytes)
// instead of zero, and
// with mode&f32bStore the tile stores its raw accumulators there instead of
// folding them (out is not written). A row longer than matF32Batch's slice runs as
// several calls on column slices whose widths are multiples of 16 (the
// last takes the tail), the accumulators carried between them in memory:
// every lane sees the same additions in the same order as in one call, and
// only the last call folds (same bits). A block of 6 such rows then stays
// in the L1 cache across its activation groups (a block of 6 rows of 2048
// floats is 48 KB, the whole L1 cache here, and was read from the L2
// cache by each group).
//
// The fold (foldZB) is foldZ's with cheaper first two steps: each pair of
// registers takes one lane-crossing permutation (VSHUFF64X2, VPERMT2PS),
// one blend and one addition instead of two permutations and an addition;
// the two operands of some additions are swapped (a+b and b+a are the same
// float, NaN payloads aside, which docs/determinism.md leaves out), and the
// sums come out in another order that the last VPERMPS undoes (measured
// here, 6 x 4 tile in the L1 cache, 768 columns: 110 -> 114 G multiply-adds
// per CPU second; the fold of 24 sums took about a sixth of a call).
//
// With mode&f32bPeel the tile first adds the products of the 8 elements
// before w and x (w[-8:0], x[-8:0]) into lanes 8-15, the rest of n from w
// and x on: the accumulators' lanes are then the canonical ones rotated by
// 8 (lane l holds canonical lane (l+8)%16, each with its elements in the
// canonical order), and the fold's first step, which adds lane j and lane
// j+8, gives the canonical sums (operands swapped: the same float). This
// is for weights at 32 bytes past a 64-byte line (the tensors of a GGUF
// file aligned to 32 bytes, such as the 110m F32 model here): each
// 64-byte load of such a row straddles two cache lines, which cost about
// a quarter of the tile's speed (768 x 768 from memory, 16 activation
// rows: 83 G multiply-adds per CPU second aligned, 61 at 32 bytes past);
// matF32Batch calls the tiles 8 elements into such rows, against a copy of
// the activation rows with the same offset, so that every load is
// aligned.
//
// Row r of the weights is at SI + r*ws (rows 3-5 at R8 = SI + 3*ws), row q
// of the activations at DI + q*xs (row 3 at R12 = DI + 3*xs); the pointers
// advance. R10 is pf, R11 pfs, R13 acc.

// f32bLines are the prefetch lines per step generated (L).
var f32bLines = []int{1, 2, 3, 6}

// The tiles' mode bits (f32b_amd64.go has the same values).
const (
	f32bLoad  = 1
	f32bStore = 2
	f32bPeel  = 4
)

func f32bKernels() {
	// foldZB's tables: the second step's two-register permutation, and
	// the order of the sums after the fold.
	for i, v := range []int{4, 5, 6, 7, 16, 17, 18, 19, 12, 13, 14, 15, 24, 25, 26, 27} {
		fmt.Fprintf(&b, "DATA foldZB2<>+%d(SB)/4, $%d\n", 4*i, v)
	}
	b.WriteString("GLOBL foldZB2<>(SB), RODATA|NOPTR, $64\n\n")
	swap12 := []int{0, 2, 1, 3}
	for i := 0; i < 16; i++ {
		fmt.Fprintf(&b, "DATA foldZBPerm<>+%d(SB)/4, $%d\n", 4*i, 4*swap12[i%4]+i/4)
	}
	b.WriteString("GLOBL foldZBPerm<>(SB), RODATA|NOPTR, $64\n\n")
	for _, L := range f32bLines {
		for P := 1; P <= 4; P++ {
			f32bTile(6, P, L)
		}
	}
}

func f32bTile(R, P, L int) {
	name := fmt.Sprintf("f32ZB%dx%dL%d", R, P, L)
	fmt.Fprintf(&b, "// func %s(w *float32, ws int, x *float32, xs int, n int, out *float32, ld int, pf uintptr, pfs int, acc *float32, mode int)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-88\n", name)
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
	p("MOVQ pf+56(FP), R10")
	p("MOVQ pfs+64(FP), R11")
	p("MOVQ acc+72(FP), R13")
	waddr := []string{"(SI)", "(SI)(R9*1)", "(SI)(R9*2)", "(R8)", "(R8)(R9*1)", "(R8)(R9*2)"}
	xaddr := []string{"(DI)", "(DI)(BX*1)", "(DI)(BX*2)", "(R12)"}
	if R > len(waddr) || P > len(xaddr) {
		log.Fatalf("%s: too many rows", name)
	}
	nacc := R * P
	acc := func(r, q int) int { return q*R + r } // sum q*R+r: activation row q's R sums are consecutive
	wbase := max(16, nacc)
	wreg := func(r int) int { return wbase + r }
	xreg := wbase + R // one register: each activation vector is loaded, used by R products
	tbase := xreg + 1
	if tbase > 31 {
		log.Fatalf("%s: not enough registers", name)
	}
	tmpN := 0
	tmp := func() int { t := tbase + tmpN%(32-tbase); tmpN++; return t }
	p("MOVQ mode+80(FP), AX")
	p("TESTQ $%d, AX", f32bLoad)
	p("JNZ %s_load", name)
	for i := 0; i < nacc; i++ {
		p("VPXORD %s, %s, %s", z(i), z(i), z(i))
	}
	p("JMP %s_start", name)
	label(name + "_load")
	for i := 0; i < nacc; i++ {
		p("VMOVUPS %d(R13), %s", 64*i, z(i))
	}
	label(name + "_start")
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
					p("%s %d(R10)", f32bPfOp, 64*c)
				}
			}
		}
	}
	// mode&f32bPeel: first the 8 elements before w and x (the first of
	// canonical lanes 0-7), into lanes 8-15.
	p("MOVQ mode+80(FP), AX")
	p("TESTQ $%d, AX", f32bPeel)
	p("JZ %s_main", name)
	p("MOVL $0xff00, AX")
	p("KMOVW AX, K5")
	// Lanes 8-15 of a masked load 64 bytes back: the 32 bytes before.
	body(func(addr string, dst int) { p("VMOVUPS.Z -64%s, K5, %s", addr, z(dst)) }, false)
	label(name + "_main")
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
	p("MOVQ mode+80(FP), AX")
	p("TESTQ $%d, AX", f32bStore)
	p("JZ %s_sums", name)
	for i := 0; i < nacc; i++ {
		p("VMOVUPS %s, %d(R13)", z(i), 64*i)
	}
	p("VZEROUPPER")
	p("RET")
	label(name + "_sums")
	// Sum q*R+r goes to out + 4*(q*ld + r): row q's R consecutive sums
	// are lanes of the folded registers (16 sums each), stored under a
	// mask at the address where the first of them lands at out row q.
	p("MOVQ ld+48(FP), R9")
	p("SHLQ $2, R9")
	p("LEAQ (DX)(R9*2), R8")
	p("ADDQ R9, R8")
	rows := []string{"(DX)", "(DX)(R9*1)", "(DX)(R9*2)", "(R8)"}
	foldZB(nacc, wbase, func(g int, v string) {
		for q := 0; q < P; q++ {
			lo, hi := max(q*R, g), min(q*R+R, g+16)
			if lo >= hi {
				continue
			}
			mask := (1<<(hi-g) - 1) &^ (1<<(lo-g) - 1)
			p("MOVL $0x%x, AX", mask)
			p("KMOVW AX, K2")
			p("VMOVUPS %s, K2, %d%s", v, -4*(q*R-g), rows[q])
		}
	})
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// foldZB is foldZ (asmgen.go) with cheaper first two steps (see the top of
// this file): it folds Z0..Z(n-1) to their n sums, lane i-g of register v
// holding sum i for i in [g, g+16), and calls store(g, v) for each. For registers a and b paired in a step, the first step adds
// [a.hi, b.lo] (VSHUFF64X2) to [a.lo, b.hi] (a blend): a's 8 sums in the
// lower half, b's in the upper, as foldZ's. The second step, on a = [A0 A1
// B0 B1] and b = [C0 C1 D0 D1] (128-bit quarters), adds [A1 C0 B1 D0]
// (VPERMT2PS) to [A0 C1 B0 D1] (a blend): quarters A, C, B, D where foldZ
// has A, B, C, D, which foldZBPerm's order undoes. The last two steps are
// foldZ's. Z(t) to Z(t+3) are scratch; K3 and K4 hold the blend masks.
func foldZB(n, t int, store func(g int, v string)) {
	lo, hi, idx, l2 := z(t), z(t+1), z(t+2), z(t+3)
	p("VMOVDQU32 foldZBPerm<>(SB), %s", idx)
	p("VMOVDQU32 foldZB2<>(SB), %s", l2)
	p("MOVL $0xff00, AX")
	p("KMOVW AX, K3")
	p("MOVL $0xf0f0, AX")
	p("KMOVW AX, K4")
	for g := 0; g < n; g += 16 {
		var regs []int
		for i := g; i < min(n, g+16); i++ {
			regs = append(regs, i)
		}
		for step := 0; step < 4; step++ {
			var next []int
			for i := 0; i < len(regs); i += 2 {
				a, bb := z(regs[i]), z(regs[i])
				if i+1 < len(regs) {
					bb = z(regs[i+1])
				}
				switch step {
				case 0:
					p("VSHUFF64X2 $0x4e, %s, %s, %s", bb, a, lo)
					p("VBLENDMPS %s, %s, K3, %s", bb, a, hi)
					p("VADDPS %s, %s, %s", lo, hi, a)
				case 1:
					p("VBLENDMPS %s, %s, K4, %s", bb, a, hi)
					p("VPERMT2PS %s, %s, %s", bb, l2, a)
					p("VADDPS %s, %s, %s", a, hi, a)
				case 2:
					p("VSHUFPS $0x44, %s, %s, %s", bb, a, lo)
					p("VSHUFPS $0xee, %s, %s, %s", bb, a, hi)
					p("VADDPS %s, %s, %s", hi, lo, a)
				case 3:
					p("VSHUFPS $0x88, %s, %s, %s", bb, a, lo)
					p("VSHUFPS $0xdd, %s, %s, %s", bb, a, hi)
					p("VADDPS %s, %s, %s", hi, lo, a)
				}
				next = append(next, regs[i])
			}
			regs = next
		}
		v := z(regs[0])
		p("VPERMPS %s, %s, %s", v, idx, v)
		store(g, v)
	}
}
