package kernels

// hasFast is set at init when an architecture-specific fast path can run on
// this CPU (fast_amd64.go); it selects the fast bodies of Dot, Sum, MatMul
// and the element-wise kernels. The fast paths give the same bits as the
// reference code in every case; they only run faster.
var hasFast bool

// FastPath names the fast path in use ("amd64-avx2", or "amd64-avx512"
// where the float32 prefill tiles use AVX-512F), or is empty where the
// scalar reference code runs.
var FastPath string

// UseFast turns the fast paths on or off (where the CPU has them) and
// returns whether they were on. It exists for tests and benchmarks that
// compare the two; it must not be called while kernels run.
func UseFast(on bool) (was bool) {
	was = hasFast
	if on && fastAvailable() {
		enableFast()
	} else {
		disableFast()
	}
	return was
}
