package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/audit"
	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/generate"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/sampler"
)

// TestVerifyOpenAudit drives `verify`, `open` and `audit` on a receipt made
// as `run --receipt` makes one.
func TestVerifyOpenAudit(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "models")
	gg := filepath.Join(dir, "stories260K.gguf")
	if _, err := os.Stat(gg); err != nil {
		t.Skipf("shared models not available at %s", dir)
	}
	tmp := t.TempDir()
	keyFile := filepath.Join(tmp, "w.key")
	if _, err := keys.Generate(keyFile); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(gg, "")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	e, err := engine.New(m, engine.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	prompt := []int{1, 403, 407, 261, 378}
	params := sampler.Params{Temperature: 0.7, Seed: 5}
	b, err := audit.NewBuilder(keyFile, m, engine.SpecVersion, prompt, params, 48, []int{1})
	if err != nil {
		t.Fatal(err)
	}
	res, err := generate.Run(context.Background(), e, generate.Request{Prompt: prompt, Steps: 48, Sampler: params, StopTokens: []int{1},
		OnLogits: func(pos int, l []float32) error { b.Logits(pos, l); return nil }, Trace: b.Tracer()})
	if err != nil {
		t.Fatal(err)
	}
	rpath := filepath.Join(tmp, "r.json")
	if _, err := b.Finish(res.Output, rpath); err != nil {
		t.Fatal(err)
	}
	cmd := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), args, &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, errs := cmd("verify", rpath, "--model", gg); code != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("verify: exit %d: %s%s", code, out, errs)
	}
	// A pretty-printed copy (as `jq .` writes it) verifies as the receipt.
	enc0, _ := os.ReadFile(rpath)
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, enc0, "", "  "); err != nil {
		t.Fatal(err)
	}
	ppath := filepath.Join(tmp, "pretty.json")
	os.WriteFile(ppath, pretty.Bytes(), 0o644)
	if code, out, errs := cmd("verify", ppath, "--model", gg); code != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("verify pretty-printed: exit %d: %s%s", code, out, errs)
	}
	// The .bin twin verifies too.
	if code, out, errs := cmd("verify", rpath, "--model", filepath.Join(dir, "stories260K.bin"), "--tokenizer", filepath.Join(dir, "tok512.bin"), "--threads", "1"); code != 0 {
		t.Fatalf("verify on .bin: exit %d: %s%s", code, out, errs)
	}
	opath := filepath.Join(tmp, "o.json")
	if code, out, errs := cmd("open", rpath, "--model", gg, "--challenge", "77", "--cells", "16", "--out", opath); code != 0 {
		t.Fatalf("open: exit %d: %s%s", code, out, errs)
	}
	if code, out, errs := cmd("audit", rpath, opath, "--model", gg, "--challenge", "77", "--cells", "16"); code != 0 {
		t.Fatalf("audit: exit %d: %s%s", code, out, errs)
	}
	if code, _, errs := cmd("audit", rpath, opath, "--model", gg, "--challenge", "78", "--cells", "16"); code != 1 || strings.Count(errs, "\n") != 1 {
		t.Fatalf("audit with another challenge: exit %d: %q", code, errs)
	}
	// A different model, a tampered receipt, a garbage receipt.
	if code, _, errs := cmd("verify", rpath, "--model", filepath.Join(dir, "stories260K-F16.gguf")); code != 1 || !strings.Contains(errs, "model") {
		t.Fatalf("verify with F16: exit %d: %q", code, errs)
	}
	enc, _ := os.ReadFile(rpath)
	r, _ := receipt.Parse(enc)
	r.Output[len(r.Output)/2] ^= 1
	kk, _ := keys.Load(keyFile)
	if err := r.Sign(kk.Private); err != nil {
		t.Fatal(err)
	}
	forged, _ := r.Marshal()
	fpath := filepath.Join(tmp, "forged.json")
	os.WriteFile(fpath, forged, 0o644)
	if code, _, errs := cmd("verify", fpath, "--model", gg); code != 1 || !strings.Contains(errs, "position") {
		t.Fatalf("verify forged: exit %d: %q", code, errs)
	}
	os.WriteFile(fpath, []byte("{not a receipt"), 0o644)
	if code, _, errs := cmd("verify", fpath, "--model", gg); code != 1 || strings.Count(errs, "\n") != 1 {
		t.Fatalf("verify garbage: exit %d: %q", code, errs)
	}
}
