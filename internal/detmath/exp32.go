package detmath

import "math"

// Constants of Exp32 (see docs/determinism.md, "exp").
const (
	expLog2e float32 = 1.44269504088896341
	expLn2Hi float32 = 0.693359375          // 0x3f318000: 9 significant bits, so k*expLn2Hi is exact for |k| < 2^15
	expLn2Lo float32 = -2.12194440e-4       // ln2 - expLn2Hi, rounded to float32
	expRound float32 = 12582912             // 1.5 * 2^23: adding and subtracting it rounds to an integer (ties to even)
	expMax   float32 = 88.72283172607421875 // largest float32 x whose exp is finite, 0x42b17217
	expMin   float32 = -103.97208           // below this the result is 0, 0xc2cff1b4
	expP0    float32 = 1.9875691500e-4
	expP1    float32 = 1.3981999507e-3
	expP2    float32 = 8.3334519073e-3
	expP3    float32 = 4.1665795894e-2
	expP4    float32 = 1.6666665459e-1
	expP5    float32 = 5.0000001201e-1
	twoToM64 float32 = 5.421010862427522e-20
)

// Exp32 returns e**x in float32, the same bits on every platform.
//
// x is split as k*ln2 + r with k an integer (Cody-Waite, two-part ln2) and
// |r| <= ln2/2; exp(r) is a degree-7 polynomial evaluated by Horner's rule with
// every product rounded to float32; the result is scaled by 2**k through the
// exponent bits, in two steps where the result is subnormal.
func Exp32(x float32) float32 {
	switch {
	case x != x:
		return x
	case x > expMax:
		return float32(math.Inf(1))
	case x < expMin:
		return 0
	}
	t := float32(x * expLog2e)
	kf := float32(t+expRound) - expRound
	k := int32(kf)
	r := x - float32(kf*expLn2Hi)
	r = r - float32(kf*expLn2Lo)
	p := expP0
	p = float32(p*r) + expP1
	p = float32(p*r) + expP2
	p = float32(p*r) + expP3
	p = float32(p*r) + expP4
	p = float32(p*r) + expP5
	r2 := float32(r * r)
	y := float32(p*r2) + r + 1
	return scale32(y, k)
}

// scale32 returns y * 2**k for y in [0.5, 2] and k in [-151, 128], rounding
// once as IEEE multiplication does.
func scale32(y float32, k int32) float32 {
	switch {
	case k > 127:
		return float32(y*2) * math.Float32frombits(uint32(k-1+127)<<23)
	case k < -126:
		return float32(y*twoToM64) * math.Float32frombits(uint32(k+64+127)<<23)
	}
	return y * math.Float32frombits(uint32(k+127)<<23)
}

// SiLU returns x * sigmoid(x) computed as x / (1 + Exp32(-x)).
func SiLU(x float32) float32 {
	return x / (1 + Exp32(-x))
}

// Sqrt32 returns the correctly rounded float32 square root of x. The float64
// square root is correctly rounded by IEEE-754 and double rounding to float32
// is innocuous for square roots (53 >= 2*24+2), so this equals sqrtf(x).
func Sqrt32(x float32) float32 {
	return float32(math.Sqrt(float64(x)))
}
