package worker

import (
	"context"
	"fmt"
	"testing"

	"github.com/verdictnet/verdict/internal/testutil"
)

// BenchmarkSpeculate generates greedy stories (stories260K, three
// openings, 100 tokens each, one at a time) without and with draft tokens
// (Config.Speculate): tok/s, the forward steps a token took, and the draft
// tokens the sampler picked of those fed. The answers are the same either
// way (TestBatchBitExact/speculate).
func BenchmarkSpeculate(b *testing.B) {
	path := testutil.Shared(b, "models/stories260K.gguf")
	for _, k := range []int{0, 2, 4, 8} {
		b.Run(fmt.Sprintf("speculate=%d", k), func(b *testing.B) {
			w, err := Open(Config{ModelPath: path, Name: "stories260K", Threads: 1, MaxConcurrent: 1, PrefixCache: -1, Speculate: k})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			st0 := w.BatchStats()
			tokens := 0
			for b.Loop() {
				for _, p := range []string{"Once upon a time", "Lily and Tom went to the park", "The little dog"} {
					res, err := w.Generate(context.Background(), textReq(p, 100), nil)
					if err != nil {
						b.Fatal(err)
					}
					tokens += res.CompletionTokens
				}
			}
			st := w.BatchStats()
			b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tok/s")
			b.ReportMetric(float64(st.Steps-st0.Steps)/float64(tokens), "steps/tok")
			if d := st.Drafted - st0.Drafted; d > 0 {
				b.ReportMetric(float64(st.Accepted-st0.Accepted)/float64(d), "taken/drafted")
			}
		})
	}
}
