package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/verdictnet/verdict/internal/audit"
	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/generate"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/sampler"
	"github.com/verdictnet/verdict/internal/scheduler"
	"github.com/verdictnet/verdict/internal/testutil"
)

func newEngine(t testing.TB) *engine.Engine { return newPagedEngine(t, 0) }

// newPagedEngine is newEngine with cache pages of page positions (0: the
// engine's default).
func newPagedEngine(t testing.TB, page int) *engine.Engine {
	m, err := model.Load(testutil.Shared(t, "models/stories260K.gguf"), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	e, err := engine.New(m, engine.Options{Threads: 2, PagePositions: page})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// job is one request of the equality tests and what it produced.
type job struct {
	prompt  []int
	steps   int
	params  sampler.Params
	all     bool // every logit vector, not only the output ones
	stopAt  int  // OnToken ends the generation at this output token (0: never)
	cancelA int  // the context is cancelled after this many tokens (0: never)
	// prefix: the request's tracer gives and takes cached prefixes
	// (scheduler.PrefixTracer).
	prefix bool
}

type outcome struct {
	out       []int
	stopped   bool
	err       error
	digest    string
	positions []int
	roots     [2]merkle.Hash
}

var errStop = errors.New("stop")

func (j job) run(ctx context.Context, c model.Config, run func(context.Context, generate.Request) (generate.Result, error)) outcome {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rec := audit.NewRecorder(c, j.prompt)
	d := generate.NewDigest()
	var o outcome
	n := 0
	var tr engine.Tracer = rec
	if j.prefix {
		tr = prefixRec{rec}
	}
	req := generate.Request{
		Prompt: j.prompt, Steps: j.steps, Sampler: j.params, StopTokens: []int{1, 2}, Trace: tr,
		OutputLogitsOnly: !j.all,
		OnLogits: func(pos int, l []float32) error {
			rec.Logits(pos, l)
			d.Add(l)
			o.positions = append(o.positions, pos)
			return nil
		},
		OnToken: func(pos, t int) error {
			n++
			if n == j.cancelA {
				cancel()
			}
			if n == j.stopAt {
				return errStop
			}
			return nil
		},
	}
	res, err := run(ctx, req)
	o.out, o.stopped, o.err, o.digest = res.Output, res.Stopped, err, d.Hex()
	if err == nil || errors.Is(err, errStop) {
		lr, tr, rerr := rec.Roots(len(res.Output))
		if rerr != nil {
			o.err = rerr
		}
		o.roots = [2]merkle.Hash{lr, tr}
	}
	return o
}

func (o outcome) equal(p outcome) error {
	switch {
	case !slices.Equal(o.out, p.out):
		return fmt.Errorf("tokens %v, alone %v", o.out, p.out)
	case o.stopped != p.stopped:
		return fmt.Errorf("stopped %v, alone %v", o.stopped, p.stopped)
	case !errors.Is(o.err, p.err) && !(o.err == nil && p.err == nil):
		return fmt.Errorf("error %v, alone %v", o.err, p.err)
	case errors.Is(o.err, context.Canceled):
		// Whether the step under way when the caller hung up reported its
		// logits is a matter of timing, alone as in a batch.
		return nil
	case o.digest != p.digest:
		return fmt.Errorf("logits digest %s, alone %s", o.digest, p.digest)
	case !slices.Equal(o.positions, p.positions):
		return fmt.Errorf("logit positions %v, alone %v", o.positions, p.positions)
	case o.roots != p.roots:
		return fmt.Errorf("roots %x, alone %x", o.roots, p.roots)
	}
	return nil
}

// jobs returns n requests of mixed prompt lengths, greedy and seeded
// sampling, some ending early, some cancelled.
func jobs(n int, r *rand.Rand) []job {
	var js []job
	for i := range n {
		p := []int{1}
		for range 1 + r.IntN(40) {
			p = append(p, 3+r.IntN(500))
		}
		j := job{prompt: p, steps: len(p) + 4 + r.IntN(40)}
		switch i % 4 {
		case 1:
			j.params = sampler.Params{Temperature: 0.9, Seed: uint64(i)}
		case 2:
			j.params = sampler.Params{Temperature: 1, TopP: 0.9, Seed: uint64(100 + i)}
			j.all = true
		case 3:
			j.params = sampler.Params{Temperature: 0.8, TopK: 20, Seed: uint64(7 * i)}
		}
		switch i % 5 {
		case 1:
			j.stopAt = 3
		case 3:
			j.cancelA = 2
		}
		js = append(js, j)
	}
	return js
}

// Every request run as part of a batch, with newcomers arriving in a
// shuffled order, gives the same tokens, logits and trace as generate.Run
// alone.
func TestBatchEqualsAlone(t *testing.T) {
	e := newEngine(t)
	c := e.Model().Config
	for _, n := range []int{1, 4, 16} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(n), 3))
			js := jobs(n, r)
			want := make([]outcome, n)
			for i, j := range js {
				want[i] = j.run(context.Background(), c, func(ctx context.Context, req generate.Request) (generate.Result, error) {
					return generate.Run(ctx, e, req)
				})
			}
			s := scheduler.New(e, scheduler.Config{MaxBatch: 6, ChunkTokens: 16})
			defer s.Close()
			got := runShuffled(s, c, js, r)
			// The test is about batches, not about requests that happen
			// to run one after another.
			maxBatch := s.Stats().PeakBatch
			if n >= 16 && maxBatch < 2 {
				t.Errorf("the largest batch held %d sequences", maxBatch)
			}
			t.Logf("largest batch: %d sequences", maxBatch)
			for i := range js {
				if err := got[i].equal(want[i]); err != nil {
					t.Errorf("request %d: %v", i, err)
				}
			}
			waitIdle(t, s)
		})
	}
}

// runShuffled runs every job through s at once, each on its own goroutine,
// started in a shuffled order a few hundred microseconds apart.
func runShuffled(s *scheduler.Scheduler, c model.Config, js []job, r *rand.Rand) []outcome {
	got := make([]outcome, len(js))
	var wg sync.WaitGroup
	for _, i := range r.Perm(len(js)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = js[i].run(context.Background(), c, s.Run)
		}()
		time.Sleep(time.Duration(r.IntN(300)) * time.Microsecond)
	}
	wg.Wait()
	return got
}

// waitIdle waits for every slot to be freed.
func waitIdle(t *testing.T, s *scheduler.Scheduler) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		st := s.Stats()
		if st.Running == 0 && st.KVUsed == 0 && st.Queued == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not idle: %+v", st)
		}
	}
}

func TestLimits(t *testing.T) {
	e := newEngine(t)
	c := e.Model().Config
	per := scheduler.KVBytes(c.Layers, c.KVDim(), 1)
	s := scheduler.New(e, scheduler.Config{MaxBatch: 1, MaxQueue: 1, KVBudget: 40 * per})
	defer s.Close()
	ctx := context.Background()
	long := make([]int, 41)
	for i := range long {
		long[i] = 1 + i
	}
	if _, err := s.Run(ctx, generate.Request{Prompt: long, Steps: 41}); !errors.Is(err, scheduler.ErrTooLarge) {
		t.Errorf("a prompt over the budget: %v", err)
	}
	if _, err := s.Run(ctx, generate.Request{Prompt: long[:10], Steps: 50}); !errors.Is(err, scheduler.ErrTooLarge) {
		t.Errorf("steps over the budget: %v", err)
	}
	if _, err := s.Run(ctx, generate.Request{Prompt: []int{1, 1 << 20}, Steps: 5}); err == nil {
		t.Error("a token outside the vocabulary ran")
	}
	if _, err := s.Run(ctx, generate.Request{Prompt: make([]int, c.ContextLen+1)}); !errors.Is(err, generate.ErrPromptTooLong) {
		t.Errorf("a prompt over the context: %v", err)
	}

	// One runs (held in its token callback), one waits, the third is
	// refused; the held one's caller hangs up and the waiting one runs.
	hold, held := make(chan struct{}), make(chan struct{})
	ctx1, cancel1 := context.WithCancel(ctx)
	errc := make(chan error, 2)
	go func() {
		_, err := s.Run(ctx1, generate.Request{Prompt: []int{1, 5}, Steps: 30, OnToken: func(int, int) error {
			select {
			case <-held:
			default:
				close(held)
				<-hold
			}
			return nil
		}})
		errc <- err
	}()
	<-held
	go func() {
		_, err := s.Run(ctx, generate.Request{Prompt: []int{1, 6}, Steps: 30})
		errc <- err
	}()
	for s.Stats().Queued != 1 {
		time.Sleep(time.Millisecond)
	}
	if _, err := s.Run(ctx, generate.Request{Prompt: []int{1, 7}, Steps: 30}); !errors.Is(err, scheduler.ErrBusy) {
		t.Errorf("third request: %v, want ErrBusy", err)
	}
	cancel1()
	close(hold)
	var errs []error
	for range 2 {
		errs = append(errs, <-errc)
	}
	if !slices.ContainsFunc(errs, func(err error) bool { return errors.Is(err, context.Canceled) }) || !slices.Contains(errs, nil) {
		t.Errorf("errors %v: want one cancelled and one success", errs)
	}
	waitIdle(t, s)
}

// A caller who hangs up mid-prefill frees its slot; the others finish as
// they would alone.
func TestCancelMidPrefill(t *testing.T) {
	e := newEngine(t)
	c := e.Model().Config
	s := scheduler.New(e, scheduler.Config{MaxBatch: 2, ChunkTokens: 4})
	defer s.Close()
	long := make([]int, c.ContextLen-8)
	for i := range long {
		long[i] = 3 + i%400
	}
	other := job{prompt: []int{1, 403, 407, 261, 378}, steps: 40}
	want := other.run(context.Background(), c, func(ctx context.Context, req generate.Request) (generate.Result, error) {
		return generate.Run(ctx, e, req)
	})
	// The caller hangs up while its prompt's chunk at position 8 is in the
	// forward pass, which waits until Run has returned.
	ctx, cancel := context.WithCancel(context.Background())
	done, returned := make(chan error, 1), make(chan struct{})
	tr := &hangUp{at: 8, cancel: cancel, returned: returned}
	go func() {
		_, err := s.Run(ctx, generate.Request{Prompt: long, OutputLogitsOnly: true, Trace: tr,
			OnLogits: func(int, []float32) error { return nil }})
		done <- err
		close(returned)
	}()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled prefill: %v", err)
	}
	got := other.run(context.Background(), c, s.Run)
	if err := got.equal(want); err != nil {
		t.Error(err)
	}
	waitIdle(t, s)
	// Fed: chunks of 4 up to the one holding position 8, then the other
	// request's prompt.
	if st := s.Stats(); st.PromptTokens != 12+uint64(len(other.prompt)) {
		t.Errorf("prompt tokens fed %d, want %d: %+v", st.PromptTokens, 12+len(other.prompt), st)
	}
	waitIdle(t, s)
}

// TestCollector reads the metrics while a generation is held in its third
// token's callback (running, its cache held, a decode rate) and once it
// has ended: the steps' forward times and the gaps between them among
// them, the hold one long gap.
func TestCollector(t *testing.T) {
	e := newEngine(t)
	c := e.Model().Config
	s := scheduler.New(e, scheduler.Config{MaxBatch: 3})
	defer s.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(scheduler.NewCollector(s.Stats))
	gather := func() map[string]float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				name := mf.GetName()
				for _, l := range m.GetLabel() {
					name += "{" + l.GetValue() + "}"
				}
				got[name] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
				if h := m.GetHistogram(); h != nil {
					got[name+"_count"] = float64(h.GetSampleCount())
					got[name+"_sum"] = h.GetSampleSum()
					for _, b := range h.GetBucket() {
						got[fmt.Sprintf("%s_bucket{%g}", name, b.GetUpperBound())] = float64(b.GetCumulativeCount())
					}
				}
			}
		}
		return got
	}
	check := func(when string, got, want map[string]float64) {
		t.Helper()
		for name, v := range want {
			if g, ok := got[name]; !ok || g != v {
				t.Errorf("%s: %s = %v (present %v), want %v", when, name, g, ok, v)
			}
		}
	}
	const steps = 8
	held, hold := make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	var out []int
	go func() {
		n := 0
		res, err := s.Run(context.Background(), generate.Request{Prompt: []int{1, 403, 407}, Steps: steps, OnToken: func(int, int) error {
			if n++; n == 3 {
				close(held)
				<-hold
			}
			return nil
		}})
		out = res.Output
		errc <- err
	}()
	<-held
	// Two decode steps ran (the second and third tokens' logits).
	got := gather()
	check("running", got, map[string]float64{
		"verdict_worker_batch_size_max": 3, "verdict_worker_batch_size": 1, "verdict_worker_batch_size_peak": 1,
		"verdict_worker_batch_running": 1, "verdict_worker_queue_length": 0,
		"verdict_worker_kv_cache_used_bytes":        float64(scheduler.KVBytes(c.Layers, c.KVDim(), steps)),
		"verdict_worker_batch_tokens_total{prompt}": 3, "verdict_worker_batch_tokens_total{completion}": 3,
		"verdict_worker_batch_steps_total": 3,
		// Three forward passes, two gaps between them.
		"verdict_worker_step_forward_seconds_count": 3, "verdict_worker_step_gap_seconds_count": 2,
	})
	if r := got["verdict_worker_decode_tokens_per_second"]; !(r > 0) {
		t.Errorf("running: decode rate %v, want > 0", r)
	}
	if f := got["verdict_worker_step_forward_seconds_sum"]; !(f > 0) {
		t.Errorf("running: forward time %v, want > 0", f)
	}
	const hold0 = 30 * time.Millisecond
	time.Sleep(hold0)
	close(hold)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	waitIdle(t, s)
	got = gather()
	check("ended", got, map[string]float64{
		"verdict_worker_batch_size_max": 3, "verdict_worker_batch_size": 1, "verdict_worker_batch_size_peak": 1,
		"verdict_worker_batch_running": 0, "verdict_worker_queue_length": 0, "verdict_worker_kv_cache_used_bytes": 0,
		"verdict_worker_batch_tokens_total{prompt}": 3, "verdict_worker_batch_tokens_total{completion}": 6,
		"verdict_worker_batch_tokens_total{recomputed}": 0, "verdict_worker_preemptions_total": 0, "verdict_worker_batch_resuming": 0,
		"verdict_worker_batch_steps_total":          6,
		"verdict_worker_step_forward_seconds_count": 6, "verdict_worker_step_gap_seconds_count": 5,
		// Every step and gap took less than 10 s.
		"verdict_worker_step_forward_seconds_bucket{10}": 6, "verdict_worker_step_gap_seconds_bucket{10}": 5,
	})
	// The hold is one gap of at least 30 ms: above the 25 ms bound.
	if g := got["verdict_worker_step_gap_seconds_sum"]; g < hold0.Seconds() {
		t.Errorf("ended: gaps sum to %v s, want at least the %v held", g, hold0)
	}
	if n := got["verdict_worker_step_gap_seconds_bucket{0.025}"]; n > 4 {
		t.Errorf("ended: %v of 5 gaps at most 25 ms, want at most 4 (one held %v)", n, hold0)
	}
	st := s.Stats()
	if st.Gap.Mean() < hold0/5 || st.Forward.Count != 6 || st.Forward.Sub(st.Forward).Count != 0 {
		t.Errorf("ended: stats %+v %+v", st.Forward, st.Gap)
	}
	if got["verdict_worker_kv_cache_budget_bytes"] != float64(3*scheduler.KVBytes(c.Layers, c.KVDim(), c.ContextLen)) {
		t.Errorf("KV budget %v, want 3 full contexts", got["verdict_worker_kv_cache_budget_bytes"])
	}
	// The ended generation's cache stays for prompts that start with its
	// tokens; a second prompt takes 5 of its 7 positions.
	check("kept", got, map[string]float64{
		"verdict_worker_prefix_cache_entries": 1, "verdict_worker_prefix_cache_hits_total": 0, "verdict_worker_prefix_cache_tokens_total": 0,
		"verdict_worker_prefix_cache_budget_bytes": float64(3*scheduler.KVBytes(c.Layers, c.KVDim(), c.ContextLen)) / 4,
	})
	if b := got["verdict_worker_prefix_cache_bytes"]; !(b > 0) {
		t.Errorf("kept: prefix cache of %v bytes", b)
	}
	if _, err := s.Run(context.Background(), generate.Request{Prompt: append([]int{1, 403, 407, out[0], out[1]}, 9), Steps: 10}); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, s)
	check("taken", gather(), map[string]float64{
		"verdict_worker_prefix_cache_hits_total": 1, "verdict_worker_prefix_cache_tokens_total": 5,
		"verdict_worker_batch_tokens_total{prompt}": 4,
		// Pages of 256 positions: the 5 copied, none shared.
		"verdict_worker_prefix_cache_shared_tokens_total": 0, "verdict_worker_prefix_cache_shared_bytes": 0,
		"verdict_worker_prefix_cache_reshared_tokens_total": 0,
		"verdict_worker_prefix_cache_joined_tokens_total":   0,
	})
}

// hangUp is a tracer that cancels its request when the forward pass reaches
// position at, and holds the pass until the request has returned.
type hangUp struct {
	at       int
	cancel   func()
	returned chan struct{}
	once     sync.Once
}

func (h *hangUp) Layer(l, pos int, x, k, v, attn []float32) {
	if pos == h.at {
		h.once.Do(func() {
			h.cancel()
			<-h.returned
		})
	}
}

func (h *hangUp) Final(int, []float32) {}

// A generation that ends hands its key/value cache to the next: requests
// one after another on a fresh engine allocate one cache, the first, and
// every later one takes the memory of the one before (engine.KVStats),
// whether the one before finished, was cancelled or failed in its
// callback; the answers stay those of generate.Run alone.
func TestReleaseReusesCache(t *testing.T) {
	e := newEngine(t)
	c := e.Model().Config
	s := scheduler.New(e, scheduler.Config{MaxBatch: 4})
	defer s.Close()
	const steps = 40 // the prompt takes the whole room at once: no doubling
	perSeq := scheduler.KVBytes(c.Layers, c.KVDim(), steps)
	js := []job{
		{prompt: []int{1, 403, 407, 261, 378}, steps: steps},
		{prompt: []int{1, 3, 17, 99}, steps: steps, params: sampler.Params{Temperature: 0.9, Seed: 5}, cancelA: 3},
		{prompt: []int{1, 250, 251}, steps: steps, stopAt: 2},
		{prompt: []int{1, 403, 407, 261, 378}, steps: steps, params: sampler.Params{Temperature: 1, TopP: 0.9, Seed: 7}, all: true},
	}
	// The answers alone, on another engine: e's counters count the
	// scheduler's sequences only.
	alone, err := engine.New(e.Model(), engine.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer alone.Close()
	for i, j := range js {
		want := j.run(context.Background(), c, func(ctx context.Context, req generate.Request) (generate.Result, error) {
			return generate.Run(ctx, alone, req)
		})
		got := j.run(context.Background(), c, s.Run)
		if err := got.equal(want); err != nil {
			t.Errorf("request %d: %v", i, err)
		}
		if st, want := e.KVStats(), (engine.KVStats{Allocated: perSeq, Reused: int64(i) * perSeq}); st != want {
			t.Errorf("after request %d: %+v, want %+v", i, st, want)
		}
	}
	waitIdle(t, s)
}

// TestAccountsTakeTurns: with one slot busy and account a's backlog
// queued before b's and c's requests, the queue admits b's and c's first
// (their accounts run nothing and were served least recently), then a's
// in arrival order; with no accounts named it is first come, first
// served.
func TestAccountsTakeTurns(t *testing.T) {
	e := newEngine(t)
	for _, tc := range []struct {
		accounts bool
		want     []string
	}{
		{true, []string{"a1", "b1", "c1", "a2", "a3", "a4", "a5"}},
		{false, []string{"a1", "a2", "a3", "a4", "b1", "a5", "c1"}},
	} {
		s := scheduler.New(e, scheduler.Config{MaxBatch: 1, MaxQueue: 10})
		var mu sync.Mutex
		var order []string
		hold := make(chan struct{})
		var wg sync.WaitGroup
		run := func(name string, first chan<- struct{}) {
			defer wg.Done()
			acct := ""
			if tc.accounts {
				acct = name[:1]
			}
			n := 0
			_, err := s.Run(context.Background(), generate.Request{Prompt: []int{1, 10 + int(name[0]) + int(name[1])}, Steps: 6, Account: acct, OnToken: func(int, int) error {
				if n++; n == 1 {
					mu.Lock()
					order = append(order, name)
					mu.Unlock()
					if first != nil {
						close(first)
						<-hold
					}
				}
				return nil
			}})
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		started := make(chan struct{})
		wg.Add(1)
		go run("a1", started)
		<-started
		for i, name := range []string{"a2", "a3", "a4", "b1", "a5", "c1"} {
			wg.Add(1)
			go run(name, nil)
			for s.Stats().Queued != i+1 {
				time.Sleep(100 * time.Microsecond)
			}
		}
		close(hold)
		wg.Wait()
		if !slices.Equal(order, tc.want) {
			t.Errorf("accounts %v: admitted %v, want %v", tc.accounts, order, tc.want)
		}
		waitIdle(t, s)
		s.Close()
	}
}

// TestAccountPushOut: in a full queue, a request of an account with fewer
// waiting takes the place of the latest of the account with the most,
// which fails with ErrBusy; a request of the account with the most, or
// of one that would then have as many, is refused as in any full queue.
func TestAccountPushOut(t *testing.T) {
	e := newEngine(t)
	s := scheduler.New(e, scheduler.Config{MaxBatch: 1, MaxQueue: 2})
	defer s.Close()
	hold, held := make(chan struct{}), make(chan struct{})
	errs := map[string]chan error{}
	run := func(name string) {
		ch := make(chan error, 1)
		errs[name] = ch
		go func() {
			n := 0
			_, err := s.Run(context.Background(), generate.Request{Prompt: []int{1, 5}, Steps: 4, Account: name[:1], OnToken: func(int, int) error {
				if n++; n == 1 && name == "a1" {
					close(held)
					<-hold
				}
				return nil
			}})
			ch <- err
		}()
	}
	queued := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); s.Stats().Queued != n; time.Sleep(100 * time.Microsecond) {
			if time.Now().After(deadline) {
				t.Fatalf("queued %d, want %d", s.Stats().Queued, n)
			}
		}
	}
	run("a1")
	<-held
	run("a2")
	queued(1)
	run("a3")
	queued(2)
	if _, err := s.Run(context.Background(), generate.Request{Prompt: []int{1, 5}, Steps: 4, Account: "a"}); !errors.Is(err, scheduler.ErrBusy) {
		t.Errorf("a4 in a full queue of a's: %v, want ErrBusy", err)
	}
	run("b1") // takes a3's place
	select {
	case err := <-errs["a3"]:
		if !errors.Is(err, scheduler.ErrBusy) {
			t.Errorf("a3 pushed out: %v, want ErrBusy", err)
		}
	case <-time.After(10 * time.Second):
		close(hold)
		t.Fatal("a3 still waits: b1 did not take its place")
	}
	queued(2)
	if _, err := s.Run(context.Background(), generate.Request{Prompt: []int{1, 5}, Steps: 4, Account: "b"}); !errors.Is(err, scheduler.ErrBusy) {
		t.Errorf("b2 with a and b one each in the queue: %v, want ErrBusy", err)
	}
	close(hold)
	for _, name := range []string{"a1", "a2", "b1"} {
		if err := <-errs[name]; err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	waitIdle(t, s)
}
