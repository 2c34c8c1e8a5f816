//go:build amd64 && !purego

package kernels

import "testing"

// BenchmarkFewRowsOff runs BenchmarkMatMulSmallN and
// BenchmarkMatMulSmallNDRAM without the few-row Q8_0 tiles (packActs8 off:
// the kernels that ran before them), for comparison.
func BenchmarkFewRowsOff(b *testing.B) {
	was := packActs8
	packActs8 = nil
	defer func() { packActs8 = was }()
	b.Run("SmallN", BenchmarkMatMulSmallN)
	b.Run("SmallNDRAM", BenchmarkMatMulSmallNDRAM)
}

// BenchmarkKWTOff runs BenchmarkMatMulSmallN, BenchmarkMatMulSmallNDRAM and
// BenchmarkMatVecK without the kwt tiles of the K types (the kernels that
// ran before them), for comparison.
func BenchmarkKWTOff(b *testing.B) {
	was := kwtTiles
	kwtTiles = [3][kwtP + 1]kwtFn{}
	defer func() { kwtTiles = was }()
	b.Run("SmallN", BenchmarkMatMulSmallN)
	b.Run("SmallNDRAM", BenchmarkMatMulSmallNDRAM)
	b.Run("MatVecK", BenchmarkMatVecK)
}
