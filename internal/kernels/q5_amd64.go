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
