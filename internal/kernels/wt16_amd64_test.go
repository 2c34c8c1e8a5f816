//go:build amd64 && !purego

package kernels

import "testing"

// BenchmarkWT16Off runs BenchmarkMatMulSmallN and BenchmarkMatMulSmallNDRAM
// without vnniWT16Q8 (16 activation rows against Q8_0 then take two
// vnniWTQ8P8 calls per 16 weight rows, as before it), for comparison.
func BenchmarkWT16Off(b *testing.B) {
	was := useWT16
	useWT16 = false
	defer func() { useWT16 = was }()
	b.Run("SmallN", BenchmarkMatMulSmallN)
	b.Run("SmallNDRAM", BenchmarkMatMulSmallNDRAM)
}
