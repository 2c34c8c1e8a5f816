//go:build ignore

// asmgen writes x16_amd64.s, the AVX-512 kernel of this package. Run it with
// `go generate ./internal/sha256x16/` (or `go run asmgen.go` in this
// directory); the generated file is committed, so building never needs it.
//
// blocks16(state *[8][16]uint32, ptrs *[16]*byte, n int) runs the SHA-256
// compression function of FIPS 180-4 on n consecutive 64-byte blocks of 16
// messages at once: lane j reads its blocks from ptrs[j], ptrs[j]+64, ...
// and state[w][j] is word w of lane j's chaining value (in and out).
//
// Registers: Z0-Z15 hold the 16 message-schedule words of the current
// block (one word of all 16 lanes each; W[t] lives in Z(t mod 16) and is
// overwritten by W[t+16] in place), Z16-Z23 the working variables a..h
// (the generator renames them each round instead of moving them), Z24-Z31
// temporaries. A block's 16 rows (one per lane) are loaded, byte-swapped
// (VPSHUFB, AVX512BW) and transposed in registers: 32-bit and 64-bit
// unpacks, then two rounds of 128-bit lane shuffles (VSHUFI32X4).
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
func z(i int) string               { return fmt.Sprintf("Z%d", i) }

var k = [64]uint32{
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

// VPTERNLOGD truth tables (bit (A<<2)|(B<<1)|C of the immediate, A the
// destination operand).
const (
	xor3 = 0x96 // A ^ B ^ C
	ch   = 0xca // A ? B : C
	maj  = 0xe8 // majority of A, B, C
)

// transpose loads and byte-swaps the rows of lanes 0..15 at offset AX into
// Z0..Z15 and leaves word t of every lane in Z(t).
func transpose() {
	for j := 0; j < 16; j++ {
		p("MOVQ %d(DI), SI", 8*j)
		p("VMOVDQU32 (SI)(AX*1), %s", z(j))
		// The lane's block after the next, asked for now: a block's 64
		// rounds take longer than a line from another core's cache or
		// memory, and the next block's loads lie beyond the reorder
		// window, so without it every block began with a miss per lane
		// (a trace's leaves, just written by other cores: 1.07 GB/s
		// for 16 key/value leaves against 2.6 in cache).
		p("PREFETCHT0 %d(SI)(AX*1)", pfAhead)
	}
	p("VMOVDQU32 bswapMask<>(SB), Z16")
	for j := 0; j < 16; j++ {
		p("VPSHUFB Z16, %s, %s", z(j), z(j))
	}
	// Stage 1: A[2i] = unpacklo32(R[2i], R[2i+1]), A[2i+1] = unpackhi32.
	for i := 0; i < 8; i++ {
		p("VPUNPCKLDQ %s, %s, %s", z(2*i+1), z(2*i), z(16+2*i))
		p("VPUNPCKHDQ %s, %s, %s", z(2*i+1), z(2*i), z(16+2*i+1))
	}
	// Stage 2: for each group g of 4 rows, B[4g+0] = unpacklo64(A[4g], A[4g+2]),
	// B[4g+1] = unpackhi64(A[4g], A[4g+2]), B[4g+2] = unpacklo64(A[4g+1], A[4g+3]),
	// B[4g+3] = unpackhi64(A[4g+1], A[4g+3]). 128-bit lane q of B[4g+m] holds
	// word 4q+m of rows 4g..4g+3.
	for g := 0; g < 4; g++ {
		a := func(i int) string { return z(16 + 4*g + i) }
		p("VPUNPCKLQDQ %s, %s, %s", a(2), a(0), z(4*g))
		p("VPUNPCKHQDQ %s, %s, %s", a(2), a(0), z(4*g+1))
		p("VPUNPCKLQDQ %s, %s, %s", a(3), a(1), z(4*g+2))
		p("VPUNPCKHQDQ %s, %s, %s", a(3), a(1), z(4*g+3))
	}
	// Stage 3: for each m, C0 = [B_m.0, B_m.1, B_{4+m}.0, B_{4+m}.1],
	// C1 = [B_m.2, B_m.3, B_{4+m}.2, B_{4+m}.3], C2, C3 likewise from
	// B_{8+m}, B_{12+m}; stage 4: W_{4q+m} = [B_m.q, B_{4+m}.q, B_{8+m}.q, B_{12+m}.q].
	for m := 0; m < 4; m++ {
		c := func(i int) string { return z(16 + 4*m + i) }
		p("VSHUFI32X4 $0x44, %s, %s, %s", z(4+m), z(m), c(0))
		p("VSHUFI32X4 $0xee, %s, %s, %s", z(4+m), z(m), c(1))
		p("VSHUFI32X4 $0x44, %s, %s, %s", z(12+m), z(8+m), c(2))
		p("VSHUFI32X4 $0xee, %s, %s, %s", z(12+m), z(8+m), c(3))
	}
	for m := 0; m < 4; m++ {
		c := func(i int) string { return z(16 + 4*m + i) }
		p("VSHUFI32X4 $0x88, %s, %s, %s", c(2), c(0), z(m))
		p("VSHUFI32X4 $0xdd, %s, %s, %s", c(2), c(0), z(4+m))
		p("VSHUFI32X4 $0x88, %s, %s, %s", c(3), c(1), z(8+m))
		p("VSHUFI32X4 $0xdd, %s, %s, %s", c(3), c(1), z(12+m))
	}
}

// schedule replaces W[t-16] (in Z(t mod 16)) by
// W[t] = σ1(W[t-2]) + W[t-7] + σ0(W[t-15]) + W[t-16].
func schedule(t int) {
	w := func(i int) string { return z((t + 16 - i) % 16) }
	T0, T1, T2 := z(24), z(25), z(26)
	// σ0(x) = ror7 ^ ror18 ^ shr3
	p("VPRORD $7, %s, %s", w(15), T0)
	p("VPRORD $18, %s, %s", w(15), T1)
	p("VPSRLD $3, %s, %s", w(15), T2)
	p("VPTERNLOGD $0x%02x, %s, %s, %s", xor3, T2, T1, T0)
	p("VPADDD %s, %s, %s", T0, w(16), w(16))
	p("VPADDD %s, %s, %s", w(7), w(16), w(16))
	// σ1(x) = ror17 ^ ror19 ^ shr10
	p("VPRORD $17, %s, %s", w(2), T0)
	p("VPRORD $19, %s, %s", w(2), T1)
	p("VPSRLD $10, %s, %s", w(2), T2)
	p("VPTERNLOGD $0x%02x, %s, %s, %s", xor3, T2, T1, T0)
	p("VPADDD %s, %s, %s", T0, w(16), w(16))
}

// round runs round t with the working variables a..h in registers v[0..7].
func round(t int, v [8]int) {
	a, bb, c, d, e, f, g, h := z(v[0]), z(v[1]), z(v[2]), z(v[3]), z(v[4]), z(v[5]), z(v[6]), z(v[7])
	W := z(t % 16)
	T0, T1, T2, T3 := z(27), z(28), z(29), z(30)
	// h += W[t] + K[t]
	p("VPADDD %s, %s, %s", W, h, h)
	p("VPADDD.BCST k256<>+%d(SB), %s, %s", 4*t, h, h)
	// h += Σ1(e) = ror6 ^ ror11 ^ ror25
	p("VPRORD $6, %s, %s", e, T0)
	p("VPRORD $11, %s, %s", e, T1)
	p("VPRORD $25, %s, %s", e, T2)
	p("VPTERNLOGD $0x%02x, %s, %s, %s", xor3, T2, T1, T0)
	p("VPADDD %s, %s, %s", T0, h, h)
	// h += Ch(e, f, g)
	p("VMOVDQA32 %s, %s", e, T3)
	p("VPTERNLOGD $0x%02x, %s, %s, %s", ch, g, f, T3)
	p("VPADDD %s, %s, %s", T3, h, h)
	// d += T1 (h); h = T1 + Σ0(a) + Maj(a, b, c)
	p("VPADDD %s, %s, %s", h, d, d)
	p("VPRORD $2, %s, %s", a, T0)
	p("VPRORD $13, %s, %s", a, T1)
	p("VPRORD $22, %s, %s", a, T2)
	p("VPTERNLOGD $0x%02x, %s, %s, %s", xor3, T2, T1, T0)
	p("VMOVDQA32 %s, %s", a, T3)
	p("VPTERNLOGD $0x%02x, %s, %s, %s", maj, c, bb, T3)
	p("VPADDD %s, %s, %s", T0, h, h)
	p("VPADDD %s, %s, %s", T3, h, h)
}

// pfAhead is how far ahead of a block blocks16 prefetches each lane's
// data: two blocks (on messages of one part in memory, against none:
// one block ahead +2-4%, two +13-15%, four +10-13%).
const pfAhead = 128

// prefetch writes prefetch16(ptrs *[16]*byte, lines int): PREFETCHT0 of
// the first `lines` 64-byte lines at each of the 16 pointers.
func prefetch() {
	b.WriteString("// func prefetch16(ptrs *[16]*byte, lines int)\n")
	b.WriteString("TEXT ·prefetch16(SB), NOSPLIT, $0-16\n")
	p("MOVQ ptrs+0(FP), DI")
	p("MOVQ lines+8(FP), CX")
	p("XORQ AX, AX")
	p("TESTQ CX, CX")
	p("JLE pfdone")
	label("pfloop")
	for j := 0; j < 16; j++ {
		p("MOVQ %d(DI), SI", 8*j)
		p("PREFETCHT0 (SI)(AX*1)")
	}
	p("ADDQ $64, AX")
	p("DECQ CX")
	p("JNZ pfloop")
	label("pfdone")
	p("RET")
	b.WriteString("\n")
}

func kernel() {
	b.WriteString("// func blocks16(state *[8][16]uint32, ptrs *[16]*byte, n int)\n")
	b.WriteString("TEXT ·blocks16(SB), NOSPLIT, $0-24\n")
	p("MOVQ state+0(FP), DX")
	p("MOVQ ptrs+8(FP), DI")
	p("MOVQ n+16(FP), CX")
	p("XORQ AX, AX")
	p("TESTQ CX, CX")
	p("JZ done")
	label("loop")
	transpose()
	for i := 0; i < 8; i++ {
		p("VMOVDQU32 %d(DX), %s", 64*i, z(16+i))
	}
	// v[i] is the register of working variable i (a..h); each round the
	// new a is the old h's register and everything else shifts by one.
	v := [8]int{16, 17, 18, 19, 20, 21, 22, 23}
	for t := 0; t < 64; t++ {
		if t >= 16 {
			schedule(t)
		}
		round(t, v)
		v = [8]int{v[7], v[0], v[1], v[2], v[3], v[4], v[5], v[6]}
	}
	// After 64 rounds (a multiple of 8) the names are back where they began.
	for i := 0; i < 8; i++ {
		p("VPADDD %d(DX), %s, %s", 64*i, z(v[i]), z(v[i]))
		p("VMOVDQU32 %s, %d(DX)", z(v[i]), 64*i)
	}
	p("ADDQ $64, AX")
	p("DECQ CX")
	p("JNZ loop")
	label("done")
	p("VZEROUPPER")
	p("RET")
}

func main() {
	b.WriteString("// Code generated by asmgen.go; DO NOT EDIT.\n\n//go:build amd64 && !purego\n\n#include \"textflag.h\"\n\n")
	for t, c := range k {
		fmt.Fprintf(&b, "DATA k256<>+%d(SB)/4, $0x%08x\n", 4*t, c)
	}
	b.WriteString("GLOBL k256<>(SB), RODATA|NOPTR, $256\n\n")
	// VPSHUFB reverses the bytes of every 32-bit word (in each 128-bit lane).
	for i := 0; i < 4; i++ {
		fmt.Fprintf(&b, "DATA bswapMask<>+%d(SB)/8, $0x0405060700010203\n", 16*i)
		fmt.Fprintf(&b, "DATA bswapMask<>+%d(SB)/8, $0x0c0d0e0f08090a0b\n", 16*i+8)
	}
	b.WriteString("GLOBL bswapMask<>(SB), RODATA|NOPTR, $64\n\n")
	kernel()
	b.WriteString("\n")
	prefetch()
	if err := os.WriteFile("x16_amd64.s", b.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}
