package devnet

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/synth"
	"github.com/verdictnet/verdict/internal/testutil"
)

// TestQwen3Devnet serves a synthetic qwen3 (llama.cpp's Q4_K_M mix, the
// real Qwen vocabulary and its chat template): chat completions return
// receipts that the verifier replays exactly and that become final.
func TestQwen3Devnet(t *testing.T) {
	vocab := testutil.Shared(t, "tokenizers/derived/ggml-vocab-qwen2.derived-from-qwen3.gguf")
	path := filepath.Join(t.TempDir(), "qwen3.gguf")
	if err := synth.WriteFile(path, synth.Options{Preset: "tiny256-qwen3", Vocab: vocab, Seed: 2, Type: "q4_k_m"}); err != nil {
		t.Fatal(err)
	}
	d := start(t, Options{ModelPath: path})
	var ids []string
	name, _ := json.Marshal(d.Model.Name)
	for _, body := range []string{
		`{"model":` + string(name) + `,"messages":[{"role":"user","content":"What is a verifiable receipt?"}],"max_tokens":10,"seed":3,"temperature":0.8}`,
		`{"model":` + string(name) + `,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello"}],"max_tokens":6,"temperature":0}`,
	} {
		code, resp := post(t, d, d.APIKey, "/v1/chat/completions", body)
		if code != 200 {
			t.Fatalf("status %d: %s", code, resp)
		}
		var r chatResponse
		if err := json.Unmarshal(resp, &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Verdict.ReceiptID) != 64 || r.Usage.CompletionTokens < 1 || r.Usage.PromptTokens < 5 {
			t.Fatalf("response %s", resp)
		}
		ids = append(ids, r.Verdict.ReceiptID)
	}
	for _, id := range ids {
		waitStatus(t, d, id, 60*time.Second, ledger.StatusFinal)
	}
	if s := d.Verifier.Stats(); s.Replayed < int64(len(ids)) || s.Mismatches != 0 {
		t.Fatalf("verifier stats %+v: want %d exact replays", s, len(ids))
	}
}
