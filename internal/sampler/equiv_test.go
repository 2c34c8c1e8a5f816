package sampler

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// logitShape names a way of drawing a logit vector; together they cover
// the cases where a faster sampler could go wrong: ties, probabilities
// equal from distinct logits, zero and subnormal probabilities, infinities
// and NaN.
var logitShapes = []struct {
	name string
	gen  func(r *rand.Rand, n int) []float32
}{
	{"uniform8", func(r *rand.Rand, n int) []float32 {
		return fill(n, func(int) float32 { return 8 * (r.Float32() - 0.5) })
	}},
	{"normal3", func(r *rand.Rand, n int) []float32 {
		return fill(n, func(int) float32 { return 3 * float32(r.NormFloat64()) })
	}},
	{"peaked", func(r *rand.Rand, n int) []float32 {
		// a language model's shape: a few likely ids, a long tail
		l := fill(n, func(int) float32 { return 2 * float32(r.NormFloat64()) })
		for range 1 + r.IntN(5) {
			l[r.IntN(n)] = 15 + 5*r.Float32()
		}
		return l
	}},
	{"spread200", func(r *rand.Rand, n int) []float32 {
		return fill(n, func(int) float32 { return 200 * (r.Float32() - 0.5) })
	}},
	{"subnormal", func(r *rand.Rand, n int) []float32 {
		// logits 80-100 below the top: probabilities near and below 2^-126
		return fill(n, func(i int) float32 {
			if i == 0 || r.IntN(50) == 0 {
				return 0
			}
			return -80 - 20*r.Float32()
		})
	}},
	{"ties", func(r *rand.Rand, n int) []float32 {
		k := 1 + r.IntN(4)
		return fill(n, func(int) float32 { return float32(r.IntN(k)) })
	}},
	{"ulps", func(r *rand.Rand, n int) []float32 {
		// distinct logits one ulp apart: many equal probabilities
		base := 1 + r.Float32()
		return fill(n, func(int) float32 {
			return math.Float32frombits(math.Float32bits(base) + uint32(r.IntN(8)))
		})
	}},
	{"neginf", func(r *rand.Rand, n int) []float32 {
		return fill(n, func(int) float32 {
			if r.IntN(3) == 0 {
				return float32(math.Inf(-1))
			}
			return 4 * float32(r.NormFloat64())
		})
	}},
	{"allneginf", func(r *rand.Rand, n int) []float32 {
		return fill(n, func(int) float32 { return float32(math.Inf(-1)) })
	}},
	{"posinf", func(r *rand.Rand, n int) []float32 {
		l := fill(n, func(int) float32 { return float32(r.NormFloat64()) })
		l[r.IntN(n)] = float32(math.Inf(1))
		return l
	}},
	{"nan", func(r *rand.Rand, n int) []float32 {
		l := fill(n, func(int) float32 { return float32(r.NormFloat64()) })
		l[r.IntN(n)] = float32(math.NaN())
		return l
	}},
	{"huge", func(r *rand.Rand, n int) []float32 {
		return fill(n, func(int) float32 { return 3e38 * (2*r.Float32() - 1) })
	}},
	{"zeros", func(r *rand.Rand, n int) []float32 {
		return fill(n, func(int) float32 { return float32(math.Copysign(0, r.Float64()-0.5)) })
	}},
}

func fill(n int, f func(int) float32) []float32 {
	l := make([]float32, n)
	for i := range l {
		l[i] = f(i)
	}
	return l
}

// randomParams draws sampling parameters for a vocabulary of n, biased to
// the boundaries: top-k at 1, n and beyond, top-p near 0 and 1,
// temperatures that are and are not powers of two.
func randomParams(r *rand.Rand, n int) Params {
	temps := []float32{0.01, 0.1, 0.25, 0.5, 0.7, 0.8, 1, 1.3, 2, 7, 64, 100, 1e-30, 1e-40, r.Float32() * 3}
	p := Params{Temperature: temps[r.IntN(len(temps))], Seed: r.Uint64()}
	switch r.IntN(6) {
	case 1:
		p.TopK = 1 + r.IntN(n)
	case 2:
		p.TopK = []int{1, 2, 40, n - 1, n, n + 1}[r.IntN(6)]
	case 3:
		p.TopK = 1 + r.IntN(50)
	}
	switch r.IntN(5) {
	case 1:
		p.TopP = r.Float32()
	case 2:
		p.TopP = []float32{0.01, 0.5, 0.9, 0.95, 0.99999994, 1, 1e-20}[r.IntN(7)]
	}
	return p
}

// randomSize draws a vocabulary size in [1, 40000], log-uniformly.
func randomSize(r *rand.Rand) int {
	return min(40000, int(math.Exp(r.Float64()*math.Log(40001))))
}

func TestSampleMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	trials := 3000
	if testing.Short() {
		trials = 300
	}
	for trial := range trials {
		shape := logitShapes[trial%len(logitShapes)]
		n := randomSize(r)
		if trial%50 == 0 {
			n = 32000 // the real vocabulary size, often
		}
		logits := shape.gen(r, n)
		orig := append([]float32(nil), logits...)
		p := randomParams(r, n)
		pos := r.IntN(4096)
		got, want := Sample(logits, p, pos), sampleRef(logits, p, pos)
		if got != want {
			t.Fatalf("trial %d (%s, n=%d, %+v, pos %d): Sample = %d, reference = %d", trial, shape.name, n, p, pos, got, want)
		}
		for i := range logits {
			if math.Float32bits(logits[i]) != math.Float32bits(orig[i]) {
				t.Fatalf("trial %d: Sample modified logit %d", trial, i)
			}
		}
	}
}

// TestSampleManyDraws compares the two on one vector and many positions:
// the draws reach every part of the sorted order, the ids close to the
// tail included.
func TestSampleManyDraws(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, shape := range logitShapes {
		logits := shape.gen(r, 2000)
		for _, p := range []Params{{Temperature: 1}, {Temperature: 0.8, TopK: 1000}, {Temperature: 3, TopP: 0.99}} {
			for pos := range 300 {
				if got, want := Sample(logits, p, pos), sampleRef(logits, p, pos); got != want {
					t.Fatalf("%s %+v pos %d: Sample = %d, reference = %d", shape.name, p, pos, got, want)
				}
			}
		}
	}
}

// TestPickMatchesReference feeds steps 3-6 probability vectors a softmax
// never makes (negative values, -0, NaN, infinities, all zero), to cover
// the fallback to a full sort and its ordering of odd keys.
func TestPickMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	special := []float32{0, float32(math.Copysign(0, -1)), -1, float32(math.NaN()), float32(math.Inf(1)),
		float32(math.Inf(-1)), 1e-45, 1e-38, 1.5e-8, 2.9802322e-08, 2.9802326e-08, 0.5, 1}
	var s scratch
	for trial := range 3000 {
		n := 1 + r.IntN(600)
		if trial%10 == 0 {
			n = 1 + r.IntN(40000)
		}
		probs := make([]float32, n)
		mode := trial % 4
		for i := range probs {
			switch {
			case mode == 0 && r.IntN(20) == 0:
				probs[i] = special[r.IntN(len(special))]
			case mode == 1:
				probs[i] = 0 // all zero but a few
				if r.IntN(100) == 0 {
					probs[i] = r.Float32() * 1e-7
				}
			case mode == 2:
				probs[i] = r.Float32() * 4e-8 // all near the 2^-25 boundary
			default:
				probs[i] = r.Float32() / float32(n)
			}
		}
		p := randomParams(r, n)
		p.Temperature = 1
		pos := r.IntN(1000)
		s.grow(n)
		if got, want := s.pick(probs, p, pos), pickRef(probs, p, pos); got != want {
			t.Fatalf("trial %d (mode %d, n=%d, %+v, pos %d): pick = %d, reference = %d", trial, mode, n, p, pos, got, want)
		}
	}
}

// TestPickTailFallback reaches the case where the draw ends on the last
// kept id inside the unsorted tail (total 0), which only a hand-made
// vector does.
func TestPickTailFallback(t *testing.T) {
	probs := make([]float32, 1000) // all zero: every id is in the tail
	probs[10] = 0
	var s scratch
	for _, k := range []int{0, 1, 5, 999, 1000} {
		p := Params{Temperature: 1, TopK: k}
		s.grow(len(probs))
		if got, want := s.pick(probs, p, 0), pickRef(probs, p, 0); got != want {
			t.Fatalf("top-k %d: pick = %d, reference = %d", k, got, want)
		}
	}
}

func TestExactReciprocal(t *testing.T) {
	for _, tc := range []struct {
		t  float32
		ok bool
	}{{1, true}, {2, true}, {0.5, true}, {64, true}, {0.8, false}, {3, false}, {0, false},
		{float32(math.Inf(1)), false}, {float32(math.NaN()), false}, {1e-45, false}, {math.MaxFloat32, false}} {
		inv, ok := exactReciprocal(tc.t)
		if ok != tc.ok {
			t.Errorf("exactReciprocal(%v) ok = %v, want %v", tc.t, ok, tc.ok)
		}
		if ok && float64(inv)*float64(tc.t) != 1 {
			t.Errorf("exactReciprocal(%v) = %v, not exact", tc.t, inv)
		}
	}
	// Where it claims exactness, multiplying equals dividing, for every
	// class of x (subnormal results included).
	r := rand.New(rand.NewPCG(7, 8))
	for e := -126; e <= 126; e++ {
		tt := float32(math.Ldexp(1, e))
		inv, ok := exactReciprocal(tt)
		if !ok {
			t.Fatalf("exactReciprocal(2^%d) refused", e)
		}
		for range 200 {
			x := math.Float32frombits(r.Uint32())
			a, b := x/tt, x*inv
			if math.Float32bits(a) != math.Float32bits(b) && !(a != a && b != b) {
				t.Fatalf("x=%v (%#x) t=2^%d: x/t=%v x*(1/t)=%v", x, math.Float32bits(x), e, a, b)
			}
		}
	}
}

func TestSampleAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop its items")
	}
	logits := fill(32000, func(i int) float32 { return 8 * (Uniform(1, i) - 0.5) })
	p := Params{Temperature: 0.8, TopP: 0.9, Seed: 1}
	Sample(logits, p, 0)
	if a := testing.AllocsPerRun(20, func() { Sample(logits, p, 3) }); a > 0 {
		t.Errorf("Sample allocates %v times per call", a)
	}
}

// FuzzSample compares Sample with the reference on logits and parameters
// made from the fuzzer's bytes.
func FuzzSample(f *testing.F) {
	enc := func(t float32, k uint16, topP float32, seed uint64, pos uint16, logits ...float32) []byte {
		b := binary.LittleEndian.AppendUint32(nil, math.Float32bits(t))
		b = binary.LittleEndian.AppendUint16(b, k)
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(topP))
		b = binary.LittleEndian.AppendUint64(b, seed)
		b = binary.LittleEndian.AppendUint16(b, pos)
		for _, l := range logits {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(l))
		}
		return b
	}
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	f.Add(enc(1, 0, 0, 1, 0, 1, 2, 3), uint16(0))
	f.Add(enc(0.8, 2, 0.9, 7, 5, 4, 4, 4, -inf), uint16(300))
	f.Add(enc(0.5, 0, 0.5, 9, 1, 0, -100, -90, 20, nan), uint16(1000))
	f.Add(enc(2, 40, 0, 3, 2, inf, 1, 1), uint16(40000))
	f.Fuzz(func(t *testing.T, data []byte, extra uint16) {
		if len(data) < 20 {
			return
		}
		p := Params{
			Temperature: math.Float32frombits(binary.LittleEndian.Uint32(data)),
			TopK:        int(binary.LittleEndian.Uint16(data[4:])),
			TopP:        math.Float32frombits(binary.LittleEndian.Uint32(data[6:])),
			Seed:        binary.LittleEndian.Uint64(data[10:]),
		}
		pos := int(binary.LittleEndian.Uint16(data[18:]))
		data = data[20:]
		logits := make([]float32, len(data)/4)
		for i := range logits {
			logits[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
		// Extend with a smooth tail, so that long vocabularies are reached.
		for i := range int(extra) % 40001 {
			logits = append(logits, -20+30*Uniform(p.Seed, i))
		}
		if len(logits) == 0 {
			return
		}
		if got, want := Sample(logits, p, pos), sampleRef(logits, p, pos); got != want {
			t.Fatalf("n=%d %+v pos %d: Sample = %d, reference = %d", len(logits), p, pos, got, want)
		}
	})
}

func TestSampleEmpty(t *testing.T) {
	if got := Sample(nil, Params{Temperature: 1}, 0); got != 0 {
		t.Fatalf("Sample(nil) = %d, want 0", got)
	}
}

// peakedLogits is a language model's shape over 32000 ids: a few likely
// ids and a long tail.
func peakedLogits() []float32 {
	r := rand.New(rand.NewPCG(9, 10))
	l := fill(32000, func(int) float32 { return 2 * float32(r.NormFloat64()) })
	for i := range 5 {
		l[1000*i+7] = 15 + float32(i)
	}
	return l
}

func BenchmarkSampleRef32000(b *testing.B) {
	logits := fill(32000, func(i int) float32 { return 8 * (Uniform(1, i) - 0.5) })
	p := Params{Temperature: 0.8, Seed: 1}
	for i := 0; b.Loop(); i++ {
		sampleRef(logits, p, i)
	}
}

func BenchmarkSamplePeaked32000(b *testing.B) {
	logits := peakedLogits()
	p := Params{Temperature: 0.8, Seed: 1}
	for i := 0; b.Loop(); i++ {
		Sample(logits, p, i)
	}
}

func BenchmarkSampleRefPeaked32000(b *testing.B) {
	logits := peakedLogits()
	p := Params{Temperature: 0.8, Seed: 1}
	for i := 0; b.Loop(); i++ {
		sampleRef(logits, p, i)
	}
}
