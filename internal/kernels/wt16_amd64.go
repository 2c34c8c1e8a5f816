//go:build amd64 && !purego

package kernels

// vnniWT16Q8 (asmgen_wt16.go) is vnniWTQ8P8 for the 16 activation rows of
// two packed groups (group stride gs bytes) in one call: each block of the
// 16 weight rows is loaded, transposed and made unsigned once for all 16
// activation rows, not once per group of 8.
//
//go:noescape
func vnniWT16Q8(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int)

// useWT16 is whether matMulVNNIWT runs vnniWT16Q8 for 16 activation rows
// against Q8_0 weights (benchmarks turn it off to compare).
var useWT16 = true
