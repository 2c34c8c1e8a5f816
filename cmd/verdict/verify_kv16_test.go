package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/chat"
	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/worker"
)

// TestVerifyKV16 drives `verify`, `open` and `audit` on a receipt of a
// worker run with the binary16 key/value cache: each takes the spec from
// the receipt. A receipt under a spec this build does not implement is
// refused in one line naming it.
func TestVerifyKV16(t *testing.T) {
	gg := filepath.Join(sharedModelsDir(t), "stories260K.gguf")
	k, err := keys.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.Open(worker.Config{ModelPath: gg, Threads: 2, Key: k, KV: engine.KVF16})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	res, err := w.Generate(context.Background(), worker.Request{Model: w.Models()[0].Name, MaxTokens: 40,
		Segments: []chat.Segment{{Text: "Once upon a time", BOS: true}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	rpath := filepath.Join(tmp, "r.json")
	if err := os.WriteFile(rpath, res.Receipt, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := verdict("verify", rpath, "--model", gg); code != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("verify: exit %d: %s%s", code, out, errs)
	}
	opath := filepath.Join(tmp, "o.json")
	if code, out, errs := verdict("open", rpath, "--model", gg, "--challenge", "5", "--cells", "8", "--out", opath); code != 0 {
		t.Fatalf("open: exit %d: %s%s", code, out, errs)
	}
	if code, out, errs := verdict("audit", rpath, opath, "--model", gg, "--challenge", "5", "--cells", "8"); code != 0 {
		t.Fatalf("audit: exit %d: %s%s", code, out, errs)
	}
	r, err := receipt.Parse(res.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	r.Spec = "verdict-det/9"
	if err := r.Sign(k.Private); err != nil {
		t.Fatal(err)
	}
	enc, _ := r.Marshal()
	if err := os.WriteFile(rpath, enc, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := verdict("verify", rpath, "--model", gg); code != 1 || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "verdict-det/9") {
		t.Fatalf("verify under an unknown spec: exit %d: %q", code, errs)
	}
}

// `verdict model id --kv-cache f16` prints the id a worker run with
// --kv-cache f16 serves (its manifest's spec line names the spec), not the
// default one.
func TestModelIDKV16(t *testing.T) {
	gg := filepath.Join(sharedModelsDir(t), "stories260K.gguf")
	w, err := worker.Open(worker.Config{ModelPath: gg, Threads: 1, KV: engine.KVF16})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	last := func(args ...string) string {
		code, out, errs := verdict(args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errs)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		return lines[len(lines)-1]
	}
	id16, id32 := last("model", "id", gg, "--kv-cache", "f16"), last("model", "id", gg)
	if id16 != w.Models()[0].ID.String() || id16 == id32 {
		t.Fatalf("model id --kv-cache f16: %s; the binary16 worker serves %s, the default id is %s", id16, w.Models()[0].ID, id32)
	}
	if code, out, errs := verdict("model", "id", gg, "--kv-cache", "f16", "--manifest"); code != 0 || !strings.Contains(out, "\nspec "+engine.SpecKV16+"\n") {
		t.Fatalf("manifest: exit %d: %s%s", code, out, errs)
	}
	if code, _, _ := verdict("model", "id", gg, "--kv-cache", "f8"); code == 0 {
		t.Fatal("--kv-cache f8 accepted")
	}
}

// `verdict run --kv-cache f16 --key K --receipt R` signs a receipt under the
// binary16 spec that `verdict verify` replays; its digest differs from the
// float32 cache's.
func TestRunKV16Receipt(t *testing.T) {
	gg := filepath.Join(sharedModelsDir(t), "stories260K.gguf")
	tmp := t.TempDir()
	keyFile := filepath.Join(tmp, "w.key")
	if _, err := keys.Generate(keyFile); err != nil {
		t.Fatal(err)
	}
	rpath := filepath.Join(tmp, "r.json")
	code, out16, errs := verdict("run", "--model", gg, "--prompt", "Once upon a time", "--steps", "40", "--digest", "--kv-cache", "f16", "--key", keyFile, "--receipt", rpath)
	if code != 0 {
		t.Fatalf("run: exit %d: %s", code, errs)
	}
	_, out32, _ := verdict("run", "--model", gg, "--prompt", "Once upon a time", "--steps", "40", "--digest")
	d := func(s string) string { _, v, _ := strings.Cut(s, "digest: "); return strings.TrimSpace(v) }
	if d(out16) == "" || d(out16) == d(out32) {
		t.Fatalf("digests: %q with the binary16 cache, %q without", d(out16), d(out32))
	}
	b, err := os.ReadFile(rpath)
	if err != nil {
		t.Fatal(err)
	}
	r, err := receipt.Parse(b)
	if err != nil || r.Spec != engine.SpecKV16 {
		t.Fatalf("receipt spec %v, %v", r, err)
	}
	if code, out, errs := verdict("verify", rpath, "--model", gg); code != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("verify: exit %d: %s%s", code, out, errs)
	}
}
