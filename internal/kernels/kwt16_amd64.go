//go:build amd64 && !purego

package kernels

// kwt4W16 and kwt6W16 (asmgen_kwt16.go) are kwt4P8 and kwt6P8 for the 16
// activation rows of two packed groups (group stride gs bytes) in one
// call: each super-block of the 16 weight rows is unpacked, made unsigned
// and transposed once for all 16 activation rows, not once per group of 8.
//
//go:noescape
func kwt4W16(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, scr *byte)

//go:noescape
func kwt6W16(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, scr *byte)

type kwt16Fn func(w *byte, ws int, pk *byte, gs int, nb int, out *float32, ld int, scr *byte)

// kwt16Tiles[type]: as kwtTiles (nil: none; Q5_K is in neither the
// Llama 3.2 nor the Qwen3 Q4_K_M files).
var kwt16Tiles = [3]kwt16Fn{0: kwt4W16, 2: kwt6W16}

// useKWT16 is whether matMulKWT runs the 16-row tiles on pairs of whole
// groups (benchmarks turn it off to compare).
var useKWT16 = true
