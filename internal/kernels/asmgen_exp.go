//go:build ignore

package main

import (
	"fmt"
	"math"
)

// The constants of detmath.Exp32 (internal/detmath/exp32.go), each rounded
// to float32 exactly as the Go compiler rounds the typed constants there.
// The tests of exp_test.go compare the kernels with detmath.Exp32 bit for
// bit, so a mistake here cannot go unnoticed.
const (
	expLog2e float32 = 1.44269504088896341
	expLn2Hi float32 = 0.693359375
	expLn2Lo float32 = -2.12194440e-4
	expRound float32 = 12582912
	expMax   float32 = 88.72283172607421875
	expMin   float32 = -103.97208
	expP0    float32 = 1.9875691500e-4
	expP1    float32 = 1.3981999507e-3
	expP2    float32 = 8.3334519073e-3
	expP3    float32 = 4.1665795894e-2
	expP4    float32 = 1.6666665459e-1
	expP5    float32 = 5.0000001201e-1
)

// expConsts is the table expC<>: 32-byte rows, each one value in all eight
// lanes, so that every constant is a memory operand of a Y instruction.
var expConsts = []struct {
	name string
	bits uint32
}{
	{"log2e", math.Float32bits(expLog2e)},
	{"round", math.Float32bits(expRound)},
	{"ln2hi", math.Float32bits(expLn2Hi)},
	{"ln2lo", math.Float32bits(expLn2Lo)},
	{"p0", math.Float32bits(expP0)},
	{"p1", math.Float32bits(expP1)},
	{"p2", math.Float32bits(expP2)},
	{"p3", math.Float32bits(expP3)},
	{"p4", math.Float32bits(expP4)},
	{"p5", math.Float32bits(expP5)},
	{"one", math.Float32bits(1)},
	{"max", math.Float32bits(expMax)},
	{"min", math.Float32bits(expMin)},
	{"inf", 0x7f800000},
	{"sign", 0x80000000},
	{"i127", 127},
}

// ec returns the memory operand of the expC<> row name.
func ec(name string) string {
	for i, c := range expConsts {
		if c.name == name {
			return fmt.Sprintf("expC<>+%d(SB)", 32*i)
		}
	}
	panic("asmgen_exp: no constant " + name)
}

// expRegs are the registers of one vector's Exp32: X holds the argument
// (kept), and the result is left in P; T, K, R, A are scratch.
type expRegs struct{ X, T, K, R, P, A int }

// expSteps returns the instructions computing P = Exp32(X) in all eight
// lanes, in the order of detmath.Exp32: every product rounded (VMULPS, then
// VADDPS/VSUBPS; no FMA), the integer k by +/- 1.5*2^23 and truncation.
// scale32(y, k) for k in [-150, 128] is y * 2^k rounded once (its two-step
// cases make an exact first product); here it is float32(y * 2^k1) * 2^k2
// with k1 = k>>1 and k2 = k - k1, both in [-75, 64], so the first product
// (y in [0.5, 2]) is exact and normal and the second rounds once: the same
// bits, branch-free. Lanes with x NaN, x > expMax or x < expMin compute
// garbage (integer arithmetic wraps, nothing traps) and are then replaced
// by x, +Inf and +0 as in the scalar switch (the three masks are disjoint).
func expSteps(r expRegs) []string {
	Y := func(i int) string { return y(i) }
	X, T, K, R, P, A := Y(r.X), Y(r.T), Y(r.K), Y(r.R), Y(r.P), Y(r.A)
	s := []string{
		fmt.Sprintf("VMULPS %s, %s, %s", ec("log2e"), X, T), // t = x*log2e
		fmt.Sprintf("VADDPS %s, %s, %s", ec("round"), T, T),
		fmt.Sprintf("VSUBPS %s, %s, %s", ec("round"), T, T), // kf
		fmt.Sprintf("VCVTTPS2DQ %s, %s", T, K),              // k
		fmt.Sprintf("VMULPS %s, %s, %s", ec("ln2hi"), T, R),
		fmt.Sprintf("VSUBPS %s, %s, %s", R, X, R), // r = x - kf*ln2hi
		fmt.Sprintf("VMULPS %s, %s, %s", ec("ln2lo"), T, T),
		fmt.Sprintf("VSUBPS %s, %s, %s", T, R, R), // r = r - kf*ln2lo
		fmt.Sprintf("VMULPS %s, %s, %s", ec("p0"), R, P),
	}
	for _, c := range []string{"p1", "p2", "p3", "p4"} {
		s = append(s,
			fmt.Sprintf("VADDPS %s, %s, %s", ec(c), P, P),
			fmt.Sprintf("VMULPS %s, %s, %s", R, P, P))
	}
	s = append(s,
		fmt.Sprintf("VADDPS %s, %s, %s", ec("p5"), P, P),  // p
		fmt.Sprintf("VMULPS %s, %s, %s", R, R, T),         // r2
		fmt.Sprintf("VMULPS %s, %s, %s", T, P, P),         // p*r2
		fmt.Sprintf("VADDPS %s, %s, %s", R, P, P),         // + r
		fmt.Sprintf("VADDPS %s, %s, %s", ec("one"), P, P), // + 1 = y
		// scale32(y, k) = y * 2^k1 * 2^k2 with k1 = k>>1, k2 = k - k1
		fmt.Sprintf("VPSRAD $1, %s, %s", K, A),    // k1
		fmt.Sprintf("VPSUBD %s, %s, %s", A, K, K), // k2
		fmt.Sprintf("VPADDD %s, %s, %s", ec("i127"), A, A),
		fmt.Sprintf("VPSLLD $23, %s, %s", A, A), // 2^k1
		fmt.Sprintf("VPADDD %s, %s, %s", ec("i127"), K, K),
		fmt.Sprintf("VPSLLD $23, %s, %s", K, K),   // 2^k2
		fmt.Sprintf("VMULPS %s, %s, %s", A, P, P), // exact
		fmt.Sprintf("VMULPS %s, %s, %s", K, P, P), // rounded once
		// the special cases
		fmt.Sprintf("VCMPPS $0x1e, %s, %s, %s", ec("max"), X, A), // x > expMax (GT_OQ)
		fmt.Sprintf("VBLENDVPS %s, %s, %s, %s", A, ec("inf"), P, P),
		fmt.Sprintf("VCMPPS $0x11, %s, %s, %s", ec("min"), X, A), // x < expMin (LT_OQ)
		fmt.Sprintf("VANDNPS %s, %s, %s", P, A, P),
		fmt.Sprintf("VCMPPS $3, %s, %s, %s", X, X, A), // x unordered: NaN
		fmt.Sprintf("VBLENDVPS %s, %s, %s, %s", A, X, P, P),
	)
	return s
}

// interleave emits the instruction streams one line of each in turn, so
// that independent vectors overlap their latencies.
func interleave(streams ...[]string) {
	for i := 0; ; i++ {
		done := true
		for _, s := range streams {
			if i < len(s) {
				p("%s", s[i])
				done = false
			}
		}
		if done {
			return
		}
	}
}

// Two register sets for two vectors in flight (Y0-Y11); Y12-Y15 are left
// to the kernels.
var expSets = []expRegs{
	{X: 0, T: 1, K: 2, R: 3, P: 4, A: 5},
	{X: 6, T: 7, K: 8, R: 9, P: 10, A: 11},
}

// expLoop writes a loop over n elements (a multiple of 8; the count is in
// CX) in blocks of 16 (two vectors, their instructions interleaved), then
// one block of 8. load(v, off) returns the instructions that put the eight
// elements at byte offset off of the block into Y(expSets[v].X), the
// argument of Exp32; store(v, off) those that finish from the result in
// Y(expSets[v].P). advance(bytes) moves the pointers after a block of 16.
func expLoop(name string, load func(v, off int) []string, store func(v, off int) []string, advance func(bytes int)) {
	p("MOVQ CX, BX")
	p("SHRQ $4, BX")
	p("JZ %s_8", name)
	label(name + "_loop")
	var streams [][]string
	for v := range expSets {
		s := append(load(v, 32*v), expSteps(expSets[v])...)
		streams = append(streams, append(s, store(v, 32*v)...))
	}
	interleave(streams...)
	advance(64)
	p("DECQ BX")
	p("JNZ %s_loop", name)
	label(name + "_8")
	p("TESTQ $8, CX")
	p("JZ %s_done", name)
	s := append(load(0, 0), expSteps(expSets[0])...)
	interleave(append(s, store(0, 0)...))
	label(name + "_done")
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// maxFoldRet writes the end of maxF32 and maxOrdF32: the maximum of Y0's
// eight lanes (VMAXPS of halves, then pairs), returned.
func maxFoldRet() {
	p("VEXTRACTF128 $1, Y0, X1")
	p("VMAXPS X1, X0, X0")
	p("VMOVHLPS X0, X0, X1")
	p("VMAXPS X1, X0, X0")
	p("VMOVSHDUP X0, X1")
	p("VMAXSS X1, X0, X0")
	p("VMOVSS X0, ret+16(FP)")
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// expKernels writes the vectorised Exp32-based kernels (softmax's exp pass,
// SwiGLU). Run with asmgen.go: `go run asmgen.go asmgen_exp.go`.
//
//	expShiftF32(x *float32, m float32, n int): x[i] = Exp32(x[i] - m)
//	swigluF32(out, gate, up *float32, n int):  out[i] = float32(SiLU(gate[i]) * up[i])
//	maxF32(x *float32, n int) float32:         max of x (VMAXPS; n >= 8)
//	divF32(x *float32, s float32, n int):      x[i] = x[i] / s
//
// n is a multiple of 8 in all four; the Go callers do the rest. Then the
// AVX-512F forms expShiftZ and swigluZ (expKernelsZ), for any n.
func expKernels() {
	for i, c := range expConsts {
		for l := 0; l < 8; l += 2 {
			fmt.Fprintf(&b, "DATA expC<>+%d(SB)/8, $0x%08x%08x\n", 32*i+4*l, c.bits, c.bits)
		}
	}
	fmt.Fprintf(&b, "GLOBL expC<>(SB), RODATA|NOPTR, $%d\n\n", 32*len(expConsts))

	// expShiftF32: Y15 = m.
	b.WriteString("// func expShiftF32(x *float32, m float32, n int)\n")
	b.WriteString("TEXT ·expShiftF32(SB), NOSPLIT, $0-24\n")
	p("MOVQ x+0(FP), DI")
	p("VBROADCASTSS m+8(FP), Y15")
	p("MOVQ n+16(FP), CX")
	expLoop("expShift",
		func(v, off int) []string {
			return []string{fmt.Sprintf("VMOVUPS %d(DI), %s", off, y(expSets[v].X)),
				fmt.Sprintf("VSUBPS Y15, %s, %s", y(expSets[v].X), y(expSets[v].X))}
		},
		func(v, off int) []string {
			return []string{fmt.Sprintf("VMOVUPS %s, %d(DI)", y(expSets[v].P), off)}
		},
		func(n int) { p("ADDQ $%d, DI", n) })

	// swigluF32: X = -gate (sign flipped, as Go negates); the gate is
	// loaded again for the division (out may be gate: each block is read
	// before it is stored).
	b.WriteString("// func swigluF32(out, gate, up *float32, n int)\n")
	b.WriteString("TEXT ·swigluF32(SB), NOSPLIT, $0-32\n")
	p("MOVQ out+0(FP), DI")
	p("MOVQ gate+8(FP), SI")
	p("MOVQ up+16(FP), DX")
	p("MOVQ n+24(FP), CX")
	expLoop("swiglu",
		func(v, off int) []string {
			return []string{fmt.Sprintf("VMOVUPS %d(SI), %s", off, y(expSets[v].X)),
				fmt.Sprintf("VXORPS %s, %s, %s", ec("sign"), y(expSets[v].X), y(expSets[v].X))} // -gate
		},
		func(v, off int) []string {
			r := expSets[v]
			return []string{
				fmt.Sprintf("VADDPS %s, %s, %s", ec("one"), y(r.P), y(r.P)), // 1 + Exp32(-g)
				fmt.Sprintf("VMOVUPS %d(SI), %s", off, y(r.A)),
				fmt.Sprintf("VDIVPS %s, %s, %s", y(r.P), y(r.A), y(r.P)), // SiLU(g)
				fmt.Sprintf("VMULPS %d(DX), %s, %s", off, y(r.P), y(r.P)),
				fmt.Sprintf("VMOVUPS %s, %d(DI)", y(r.P), off),
			}
		},
		func(n int) {
			for _, r := range []string{"DI", "SI", "DX"} {
				p("ADDQ $%d, %s", n, r)
			}
		})

	// maxF32: lane-wise VMAXPS, then the eight lanes folded (for inputs
	// without NaN the value is the maximum; only the sign of a zero maximum
	// may differ from the scalar rule, which softmax does not see).
	b.WriteString("// func maxF32(x *float32, n int) float32\n")
	b.WriteString("TEXT ·maxF32(SB), NOSPLIT, $0-20\n")
	p("MOVQ x+0(FP), DI")
	p("MOVQ n+8(FP), CX")
	p("VMOVUPS (DI), Y0")
	p("VMOVAPS Y0, Y1")
	p("ADDQ $32, DI")
	p("SUBQ $8, CX")
	p("MOVQ CX, BX")
	p("SHRQ $4, BX")
	p("JZ max_8")
	label("max_loop")
	p("VMAXPS (DI), Y0, Y0")
	p("VMAXPS 32(DI), Y1, Y1")
	p("ADDQ $64, DI")
	p("DECQ BX")
	p("JNZ max_loop")
	label("max_8")
	p("TESTQ $8, CX")
	p("JZ max_fold")
	p("VMAXPS (DI), Y0, Y0")
	label("max_fold")
	p("VMAXPS Y1, Y0, Y0")
	maxFoldRet()

	// maxOrdF32 (n a multiple of 32, n >= 32): the largest non-NaN value of
	// x, -Inf where there is none. Four accumulators start at -Inf; each
	// VMAXPS takes the loaded values as its first source, and VMAXPS
	// returns the second source (the accumulator) where either is NaN, so
	// a NaN never enters. No float arithmetic: Argmax's first pass.
	b.WriteString("// func maxOrdF32(x *float32, n int) float32\n")
	b.WriteString("TEXT ·maxOrdF32(SB), NOSPLIT, $0-20\n")
	p("MOVQ x+0(FP), DI")
	p("MOVQ n+8(FP), CX")
	p("SHRQ $5, CX")
	p("MOVL $0xff800000, AX") // -Inf
	p("VMOVD AX, X0")
	p("VPBROADCASTD X0, Y0")
	for i := 1; i < 4; i++ {
		p("VMOVAPS Y0, Y%d", i)
	}
	label("maxord_loop")
	for i := 0; i < 4; i++ {
		p("VMOVUPS %d(DI), Y%d", 32*i, 4+i)
	}
	for i := 0; i < 4; i++ {
		p("VMAXPS Y%d, Y%d, Y%d", i, 4+i, i) // NaN in Y(4+i): Y(i) kept
	}
	p("ADDQ $128, DI")
	p("DECQ CX")
	p("JNZ maxord_loop")
	p("VMAXPS Y1, Y0, Y0")
	p("VMAXPS Y3, Y2, Y2")
	p("VMAXPS Y2, Y0, Y0")
	maxFoldRet()

	// firstEqF32 (n a multiple of 8): the first index i < n with x[i] == m
	// (an ordered comparison: -0 equals +0, NaN equals nothing), -1 where
	// there is none. Argmax's second pass.
	b.WriteString("// func firstEqF32(x *float32, n int, m float32) int\n")
	b.WriteString("TEXT ·firstEqF32(SB), NOSPLIT, $0-32\n")
	p("MOVQ x+0(FP), DI")
	p("MOVQ n+8(FP), CX")
	p("VBROADCASTSS m+16(FP), Y0")
	p("XORQ AX, AX")
	p("MOVQ CX, DX")
	p("ANDQ $-32, DX")
	label("firsteq_32")
	p("CMPQ AX, DX")
	p("JGE firsteq_8")
	for i := 0; i < 4; i++ {
		p("VCMPPS $0, %d(DI)(AX*4), Y0, Y%d", 32*i, 1+i) // EQ_OQ
	}
	p("VORPS Y2, Y1, Y5")
	p("VORPS Y4, Y3, Y6")
	p("VORPS Y6, Y5, Y5")
	p("VMOVMSKPS Y5, BX")
	p("TESTL BX, BX")
	p("JNZ firsteq_8")
	p("ADDQ $32, AX")
	p("JMP firsteq_32")
	label("firsteq_8") // eight at a time from AX: the remainder, or the 32 that hold a match
	p("CMPQ AX, CX")
	p("JGE firsteq_none")
	p("VCMPPS $0, (DI)(AX*4), Y0, Y1")
	p("VMOVMSKPS Y1, BX")
	p("TESTL BX, BX")
	p("JNZ firsteq_found")
	p("ADDQ $8, AX")
	p("JMP firsteq_8")
	label("firsteq_found")
	p("BSFL BX, BX")
	p("ADDQ BX, AX")
	p("MOVQ AX, ret+24(FP)")
	p("VZEROUPPER")
	p("RET")
	label("firsteq_none")
	p("MOVQ $-1, ret+24(FP)")
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")

	// divF32: correctly rounded division, as the scalar x[i] / s.
	b.WriteString("// func divF32(x *float32, s float32, n int)\n")
	b.WriteString("TEXT ·divF32(SB), NOSPLIT, $0-24\n")
	p("MOVQ x+0(FP), DI")
	p("VBROADCASTSS s+8(FP), Y15")
	p("MOVQ n+16(FP), CX")
	p("SHRQ $3, CX")
	p("JZ div_done")
	label("div_loop")
	p("VMOVUPS (DI), Y0")
	p("VDIVPS Y15, Y0, Y0")
	p("VMOVUPS Y0, (DI)")
	p("ADDQ $32, DI")
	p("DECQ CX")
	p("JNZ div_loop")
	label("div_done")
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")

	expKernelsZ()
}

// expRegsZ are the zmm registers of one vector's Exp32 (X the argument,
// kept; result in P; T, R, A scratch) and its mask register K.
type expRegsZ struct {
	X, T, R, P, A int
	K             string
}

// expStepsZ returns the AVX-512F instructions computing P = Exp32(X) in
// sixteen lanes: the same rounded operations as expSteps up to y, then
// scale32(y, k) as VSCALEFPS y, kf, which is y * 2^kf rounded once (kf is
// an integer; y * 2^k is exact or, for subnormal results, rounded once by
// both forms: scale32's first product in its two-step cases is exact). The
// special lanes are then replaced under masks.
func expStepsZ(r expRegsZ) []string {
	X, T, R, P, A, K := z(r.X), z(r.T), z(r.R), z(r.P), z(r.A), r.K
	s := []string{
		fmt.Sprintf("VMULPS.BCST %s, %s, %s", ec("log2e"), X, T),
		fmt.Sprintf("VADDPS.BCST %s, %s, %s", ec("round"), T, T),
		fmt.Sprintf("VSUBPS.BCST %s, %s, %s", ec("round"), T, T), // kf
		fmt.Sprintf("VMULPS.BCST %s, %s, %s", ec("ln2hi"), T, R),
		fmt.Sprintf("VSUBPS %s, %s, %s", R, X, R),
		fmt.Sprintf("VMULPS.BCST %s, %s, %s", ec("ln2lo"), T, A),
		fmt.Sprintf("VSUBPS %s, %s, %s", A, R, R), // r
		fmt.Sprintf("VMULPS.BCST %s, %s, %s", ec("p0"), R, P),
	}
	for _, c := range []string{"p1", "p2", "p3", "p4"} {
		s = append(s,
			fmt.Sprintf("VADDPS.BCST %s, %s, %s", ec(c), P, P),
			fmt.Sprintf("VMULPS %s, %s, %s", R, P, P))
	}
	s = append(s,
		fmt.Sprintf("VADDPS.BCST %s, %s, %s", ec("p5"), P, P),
		fmt.Sprintf("VMULPS %s, %s, %s", R, R, A),
		fmt.Sprintf("VMULPS %s, %s, %s", A, P, P),
		fmt.Sprintf("VADDPS %s, %s, %s", R, P, P),
		fmt.Sprintf("VADDPS.BCST %s, %s, %s", ec("one"), P, P), // y
		fmt.Sprintf("VSCALEFPS %s, %s, %s", T, P, P),
		fmt.Sprintf("VCMPPS.BCST $0x1e, %s, %s, %s", ec("max"), X, K), // x > expMax
		fmt.Sprintf("VBLENDMPS.BCST %s, %s, %s, %s", ec("inf"), P, K, P),
		fmt.Sprintf("VCMPPS.BCST $0x15, %s, %s, %s", ec("min"), X, K), // !(x < expMin)
		fmt.Sprintf("VMOVAPS.Z %s, %s, %s", P, K, P),
		fmt.Sprintf("VCMPPS $3, %s, %s, %s", X, X, K), // NaN
		fmt.Sprintf("VBLENDMPS %s, %s, %s, %s", X, P, K, P),
	)
	return s
}

// Four zmm vectors in flight (Z0-Z19), masks K1-K4; Z28-Z31 and K7 are
// left to the kernels.
var expSetsZ = []expRegsZ{
	{X: 0, T: 1, R: 2, P: 3, A: 4, K: "K1"},
	{X: 5, T: 6, R: 7, P: 8, A: 9, K: "K2"},
	{X: 10, T: 11, R: 12, P: 13, A: 14, K: "K3"},
	{X: 15, T: 16, R: 17, P: 18, A: 19, K: "K4"},
}

// expLoopZ writes the loop of an AVX-512F kernel over any n (in CX): blocks
// of 64 (four vectors), then of 16, then the last 1-15 under the mask K7
// (masked-off lanes load zeros, compute harmlessly and are not stored).
// load(v, off, mask) returns the instructions that put the argument of
// Exp32 into Z(X); store(v, off, mask) those that finish from Z(P); mask
// is "" or "K7". advance(bytes) moves the pointers.
func expLoopZ(name string, load, store func(v, off int, mask string) []string, advance func(bytes int)) {
	block := func(nv int, mask string) {
		var streams [][]string
		for v := 0; v < nv; v++ {
			s := append(load(v, 64*v, mask), expStepsZ(expSetsZ[v])...)
			streams = append(streams, append(s, store(v, 64*v, mask)...))
		}
		interleave(streams...)
	}
	p("MOVQ CX, BX")
	p("SHRQ $6, BX")
	p("JZ %s_16", name)
	label(name + "_loop")
	block(4, "")
	advance(256)
	p("DECQ BX")
	p("JNZ %s_loop", name)
	label(name + "_16")
	p("ANDQ $63, CX")
	label(name + "_loop16")
	p("CMPQ CX, $16")
	p("JLT %s_last", name)
	block(1, "")
	advance(64)
	p("SUBQ $16, CX")
	p("JMP %s_loop16", name)
	label(name + "_last")
	p("TESTQ CX, CX")
	p("JZ %s_done", name)
	p("MOVL $1, AX")
	p("SHLL CX, AX")
	p("DECL AX")
	p("KMOVW AX, K7")
	block(1, "K7")
	label(name + "_done")
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// zload is a load of 16 floats, zero-masked under mask if there is one.
func zload(addr, mask string, dst int) string {
	if mask == "" {
		return fmt.Sprintf("VMOVUPS %s, %s", addr, z(dst))
	}
	return fmt.Sprintf("VMOVUPS.Z %s, %s, %s", addr, mask, z(dst))
}

// zstore is a store of 16 floats, only the lanes of mask if there is one.
func zstore(src int, mask, addr string) string {
	if mask == "" {
		return fmt.Sprintf("VMOVUPS %s, %s", z(src), addr)
	}
	return fmt.Sprintf("VMOVUPS %s, %s, %s", z(src), mask, addr)
}

// expKernelsZ writes the AVX-512F forms of expShiftF32 and swigluF32 for
// any n: expShiftZ(x *float32, m float32, n int), swigluZ(out, gate, up
// *float32, n int).
func expKernelsZ() {
	b.WriteString("// func expShiftZ(x *float32, m float32, n int)\n")
	b.WriteString("TEXT ·expShiftZ(SB), NOSPLIT, $0-24\n")
	p("MOVQ x+0(FP), DI")
	p("VBROADCASTSS m+8(FP), Z31")
	p("MOVQ n+16(FP), CX")
	expLoopZ("expShiftZ",
		func(v, off int, mask string) []string {
			r := expSetsZ[v]
			return []string{zload(fmt.Sprintf("%d(DI)", off), mask, r.X),
				fmt.Sprintf("VSUBPS Z31, %s, %s", z(r.X), z(r.X))}
		},
		func(v, off int, mask string) []string {
			return []string{zstore(expSetsZ[v].P, mask, fmt.Sprintf("%d(DI)", off))}
		},
		func(n int) { p("ADDQ $%d, DI", n) })

	b.WriteString("// func swigluZ(out, gate, up *float32, n int)\n")
	b.WriteString("TEXT ·swigluZ(SB), NOSPLIT, $0-32\n")
	p("MOVQ out+0(FP), DI")
	p("MOVQ gate+8(FP), SI")
	p("MOVQ up+16(FP), DX")
	p("MOVQ n+24(FP), CX")
	p("VPBROADCASTD %s, Z31", ec("sign"))
	expLoopZ("swigluZ",
		func(v, off int, mask string) []string {
			r := expSetsZ[v]
			return []string{zload(fmt.Sprintf("%d(SI)", off), mask, r.X),
				fmt.Sprintf("VPXORD Z31, %s, %s", z(r.X), z(r.X))} // -gate
		},
		func(v, off int, mask string) []string {
			r := expSetsZ[v]
			return []string{
				fmt.Sprintf("VADDPS.BCST %s, %s, %s", ec("one"), z(r.P), z(r.P)),
				zload(fmt.Sprintf("%d(SI)", off), mask, r.A),
				fmt.Sprintf("VDIVPS %s, %s, %s", z(r.P), z(r.A), z(r.P)),
				zload(fmt.Sprintf("%d(DX)", off), mask, r.T),
				fmt.Sprintf("VMULPS %s, %s, %s", z(r.T), z(r.P), z(r.P)),
				zstore(r.P, mask, fmt.Sprintf("%d(DI)", off)),
			}
		},
		func(n int) {
			for _, r := range []string{"DI", "SI", "DX"} {
				p("ADDQ $%d, %s", n, r)
			}
		})
}
