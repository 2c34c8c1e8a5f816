package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/generate"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/scheduler"
	"github.com/verdictnet/verdict/internal/testutil"
)

// BenchmarkKVBudget serves 32 requests at once without a token limit
// (each may fill the context: 128 positions on the story model, the
// default, or $VERDICT_BENCH_MODEL's), which their callers end after 4 to
// 255 tokens (a stop string, say), through a budget of 4 full contexts,
// with cache pages of a whole context — a request holds its context from
// admission, as every request did before pages were taken as needed — and
// of 256, 64 and 16 positions: more run at once, the latest admitted
// giving up their caches when the others grow into the budget. tok/s is
// generated tokens per second of the whole burst; preempted/op and
// recomputed/op count the preemptions and the tokens fed again.
func BenchmarkKVBudget(b *testing.B) {
	path := os.Getenv("VERDICT_BENCH_MODEL")
	if path == "" {
		path = testutil.Shared(b, "models/stories260K.gguf")
	}
	m, err := model.Load(path, "")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	c := m.Config
	r := rand.New(rand.NewPCG(1, 2))
	prompts := make([][]int, 32)
	ends := make([]int, 32)
	for i := range prompts {
		prompts[i] = []int{1}
		for range 8 + r.IntN(24) {
			prompts[i] = append(prompts[i], 3+r.IntN(500))
		}
		ends[i] = 4 + r.IntN(min(c.ContextLen-len(prompts[i])-4, 252))
	}
	for _, page := range []int{c.ContextLen, 256, 64, 16} {
		if page > c.ContextLen || (page == c.ContextLen && page == 256) {
			continue
		}
		b.Run(fmt.Sprintf("page=%d", page), func(b *testing.B) {
			e, err := engine.New(m, engine.Options{Threads: 2, PagePositions: page})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			s := scheduler.New(e, scheduler.Config{MaxBatch: 32, MaxQueue: 32, KVBudget: e.CacheBytes(c.ContextLen, c.ContextLen) * 4, PrefixCache: -1})
			defer s.Close()
			st0 := s.Stats()
			for b.Loop() {
				var wg sync.WaitGroup
				for i, p := range prompts {
					wg.Add(1)
					go func() {
						defer wg.Done()
						n := 0
						_, err := s.Run(context.Background(), generate.Request{Prompt: p, OnToken: func(int, int) error {
							if n++; n == ends[i] {
								return errStop
							}
							return nil
						}})
						if err != nil && !errors.Is(err, errStop) {
							b.Errorf("request %d: %v", i, err)
						}
					}()
				}
				wg.Wait()
			}
			st := s.Stats()
			b.ReportMetric(float64(st.OutputTokens-st0.OutputTokens)/b.Elapsed().Seconds(), "tok/s")
			b.ReportMetric(float64(st.Preempted-st0.Preempted)/float64(b.N), "preempted/op")
			b.ReportMetric(float64(st.Recomputed-st0.Recomputed)/float64(b.N), "recomputed/op")
			b.ReportMetric(float64(st.PeakBatch), "peak-batch")
		})
	}
}
