//go:build amd64 && !purego

package kernels

// The vectorised Exp32 kernels of kernels_amd64.s (asmgen_exp.go). n is a
// multiple of 8 (maxF32: and at least 8); they give the bits of the scalar
// expressions in ops.go for every input (NaN payloads aside).

//go:noescape
func expShiftF32(x *float32, m float32, n int)

//go:noescape
func swigluF32(out, gate, up *float32, n int)

// The AVX-512F forms, for any n (the last n mod 16 under a mask).

//go:noescape
func expShiftZ(x *float32, m float32, n int)

//go:noescape
func swigluZ(out, gate, up *float32, n int)

// expZmm reports whether the AVX-512F forms run (where the float32 prefill
// tiles do: the CPU has AVX-512F and setAVX512 has not turned them off).
func expZmm() bool { return hasAVX512 && useAVX512 }

//go:noescape
func maxF32(x *float32, n int) float32

//go:noescape
func divF32(x *float32, s float32, n int)

// expShiftFast does x[i] = Exp32(x[i] - m) on the multiple-of-8 prefix of
// x (all of x with AVX-512F) and returns its length.
func expShiftFast(x []float32, m float32) int {
	if expZmm() && len(x) > 0 {
		expShiftZ(&x[0], m, len(x))
		return len(x)
	}
	n := len(x) &^ 7
	if n > 0 {
		expShiftF32(&x[0], m, n)
	}
	return n
}

// swigluFast does out[i] = float32(SiLU(gate[i]) * up[i]) on the
// multiple-of-8 prefix of out (all of out with AVX-512F; gate and up at
// least as long) and returns its length.
func swigluFast(out, gate, up []float32) int {
	if expZmm() && len(out) > 0 {
		_, _ = gate[len(out)-1], up[len(out)-1]
		swigluZ(&out[0], &gate[0], &up[0], len(out))
		return len(out)
	}
	n := len(out) &^ 7
	if n > 0 {
		_, _ = gate[n-1], up[n-1]
		swigluF32(&out[0], &gate[0], &up[0], n)
	}
	return n
}

// maxFast returns the maximum of the multiple-of-8 prefix of x and its
// length (0 where x is shorter than 8).
func maxFast(x []float32) (float32, int) {
	n := len(x) &^ 7
	if n == 0 {
		return 0, 0
	}
	return maxF32(&x[0], n), n
}

//go:noescape
func maxOrdF32(x *float32, n int) float32

//go:noescape
func firstEqF32(x *float32, n int, m float32) int

// argmaxFast returns Argmax(x) for x of at least 32 values, ok false
// where x is shorter: the largest non-NaN value m (maxOrdF32 on the
// multiple-of-32 prefix, the scalar rule on the rest), then the first
// index holding a value equal to m (firstEqF32); 0 where every value is
// NaN.
func argmaxFast(x []float32) (int, bool) {
	n := len(x) &^ 31
	if n == 0 {
		return 0, false
	}
	m := maxOrdF32(&x[0], n)
	for _, v := range x[n:] {
		if v > m {
			m = v
		}
	}
	if i := firstEqF32(&x[0], len(x)&^7, m); i >= 0 {
		return i, true
	}
	for i := len(x) &^ 7; i < len(x); i++ {
		if x[i] == m {
			return i, true
		}
	}
	return 0, true
}

// divFast does x[i] = x[i] / s on the multiple-of-8 prefix of x and
// returns its length.
func divFast(x []float32, s float32) int {
	n := len(x) &^ 7
	if n > 0 {
		divF32(&x[0], s, n)
	}
	return n
}
