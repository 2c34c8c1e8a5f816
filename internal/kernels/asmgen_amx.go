//go:build ignore

package main

import (
	"fmt"
	"strings"
)

// amxQ8x16(w *byte, ws int, pa *byte, nb int, out *float32, ld int, tiles
// int, sc *byte) (run with asmgen.go) computes what vnniWT16Q8
// (asmgen_wt16.go) does, with the integer products on the AMX tile unit
// (Intel Sapphire Rapids and later: AMX-TILE, AMX-INT8), for `tiles`
// consecutive tiles of 16 Q8_0 weight rows (row stride ws) against 16
// activation rows packed by packAMX at pa: tile t's results of activation
// row p at out[p*ld + 16*t:][:16].
//
// Per block of 32 elements, TDPBSSD multiplies the 16 weight rows' quanta
// (the A operand, 16 rows of 32 signed bytes, loaded from the file's rows
// as they lie: no transposition) by the block's activations (the B operand,
// 8 rows of 16 dwords: packAMX's layout, dword n of row k holding elements
// 4k..4k+3 of activation row n), giving C (16 x 16 int32): C[m][n] = Σ w·x,
// exactly the integer vnniWT16Q8 reaches with its +128 and correction
// (|sum| < 2^24; int32 sums of products are exact in any order). C goes
// through sc to zmm registers, a weight row m to a register whose lanes are
// the 16 activation rows, and the float arithmetic of every (weight row,
// activation row) is vnniWT16Q8's, bit for bit: t = dw*dx (the product is
// commutative), a = float(isum), a = a*t, acc = acc + a. At the end of a
// tile the 16 accumulators (one per weight row) are transposed through sc
// into the 16 output rows.
//
// Two blocks run per step on two sets of tiles (tmm0-2 and tmm3-5: A, B,
// C; LDTILECFG from amxCfg), so that one block's tile unit work overlaps
// the other's float work: the tile registers are not renamed, so one set
// would make every block wait for the last one's results to be stored.
// sc (64-byte aligned) holds the two results at 0 and 1024, the two
// blocks' weight scales as float32 at 2048 and 2112, and at the end of a
// tile the 16 accumulators at 0. The Go assembler has no AMX mnemonics:
// the instructions are written as bytes (tileMem, tilezero, tdpbssd, ...),
// each with its mnemonic beside it; the encodings were checked against GNU
// as 2.40 assembling the same mnemonics.
func amxQ8x16() {
	name := "amxQ8x16"
	facc := func(m int) string { return z(16 + m) }
	bases := []string{"SI", "R8", "R10", "R11"}
	const bs, blk = 34, amxBlk
	fmt.Fprintf(&b, "// func %s(w *byte, ws int, pa *byte, nb int, out *float32, ld int, tiles int, sc *byte)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $0-64\n", name)
	p("MOVQ sc+56(FP), DX")
	p("LEAQ amxCfg<>(SB), BX")
	amx(ldtilecfgBX())
	p("MOVQ ws+8(FP), AX")
	p("LEAQ (AX)(AX*2), R12")
	p("MOVQ $64, R13")
	label(name + "_tile")
	p("MOVQ w+0(FP), SI")
	p("LEAQ (SI)(AX*4), R8")
	p("LEAQ (R8)(AX*4), R10")
	p("LEAQ (R10)(AX*4), R11")
	p("LEAQ (R11)(AX*4), R9") // the next tile's rows: one sequential stream
	for i := 1; i < amxPFTiles; i++ {
		p("LEAQ (R9)(AX*8), R9")
		p("LEAQ (R9)(AX*8), R9")
	}
	p("MOVQ pa+16(FP), DI")
	p("MOVQ nb+24(FP), CX")
	for m := 0; m < 16; m++ {
		p("VPXORD %s, %s, %s", facc(m), facc(m), facc(m))
	}
	// one block on tile set s (0: tmm0-2, 1: tmm3-5) at block offset o
	// (0 or 1) of the step.
	issue := func(s, o int) {
		t := 3 * s
		amx(tileMem(0x4b, 3, t, regSI, regAX, 2+bs*o))   // A: the weights
		amx(tileMem(0x4b, 3, t+1, regDI, regR13, blk*o)) // B: the activations
		amx(tilezero(t + 2))
		amx(tdpbssd(t+2, t, t+1))
	}
	store := func(s int) {
		amx(tileMem(0x4b, 2, 3*s+2, regDX, regR13, 1024*s)) // C to sc
	}
	scales := func(o int) {
		wtScalesAt(bases, bs*o, "X6", "X7", "Z5")
		p("VMOVUPS Z5, %d(DX)", 2048+64*o)
	}
	// float work of the block on set s at block offset o: four weight
	// rows at a time, a in Z0-Z3, t in Z8-Z11; Z4 the block's 16 dx.
	float := func(s, o, dx int) {
		p("VMOVUPS %d(DI), Z4", dx)
		for m0 := 0; m0 < 16; m0 += 4 {
			for i := 0; i < 4; i++ {
				p("VCVTDQ2PS %d(DX), %s", 1024*s+64*(m0+i), z(i)) // exact: |isum| < 2^24
			}
			for i := 0; i < 4; i++ {
				p("VMULPS.BCST %d(DX), Z4, %s", 2048+64*o+4*(m0+i), z(8+i)) // dx*dw
			}
			for i := 0; i < 4; i++ {
				p("VMULPS %s, %s, %s", z(i), z(8+i), z(i)) // (dw*dx)*isum
			}
			for i := 0; i < 4; i++ {
				p("VADDPS %s, %s, %s", z(i), facc(m0+i), facc(m0+i))
			}
		}
	}
	prefetch := func() {
		for c := 0; c < (16*bs+63)/64; c++ {
			p("%s %d(R9)", amxPFOp, 64*c)
		}
		p("ADDQ $%d, R9", 16*bs)
	}
	advance := func(blocks int) {
		for _, r := range bases {
			p("ADDQ $%d, %s", bs*blocks, r)
		}
		p("ADDQ $%d, DI", blk*blocks)
	}
	p("SHRQ $1, CX")
	p("JZ %s_odd", name)
	// begin hands blocks b and b+1 to the tile unit and converts their
	// weight scales.
	begin := func() {
		prefetch()
		issue(0, 0)
		issue(1, 1)
		prefetch()
		scales(0)
		scales(1)
	}
	if amxPipe {
		// Software-pipelined: the tile unit works on blocks b+2 and
		// b+3 while the float work of b and b+1 runs.
		begin()
		p("DECQ CX")
		p("JZ %s_last", name)
		label(name + "_loop")
		advance(2)
		store(0)
		issue(0, 0)
		float(0, 0, 512-2*blk)
		store(1)
		issue(1, 1)
		float(1, 1, 512-blk)
		scales(0)
		scales(1)
		prefetch()
		prefetch()
		p("DECQ CX")
		p("JNZ %s_loop", name)
		label(name + "_last")
		store(0)
		float(0, 0, 512)
		store(1)
		float(1, 1, 512+blk)
		advance(2)
	} else {
		label(name + "_loop")
		begin()
		store(0)
		float(0, 0, 512)
		store(1)
		float(1, 1, 512+blk)
		advance(2)
		p("DECQ CX")
		p("JNZ %s_loop", name)
	}
	label(name + "_odd")
	p("TESTQ $1, nb+24(FP)")
	p("JZ %s_store", name)
	prefetch()
	issue(0, 0)
	scales(0)
	store(0)
	float(0, 0, 512)
	label(name + "_store")
	// The accumulators (weight row m: lanes of the activation rows) to sc,
	// then each activation row's 16 results gathered from its column and
	// stored as one row of out (16 scattered stores per weight row would
	// land 4*ld bytes apart: on the same cache sets when ld is a multiple
	// of 1024).
	for m := 0; m < 16; m++ {
		p("VMOVUPS %s, %d(DX)", facc(m), 64*m)
	}
	p("VMOVDQU32 amxCol<>(SB), Z4")
	p("MOVQ out+32(FP), BX")
	p("MOVQ ld+40(FP), CX")
	p("SHLQ $2, CX")
	for n := 0; n < 16; n++ {
		p("KXNORW K0, K0, K1")
		p("VGATHERDPS %d(DX)(Z4*4), K1, %s", 4*n, z(n%4))
		p("VMOVUPS %s, (BX)", z(n%4))
		if n+1 < 16 {
			p("ADDQ CX, BX")
		}
	}
	p("ADDQ $64, out+32(FP)")
	p("MOVQ w+0(FP), SI")
	p("SHLQ $4, AX")
	p("ADDQ AX, SI")
	p("SHRQ $4, AX")
	p("MOVQ SI, w+0(FP)")
	p("DECQ tiles+48(FP)")
	p("JNZ %s_tile", name)
	amx(tilerelease())
	p("VZEROUPPER")
	p("RET")
	b.WriteString("\n")
}

// amxPFOp and amxPFTiles: the prefetch instruction and how many tiles
// ahead (measurements: AMXPF_OP, AMXPF_TILES in the environment).
// PREFETCHT1 (into L2) one tile ahead: 16 rows against weights streamed
// from memory (BenchmarkAMX/amx/dram with 72 matrices, 120 MB), two
// threads at once, 147-151 us a 2048 x 768 product against 152-167 with
// PREFETCHT0, whose misses hold the core's few L1 fill buffers while they
// wait on memory (PREFETCHT2 the same as T1 here, PREFETCHNTA half the
// speed; one thread: T1 one tile ahead 147-155, two or three 152-190, T0
// 172-173); the 110m Q8_0 16-row decode step 10.5-11.2 ms against
// 11.0-11.8 (five alternated rounds); weights in L2 the same. amxPipe:
// the tile unit takes blocks b+2 and b+3 while the float work of b and
// b+1 runs (AMX_PIPE=0 for the plain loop: 252-263 against 274-287 GMAC
// per CPU second on 16 rows, weights in L2).
var (
	amxPFOp    = "PREFETCHT1"
	amxPFTiles = 1
	amxPipe    = true
)

// amxBlk is the bytes of one block of packAMX's layout: the B operand (8
// rows of 64 bytes), then the 16 activation rows' scales (float32).
const amxBlk = 576

// amxCfgData writes amxCfg, the tile configuration of amxQ8x16 (palette 1;
// per tile its bytes per row, uint16 at 16+2i, and rows, at 48+i).
func amxCfgData() {
	b.WriteString("DATA amxCfg<>+0(SB)/1, $1\n")
	cfg := [][2]int{{32, 16}, {64, 8}, {64, 16}, {32, 16}, {64, 8}, {64, 16}}
	for i, c := range cfg { // in increasing offsets, as the assembler wants
		fmt.Fprintf(&b, "DATA amxCfg<>+%d(SB)/2, $%d\n", 16+2*i, c[0])
	}
	for i, c := range cfg {
		fmt.Fprintf(&b, "DATA amxCfg<>+%d(SB)/1, $%d\n", 48+i, c[1])
	}
	b.WriteString("GLOBL amxCfg<>(SB), RODATA|NOPTR, $64\n\n")
	// amxCol: the dword offsets of a column of a 16 x 16 int32 block.
	for i := 0; i < 16; i++ {
		fmt.Fprintf(&b, "DATA amxCol<>+%d(SB)/4, $%d\n", 4*i, 16*i)
	}
	b.WriteString("GLOBL amxCol<>(SB), RODATA|NOPTR, $64\n\n")
}

// Register numbers of the x86-64 encoding.
const (
	regAX  = 0
	regDX  = 2
	regBX  = 3
	regSI  = 6
	regDI  = 7
	regR13 = 13
)

// amx writes an instruction given as bytes, with its mnemonic (Intel
// syntax) as a comment.
func amx(bs []byte, mnemonic string) {
	s := make([]string, len(bs))
	for i, c := range bs {
		s[i] = fmt.Sprintf("BYTE $0x%02x", c)
	}
	p("%s // %s", strings.Join(s, "; "), mnemonic)
}

// vex3 is a three-byte VEX prefix for the 0F38 map, W0, L0: r, x and bb
// the high bits of ModRM.reg, SIB.index and the base; vvvv the extra
// register operand (0 when there is none: the field holds it inverted); pp 0 (none), 1 (66), 2 (F3), 3 (F2).
func vex3(r, x, bb, vvvv, pp int) []byte {
	b1 := byte((r^1)<<7|(x^1)<<6|(bb^1)<<5) | 0x02
	b2 := byte((^vvvv&15)<<3 | pp)
	return []byte{0xc4, b1, b2}
}

// tileMem is TILELOADD (pp 3) or TILESTORED (pp 2), opcode 0x4b, of tile
// tmm at disp(base)(index*1).
func tileMem(op byte, pp, tmm, base, index, disp int) ([]byte, string) {
	bs := vex3(tmm>>3, index>>3, base>>3, 0, pp)
	mod, dispBytes := 2, []byte{byte(disp), byte(disp >> 8), byte(disp >> 16), byte(disp >> 24)}
	switch {
	case disp == 0 && base&7 != 5:
		mod, dispBytes = 0, nil
	case disp >= -128 && disp < 128:
		mod, dispBytes = 1, []byte{byte(disp)}
	}
	bs = append(bs, op, byte(mod<<6|(tmm&7)<<3|4), byte((index&7)<<3|base&7))
	bs = append(bs, dispBytes...)
	mn := "TILELOADD"
	if pp == 2 {
		mn = "TILESTORED"
	}
	return bs, fmt.Sprintf("%s tmm%d, [r%d + r%d*1 + %d]", mn, tmm, base, index, disp)
}

// tilezero is TILEZERO tmm.
func tilezero(tmm int) ([]byte, string) {
	return append(vex3(0, 0, 0, 0, 3), 0x49, byte(0xc0|tmm<<3)), fmt.Sprintf("TILEZERO tmm%d", tmm)
}

// tdpbssd is TDPBSSD c, a, bm: c += a (M x K signed bytes) · bm (K/4 x N
// dwords of 4 signed bytes), in int32.
func tdpbssd(c, a, bm int) ([]byte, string) {
	return append(vex3(0, 0, 0, bm, 3), 0x5e, byte(0xc0|c<<3|a)), fmt.Sprintf("TDPBSSD tmm%d, tmm%d, tmm%d", c, a, bm)
}

// ldtilecfgBX is LDTILECFG [rbx].
func ldtilecfgBX() ([]byte, string) {
	return append(vex3(0, 0, 0, 0, 0), 0x49, 0x03), "LDTILECFG [rbx]"
}

// tilerelease is TILERELEASE.
func tilerelease() ([]byte, string) {
	return append(vex3(0, 0, 0, 0, 0), 0x49, 0xc0), "TILERELEASE"
}
