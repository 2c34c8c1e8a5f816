package sampler

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestArgmax(t *testing.T) {
	nan := float32(math.NaN())
	cases := []struct {
		in   []float32
		want int
	}{
		{[]float32{1, 3, 2}, 1},
		{[]float32{5, 5, 1}, 0}, // lowest index on ties
		{[]float32{nan, 1, 2}, 2},
		{[]float32{1, nan, 0}, 0},
		{[]float32{-1}, 0},
		{[]float32{nan, nan}, 0},
		{[]float32{float32(math.Copysign(0, -1)), 0}, 0},
		{[]float32{float32(math.Inf(-1)), nan, float32(math.Inf(-1))}, 0},
		{nil, 0},
	}
	for _, c := range cases {
		if got := Argmax(c.in); got != c.want {
			t.Errorf("Argmax(%v) = %d, want %d", c.in, got, c.want)
		}
	}
}

// TestArgmaxScan compares Argmax with the definition read literally (the
// first index whose value no other beats, NaN losing to any number) on
// random vectors of NaNs, infinities, signed zeros and repeats.
func TestArgmaxScan(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	pool := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0, float32(math.Copysign(0, -1)), 1, -1, 2}
	for range 20000 {
		v := make([]float32, 1+r.IntN(12))
		for i := range v {
			if r.IntN(3) == 0 {
				v[i] = float32(r.NormFloat64())
			} else {
				v[i] = pool[r.IntN(len(pool))]
			}
		}
		want := 0
		for i, x := range v {
			w := v[want]
			if x > w || (w != w && x == x) {
				want = i
			}
		}
		if got := Argmax(v); got != want {
			t.Fatalf("Argmax(%v) = %d, want %d", v, got, want)
		}
	}
}

func BenchmarkArgmax32000(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	v := make([]float32, 32000)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	for b.Loop() {
		Argmax(v)
	}
}

func TestUniformRangeAndSpread(t *testing.T) {
	var buckets [10]int
	for p := 0; p < 100000; p++ {
		u := Uniform(42, p)
		if !(u >= 0 && u < 1) {
			t.Fatalf("Uniform(42, %d) = %v outside [0, 1)", p, u)
		}
		buckets[int(u*10)]++
	}
	for i, n := range buckets {
		if n < 9500 || n > 10500 {
			t.Errorf("bucket %d holds %d of 100000 draws", i, n)
		}
	}
	if Uniform(1, 5) == Uniform(2, 5) || Uniform(1, 5) == Uniform(1, 6) {
		t.Error("draws do not depend on seed and position")
	}
}

// TestUniformVectors pins the generator: it is part of docs/determinism.md.
func TestUniformVectors(t *testing.T) {
	// Independent computation of the SplitMix64-based draw for seed 0, pos 0.
	z := uint64(0x9E3779B97F4A7C15)
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	z ^= z >> 31
	if want := float32(z>>40) / (1 << 24); Uniform(0, 0) != want {
		t.Fatalf("Uniform(0, 0) = %v, want %v", Uniform(0, 0), want)
	}
	// SplitMix64's first output for state 0 is 0xe220a8397b1dcdaf.
	if z != 0xe220a8397b1dcdaf {
		t.Fatalf("SplitMix64 constant check failed: %x", z)
	}
}

func TestSampleRules(t *testing.T) {
	logits := []float32{1, 4, 3, 2, 4}
	if got := Sample(logits, Params{}, 0); got != 1 {
		t.Fatalf("greedy = %d, want 1", got)
	}
	// top-k 1 is greedy whatever the seed (ties broken by lower id).
	for seed := uint64(0); seed < 50; seed++ {
		if got := Sample(logits, Params{Temperature: 1, TopK: 1, Seed: seed}, 3); got != 1 {
			t.Fatalf("top-k 1 seed %d = %d, want 1", seed, got)
		}
	}
	// A tiny top-p keeps only the most likely token.
	for seed := uint64(0); seed < 50; seed++ {
		if got := Sample(logits, Params{Temperature: 1, TopP: 0.01, Seed: seed}, 3); got != 1 {
			t.Fatalf("top-p 0.01 seed %d = %d, want 1", seed, got)
		}
	}
	// top-k 2 only ever returns the two tied best ids.
	seen := map[int]bool{}
	for seed := uint64(0); seed < 200; seed++ {
		seen[Sample(logits, Params{Temperature: 1, TopK: 2, Seed: seed}, 3)] = true
	}
	if len(seen) != 2 || !seen[1] || !seen[4] {
		t.Fatalf("top-k 2 returned %v, want exactly {1, 4}", seen)
	}
	// Sampling frequencies follow softmax(logits / T).
	counts := make([]int, len(logits))
	const n = 20000
	for p := 0; p < n; p++ {
		counts[Sample(logits, Params{Temperature: 2, Seed: 7}, p)]++
	}
	var z float64
	for _, l := range logits {
		z += math.Exp(float64(l) / 2)
	}
	for i, l := range logits {
		want := math.Exp(float64(l)/2) / z * n
		if math.Abs(float64(counts[i])-want) > 5*math.Sqrt(want)+5 {
			t.Errorf("id %d drawn %d times, expected about %.0f", i, counts[i], want)
		}
	}
	// Sample does not modify its input.
	if logits[1] != 4 || logits[0] != 1 {
		t.Fatal("Sample modified the logits")
	}
}

func TestValidate(t *testing.T) {
	bad := []Params{
		{Temperature: -1}, {Temperature: float32(math.NaN())}, {TopK: -2}, {TopP: -0.1}, {TopP: 1.5}, {Temperature: 1000},
	}
	for _, p := range bad {
		if p.Validate() == nil {
			t.Errorf("Validate(%+v) accepted", p)
		}
	}
	if err := (Params{Temperature: 0.7, TopK: 40, TopP: 0.9}).Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestSortItemsOrder checks the packed sort against the order the
// specification states, on vectors with many ties, short (comparison sort)
// and long (radix sort, with digits every key shares).
func TestSortItemsOrder(t *testing.T) {
	for _, n := range []int{1, 2, 37, 256, 257, 300, 1000, 5000} {
		for _, distinct := range []int{1, 3, 7, 1 << 20} {
			probs := make([]float32, n)
			for i := range probs {
				probs[i] = Uniform(uint64(n), i%distinct) // few distinct values: many ties
			}
			probs[0] = 0
			items, tmp := make([]uint64, n), make([]uint64, n)
			klo, khi := ^uint32(0), uint32(0)
			for i, q := range probs {
				k := sortKey(q)
				items[i] = uint64(k)<<32 | uint64(i)
				klo, khi = min(klo, k), max(khi, k)
			}
			got := sortItems(items, tmp, new([1 << maxDigitBits]uint32), klo, khi)
			want := sortedIDsRef(probs)
			for i := range got {
				a := int(uint32(got[i]))
				if a != want[i] {
					t.Fatalf("n=%d distinct=%d: position %d holds id %d, want %d", n, distinct, i, a, want[i])
				}
				if i > 0 {
					b := int(uint32(got[i-1]))
					if probs[b] < probs[a] || (probs[a] == probs[b] && b > a) {
						t.Fatalf("n=%d: ids %d (p=%v) before %d (p=%v)", n, b, probs[b], a, probs[a])
					}
				}
			}
		}
	}
}

func BenchmarkSample32000(b *testing.B) {
	logits := make([]float32, 32000)
	for i := range logits {
		logits[i] = 8 * (Uniform(1, i) - 0.5)
	}
	p := Params{Temperature: 0.8, Seed: 1}
	for i := 0; b.Loop(); i++ {
		Sample(logits, p, i)
	}
}
