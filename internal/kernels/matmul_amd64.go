//go:build amd64 && !purego

package kernels

import (
	"encoding/binary"
	"sync"

	"github.com/verdictnet/verdict/internal/tensor"
)

type tileFn func(w *float32, ws int, x *float32, xs int, n int, out *float32)

// tilesF32[R][P] computes R weight rows against P activation rows.
var tilesF32 = [7][5]tileFn{
	1: {1: f32Tile1x1, 2: f32Tile1x2, 3: f32Tile1x3},
	2: {1: f32Tile2x1, 2: f32Tile2x2, 3: f32Tile2x3},
	3: {1: f32Tile3x1, 2: f32Tile3x2, 3: f32Tile3x3},
}

// chunkBytes bounds the activation rows a prefill tile pass streams through
// for each group of weight rows, so that they stay in the L2 cache.
const chunkBytes = 256 << 10

// tileRows is the number of weight rows of a prefill tile: 3, the two-pass
// 3x3 tile (measured about 5% faster here than the one-pass 2x3 tile, which
// tileRows = 2 selects).
const tileRows = 3

// The prefill tiles in use: the AVX2 tilesF32 (tileRows x 3) or, where the
// CPU has AVX-512F, the zmm tilesZ (6 x 4: 24 accumulators; measured here
// about 30% faster than the AVX2 3x3 tile, and 3% faster than 4 x 4).
// Set by enableFast.
var (
	prefillTiles       = &tilesF32
	prefillR, prefillP = tileRows, 3
)

// matMulAVX2 is MatMul with the AVX2 kernels. It declines (returns false)
// any call whose shapes it has not checked to be in bounds; the reference
// then runs, with Go's bounds checks.
func matMulAVX2(w *tensor.Tensor, a *Acts, out []float32, ld, r0, r1 int) bool {
	cols, n := a.Cols, a.N
	if cols <= 0 || n <= 0 || cols != w.Cols() || r0 < 0 || r1 > w.Rows() || r0 >= r1 || len(a.F) < n*cols {
		return false
	}
	rs := w.RowSize()
	if rs <= 0 || len(w.Data) < r1*rs {
		return false
	}
	switch w.Type {
	case tensor.F32:
		var xo []float32
		if a.hasF32o {
			xo = a.f32o
		}
		matF32(F32Row(w.Data[:r1*rs]), 0, cols, a.F, xo, n, out, ld, r0, r1)
	case tensor.F16, tensor.BF16:
		matHalf(w, rs, cols, a.F, n, out, ld, r0, r1)
	case tensor.Q8_0, tensor.Q4_0:
		nb := cols / tensor.QK
		if cols%tensor.QK != 0 || len(a.Q) < n*cols || len(a.D) < n*nb {
			return false
		}
		if useVNNI && (matMulVNNIWT(w, a, out, ld, r0, r1) || matMulVNNI(w, a, out, ld, r0, r1)) || useQ2 && matMulQ2(w, a, out, ld, r0, r1) {
			return true
		}
		dot := q8Dot
		switch {
		case w.Type == tensor.Q8_0 && a.noMin128:
			dot = q8DotM
		case w.Type == tensor.Q4_0 && a.noMin128:
			dot = q4DotM
		case w.Type == tensor.Q4_0:
			dot = q4Dot
		}
		r := r0
		if a.noMin128 && n >= 4 && r1-r0 >= 2 {
			r = matQuadPairs(w, rs, a, out, ld, r0, r1)
		}
		tile := q8Tile4
		if w.Type == tensor.Q4_0 {
			tile = q4Tile4
		}
		var res [4]float32
		for ; r < r1; r++ {
			row := w.Data[r*rs : (r+1)*rs]
			p := 0
			if a.noMin128 {
				for ; p+4 <= n; p += 4 {
					tile(&row[0], &a.Q[p*cols], cols, &a.D[p*nb], nb, nb, &res[0])
					out[p*ld+r], out[(p+1)*ld+r], out[(p+2)*ld+r], out[(p+3)*ld+r] = res[0], res[1], res[2], res[3]
				}
			}
			for ; p < n; p++ {
				out[p*ld+r] = dot(&row[0], &a.Q[p*cols], &a.D[p*nb], nb)
			}
		}
	case tensor.Q4_K, tensor.Q5_K, tensor.Q6_K:
		return matK(w, a, out, ld, r0, r1)
	case tensor.Q4_1, tensor.Q5_0, tensor.Q5_1:
		return matQ5(w, a, out, ld, r0, r1)
	default:
		return false
	}
	return true
}

// matF32 computes rows [r0, r1) of a float32 matrix whose row `base` starts
// at wf[0] (row stride cols) against the n rows of x; xo, when not nil, is
// x again 32 bytes past a cache line, its rows f32bXStride(cols) floats
// apart (Acts.f32o).
func matF32(wf []float32, base, cols int, x, xo []float32, n int, out []float32, ld, r0, r1 int) {
	var res [24]float32
	_ = wf[(r1-base)*cols-1] // every row read is in wf
	if n == 1 {
		// One weight row at a time: a single sequential stream is what the
		// hardware prefetchers follow best (measured here: about twice the
		// bandwidth of four interleaved row streams).
		for r := r0; r < r1; r++ {
			f32Tile1x1(&wf[(r-base)*cols], cols, &x[0], cols, cols, &res[0])
			out[r] = res[0]
		}
		return
	}
	if prefillTiles == &tilesZ && useF32B {
		matF32Batch(wf, base, cols, x, xo, n, out, ld, r0, r1)
		return
	}
	tiles, TR, TP := prefillTiles, prefillR, prefillP
	chunk := chunkBytes / 4 / cols / TP * TP
	if chunk < TP {
		chunk = TP
	}
	for p0 := 0; p0 < n; p0 += chunk {
		p1 := min(n, p0+chunk)
		for r := r0; r < r1; {
			R := min(TR, r1-r)
			for p := p0; p < p1; {
				P := min(TP, p1-p)
				tiles[R][P](&wf[(r-base)*cols], cols, &x[p*cols], cols, cols, &res[0])
				for i := 0; i < R; i++ {
					for j := 0; j < P; j++ {
						out[(p+j)*ld+r+i] = res[i*P+j]
					}
				}
				p += P
			}
			r += R
		}
	}
}

var halfBufs sync.Pool

// matHalf converts F16 or BF16 weight rows to float32 (exactly), a few at a
// time, and runs the float32 tiles on them: the same bits as dotF16/dotBF16.
func matHalf(w *tensor.Tensor, rs, cols int, x []float32, n int, out []float32, ld, r0, r1 int) {
	rb := 2
	if n == 1 {
		rb = 8
	}
	need := rb * cols
	bp, _ := halfBufs.Get().(*[]float32)
	if bp == nil || cap(*bp) < need {
		s := make([]float32, need)
		bp = &s
	}
	buf := (*bp)[:need]
	for r := r0; r < r1; r += rb {
		re := min(r+rb, r1)
		for i := r; i < re; i++ {
			convertRow(w.Type, buf[(i-r)*cols:(i-r+1)*cols], w.Data[i*rs:(i+1)*rs])
		}
		matF32(buf, r, cols, x, nil, n, out, ld, r, re)
	}
	halfBufs.Put(bp)
}

func convertRow(t tensor.Type, dst []float32, src []byte) {
	m := len(dst) &^ 7
	if m > 0 {
		if t == tensor.F16 {
			cvtF16(&dst[0], &src[0], m)
		} else {
			cvtBF16(&dst[0], &src[0], m)
		}
	}
	for i := m; i < len(dst); i++ {
		h := binary.LittleEndian.Uint16(src[2*i:])
		if t == tensor.F16 {
			dst[i] = F16ToF32(h)
		} else {
			dst[i] = BF16ToF32(h)
		}
	}
}

var scaleBufs sync.Pool

// matQuadPairs runs the quantised 2x4 tiles (two weight rows against four
// activation rows per call, eight lanes of sequential block sums) over the
// row pairs of [r0, r1) and every activation row, and returns the first row
// it did not do (r1, or r1-1 when the count is odd). Activation rows beyond
// the last multiple of four go through the one-row kernels.
func matQuadPairs(w *tensor.Tensor, rs int, a *Acts, out []float32, ld, r0, r1 int) int {
	cols, n := a.Cols, a.N
	nb := cols / tensor.QK
	bs := w.Type.BlockBytes()
	quads := n / 4
	tile, dot := q8Tile2x4, q8DotM
	if w.Type == tensor.Q4_0 {
		tile, dot = q4Tile2x4, q4DotM
	}
	need := (quads + 1) * nb * 8
	bp, _ := scaleBufs.Get().(*[]float32)
	if bp == nil || cap(*bp) < need {
		s := make([]float32, need)
		bp = &s
	}
	buf := (*bp)[:need]
	dw, dx := buf[:nb*8], buf[nb*8:]
	// Lane i of a block: weight row i&1, activation row i>>1 of the quad.
	for q := 0; q < quads; q++ {
		for b := 0; b < nb; b++ {
			for i := 0; i < 8; i++ {
				dx[(q*nb+b)*8+i] = a.D[(4*q+i>>1)*nb+b]
			}
		}
	}
	var res [8]float32
	r := r0
	for ; r+2 <= r1; r += 2 {
		for b := 0; b < nb; b++ {
			d0 := F16ToF32(binary.LittleEndian.Uint16(w.Data[r*rs+b*bs:]))
			d1 := F16ToF32(binary.LittleEndian.Uint16(w.Data[(r+1)*rs+b*bs:]))
			for i := 0; i < 8; i += 2 {
				dw[b*8+i], dw[b*8+i+1] = d0, d1
			}
		}
		for q := 0; q < quads; q++ {
			tile(&w.Data[r*rs], rs, &a.Q[4*q*cols], cols, &dw[0], &dx[q*nb*8], nb, &res[0])
			for i := 0; i < 8; i++ {
				out[(4*q+i>>1)*ld+r+i&1] = res[i]
			}
		}
		for p := 4 * quads; p < n; p++ {
			out[p*ld+r] = dot(&w.Data[r*rs], &a.Q[p*cols], &a.D[p*nb], nb)
			out[p*ld+r+1] = dot(&w.Data[(r+1)*rs], &a.Q[p*cols], &a.D[p*nb], nb)
		}
	}
	scaleBufs.Put(bp)
	return r
}
