package detmath

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func ulpDiff32(a, b float32) int64 {
	ia, ib := int64(math.Float32bits(a)), int64(math.Float32bits(b))
	if ia < 0x80000000 != (ib < 0x80000000) {
		return math.MaxInt64
	}
	d := ia - ib
	if d < 0 {
		d = -d
	}
	return d
}

func TestExp32Accuracy(t *testing.T) {
	worst := int64(0)
	for x := float32(-103); x < 88.7; x += 0.0137 {
		got := Exp32(x)
		want := float32(math.Exp(float64(x)))
		if want < math.SmallestNonzeroFloat32*(1<<23) { // subnormal: compare absolutely
			if math.Abs(float64(got-want)) > math.SmallestNonzeroFloat32 {
				t.Fatalf("Exp32(%v) = %v, want %v", x, got, want)
			}
			continue
		}
		if d := ulpDiff32(got, want); d > worst {
			worst = d
		}
	}
	if worst > 2 {
		t.Fatalf("Exp32 is off by %d ulp somewhere; want <= 2", worst)
	}
}

func TestExp32Special(t *testing.T) {
	cases := []struct{ x, want float32 }{
		{0, 1},
		{float32(math.Inf(-1)), 0},
		{float32(math.Inf(1)), float32(math.Inf(1))},
		{89, float32(math.Inf(1))},
		{-200, 0},
	}
	for _, c := range cases {
		if got := Exp32(c.x); got != c.want {
			t.Errorf("Exp32(%v) = %v, want %v", c.x, got, c.want)
		}
	}
	if got := Exp32(float32(math.NaN())); got == got {
		t.Errorf("Exp32(NaN) = %v, want NaN", got)
	}
	if got := Exp32(expMax); math.IsInf(float64(got), 0) || got < 3.4e38 {
		t.Errorf("Exp32(expMax) = %v, want the largest finite range", got)
	}
}

func TestFloat64Functions(t *testing.T) {
	for x := -30.0; x < 30; x += 0.173 {
		if got, want := Exp64(x), math.Exp(x); math.Abs(got-want) > 4e-16*want {
			t.Fatalf("Exp64(%v) = %v, want %v", x, got, want)
		}
	}
	for _, x := range []float64{1e-5, 0.3, 1, 2, 10000, 500000, 1e300} {
		if got, want := Log64(x), math.Log(x); math.Abs(got-want) > 4e-16*math.Max(1, math.Abs(want)) {
			t.Fatalf("Log64(%v) = %v, want %v", x, got, want)
		}
	}
	// Subnormal input (math.Log's amd64 assembly gets this one wrong, which
	// is why it is not the oracle here): ln(1e-310) = -713.80137882815...
	if got := Log64(1e-310); math.Abs(got+713.8013788281542) > 1e-12 {
		t.Fatalf("Log64(1e-310) = %v", got)
	}
	for x := -5000.0; x < 5000; x += 0.917 {
		s, c := SinCos64(x)
		if math.Abs(s-math.Sin(x)) > 1e-15 || math.Abs(c-math.Cos(x)) > 1e-15 {
			t.Fatalf("SinCos64(%v) = %v, %v, want %v, %v", x, s, c, math.Sin(x), math.Cos(x))
		}
	}
	if got, want := Pow64(10000, -0.25), math.Pow(10000, -0.25); math.Abs(got-want) > 1e-15 {
		t.Fatalf("Pow64 = %v, want %v", got, want)
	}
}

// TestGoldenBits pins the exact bits of every function over a sweep of
// inputs: any change to the arithmetic, on any platform, shows up here.
func TestGoldenBits(t *testing.T) {
	h := sha256.New()
	var b [8]byte
	for i := uint32(0); i < 1<<20; i++ {
		// Walk float32 bit patterns across the whole useful range.
		x := math.Float32frombits(0xc2d00000 - i*0x3f + (i&1)*0x80000000)
		binary.LittleEndian.PutUint32(b[:4], math.Float32bits(Exp32(x)))
		h.Write(b[:4])
		binary.LittleEndian.PutUint32(b[:4], math.Float32bits(SiLU(x)))
		h.Write(b[:4])
	}
	for i := 0; i < 1<<14; i++ {
		x := float64(float64(i)*0.7310585786300049) - 3000 // rounded product: no fused multiply-add on any GOARCH
		s, c := SinCos64(x)
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(s))
		h.Write(b[:])
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(c))
		h.Write(b[:])
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(Pow64(10000, -float64(i%64)/64)))
		h.Write(b[:])
	}
	got := hex.EncodeToString(h.Sum(nil))
	path := filepath.Join("testdata", "golden_bits.txt")
	if *update {
		if err := os.WriteFile(path, []byte(got+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden digest (run with -update to create): %v", err)
	}
	if strings.TrimSpace(string(want)) != got {
		t.Fatalf("detmath bits changed: digest %s, golden %s", got, strings.TrimSpace(string(want)))
	}
}
