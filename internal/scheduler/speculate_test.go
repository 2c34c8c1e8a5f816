package scheduler_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/verdictnet/verdict/internal/generate"
	"github.com/verdictnet/verdict/internal/scheduler"
)

// TestSpeculationEqualsAlone: requests run through a scheduler that feeds
// draft tokens (Config.Speculate) — alone and 16 at once, arrivals
// shuffled, mixed sampling, early stops, cancels, every logit asked for —
// give the tokens, logits and trace roots of generate.Run alone, and some
// drafts were taken (the story model repeats itself).
func TestSpeculationEqualsAlone(t *testing.T) {
	e := newEngine(t)
	c := e.Model().Config
	alone := func(ctx context.Context, req generate.Request) (generate.Result, error) {
		return generate.Run(ctx, e, req)
	}
	for _, n := range []int{1, 16} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(n), 21))
			js := jobs(n, r)
			for i := range js {
				js[i].steps += 40 // long enough to repeat itself
				js[i].prefix = i%2 == 0
			}
			s := scheduler.New(e, scheduler.Config{MaxBatch: 6, ChunkTokens: 16, Speculate: 5})
			defer s.Close()
			got := runShuffled(s, c, js, r)
			for i, j := range js {
				if err := got[i].equal(j.run(context.Background(), c, alone)); err != nil {
					t.Errorf("request %d: %v", i, err)
				}
			}
			waitIdle(t, s)
			st := s.Stats()
			if st.Accepted == 0 || st.Accepted > st.Drafted {
				t.Errorf("%d draft tokens fed, %d taken", st.Drafted, st.Accepted)
			}
			t.Logf("%d requests: %d draft tokens fed, %d taken; %d output tokens in %d steps", n, st.Drafted, st.Accepted, st.OutputTokens, st.Steps)
		})
	}
}
