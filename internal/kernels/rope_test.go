package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestRope compares Rope and RopeNeox with their scalar definitions, bit
// for bit, on head sizes the fast path takes and those it leaves to the
// scalar code, one to several heads and a partial head after them, with
// values that round, overflow and carry NaN and infinities.
func TestRope(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, hd := range []int{2, 6, 8, 16, 24, 32, 64, 80, 128, 256} {
		for _, heads := range []int{1, 3, 12} {
			for _, special := range []bool{false, true} {
				half := hd / 2
				cos, sin := values(r, half, special), values(r, half, special)
				for j := range cos[:half/2] { // real angles too
					a := r.Float64() * 2 * math.Pi
					cos[j], sin[j] = float32(math.Cos(a)), float32(math.Sin(a))
				}
				x := values(r, heads*hd+hd/2, special)
				for _, c := range []struct {
					name      string
					fast, ref func(x, cos, sin []float32)
				}{{"Rope", Rope, RopeRef}, {"RopeNeox", RopeNeox, RopeNeoxRef}} {
					got, want := append([]float32(nil), x...), append([]float32(nil), x...)
					c.fast(got, cos, sin)
					c.ref(want, cos, sin)
					for i := range got {
						if !same(got[i], want[i]) {
							t.Fatalf("%s hd %d heads %d special %v: x[%d] = %#08x, reference %#08x", c.name, hd, heads, special, i, math.Float32bits(got[i]), math.Float32bits(want[i]))
						}
					}
				}
			}
		}
	}
}

func FuzzRope(f *testing.F) {
	f.Add(make([]byte, 4*(64+32+32)), uint8(32))
	f.Add(make([]byte, 4*(16*3+8+8)), uint8(8))
	f.Fuzz(func(t *testing.T, data []byte, half uint8) {
		v := floatsFrom(data)
		h := int(half)
		if h == 0 || 2*h > len(v) {
			return
		}
		cos, sin, x := v[:h], v[h:2*h], v[2*h:]
		if len(sin) < h {
			return
		}
		for _, c := range []struct {
			fast, ref func(x, cos, sin []float32)
		}{{Rope, RopeRef}, {RopeNeox, RopeNeoxRef}} {
			got, want := append([]float32(nil), x...), append([]float32(nil), x...)
			c.fast(got, cos, sin)
			c.ref(want, cos, sin)
			for i := range got {
				if !same(got[i], want[i]) {
					t.Fatalf("half %d: x[%d] = %#08x, reference %#08x", h, i, math.Float32bits(got[i]), math.Float32bits(want[i]))
				}
			}
		}
	})
}

func BenchmarkRope(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	normal := func(n int) []float32 { // no subnormals: their products take microcode assists
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return v
	}
	x, cos, sin := normal(16*64), make([]float32, 32), make([]float32, 32)
	for j := range cos { // real angles: x keeps its magnitude from one rotation to the next
		a := r.Float64() * 2 * math.Pi
		cos[j], sin[j] = float32(math.Cos(a)), float32(math.Sin(a))
	}
	for _, c := range []struct {
		name string
		fn   func(x, cos, sin []float32)
	}{{"fast", Rope}, {"ref", RopeRef}, {"neox", RopeNeox}, {"neoxref", RopeNeoxRef}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(4 * len(x)))
			for b.Loop() {
				c.fn(x, cos, sin)
			}
		})
	}
}
