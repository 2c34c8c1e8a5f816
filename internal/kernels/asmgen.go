//go:build ignore

// asmgen writes kernels_amd64.s, the AVX2 fast paths of this package (and
// the AVX-512F float32 prefill tiles f32Z{R}x{P}). Run it
// with `go generate ./internal/kernels/` (or `go run asmgen.go asmgen_exp.go asmgen_vnni.go asmgen_q2.go asmgen_k.go asmgen_q5.go asmgen_kwt.go asmgen_f32b.go asmgen_wt16.go asmgen_attn.go asmgen_amx.go`
// in this directory); the generated file is committed, so building never needs it.
//
// Every kernel keeps the canonical order of docs/determinism.md: products
// are rounded (VMULPS, then VADDPS; never FMA), element i of a dot product
// goes to lane i mod 16 (Y registers hold lanes 0-7 and 8-15), tails use
// masked loads (a masked-off lane adds +0, which never changes a lane: a lane
// starts at +0 and so is never -0), and the lanes fold as j += j+8, j += j+4,
// j += j+2, j += j+1.
package main

import (
	"bytes"
	"fmt"
	"log"
	"os"
)

var b bytes.Buffer

func p(format string, args ...any) { fmt.Fprintf(&b, "\t"+format+"\n", args...) }
func label(s string)               { fmt.Fprintf(&b, "%s:\n", s) }

func y(i int) string { return fmt.Sprintf("Y%d", i) }
func x(i int) string { return fmt.Sprintf("X%d", i) }

// Tiles generated: R weight rows by P activation rows.
var tiles = [][2]int{{1, 1}, {2, 1}, {3, 1}, {4, 1}, {1, 2}, {2, 2}, {3, 2}, {1, 3}, {2, 3}}

// prefetch is how far ahead (bytes) the matrix-vector tiles prefetch each
// weight row; 0 leaves it to the hardware prefetcher.
var prefetch = 0

var wptr = []string{"SI", "R8", "R10", "R11"}
var xptr = []string{"DI", "R12", "R13"}

// tile writes f32Tile{R}x{P}(w *float32, ws int, x *float32, xs int, n int, out *float32):
// out[r*P+p] = Dot(w[r*ws:r*ws+n], x[p*xs:p*xs+n]).
func tile(R, P int) {
	name := fmt.Sprintf("f32Tile%dx%d", R, P)
	fmt.Fprintf(&b, "// func %s(w *float32, ws int, x *float32, xs int, n int, out *float32)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-48\n", name)
	p("MOVQ w+0(FP), SI")
	p("MOVQ ws+8(FP), R9")
	p("SHLQ $2, R9")
	for r := 1; r < R; r++ {
		p("LEAQ (%s)(R9*1), %s", wptr[r-1], wptr[r])
	}
	p("MOVQ x+16(FP), DI")
	p("MOVQ xs+24(FP), BX")
	p("SHLQ $2, BX")
	for q := 1; q < P; q++ {
		p("LEAQ (%s)(BX*1), %s", xptr[q-1], xptr[q])
	}
	p("MOVQ n+32(FP), CX")
	p("MOVQ out+40(FP), DX")
	acc := func(r, q, h int) int { return (r*P+q)*2 + h }
	nacc := 2 * R * P
	for i := 0; i < nacc; i++ {
		p("VXORPS %s, %s, %s", y(i), y(i), y(i))
	}
	both := nacc+R+P+1 <= 16
	wreg := func(r int) int { return nacc + r }
	xreg := func(q int) int { return nacc + R + q }
	tmp := nacc + R
	if both {
		tmp = nacc + R + P
	}
	p("XORQ AX, AX")
	p("MOVQ CX, BX")
	p("SHRQ $4, BX")
	p("JZ %s_tail", name)
	label(name + "_loop")
	if P == 1 && prefetch > 0 {
		for r := 0; r < R; r++ {
			p("PREFETCHT0 %d(%s)(AX*1)", prefetch, wptr[r])
		}
	}
	for h := 0; h < 2; h++ {
		off := 32 * h
		for r := 0; r < R; r++ {
			p("VMOVUPS %d(%s)(AX*1), %s", off, wptr[r], y(wreg(r)))
		}
		if both {
			for q := 0; q < P; q++ {
				p("VMOVUPS %d(%s)(AX*1), %s", off, xptr[q], y(xreg(q)))
			}
		}
		for q := 0; q < P; q++ {
			for r := 0; r < R; r++ {
				if both {
					p("VMULPS %s, %s, %s", y(xreg(q)), y(wreg(r)), y(tmp))
				} else {
					p("VMULPS %d(%s)(AX*1), %s, %s", off, xptr[q], y(wreg(r)), y(tmp))
				}
				a := y(acc(r, q, h))
				p("VADDPS %s, %s, %s", y(tmp), a, a)
			}
		}
	}
	p("ADDQ $64, AX")
	p("DECQ BX")
	p("JNZ %s_loop", name)
	label(name + "_tail")
	p("ANDQ $15, CX")
	p("JZ %s_fold", name)
	p("LEAQ maskTable<>(SB), BX")
	p("MOVQ $16, R9")
	p("SUBQ CX, R9")
	m, wv, xv, t := nacc, nacc+1, nacc+2, nacc+3
	if t > 15 {
		log.Fatalf("%s: not enough registers for the tail", name)
	}
	for h := 0; h < 2; h++ {
		off := 32 * h
		p("VMOVDQU %d(BX)(R9*4), %s", off, y(m))
		for r := 0; r < R; r++ {
			p("VMASKMOVPS %d(%s)(AX*1), %s, %s", off, wptr[r], y(m), y(wv))
			for q := 0; q < P; q++ {
				p("VMASKMOVPS %d(%s)(AX*1), %s, %s", off, xptr[q], y(m), y(xv))
				p("VMULPS %s, %s, %s", y(xv), y(wv), y(t))
				a := y(acc(r, q, h))
				p("VADDPS %s, %s, %s", y(t), a, a)
			}
		}
	}
	label(name + "_fold")
	ft := nacc // free register
	for r := 0; r < R; r++ {
		for q := 0; q < P; q++ {
			lo, hi := acc(r, q, 0), acc(r, q, 1)
			foldTo(lo, hi, ft)
			p("VMOVSS %s, %d(DX)", x(lo), 4*(r*P+q))
		}
	}
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// tile3x3 writes f32Tile3x3, the 3x3 tile in two passes: lanes 0-7 of all
// nine sums first (their accumulators go to the stack), then lanes 8-15,
// so that each pass holds the three weight and three activation vectors in
// registers (6 loads for 9 products), then the canonical fold.
func tile3x3() {
	const R, P = 3, 3
	name := "f32Tile3x3"
	fmt.Fprintf(&b, "// func %s(w *float32, ws int, x *float32, xs int, n int, out *float32)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), $288-48\n", name)
	p("MOVQ w+0(FP), SI")
	p("MOVQ ws+8(FP), R9")
	p("SHLQ $2, R9")
	for r := 1; r < R; r++ {
		p("LEAQ (%s)(R9*1), %s", wptr[r-1], wptr[r])
	}
	p("MOVQ x+16(FP), DI")
	p("MOVQ xs+24(FP), BX")
	p("SHLQ $2, BX")
	for q := 1; q < P; q++ {
		p("LEAQ (%s)(BX*1), %s", xptr[q-1], xptr[q])
	}
	p("MOVQ n+32(FP), CX")
	p("MOVQ out+40(FP), DX")
	acc := func(r, q int) int { return r*P + q }
	for h := 0; h < 2; h++ {
		off := 32 * h
		pre := fmt.Sprintf("%s_h%d", name, h)
		for i := 0; i < R*P; i++ {
			p("VXORPS %s, %s, %s", y(i), y(i), y(i))
		}
		p("XORQ AX, AX")
		p("MOVQ CX, BX")
		p("SHRQ $4, BX")
		p("JZ %s_tail", pre)
		label(pre + "_loop")
		for r := 0; r < R; r++ {
			p("VMOVUPS %d(%s)(AX*1), %s", off, wptr[r], y(9+r))
		}
		for q := 0; q < P; q++ {
			p("VMOVUPS %d(%s)(AX*1), %s", off, xptr[q], y(12+q))
		}
		for q := 0; q < P; q++ {
			for r := 0; r < R; r++ {
				p("VMULPS %s, %s, Y15", y(12+q), y(9+r))
				a := y(acc(r, q))
				p("VADDPS Y15, %s, %s", a, a)
			}
		}
		p("ADDQ $64, AX")
		p("DECQ BX")
		p("JNZ %s_loop", pre)
		label(pre + "_tail")
		p("MOVQ CX, BX")
		p("ANDQ $15, BX")
		p("JZ %s_done", pre)
		p("LEAQ maskTable<>(SB), R11")
		p("MOVQ $16, R9")
		p("SUBQ BX, R9")
		p("VMOVDQU %d(R11)(R9*4), Y9", off)
		for r := 0; r < R; r++ {
			p("VMASKMOVPS %d(%s)(AX*1), Y9, Y10", off, wptr[r])
			for q := 0; q < P; q++ {
				p("VMASKMOVPS %d(%s)(AX*1), Y9, Y11", off, xptr[q])
				p("VMULPS Y11, Y10, Y15")
				a := y(acc(r, q))
				p("VADDPS Y15, %s, %s", a, a)
			}
		}
		label(pre + "_done")
		if h == 0 {
			for i := 0; i < R*P; i++ {
				p("VMOVUPS %s, %d(SP)", y(i), 32*i)
			}
		}
	}
	for r := 0; r < R; r++ {
		for q := 0; q < P; q++ {
			i := acc(r, q)
			p("VMOVUPS %d(SP), Y9", 32*i)
			foldTo(9, i, 10)
			p("VMOVSS X9, %d(DX)", 4*i)
		}
	}
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// foldTo folds lanes 0-7 in Y(lo) and 8-15 in Y(hi) into X(lo) lane 0.
func foldTo(lo, hi, t int) {
	p("VADDPS %s, %s, %s", y(hi), y(lo), y(lo)) // j += j+8
	p("VEXTRACTF128 $1, %s, %s", y(lo), x(t))
	p("VADDPS %s, %s, %s", x(t), x(lo), x(lo)) // j += j+4
	p("VMOVHLPS %s, %s, %s", x(lo), x(lo), x(t))
	p("VADDPS %s, %s, %s", x(t), x(lo), x(lo)) // j += j+2
	p("VMOVSHDUP %s, %s", x(lo), x(t))
	p("VADDSS %s, %s, %s", x(t), x(lo), x(lo)) // j += j+1
}

func z(i int) string { return fmt.Sprintf("Z%d", i) }

// zmmTiles are the AVX-512F tiles generated: every R x P with R <= 6 and
// P <= 4.
var zmmTiles = func() (ts [][2]int) {
	for r := 1; r <= 6; r++ {
		for q := 1; q <= 4; q++ {
			ts = append(ts, [2]int{r, q})
		}
	}
	return ts
}()

// foldZ folds the zmm accumulators Z0..Z(n-1) to their n sums and stores
// sum i at 4*i(DX). It folds up to 16 accumulators at once: each step adds
// the same two lanes as the canonical fold of one register (j += j+8,
// j+4, j+2, j+1), but packs the halves of two registers into one first
// (VSHUFF64X2, VSHUFF32X4, VSHUFPS), so a group of 16 sums takes 15
// additions instead of 64. The 16 sums come out in the order
// V[4L+m] = sum[4m+L] and one VPERMPS puts them in place. A register
// without a partner is paired with itself; its copy's lanes are never
// stored. Z(t), Z(t+1), Z(t+2) are scratch.
func foldZ(n, t int) {
	lo, hi, idx := z(t), z(t+1), z(t+2)
	p("VMOVDQU32 foldPerm<>(SB), %s", idx)
	steps := []struct {
		op       string
		loI, hiI int
	}{
		{"VSHUFF64X2", 0x44, 0xee}, // [a.0-7, b.0-7] + [a.8-15, b.8-15]
		{"VSHUFF32X4", 0x88, 0xdd}, // 128-bit lanes 0,2 + 1,3 of each
		{"VSHUFPS", 0x44, 0xee},    // floats 0,1 + 2,3 of each 128-bit lane
		{"VSHUFPS", 0x88, 0xdd},    // floats 0,2 + 1,3 of each 128-bit lane
	}
	for g := 0; g < n; g += 16 {
		var regs []int
		for i := g; i < min(n, g+16); i++ {
			regs = append(regs, i)
		}
		cnt := len(regs)
		for _, st := range steps {
			var next []int
			for i := 0; i < len(regs); i += 2 {
				a, bb := z(regs[i]), z(regs[i])
				if i+1 < len(regs) {
					bb = z(regs[i+1])
				}
				p("%s $0x%02x, %s, %s, %s", st.op, st.loI, bb, a, lo)
				p("%s $0x%02x, %s, %s, %s", st.op, st.hiI, bb, a, hi)
				p("VADDPS %s, %s, %s", hi, lo, a)
				next = append(next, regs[i])
			}
			regs = next
		}
		v := z(regs[0])
		p("VPERMPS %s, %s, %s", v, idx, v)
		if cnt == 16 {
			p("VMOVUPS %s, %d(DX)", v, 4*g)
		} else {
			p("MOVL $0x%x, AX", 1<<cnt-1)
			p("KMOVW AX, K2")
			p("VMOVUPS %s, K2, %d(DX)", v, 4*g)
		}
	}
}

// zmmTile writes f32Z{R}x{P}(w *float32, ws int, x *float32, xs int, n int,
// out *float32), the AVX-512F form of f32Tile{R}x{P}: one zmm register holds
// the 16 canonical lanes of one (weight row, activation row) sum, so a tile
// needs R*P accumulators (Z0 up), then R weight registers, the activation
// register(s) and product temporaries. The tail loads with a k-register
// mask (zeroing: a masked-off lane adds +0), and the fold is the canonical
// j += j+8, j+4, j+2, j+1 (lane 0 of each step is the same addition as the
// AVX2 fold, operands in the same order).
//
// Row r of the weights is at SI + r*ws (rows 3-5 at R8 = SI + 3*ws), row q
// of the activations at DI + q*xs (row 3 at R12); the pointers advance.
func zmmTile(R, P int) {
	name := fmt.Sprintf("f32Z%dx%d", R, P)
	fmt.Fprintf(&b, "// func %s(w *float32, ws int, x *float32, xs int, n int, out *float32)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-48\n", name)
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
	waddr := []string{"(SI)", "(SI)(R9*1)", "(SI)(R9*2)", "(R8)", "(R8)(R9*1)", "(R8)(R9*2)"}
	xaddr := []string{"(DI)", "(DI)(BX*1)", "(DI)(BX*2)", "(R12)"}
	nacc := R * P
	acc := func(r, q int) int { return r*P + q }
	wbase := max(16, nacc)
	wreg := func(r int) int { return wbase + r }
	xall := wbase+R+P+1 <= 32 // each activation vector in its own register
	xreg := func(q int) int {
		if xall {
			return wbase + R + q
		}
		return wbase + R
	}
	tbase := wbase + R + 1
	if xall {
		tbase = wbase + R + P
	}
	if tbase > 31 {
		log.Fatalf("%s: not enough registers", name)
	}
	tmpN := 0
	tmp := func() int { t := tbase + tmpN%(32-tbase); tmpN++; return t }
	for i := 0; i < nacc; i++ {
		p("VPXORD %s, %s, %s", z(i), z(i), z(i))
	}
	body := func(load func(addr string, dst int)) {
		for r := 0; r < R; r++ {
			load(waddr[r], wreg(r))
		}
		if xall {
			for q := 0; q < P; q++ {
				load(xaddr[q], xreg(q))
			}
		}
		for q := 0; q < P; q++ {
			if !xall {
				load(xaddr[q], xreg(q))
			}
			for r := 0; r < R; r++ {
				t := tmp()
				p("VMULPS %s, %s, %s", z(xreg(q)), z(wreg(r)), z(t))
				a := z(acc(r, q))
				p("VADDPS %s, %s, %s", z(t), a, a)
			}
		}
	}
	p("MOVQ CX, R13")
	p("SHRQ $4, R13")
	p("JZ %s_tail", name)
	label(name + "_loop")
	body(func(addr string, dst int) { p("VMOVUPS %s, %s", addr, z(dst)) })
	for _, r := range []string{"SI", "R8", "DI", "R12"} {
		p("ADDQ $64, %s", r)
	}
	p("DECQ R13")
	p("JNZ %s_loop", name)
	label(name + "_tail")
	p("ANDQ $15, CX")
	p("JZ %s_fold", name)
	p("MOVL $1, AX")
	p("SHLL CX, AX")
	p("DECL AX")
	p("KMOVW AX, K1")
	body(func(addr string, dst int) { p("VMOVUPS.Z %s, K1, %s", addr, z(dst)) })
	label(name + "_fold")
	foldZ(nacc, wbase)
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// sum writes sumF32(x *float32, n int) float32, the canonical Sum.
func sum() {
	b.WriteString("// func sumF32(x *float32, n int) float32\n")
	b.WriteString("TEXT ·sumF32(SB), NOSPLIT, $0-20\n")
	p("MOVQ x+0(FP), DI")
	p("MOVQ n+8(FP), CX")
	p("VXORPS Y0, Y0, Y0")
	p("VXORPS Y1, Y1, Y1")
	p("XORQ AX, AX")
	p("MOVQ CX, BX")
	p("SHRQ $4, BX")
	p("JZ sum_tail")
	label("sum_loop")
	p("VADDPS (DI)(AX*1), Y0, Y0")
	p("VADDPS 32(DI)(AX*1), Y1, Y1")
	p("ADDQ $64, AX")
	p("DECQ BX")
	p("JNZ sum_loop")
	label("sum_tail")
	p("ANDQ $15, CX")
	p("JZ sum_fold")
	p("LEAQ maskTable<>(SB), BX")
	p("MOVQ $16, R9")
	p("SUBQ CX, R9")
	for h := 0; h < 2; h++ {
		p("VMOVDQU %d(BX)(R9*4), Y2", 32*h)
		p("VMASKMOVPS %d(DI)(AX*1), Y2, Y3", 32*h)
		p("VADDPS Y3, %s, %s", y(h), y(h))
	}
	label("sum_fold")
	foldTo(0, 1, 2)
	p("VMOVSS X0, ret+16(FP)")
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// quant writes q8Dot / q4Dot(w *byte, q *int8, d *float32, nb int) float32:
// per block an exact integer dot product (sign-extended to int16, VPMADDWD),
// then acc = acc + float32(float32(dw*d[b]) * float32(isum)), blocks in
// increasing order. Blocks go four at a time: their integer sums are reduced
// together (VPHADDD) and their two products computed as four float lanes,
// then added to acc one lane after the other, in block order.
//
// With madd set (the kernels q8DotM / q4DotM), the integer dot product uses
// VPMADDUBSW on |w| and sign(w)*x instead: fewer instructions, exact only
// when no activation quantum is -128 (QuantizeQ8 never makes one).
func quant(name string, q4, madd bool) {
	bs := 34
	if q4 {
		bs = 18
	}
	fmt.Fprintf(&b, "// func %s(w *byte, q *int8, d *float32, nb int) float32\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-36\n", name)
	p("MOVQ w+0(FP), SI")
	p("MOVQ q+8(FP), DI")
	p("MOVQ d+16(FP), DX")
	p("MOVQ nb+24(FP), CX")
	p("VXORPS X8, X8, X8")
	if q4 {
		p("VMOVDQU nibbleMask<>(SB), X15")
		p("VMOVDQU eights<>(SB), Y14")
	}
	if madd {
		p("VPCMPEQW Y13, Y13, Y13")
		p("VPSRLW $15, Y13, Y13") // int16 ones
	}
	// isum of block at SI+wo, DI+xo into Y(dst); uses Y4-Y7.
	block := func(wo, xo, dst int) {
		if madd {
			if q4 {
				p("VMOVDQU %d(SI), X4", wo+2)
				p("VPSRLW $4, X4, X5")
				p("VPAND X15, X4, X4")
				p("VPAND X15, X5, X5")
				p("VINSERTI128 $1, X5, Y4, Y4")
				p("VPSUBB Y14, Y4, Y4")
			} else {
				p("VMOVDQU %d(SI), Y4", wo+2)
			}
			p("VMOVDQU %d(DI), Y6", xo)
			p("VPSIGNB Y4, Y6, Y6") // x * sign(w)
			p("VPABSB Y4, Y4")      // |w| <= 128, unsigned
			p("VPMADDUBSW Y6, Y4, Y4")
			p("VPMADDWD Y13, Y4, %s", y(dst))
			return
		}
		if q4 {
			p("VMOVDQU %d(SI), X4", wo+2)
			p("VPSRLW $4, X4, X5")
			p("VPAND X15, X4, X4")
			p("VPAND X15, X5, X5")
			p("VPSUBB X14, X4, X4")
			p("VPSUBB X14, X5, X5")
			p("VPMOVSXBW X4, Y4")
			p("VPMOVSXBW X5, Y5")
		} else {
			p("VPMOVSXBW %d(SI), Y4", wo+2)
			p("VPMOVSXBW %d(SI), Y5", wo+18)
		}
		p("VPMOVSXBW %d(DI), Y6", xo)
		p("VPMOVSXBW %d(DI), Y7", xo+16)
		p("VPMADDWD Y6, Y4, Y4")
		p("VPMADDWD Y7, Y5, Y5")
		p("VPADDD Y5, Y4, %s", y(dst))
	}
	p("MOVQ CX, BX")
	p("SHRQ $2, BX")
	p("JZ %s_single", name)
	label(name + "_loop4")
	for k := 0; k < 4; k++ {
		block(k*bs, 32*k, k)
	}
	p("VPHADDD Y1, Y0, Y0")
	p("VPHADDD Y3, Y2, Y2")
	p("VPHADDD Y2, Y0, Y0")
	p("VEXTRACTI128 $1, Y0, X1")
	p("VPADDD X1, X0, X0") // the four blocks' integer sums
	p("VCVTDQ2PS X0, X0")  // exact: |isum| <= 32*128*128 < 2^24
	p("MOVWLZX (SI), AX")
	p("VMOVD AX, X1")
	for k := 1; k < 4; k++ {
		p("VPINSRW $%d, %d(SI), X1, X1", k, k*bs)
	}
	p("VCVTPH2PS X1, X1")    // the four weight scales, exactly
	p("VMULPS (DX), X1, X1") // float32(dw*dx)
	p("VMULPS X0, X1, X1")   // float32(that*float32(isum))
	p("VADDSS X1, X8, X8")
	p("VMOVSHDUP X1, X2")
	p("VADDSS X2, X8, X8")
	p("VMOVHLPS X1, X1, X2")
	p("VADDSS X2, X8, X8")
	p("VSHUFPS $0xff, X1, X1, X2")
	p("VADDSS X2, X8, X8")
	p("ADDQ $%d, SI", 4*bs)
	p("ADDQ $128, DI")
	p("ADDQ $16, DX")
	p("DECQ BX")
	p("JNZ %s_loop4", name)
	label(name + "_single")
	p("ANDQ $3, CX")
	p("JZ %s_done", name)
	label(name + "_loop1")
	block(0, 0, 0)
	p("VEXTRACTI128 $1, Y0, X1")
	p("VPADDD X1, X0, X0")
	p("VPSHUFD $0x4e, X0, X1")
	p("VPADDD X1, X0, X0")
	p("VPSHUFD $0xb1, X0, X1")
	p("VPADDD X1, X0, X0")
	p("VCVTDQ2PS X0, X0")
	p("MOVWLZX (SI), AX")
	p("VMOVD AX, X1")
	p("VCVTPH2PS X1, X1")
	p("VMULSS (DX), X1, X1")
	p("VMULSS X0, X1, X1")
	p("VADDSS X1, X8, X8")
	p("ADDQ $%d, SI", bs)
	p("ADDQ $32, DI")
	p("ADDQ $4, DX")
	p("DECQ CX")
	p("JNZ %s_loop1", name)
	label(name + "_done")
	p("VMOVSS X8, ret+32(FP)")
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// quantTile writes q8Tile{P} / q4Tile{P}(w *byte, q *int8, qs int, d *float32,
// ds int, nb int, out *float32): the madd kernel of quant for one weight row
// against P activation rows (quanta at q + p*qs, scales at d + p*ds),
// out[p] = the dot product with row p. The P sums are independent chains,
// which hides the latency of each chain's sequential adds.
func quantTile(name string, q4 bool, P int) {
	bs := 34
	if q4 {
		bs = 18
	}
	qp := []string{"DI", "R8", "R12", "R13"}
	dp := []string{"DX", "R9", "R10", "R11"}
	fmt.Fprintf(&b, "// func %s(w *byte, q *int8, qs int, d *float32, ds int, nb int, out *float32)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-56\n", name)
	p("MOVQ w+0(FP), SI")
	p("MOVQ q+8(FP), DI")
	p("MOVQ qs+16(FP), AX")
	for i := 1; i < P; i++ {
		p("LEAQ (%s)(AX*1), %s", qp[i-1], qp[i])
	}
	p("MOVQ d+24(FP), DX")
	p("MOVQ ds+32(FP), AX")
	p("SHLQ $2, AX")
	for i := 1; i < P; i++ {
		p("LEAQ (%s)(AX*1), %s", dp[i-1], dp[i])
	}
	p("MOVQ nb+40(FP), CX")
	for i := 0; i < P; i++ {
		p("VXORPS %s, %s, %s", x(8+i), x(8+i), x(8+i))
	}
	if q4 {
		p("VMOVDQU nibbleMask<>(SB), X15")
		p("VMOVDQU eights<>(SB), Y14")
	}
	p("VPCMPEQW Y13, Y13, Y13")
	p("VPSRLW $15, Y13, Y13")
	block := func(wo int, q string, xo, dst int) {
		if q4 {
			p("VMOVDQU %d(SI), X4", wo+2)
			p("VPSRLW $4, X4, X5")
			p("VPAND X15, X4, X4")
			p("VPAND X15, X5, X5")
			p("VINSERTI128 $1, X5, Y4, Y4")
			p("VPSUBB Y14, Y4, Y4")
		} else {
			p("VMOVDQU %d(SI), Y4", wo+2)
		}
		p("VMOVDQU %d(%s), Y6", xo, q)
		p("VPSIGNB Y4, Y6, Y6")
		p("VPABSB Y4, Y4")
		p("VPMADDUBSW Y6, Y4, Y4")
		p("VPMADDWD Y13, Y4, %s", y(dst))
	}
	p("MOVQ CX, BX")
	p("SHRQ $2, BX")
	p("JZ %s_single", name)
	label(name + "_loop4")
	p("MOVWLZX (SI), AX")
	p("VMOVD AX, X12")
	for k := 1; k < 4; k++ {
		p("VPINSRW $%d, %d(SI), X12, X12", k, k*bs)
	}
	p("VCVTPH2PS X12, X12")
	for i := 0; i < P; i++ {
		for k := 0; k < 4; k++ {
			block(k*bs, qp[i], 32*k, k)
		}
		p("VPHADDD Y1, Y0, Y0")
		p("VPHADDD Y3, Y2, Y2")
		p("VPHADDD Y2, Y0, Y0")
		p("VEXTRACTI128 $1, Y0, X1")
		p("VPADDD X1, X0, X0")
		p("VCVTDQ2PS X0, X0")
		p("VMULPS (%s), X12, X1", dp[i])
		p("VMULPS X0, X1, X1")
		a := x(8 + i)
		p("VADDSS X1, %s, %s", a, a)
		p("VMOVSHDUP X1, X2")
		p("VADDSS X2, %s, %s", a, a)
		p("VMOVHLPS X1, X1, X2")
		p("VADDSS X2, %s, %s", a, a)
		p("VSHUFPS $0xff, X1, X1, X2")
		p("VADDSS X2, %s, %s", a, a)
		p("ADDQ $128, %s", qp[i])
		p("ADDQ $16, %s", dp[i])
	}
	p("ADDQ $%d, SI", 4*bs)
	p("DECQ BX")
	p("JNZ %s_loop4", name)
	label(name + "_single")
	p("ANDQ $3, CX")
	p("JZ %s_done", name)
	label(name + "_loop1")
	p("MOVWLZX (SI), AX")
	p("VMOVD AX, X12")
	p("VCVTPH2PS X12, X12")
	for i := 0; i < P; i++ {
		block(0, qp[i], 0, 0)
		p("VEXTRACTI128 $1, Y0, X1")
		p("VPADDD X1, X0, X0")
		p("VPSHUFD $0x4e, X0, X1")
		p("VPADDD X1, X0, X0")
		p("VPSHUFD $0xb1, X0, X1")
		p("VPADDD X1, X0, X0")
		p("VCVTDQ2PS X0, X0")
		p("VMULSS (%s), X12, X1", dp[i])
		p("VMULSS X0, X1, X1")
		p("VADDSS X1, %s, %s", x(8+i), x(8+i))
		p("ADDQ $32, %s", qp[i])
		p("ADDQ $4, %s", dp[i])
	}
	p("ADDQ $%d, SI", bs)
	p("DECQ CX")
	p("JNZ %s_loop1", name)
	label(name + "_done")
	p("MOVQ out+48(FP), AX")
	for i := 0; i < P; i++ {
		p("VMOVSS %s, %d(AX)", x(8+i), 4*i)
	}
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// quantPairs writes q8Tile2x4 / q4Tile2x4(w *byte, ws int, q *int8, qs int,
// dw, dx *float32, nb int, out *float32): two weight rows (w, w+ws) against
// four activation rows (q + p*qs), the eight dot products side by side in
// the eight lanes of one accumulator. Lane i is weight row i&1 against
// activation row i>>1; per block it adds float32(float32(dw*dx) *
// float32(isum)) to the lane, so every lane follows the reference's
// sequential block order exactly. dw and dx hold, per block, the eight
// lanes' weight and activation scales (built by the Go caller).
func quantPairs(name string, q4 bool) {
	bs := 34
	if q4 {
		bs = 18
	}
	xp := []string{"DI", "R12", "R13", "R9"}
	fmt.Fprintf(&b, "// func %s(w *byte, ws int, q *int8, qs int, dw, dx *float32, nb int, out *float32)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-64\n", name)
	p("MOVQ w+0(FP), SI")
	p("MOVQ ws+8(FP), AX")
	p("LEAQ (SI)(AX*1), R8")
	p("MOVQ q+16(FP), DI")
	p("MOVQ qs+24(FP), AX")
	for i := 1; i < 4; i++ {
		p("LEAQ (%s)(AX*1), %s", xp[i-1], xp[i])
	}
	p("MOVQ dw+32(FP), R10")
	p("MOVQ dx+40(FP), R11")
	p("MOVQ nb+48(FP), CX")
	p("VXORPS Y12, Y12, Y12")
	p("VPCMPEQW Y15, Y15, Y15")
	p("VPSRLW $15, Y15, Y15")
	if q4 {
		p("VMOVDQU eights<>(SB), Y14")
		p("VPCMPEQW Y13, Y13, Y13")
		p("VPSRLW $12, Y13, Y13")
		p("VPACKUSWB Y13, Y13, Y13") // 0x0f bytes
	}
	p("TESTQ CX, CX")
	p("JZ %s_done", name)
	label(name + "_loop")
	for r, wp := range []string{"SI", "R8"} {
		raw, abs := 10+r, 8+r
		if q4 {
			p("VMOVDQU 2(%s), %s", wp, x(raw))
			p("VPSRLW $4, %s, X7", x(raw))
			p("VPAND X13, %s, %s", x(raw), x(raw))
			p("VPAND X13, X7, X7")
			p("VINSERTI128 $1, X7, %s, %s", y(raw), y(raw))
			p("VPSUBB Y14, %s, %s", y(raw), y(raw))
		} else {
			p("VMOVDQU 2(%s), %s", wp, y(raw))
		}
		p("VPABSB %s, %s", y(raw), y(abs))
	}
	// V(2p+r) = pair (r, p), reduced to one int32 per pair.
	pair := func(dst int) {
		r := dst & 1
		p("VPSIGNB %s, Y7, Y5", y(10+r))
		p("VPMADDUBSW Y5, %s, Y5", y(8+r))
	}
	for half := 0; half < 2; half++ {
		base := 0
		if half == 1 {
			base = 1 // Y0 holds A; V4..V7 go to Y1..Y4
		}
		for q := 0; q < 2; q++ {
			pp := 2*half + q
			p("VMOVDQU (%s), Y7", xp[pp])
			for r := 0; r < 2; r++ {
				pair(r)
				p("VPMADDWD Y15, Y5, %s", y(base+2*q+r))
			}
		}
		p("VPHADDD %s, %s, %s", y(base+1), y(base), y(base))
		p("VPHADDD %s, %s, %s", y(base+3), y(base+2), y(base+2))
		p("VPHADDD %s, %s, %s", y(base+2), y(base), y(base))
	}
	// Y0 = A (pairs 0-3 as [lo sums | hi sums]), Y1 = B (pairs 4-7).
	p("VPERM2I128 $0x20, Y1, Y0, Y2")
	p("VPERM2I128 $0x31, Y1, Y0, Y3")
	p("VPADDD Y3, Y2, Y0") // lane i = isum of pair i
	p("VCVTDQ2PS Y0, Y0")  // exact: |isum| <= 32*128*127 < 2^24
	p("VMOVUPS (R10), Y5")
	p("VMULPS (R11), Y5, Y5") // float32(dw*dx)
	p("VMULPS Y0, Y5, Y5")    // float32(that*float32(isum))
	p("VADDPS Y5, Y12, Y12")
	p("ADDQ $%d, SI", bs)
	p("ADDQ $%d, R8", bs)
	for _, r := range xp {
		p("ADDQ $32, %s", r)
	}
	p("ADDQ $32, R10")
	p("ADDQ $32, R11")
	p("DECQ CX")
	p("JNZ %s_loop", name)
	label(name + "_done")
	p("MOVQ out+56(FP), AX")
	p("VMOVUPS Y12, (AX)")
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// wsum writes wsum{M}(out, a, v *float32, stride, n int): for the 8*M
// floats of out, out[i] = 0, then for t < n in order
// out[i] = out[i] + float32(a[t] * v[t*stride+i]): the attention value sum,
// with out held in M ymm registers.
func wsum(M int) { wsumGen(M, false) }

// wsumGen writes wsum{M}, or with cont wsumA{M}: the same loop over the
// cached positions, its sums started from the out it is given instead of 0.
func wsumGen(M int, cont bool) {
	name := fmt.Sprintf("wsum%d", M)
	if cont {
		name = fmt.Sprintf("wsumA%d", M)
	}
	fmt.Fprintf(&b, "// func %s(out, a, v *float32, stride, n int)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-40\n", name)
	p("MOVQ out+0(FP), DI")
	p("MOVQ a+8(FP), SI")
	p("MOVQ v+16(FP), DX")
	p("MOVQ stride+24(FP), R8")
	p("SHLQ $2, R8")
	p("MOVQ n+32(FP), CX")
	for c := 0; c < M; c++ {
		if cont {
			p("VMOVUPS %d(DI), %s", 32*c, y(c))
		} else {
			p("VXORPS %s, %s, %s", y(c), y(c), y(c))
		}
	}
	p("TESTQ CX, CX")
	p("JZ %s_store", name)
	label(name + "_loop")
	p("VBROADCASTSS (SI), Y15")
	for c := 0; c < M; c++ {
		p("VMULPS %d(DX), Y15, Y14", 32*c)
		p("VADDPS Y14, %s, %s", y(c), y(c))
	}
	p("ADDQ $4, SI")
	p("ADDQ R8, DX")
	p("DECQ CX")
	p("JNZ %s_loop", name)
	label(name + "_store")
	for c := 0; c < M; c++ {
		p("VMOVUPS %s, %d(DI)", y(c), 32*c)
	}
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// halfKernels writes the binary16 rounding and storing of the half-precision
// key/value cache (half.go), n a multiple of 8, with F16C (VCVTPS2PH with
// imm8 0: round to nearest, ties to even, whatever MXCSR says; subnormal
// results exact) and every NaN first made the canonical quiet NaN of its
// sign (sign | 0x7fc00000), which VCVTPS2PH turns into sign | 0x7e00 and
// VCVTPH2PS back into sign | 0x7fc00000: what F32ToF16 and F16ToF32 give
// (VCVTPS2PH alone keeps the top payload bits):
//
//	roundF16(x *float32, n int)              x[i] = F16ToF32(F32ToF16(x[i]))
//	toF16(dst *uint16, src *float32, n int)  dst[i] = F32ToF16(src[i])
func halfKernels() {
	for _, name := range []string{"roundF16", "toF16"} {
		round := name == "roundF16"
		if round {
			fmt.Fprintf(&b, "// func %s(x *float32, n int)\n", name)
			fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-16\n", name)
			p("MOVQ x+0(FP), SI")
			p("MOVQ SI, DI")
			p("MOVQ n+8(FP), CX")
		} else {
			fmt.Fprintf(&b, "// func %s(dst *uint16, src *float32, n int)\n", name)
			fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-24\n", name)
			p("MOVQ dst+0(FP), DI")
			p("MOVQ src+8(FP), SI")
			p("MOVQ n+16(FP), CX")
		}
		p("MOVL $0x80000000, AX")
		p("MOVQ AX, X5")
		p("VPBROADCASTD X5, Y5") // the sign bit
		p("MOVL $0x7fc00000, AX")
		p("MOVQ AX, X6")
		p("VPBROADCASTD X6, Y6") // the canonical quiet NaN
		p("SHRQ $3, CX")
		p("JZ %s_done", name)
		label(name + "_loop")
		p("VMOVUPS (SI), Y0")
		p("VCMPPS $3, Y0, Y0, Y2") // unordered: the NaN lanes
		p("VANDPS Y5, Y0, Y3")
		p("VORPS Y6, Y3, Y3")         // sign | 0x7fc00000
		p("VBLENDVPS Y2, Y3, Y0, Y0") // NaN lanes canonical
		p("VCVTPS2PH $0, Y0, X1")
		if round {
			p("VCVTPH2PS X1, Y1")
			p("VMOVUPS Y1, (DI)")
			p("ADDQ $32, DI")
		} else {
			p("VMOVDQU X1, (DI)")
			p("ADDQ $16, DI")
		}
		p("ADDQ $32, SI")
		p("DECQ CX")
		p("JNZ %s_loop", name)
		label(name + "_done")
		p("VZEROUPPER")
		p("RET")
		b.WriteString("\n")
	}
}

// conv writes cvtF16 / cvtBF16(dst *float32, src *byte, n int), n a
// multiple of 8: exact conversion to float32.
func conv(name string, bf bool) {
	fmt.Fprintf(&b, "// func %s(dst *float32, src *byte, n int)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-24\n", name)
	p("MOVQ dst+0(FP), DI")
	p("MOVQ src+8(FP), SI")
	p("MOVQ n+16(FP), CX")
	p("SHRQ $3, CX")
	p("JZ %s_done", name)
	label(name + "_loop")
	if bf {
		p("VPMOVZXWD (SI), Y1")
		p("VPSLLD $16, Y1, Y1")
	} else {
		p("VCVTPH2PS (SI), Y1")
	}
	p("VMOVUPS Y1, (DI)")
	p("ADDQ $16, SI")
	p("ADDQ $32, DI")
	p("DECQ CX")
	p("JNZ %s_loop", name)
	label(name + "_done")
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// elementwise kernels over n (a multiple of 8) elements; the Go caller does
// the tail with the reference expression.
// ropeKernels writes the RoPE rotations of ops.go (Rope, RopeNeox) for
// heads of 2*half floats, the same products and sums, unfused:
//
//	ropeF32(x, cos, sin *float32, heads, half int)     adjacent pairs (half % 4 == 0)
//	ropeNeoxF32(x, cos, sin *float32, heads, half int) halves (half % 8 == 0)
//
// ropeF32 takes 4 pairs at a time: a = x*(c0 c0 c1 c1 ...), b = (x with
// the elements of each pair swapped)*(s0 s0 s1 s1 ...), then VADDSUBPS
// gives a-b in the even lanes (x0*c - x1*s) and a+b in the odd ones
// (x1*c + x0*s: the scalar x0*s + x1*c, addition being commutative).
func ropeKernels() {
	b.WriteString("// func ropeF32(x, cos, sin *float32, heads, half int)\n")
	b.WriteString("TEXT ·ropeF32(SB), NOSPLIT, $0-40\n")
	p("MOVQ x+0(FP), DI")
	p("MOVQ heads+24(FP), CX")
	p("MOVQ half+32(FP), DX")
	p("SHRQ $2, DX")
	p("VMOVDQU ropeIdx<>(SB), Y15")
	label("rope_head")
	p("MOVQ cos+8(FP), SI")
	p("MOVQ sin+16(FP), R8")
	p("MOVQ DX, BX")
	label("rope_pairs")
	p("VBROADCASTF128 (SI), Y2")
	p("VPERMPS Y2, Y15, Y2") // c0 c0 c1 c1 c2 c2 c3 c3
	p("VBROADCASTF128 (R8), Y3")
	p("VPERMPS Y3, Y15, Y3") // s0 s0 ...
	p("VMOVUPS (DI), Y0")
	p("VPERMILPS $0xb1, Y0, Y1") // x1 x0 per pair
	p("VMULPS Y2, Y0, Y0")
	p("VMULPS Y3, Y1, Y1")
	p("VADDSUBPS Y1, Y0, Y0")
	p("VMOVUPS Y0, (DI)")
	p("ADDQ $32, DI")
	p("ADDQ $16, SI")
	p("ADDQ $16, R8")
	p("DECQ BX")
	p("JNZ rope_pairs")
	p("DECQ CX")
	p("JNZ rope_head")
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")

	b.WriteString("// func ropeNeoxF32(x, cos, sin *float32, heads, half int)\n")
	b.WriteString("TEXT ·ropeNeoxF32(SB), NOSPLIT, $0-40\n")
	p("MOVQ x+0(FP), DI")
	p("MOVQ heads+24(FP), CX")
	p("MOVQ half+32(FP), DX")
	label("neox_head")
	p("MOVQ cos+8(FP), SI")
	p("MOVQ sin+16(FP), R8")
	p("MOVQ DI, R9")
	p("LEAQ (DI)(DX*4), R10")
	p("MOVQ DX, BX")
	p("SHRQ $3, BX")
	label("neox_loop")
	p("VMOVUPS (R9), Y0")  // x0
	p("VMOVUPS (R10), Y1") // x1
	p("VMOVUPS (SI), Y2")  // c
	p("VMOVUPS (R8), Y3")  // s
	p("VMULPS Y2, Y0, Y4") // x0*c
	p("VMULPS Y3, Y1, Y5") // x1*s
	p("VSUBPS Y5, Y4, Y4") // x0*c - x1*s
	p("VMULPS Y3, Y0, Y6") // x0*s
	p("VMULPS Y2, Y1, Y7") // x1*c
	p("VADDPS Y7, Y6, Y6") // x0*s + x1*c
	p("VMOVUPS Y4, (R9)")
	p("VMOVUPS Y6, (R10)")
	for _, r := range []string{"R9", "R10", "SI", "R8"} {
		p("ADDQ $32, %s", r)
	}
	p("DECQ BX")
	p("JNZ neox_loop")
	p("LEAQ (DI)(DX*8), DI") // the next head: 2*half floats on
	p("DECQ CX")
	p("JNZ neox_head")
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

func elementwise() {
	// axpyF32(out *float32, a float32, v *float32, n int): out[i] = out[i] + float32(a*v[i])
	b.WriteString("// func axpyF32(out *float32, a float32, v *float32, n int)\n")
	b.WriteString("TEXT ·axpyF32(SB), NOSPLIT, $0-32\n")
	p("MOVQ out+0(FP), DI")
	p("VBROADCASTSS a+8(FP), Y0")
	p("MOVQ v+16(FP), SI")
	p("MOVQ n+24(FP), CX")
	p("SHRQ $3, CX")
	p("JZ axpy_done")
	label("axpy_loop")
	p("VMULPS (SI), Y0, Y1")
	p("VADDPS (DI), Y1, Y1")
	p("VMOVUPS Y1, (DI)")
	p("ADDQ $32, SI")
	p("ADDQ $32, DI")
	p("DECQ CX")
	p("JNZ axpy_loop")
	label("axpy_done")
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")

	// addF32(x, y *float32, n int): x[i] = x[i] + y[i]
	b.WriteString("// func addF32(x, y *float32, n int)\n")
	b.WriteString("TEXT ·addF32(SB), NOSPLIT, $0-24\n")
	p("MOVQ x+0(FP), DI")
	p("MOVQ y+8(FP), SI")
	p("MOVQ n+16(FP), CX")
	p("SHRQ $3, CX")
	p("JZ add_done")
	label("add_loop")
	p("VMOVUPS (DI), Y1")
	p("VADDPS (SI), Y1, Y1")
	p("VMOVUPS Y1, (DI)")
	p("ADDQ $32, SI")
	p("ADDQ $32, DI")
	p("DECQ CX")
	p("JNZ add_loop")
	label("add_done")
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")

	// scaleMulF32(out, x, w *float32, s float32, n int): out[i] = float32(w[i] * float32(s*x[i]))
	b.WriteString("// func scaleMulF32(out, x, w *float32, s float32, n int)\n")
	b.WriteString("TEXT ·scaleMulF32(SB), NOSPLIT, $0-40\n")
	p("MOVQ out+0(FP), DI")
	p("MOVQ x+8(FP), SI")
	p("MOVQ w+16(FP), DX")
	p("VBROADCASTSS s+24(FP), Y0")
	p("MOVQ n+32(FP), CX")
	p("SHRQ $3, CX")
	p("JZ scale_done")
	label("scale_loop")
	p("VMULPS (SI), Y0, Y1")
	p("VMULPS (DX), Y1, Y1")
	p("VMOVUPS Y1, (DI)")
	p("ADDQ $32, SI")
	p("ADDQ $32, DX")
	p("ADDQ $32, DI")
	p("DECQ CX")
	p("JNZ scale_loop")
	label("scale_done")
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

func main() {
	if v := os.Getenv("PREFETCH"); v != "" {
		fmt.Sscan(v, &prefetch)
	}
	// For measurements: WTPF_PARTS=1 issues vnniWTQ8P1's prefetches at
	// the top of each block step, as the other vnniWT tiles do; WTPF_OP
	// replaces PREFETCHT0 in the vnniWT tiles.
	if v := os.Getenv("WTPF_PARTS"); v != "" {
		fmt.Sscan(v, &wtPrefetchParts)
	}
	if v := os.Getenv("WTPF_OP"); v != "" {
		wtPrefetchOp = v
	}
	if v := os.Getenv("AMXPF_OP"); v != "" {
		amxPFOp = v
	}
	if v := os.Getenv("AMX_PIPE"); v != "" {
		amxPipe = v == "1"
	}
	if v := os.Getenv("AMXPF_TILES"); v != "" {
		fmt.Sscan(v, &amxPFTiles)
	}
	b.WriteString("// Code generated by asmgen.go; DO NOT EDIT.\n\n//go:build amd64 && !purego\n\n#include \"textflag.h\"\n\n")
	// 16 lanes on, then 16 off: the masks of a tail of r elements start at 16-r.
	for i := 0; i < 32; i++ {
		v := "0xffffffff"
		if i >= 16 {
			v = "0x00000000"
		}
		fmt.Fprintf(&b, "DATA maskTable<>+%d(SB)/4, $%s\n", 4*i, v)
	}
	b.WriteString("GLOBL maskTable<>(SB), RODATA|NOPTR, $128\n\n")
	// foldZ's permutation: sum i is lane 4*(i%4) + i/4 of the folded register.
	for i := 0; i < 16; i++ {
		fmt.Fprintf(&b, "DATA foldPerm<>+%d(SB)/4, $%d\n", 4*i, 4*(i%4)+i/4)
	}
	b.WriteString("GLOBL foldPerm<>(SB), RODATA|NOPTR, $64\n\n")
	// ropeF32's permutation: cos/sin j..j+3 each twice, one per element of a pair.
	for i := 0; i < 8; i++ {
		fmt.Fprintf(&b, "DATA ropeIdx<>+%d(SB)/4, $%d\n", 4*i, i/2)
	}
	b.WriteString("GLOBL ropeIdx<>(SB), RODATA|NOPTR, $32\n\n")
	for i := 0; i < 2; i++ {
		fmt.Fprintf(&b, "DATA nibbleMask<>+%d(SB)/8, $0x0f0f0f0f0f0f0f0f\n", 8*i)
	}
	for i := 0; i < 4; i++ {
		fmt.Fprintf(&b, "DATA eights<>+%d(SB)/8, $0x0808080808080808\n", 8*i)
	}
	b.WriteString("GLOBL nibbleMask<>(SB), RODATA|NOPTR, $16\nGLOBL eights<>(SB), RODATA|NOPTR, $32\n\n")
	amxCfgData()

	b.WriteString("// func cpuid1ECX() uint32\nTEXT ·cpuid1ECX(SB), NOSPLIT, $0-4\n")
	p("MOVL $1, AX")
	p("XORL CX, CX")
	p("CPUID")
	p("MOVL CX, ret+0(FP)")
	p("RET")
	b.WriteString("\n")

	// prefetchL2 asks for the n (> 0) cache lines from x into the L2
	// cache (PREFETCHT1): a hint, no result.
	b.WriteString("// func prefetchL2(x *float32, n int)\nTEXT ·prefetchL2(SB), NOSPLIT, $0-16\n")
	p("MOVQ x+0(FP), DI")
	p("MOVQ n+8(FP), CX")
	label("prefetch_loop")
	p("PREFETCHT1 (DI)")
	p("ADDQ $64, DI")
	p("DECQ CX")
	p("JNZ prefetch_loop")
	p("RET")
	b.WriteString("\n")

	for _, t := range tiles {
		tile(t[0], t[1])
	}
	tile3x3()
	for _, t := range zmmTiles {
		zmmTile(t[0], t[1])
	}
	sum()
	quant("q8Dot", false, false)
	quant("q4Dot", true, false)
	quant("q8DotM", false, true)
	quant("q4DotM", true, true)
	quantTile("q8Tile4", false, 4)
	quantTile("q4Tile4", true, 4)
	quantPairs("q8Tile2x4", false)
	quantPairs("q4Tile2x4", true)
	conv("cvtF16", false)
	conv("cvtBF16", true)
	halfKernels()
	elementwise()
	ropeKernels()
	expKernels()
	vnniKernels()
	avx2QuantKernels()
	kQuantKernels()
	q5Kernels()
	kwtKernels()
	kwt16Kernels()
	f32bKernels()
	for _, kind := range []string{"Q8", "Q4", "Q50"} {
		for q := 1; q <= 8; q++ {
			vnniWT16(kind, q)
		}
	}
	amxQ8x16()
	for m := 1; m <= 8; m++ {
		wsum(m)
	}
	attnKernels()
	if err := os.WriteFile("kernels_amd64.s", b.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}
