//go:build !amd64 || purego

package kernels

// Without a fast path every kernel runs its scalar reference code; these
// stubs are never called because hasFast stays false.

func fastAvailable() bool { return false }
func enableFast()         {}
func disableFast()        {}

// No AVX-512F tiles here.
const (
	hasAVX512 = false
	useAttnZ  = false
)

func setAVX512(on bool) bool { return false }

func dotFast(a, b []float32) float32                     { return DotRef(a, b) }
func sumFast(x []float32) float32                        { return SumRef(x) }
func axpyFast(out []float32, a float32, v []float32) int { return 0 }
func addFast(x, y []float32) int                         { return 0 }
func scaleMulFast(out, x, w []float32, s float32) int    { return 0 }

func dotManyFast(out, q, keys []float32, stride, off int)           {}
func weightedSumFast(out, a, values []float32, stride, off int) int { return 0 }
func weightedSumGroupFast(out []float32, group, hd int, a []float32, aStride, n int, values []float32, stride int) int {
	return 0
}

func expShiftFast(x []float32, m float32) int { return 0 }
func swigluFast(out, gate, up []float32) int  { return 0 }
func maxFast(x []float32) (float32, int)      { return 0, 0 }
func divFast(x []float32, s float32) int      { return 0 }
func argmaxFast(x []float32) (int, bool)      { return 0, false }

// PrefetchL2 does nothing here.
func PrefetchL2(x []float32) {}

func ropeFast(x, cos, sin []float32, neox bool) bool { return false }

func roundF16Fast(x []float32) int                { return 0 }
func toF16Fast(dst []uint16, src []float32) int   { return 0 }
func fromF16Fast(dst []float32, src []uint16) int { return 0 }

func dotManyF16Fast(out, q []float32, keys []uint16) int { return 0 }
func weightedSumGroupF16Fast(out []float32, group, hd int, a []float32, aStride, n int, values []uint16, stride int) int {
	return 0
}
