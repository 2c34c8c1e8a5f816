package engine_test

import (
	"testing"

	"github.com/verdictnet/verdict/internal/engine"
)

// TestReleasedCacheReused runs a generation on a fresh engine and the same
// generation on an engine whose new sequences take the cache of released
// ones (a longer sequence, released, then a shorter one, released mid-way
// and started again): every logit bit must agree, a released sequence
// must be refused, and the engine's counters must show each cache taken
// from the released one before it.
func TestReleasedCacheReused(t *testing.T) {
	l := load(t, "synth:tiny256:mix", "")
	prompt := make([]int, 40)
	other := make([]int, 70)
	for j := range other {
		other[j] = 1 + (j*7919)%(l.m.Config.Vocab-1)
		if j < len(prompt) {
			prompt[j] = 1 + (j*104729+3)%(l.m.Config.Vocab-1)
		}
	}
	generate := func(e *engine.Engine, seq *engine.Sequence) [][]float32 {
		t.Helper()
		it := &engine.Item{Seq: seq, Tokens: prompt, Logits: engine.LogitsAll}
		var out [][]float32
		for range 6 {
			if err := e.Forward(it); err != nil {
				t.Fatal(err)
			}
			out = append(out, it.Out...)
			it.Tokens = []int{argmax(it.Out[len(it.Out)-1])}
		}
		return out
	}
	newEngine := func() *engine.Engine {
		e, err := engine.New(l.m, engine.Options{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
		return e
	}
	newSeq := func(e *engine.Engine, n int) *engine.Sequence {
		seq, err := e.NewSequence(n)
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	e := newEngine()
	want := generate(e, newSeq(e, len(prompt)+5))

	c := l.m.Config
	perPos := int64(c.Layers) * int64(c.KVDim()) * 2 * 4 // a key and a value per layer
	e = newEngine()
	old := newSeq(e, len(other))
	if err := e.Forward(&engine.Item{Seq: old, Tokens: other, Logits: engine.LogitsNone}); err != nil {
		t.Fatal(err)
	}
	// The prompt takes the whole room at once (no doubling past it).
	if st, want := e.KVStats(), (engine.KVStats{Allocated: int64(len(other)) * perPos}); st != want {
		t.Fatalf("after the first sequence: %+v, want %+v", st, want)
	}
	old.Release()
	old.Release() // idempotent
	if err := e.Forward(&engine.Item{Seq: old, Tokens: []int{1}, Logits: engine.LogitsLast}); err == nil {
		t.Fatal("Forward accepted a released sequence")
	}
	for round := range 3 {
		seq := newSeq(e, len(prompt)+5)
		got := generate(e, seq)
		if len(got) != len(want) {
			t.Fatalf("round %d: %d logit vectors, want %d", round, len(got), len(want))
		}
		for i := range got {
			if !sameBits(got[i], want[i]) {
				t.Fatalf("round %d: logit vector %d differs from a fresh engine's", round, i)
			}
		}
		seq.Release()
		// Each round's cache (its whole room, taken with the prompt)
		// came from the sequence released before it.
		if st, want := e.KVStats(), (engine.KVStats{Allocated: int64(len(other)) * perPos, Reused: int64(round+1) * int64(len(prompt)+5) * perPos}); st != want {
			t.Fatalf("round %d: %+v, want %+v", round, st, want)
		}
	}
}

// argmax is the index of the first largest value.
func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
