package audit

import (
	"context"
	"errors"
	"testing"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/modelid"
	"github.com/verdictnet/verdict/internal/sampler"
)

// kv16Fixture is f's model under the binary16 key/value cache: an engine
// of engine.SpecKV16 and the model's id for that spec.
func kv16Fixture(t *testing.T, f *fixture) *fixture {
	t.Helper()
	e, err := engine.New(f.m, engine.Options{Threads: 2, KV: engine.KVF16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	id, err := modelid.OfSpec(f.m, engine.SpecKV16)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{m: f.m, e: e, id: id, key: f.key, spec: engine.SpecKV16}
}

// TestKV16Receipts: receipts made under the binary16 key/value cache
// replay, open and audit under it, and only under it; a worker that
// computes with the float32 cache and signs under the binary16 spec (the
// cheaper spec's name on the other function, or the reverse) is caught by
// replay and by the audit of its openings; a dispute over such a receipt
// gets a referee of the receipt's spec.
func TestKV16Receipts(t *testing.T) {
	f32 := loadFixture(t, "stories260K.gguf", 2)
	f16 := kv16Fixture(t, f32)
	ctx := context.Background()
	p := sampler.Params{Temperature: 0.9, Seed: 3}
	r := f16.generateReceipt(t, storyPrompt, p, 64)
	if r.Spec != engine.SpecKV16 || r.Model != f16.id || f16.id == f32.id {
		t.Fatalf("receipt under %q for %s (binary16 id %s, float32 id %s)", r.Spec, r.Model, f16.id, f32.id)
	}
	if err := Replay(ctx, f16.e, r, f16.id); err != nil {
		t.Fatalf("honest binary16 receipt rejected: %v", err)
	}
	var mm *Mismatch
	if err := Replay(ctx, f32.e, r, f16.id); !errors.As(err, &mm) || mm.What != "spec" {
		t.Fatalf("float32 engine replaying a binary16 receipt: %v", err)
	}
	if _, err := Open(ctx, f32.e, r, 1, 4); err == nil {
		t.Fatal("a float32 engine opened a binary16 receipt")
	}
	lay := NewLayout(f16.m.Config, len(r.Prompt), len(r.Output))
	for seed := uint64(0); seed < 6; seed++ {
		k := []int{1, 16, lay.Cells()}[seed%3]
		o, err := Open(ctx, f16.e, r, seed, k)
		if err != nil {
			t.Fatal(err)
		}
		if err := Check(f16.m, f16.id, r, seed, k, o); err != nil {
			t.Fatalf("seed %d k %d: honest binary16 openings rejected: %v", seed, k, err)
		}
	}
	// The attack: the float32 cache's computation signed as binary16.
	forged := *f32
	forged.id, forged.spec = f16.id, engine.SpecKV16
	bad := forged.generateReceipt(t, storyPrompt, p, 64)
	if err := Replay(ctx, f16.e, bad, f16.id); !errors.As(err, &mm) || (mm.What != "logits" && mm.What != "trace" && mm.What != "token") {
		t.Fatalf("float32 computation signed as binary16: replay says %v", err)
	}
	tr, err := regenerate(context.Background(), f32.e, bad) // the cheat's own trace, to open from
	if err != nil {
		t.Fatal(err)
	}
	o, err := tr.Open(7, lay.Cells())
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(f16.m, f16.id, bad, 7, lay.Cells(), o); !errors.As(err, &mm) {
		t.Fatalf("openings of a float32 trace under the binary16 spec: %v", err)
	}
	// And the reverse: binary16 work signed as the float32 spec.
	rev := *f16
	rev.id, rev.spec = f32.id, engine.SpecVersion
	if err := Replay(ctx, f32.e, rev.generateReceipt(t, storyPrompt, p, 64), f32.id); !errors.As(err, &mm) {
		t.Fatalf("binary16 computation signed as float32: replay says %v", err)
	}
	// A dispute's referee computes under the receipt's spec.
	enc, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	commit := make([]byte, CommitmentSize)
	commit[0] = 1
	_, ref, err := DisputeSetup(f16.m, f16.id, enc, commit)
	if err != nil {
		t.Fatal(err)
	}
	if got := ref.calc.e.Spec(); got != engine.SpecKV16 {
		t.Fatalf("referee of a binary16 receipt implements %q", got)
	}
}
