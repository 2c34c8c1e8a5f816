package kernels

import "github.com/verdictnet/verdict/internal/detmath"

// RMSNorm writes out[i] = float32(w[i] * float32(inv * x[i])) where
// inv = 1 / sqrt(Dot(x, x)/n + eps).
func RMSNorm(out, x, w []float32, eps float32) {
	ss := Dot(x, x)
	ss = ss / float32(len(x))
	inv := 1 / detmath.Sqrt32(ss+eps)
	scaleMul(out[:len(x)], x, w[:len(x)], inv)
}

// scaleMul writes out[i] = float32(w[i] * float32(s*x[i])).
func scaleMul(out, x, w []float32, s float32) {
	i := 0
	if hasFast {
		i = scaleMulFast(out, x, w, s)
	}
	for ; i < len(x); i++ {
		out[i] = float32(w[i] * float32(s*x[i]))
	}
}

// Softmax replaces x by softmax(x): m = max x; e_i = Exp32(x_i - m);
// s = Sum(e); x_i = e_i / s.
//
// The fast path takes the maximum with VMAXPS, which may differ from the
// scalar rule (if v > m) only in the sign of a zero maximum or where x holds
// a NaN; neither changes a result (x_i - (+0) and x_i - (-0) are equal but
// for x_i = ±0, whose Exp32 is 1 either way, and a NaN makes every output
// NaN through s).
func Softmax(x []float32) {
	if len(x) == 0 {
		return
	}
	m, i := x[0], 1
	if hasFast {
		if vm, n := maxFast(x); n > 0 {
			m, i = vm, n
		}
	}
	for _, v := range x[i:] {
		if v > m {
			m = v
		}
	}
	i = 0
	if hasFast {
		i = expShiftFast(x, m)
	}
	for ; i < len(x); i++ {
		x[i] = detmath.Exp32(x[i] - m)
	}
	s := Sum(x)
	i = 0
	if hasFast {
		i = divFast(x, s)
	}
	for ; i < len(x); i++ {
		x[i] = x[i] / s
	}
}

// Argmax returns the index of the largest value of x, the lowest index on
// ties (-0 and +0 tie), ignoring NaN; 0 where x is empty or all NaN: the
// greedy choice of docs/determinism.md, "Sampling". It compares and
// computes nothing, so the fast path (the maximum, then the first index
// holding it) returns what the scalar loop does, bit for bit.
func Argmax(x []float32) int {
	if hasFast {
		if i, ok := argmaxFast(x); ok {
			return i
		}
	}
	return ArgmaxRef(x)
}

// ArgmaxRef is Argmax's scalar definition: one pass, keeping the first
// value that no later one exceeds (a NaN kept only until a number comes).
func ArgmaxRef(x []float32) int {
	if len(x) == 0 {
		return 0
	}
	best, bv := 0, x[0]
	for i, v := range x[1:] {
		if v > bv || (bv != bv && v == v) {
			best, bv = i+1, v
		}
	}
	return best
}

// Rope rotates each adjacent pair (2j, 2j+1) of every head of x (heads of
// size len(cos)*2) by the angle whose cosine and sine are cos[j], sin[j]:
//
//	x0' = float32(x0*c) - float32(x1*s)
//	x1' = float32(x0*s) + float32(x1*c)
func Rope(x, cos, sin []float32) {
	if hasFast && ropeFast(x, cos, sin, false) {
		return
	}
	RopeRef(x, cos, sin)
}

// RopeRef is Rope's scalar definition.
func RopeRef(x, cos, sin []float32) {
	hd := 2 * len(cos)
	for h := 0; h+hd <= len(x); h += hd {
		for j := range cos {
			x0, x1 := x[h+2*j], x[h+2*j+1]
			c, s := cos[j], sin[j]
			x[h+2*j] = float32(x0*c) - float32(x1*s)
			x[h+2*j+1] = float32(x0*s) + float32(x1*c)
		}
	}
}

// RopeNeox rotates each pair (j, j+hd/2) of every head of x (heads of size
// hd = len(cos)*2: the first half against the second, llama.cpp's NEOX
// rotation) by the angle whose cosine and sine are cos[j], sin[j]:
//
//	x0' = float32(x0*c) - float32(x1*s)
//	x1' = float32(x0*s) + float32(x1*c)
func RopeNeox(x, cos, sin []float32) {
	if hasFast && ropeFast(x, cos, sin, true) {
		return
	}
	RopeNeoxRef(x, cos, sin)
}

// RopeNeoxRef is RopeNeox's scalar definition.
func RopeNeoxRef(x, cos, sin []float32) {
	half := len(cos)
	hd := 2 * half
	for h := 0; h+hd <= len(x); h += hd {
		for j := range cos {
			x0, x1 := x[h+j], x[h+half+j]
			c, s := cos[j], sin[j]
			x[h+j] = float32(x0*c) - float32(x1*s)
			x[h+half+j] = float32(x0*s) + float32(x1*c)
		}
	}
}

// SwiGLU writes out[i] = float32(SiLU(gate[i]) * up[i]).
// out may be gate or up (the same slice), not an overlapping shift of them.
func SwiGLU(out, gate, up []float32) {
	gate, up = gate[:len(out)], up[:len(out)]
	i := 0
	if hasFast {
		i = swigluFast(out, gate, up)
	}
	for ; i < len(out); i++ {
		out[i] = float32(detmath.SiLU(gate[i]) * up[i])
	}
}

// Add adds y to x element by element.
func Add(x, y []float32) {
	y = y[:len(x)]
	i := 0
	if hasFast {
		i = addFast(x, y)
	}
	for ; i < len(x); i++ {
		x[i] = x[i] + y[i]
	}
}

// AxpyInto adds float32(a * v[i]) to out[i]: one step of the attention value
// sum, which runs over positions in increasing order.
func AxpyInto(out []float32, a float32, v []float32) {
	v = v[:len(out)]
	i := 0
	if hasFast {
		i = axpyFast(out, a, v)
	}
	for ; i < len(out); i++ {
		out[i] = out[i] + float32(a*v[i])
	}
}
