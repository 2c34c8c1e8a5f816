package detmath

import "math"

// The float64 functions below build tables (RoPE frequencies and angles).
// They are accurate to a few ulp of float64, which makes their results, once
// rounded to float32, almost always the correctly rounded value; what matters
// for determinism is only that they are the same bits everywhere, which
// follows from using basic IEEE operations with explicit rounding.

const (
	ln2Hi = 6.93147180369123816490e-01 // 0x3fe62e42fee00000
	ln2Lo = 1.90821492927058770002e-10 // 0x3dea39ef35793c76
	log2e = 1.44269504088896338700e+00
	// 1.5 * 2^52: adding and subtracting it rounds a float64 to an integer.
	round64 = 6755399441055744.0
)

// roundInt rounds x (|x| < 2^51) to the nearest integer, ties to even.
func roundInt(x float64) float64 { return float64(x+round64) - round64 }

// pow2 returns 2**k for k in [-1022, 1023].
func pow2(k int) float64 { return math.Float64frombits(uint64(k+1023) << 52) }

// Exp64 returns e**x for |x| <= 700 (larger magnitudes saturate to +Inf or 0).
func Exp64(x float64) float64 {
	switch {
	case x != x:
		return x
	case x > 700:
		return math.Inf(1)
	case x < -700:
		return 0
	}
	kf := roundInt(float64(x * log2e))
	r := x - float64(kf*ln2Hi)
	r = r - float64(kf*ln2Lo)
	// Taylor series to r^14 / 14!; |r| <= 0.347.
	s := 1.0
	for i := 14; i >= 1; i-- {
		s = float64(float64(s*r)/float64(i)) + 1
	}
	k := int(kf)
	// Split the scale so that each factor stays a normal number.
	return float64(s*pow2(k/2)) * pow2(k-k/2)
}

// Log64 returns the natural logarithm of x for x > 0 (NaN for x <= 0, except
// -Inf for 0 and +Inf for +Inf).
func Log64(x float64) float64 {
	switch {
	case x != x || x < 0:
		return math.NaN()
	case x == 0:
		return math.Inf(-1)
	case math.IsInf(x, 1):
		return x
	}
	// x = m * 2^e with m in [sqrt(1/2), sqrt(2)).
	bits := math.Float64bits(x)
	e := int(bits>>52&0x7ff) - 1023
	if e == -1023 { // subnormal: normalise exactly
		x = float64(x * pow2(54))
		bits = math.Float64bits(x)
		e = int(bits>>52&0x7ff) - 1023 - 54
	}
	m := math.Float64frombits(bits&^(0x7ff<<52) | 1023<<52) // [1, 2)
	if m > math.Sqrt2 {
		m = m / 2
		e++
	}
	// log(m) = 2 atanh(s), s = (m-1)/(m+1), |s| <= 0.1716.
	s := (m - 1) / (m + 1)
	s2 := float64(s * s)
	sum := 0.0
	for i := 27; i >= 1; i -= 2 {
		sum = float64(sum*s2) + float64(1)/float64(i)
	}
	lm := float64(2 * float64(s*sum))
	ef := float64(e)
	return float64(ef*ln2Hi) + (float64(ef*ln2Lo) + lm)
}

// Pow64 returns b**x for b > 0 as Exp64(x * Log64(b)).
func Pow64(b, x float64) float64 {
	return Exp64(float64(x * Log64(b)))
}

// Pi/2 in three parts (Cody-Waite); the first two have trailing zero bits so
// n*part is exact for the n this package needs (|n| < 2^20).
const (
	pio2Hi  = 1.57079632673412561417e+00 // 0x3ff921fb54400000
	pio2Mid = 6.07710050630396597660e-11 // 0x3dd0b4611a600000
	pio2Lo  = 2.02226624879595063154e-21 // 0x3ba3198a2e037073
	twoOPi  = 6.36619772367581382433e-01
)

// SinCos64 returns sin(x) and cos(x) for |x| < 2^20 (larger arguments give
// NaN: RoPE angles never reach them).
func SinCos64(x float64) (sin, cos float64) {
	if !(x > -1<<20 && x < 1<<20) {
		return math.NaN(), math.NaN()
	}
	n := roundInt(float64(x * twoOPi))
	r := x - float64(n*pio2Hi)
	r = r - float64(n*pio2Mid)
	r = r - float64(n*pio2Lo)
	s, c := sinPoly(r), cosPoly(r)
	switch int64(n) & 3 {
	case 0:
		return s, c
	case 1:
		return c, -s
	case 2:
		return -s, -c
	default:
		return -c, s
	}
}

// sinPoly is the Taylor series of sin to r^21 for |r| <= pi/4.
func sinPoly(r float64) float64 {
	r2 := float64(r * r)
	s := 1.0
	for i := 21; i >= 3; i -= 2 {
		s = 1 - float64(float64(s*r2)/float64(i*(i-1)))
	}
	return float64(s * r)
}

// cosPoly is the Taylor series of cos to r^20 for |r| <= pi/4.
func cosPoly(r float64) float64 {
	r2 := float64(r * r)
	c := 1.0
	for i := 20; i >= 2; i -= 2 {
		c = 1 - float64(float64(c*r2)/float64(i*(i-1)))
	}
	return c
}
