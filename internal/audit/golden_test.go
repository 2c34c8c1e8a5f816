package audit

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/sampler"
)

// TestGoldenReceipt keeps a receipt of stories260K (sampled, temperature
// 0.8, worker key from the all-zero seed) and its openings for challenge 7,
// K = 16, as test vectors. The receipt must be reproduced bit for bit (the
// engine is deterministic) and must replay and audit on every
// architecture: run this test under GOARCH=arm64 too.
func TestGoldenReceipt(t *testing.T) {
	f := loadFixture(t, "stories260K.gguf", 2)
	path := filepath.Join("testdata", "stories260K.receipt.json")
	opath := filepath.Join("testdata", "stories260K.openings.json")
	if *update {
		r := f.generateReceipt(t, storyPrompt, sampler.Params{Temperature: 0.8, TopP: 0.9, Seed: 2026}, 48)
		enc, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		o, err := Open(context.Background(), f.e, r, 7, 16)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, enc, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(opath, o.Marshal(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	enc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := receipt.Parse(enc)
	if err != nil {
		t.Fatal(err)
	}
	if err := Replay(context.Background(), f.e, r, f.id); err != nil {
		t.Fatalf("golden receipt does not replay here: %v", err)
	}
	again := f.generateReceipt(t, storyPrompt, sampler.Params{Temperature: 0.8, TopP: 0.9, Seed: 2026}, 48)
	if enc2, _ := again.Marshal(); !bytes.Equal(enc, enc2) {
		t.Fatalf("generating again gives another receipt:\n%s\n%s", enc, enc2)
	}
	ob, err := os.ReadFile(opath)
	if err != nil {
		t.Fatal(err)
	}
	o, err := ParseOpenings(ob)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(f.m, f.id, r, 7, 16, o); err != nil {
		t.Fatalf("golden openings do not audit here: %v", err)
	}
	for _, threads := range []int{1, 3} {
		g := loadFixture(t, "stories260K.gguf", threads)
		o2, err := Open(context.Background(), g.e, r, 7, 16)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(o2.Marshal(), ob) {
			t.Fatalf("opening again with %d threads gives other openings", threads)
		}
		if err := Replay(context.Background(), g.e, r, g.id); err != nil {
			t.Fatalf("%d threads: %v", threads, err)
		}
	}
}
