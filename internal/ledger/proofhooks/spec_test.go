package proofhooks

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/verdictnet/verdict/internal/audit"
	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/generate"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/modelid"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/sampler"
	"github.com/verdictnet/verdict/internal/testutil"
)

// TestAttackSpecUnderAnotherID: a worker computes with the binary16
// key/value cache (spec verdict-det/2+kv16: half the cache memory, other
// bits) and signs receipts that say so but name the model's id for the
// f32 spec, the id (and name) its callers asked for. The validators held
// the model under both ids and ran each receipt's audit and dispute under
// the spec it states: its openings passed, and an honest challenger lost
// the dispute. A receipt's spec must now be its model id's: the openings
// fail, and a dispute is decided against the worker at once.
func TestAttackSpecUnderAnotherID(t *testing.T) {
	models := &Models{}
	defer models.Close()
	f32ID, err := models.Add(testutil.Shared(t, "models/stories260K.gguf"), "")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := models.Get(f32ID)
	kv16ID, err := modelid.OfSpec(m, engine.SpecKV16)
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(m, engine.Options{Threads: 1, KV: engine.KVF16})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	wk, err := keys.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	prompt := []int{1, 403, 407, 261, 378}
	p := sampler.Params{Temperature: 0.9, Seed: 3}
	stop := []int{m.Vocab.BOS}
	// run makes a binary16-cache receipt naming id.
	run := func(id merkle.Hash) (*receipt.Receipt, []byte) {
		rec := audit.NewRecorder(m.Config, prompt)
		res, err := generate.Run(context.Background(), e, generate.Request{Prompt: prompt, Steps: 24, Sampler: p, StopTokens: stop,
			OnLogits: func(pos int, l []float32) error { rec.Logits(pos, l); return nil }, Trace: rec})
		if err != nil {
			t.Fatal(err)
		}
		r, err := rec.Receipt(id, engine.SpecKV16, p, audit.EffectiveSteps(24, m.Config.ContextLen), stop, res.Output, nil, wk)
		if err != nil {
			t.Fatal(err)
		}
		rb, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return r, rb
	}
	seed := ledger.Hash(sha256.Sum256([]byte("audit seed")))
	const cells = 8
	check := func(r *receipt.Receipt, rb []byte) error {
		op, err := audit.Open(context.Background(), e, r, Seed(seed), cells)
		if err != nil {
			t.Fatal(err)
		}
		return Openings{Models: models}.CheckOpenings(rb, seed, cells, op.Marshal())
	}
	other := sha256.Sum256([]byte("a challenger's root"))

	// Under its own id the binary16 receipt passes, and a dispute is a game.
	r, rb := run(kv16ID)
	if err := check(r, rb); err != nil {
		t.Fatalf("openings of a receipt under its spec's id: %v", err)
	}
	cfg, ref, err := models.DisputeSetup(rb, other[:])
	if err != nil || ref == nil || cfg.Forfeit != [2]dispute.Loss{} {
		t.Fatalf("dispute over a receipt under its spec's id: forfeit %+v, referee %v, %v", cfg.Forfeit, ref != nil, err)
	}

	// Under the f32 id: refused.
	r, rb = run(merkle.Hash(f32ID))
	if err := check(r, rb); !errors.Is(err, errSpecMismatch) {
		t.Fatalf("openings of a binary16 receipt under the f32 id: %v, want a spec mismatch", err)
	}
	cfg, ref, err = models.DisputeSetup(rb, other[:])
	if err != nil || ref != nil || cfg.Forfeit[0].Fault != dispute.FaultSpecMismatch || cfg.Forfeit[0].Why == "" || cfg.Forfeit[1] != (dispute.Loss{}) {
		t.Fatalf("dispute over a binary16 receipt under the f32 id: forfeit %+v, referee %v, %v; want the worker's forfeit", cfg.Forfeit, ref != nil, err)
	}
}
