package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"testing"

	"github.com/verdictnet/verdict/internal/detmath"
)

// The vectorised Exp32 kernels (expShiftF32, swigluF32, maxF32, divF32 and
// Softmax / SwiGLU built on them) are checked against the scalar code of
// detmath, which is the oracle: Exp32 and SiLU element by element, and the
// reference softmax below (the scalar maximum rule, Exp32, SumRef, division).

// softmaxRef is the definition of Softmax, all scalar.
func softmaxRef(x []float32) {
	if len(x) == 0 {
		return
	}
	m := x[0]
	for _, v := range x[1:] {
		if v > m {
			m = v
		}
	}
	for i, v := range x {
		x[i] = detmath.Exp32(v - m)
	}
	s := SumRef(x)
	for i := range x {
		x[i] = x[i] / s
	}
}

// expShift is the fast exp pass as Softmax runs it: the kernel on the
// multiple-of-8 prefix, the scalar expression on the rest.
func expShift(x []float32, m float32) {
	i := expShiftFast(x, m)
	for ; i < len(x); i++ {
		x[i] = detmath.Exp32(x[i] - m)
	}
}

// expBoundaries are float32 arguments around which Exp32 changes regime:
// the overflow and underflow cut-offs, the k = 127/128 and k = -126/-127
// transitions of scale32 (k = round(x*log2e)), the start of subnormal
// results, zero and the infinities.
var expBoundaries = []float32{
	88.72283172607421875, -103.97208, // expMax, expMin
	127.5 * math.Ln2, -126.5 * math.Ln2, -127.5 * math.Ln2, -149.5 * math.Ln2, // k transitions
	-87.33654, -103.27893, // exp(x) = 2^-126 (smallest normal), 2^-149 (smallest subnormal)
	0, 0.5 * math.Ln2, -0.5 * math.Ln2, 1, -1,
}

// expPatterns returns the float32 bit patterns of the sweep: every 4093rd
// pattern (about a million, spread over every exponent and sign), 2048
// patterns on either side of every boundary (and of its negation), all
// patterns from exp's overflow to its underflow through the whole
// subnormal range, and the special values.
func expPatterns() []uint32 {
	var ps []uint32
	for u := uint64(0); u < 1<<32; u += 4093 {
		ps = append(ps, uint32(u))
	}
	for _, bnd := range expBoundaries {
		for _, v := range []float32{bnd, -bnd} {
			c := int64(math.Float32bits(v))
			for d := int64(-2048); d <= 2048; d++ {
				if u := c + d; u >= 0 && u < 1<<32 {
					ps = append(ps, uint32(u))
				}
			}
		}
	}
	// [-104, -87]: every result subnormal or at the k = -126/-127 step.
	for u := math.Float32bits(-87); u <= math.Float32bits(-104); u++ {
		ps = append(ps, u)
	}
	for u := math.Float32bits(88); u <= math.Float32bits(89); u++ {
		ps = append(ps, u)
	}
	ps = append(ps, 0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000,
		0x7f800001, 0xff800001, 0x7fbfffff, 0x7fffffff, 0xffffffff, 1, 0x80000001, 0x7f7fffff, 0xff7fffff)
	return ps
}

// zero32 is a variable +0, so that x - zero32 is computed (it quiets a
// signalling NaN, as the kernel's subtraction does).
var zero32 float32

// checkExpPatterns runs expShift (m = +0, so the argument is x itself but
// for quieting signalling NaNs) and SwiGLU (up = 1, so the result is SiLU
// itself) on patterns and demands the bits of detmath.Exp32 and
// detmath.SiLU, NaN payloads included for exp (the kernel returns the
// argument as the scalar code does).
func checkExpPatterns(t *testing.T, ps []uint32) {
	t.Helper()
	x := make([]float32, len(ps))
	for i, u := range ps {
		x[i] = math.Float32frombits(u)
	}
	e := append([]float32(nil), x...)
	expShift(e, 0)
	for i, v := range x {
		if want := detmath.Exp32(v - zero32); math.Float32bits(e[i]) != math.Float32bits(want) {
			t.Fatalf("Exp32(%g = %#08x): kernel %#08x, scalar %#08x", v, ps[i], math.Float32bits(e[i]), math.Float32bits(want))
		}
	}
	one := make([]float32, len(x))
	for i := range one {
		one[i] = 1
	}
	s := make([]float32, len(x))
	SwiGLU(s, x, one)
	for i, v := range x {
		if want := detmath.SiLU(v); !same(s[i], want) {
			t.Fatalf("SiLU(%g = %#08x): kernel %#08x, scalar %#08x", v, ps[i], math.Float32bits(s[i]), math.Float32bits(want))
		}
	}
}

func TestExpKernelsSweep(t *testing.T) {
	needFast(t)
	ps := expPatterns()
	// The same patterns shuffled, so that every lane and every vector of a
	// block see every regime next to every other.
	mixed := append([]uint32(nil), ps...)
	r := rand.New(rand.NewPCG(3, 5))
	r.Shuffle(len(mixed), func(i, j int) { mixed[i], mixed[j] = mixed[j], mixed[i] })
	prefillPaths(t, func(t *testing.T) {
		checkExpPatterns(t, ps)
		checkExpPatterns(t, mixed)
	})
}

// TestExpKernelsExhaustive checks all 2^32 float32 arguments; it takes
// minutes, so it runs only with VERDICT_EXHAUSTIVE=1.
func TestExpKernelsExhaustive(t *testing.T) {
	needFast(t)
	if os.Getenv("VERDICT_EXHAUSTIVE") != "1" {
		t.Skip("set VERDICT_EXHAUSTIVE=1 to check all 2^32 arguments")
	}
	prefillPaths(t, exhaustive)
}

func exhaustive(t *testing.T) {
	const chunk = 1 << 20
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var fail string
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := make([]float32, chunk)
			e := make([]float32, chunk)
			s := make([]float32, chunk)
			one := make([]float32, chunk)
			for i := range one {
				one[i] = 1
			}
			for c := uint64(w); c < 1<<32/chunk; c += uint64(workers) {
				for i := range x {
					x[i] = math.Float32frombits(uint32(c*chunk) + uint32(i))
				}
				copy(e, x)
				expShift(e, 0)
				SwiGLU(s, x, one)
				for i, v := range x {
					we, ws := detmath.Exp32(v-zero32), detmath.SiLU(v)
					if math.Float32bits(e[i]) != math.Float32bits(we) || !same(s[i], ws) {
						mu.Lock()
						fail = fmt.Sprintf("argument %#08x: Exp32 kernel %#08x scalar %#08x; SiLU kernel %#08x scalar %#08x",
							math.Float32bits(v), math.Float32bits(e[i]), math.Float32bits(we), math.Float32bits(s[i]), math.Float32bits(ws))
						mu.Unlock()
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if fail != "" {
		t.Fatal(fail)
	}
}

// checkSoftmaxSwiGLU runs Softmax, the exp pass and SwiGLU on the n
// elements at offset off of longer buffers (so slices start unaligned) and
// compares them with the scalar definitions; the elements around the slice
// must stay untouched. SwiGLU also runs in place (out = gate), as the engine
// calls it.
func checkSoftmaxSwiGLU(t *testing.T, r *rand.Rand, n, off int, special bool, scale float32) {
	t.Helper()
	buf := values(r, n+off+9, special)
	for i := range buf {
		buf[i] *= scale
	}
	orig := append([]float32(nil), buf...)
	ref := append([]float32(nil), buf...)
	Softmax(buf[off : off+n])
	softmaxRef(ref[off : off+n])
	compareSlices(t, fmt.Sprintf("Softmax(n=%d, off=%d)", n, off), buf, ref)

	m := value(r, special)
	copy(buf, orig)
	copy(ref, orig)
	expShift(buf[off:off+n], m)
	for i := off; i < off+n; i++ {
		ref[i] = detmath.Exp32(ref[i] - m)
	}
	compareSlices(t, fmt.Sprintf("Exp32(x-m) (n=%d, off=%d, m=%g)", n, off, m), buf, ref)

	gate := orig[off : off+n]
	up := values(r, n, special)
	out := values(r, n+off+9, false)
	want := append([]float32(nil), out...)
	SwiGLU(out[off:off+n], gate, up)
	for i := range n {
		want[off+i] = float32(detmath.SiLU(gate[i]) * up[i])
	}
	compareSlices(t, fmt.Sprintf("SwiGLU(n=%d, off=%d)", n, off), out, want)
	copy(buf, orig)
	SwiGLU(buf[off:off+n], buf[off:off+n], up)
	copy(want, orig)
	for i := range n {
		want[off+i] = float32(detmath.SiLU(gate[i]) * up[i])
	}
	compareSlices(t, fmt.Sprintf("SwiGLU in place (n=%d, off=%d)", n, off), buf, want)
}

func TestSoftmaxSwiGLUTails(t *testing.T) {
	needFast(t)
	prefillPaths(t, testSoftmaxSwiGLUTails)
}

func testSoftmaxSwiGLUTails(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 13))
	tests := []struct {
		name    string
		special bool
		scale   float32
	}{
		{"normal", false, 1},
		{"wide", false, 40},    // logits spread so that many exps underflow
		{"special", true, 1},   // infinities and NaNs among the inputs
		{"tiny", false, 1e-30}, // all arguments near zero
		{"huge", false, 1e30},  // overflowing arguments
		{"special-wide", true, 60},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for n := 0; n <= 17; n++ {
				for off := 0; off < 8; off++ {
					checkSoftmaxSwiGLU(t, r, n, off, tc.special, tc.scale)
				}
			}
			for _, n := range []int{24, 31, 32, 33, 47, 63, 64, 65, 79, 100, 256, 1000} {
				checkSoftmaxSwiGLU(t, r, n, r.IntN(8), tc.special, tc.scale)
			}
		})
	}
}

// TestSoftmaxZeroMax covers the one place where the fast maximum may differ
// from the scalar rule: a maximum of zero met first as -0 or as +0.
func TestSoftmaxZeroMax(t *testing.T) {
	needFast(t)
	prefillPaths(t, testSoftmaxZeroMax)
}

func testSoftmaxZeroMax(t *testing.T) {
	negz := float32(math.Copysign(0, -1))
	for _, first := range []float32{0, negz} {
		for n := 1; n <= 40; n++ {
			x := make([]float32, n)
			for i := range x {
				switch i % 3 {
				case 0:
					x[i] = first
				case 1:
					x[i] = -float32(i)
				default:
					x[i] = float32(math.Copysign(0, float64(-first)))
				}
			}
			ref := append([]float32(nil), x...)
			Softmax(x)
			softmaxRef(ref)
			compareSlices(t, fmt.Sprintf("Softmax zero max (n=%d, first %g)", n, first), x, ref)
		}
	}
}

// TestUseFastExp checks that the scalar switch (UseFast(false)) runs the
// same functions: Softmax and SwiGLU agree both ways.
func TestUseFastExp(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 19))
	x := values(r, 333, false)
	up := values(r, 333, false)
	a, b := append([]float32(nil), x...), append([]float32(nil), x...)
	sa, sb := make([]float32, len(x)), make([]float32, len(x))
	Softmax(a)
	SwiGLU(sa, x, up)
	was := UseFast(false)
	Softmax(b)
	SwiGLU(sb, x, up)
	UseFast(was)
	compareSlices(t, "Softmax fast vs scalar", a, b)
	compareSlices(t, "SwiGLU fast vs scalar", sa, sb)
}

func FuzzExpKernels(f *testing.F) {
	f.Add([]byte{0, 0, 128, 63, 0, 0, 0, 64}, float32(0), uint8(0))
	f.Add(make([]byte, 4*33), float32(1), uint8(1))
	f.Add([]byte{0x17, 0x72, 0xb1, 0x42, 0x18, 0x72, 0xb1, 0x42, 0xb5, 0xf1, 0xcf, 0xc2, 0xb6, 0xf1, 0xcf, 0xc2,
		0, 0, 128, 127, 0, 0, 128, 255, 0, 0, 192, 127, 0, 0, 0, 128, 1, 0, 0, 0}, float32(-3), uint8(2))
	f.Add(make([]byte, 4*100), float32(math.Inf(1)), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, m float32, seed uint8) {
		needFast(t)
		v := floatsFrom(data)
		if seed&1 == 1 { // mix in random values so that short inputs still vary
			r := rand.New(rand.NewPCG(uint64(seed), uint64(len(data))))
			for i := range v {
				if r.IntN(2) == 0 {
					v[i] = value(r, true) * float32(1+r.IntN(100))
				}
			}
		}
		prefillPaths(t, func(t *testing.T) { checkExpFuzz(t, v, m) })
	})
}

// checkExpFuzz runs the exp pass, Softmax and SwiGLU (gate and up the two
// halves of v) against the scalar code.
func checkExpFuzz(t *testing.T, v []float32, m float32) {
	x, ref := append([]float32(nil), v...), append([]float32(nil), v...)
	expShift(x, m)
	for i := range ref {
		ref[i] = detmath.Exp32(ref[i] - m)
	}
	compareSlices(t, "Exp32(x-m)", x, ref)

	copy(x, v)
	copy(ref, v)
	Softmax(x)
	softmaxRef(ref)
	compareSlices(t, "Softmax", x, ref)

	n := len(v) / 2
	gate, up := v[:n], v[n:2*n]
	out := make([]float32, n)
	SwiGLU(out, gate, up)
	for i := range n {
		ref[i] = float32(detmath.SiLU(gate[i]) * up[i])
	}
	compareSlices(t, "SwiGLU", out, ref[:n])
}

func BenchmarkSoftmax32000(b *testing.B) { benchSoftmax(b, 32000) }
func BenchmarkSoftmax256(b *testing.B)   { benchSoftmax(b, 256) }

// expBenchPaths runs f with the scalar code, the AVX2 kernels and, where
// the CPU has AVX-512F, the AVX-512F kernels.
func expBenchPaths(b *testing.B, f func(b *testing.B)) {
	b.Run("scalar", func(b *testing.B) {
		was := UseFast(false)
		defer UseFast(was)
		f(b)
	})
	if FastPath == "" {
		return
	}
	was := setAVX512(false)
	defer setAVX512(was)
	b.Run("avx2", f)
	if hasAVX512 {
		setAVX512(true)
		b.Run("avx512", f)
	}
}

// benchSoftmax times Softmax on n logits.
func benchSoftmax(b *testing.B, n int) {
	r := rand.New(rand.NewPCG(1, 1))
	x := values(r, n, false)
	for i := range x {
		x[i] *= 8
	}
	w := make([]float32, n)
	expBenchPaths(b, func(b *testing.B) {
		for b.Loop() {
			copy(w, x)
			Softmax(w)
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Melem/s")
	})
}

func BenchmarkSwiGLU2048(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const n = 2048
	gate, up := values(r, n, false), values(r, n, false)
	out := make([]float32, n)
	expBenchPaths(b, func(b *testing.B) {
		for b.Loop() {
			SwiGLU(out, gate, up)
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Melem/s")
	})
}
