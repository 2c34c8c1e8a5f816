package main

import (
	"io"
	"testing"

	"github.com/verdictnet/verdict/internal/scheduler"
	"github.com/verdictnet/verdict/internal/worker"
)

// The batch knobs of verdict gateway, mcp and worker reach the worker's
// configuration; left out, the continuous batch runs with the scheduler's
// defaults.
func TestWorkerBatchFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want worker.Config
	}{
		{nil, worker.Config{MaxConcurrent: scheduler.DefaultMaxBatch, MaxQueue: scheduler.DefaultMaxQueue, ChunkTokens: scheduler.DefaultChunkTokens, HugeWeights: true}},
		{[]string{"--concurrency", "1", "--queue", "5", "--kv-budget-mib", "7", "--prefill-chunk", "9", "--prefix-cache-mib", "3", "--speculate", "4", "--huge-weights=false"},
			worker.Config{MaxConcurrent: 1, MaxQueue: 5, KVBudget: 7 << 20, ChunkTokens: 9, PrefixCache: 3 << 20, Speculate: 4}},
		{[]string{"--prefix-cache-mib", "-1"},
			worker.Config{MaxConcurrent: scheduler.DefaultMaxBatch, MaxQueue: scheduler.DefaultMaxQueue, ChunkTokens: scheduler.DefaultChunkTokens, PrefixCache: -1, HugeWeights: true}},
	} {
		var wf workerFlags
		fs := newFlagSet("worker", io.Discard)
		wf.register(fs)
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		var got worker.Config
		wf.apply(&got)
		if got.MaxConcurrent != c.want.MaxConcurrent || got.MaxQueue != c.want.MaxQueue || got.KVBudget != c.want.KVBudget || got.ChunkTokens != c.want.ChunkTokens || got.PrefixCache != c.want.PrefixCache || got.Speculate != c.want.Speculate || got.HugeWeights != c.want.HugeWeights {
			t.Errorf("%v: batch %d, queue %d, KV budget %d, chunk %d, prefix cache %d, huge weights %v; want %d, %d, %d, %d, %d, %v", c.args, got.MaxConcurrent, got.MaxQueue, got.KVBudget, got.ChunkTokens, got.PrefixCache, got.HugeWeights,
				c.want.MaxConcurrent, c.want.MaxQueue, c.want.KVBudget, c.want.ChunkTokens, c.want.PrefixCache, c.want.HugeWeights)
		}
	}
}
