//go:build amd64 && !purego

package kernels

import (
	"encoding/binary"
	"math"
	"unsafe"

	"github.com/verdictnet/verdict/internal/tensor"
)

// The AVX-512 VNNI path of the K types for any number of activation rows
// (1 to kwtMaxRows: decode, the decode steps of a continuous batch and
// prefill chunks), with the lanes on the weight rows (asmgen_kwt.go,
// kwtTile), as vnniwt_amd64.go does for Q8_0, Q4_0 and Q5_0: 16 weight rows
// per register, transposed per super-block in registers, against up to 8
// activation rows per call (one group; matMulKWT calls each tile once per
// group, or, for Q4_K and Q6_K, the 16-row tiles of kwt16_amd64.go once per
// two whole groups) whose quanta are VPDPBUSD's broadcast operand. The
// headers (d, dmin, scales) are unpacked once per super-block and 16 weight
// rows; the one-row AVX2
// kernels (k_amd64.go) unpack them per row and sum each row's lanes
// horizontally per super-block. The arithmetic per (weight row, activation
// row) is that of dotK, bit for bit (docs/determinism.md 4.2), for any int8
// activation quanta.
//
// Packed layout (packKWT), per group g of P <= 8 activation rows (8 but in
// the last group) and super-block b, at g*8*nb*kwtRow + b*P*kwtRow, for row
// 8g+j:
//
//	[256j, 256j+256):          its 256 quanta of super-block b
//	[256P+4j, 256P+4j+4):      its dx_b (float32)
//	[260P+16j, 260P+16j+16):   its 8 sums of 32 quanta (int16)
//	[276P+32j, 276P+32j+32):   its 16 sums of 16 quanta (int16)
//
// (Padding a short group to 8 rows spread its data over twice the cache
// lines: measured 5-15% slower at n = 4.)

const (
	kwtRow  = 308 // packed bytes per activation row and super-block
	kwtRows = 16  // weight rows per tile
	kwtP    = 8   // activation rows per tile call

	// kwtScratch is the bytes of scratch a tile call takes (scales and
	// mins of the current super-block; from 5 rows on, the float
	// accumulators: 16 of them in the 16-row tiles, kwt16_amd64.go).
	kwtScratch = 2624
)

// kwtMaxRows is the most activation rows for which PrepareTypes packs for
// these tiles (beyond it, for the kvnni tiles of k_vnni_amd64.go): every
// n, since they are faster than the kvnni tiles at every n measured, 1 to
// 128 (BenchmarkKBatch, docs/benchmarks.md: 1.02-2.9x from 17 rows on). A
// variable so that the benchmarks can compare the two paths.
var kwtMaxRows = math.MaxInt

// kwtChunkBytes bounds the packed activation bytes of a pass of
// matMulKWT (a multiple of kwtP rows, at least kwtP) against each tile of
// 16 weight rows, so that they stay in the L2 cache while the weight tiles
// go by. Measured (BenchmarkKWTChunk, Zen 5, 1 MB L2 a core): 320 KB,
// 128 rows of 2048 columns or 32 of 8192, was the best pass or within 2%
// of it for Q4_K and Q6_K on both FFN shapes at 64 and 128 rows, where
// passes of 20 KB lose 7-15%.
var kwtChunkBytes = 320 << 10

type kwtFn func(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt4P1(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt4P2(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt4P3(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt4P4(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt5P1(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt5P2(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt5P3(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt5P4(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt6P1(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt6P2(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt6P3(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt6P4(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt4P5(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt4P6(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt4P7(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt4P8(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt5P5(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt5P6(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt5P7(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt5P8(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt6P5(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt6P6(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt6P7(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt6P8(w *byte, ws int, pk *byte, nb int, out *float32, ld int, scr *byte)

// kwtTiles[type][P]: type 0 Q4_K, 1 Q5_K, 2 Q6_K (nil: not written).
var kwtTiles = [3][kwtP + 1]kwtFn{
	{1: kwt4P1, 2: kwt4P2, 3: kwt4P3, 4: kwt4P4, 5: kwt4P5, 6: kwt4P6, 7: kwt4P7, 8: kwt4P8},
	{1: kwt5P1, 2: kwt5P2, 3: kwt5P3, 4: kwt5P4, 5: kwt5P5, 6: kwt5P6, 7: kwt5P7, 8: kwt5P8},
	{1: kwt6P1, 2: kwt6P2, 3: kwt6P3, 4: kwt6P4, 5: kwt6P5, 6: kwt6P6, 7: kwt6P7, 8: kwt6P8},
}

// packKWT fills a.pkKW from a.KQ, a.KD, a.KS and a.KS32, its groups of
// kwtP rows handed to run (when not nil) as packK does. It declines (false)
// shapes the tiles do not take.
func packKWT(a *Acts, run func(n int, fn func(lo, hi int))) bool {
	n, cols := a.N, a.Cols
	if n <= 0 || cols <= 0 || cols%tensor.QKK != 0 || len(a.KQ) < n*cols || len(a.KD) < n*cols/tensor.QKK || len(a.KS) < n*cols/16 || len(a.KS32) < n*cols/32 {
		return false
	}
	nb := cols / tensor.QKK
	a.pkKW = grow(a.pkKW, n*nb*kwtRow)
	q := unsafe.Slice((*byte)(unsafe.Pointer(&a.KQ[0])), len(a.KQ))
	groups := (n + kwtP - 1) / kwtP
	fn := func(lo, hi int) {
		for g := lo; g < hi; g++ {
			packKWTGroup(a, q, g, nb)
		}
	}
	if run == nil || groups == 1 {
		fn(0, groups)
	} else {
		run(groups, fn)
	}
	return true
}

// packKWTGroup packs group g (rows kwtP*g and up) of packKWT.
func packKWTGroup(a *Acts, q []byte, g, nb int) {
	n, cols := a.N, a.Cols
	le := binary.LittleEndian
	P := min(kwtP, n-kwtP*g)
	for b := 0; b < nb; b++ {
		off := g*kwtP*nb*kwtRow + b*P*kwtRow
		blk := a.pkKW[off : off+P*kwtRow]
		for j := 0; j < P; j++ {
			p := kwtP*g + j
			copy(blk[256*j:256*j+256], q[p*cols+b*tensor.QKK:p*cols+(b+1)*tensor.QKK])
			le.PutUint32(blk[256*P+4*j:], math32bits(a.KD[p*nb+b]))
			for t := 0; t < 8; t++ {
				le.PutUint16(blk[260*P+16*j+2*t:], uint16(a.KS32[p*cols/32+8*b+t]))
			}
			for t := 0; t < 16; t++ {
				le.PutUint16(blk[276*P+32*j+2*t:], uint16(a.KS[p*cols/16+16*b+t]))
			}
		}
	}
}

// matMulKWT is matK with the kwt tiles, for Acts that PrepareTypes packed
// for them; the weight rows past the last multiple of 16 in [r0, r1) go
// through matKTiles. It declines (false) anything else.
func matMulKWT(w *tensor.Tensor, a *Acts, out []float32, ld, r0, r1, ti int) bool {
	n, cols := a.N, a.Cols
	if !a.packedKW || n <= 0 || cols%tensor.QKK != 0 {
		return false
	}
	tiles := &kwtTiles[ti]
	if tiles[1] == nil {
		return false
	}
	nb := cols / tensor.QKK
	groups := (n + kwtP - 1) / kwtP
	gs := kwtP * nb * kwtRow
	rs := w.RowSize()
	if nb == 0 || len(a.pkKW) < n*nb*kwtRow || r0 < 0 || r1 < r0 || r1*rs > len(w.Data) || len(out) < (n-1)*ld+r1 {
		return false
	}
	scr := kwtScr.get()
	defer kwtScr.put(scr)
	// The groups go in passes of at most kwtChunkBytes over all the
	// weight tiles (each result depends on its own weight rows and
	// activation row only: the order changes no bit).
	// Two whole groups in one pass go to the 16-row tile (passes of at
	// least two groups, an even number where it exists).
	rEnd := r0 + (r1-r0)/kwtRows*kwtRows
	gc := max(1, kwtChunkBytes/gs)
	t16 := kwt16Tiles[ti]
	if !useKWT16 {
		t16 = nil
	}
	if t16 != nil {
		gc = max(2, gc&^1)
	}
	for g0 := 0; g0 < groups; g0 += gc {
		g1 := min(groups, g0+gc)
		for r := r0; r < rEnd; r += kwtRows {
			for g := g0; g < g1; g++ {
				if t16 != nil && g+1 < g1 && n-kwtP*g >= 2*kwtP {
					t16(&w.Data[r*rs], rs, &a.pkKW[g*gs], gs, nb, &out[kwtP*g*ld+r], ld, &scr[0])
					g++
					continue
				}
				P := min(kwtP, n-kwtP*g)
				tiles[P](&w.Data[r*rs], rs, &a.pkKW[g*gs], nb, &out[kwtP*g*ld+r], ld, &scr[0])
			}
		}
	}
	if r := rEnd; r < r1 {
		return matKTiles(w, a, out, ld, r, r1, ti)
	}
	return true
}
