//go:build amd64 && !purego

package kernels

import (
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
// (amxBuf). The same bits as vnniWT16Q8: the integer sums are exact either
// way and the float arithmetic of each (weight row, activation row) is the
// same.
//
//go:noescape
func amxQ8x16(w *byte, ws int, pa *byte, nb int, out *float32, ld int, tiles int, sc *byte)

// hasAMX reports whether amxQ8x16 can run here: the CPU has AMX-TILE and
// AMX-INT8 (Intel Sapphire Rapids and later) beside the VNNI tiles that
// take the activation rows it leaves (matMulVNNIWT), and the kernel lets this
// process use the tile registers (Linux asks a process to request them:
// amxPermit). VERDICT_AMX=0 in the environment turns it off.
var hasAMX = hasVNNI && cpu.X86.HasAMXTile && cpu.X86.HasAMXInt8 && os.Getenv("VERDICT_AMX") != "0" && amxPermit()

// useAMX is whether matMulVNNIWT takes the AMX tiles where hasAMX (tests
// and benchmarks turn it off to compare).
var useAMX = true

// amxChunk is how many tiles of 16 weight rows one amxQ8x16 call runs
// against a group of 16 activation rows before the next group takes the
// same tiles: 8 tiles of 768 columns (104 KB) stay in the L2 cache for the
// groups of a prefill chunk.
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

// amxMinRows is the fewest activation rows of a last group that the AMX
// tiles take, padded to 16 with zero rows; fewer go to the vnniWT tiles,
// whose work grows with the rows where the tile unit's does not. With the
// weights in the core's caches the two are even from about 8 rows
// (BenchmarkQ8RowsCached n = 8: 134-142 GMAC/s padded against 136-139;
// an earlier session's BenchmarkQ8Rows, 2048 x 768: 8 rows padded 0.95x,
// 12 1.21x, 24 rows as 16 + 8 padded 154 cpu-GMAC/s against 166 as 16 +
// 8 on vnniWT); from memory, where a decode step reads them, the tile unit
// overlaps its arithmetic with the reads better (session 12, two threads,
// three alternated rounds: BenchmarkQ8RowsDRAM n = 8 11.6-11.9 GB/s
// padded against 10.0-10.4, n = 6 11.6-12.2 against 11.2-11.8;
// BenchmarkBatchStep on the 110m Q8_0 file n = 8 805-876 tok/s against
// 683-716; at n = 4 padding gained 4-5%, within the noise of some rounds).
const amxMinRows = 6

// amxRows is how many of n activation rows packAMX packs: every group of 16,
// and a last group of amxMinRows to 15.
func amxRows(n int) int {
	if n%16 >= amxMinRows {
		return n
	}
	return n - n%16
}

// packAMX packs the first amxRows(N) rows of a's quantised activations for
// amxQ8x16, 16 rows at a time (a last group of fewer padded with zero
// rows): per block of 32 columns (amxBlk bytes), the B operand of
// TDPBSSD, 8 rows of 16 dwords, dword n of row k the elements 4k..4k+3 of
// activation row n; then the 16 rows' block scales. Its (group, block)
// units run through run (nil: here), as packVNNIWT's.
func packAMX(a *Acts, run func(n int, fn func(lo, hi int))) {
	n, cols := amxRows(a.N), a.Cols
	nb := cols / tensor.QK
	groups := (n + 15) / 16
	a.pkA = grow(a.pkA, groups*nb*amxBlk)
	q := unsafe.Slice((*byte)(unsafe.Pointer(&a.Q[0])), len(a.Q))
	fn := func(lo, hi int) { // units u = g*nb + b
		for u := lo; u < hi; u++ {
			g, b := u/nb, u%nb
			blk := a.pkA[u*amxBlk : (u+1)*amxBlk]
			if 16*g+16 > n {
				clear(blk)
			}
			// The block as 9 rows of 16 dwords (amd64: little-endian,
			// unaligned loads and stores allowed).
			dst := (*[9][16]uint32)(unsafe.Pointer(&blk[0]))
			for i := 0; i < 16 && 16*g+i < n; i++ {
				p := 16*g + i
				src := (*[8]uint32)(unsafe.Pointer(&q[p*cols+b*tensor.QK : p*cols+(b+1)*tensor.QK][0]))
				for k := range src {
					dst[k][i] = src[k]
				}
				dst[8][i] = math32bits(a.D[p*nb+b])
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

// amxOut is the results of a padded last group: 16 rows of amxChunk tiles.
type amxOut [16 * 16 * amxChunk]float32

var amxOuts scratch[amxOut]

// matMulAMX runs the full tiles of weight rows [r0, r0+16*tiles) of a
// Q8_0 matrix (row stride rs, nb blocks) against the amxRows(a.N)
// activation rows packAMX packed; a padded last group's results go
// through a scratch buffer, of which its real rows are copied to out.
func matMulAMX(data []byte, rs int, a *Acts, nb int, out []float32, ld, r0, tiles int) {
	s := amxBufs.get()
	defer amxBufs.put(s)
	sc := amxBuf(s)
	n := amxRows(a.N)
	var pad *amxOut
	if n%16 != 0 {
		pad = amxOuts.get()
		defer amxOuts.put(pad)
	}
	for t := 0; t < tiles; t += amxChunk {
		c := min(amxChunk, tiles-t)
		r := r0 + 16*t
		for g := 0; g < a.packedA; g++ {
			if 16*g+16 <= n {
				amxQ8x16(&data[r*rs], rs, &a.pkA[g*nb*amxBlk], nb, &out[16*g*ld+r], ld, c, sc)
				continue
			}
			w := 16 * c
			amxQ8x16(&data[r*rs], rs, &a.pkA[g*nb*amxBlk], nb, &pad[0], w, c, sc)
			for p := 16 * g; p < n; p++ {
				copy(out[p*ld+r:p*ld+r+w], pad[(p-16*g)*w:(p-16*g+1)*w])
			}
		}
	}
}
