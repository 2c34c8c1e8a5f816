//go:build amd64 && !purego

package kernels

// vnniWT16Q8 (asmgen_wt16.go) is vnniWTQ8P8 for the 16 activation rows of
// two packed groups (group stride gs bytes) in one call: each block of the
// 16 weight rows is loaded, transposed and made unsigned once for all 16
// activation rows, not once per group of 8. vnniWT{8+P}Q8 (P = 1..7) is the
// same with P rows in the second group; vnniWT{9..16}Q4 and Q50 the same
// for Q4_0 and Q5_0 weights.
//
//go:noescape
func vnniWT16Q8(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

//go:noescape
func vnniWT9Q8(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

//go:noescape
func vnniWT10Q8(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

//go:noescape
func vnniWT11Q8(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

//go:noescape
func vnniWT12Q8(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

//go:noescape
func vnniWT13Q8(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

//go:noescape
func vnniWT14Q8(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

//go:noescape
func vnniWT15Q8(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

//go:noescape
func vnniWT9Q4(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

//go:noescape
func vnniWT10Q4(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

//go:noescape
func vnniWT11Q4(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

//go:noescape
func vnniWT12Q4(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

//go:noescape
func vnniWT13Q4(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

//go:noescape
func vnniWT14Q4(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

//go:noescape
func vnniWT15Q4(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

//go:noescape
func vnniWT16Q4(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

//go:noescape
func vnniWT9Q50(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

//go:noescape
func vnniWT10Q50(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

//go:noescape
func vnniWT11Q50(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

//go:noescape
func vnniWT12Q50(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

//go:noescape
func vnniWT13Q50(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

//go:noescape
func vnniWT14Q50(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

//go:noescape
func vnniWT15Q50(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

//go:noescape
func vnniWT16Q50(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

type vnniWT2Fn func(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

// vnniWTPairs*[P] takes a full group of 8 activation rows and one of P.
var (
	vnniWTPairsQ8  = [9]vnniWT2Fn{1: vnniWT9Q8, 2: vnniWT10Q8, 3: vnniWT11Q8, 4: vnniWT12Q8, 5: vnniWT13Q8, 6: vnniWT14Q8, 7: vnniWT15Q8, 8: vnniWT16Q8}
	vnniWTPairsQ4  = [9]vnniWT2Fn{1: vnniWT9Q4, 2: vnniWT10Q4, 3: vnniWT11Q4, 4: vnniWT12Q4, 5: vnniWT13Q4, 6: vnniWT14Q4, 7: vnniWT15Q4, 8: vnniWT16Q4}
	vnniWTPairsQ50 = [9]vnniWT2Fn{1: vnniWT9Q50, 2: vnniWT10Q50, 3: vnniWT11Q50, 4: vnniWT12Q50, 5: vnniWT13Q50, 6: vnniWT14Q50, 7: vnniWT15Q50, 8: vnniWT16Q50}
)

// useWT16 is whether matMulVNNIWT runs the two-group tiles vnniWT{9..16}*
// for 9 or more activation rows (benchmarks turn it off to compare).
var useWT16 = true
