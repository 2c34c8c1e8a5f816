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
