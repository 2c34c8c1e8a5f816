package engine_test

import (
	"math"
	"testing"

	"github.com/verdictnet/verdict/internal/detmath"
	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/kernels"
)

// TestKV16 checks the binary16 key/value cache against its definition
// (docs/determinism.md, section 13) on a grouped-query model: every traced
// key and value is a binary16 value; layer 0's keys and values (which no
// attention precedes) are those of the float32 cache rounded; layer 0's
// attention is Attend, the reference, over those rounded vectors; and the
// logits move from the float32 cache's, a little.
func TestKV16(t *testing.T) {
	const text = "Once upon a time there was a little dog who liked to run"
	mf := [2]string{"synth:tiny-llama3:f32", ""}
	_, e32, toks, rec32, it32 := tracedPrefill(t, mf, 2, text)
	l, e16, _, rec16, it16 := tracedPrefill(t, [2]string{mf[0] + kvSuffix, ""}, 2, text)
	if e32.Spec() != engine.SpecVersion || e16.Spec() != engine.SpecKV16 || e16.Spec() == e32.Spec() {
		t.Fatalf("specs %q and %q", e32.Spec(), e16.Spec())
	}
	if e16.KVBytesPerPosition()*2 != e32.KVBytesPerPosition() {
		t.Fatalf("cache bytes per position: %d binary16, %d float32", e16.KVBytesPerPosition(), e32.KVBytesPerPosition())
	}
	c := l.m.Config
	hd, kvd := c.HeadDim(), c.KVDim()
	group := c.Heads / c.KVHeads
	if group < 2 {
		t.Fatalf("%s: %d heads over %d key/value heads, want grouped-query attention", mf[0], c.Heads, c.KVHeads)
	}
	for key, k := range rec16.k {
		for i, v := range append(clone(k), rec16.v[key]...) {
			r := []float32{v}
			if kernels.RoundF16(r); math.Float32bits(r[0]) != math.Float32bits(v) {
				t.Fatalf("layer %d position %d: cached value %d (%v) is no binary16 value", key[0], key[1], i, v)
			}
		}
	}
	var keys, values []float32 // layer 0's rounded float32 vectors, flat
	for pos := range toks {
		key := [2]int{0, pos}
		k, v := clone(rec32.k[key]), clone(rec32.v[key])
		kernels.RoundF16Ref(k)
		kernels.RoundF16Ref(v)
		if !sameBits(k, rec16.k[key]) || !sameBits(v, rec16.v[key]) {
			t.Fatalf("layer 0 position %d: binary16 keys or values are not the float32 ones rounded", pos)
		}
		keys, values = append(keys, k...), append(values, v...)
		q, _, _, err := e16.QKV(0, pos, rec16.x[key])
		if err != nil {
			t.Fatal(err)
		}
		for h := 0; h < c.Heads; h++ {
			out, scores := make([]float32, hd), make([]float32, pos+1)
			engine.Attend(q[h*hd:(h+1)*hd], keys, values, kvd, (h/group)*hd, pos+1, detmath.Sqrt32(float32(hd)), out, scores)
			if !sameBits(out, rec16.attn[key][h*hd:(h+1)*hd]) {
				t.Fatalf("layer 0 position %d head %d: attention differs from Attend over the rounded cache", pos, h)
			}
		}
	}
	worst, differ := 0.0, 0
	for p := range it32.Out {
		for j, a := range it32.Out[p] {
			b := it16.Out[p][j]
			if math.Float32bits(a) != math.Float32bits(b) {
				differ++
			}
			worst = max(worst, math.Abs(float64(a)-float64(b)))
		}
	}
	if differ == 0 || worst > 0.05 {
		t.Fatalf("logits: %d differ from the float32 cache's, by at most %.3g (want some, by little)", differ, worst)
	}
	t.Logf("%d of %d logits differ from the float32 cache's, by at most %.3g", differ, len(it32.Out)*len(it32.Out[0]), worst)
}

// An engine refuses a cache type it does not know; the names parse back.
func TestKVTypes(t *testing.T) {
	l := load(t, "stories260K.bin", "tok512.bin")
	if _, err := engine.New(l.m, engine.Options{KV: 7}); err == nil {
		t.Fatal("cache type 7 accepted")
	}
	for _, kv := range []engine.KVType{engine.KVF32, engine.KVF16} {
		got, err := engine.ParseKVType(kv.String())
		if err != nil || got != kv {
			t.Fatalf("%v: parsed back as %v, %v", kv, got, err)
		}
		if got, err := engine.KVTypeOf(kv.Spec()); err != nil || got != kv {
			t.Fatalf("spec %q: %v, %v", kv.Spec(), got, err)
		}
	}
	if _, err := engine.ParseKVType("q8_0"); err == nil {
		t.Fatal(`"q8_0" parsed as a cache type`)
	}
	if _, err := engine.KVTypeOf("verdict-det/1"); err == nil {
		t.Fatal("verdict-det/1 accepted")
	}
}

// FuzzKVTypeOf: a receipt's spec string (any bytes) either names a cache
// type whose spec is that string, or is refused; a flag's value likewise.
func FuzzKVTypeOf(f *testing.F) {
	for _, s := range []string{engine.SpecVersion, engine.SpecKV16, "f16", "f32", "", "verdict-det/2+kv8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if kv, err := engine.KVTypeOf(s); err == nil && kv.Spec() != s {
			t.Fatalf("spec %q read as %v, whose spec is %q", s, kv, kv.Spec())
		}
		if kv, err := engine.ParseKVType(s); err == nil && kv.String() != s {
			t.Fatalf("flag %q read as %v", s, kv)
		}
	})
}
