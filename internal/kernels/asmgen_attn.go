//go:build ignore

package main

import "fmt"

// The attention kernels over a run of cached keys and values (run with
// asmgen.go).
func attnKernels() {
	dotK16(false)
	dotK16(true)
	for g := 1; g <= wsumZMaxG; g++ {
		for c := 1; c <= wsumZMaxC; c++ {
			wsumZ(g, c, false)
			wsumZ(g, c, true)
		}
	}
	for m := 1; m <= 8; m++ {
		wsumA(m)
	}
}

// wsumZMaxG and wsumZMaxC bound the AVX-512 value-sum kernels: G heads by
// C zmm columns, G*C accumulators (at most 24), C value registers, one
// broadcast weight and the product temporaries in 32 registers.
const (
	wsumZMaxG = 6
	wsumZMaxC = 4
)

// dotK16 writes dotK16(out, q, k *float32, stride, hd, nblk int): for
// nblk blocks of 16 keys (key j at k + j*stride floats, a block after the
// last: 16 keys on), out[j] = Dot(q[:hd], key j). Each key's 16 canonical
// lanes live in one zmm accumulator (Z0-Z15: element i of the dot goes to
// lane i mod 16, the products VMULPS then VADDPS, the last hd mod 16
// elements through zeroing masked loads, which add +0), and the 16
// accumulators of a block fold together through foldZ's transposition
// network: each of its steps adds exactly lane j and lane j+w of every
// register (w = 8, 4, 2, 1: docs/determinism.md 4.1), packed two registers
// to one, 15 additions for the 16 sums instead of 4 per key.
//
// Registers: DI q, DX out, BX the block's first key, R8/R9/R10 stride,
// 3*stride and 4*stride bytes, R11-R14 keys 0, 4, 8 and 12 of the block
// (advanced by 64 bytes a step), SI blocks left, AX the byte offset into
// q, CX the bytes of hd's whole steps; K1 the tail mask.
//
// half: dotK16h(out, q *float32, k *uint16, stride, hd, nblk int), the
// keys binary16 (a binary16 key/value cache), each 16 of them converted
// exactly (VCVTPH2PS) before the same product and sum: the bits dotK16
// gives on the converted keys. hd must be a multiple of 16 (no tail step:
// a masked load of halves is not used).
func dotK16(half bool) {
	name, ksz, kt := "dotK16", 2, "*float32"
	if !half {
		ksz = 4
	} else {
		name, kt = "dotK16h", "*uint16"
	}
	fmt.Fprintf(&b, "// func %s(out, q *float32, k %s, stride, hd, nblk int)\n", name, kt)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-48\n", name)
	p("MOVQ out+0(FP), DX")
	p("MOVQ q+8(FP), DI")
	p("MOVQ k+16(FP), BX")
	p("MOVQ stride+24(FP), R8")
	if ksz == 4 {
		p("SHLQ $2, R8")
	} else {
		p("SHLQ $1, R8")
	}
	p("LEAQ (R8)(R8*2), R9")
	p("MOVQ R8, R10")
	p("SHLQ $2, R10")
	p("MOVQ nblk+40(FP), SI")
	// K1: the lanes of the last hd mod 16 elements (none: no tail step).
	p("MOVQ hd+32(FP), CX")
	p("ANDQ $15, CX")
	p("MOVL $1, R11")
	p("SHLL CX, R11")
	p("DECL R11")
	p("KMOVW R11, K1")
	p("MOVQ hd+32(FP), CX")
	p("ANDQ $-16, CX")
	p("SHLQ $2, CX")
	p("TESTQ SI, SI")
	p("JZ %s_done", name)
	label(name + "_block")
	for i := 0; i < 16; i++ {
		p("VPXORD %s, %s, %s", z(i), z(i), z(i))
	}
	p("MOVQ BX, R11")
	p("LEAQ (R11)(R10*1), R12")
	p("LEAQ (R12)(R10*1), R13")
	p("LEAQ (R13)(R10*1), R14")
	keys := []string{"R11", "R12", "R13", "R14"}
	addr := func(j int) string {
		base := keys[j/4]
		switch j % 4 {
		case 0:
			return "(" + base + ")"
		case 1:
			return "(" + base + ")(R8*1)"
		case 2:
			return "(" + base + ")(R8*2)"
		}
		return "(" + base + ")(R9*1)"
	}
	tmp := 0
	next := func() string { t := z(17 + tmp%7); tmp++; return t }
	p("XORQ AX, AX")
	p("CMPQ AX, CX")
	p("JEQ %s_tail", name)
	label(name + "_step")
	p("VMOVUPS (DI)(AX*1), Z16")
	for j := 0; j < 16; j++ {
		t := next()
		if half {
			p("VCVTPH2PS %s, %s", addr(j), t) // exact
			p("VMULPS %s, Z16, %s", t, t)
		} else {
			p("VMULPS %s, Z16, %s", addr(j), t)
		}
		p("VADDPS %s, %s, %s", t, z(j), z(j))
	}
	for _, r := range keys {
		p("ADDQ $%d, %s", 16*ksz, r)
	}
	p("ADDQ $64, AX")
	p("CMPQ AX, CX")
	p("JNE %s_step", name)
	label(name + "_tail")
	if half {
		p("JMP %s_fold", name) // hd % 16 == 0: no tail
	}
	p("KORTESTW K1, K1")
	p("JZ %s_fold", name)
	p("VMOVUPS.Z (DI)(AX*1), K1, Z16")
	for j := 0; j < 16; j++ {
		t := next()
		p("VMOVUPS.Z %s, K1, %s", addr(j), t)
		p("VMULPS %s, Z16, %s", t, t)
		p("VADDPS %s, %s, %s", t, z(j), z(j))
	}
	label(name + "_fold")
	foldZ(16, 24)
	p("ADDQ $64, DX")
	p("LEAQ (BX)(R10*4), BX")
	p("DECQ SI")
	p("JNZ %s_block", name)
	label(name + "_done")
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// wsumZ writes wsumZ{G}x{C}(out *float32, os int, a *float32, as int,
// v *float32, vs int, n int): for G heads (head h's outputs at out +
// h*os, its weights at a + h*as) and the 16*C columns at out, v, for t < n
// in order, out[h][i] = out[h][i] + float32(a[h][t] * v[t*vs+i]): the
// attention value sum of the heads that share one key/value head,
// continued from what out holds. Each value vector is loaded once for the
// G heads; each output element keeps its own sum over t in order.
//
// half: wsumZh{G}x{C}, the values binary16 (v *uint16, vs in halves), each
// converted exactly (VCVTPH2PS) where wsumZ loads it: the same bits.
func wsumZ(G, C int, half bool) {
	name, vt, vsh := fmt.Sprintf("wsumZ%dx%d", G, C), "*float32", 2
	if half {
		name, vt, vsh = fmt.Sprintf("wsumZh%dx%d", G, C), "*uint16", 1
	}
	fmt.Fprintf(&b, "// func %s(out *float32, os int, a *float32, as int, v %s, vs int, n int)\n", name, vt)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-56\n", name)
	p("MOVQ out+0(FP), DI")
	p("MOVQ os+8(FP), R8")
	p("SHLQ $2, R8")
	p("MOVQ a+16(FP), SI")
	p("MOVQ as+24(FP), R9")
	p("SHLQ $2, R9")
	p("MOVQ v+32(FP), DX")
	p("MOVQ vs+40(FP), R10")
	p("SHLQ $%d, R10", vsh)
	p("MOVQ n+48(FP), CX")
	// Head h's outputs and weights: R11 = out + h*os, R12 = a + h*as
	// walked per head (at most 6 heads: no index register per head).
	acc := func(h, c int) int { return h*C + c }
	vreg := func(c int) int { return G*C + c }
	bc := G*C + C
	tbase := bc + 1
	if tbase >= 32 {
		panic(name + ": not enough registers")
	}
	tmp := 0
	next := func() string { t := z(tbase + tmp%(32-tbase)); tmp++; return t }
	p("MOVQ DI, R11")
	for h := 0; h < G; h++ {
		for c := 0; c < C; c++ {
			p("VMOVUPS %d(R11), %s", 64*c, z(acc(h, c)))
		}
		if h+1 < G {
			p("ADDQ R8, R11")
		}
	}
	p("TESTQ CX, CX")
	p("JZ %s_store", name)
	label(name + "_loop")
	for c := 0; c < C; c++ {
		if half {
			p("VCVTPH2PS %d(DX), %s", 32*c, z(vreg(c))) // exact
		} else {
			p("VMOVUPS %d(DX), %s", 64*c, z(vreg(c)))
		}
	}
	p("MOVQ SI, R12")
	for h := 0; h < G; h++ {
		p("VBROADCASTSS (R12), %s", z(bc))
		for c := 0; c < C; c++ {
			t := next()
			p("VMULPS %s, %s, %s", z(vreg(c)), z(bc), t)
			p("VADDPS %s, %s, %s", t, z(acc(h, c)), z(acc(h, c)))
		}
		if h+1 < G {
			p("ADDQ R9, R12")
		}
	}
	p("ADDQ $4, SI")
	p("ADDQ R10, DX")
	p("DECQ CX")
	p("JNZ %s_loop", name)
	label(name + "_store")
	p("MOVQ DI, R11")
	for h := 0; h < G; h++ {
		for c := 0; c < C; c++ {
			p("VMOVUPS %s, %d(R11)", z(acc(h, c)), 64*c)
		}
		if h+1 < G {
			p("ADDQ R8, R11")
		}
	}
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// wsumA writes wsumA{M}(out, a, v *float32, stride, n int), wsum{M} that
// continues the sums out holds instead of starting them at 0: for the 8*M
// floats of out and t < n in order, out[i] = out[i] + float32(a[t] *
// v[t*stride+i]).
func wsumA(M int) { wsumGen(M, true) }
