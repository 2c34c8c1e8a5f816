//go:build amd64 && !purego

package kernels

import (
	"encoding/binary"
	"unsafe"

	"github.com/verdictnet/verdict/internal/tensor"
)

// The AVX-512 VNNI path of the Q8_0 matrix product for a few activation
// rows (2 <= n <= vnni8MaxRows: the decode steps of a continuous batch).
// The tiles of vnni_amd64.go turn each signed weight dword into the
// unsigned operand of VPDPBUSD (a broadcast and an XOR per weight dword and
// weight row) and pay for a group of 16 activation rows, used or not. Here
// the activations are the unsigned operand instead (q_x+128, packed once
// per matmul) and the weights stay signed; the +128 comes back out through
// a lane whose quanta are all 128 (lane j minus that lane is isum_j
// exactly). With n <= 3 (S = 4) or n <= 7 (S = 2) activation rows, the 32
// bytes of a block are split among S parts of the register, so that a
// block costs 8/S VPDPBUSD per weight row instead of 8 (asmgen_vnni.go,
// vnni8Tile). The arithmetic per (weight row, activation row) is that of
// dotQ8_0, bit for bit (docs/determinism.md 4.2), for any int8 activation
// quanta (-128 included).
//
// Packed layout for S parts (L = 16/S lanes per part, K = 8/S dwords per
// part), per block b at b*(64*K+64):
//
//	[64*k, 64*k+64), k = 0..K-1: at 4*(h*L+j), bytes 4(h*K+k)..4(h*K+k)+3
//	                 of block b of row j (j < L-1), each plus 128 (as
//	                 uint8), and four bytes 128 for j = L-1
//	[64*K, 64*K+64): dx_b of row j (float32) at 4j; 0 from L-1 on
//
// Rows past n are zero (quanta and dx) and their results are dropped
// (masked off in the tiles' scatter).

// vnni8MaxRows is the most activation rows for which PrepareTypes packs
// for these tiles (Q8_0 weights): one register of 16 lanes holds 15 rows
// and the correction lane. From 16 rows the tiles of vnni_amd64.go run.
const vnni8MaxRows = 15

// vnni8Parts returns S for n activation rows: the most parts whose L-1
// lanes still hold n rows.
func vnni8Parts(n int) int {
	switch {
	case n <= 3:
		return 4
	case n <= 7:
		return 2
	}
	return 1
}

//go:noescape
func vnni8R1S1(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni8R2S1(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni8R3S1(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni8R4S1(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni8R5S1(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni8R6S1(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni8R1S2(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni8R2S2(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni8R3S2(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni8R4S2(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni8R5S2(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni8R6S2(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni8R1S4(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni8R2S4(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni8R3S4(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni8R4S4(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni8R5S4(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni8R6S4(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

var vnni8Tiles = [5][vnniR + 1]vnniFn{
	1: {1: vnni8R1S1, 2: vnni8R2S1, 3: vnni8R3S1, 4: vnni8R4S1, 5: vnni8R5S1, 6: vnni8R6S1},
	2: {1: vnni8R1S2, 2: vnni8R2S2, 3: vnni8R3S2, 4: vnni8R4S2, 5: vnni8R5S2, 6: vnni8R6S2},
	4: {1: vnni8R1S4, 2: vnni8R2S4, 3: vnni8R3S4, 4: vnni8R4S4, 5: vnni8R5S4, 6: vnni8R6S4},
}

// packActsVNNI8 is packActs8 where the VNNI tiles are on: it packs Q8_0
// rows for 2 <= n <= vnni8MaxRows.
func packActsVNNI8(a *Acts, run func(n int, fn func(lo, hi int))) bool {
	return a.N >= 2 && a.N <= vnni8MaxRows && packVNNI8(a)
}

// packVNNI8 fills a.pk8 from a.Q and a.D (one group: at most 15 rows). It
// declines (false) shapes the tiles do not take.
func packVNNI8(a *Acts) bool {
	n, cols := a.N, a.Cols
	if n <= 0 || n > vnni8MaxRows || cols <= 0 || cols%tensor.QK != 0 || len(a.Q) < n*cols || len(a.D) < n*(cols/tensor.QK) {
		return false
	}
	nb := cols / tensor.QK
	S := vnni8Parts(n)
	L, K := 16/S, 8/S
	bs := 64*K + 64
	a.pk8 = grow(a.pk8, nb*bs)
	q := unsafe.Slice((*byte)(unsafe.Pointer(&a.Q[0])), len(a.Q))
	le := binary.LittleEndian
	for b := 0; b < nb; b++ {
		blk := a.pk8[b*bs : (b+1)*bs]
		clear(blk)
		for j := 0; j < L; j++ {
			if j < n {
				le.PutUint32(blk[64*K+4*j:], math32bits(a.D[j*nb+b]))
			}
			for h := 0; h < S; h++ {
				for k := 0; k < K; k++ {
					at := blk[64*k+4*(h*L+j):]
					switch {
					case j == L-1:
						le.PutUint32(at, 0x80808080)
					case j < n:
						d := 4 * (h*K + k)
						le.PutUint32(at, le.Uint32(q[j*cols+b*tensor.QK+d:])^0x80808080)
					}
				}
			}
		}
	}
	return true
}

// matMulVNNI8 is matMulAVX2's Q8_0 case with the vnni8 tiles, for Acts that
// PrepareTypes packed for them; matMulAVX2 has checked the shapes. It
// declines (false) anything else.
func matMulVNNI8(w *tensor.Tensor, a *Acts, out []float32, ld, r0, r1 int) bool {
	n, cols := a.N, a.Cols
	if !a.packed8 || n <= 0 || n > vnni8MaxRows || cols%tensor.QK != 0 || w.Type != tensor.Q8_0 {
		return false
	}
	nb := cols / tensor.QK
	S := vnni8Parts(n)
	rs := w.RowSize()
	if nb == 0 || len(a.pk8) < nb*(64*8/S+64) || r1*rs > len(w.Data) {
		return false
	}
	tiles := &vnni8Tiles[S]
	mask := 1<<n - 1
	// Blocked as matMulVNNI: chunks of vnniRC weight rows scattered into
	// buf, then copied to out one activation row at a time.
	var buf [16 * vnniBufLD]float32
	for rc := r0; rc < r1; rc += vnniRC {
		re := min(rc+vnniRC, r1)
		for r := rc; r < re; r += vnniR {
			R := min(vnniR, re-r)
			tiles[R](&w.Data[r*rs], rs, &a.pk8[0], 0, nb, &buf[r-rc], vnniBufLD, mask)
		}
		for p := 0; p < n; p++ {
			copy(out[p*ld+rc:p*ld+re], buf[p*vnniBufLD:p*vnniBufLD+re-rc])
		}
	}
	return true
}
