//go:build amd64 && !purego

package kernels

// vnniWT16Q8 (asmgen_wt16.go) is vnniWTQ8P8 for the 16 activation rows of
// two packed groups (group stride gs bytes) in one call: each block of the
// 16 weight rows is loaded, transposed and made unsigned once for all 16
// activation rows, not once per group of 8. vnniWT{8+P}Q8 (P = 1..7) is the
// same with P rows in the second group.
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

type vnniWT2Fn func(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

// vnniWTPairsQ8[P] takes a full group of 8 activation rows and one of P.
var vnniWTPairsQ8 = [9]vnniWT2Fn{1: vnniWT9Q8, 2: vnniWT10Q8, 3: vnniWT11Q8, 4: vnniWT12Q8, 5: vnniWT13Q8, 6: vnniWT14Q8, 7: vnniWT15Q8, 8: vnniWT16Q8}

// useWT16 is whether matMulVNNIWT runs the two-group tiles vnniWT{9..16}Q8
// for 9 or more activation rows against Q8_0 weights (benchmarks turn it
// off to compare).
var useWT16 = true
