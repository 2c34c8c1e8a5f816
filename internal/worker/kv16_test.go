package worker

import (
	"context"
	"errors"
	"testing"

	"github.com/verdictnet/verdict/internal/audit"
	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/modelid"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/testutil"
)

// A worker with the binary16 key/value cache serves the model under its id
// for engine.SpecKV16 and signs receipts under that spec, which it replays;
// the answers differ from the float32 cache's only where the logits do. A
// receipt of one spec does not pass as the other: relabelled, its
// signature fails; replayed by an engine of the other spec, it is refused
// as a spec mismatch, never checked against the wrong function.
func TestKV16Receipts(t *testing.T) {
	ctx := context.Background()
	path := testutil.Shared(t, "models/stories260K.gguf")
	w16, err := Open(Config{ModelPath: path, Threads: 1, KV: engine.KVF16})
	if err != nil {
		t.Fatal(err)
	}
	defer w16.Close()
	w32 := testWorker(t)
	info := w16.Models()[0]
	id16, err := modelid.OfSpec(w16.m, engine.SpecKV16)
	if err != nil {
		t.Fatal(err)
	}
	if info.Spec != engine.SpecKV16 || info.ID != id16 || info.ID == w32.Models()[0].ID || info.Fingerprint == w32.Models()[0].Fingerprint {
		t.Fatalf("binary16 worker serves %s under %q (fingerprint %s); float32: %s", info.ID, info.Spec, info.Fingerprint, w32.Models()[0].ID)
	}
	// Its own name by default (a ledger holds a name for one model id),
	// and the float32 model's name is not its.
	if info.Name != "stories260K+kv16" || w32.Models()[0].Name != "stories260K" {
		t.Fatalf("served as %q beside %q", info.Name, w32.Models()[0].Name)
	}
	if _, err := w16.Generate(ctx, textReq("Once upon a time", 4), nil); !errors.Is(err, ErrUnknownModel) {
		t.Fatalf("binary16 worker asked for the float32 model's name: %v", err)
	}
	req := textReq("Once upon a time", 40)
	req.Model = info.Name
	res, err := w16.Generate(ctx, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := receipt.Parse(res.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	if r.Spec != engine.SpecKV16 || r.Model != id16 {
		t.Fatalf("receipt under %q for %s", r.Spec, r.Model)
	}
	if v, err := w16.Verify(ctx, res.Receipt, true); err != nil || !v.Match {
		t.Fatalf("own replay: %+v, %v", v, err)
	}
	if v, err := w32.Verify(ctx, res.Receipt, true); err != nil || v.Match || v.Replayed {
		t.Fatalf("a float32 worker replayed a binary16 receipt: %+v, %v", v, err)
	}
	// The float32 engine, told the binary16 id: a spec mismatch.
	err = audit.Replay(ctx, w32.e, r, id16)
	var mm *audit.Mismatch
	if !errors.As(err, &mm) || mm.What != "spec" {
		t.Fatalf("float32 engine on a binary16 receipt: %v", err)
	}
	// Relabelled as the float32 spec: the signature no longer holds.
	r2 := *r
	r2.Spec = engine.SpecVersion
	if err := r2.Verify(); err == nil {
		t.Fatal("a receipt relabelled to another spec kept its signature")
	}
	// The same request under the float32 cache: same prompt, a receipt of
	// the other id and spec.
	res32, err := w32.Generate(ctx, textReq("Once upon a time", 40), nil)
	if err != nil {
		t.Fatal(err)
	}
	r32, _ := receipt.Parse(res32.Receipt)
	if r32.Spec != engine.SpecVersion || r32.Model == r.Model || r32.LogitsRoot == r.LogitsRoot {
		t.Fatalf("float32 receipt under %q for %s, logits root %s (binary16: %s)", r32.Spec, r32.Model, r32.LogitsRoot, r.LogitsRoot)
	}
	t.Logf("binary16 %q, float32 %q", res.Text, res32.Text)
}
