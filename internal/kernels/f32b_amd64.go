//go:build amd64 && !purego

package kernels

import (
	"sync"
	"unsafe"
)

// The AVX-512F float32 tiles of the batch decode step and of prefill
// (asmgen_f32b.go): f32ZB6x{P}L{L} is f32Z6x{P} that, in each 16-element
// step, also prefetches L cache lines of the next block of 6 weight rows;
// with mode bits (f32bLoad, f32bStore) it starts from, or ends by storing,
// its raw accumulators at acc, for rows cut into column slices.

//go:noescape
func f32ZB6x1L1(w *float32, ws int, x *float32, xs int, n int, out *float32, ld int, pf uintptr, pfs int, acc *float32, mode int)

//go:noescape
func f32ZB6x2L1(w *float32, ws int, x *float32, xs int, n int, out *float32, ld int, pf uintptr, pfs int, acc *float32, mode int)

//go:noescape
func f32ZB6x3L1(w *float32, ws int, x *float32, xs int, n int, out *float32, ld int, pf uintptr, pfs int, acc *float32, mode int)

//go:noescape
func f32ZB6x4L1(w *float32, ws int, x *float32, xs int, n int, out *float32, ld int, pf uintptr, pfs int, acc *float32, mode int)

//go:noescape
func f32ZB6x1L2(w *float32, ws int, x *float32, xs int, n int, out *float32, ld int, pf uintptr, pfs int, acc *float32, mode int)

//go:noescape
func f32ZB6x2L2(w *float32, ws int, x *float32, xs int, n int, out *float32, ld int, pf uintptr, pfs int, acc *float32, mode int)

//go:noescape
func f32ZB6x3L2(w *float32, ws int, x *float32, xs int, n int, out *float32, ld int, pf uintptr, pfs int, acc *float32, mode int)

//go:noescape
func f32ZB6x4L2(w *float32, ws int, x *float32, xs int, n int, out *float32, ld int, pf uintptr, pfs int, acc *float32, mode int)

//go:noescape
func f32ZB6x1L3(w *float32, ws int, x *float32, xs int, n int, out *float32, ld int, pf uintptr, pfs int, acc *float32, mode int)

//go:noescape
func f32ZB6x2L3(w *float32, ws int, x *float32, xs int, n int, out *float32, ld int, pf uintptr, pfs int, acc *float32, mode int)

//go:noescape
func f32ZB6x3L3(w *float32, ws int, x *float32, xs int, n int, out *float32, ld int, pf uintptr, pfs int, acc *float32, mode int)

//go:noescape
func f32ZB6x4L3(w *float32, ws int, x *float32, xs int, n int, out *float32, ld int, pf uintptr, pfs int, acc *float32, mode int)

//go:noescape
func f32ZB6x1L6(w *float32, ws int, x *float32, xs int, n int, out *float32, ld int, pf uintptr, pfs int, acc *float32, mode int)

//go:noescape
func f32ZB6x2L6(w *float32, ws int, x *float32, xs int, n int, out *float32, ld int, pf uintptr, pfs int, acc *float32, mode int)

//go:noescape
func f32ZB6x3L6(w *float32, ws int, x *float32, xs int, n int, out *float32, ld int, pf uintptr, pfs int, acc *float32, mode int)

//go:noescape
func f32ZB6x4L6(w *float32, ws int, x *float32, xs int, n int, out *float32, ld int, pf uintptr, pfs int, acc *float32, mode int)

type tileBFn func(w *float32, ws int, x *float32, xs int, n int, out *float32, ld int, pf uintptr, pfs int, acc *float32, mode int)

// f32bL are the prefetch lines per step of the rows of tilesZB.
var f32bL = [...]int{1, 2, 3, 6}

// tilesZB[i][P]: 6 weight rows against P activation rows, prefetching
// f32bL[i] lines a step.
var tilesZB = [len(f32bL)][5]tileBFn{
	{1: f32ZB6x1L1, 2: f32ZB6x2L1, 3: f32ZB6x3L1, 4: f32ZB6x4L1},
	{1: f32ZB6x1L2, 2: f32ZB6x2L2, 3: f32ZB6x3L2, 4: f32ZB6x4L2},
	{1: f32ZB6x1L3, 2: f32ZB6x2L3, 3: f32ZB6x3L3, 4: f32ZB6x4L3},
	{1: f32ZB6x1L6, 2: f32ZB6x2L6, 3: f32ZB6x3L6, 4: f32ZB6x4L6},
}

// f32bLongCols: see matF32Batch.
const f32bLongCols = 1024

// f32bSliceCols is the longest column slice of one tile call: longer rows
// run as several calls, their accumulators carried in memory (see
// asmgen_f32b.go), so that the block's slice stays in the L1 cache between
// its activation groups (measured here, 768 x 2048 from memory, one
// thread, G multiply-adds per CPU second: 8 activation rows 49 -> 54, 16
// rows 60 -> 69, 32 rows 71 -> 72; slices of 512 or 700 columns were
// slower than 1024 at 16 to 128 rows, the calls' fixed cost).
const f32bSliceCols = 1024

// f32bSliceGroups is the most activation groups (calls per block) that
// run rows longer than f32bSliceCols in column slices: against more, the
// whole rows ran faster once the activation copies were padded
// (f32bXStride) and the prefetch stride finer (f32bPrefetch). Measured
// here, 768 x 2048 with the weights 32 bytes past a line, one thread, G
// multiply-adds per CPU second, whole rows against slices: 32 activation
// rows (8 groups) 83.3, 83.4 against 80.3, 82.2; 24 rows 68.4, 69.0
// against 71.0, 67.1; 128 rows 86.6, 86.5 against 86.2, 86.7 (16 rows,
// 4 groups, stay sliced: 82-86 against 73-79 whole).
var f32bSliceGroups = 4

// The tiles' mode bits (asmgen_f32b.go): start from the accumulators at
// acc, store them there instead of the sums.
const (
	f32bLoad  = 1
	f32bStore = 2
	f32bPeel  = 4
)

// f32bAccFloats holds the raw accumulators of every activation group of
// one pass of matF32Batch over sliced rows: at most chunkBytes/4/(
// f32bLongCols+1) activation rows, in groups of 4, 24 registers of 16
// floats a group.
const f32bAccFloats = (chunkBytes/4/(f32bSliceCols+1) + 3) / 4 * 24 * 16

var f32bAccs = sync.Pool{New: func() any { return new([f32bAccFloats]float32) }}

// useF32B is whether matF32 runs matF32Batch where the AVX-512F tiles are
// on (tests and benchmarks turn it off to compare).
var useF32B = true

// matF32Batch is matF32 for n >= 2 with the AVX-512F tiles: blocks of 6
// weight rows, each against every group of up to 4 activation
// rows in turn (the block stays in the L1/L2 cache between the groups;
// chunkBytes bounds the activation rows of one pass as in matF32), and the
// tiles of each block prefetch the next block, spread evenly over the
// block's calls, the groups in reverse order every other block. Rows
// longer than f32bSliceCols against 2 to f32bSliceGroups groups run in
// column slices, each slice of a block against every group
// before the next slice (against one group slicing saves nothing and adds
// the accumulators' stores and loads: 768 x 2048 at 4 activation rows
// went from 36 to 34 G multiply-adds per CPU second). The last
// block of [r0, r1) prefetches one line of itself (nothing of this range
// is left to prefetch); a block of fewer than 6 rows runs the f32Z tiles.
func matF32Batch(wf []float32, base, cols int, x, xo []float32, n int, out []float32, ld, r0, r1 int) {
	const TR, TP = 6, 4
	var res [TR * TP]float32
	chunk := max(TP, chunkBytes/4/cols/TP*TP)
	steps := cols / 16
	wp := uintptr(unsafe.Pointer(&wf[0]))
	// Rows 32 bytes past a cache line (all alike: a row is a whole number
	// of lines) run from their 9th element on, the first 8 peeled
	// (f32bPeel), against activation rows copied to the same offset: every
	// load aligned.
	off := 0
	if cols%16 == 0 && (wp+uintptr((r0-base)*cols*4))%64 == 32 && n > 1 {
		off = 8
	}
	// Column slices of the off..cols elements: sw columns each (a
	// multiple of 16), the last the rest.
	slices := (cols - off + f32bSliceCols - 1) / f32bSliceCols
	sw := ((cols-off+slices-1)/slices + 15) &^ 15
	var acc *[f32bAccFloats]float32
	if slices > 1 && n > TP {
		acc = f32bAccs.Get().(*[f32bAccFloats]float32)
		defer f32bAccs.Put(acc)
	}
	var xb *[]float32
	for p0 := 0; p0 < n; p0 += chunk {
		p1 := min(n, p0+chunk)
		calls := (p1 - p0 + TP - 1) / TP
		// xt: the activation rows of the f32ZB tiles, xt[(p-xp)*xs:],
		// xs floats apart, with their first element 32 bytes past a
		// cache line when off is 8 (a copy, its rows f32bXStride apart).
		xt, xp, xs := x, 0, cols
		if off > 0 && xo != nil {
			xt, xs = xo, f32bXStride(cols)
		} else if off > 0 {
			if xb == nil {
				xb = f32bXBufs.Get().(*[]float32)
				defer f32bXBufs.Put(xb)
			}
			xs = f32bXStride(cols)
			need := (p1-p0)*xs + 32
			if cap(*xb) < need {
				*xb = make([]float32, need)
			}
			b := (*xb)[:need]
			a := int((96 - uintptr(unsafe.Pointer(&b[0]))%64) % 64 / 4) // 32 bytes past a line
			xt, xp = b[a:a+(p1-p0)*xs], p0
			for p := p0; p < p1; p++ {
				copy(xt[(p-p0)*xs:(p-p0)*xs+cols], x[p*cols:(p+1)*cols])
			}
		}
		sliced := slices > 1 && calls > 1 && calls <= f32bSliceGroups
		// Lines of a block per step of its calls, rounded up, and the
		// tiles that prefetch at least that many (without f32bPfFine),
		// or f32bPrefetch's stride and tiles.
		per := (TR*cols*4 + 63) / 64
		if steps > 0 {
			per = (per + calls*steps - 1) / (calls * steps)
		}
		li := 0
		for li+1 < len(f32bL) && f32bL[li] < per {
			li++
		}
		pfs := 64 * min(per, f32bL[li])
		if f32bPfFine {
			li, pfs = f32bPrefetch(TR*cols*4, calls*f32bSteps(cols, off, sw, sliced))
		}
		// Rows longer than f32bLongCols against many activation groups
		// (prefill) run without the prefetches: a block of 6 such rows
		// fills the L1 cache by itself, and the next one prefetched into
		// it evicted the block between its groups (measured here, 768 x
		// 2048 against 256 rows: 66 GMAC/s per CPU second with the
		// prefetches, 76 without; at 16 rows 59 and 58, at 4 rows 34
		// and 29).
		long := cols > f32bLongCols && per == 1
		for r := r0; r < r1; r += TR {
			R := min(TR, r1-r)
			if R < TR {
				for p := p0; p < p1; p += TP {
					P := min(TP, p1-p)
					tilesZ[R][P](&wf[(r-base)*cols], cols, &x[p*cols], cols, cols, &res[0])
					for j := 0; j < P; j++ {
						o := out[(p+j)*ld+r : (p+j)*ld+r+R]
						for i := range o {
							o[i] = res[i*P+j]
						}
					}
				}
				continue
			}
			// The first line of the next block (its rows are contiguous),
			// or, the last block of the range, of this block, again and
			// again.
			pf, step, tiles := (wp+uintptr((r+TR-base)*cols*4))&^63, pfs, &tilesZB[li]
			if r+TR >= r1 || steps == 0 || long {
				pf, step, tiles = uintptr(unsafe.Pointer(&wf[(r-base)*cols]))&^63, 0, &tilesZB[0]
			}
			if !sliced {
				// The groups in turn, backwards every other block: a
				// block's first group is the last one's, whose activation
				// rows are still in the L1 cache (the rows of all groups
				// are not: 16 rows of 768 floats are 48 KB). Measured
				// here, one thread, weights from memory, G multiply-adds
				// per CPU second: 768 x 768 at 8, 16, 32 activation rows
				// 65 -> 71, 80 -> 85, 88 -> 92; 2048 x 768 67 -> 74, 80.5
				// -> 85.7, 88 -> 92.
				mode := 0
				if off > 0 {
					mode = f32bPeel
				}
				for k := 0; k < calls; k++ {
					g := k
					if (r-r0)/TR%2 == 1 {
						g = calls - 1 - k
					}
					p := p0 + g*TP
					P := min(TP, p1-p)
					_ = out[(p+P-1)*ld+r+TR-1] // the tile writes out[(p+j)*ld+r+i]
					tiles[P](&wf[(r-base)*cols+off], cols, &xt[(p-xp)*xs+off], xs, cols-off, &out[p*ld+r], ld, pf, step, nil, mode)
					pf += uintptr((cols - off) / 16 * step)
				}
				continue
			}
			// Column slices, each against every group before the next.
			for c0 := off; c0 < cols; c0 += sw {
				c1 := min(cols, c0+sw)
				mode := 0
				if c0 > off {
					mode |= f32bLoad
				} else if off > 0 {
					mode |= f32bPeel
				}
				if c1 < cols {
					mode |= f32bStore
				}
				for p := p0; p < p1; p += TP {
					P := min(TP, p1-p)
					a := &acc[(p-p0)/TP*TR*TP*16]
					_ = out[(p+P-1)*ld+r+TR-1] // the tile writes out[(p+j)*ld+r+i]
					tiles[P](&wf[(r-base)*cols+c0], cols, &xt[(p-xp)*xs+c0], xs, c1-c0, &out[p*ld+r], ld, pf, step, a, mode)
					pf += uintptr((c1 - c0) / 16 * step)
				}
			}
		}
	}
}

func init() { prepF32o = f32bPrepO }

// f32bPrepO fills a.f32o (Acts.PrepareTypes, F32 weights) where
// matF32Batch runs: once per prepared input instead of once per call of
// matF32Batch (a matrix product runs as several, on the threads' parts of
// its rows; measured here, 768 x 768 in 8 parts, weights 32 bytes off, G
// multiply-adds per CPU second: 16 activation rows 79-83 with a copy per
// part, 128 rows 93-94 against 103 aligned).
func f32bPrepO(a *Acts) bool {
	if prefillTiles != &tilesZ || !useF32B || a.N < 2 || a.Cols%16 != 0 {
		return false
	}
	xs := f32bXStride(a.Cols)
	need := a.N*xs + 32
	if cap(a.f32o) < need {
		a.f32o = make([]float32, need)
	}
	b := a.f32o[:need]
	o := int((96 - uintptr(unsafe.Pointer(&b[0]))%64) % 64 / 4) // 32 bytes past a line
	a.f32o = b[o : o+a.N*xs]
	for q := range a.N {
		copy(a.f32o[q*xs:q*xs+a.Cols], a.F[q*a.Cols:(q+1)*a.Cols])
	}
	return true
}

// f32bXStride is the row stride, in floats, of matF32Batch's copies of
// activation rows of cols floats (Acts.f32o and its own): 16 floats (one
// cache line) more than cols where a row is a whole number of 4 KB pages,
// so that the activation rows of a tile call do not all map to the same
// L1 cache sets as one another and as the weight rows (the FFN down
// projection's rows of 2048 floats are 8 KB apart; the L1 cache here has
// 64 sets of 64-byte lines, 4 KB a way). Measured here, 768 x 2048 with
// the weights 32 bytes past a line (BenchmarkF32BatchMisaligned against
// ...NoPad), one thread, G multiply-adds per CPU second: 16 activation
// rows 69-73 -> 74-80, 32 rows 77-80 -> 84-88.
func f32bXStride(cols int) int {
	if f32bPadX && cols*4%4096 == 0 {
		return cols + 16
	}
	return cols
}

// f32bPadX is whether f32bXStride pads (benchmarks turn it off to
// compare).
var f32bPadX = true

// f32bXBufs holds matF32Batch's copies of activation rows (*[]float32).
var f32bXBufs = sync.Pool{New: func() any { return new([]float32) }}

// f32bPfFine is whether matF32Batch's prefetch cursor advances by
// f32bPrefetch's stride (benchmarks turn it off to compare with whole
// lines a step, rounded up).
var f32bPfFine = true

// f32bSteps is the number of 16-element main-loop steps of one activation
// group's calls on a block (the tiles prefetch in those): its columns from
// off on, in slices of sw where sliced.
func f32bSteps(cols, off, sw int, sliced bool) int {
	if !sliced {
		return (cols - off) / 16
	}
	n := 0
	for c0 := off; c0 < cols; c0 += sw {
		n += (min(cols, c0+sw) - c0) / 16
	}
	return n
}

// f32bPrefetch chooses the prefetches of a block of the given bytes
// spread over steps main-loop steps of its calls: the tiles tilesZB[li]
// prefetch f32bL[li] lines at the cursor each step, which then advances
// by pfs bytes. pfs is the block's bytes a step rounded to the nearest
// multiple of 32 (at least 32), so that the calls of a block cover the
// next block about once: whole lines a step, rounded up, went up to a
// third past it (1.5 lines a step at 16 activation rows) and prefetched
// lines of the block after that. The cursor starts on a line, so it stays
// 0 or 32 bytes into one, and a step at 32 bytes into a line covers its
// pfs bytes with (pfs+32)/64 lines. Measured here, weights 32 bytes past a
// line, one thread, 16 activation rows, G multiply-adds per CPU second:
// 768 x 2048 75 -> 79, 768 x 768 88.5-89 -> 90-91, 2048 x 768 89-90 -> 91.
func f32bPrefetch(bytes, steps int) (li, pfs int) {
	if steps <= 0 {
		return 0, 64
	}
	pfs = max(32, (bytes/steps+16)&^31)
	lines := (pfs + pfs%64) / 64
	for li+1 < len(f32bL) && f32bL[li] < lines {
		li++
	}
	if f32bL[li] < lines {
		pfs = 64 * f32bL[li]
	}
	return li, pfs
}
