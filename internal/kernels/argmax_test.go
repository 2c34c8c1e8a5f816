package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestArgmaxRef pins the scalar rule on the cases that decide it: ties,
// signed zeros, NaN before, among and after numbers, infinities.
func TestArgmaxRef(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	negz := float32(math.Copysign(0, -1))
	for _, c := range []struct {
		x    []float32
		want int
	}{
		{nil, 0},
		{[]float32{nan}, 0},
		{[]float32{nan, nan, nan}, 0},
		{[]float32{1, 3, 3, 2}, 1},
		{[]float32{nan, -inf, nan}, 1},
		{[]float32{-inf, nan, -inf}, 0},
		{[]float32{negz, 0, -1}, 0},
		{[]float32{-1, 0, negz}, 1},
		{[]float32{nan, 2, nan, 5, nan}, 3},
		{[]float32{1, inf, inf, nan}, 1},
	} {
		if got := ArgmaxRef(c.x); got != c.want {
			t.Errorf("ArgmaxRef(%v) = %d, want %d", c.x, got, c.want)
		}
		if got := Argmax(c.x); got != c.want {
			t.Errorf("Argmax(%v) = %d, want %d", c.x, got, c.want)
		}
	}
}

// TestArgmax compares the fast path with the scalar rule on every length up
// to 300 and on vocabulary-sized rows, with values drawn so that the
// maximum is often tied, a signed zero, an infinity, or surrounded by NaN,
// and the winner sits in every lane and in the tail.
func TestArgmax(t *testing.T) {
	needFast(t)
	r := rand.New(rand.NewPCG(1, 2))
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	negz := float32(math.Copysign(0, -1))
	lengths := []int{32000, 151936, 128256}
	for n := 0; n <= 300; n++ {
		lengths = append(lengths, n)
	}
	for _, n := range lengths {
		for trial := 0; trial < 8; trial++ {
			x := make([]float32, n)
			for i := range x {
				switch trial {
				case 0: // random, NaN and infinities included
					x[i] = value(r, true)
				case 1: // few distinct values: ties everywhere
					x[i] = float32(r.IntN(4))
				case 2: // all NaN but a few
					x[i] = nan
					if r.IntN(50) == 0 {
						x[i] = -inf
					}
				case 3: // signed zeros and negatives
					x[i] = [...]float32{0, negz, -1, -inf}[r.IntN(4)]
				default:
					x[i] = float32(r.NormFloat64())
				}
			}
			if n > 0 && trial >= 4 { // a planted winner, maybe tied, maybe +Inf
				i := r.IntN(n)
				x[i] = [...]float32{100, inf, 100, 100}[trial-4]
				if trial == 6 {
					x[r.IntN(n)] = 100
				}
				if trial == 7 {
					x[n-1-r.IntN(min(n, 8))] = 1000 // in the tail
				}
			}
			if got, want := Argmax(x), ArgmaxRef(x); got != want {
				t.Fatalf("length %d, trial %d: Argmax %d, reference %d", n, trial, got, want)
			}
		}
	}
}

func FuzzArgmax(f *testing.F) {
	f.Add(make([]byte, 4*40))
	f.Add([]byte{0, 0, 192, 127, 0, 0, 128, 255, 0, 0, 0, 128, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		x := floatsFrom(data)
		if got, want := Argmax(x), ArgmaxRef(x); got != want {
			t.Fatalf("Argmax of %d values: %d, reference %d", len(x), got, want)
		}
	})
}

func BenchmarkArgmax(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	x := values(r, 32000, false)
	for _, c := range []struct {
		name string
		fn   func([]float32) int
	}{{"fast", Argmax}, {"ref", ArgmaxRef}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(4 * len(x)))
			for b.Loop() {
				c.fn(x)
			}
		})
	}
}
