package audit

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/generate"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/sampler"
)

// BenchmarkReplay times the exact replay of one 256-token sampled
// generation of the model VERDICT_BENCH_MODEL (a GGUF file; skipped
// without), on one thread per CPU, beside the plain generation it checks
// (timed before and after the replays; the share is of their mean):
//
//	VERDICT_BENCH_MODEL=/tmp/llama3.2-1b-q4_k_m.gguf go test -run XXX -bench Replay -benchtime 5x ./internal/audit
//
// BenchmarkCosts110M measures every proof cost; this one is the replay
// alone, for profiling (-cpuprofile).
func BenchmarkReplay(b *testing.B) {
	path := os.Getenv("VERDICT_BENCH_MODEL")
	if path == "" {
		b.Skip("set VERDICT_BENCH_MODEL to a GGUF file")
	}
	m, err := model.Load(path, "")
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	f := newFixture(b, m, 0)
	prompt := []int{1, 450, 4996, 17354, 1701}
	params := sampler.Params{Temperature: 0.8, Seed: 11}
	steps := len(prompt) - 1 + 256
	ctx := context.Background()
	gen := func() (wall, cpu time.Duration) {
		t0, c0 := time.Now(), cpuTime()
		if _, err := generate.Run(ctx, f.e, generate.Request{Prompt: prompt, Steps: steps, Sampler: params}); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0), cpuTime() - c0
	}
	gen() // page in the weights
	r := f.generateReceipt(b, prompt, params, steps)
	g0, gc0 := gen()
	var total, totalCPU time.Duration
	n := 0
	for b.Loop() {
		t0, c0 := time.Now(), cpuTime()
		if err := Replay(ctx, f.e, r, f.id); err != nil {
			b.Fatal(err)
		}
		total += time.Since(t0)
		totalCPU += cpuTime() - c0
		n++
	}
	b.StopTimer()
	g1, gc1 := gen()
	g, gc := (g0+g1)/2, (gc0+gc1)/2
	replay, replayCPU := total/time.Duration(n), totalCPU/time.Duration(n)
	b.ReportMetric(float64(len(r.Output)), "tokens")
	b.ReportMetric(g.Seconds(), "gen-s")
	b.ReportMetric(replay.Seconds(), "replay-s")
	b.ReportMetric(100*replay.Seconds()/g.Seconds(), "replay-%gen")
	// The same share in CPU time (user and system, all threads), which
	// the other work of a shared machine moves less.
	b.ReportMetric(100*replayCPU.Seconds()/gc.Seconds(), "replay-cpu-%gen")
}
