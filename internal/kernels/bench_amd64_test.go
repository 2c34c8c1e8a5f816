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
