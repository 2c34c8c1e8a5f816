package engine_test

import (
	"testing"

	"github.com/verdictnet/verdict/internal/engine"
)

// TestPageSizesEqual runs a prefill and greedy decode steps, alone and as
// a batch of two sequences, with cache pages of 1, 3, 16 and 256
// positions (the prefill crossing many pages, a decode step adding one):
// the layout of the cache changes no bit.
func TestPageSizesEqual(t *testing.T) {
	for _, mf := range append(cellModels, [2]string{"synth:tiny256:mix", ""}) {
		t.Run(mf[0], func(t *testing.T) {
			l := load(t, mf[0], mf[1])
			prompt := make([]int, 40)
			for j := range prompt {
				prompt[j] = 1 + (j*7919+5)%(l.m.Config.Vocab-1)
			}
			var want [][]float32
			for _, page := range []int{256, 1, 3, 16} {
				e := newEngine(t, l.m, 2)
				engine.SetPagePositions(e, page)
				got := forwardAll(t, e, prompt, 5)
				if want == nil {
					want = got
				} else if err := sameLogits(got, want); err != nil {
					t.Fatalf("pages of %d positions: %v", page, err)
				}
				// Two sequences in one batch: one prefill of both prompts.
				a, _ := e.NewSequence(len(prompt))
				b, _ := e.NewSequence(len(prompt) + 3)
				ia := &engine.Item{Seq: a, Tokens: prompt, Logits: engine.LogitsAll}
				ib := &engine.Item{Seq: b, Tokens: prompt, Logits: engine.LogitsAll}
				if err := e.Forward(ia, ib); err != nil {
					t.Fatal(err)
				}
				if err := sameLogits(ia.Out, want[:len(prompt)]); err != nil {
					t.Fatalf("pages of %d positions, batch item 0: %v", page, err)
				}
				if err := sameLogits(ib.Out, want[:len(prompt)]); err != nil {
					t.Fatalf("pages of %d positions, batch item 1: %v", page, err)
				}
				a.Release()
				b.Release()
			}
		})
	}
}

// TestCacheBytes: a sequence fed n positions, in one pass or one at a
// time, holds CacheBytes(cap, n) bytes (Sequence.Bytes), for pages of 3,
// 16 and 256 positions (Options.PagePositions) and both cache types, and
// cap*KVBytesPerPosition once full; a negative page size is refused.
func TestCacheBytes(t *testing.T) {
	l := load(t, "synth:tiny256:mix", "")
	for _, kv := range []engine.KVType{engine.KVF32, engine.KVF16} {
		for _, page := range []int{3, 16, 256} {
			e, err := engine.New(l.m, engine.Options{Threads: 1, KV: kv, PagePositions: page})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct{ cap, n int }{{1, 1}, {10, 1}, {10, 3}, {10, 4}, {10, 10}, {40, 17}, {40, 32}, {200, 199}} {
				s, err := e.NewSequence(c.cap)
				if err != nil {
					t.Fatal(err)
				}
				if got := s.Bytes(); got != 0 || e.CacheBytes(c.cap, 0) != 0 {
					t.Errorf("page %d, an empty sequence holds %d bytes, CacheBytes %d", page, got, e.CacheBytes(c.cap, 0))
				}
				toks := make([]int, c.n)
				for i := range toks {
					toks[i] = 1 + i%7
				}
				if err := e.Forward(&engine.Item{Seq: s, Tokens: toks[:c.n/2]}); err != nil {
					t.Fatal(err)
				}
				for _, tk := range toks[c.n/2:] {
					if err := e.Forward(&engine.Item{Seq: s, Tokens: []int{tk}}); err != nil {
						t.Fatal(err)
					}
				}
				if got, want := s.Bytes(), e.CacheBytes(c.cap, c.n); got != want {
					t.Errorf("%v, page %d, cap %d: %d positions hold %d bytes, CacheBytes %d", kv, page, c.cap, c.n, got, want)
				}
				if c.n == c.cap && s.Bytes() != int64(c.cap)*e.KVBytesPerPosition() {
					t.Errorf("%v, page %d: a full sequence of %d holds %d bytes", kv, page, c.cap, s.Bytes())
				}
				s.Release()
			}
			e.Close()
		}
	}
	if _, err := engine.New(l.m, engine.Options{PagePositions: -1}); err == nil {
		t.Error("a page of -1 positions was accepted")
	}
}
