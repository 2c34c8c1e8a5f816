package scheduler_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/verdictnet/verdict/internal/audit"
	"github.com/verdictnet/verdict/internal/generate"
)

// TestAbandonedPrefill: a caller who goes away before its first token gets
// its context's error and, in PromptComputed, the prompt positions handed
// to steps for it: those of the chunks up to the one in the forward pass
// when it left (mid-prefill), or its whole prompt but what it took from
// the prefix cache (gone once the prompt is computed, before the first
// token is sampled). A prompt computed whole is kept by the prefix cache,
// as that of a generation that ended: the caller's retry takes all but its
// last position, and answers as generate.Run alone.
func TestAbandonedPrefill(t *testing.T) {
	const n = 60 // prompt positions; chunks of 16
	for _, tc := range []struct {
		name string
		// hangAt: the caller goes away while the forward pass computes
		// this position (-1: once its prompt's last logits are in hand,
		// before its first token).
		hangAt int
		// again: the same prompt was abandoned once before.
		again        bool
		computed     int
		kept, cached int // the retry's cached positions, the abandoned request's
	}{
		{name: "mid-prefill", hangAt: 20, computed: 32},
		{name: "in the first chunk", hangAt: 3, computed: 16},
		{name: "before the first token", hangAt: -1, computed: n, kept: n - 1},
		{name: "before the first token, again", hangAt: -1, again: true, computed: 1, kept: n - 1, cached: n - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, s := joinScheduler(t, 8, 4, 16)
			c := e.Model().Config
			prompt := randPrompt(rand.New(rand.NewPCG(7, 7)), n)
			abandon := func() generate.Result {
				t.Helper()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				returned := make(chan struct{})
				rec := audit.NewRecorder(c, prompt)
				req := generate.Request{Prompt: prompt, Steps: n + 10, OutputLogitsOnly: true, StopTokens: []int{1, 2},
					OnLogits: func(pos int, l []float32) error {
						rec.Logits(pos, l)
						if tc.hangAt < 0 && pos == n-1 {
							cancel()
						}
						return nil
					},
					OnToken: func(int, int) error { t.Error("a token was sampled"); return nil },
				}
				if tc.hangAt >= 0 {
					req.Trace = &cancelAt{prefixRec: prefixRec{rec}, at: tc.hangAt, cancel: cancel, returned: returned}
				} else {
					req.Trace = prefixRec{rec}
				}
				res, err := s.Run(ctx, req)
				close(returned)
				if !errors.Is(err, context.Canceled) || len(res.Output) != 0 {
					t.Fatalf("abandoned: %v, %d tokens", err, len(res.Output))
				}
				waitIdle(t, s)
				return res
			}
			if tc.again {
				abandon()
			}
			res := abandon()
			if res.PromptComputed != tc.computed || res.CachedPrompt != tc.cached {
				t.Errorf("%d prompt positions computed, %d cached; want %d and %d", res.PromptComputed, res.CachedPrompt, tc.computed, tc.cached)
			}
			// The caller's retry, to its end.
			j := job{prompt: prompt, steps: n + 10, prefix: true}
			before := s.Stats().PrefixTokens
			got := j.run(context.Background(), c, s.Run)
			if err := got.equal(j.run(context.Background(), c, generateAlone(e))); err != nil {
				t.Fatal(err)
			}
			if took := s.Stats().PrefixTokens - before; took != uint64(tc.kept) {
				t.Errorf("the retry took %d cached positions, want %d", took, tc.kept)
			}
		})
	}
}
