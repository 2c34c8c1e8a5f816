//go:build amd64 && !purego

package kernels

import "github.com/verdictnet/verdict/internal/tensor"

// The AVX2 kernels of Q4_1, Q5_0 and Q5_1 (asmgen_q5.go): one weight row
// against 1, 2 or 4 activation rows quantised to Q8 blocks, with the
// arithmetic of dotQ5 bit for bit (docs/determinism.md 4.2), exact for any
// int8 activation.

type q5Fn func(w *byte, q *int8, qs int, d *float32, ds int, nb int, out *float32)

//go:noescape
func q41Dot1(w *byte, q *int8, qs int, d *float32, ds int, nb int, out *float32)

//go:noescape
func q41Dot2(w *byte, q *int8, qs int, d *float32, ds int, nb int, out *float32)

//go:noescape
func q41Dot4(w *byte, q *int8, qs int, d *float32, ds int, nb int, out *float32)

//go:noescape
func q50Dot1(w *byte, q *int8, qs int, d *float32, ds int, nb int, out *float32)

//go:noescape
func q50Dot2(w *byte, q *int8, qs int, d *float32, ds int, nb int, out *float32)

//go:noescape
func q50Dot4(w *byte, q *int8, qs int, d *float32, ds int, nb int, out *float32)

//go:noescape
func q51Dot1(w *byte, q *int8, qs int, d *float32, ds int, nb int, out *float32)

//go:noescape
func q51Dot2(w *byte, q *int8, qs int, d *float32, ds int, nb int, out *float32)

//go:noescape
func q51Dot4(w *byte, q *int8, qs int, d *float32, ds int, nb int, out *float32)

// q5Dots[type][P]: type 0 Q4_1, 1 Q5_0, 2 Q5_1.
var q5Dots = [3][5]q5Fn{
	{1: q41Dot1, 2: q41Dot2, 4: q41Dot4},
	{1: q50Dot1, 2: q50Dot2, 4: q50Dot4},
	{1: q51Dot1, 2: q51Dot2, 4: q51Dot4},
}

// matQ5 is matMulAVX2's case of Q4_1, Q5_0 and Q5_1 weights; it declines
// (false) Acts without Q8 quantisations of the right size.
func matQ5(w *tensor.Tensor, a *Acts, out []float32, ld, r0, r1 int) bool {
	n, cols := a.N, a.Cols
	nb := cols / tensor.QK
	if cols%tensor.QK != 0 || a.Formats&ActQ8 == 0 || len(a.Q) < n*cols || len(a.D) < n*nb {
		return false
	}
	if useVNNI && (matMulVNNIWT(w, a, out, ld, r0, r1) || a.packed && matMulVNNIQ5(w, a, out, ld, r0, r1)) {
		return true
	}
	rs := w.RowSize()
	if r1*rs > len(w.Data) || len(out) < (n-1)*ld+r1 {
		return false
	}
	var fns *[5]q5Fn
	switch w.Type {
	case tensor.Q4_1:
		fns = &q5Dots[0]
	case tensor.Q5_0:
		fns = &q5Dots[1]
	case tensor.Q5_1:
		fns = &q5Dots[2]
	default:
		return false
	}
	var res [4]float32
	for p0 := 0; p0 < n; p0 += kChunkRows {
		p1 := min(n, p0+kChunkRows)
		for r := r0; r < r1; r++ {
			row := &w.Data[r*rs]
			for p := p0; p < p1; {
				P := 4
				switch {
				case p1-p >= 4:
				case p1-p >= 2:
					P = 2
				default:
					P = 1
				}
				fns[P](row, &a.Q[p*cols], cols, &a.D[p*nb], nb*4, nb, &res[0])
				for j := 0; j < P; j++ {
					out[(p+j)*ld+r] = res[j]
				}
				p += P
			}
		}
	}
	return true
}

// The VNNI prefill tiles of Q4_1, Q5_0 and Q5_1 (asmgen_q5.go) on the
// packVNNI layout.

//go:noescape
func vnni41R1G1(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni41R1G2(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni41R2G1(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni41R2G2(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni41R3G1(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni41R3G2(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni41R4G1(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni41R4G2(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni50R1G1(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni50R1G2(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni50R2G1(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni50R2G2(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni50R3G1(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni50R3G2(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni50R4G1(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni50R4G2(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni51R1G1(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni51R1G2(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni51R2G1(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni51R2G2(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni51R3G1(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni51R3G2(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni51R4G1(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

//go:noescape
func vnni51R4G2(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, mask int)

// vnniTilesQ5[type][R][G]: type 0 Q4_1, 1 Q5_0, 2 Q5_1.
var vnniTilesQ5 = [3][5][3]vnniFn{
	{1: {1: vnni41R1G1, 2: vnni41R1G2}, 2: {1: vnni41R2G1, 2: vnni41R2G2}, 3: {1: vnni41R3G1, 2: vnni41R3G2}, 4: {1: vnni41R4G1, 2: vnni41R4G2}},
	{1: {1: vnni50R1G1, 2: vnni50R1G2}, 2: {1: vnni50R2G1, 2: vnni50R2G2}, 3: {1: vnni50R3G1, 2: vnni50R3G2}, 4: {1: vnni50R4G1, 2: vnni50R4G2}},
	{1: {1: vnni51R1G1, 2: vnni51R1G2}, 2: {1: vnni51R2G1, 2: vnni51R2G2}, 3: {1: vnni51R3G1, 2: vnni51R3G2}, 4: {1: vnni51R4G1, 2: vnni51R4G2}},
}

// vnniQ5R is the number of weight rows of the Q4_1/Q5_0/Q5_1 VNNI tiles.
const vnniQ5R = 4

// matMulVNNIQ5 is matMulVNNI for Q4_1, Q5_0 and Q5_1 weights, on the same
// packed activations; it declines (false) anything else.
func matMulVNNIQ5(w *tensor.Tensor, a *Acts, out []float32, ld, r0, r1 int) bool {
	n, cols := a.N, a.Cols
	if !a.packed || n <= 0 || cols%tensor.QK != 0 {
		return false
	}
	var tiles *[5][3]vnniFn
	switch w.Type {
	case tensor.Q4_1:
		tiles = &vnniTilesQ5[0]
	case tensor.Q5_0:
		tiles = &vnniTilesQ5[1]
	case tensor.Q5_1:
		tiles = &vnniTilesQ5[2]
	default:
		return false
	}
	nb := cols / tensor.QK
	groups := (n + 15) / 16
	gs := nb * vnniBlk
	rs := w.RowSize()
	if nb == 0 || len(a.pk) < groups*gs || r0 < 0 || r1 < r0 || r1*rs > len(w.Data) || len(out) < (n-1)*ld+r1 {
		return false
	}
	var buf [vnniG * 16 * vnniBufLD]float32
	for rc := r0; rc < r1; rc += vnniRC {
		re := min(rc+vnniRC, r1)
		for g := 0; g < groups; g += vnniG {
			G := min(vnniG, groups-g)
			valid := min(16*G, n-16*g)
			mask := 1<<valid - 1
			for r := rc; r < re; r += vnniQ5R {
				R := min(vnniQ5R, re-r)
				tiles[R][G](&w.Data[r*rs], rs, &a.pk[g*gs], gs, nb, &buf[r-rc], vnniBufLD, mask)
			}
			for q := 0; q < valid; q++ {
				p := 16*g + q
				copy(out[p*ld+rc:p*ld+re], buf[q*vnniBufLD:q*vnniBufLD+re-rc])
			}
		}
	}
	return true
}
