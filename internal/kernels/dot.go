package kernels

// Lanes is the number of partial sums of the canonical reduction order.
//
// Element i of a sum goes to lane i mod Lanes; each lane adds its elements in
// increasing index order, starting from +0; then the lanes are folded
// pairwise: lane j += lane j+8 (j < 8), lane j += lane j+4 (j < 4),
// lane j += lane j+2 (j < 2), lane 0 += lane 1. This is the order a 16-wide
// (or 2x8, 4x4) SIMD accumulator produces naturally.
const Lanes = 16

// fold reduces 16 lanes in the canonical tree order.
func fold(acc *[Lanes]float32) float32 {
	for w := Lanes / 2; w >= 1; w /= 2 {
		for j := 0; j < w; j++ {
			acc[j] = acc[j] + acc[j+w]
		}
	}
	return acc[0]
}

// Dot returns the canonical dot product of a and b (len(b) >= len(a)): every
// product rounded to float32, summed in the canonical 16-lane order. It uses
// the fast path where the CPU has one; DotRef is its reference.
func Dot(a, b []float32) float32 {
	b = b[:len(a)]
	if hasFast && len(a) > 0 {
		return dotFast(a, b)
	}
	return DotRef(a, b)
}

// DotRef is the scalar reference of Dot.
func DotRef(a, b []float32) float32 {
	var acc [Lanes]float32
	n := len(a)
	b = b[:n]
	i := 0
	for ; i+Lanes <= n; i += Lanes {
		for j := 0; j < Lanes; j++ {
			acc[j] = acc[j] + float32(a[i+j]*b[i+j])
		}
	}
	for j := 0; i < n; i, j = i+1, j+1 {
		acc[j] = acc[j] + float32(a[i]*b[i])
	}
	return fold(&acc)
}

// Sum returns the canonical sum of x, with the fast path where the CPU has
// one; SumRef is its reference.
func Sum(x []float32) float32 {
	if hasFast && len(x) > 0 {
		return sumFast(x)
	}
	return SumRef(x)
}

// SumRef is the scalar reference of Sum.
func SumRef(x []float32) float32 {
	var acc [Lanes]float32
	for i, v := range x {
		acc[i%Lanes] = acc[i%Lanes] + v
	}
	return fold(&acc)
}
