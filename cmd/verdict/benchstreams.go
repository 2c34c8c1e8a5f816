package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/worker"
)

// streamsResult is one line of `verdict bench --streams ... --json`: N
// concurrent greedy generations through a worker (its continuous batch,
// receipts signed), each compared with the same generation alone.
type streamsResult struct {
	Model        string `json:"model"`
	Threads      int    `json:"threads"`
	KVCache      string `json:"kv_cache"` // the cache's precision: f32 or f16
	Streams      int    `json:"streams"`
	PromptTokens int    `json:"prompt_tokens"` // per stream
	// SharedPrefix is the tokens every stream's prompt starts with after
	// BOS (--shared-prefix), PrefixCacheTokens the prompt tokens the
	// streams took from the worker's prefix cache instead of computing
	// them (--prefix-cache-mib), PrefixSharedTokens those of them in
	// whole cache pages shared with the cache rather than copied.
	// PrefixJoinedTokens are the prompt tokens streams took from the
	// pages of streams still prefilling them (a --cold-prefix burst).
	SharedPrefix       int    `json:"shared_prefix"`
	ColdPrefix         bool   `json:"cold_prefix,omitempty"`
	PrefixCacheTokens  uint64 `json:"prefix_cache_tokens"`
	PrefixSharedTokens uint64 `json:"prefix_shared_tokens"`
	PrefixJoinedTokens uint64 `json:"prefix_joined_tokens"`
	// DraftTokens and DraftAccepted: draft tokens fed (--speculate) and
	// those the sampler picked, over the run.
	DraftTokens   uint64 `json:"draft_tokens"`
	DraftAccepted uint64 `json:"draft_accepted"`
	// Preempted counts the generations that gave up their key/value
	// cache to earlier ones (a tight --kv-budget-mib), Recomputed the
	// tokens they so fed again, Reshared those they took again from the
	// prefix cache's shared pages instead.
	Preempted    uint64  `json:"preempted"`
	Recomputed   uint64  `json:"recomputed_tokens"`
	Reshared     uint64  `json:"reshared_tokens"`
	DecodeTokens int     `json:"decode_tokens"` // asked per stream
	OutputTokens int     `json:"output_tokens"` // generated, all streams
	WallSecs     float64 `json:"wall_s"`        // first request sent to last answer
	AggTokS      float64 `json:"aggregate_tok_s"`
	// DecodeTokS is the aggregate decode rate while every stream decodes:
	// the tokens that arrived after the last stream's first token and up
	// to the first stream's last one, over that span (prefill, the first
	// token of each stream, is in TTFT; llama-batched-bench's S_TG is the
	// same rate measured after a separate prefill). 0 when no such span.
	DecodeTokS float64 `json:"decode_tok_s"`
	DecodeSecs float64 `json:"decode_s"`
	CPUSecs    float64 `json:"cpu_s"`         // user+system CPU time of the process over the run
	TokPerCPUS float64 `json:"tok_per_cpu_s"` // output tokens per CPU second (steadier than tok/s on a shared machine)
	TTFTP50Ms  float64 `json:"ttft_p50_ms"`
	TTFTP99Ms  float64 `json:"ttft_p99_ms"`
	TPOTP50Ms  float64 `json:"tpot_p50_ms"` // time per output token after the first, over every gap
	TPOTP99Ms  float64 `json:"tpot_p99_ms"`
	PeakBatch  int     `json:"peak_batch"`
	Steps      uint64  `json:"steps"`           // forward steps of the batch over the run
	ForwardMs  float64 `json:"step_forward_ms"` // mean wall time of a step's forward pass
	GapMs      float64 `json:"step_gap_ms"`     // mean wall time between steps (the callers' per-token work)
	Differ     int     `json:"differ"`          // answers (tokens or receipt) unlike the same request alone
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// streamsPrompts shapes the streams' prompts: BOS, shared tokens every
// stream starts with, then own tokens of each stream's; and the worker's
// prefix cache (worker.Config.PrefixCache).
type streamsPrompts struct {
	own, shared int
	prefixCache int64
	speculate   int   // worker.Config.Speculate
	kvBudget    int64 // worker.Config.KVBudget
	// cold: each round's shared tokens are new (round r's those of
	// round), not the warm-up's nor the runs alone's.
	cold bool
}

// prompt returns stream i's prompt: BOS, the shared tokens (the
// generator of streamTokens seeded as a stream -1 would be, or -2-round
// with cold), then stream i's own (streamTokens).
func (sp streamsPrompts) prompt(bos, vocab, i, round int) []int {
	seed := -1
	if sp.cold {
		seed = -2 - round
	}
	p := streamTokens(bos, vocab, sp.shared, seed)
	return append(p, streamTokens(bos, vocab, sp.own, i)[1:]...)
}

// streamTokens returns stream i's prompt: BOS, then n pseudo-random ids in
// [3, vocab) from the generator of benchTokens seeded with 12345+i
// (bench/llama-batch-driver.mjs builds the same prompts).
func streamTokens(bos, vocab, n, i int) []int {
	t := []int{bos}
	x := uint32(12345 + i)
	for range n {
		x = x*1664525 + 1013904223
		t = append(t, 3+int(x>>8)%(vocab-3))
	}
	return t
}

func parseStreams(s string) ([]int, error) {
	var ns []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1024 {
			return nil, fmt.Errorf("bench: --streams %q: want counts in 1..1024 separated by commas", s)
		}
		ns = append(ns, n)
	}
	return ns, nil
}

// streamRun is one stream's answer and timings.
type streamRun struct {
	tokens  []int // the receipt's output
	receipt string
	start   time.Time
	times   []time.Time // when each delta arrived
	counts  []int       // the tokens each delta completed (inference.Delta.Tokens)
	err     error
}

// runStream runs one greedy generation of prompt through w, as an API
// caller would (no log-probabilities: they cost a softmax over the
// vocabulary a token), timing each delta of text.
func runStream(ctx context.Context, w *worker.Local, name string, prompt []int, decodeN int) streamRun {
	r := streamRun{start: time.Now()}
	req := worker.Request{Model: name, Tokens: prompt, MaxTokens: decodeN}
	res, err := w.Generate(ctx, req, func(d worker.Delta) error {
		if d.Tokens > 0 {
			r.times = append(r.times, time.Now())
			r.counts = append(r.counts, d.Tokens)
		}
		return nil
	})
	if err != nil {
		r.err = err
		return r
	}
	rc, err := receipt.Parse(res.Receipt)
	if err != nil {
		r.err = fmt.Errorf("the worker's receipt: %w", err)
		return r
	}
	r.tokens, r.receipt = rc.Output, res.ReceiptID
	return r
}

func pctMs(xs []time.Duration, p int) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return float64(s[(len(s)-1)*p/100]) / 1e6
}

// benchStreams runs, for each N of ns, N concurrent streams through a worker
// whose batch admits max(ns), after running every stream alone once and
// all of them together once, untimed (warmStreams);
// profile is started after those single runs and stopped at the end.
func benchStreams(ctx context.Context, m *model.Model, path string, threads int, kv engine.KVType, ns []int, sp streamsPrompts, decodeN int, asJSON bool, profile func() (stop func(), err error), stdout, stderr io.Writer) error {
	maxN := slices.Max(ns)
	c := m.Config
	promptN := sp.shared + sp.own
	if 1+promptN+decodeN > c.ContextLen {
		return fmt.Errorf("bench: %d prompt and %d decode tokens exceed the context length %d", promptN, decodeN, c.ContextLen)
	}
	w, err := worker.New(m, worker.Config{Threads: threads, MaxConcurrent: maxN, MaxQueue: maxN, Store: worker.NewMemStore(0), KV: kv, PrefixCache: sp.prefixCache, Speculate: sp.speculate, KVBudget: sp.kvBudget})
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer w.Close()
	name := w.Models()[0].Name
	bos := bosOr(m, 1)
	// promptsOf is round r's prompts (round -1: the warm-up's); all
	// rounds' are the same but with --cold-prefix.
	promptsOf := func(r, n int) [][]int {
		ps := make([][]int, n)
		for i := range ps {
			ps[i] = sp.prompt(bos, c.Vocab, i, r)
		}
		return ps
	}
	prompts := promptsOf(-1, maxN)
	// runAlone runs every prompt alone: the answers batched runs must give.
	runAlone := func(prompts [][]int) ([]streamRun, error) {
		alone := make([]streamRun, len(prompts))
		for i := range alone {
			if alone[i] = runStream(ctx, w, name, prompts[i], decodeN); alone[i].err != nil {
				return nil, fmt.Errorf("bench: %w", alone[i].err)
			}
			fmt.Fprintf(stderr, "\ralone %d/%d", i+1, len(prompts))
		}
		fmt.Fprintln(stderr)
		return alone, nil
	}
	// Warm-up, then every stream alone (with --cold-prefix, after each
	// round, on its prompts).
	if r := runStream(ctx, w, name, prompts[0], 1); r.err != nil {
		return fmt.Errorf("bench: %w", r.err)
	}
	var alone []streamRun
	if !sp.cold {
		if alone, err = runAlone(prompts); err != nil {
			return err
		}
	}
	// One untimed round of all the streams at once: a serving worker's
	// KV cache pages are mapped and reused from one request to the next
	// (engine.Sequence.Release), as llama.cpp's context allocates and
	// clears its whole cache before the first request; the timed rounds
	// measure that steady state, not the first touch of fresh memory.
	if err := warmStreams(ctx, w, name, prompts, decodeN); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	stop, err := profile()
	if err != nil {
		return err
	}
	defer stop()
	for round, n := range ns {
		ps := prompts[:n]
		if sp.cold {
			ps = promptsOf(round, n)
		}
		st0 := w.BatchStats()
		cpu0 := cpuSeconds()
		t0 := time.Now()
		runs := runStreams(ctx, w, name, ps, decodeN)
		cpu := cpuSeconds() - cpu0
		st := w.BatchStats()
		if sp.cold {
			if alone, err = runAlone(ps); err != nil {
				return err
			}
		}
		res := streamsResult{Model: path, Threads: threads, KVCache: kv.String(), Streams: n, PromptTokens: promptN + 1, DecodeTokens: decodeN, PeakBatch: st.PeakBatch,
			SharedPrefix: sp.shared, ColdPrefix: sp.cold, PrefixCacheTokens: st.PrefixTokens - st0.PrefixTokens, PrefixSharedTokens: st.PrefixSharedTokens - st0.PrefixSharedTokens, PrefixJoinedTokens: st.PrefixJoinedTokens - st0.PrefixJoinedTokens,
			DraftTokens: st.Drafted - st0.Drafted, DraftAccepted: st.Accepted - st0.Accepted,
			Preempted: st.Preempted - st0.Preempted, Recomputed: st.Recomputed - st0.Recomputed, Reshared: st.Reshared - st0.Reshared,
			Steps: st.Steps - st0.Steps, ForwardMs: ms(st.Forward.Sub(st0.Forward).Mean()), GapMs: ms(st.Gap.Sub(st0.Gap).Mean())}
		var ttft, tpot []time.Duration
		last := t0
		for i, r := range runs {
			if r.err != nil {
				return fmt.Errorf("bench: stream %d of %d: %w", i, n, r.err)
			}
			if !slices.Equal(r.tokens, alone[i].tokens) || r.receipt != alone[i].receipt {
				res.Differ++
			}
			res.OutputTokens += len(r.tokens)
			if len(r.times) == 0 {
				continue
			}
			ttft = append(ttft, r.times[0].Sub(r.start))
			for j := 1; j < len(r.times); j++ {
				// A delta that completes k tokens (text held back
				// for a while) counts k gaps of a k-th each.
				k := r.counts[j]
				for range k {
					tpot = append(tpot, r.times[j].Sub(r.times[j-1])/time.Duration(k))
				}
			}
			if end := r.times[len(r.times)-1]; end.After(last) {
				last = end
			}
		}
		res.DecodeTokS, res.DecodeSecs = decodeRate(runs)
		res.WallSecs = last.Sub(t0).Seconds()
		res.AggTokS = float64(res.OutputTokens) / res.WallSecs
		if cpu > 0 {
			res.CPUSecs, res.TokPerCPUS = cpu, float64(res.OutputTokens)/cpu
		}
		res.TTFTP50Ms, res.TTFTP99Ms = pctMs(ttft, 50), pctMs(ttft, 99)
		res.TPOTP50Ms, res.TPOTP99Ms = pctMs(tpot, 50), pctMs(tpot, 99)
		if asJSON {
			b, err := json.Marshal(res)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s\n", b)
			continue
		}
		cached := ""
		if res.PrefixCacheTokens > 0 {
			cached = fmt.Sprintf("; %d prompt tokens from the prefix cache (%d in shared pages, %d from streams still prefilling them)", res.PrefixCacheTokens, res.PrefixSharedTokens, res.PrefixJoinedTokens)
		}
		if res.DraftTokens > 0 {
			cached += fmt.Sprintf("; %d of %d draft tokens taken", res.DraftAccepted, res.DraftTokens)
		}
		if res.Preempted > 0 {
			cached += fmt.Sprintf("; %d preemptions, %d tokens computed again, %d taken again from shared pages", res.Preempted, res.Recomputed, res.Reshared)
		}
		fmt.Fprintf(stdout, "streams %3d: %5d tokens in %6.2f s: %7.1f tok/s aggregate (%.1f per CPU second), %.1f tok/s while all decode; TTFT p50 %.0f ms p99 %.0f ms; per token p50 %.1f ms p99 %.1f ms; %d steps: forward %.2f ms, gap %.2f ms (means); %d of %d answers differ from alone%s\n",
			n, res.OutputTokens, res.WallSecs, res.AggTokS, res.TokPerCPUS, res.DecodeTokS, res.TTFTP50Ms, res.TTFTP99Ms, res.TPOTP50Ms, res.TPOTP99Ms, res.Steps, res.ForwardMs, res.GapMs, res.Differ, n, cached)
	}
	return nil
}

// decodeRate returns the tokens per second that arrived while every run
// was decoding (after the latest first delta, up to the earliest last one)
// and the length of that span in seconds; 0, 0 when there is none.
func decodeRate(runs []streamRun) (float64, float64) {
	var from, to time.Time
	for i, r := range runs {
		if len(r.times) == 0 {
			return 0, 0
		}
		if first := r.times[0]; i == 0 || first.After(from) {
			from = first
		}
		if last := r.times[len(r.times)-1]; i == 0 || last.Before(to) {
			to = last
		}
	}
	if !to.After(from) {
		return 0, 0
	}
	n := 0
	for _, r := range runs {
		for j, t := range r.times {
			if t.After(from) && !t.After(to) {
				n += r.counts[j]
			}
		}
	}
	d := to.Sub(from).Seconds()
	return float64(n) / d, d
}

// warmStreams runs every prompt at once through w, as a timed round
// would, and keeps nothing but the errors.
func warmStreams(ctx context.Context, w *worker.Local, name string, prompts [][]int, decodeN int) error {
	var errs []error
	for _, r := range runStreams(ctx, w, name, prompts, decodeN) {
		errs = append(errs, r.err)
	}
	return errors.Join(errs...)
}

// runStreams runs every prompt at once through w, one goroutine each.
func runStreams(ctx context.Context, w *worker.Local, name string, prompts [][]int, decodeN int) []streamRun {
	runs := make([]streamRun, len(prompts))
	var wg sync.WaitGroup
	for i := range prompts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runs[i] = runStream(ctx, w, name, prompts[i], decodeN)
		}()
	}
	wg.Wait()
	return runs
}
