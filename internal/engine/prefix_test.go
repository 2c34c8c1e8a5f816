package engine_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/verdictnet/verdict/internal/engine"
)

// TestCopyPrefix: a sequence given another's first m positions
// (Sequence.CopyPrefix, or Sequence.SharePrefix: the whole pages shared)
// and fed the rest of the tokens computes every logit bit and holds every
// key and value bit that one sequence fed all of them does: m from none to
// all the source holds, across cache pages (3 positions a page), the
// float32 and the binary16 cache. Bad calls fail with one line and change
// nothing.
func TestCopyPrefix(t *testing.T) {
	for _, share := range []bool{false, true} {
		t.Run(map[bool]string{false: "copy", true: "share"}[share], func(t *testing.T) { testCopyPrefix(t, share) })
	}
}

// takePrefix is dst.CopyPrefix(src, m), or dst.SharePrefix(src, m) when
// share, which must report the bytes of the whole pages below m (3
// positions a page) and change nothing when it refuses.
func takePrefix(t *testing.T, e *engine.Engine, dst, src *engine.Sequence, m int, share bool) error {
	t.Helper()
	if !share {
		return dst.CopyPrefix(src, m)
	}
	before := dst.Bytes()
	n, err := dst.SharePrefix(src, m)
	if err != nil {
		if n != 0 || dst.Bytes() != before {
			t.Errorf("a refused share reported %d bytes, the sequence holds %d (%d before)", n, dst.Bytes(), before)
		}
		return err
	}
	if want := int64(m/3*3) * e.KVBytesPerPosition(); n != want {
		t.Errorf("m %d: %d bytes shared, want %d (%d whole pages)", m, n, want, m/3)
	}
	return nil
}

func testCopyPrefix(t *testing.T, share bool) {
	for _, mf := range [][2]string{{"synth:tiny-llama3:f16", ""}, {"synth:tiny-qwen3:q4_k_m", ""}, {"synth:tiny-llama3:f16" + kvSuffix, ""}} {
		t.Run(mf[0], func(t *testing.T) {
			l := load(t, mf[0], mf[1])
			e := newEngine(t, l.m, 2)
			engine.SetPagePositions(e, 3)
			c := l.m.Config
			toks := make([]int, 14)
			for i := range toks {
				toks[i] = 1 + (i*7919)%(c.Vocab-1)
			}
			whole, err := e.NewSequence(len(toks) + 2)
			if err != nil {
				t.Fatal(err)
			}
			all := &engine.Item{Seq: whole, Tokens: toks, Logits: engine.LogitsAll}
			if err := e.Forward(all); err != nil {
				t.Fatal(err)
			}
			// The source: the first 10 tokens in two passes, a cap
			// other than the copies'.
			src, err := e.NewSequence(11)
			if err != nil {
				t.Fatal(err)
			}
			for _, part := range [][]int{toks[:4], toks[4:10]} {
				if err := e.Forward(&engine.Item{Seq: src, Tokens: part}); err != nil {
					t.Fatal(err)
				}
			}
			for _, m := range []int{0, 1, 3, 4, 9, 10} {
				dst, err := e.NewSequence(len(toks) + 2)
				if err != nil {
					t.Fatal(err)
				}
				if err := takePrefix(t, e, dst, src, m, share); err != nil {
					t.Fatalf("m %d: %v", m, err)
				}
				if dst.Pos != m {
					t.Fatalf("m %d: Pos %d after the copy", m, dst.Pos)
				}
				it := &engine.Item{Seq: dst, Tokens: toks[m:], Logits: engine.LogitsAll}
				if err := e.Forward(it); err != nil {
					t.Fatal(err)
				}
				for i, v := range it.Out {
					if !sameBits(v, all.Out[m+i]) {
						t.Fatalf("m %d: logits of position %d differ from one sequence fed every token", m, m+i)
					}
				}
				sameCache(t, fmt.Sprintf("m %d", m), dst, whole, c.Layers, len(toks))
				dst.Release()
			}
			// Bad calls.
			dst, _ := e.NewSequence(5)
			used, _ := e.NewSequence(8)
			if err := e.Forward(&engine.Item{Seq: used, Tokens: toks[:2]}); err != nil {
				t.Fatal(err)
			}
			other := newEngine(t, l.m, 1)
			engine.SetPagePositions(other, 4)
			foreign, _ := other.NewSequence(8)
			if err := other.Forward(&engine.Item{Seq: foreign, Tokens: toks[:6]}); err != nil {
				t.Fatal(err)
			}
			gone, _ := e.NewSequence(8)
			gone.Release()
			for _, c := range []struct {
				dst, src *engine.Sequence
				m        int
				want     string
			}{
				{dst, src, 11, "the source holds 10"},
				{dst, src, 6, "exceed the sequence's 5"},
				{dst, src, -1, "-1 positions asked"},
				{used, src, 1, "already holds 2"},
				{dst, foreign, 2, "differ in shape"},
				{dst, gone, 0, "released"},
			} {
				err := takePrefix(t, e, c.dst, c.src, c.m, share)
				if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
					t.Errorf("m %d: %v, want one line with %q", c.m, err, c.want)
				}
			}
			// A sequence set back to position 0 keeps its pages (maybe
			// shared): none can be shared or copied in their place.
			used.Pos = 0
			if err := takePrefix(t, e, used, src, 3, share); err == nil || !strings.Contains(err.Error(), "already holds cache pages") {
				t.Errorf("taking a prefix into a sequence with pages: %v", err)
			}
			used.Pos = 2
			if dst.Pos != 0 || used.Pos != 2 {
				t.Errorf("refused copies changed the sequences: Pos %d and %d", dst.Pos, used.Pos)
			}
		})
	}
}

// TestSharePrefixLifetime: pages shared by SharePrefix outlive the
// sequence that gave them and are never written through another: two
// sequences take a source's first 9 positions (3 whole pages of 3) at the
// same time; the source is released and a new sequence fed other tokens
// takes the pages it gave back; one taker is set back into the shared
// pages and fed other tokens (it gets copies of its own); the other taker,
// and the source's cache while it lived, still hold every bit of one
// sequence fed the tokens, and both takers compute what a sequence fed
// their tokens alone computes.
func TestSharePrefixLifetime(t *testing.T) {
	l := load(t, "synth:tiny-llama3:f16", "")
	e := newEngine(t, l.m, 2)
	engine.SetPagePositions(e, 3)
	c := l.m.Config
	toks, alt := make([]int, 14), make([]int, 14)
	for i := range toks {
		toks[i] = 1 + (i*7919)%(c.Vocab-1)
		alt[i] = 1 + (i*104729+17)%(c.Vocab-1)
	}
	run := func(ts []int) (*engine.Sequence, *engine.Item) {
		t.Helper()
		seq, err := e.NewSequence(len(ts) + 2)
		if err != nil {
			t.Fatal(err)
		}
		it := &engine.Item{Seq: seq, Tokens: ts, Logits: engine.LogitsAll}
		if err := e.Forward(it); err != nil {
			t.Fatal(err)
		}
		return seq, it
	}
	whole, all := run(toks)
	mixed, mixedAll := run(append(slices.Clone(toks[:4]), alt[4:]...))
	sameKV := func(what string, s, want *engine.Sequence, n int) {
		t.Helper()
		sameCache(t, what, s, want, c.Layers, n)
	}
	src, _ := run(toks[:10])
	takers := make([]*engine.Sequence, 2)
	var wg sync.WaitGroup
	for i := range takers {
		seq, err := e.NewSequence(len(toks) + 2)
		if err != nil {
			t.Fatal(err)
		}
		takers[i] = seq
		wg.Add(1)
		go func() {
			defer wg.Done()
			if n, err := seq.SharePrefix(src, 9); err != nil || n != 9*e.KVBytesPerPosition() {
				t.Errorf("SharePrefix: %d bytes, %v", n, err)
			}
		}()
	}
	wg.Wait()
	src.Release()
	if other, _ := run(alt); other == nil {
		t.Fatal("no sequence")
	}
	a, b := takers[0], takers[1]
	sameKV("a taker after the source's release", a, whole, 9)
	b.Pos = 4
	itB := &engine.Item{Seq: b, Tokens: alt[4:], Logits: engine.LogitsAll}
	if err := e.Forward(itB); err != nil {
		t.Fatal(err)
	}
	itA := &engine.Item{Seq: a, Tokens: toks[9:], Logits: engine.LogitsAll}
	if err := e.Forward(itA); err != nil {
		t.Fatal(err)
	}
	sameKV("the taker fed on", a, whole, len(toks))
	sameKV("the taker set back", b, mixed, len(toks))
	for i, v := range itA.Out {
		if !sameBits(v, all.Out[9+i]) {
			t.Fatalf("the taker fed on: logits of position %d differ", 9+i)
		}
	}
	for i, v := range itB.Out {
		if !sameBits(v, mixedAll.Out[4+i]) {
			t.Fatalf("the taker set back: logits of position %d differ", 4+i)
		}
	}
	a.Release()
	b.Release()
	// The pages came back once: a new sequence that takes them all holds
	// what it is fed.
	again, _ := run(toks)
	sameKV("a sequence after both takers' release", again, whole, len(toks))
}

// sameCache fails t unless s holds the bits want holds, keys and values of
// every layer at positions 0..n-1.
func sameCache(t *testing.T, what string, s, want *engine.Sequence, layers, n int) {
	t.Helper()
	for layer := range layers {
		for p := range n {
			k, v := s.KV(layer, p)
			wk, wv := want.KV(layer, p)
			if !sameBits(k, wk) || !sameBits(v, wv) {
				t.Fatalf("%s: layer %d position %d keys or values differ", what, layer, p)
			}
		}
	}
}
