//go:build amd64 && !purego

package kernels

import (
	"encoding/binary"
	"slices"
	"sync"
	"unsafe"

	"github.com/verdictnet/verdict/internal/tensor"
)

// The AVX-512 VNNI path of the Q8_0, Q4_0 and Q5_0 matrix product for a
// few activation rows (Q8_0 and Q5_0 1 to 256, Q4_0 to 64: decode, the
// decode steps of a continuous batch, short prefill), with the lanes on
// the weight rows (asmgen_vnni.go, vnniWTTile):
// 16 weight rows per register, transposed per block in registers, against
// up to 8 activation rows per call whose quanta are VPDPBUSD's broadcast
// operand; against 9 or more rows, the groups of 8 go in pairs to
// vnniWT{9..16}{Q8,Q4,Q50} (asmgen_wt16.go), 8 + P rows per call. For
// Q8_0 decode (one activation row) this tile reads the weights from memory
// faster than the AVX2 kernel q8DotM's single stream (measured
// here, 8192x2048 from memory, one thread: about 40 against 34 GB/s per CPU
// second), with vnniWTQ8P1's prefetches of the next tile spread over each
// block step. The transposition and the weight scales are paid once per
// block and 16 weight rows, the rest (8 VPDPBUSD and 4 float operations
// per block, activation row and 16 weight rows) grows with n; the results
// of an activation row are 16 consecutive floats of out. The arithmetic
// per (weight row, activation row) is that of dotQ8_0, dotQ4_0 or dotQ5,
// bit for bit
// (docs/determinism.md 4.2), for any int8 activation quanta.
//
// Packed layout (packVNNIWT), per group g of 8 activation rows and block b,
// at g*gs + b*vnniWTBlk (gs = nb*vnniWTBlk):
//
//	[0, 32):    -Σ q_x over block b of row 8g+j (int32) at 4j; the tiles
//	            start block b's sums at that times 128 (Q8_0), 8 (Q4_0)
//	            or 16 (Q5_0)
//	[32, 64):   dx_b of row 8g+j (float32) at 4j
//	[64, 320):  the 32 quanta of block b of row 8g+j at 64+32j
//
// Rows past n in the last group are zero; the tiles never read them (P is
// the group's row count).

const (
	vnniWTBlk  = 320
	vnniWTRows = 16 // weight rows per tile
)

// The most activation rows for which matMulVNNIWT takes each weight type
// (PrepareTypes packs for it when any of the types takes n); beyond, the
// prefill tiles of vnni_amd64.go and q5_amd64.go run. Measured here (one
// thread, weights from memory, GMAC per CPU second), the vnniWT tiles
// (in pairs of groups from 9 rows) against the prefill tiles: Q8_0 (110m
// shapes) at 32 rows 290-310 against 155-217, at 40 to 128 rows 284-316
// against 157-287, at 256 305-307 against 277-285, at 512 297-307 against
// 289-319; Q4_0 (2048 x 768 and 768 x 2048) at 32 to 64 rows 283-304
// against 174-283, at 128 and 256 279-284 against 235-287; Q5_0 at 32 to
// 256 rows 267-275 against 203-218. Benchmarks change them to compare.
var (
	vnniWTMaxRowsQ8 = 256
	vnniWTMaxRowsQ4 = 64
	vnniWTMaxRowsQ5 = 256
)

//go:noescape
func vnniWTQ8P1(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

//go:noescape
func vnniWTQ8P2(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

//go:noescape
func vnniWTQ8P3(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

//go:noescape
func vnniWTQ8P4(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

//go:noescape
func vnniWTQ8P5(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

//go:noescape
func vnniWTQ8P6(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

//go:noescape
func vnniWTQ8P7(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

//go:noescape
func vnniWTQ8P8(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

//go:noescape
func vnniWTQ4P1(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

//go:noescape
func vnniWTQ4P2(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

//go:noescape
func vnniWTQ4P3(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

//go:noescape
func vnniWTQ4P4(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

//go:noescape
func vnniWTQ4P5(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

//go:noescape
func vnniWTQ4P6(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

//go:noescape
func vnniWTQ4P7(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

//go:noescape
func vnniWTQ4P8(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

//go:noescape
func vnniWTQ50P1(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

//go:noescape
func vnniWTQ50P2(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

//go:noescape
func vnniWTQ50P3(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

//go:noescape
func vnniWTQ50P4(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

//go:noescape
func vnniWTQ50P5(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

//go:noescape
func vnniWTQ50P6(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

//go:noescape
func vnniWTQ50P7(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

//go:noescape
func vnniWTQ50P8(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

type vnniWTFn func(w *byte, ws int, pk *byte, nb int, out *float32, ld int)

var (
	vnniWTTilesQ8  = [9]vnniWTFn{1: vnniWTQ8P1, 2: vnniWTQ8P2, 3: vnniWTQ8P3, 4: vnniWTQ8P4, 5: vnniWTQ8P5, 6: vnniWTQ8P6, 7: vnniWTQ8P7, 8: vnniWTQ8P8}
	vnniWTTilesQ4  = [9]vnniWTFn{1: vnniWTQ4P1, 2: vnniWTQ4P2, 3: vnniWTQ4P3, 4: vnniWTQ4P4, 5: vnniWTQ4P5, 6: vnniWTQ4P6, 7: vnniWTQ4P7, 8: vnniWTQ4P8}
	vnniWTTilesQ50 = [9]vnniWTFn{1: vnniWTQ50P1, 2: vnniWTQ50P2, 3: vnniWTQ50P3, 4: vnniWTQ50P4, 5: vnniWTQ50P5, 6: vnniWTQ50P6, 7: vnniWTQ50P7, 8: vnniWTQ50P8}
)

// packActsVNNIWT is packActs8 where the VNNI tiles are on: it packs
// rows when matMulVNNIWT takes any of the weight types ts against them.
func packActsVNNIWT(a *Acts, ts []tensor.Type, run func(n int, fn func(lo, hi int))) bool {
	for _, t := range ts {
		if a.N >= 1 && wtTakes(t, a.N) {
			if hasAMX && useAMX && amxRows(a.N) == a.N && allQ8(ts) && vnniWTPackable(a) {
				// The AMX tiles take every row: the vnniWT packing is
				// made only if a weight row tail asks for it.
				packAMX(a, run)
				a.pk8Once = new(sync.Once)
				return true
			}
			if !packVNNIWT(a, run) {
				return false
			}
			if hasAMX && useAMX && amxRows(a.N) > 0 && slices.Contains(ts, tensor.Q8_0) {
				packAMX(a, run)
			}
			return true
		}
	}
	return false
}

// wtTakes reports whether matMulVNNIWT takes weights of type t against n
// activation rows (packed for it).
func wtTakes(t tensor.Type, n int) bool {
	switch t {
	case tensor.Q8_0:
		return n <= vnniWTMaxRowsQ8
	case tensor.Q4_0:
		return n <= vnniWTMaxRowsQ4
	case tensor.Q5_0:
		return n <= vnniWTMaxRowsQ5
	}
	return false
}

// packVNNIWT fills a.pk8 from a.Q and a.D, its (group of 8 rows, block)
// units possibly in parallel through run (nil: here): a decode batch of
// 16 rows is two groups, too few to share among threads. It declines
// (false) shapes the tiles do not take.
func packVNNIWT(a *Acts, run func(n int, fn func(lo, hi int))) bool {
	if !vnniWTPackable(a) {
		return false
	}
	a.packedA = 0 // packAMX, where it runs, packs these rows again
	fillVNNIWT(a, run)
	return true
}

// allQ8 reports whether every type of ts is Q8_0.
func allQ8(ts []tensor.Type) bool {
	for _, t := range ts {
		if t != tensor.Q8_0 {
			return false
		}
	}
	return len(ts) > 0
}

// vnniWTPackable reports whether packVNNIWT takes a's shape.
func vnniWTPackable(a *Acts) bool {
	n, cols := a.N, a.Cols
	return n > 0 && cols > 0 && cols%tensor.QK == 0 && len(a.Q) >= n*cols && len(a.D) >= n*(cols/tensor.QK)
}

// fillVNNIWT is packVNNIWT's work on a shape it takes.
func fillVNNIWT(a *Acts, run func(n int, fn func(lo, hi int))) {
	n, cols := a.N, a.Cols
	nb := cols / tensor.QK
	groups := (n + 7) / 8
	gs := nb * vnniWTBlk
	a.pk8 = grow(a.pk8, groups*gs)
	q := unsafe.Slice((*byte)(unsafe.Pointer(&a.Q[0])), len(a.Q))
	fn := func(lo, hi int) { // units u = g*nb + b
		for u := lo; u < hi; {
			g := u / nb
			e := min(hi, (g+1)*nb)
			packVNNIWTBlocks(a, q, g, u-g*nb, e-g*nb, n, cols, nb, gs)
			u = e
		}
	}
	if run == nil {
		fn(0, groups*nb)
	} else {
		run(groups*nb, fn)
	}
}

// ensureVNNIWT makes a.pk8 where packActsVNNIWT left it for first use;
// safe for the concurrent matmuls that share a (the first one packs, the
// others wait for it).
func ensureVNNIWT(a *Acts) {
	if o := a.pk8Once; o != nil {
		o.Do(func() { fillVNNIWT(a, nil) })
	}
}

// packVNNIWTBlocks packs blocks [b0, b1) of group g of packVNNIWT.
func packVNNIWTBlocks(a *Acts, q []byte, g, b0, b1, n, cols, nb, gs int) {
	const (
		flip = 0x8080808080808080 // int8 -> uint8 + 128
		lo8  = 0x00ff00ff00ff00ff
		add4 = 0x0001000100010001
	)
	le := binary.LittleEndian
	for b := b0; b < b1; b++ {
		blk := a.pk8[g*gs+b*vnniWTBlk : g*gs+(b+1)*vnniWTBlk]
		if 8*g+8 > n {
			clear(blk)
		}
		for j := 0; j < 8 && 8*g+j < n; j++ {
			p := 8*g + j
			src := q[p*cols+b*tensor.QK : p*cols+(b+1)*tensor.QK]
			copy(blk[64+32*j:64+32*j+32], src)
			// Σ (q+128) over the block, eight bytes at a time in
			// 16-bit lanes (at most 4*2*255 each), as packVNNI.
			var us uint64
			for k := 0; k < 4; k++ {
				u := le.Uint64(src[8*k:]) ^ flip
				us += ((u&lo8 + u>>8&lo8) * add4) >> 48
			}
			sx := int32(us) - 128*tensor.QK
			le.PutUint32(blk[4*j:], uint32(-sx))
			le.PutUint32(blk[32+4*j:], math32bits(a.D[p*nb+b]))
		}
	}
}

// matMulVNNIWT is matMulAVX2's Q8_0 case with the vnniWT tiles, for Acts
// that PrepareTypes packed for them; matMulAVX2 has checked the shapes. The
// weight rows past the last multiple of 16 in [r0, r1) (at most 15) go
// through one more tile call whose results land in a scratch buffer
// (wtTail), so that these weights never need another packing.
// It declines (false) anything else.
func matMulVNNIWT(w *tensor.Tensor, a *Acts, out []float32, ld, r0, r1 int) bool {
	n, cols := a.N, a.Cols
	if !a.packed8 || n <= 0 || !wtTakes(w.Type, n) || cols%tensor.QK != 0 {
		return false
	}
	var tiles *[9]vnniWTFn
	var pairs *[9]vnniWT2Fn
	switch w.Type {
	case tensor.Q8_0:
		tiles, pairs = &vnniWTTilesQ8, &vnniWTPairsQ8
	case tensor.Q4_0:
		tiles, pairs = &vnniWTTilesQ4, &vnniWTPairsQ4
	case tensor.Q5_0:
		tiles, pairs = &vnniWTTilesQ50, &vnniWTPairsQ50
	default:
		return false
	}
	nb := cols / tensor.QK
	groups := (n + 7) / 8
	gs := nb * vnniWTBlk
	rs := w.RowSize()
	if nb == 0 || r1*rs > len(w.Data) || len(out) < (n-1)*ld+r1 {
		return false
	}
	full := (r1 - r0) / vnniWTRows
	amx := useAMX && w.Type == tensor.Q8_0 && a.packedA > 0 && full > 0 && len(a.pkA) >= a.packedA*nb*amxBlk
	if !amx || full*vnniWTRows < r1-r0 || amxRows(n) < n {
		ensureVNNIWT(a)
		if len(a.pk8) < groups*gs {
			return false
		}
	}
	r := r0
	if amx {
		// The activation rows packAMX packed (amxRows) on the AMX
		// tiles, the rest (at most amxMinRows-1) on the vnniWT ones.
		matMulAMX(w.Data, rs, a, nb, out, ld, r0, full)
		if m := amxRows(n); m < n {
			for ; r+vnniWTRows <= r1; r += vnniWTRows {
				wtTile(tiles, pairs, &w.Data[r*rs], rs, a.pk8[m/8*gs:], gs, nb, n-m, out[m*ld+r:], ld)
			}
		}
		r = r0 + full*vnniWTRows
	}
	for ; r+vnniWTRows <= r1; r += vnniWTRows {
		wtTile(tiles, pairs, &w.Data[r*rs], rs, a.pk8, gs, nb, n, out[r:], ld)
	}
	if r < r1 {
		wtTail(tiles, pairs, w.Data, rs, a.pk8, gs, nb, n, out, ld, r, r1)
	}
	return true
}

// wtTile runs 16 weight rows from w (row stride rs) against the n packed
// activation rows of pk: results of activation row p at out[p*ld:][:16].
func wtTile(tiles *[9]vnniWTFn, pairs *[9]vnniWT2Fn, w *byte, rs int, pk []byte, gs, nb, n int, out []float32, ld int) {
	groups := (n + 7) / 8
	if n > 8 && useWT16 { // groups in pairs
		for g := 0; g < groups; g += 2 {
			if g+1 == groups {
				tiles[min(8, n-8*g)](w, rs, &pk[g*gs], nb, &out[8*g*ld], ld)
				break
			}
			pairs[min(8, n-8*g-8)](w, rs, &pk[g*gs], gs, nb, &out[8*g*ld], ld)
		}
		return
	}
	for g := 0; g < groups; g++ {
		tiles[min(8, n-8*g)](w, rs, &pk[g*gs], nb, &out[8*g*ld], ld)
	}
}

// wtTailBuf is wtTail's scratch: the results of the 16 rows of a tile
// (stride 16) and, at the end of a matrix, its last rows padded with zeros.
type wtTailBuf struct {
	out []float32
	w   []byte
}

var wtTailBufs scratch[wtTailBuf]

// wtTail computes the m = r1-r (1 to 15) weight rows [r, r1) of data (row
// stride rs) with one tile of 16: the tile reads the 16 rows from r where
// data holds them (rows past r1 are read, never written: their results go
// to a scratch buffer, of which the first m columns are copied to out),
// else from a copy of the m rows padded with zero rows. Each result
// depends only on its weight and activation rows: the same bits as a full
// tile.
func wtTail(tiles *[9]vnniWTFn, pairs *[9]vnniWT2Fn, data []byte, rs int, pk []byte, gs, nb, n int, out []float32, ld, r, r1 int) {
	m := r1 - r
	buf := wtTailBufs.get()
	defer wtTailBufs.put(buf)
	buf.out = grow(buf.out, n*vnniWTRows)
	w := data[r*rs:]
	if len(w) < vnniWTRows*rs {
		buf.w = grow(buf.w, vnniWTRows*rs)
		copy(buf.w, data[r*rs:r1*rs])
		clear(buf.w[m*rs:])
		w = buf.w
	}
	wtTile(tiles, pairs, &w[0], rs, pk, gs, nb, n, buf.out, vnniWTRows)
	for p := 0; p < n; p++ {
		copy(out[p*ld+r:p*ld+r1], buf.out[p*vnniWTRows:p*vnniWTRows+m])
	}
}
