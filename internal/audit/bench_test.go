package audit

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/generate"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/modelid"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/sampler"
	"github.com/verdictnet/verdict/internal/synth"
	"github.com/verdictnet/verdict/internal/tensor"
)

// BenchmarkCosts110M measures the costs the issue bounds on a 256-token
// generation of the synthetic 110M model: trace commitment overhead,
// exact replay, opening and auditing 16 cells, receipt and openings sizes.
// It writes a 440 MB model to a temporary directory; run it with
//
//	VERDICT_BENCH_110M=1 go test -run XXX -bench Costs110M -benchtime 1x ./internal/audit
func BenchmarkCosts110M(b *testing.B) {
	if os.Getenv("VERDICT_BENCH_110M") == "" {
		b.Skip("set VERDICT_BENCH_110M=1 to run (writes a 440 MB model)")
	}
	preset := os.Getenv("VERDICT_BENCH_PRESET")
	if preset == "" {
		preset = "110m"
	}
	dir := sharedModels(b)
	path := filepath.Join(b.TempDir(), "m.gguf")
	out, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := synth.Generate(preset, filepath.Join(dir, "ggml-vocab-llama-spm.gguf"), 1, tensor.F32, out); err != nil {
		b.Fatal(err)
	}
	out.Close()
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
	// Warm up (page in the weights), then alternate plain and traced
	// generations and take the median of each (and of as many replays): a
	// single pair of runs on a shared machine is noise.
	const runs = 5
	if _, err := generate.Run(ctx, f.e, generate.Request{Prompt: prompt, Steps: steps, Sampler: params}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		var plains, traceds []time.Duration
		var res generate.Result
		var r *receipt.Receipt
		for k := 0; k < runs; k++ {
			t0 := time.Now()
			var err error
			res, err = generate.Run(ctx, f.e, generate.Request{Prompt: prompt, Steps: steps, Sampler: params})
			if err != nil {
				b.Fatal(err)
			}
			plains = append(plains, time.Since(t0))
			t0 = time.Now()
			r = f.generateReceipt(b, prompt, params, steps)
			traceds = append(traceds, time.Since(t0))
		}
		slices.Sort(plains)
		slices.Sort(traceds)
		plain, traced := plains[runs/2], traceds[runs/2]
		if len(r.Output) != len(res.Output) {
			b.Fatalf("traced run gave %d tokens, plain %d", len(r.Output), len(res.Output))
		}
		var replays []time.Duration
		for k := 0; k < runs; k++ {
			t0 := time.Now()
			if err := Replay(ctx, f.e, r, f.id); err != nil {
				b.Fatal(err)
			}
			replays = append(replays, time.Since(t0))
		}
		slices.Sort(replays)
		replay := replays[runs/2]
		t0 := time.Now()
		_, lg, err := prefill(f.e, r, false)
		if err != nil {
			b.Fatal(err)
		}
		pre := time.Since(t0)
		t0 = time.Now()
		if err := checkSampling(ctx, r, lg, f.e.Threads()); err != nil {
			b.Fatal(err)
		}
		samp := time.Since(t0)
		b.ReportMetric(100*pre.Seconds()/plain.Seconds(), "replay-prefill-%gen")
		b.ReportMetric(100*samp.Seconds()/plain.Seconds(), "replay-sampling-%gen")
		t0 = time.Now()
		o, err := Open(ctx, f.e, r, 5, 16)
		if err != nil {
			b.Fatal(err)
		}
		open := time.Since(t0)
		enc := o.Marshal()
		var checks []time.Duration
		for k := 0; k < runs; k++ {
			t0 = time.Now()
			if err := Check(f.m, f.id, r, 5, 16, o); err != nil {
				b.Fatal(err)
			}
			checks = append(checks, time.Since(t0))
		}
		slices.Sort(checks)
		check := checks[runs/2]
		t0 = time.Now()
		if _, err := modelid.Of(f.m); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(t0).Seconds(), "modelid-s")
		renc, _ := r.Marshal()
		b.ReportMetric(float64(len(r.Output)), "tokens")
		b.ReportMetric(plain.Seconds(), "gen-s")
		b.ReportMetric(100*(traced.Seconds()/plain.Seconds()-1), "trace-overhead-%")
		b.ReportMetric(100*replay.Seconds()/plain.Seconds(), "replay-%gen")
		b.ReportMetric(100*check.Seconds()/plain.Seconds(), "audit16-%gen")
		b.ReportMetric(open.Seconds(), "open16-s")
		b.ReportMetric(float64(len(enc))/(1<<20), "openings16-MiB")
		b.ReportMetric(float64(len(renc)), "receipt-B")
	}
}
