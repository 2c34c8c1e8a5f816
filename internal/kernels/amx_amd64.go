//go:build amd64 && !purego

package kernels

import (
	"encoding/binary"
	"os"
	"unsafe"

	"golang.org/x/sys/cpu"

	"github.com/verdictnet/verdict/internal/tensor"
)

// amxQ8x16 (asmgen_amx.go) computes what vnniWT16Q8 does with the integer
// products on the AMX tile unit, for `tiles` consecutive tiles of 16 Q8_0
// weight rows (row stride ws, nb blocks) against the 16 activation rows
// packAMX packed at pa: tile t's results of activation row p at
// out[p*ld+16*t:][:16]. sc is amxScratchBytes of 64-byte-aligned scratch
// (amxBuf). The
// same bits as vnniWT16Q8: the integer sums are exact either way and the
// float arithmetic of each (weight row, activation row) is the same.
//
//go:noescape
func amxQ8x16(w *byte, ws int, pa *byte, nb int, out *float32, ld int, tiles int, sc *byte)

// hasAMX reports whether amxQ8x16 can run here: the CPU has AMX-TILE and
// AMX-INT8 (Intel Sapphire Rapids and later) beside the VNNI tiles it
// shares its packing and transposition with, and the kernel lets this
// process use the tile registers (Linux asks a process to request them:
// amxPermit). VERDICT_AMX=0 in the environment turns it off.
var hasAMX = hasVNNI && cpu.X86.HasAMXTile && cpu.X86.HasAMXInt8 && os.Getenv("VERDICT_AMX") != "0" && amxPermit()

// useAMX is whether matMulVNNIWT takes the AMX tiles where hasAMX (tests
// and benchmarks turn it off to compare).
var useAMX = true

// amxChunk is how many tiles of 16 weight rows one amxQ8x16 call runs
// against a pair of activation groups before the next pair takes the same
// tiles: 8 tiles of 768 columns (104 KB) stay in the L2 cache for the
// pairs of a prefill chunk.
const amxChunk = 8

// amxScratchBytes is amxQ8x16's scratch: two 16 x 16 int32 results, two
// blocks' 16 weight scales.
const amxScratchBytes = 2176

// amxBlk is the bytes of one block of packAMX's layout (asmgen_amx.go).
const amxBlk = 576

// amxScratch is amxQ8x16's scratch, aligned inside (amxBuf).
type amxScratch [amxScratchBytes + 64]byte

var amxBufs scratch[amxScratch]

// amxBuf returns the 64-byte-aligned scratch of s.
func amxBuf(s *amxScratch) *byte {
	off := (64 - int(uintptr(unsafe.Pointer(&s[0]))&63)) & 63
	return &s[off]
}

// packAMX packs the first 16*(N/16) rows of a's quantised activations
// for amxQ8x16, 16 rows at a time: per block of 32 columns (amxBlk bytes),
// the B operand of TDPBSSD, 8 rows of 16 dwords, dword n of row k the
// elements 4k..4k+3 of activation row n; then the 16 rows' block scales.
// Its (group, block) units run through run (nil: here), as packVNNIWT's.
func packAMX(a *Acts, run func(n int, fn func(lo, hi int))) {
	n, cols := a.N, a.Cols
	nb := cols / tensor.QK
	groups := n / 16
	a.pkA = grow(a.pkA, groups*nb*amxBlk)
	q := unsafe.Slice((*byte)(unsafe.Pointer(&a.Q[0])), len(a.Q))
	fn := func(lo, hi int) { // units u = g*nb + b
		le := binary.LittleEndian
		for u := lo; u < hi; u++ {
			g, b := u/nb, u%nb
			blk := a.pkA[u*amxBlk : (u+1)*amxBlk]
			for i := 0; i < 16; i++ {
				p := 16*g + i
				src := q[p*cols+b*tensor.QK : p*cols+(b+1)*tensor.QK]
				for k := 0; k < 8; k++ {
					le.PutUint32(blk[64*k+4*i:], le.Uint32(src[4*k:]))
				}
				le.PutUint32(blk[512+4*i:], math32bits(a.D[p*nb+b]))
			}
		}
	}
	if run == nil {
		fn(0, groups*nb)
	} else {
		run(groups*nb, fn)
	}
	a.packedA = groups
}

// matMulAMX runs the full tiles of weight rows [r0, r0+16*tiles) of a
// Q8_0 matrix (row stride rs, nb blocks) against the a.packedA groups of
// 16 activation rows packAMX packed.
func matMulAMX(data []byte, rs int, a *Acts, nb int, out []float32, ld, r0, tiles int) {
	s := amxBufs.get()
	defer amxBufs.put(s)
	sc := amxBuf(s)
	for t := 0; t < tiles; t += amxChunk {
		c := min(amxChunk, tiles-t)
		r := r0 + 16*t
		for g := 0; g < a.packedA; g++ {
			amxQ8x16(&data[r*rs], rs, &a.pkA[g*nb*amxBlk], nb, &out[16*g*ld+r], ld, c, sc)
		}
	}
}
