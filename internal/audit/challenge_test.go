package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// TestChallengeVectors records challenge selections as test vectors for
// other implementations, and checks the first draw by hand.
func TestChallengeVectors(t *testing.T) {
	id := sha256.Sum256([]byte("receipt"))
	lay := Layout{Layers: 5, Dim: 64, KVHeads: 4, HeadDim: 8, Prompt: 5, Output: 60}
	// Independent computation of word 0 of tag 'c' from the spec text.
	msg := append([]byte("verdict/challenge/v1\x00"), id[:]...)
	msg = append(msg, 7, 0, 0, 0, 0, 0, 0, 0, 'c', 0, 0, 0, 0, 0, 0, 0, 0)
	h := sha256.Sum256(msg)
	var w uint64
	for i := 7; i >= 0; i-- {
		w = w<<8 | uint64(h[i])
	}
	if got := challengeWord(id, 7, 'c', 0); got != w {
		t.Fatalf("challenge word %x, spec gives %x", got, w)
	}
	type vec struct {
		Seed  uint64 `json:"seed"`
		K     int    `json:"k"`
		Cells []int  `json:"cells"`
		Heads []int  `json:"heads"`
	}
	var vs []vec
	for _, c := range []struct {
		seed uint64
		k    int
	}{{0, 1}, {7, 4}, {1 << 63, 16}} {
		v := vec{Seed: c.seed, K: c.k, Cells: lay.Select(id, c.seed, c.k)}
		for _, cell := range v.Cells {
			v.Heads = append(v.Heads, lay.Head(id, c.seed, cell))
		}
		vs = append(vs, v)
	}
	// A long receipt of a model with a large head: its late layer cells'
	// openings exceed the per-cell budget, so each challenge draws among
	// the layer cells of the first "positions" positions and the logits
	// cells (docs/protocol.md 7, "Openings budget").
	long := Layout{Layers: 2, Dim: 256, KVHeads: 1, HeadDim: 256, Heads: 1, Prompt: 3000, Output: 10}
	type bvec struct {
		vec
		Positions int  `json:"positions"`
		Logits    bool `json:"logits"`
	}
	var bvs []bvec
	for _, c := range []struct {
		seed uint64
		k    int
	}{{0, 1}, {7, 4}, {1 << 63, 16}} {
		v := bvec{vec: vec{Seed: c.seed, K: c.k, Cells: long.Select(id, c.seed, c.k)}}
		v.Positions, v.Logits = long.Challengeable(c.k)
		for _, cell := range v.Cells {
			v.Heads = append(v.Heads, long.Head(id, c.seed, cell))
		}
		bvs = append(bvs, v)
	}
	out, _ := json.MarshalIndent(map[string]any{
		"receipt_id": "sha256(\"receipt\")", "layers": 5, "kv_heads": 4, "prompt": 5, "output": 60, "cells_total": lay.Cells(), "vectors": vs,
		"bounded": map[string]any{"layers": 2, "dim": 256, "heads": 1, "kv_heads": 1, "head_dim": 256, "prompt": 3000, "output": 10,
			"cells_total": long.Cells(), "vectors": bvs},
	}, "", "  ")
	path := filepath.Join("testdata", "challenge.json")
	if *update {
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, out) {
		t.Fatalf("challenge selection differs from %s (run -update if intended):\n%s", path, out)
	}
}
