package devnet

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/modelid"
)

// TestKV16Devnet runs the devnet with the binary16 key/value cache: the
// worker serves the built-in model under its id for engine.SpecKV16, which
// the validator holds and attests to, and the verifier replays its
// receipts exactly under that spec until they become final.
func TestKV16Devnet(t *testing.T) {
	d := start(t, Options{KV: engine.KVF16})
	if d.Model.Spec != engine.SpecKV16 {
		t.Fatalf("devnet serves spec %q", d.Model.Spec)
	}
	if id, err := modelid.Of(d.Worker.Model()); err != nil || id == d.Model.ID {
		t.Fatalf("binary16 id %s equals the float32 one (%v)", d.Model.ID, err)
	}
	code, body := post(t, d, d.APIKey, "/v1/chat/completions", `{"model":"verdict-tiny","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":12,"seed":3,"temperature":0.8}`)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var r chatResponse
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Verdict.ReceiptID) != 64 {
		t.Fatalf("no receipt id in %s", body)
	}
	waitStatus(t, d, r.Verdict.ReceiptID, 60*time.Second, ledger.StatusFinal)
	if s := d.Verifier.Stats(); s.Replayed < 1 || s.Mismatches != 0 {
		t.Fatalf("verifier stats %+v: want an exact replay", s)
	}
}
