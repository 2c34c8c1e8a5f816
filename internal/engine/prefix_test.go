package engine_test

import (
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/engine"
)

// TestCopyPrefix: a sequence given another's first m positions
// (Sequence.CopyPrefix) and fed the rest of the tokens computes every
// logit bit and holds every key and value bit that one sequence fed all of
// them does: m from none to all the source holds, across cache pages (3
// positions a page), the float32 and the binary16 cache. Bad calls fail
// with one line and change nothing.
func TestCopyPrefix(t *testing.T) {
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
				if err := dst.CopyPrefix(src, m); err != nil {
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
				for layer := 0; layer < c.Layers; layer++ {
					for p := range toks {
						k, v := dst.KV(layer, p)
						wk, wv := whole.KV(layer, p)
						if !sameBits(k, wk) || !sameBits(v, wv) {
							t.Fatalf("m %d: layer %d position %d keys or values differ", m, layer, p)
						}
					}
				}
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
				err := c.dst.CopyPrefix(c.src, c.m)
				if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
					t.Errorf("CopyPrefix(m %d): %v, want one line with %q", c.m, err, c.want)
				}
			}
			if dst.Pos != 0 || used.Pos != 2 {
				t.Errorf("refused copies changed the sequences: Pos %d and %d", dst.Pos, used.Pos)
			}
		})
	}
}
