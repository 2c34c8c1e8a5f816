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

	"github.com/verdictnet/verdict/internal/audit"
	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/generate"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/sampler"
	"github.com/verdictnet/verdict/internal/scheduler"
)

// prefixRec is an audit.Recorder as a scheduler.PrefixTracer (as the
// worker's tracer is).
type prefixRec struct{ *audit.Recorder }

func (p prefixRec) TracePrefix(m int) (any, error) { return p.Recorder.TracePrefix(m) }

func (p prefixRec) ResumePrefix(x any, m int) error {
	return p.Recorder.ResumePrefix(x.(*audit.TracePrefix), m)
}

// conversations returns n requests whose prompts start with one of two
// shared "system prompts" (30 and 45 tokens), then a few tokens of their
// own; mixed sampling, some ending early, some cancelled, some asking for
// every prompt position's logits (which no cached prefix can give).
func conversations(n int, r *rand.Rand) []job {
	systems := [2][]int{{1}, {1}}
	for i, l := range []int{29, 44} {
		for range l {
			systems[i] = append(systems[i], 3+r.IntN(500))
		}
	}
	js := jobs(n, r)
	for i := range js {
		p := slices.Clone(systems[i%2])
		p = append(p, js[i].prompt[1:1+min(len(js[i].prompt)-1, 6)]...)
		js[i].prompt, js[i].steps, js[i].prefix = p, len(p)+4+r.IntN(30), true
	}
	return js
}

// TestPrefixCacheEqualsAlone: requests that share system prompts, then
// follow-up turns whose prompts are an earlier turn's prompt and answer
// and a few tokens more, run concurrently (arrival shuffled) through a
// scheduler with a prefix cache, give the tokens, logits and trace roots
// of generate.Run alone, for N = 1, 4 and 16; the follow-ups take cached
// prefixes (the scheduler's counters), and when every request is done the
// cache holds no more than its bound and no running room.
func TestPrefixCacheEqualsAlone(t *testing.T) {
	e := newEngine(t)
	c := e.Model().Config
	alone := func(ctx context.Context, req generate.Request) (generate.Result, error) {
		return generate.Run(ctx, e, req)
	}
	for _, n := range []int{1, 4, 16} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(n), 11))
			s := scheduler.New(e, scheduler.Config{MaxBatch: 6, ChunkTokens: 16})
			defer s.Close()
			check := func(js []job, got []outcome) {
				t.Helper()
				for i, j := range js {
					want := j.run(context.Background(), c, alone)
					if err := got[i].equal(want); err != nil {
						t.Errorf("request %d (prompt of %d): %v", i, len(j.prompt), err)
					}
				}
			}
			first := conversations(n, r)
			got := runShuffled(s, c, first, r)
			check(first, got)
			t.Logf("after the first turns: %+v", s.Stats())
			// Second turns: the first turn's prompt and answer (but its
			// last token), then a few new tokens; greedy.
			var next []job
			for i, j := range first {
				if (got[i].err != nil && !errors.Is(got[i].err, errStop)) || len(got[i].out) < 2 {
					continue
				}
				p := append(slices.Clone(j.prompt), got[i].out[:len(got[i].out)-1]...)
				for range 1 + r.IntN(5) {
					p = append(p, 3+r.IntN(500))
				}
				if len(p)+8 > c.ContextLen {
					continue
				}
				next = append(next, job{prompt: p, steps: len(p) + 8, prefix: true, params: sampler.Params{Temperature: 0.7, Seed: uint64(i)}})
			}
			before := s.Stats()
			check(next, runShuffled(s, c, next, r))
			waitIdle(t, s)
			st := s.Stats()
			if n > 1 && (st.PrefixHits == before.PrefixHits || st.PrefixTokens <= before.PrefixTokens) {
				t.Errorf("second turns took no cached prefix: %+v", st)
			}
			if st.PrefixHits == 0 || st.PrefixEntries == 0 || st.PrefixBytes <= 0 || st.PrefixBytes > st.PrefixCap {
				t.Errorf("prefix cache after the runs: %d hits, %d entries of %d bytes, bound %d", st.PrefixHits, st.PrefixEntries, st.PrefixBytes, st.PrefixCap)
			}
			t.Logf("%d requests then %d follow-ups: %d took a cached prefix (%d positions), %d entries (%d bytes) kept", n, len(next), st.PrefixHits, st.PrefixTokens, st.PrefixEntries, st.PrefixBytes)
		})
	}
}

// TestPrefixCacheGivesWay: cached prefixes never keep a request out: one
// that needs the whole budget evicts them, and a scheduler whose prefix
// cache is off keeps nothing.
func TestPrefixCacheGivesWay(t *testing.T) {
	e := newEngine(t)
	c := e.Model().Config
	per := e.KVBytesPerPosition()
	budget := int64(c.ContextLen) * per
	s := scheduler.New(e, scheduler.Config{MaxBatch: 4, KVBudget: budget, PrefixCache: budget})
	defer s.Close()
	r := rand.New(rand.NewPCG(5, 5))
	for i := range 3 {
		j := conversations(3, r)[i]
		j.steps, j.cancelA, j.stopAt = len(j.prompt)+6, 0, 0
		if o := j.run(context.Background(), c, s.Run); o.err != nil {
			t.Fatal(o.err)
		}
	}
	waitIdle(t, s)
	if st := s.Stats(); st.PrefixEntries == 0 {
		t.Fatalf("nothing cached: %+v", st)
	}
	// The whole context: every cached prefix gives way.
	j := job{prompt: []int{1, 5, 6, 7}, steps: c.ContextLen, prefix: true}
	if o := j.run(context.Background(), c, s.Run); o.err != nil {
		t.Fatalf("a request for the whole budget: %v", o.err)
	}
	waitIdle(t, s)
	if st := s.Stats(); st.PrefixBytes+int64(c.ContextLen)*per > budget && st.PrefixEntries > 1 {
		t.Errorf("after the large request: %+v", st)
	}

	off := scheduler.New(e, scheduler.Config{MaxBatch: 4, PrefixCache: -1})
	defer off.Close()
	for i := range 2 {
		j := conversations(2, r)[i]
		j.cancelA, j.stopAt = 0, 0
		if o := j.run(context.Background(), c, off.Run); o.err != nil {
			t.Fatal(o.err)
		}
	}
	waitIdle(t, off)
	if st := off.Stats(); st.PrefixEntries != 0 || st.PrefixHits != 0 || st.PrefixCap != 0 {
		t.Errorf("prefix cache off: %+v", st)
	}
}

// TestPrefixSharing: requests whose prompts start with a cached 96-token
// system prompt share its cache's pages (8 positions a page) instead of
// each holding a copy, so that 8 of them run at once in a budget of 240
// positions, where the cached prompt and one copy of it (each request
// takes 112) would leave room for no other: all 8 are admitted before
// the first step, the scheduler counts 8 x 96 positions shared and none
// of them in its running sequences' room, and each gives the tokens,
// logits and trace roots of generate.Run alone. Once they end nothing is
// shared and no step held more than it counted; a request whose prompt
// alone needs half the budget still gets it (cached caches give way).
func TestPrefixSharing(t *testing.T) {
	e := newPagedEngine(t, 8)
	c := e.Model().Config
	per := e.KVBytesPerPosition()
	budget := 240 * per
	s := scheduler.New(e, scheduler.Config{MaxBatch: 8, KVBudget: budget, PrefixCache: budget})
	defer s.Close()
	r := rand.New(rand.NewPCG(8, 8))
	system := cacheSystem(t, s, c, r, 96)
	js := make([]job, 8)
	for i := range js {
		p := append(slices.Clone(system), randPrompt(r, 5)[1:]...)
		js[i] = job{prompt: p, steps: len(p) + 10, prefix: true, params: sampler.Params{Temperature: 0.8, Seed: uint64(i)}}
	}
	got := runHeld(t, s, c, js, r, func(st scheduler.Stats) bool {
		if st.Ready != len(js) || st.PrefixShared != int64(len(js))*96*per {
			return false
		}
		if st.KVUsed+st.PrefixBytes > budget {
			t.Errorf("over the budget: %+v", st)
		}
		return true
	})
	sameAsAlone(t, e, js, got)
	waitIdle(t, s)
	st := s.Stats()
	if st.PeakBatch != len(js) || st.PrefixShared != 0 || scheduler.Overdrawn(s) != 0 {
		t.Errorf("after the requests: peak batch %d, %d bytes still shared, %d steps overdrawn", st.PeakBatch, st.PrefixShared, scheduler.Overdrawn(s))
	}
	t.Logf("%d requests at once, %d prefix hits, %d cached caches of %d bytes", st.PeakBatch, st.PrefixHits, st.PrefixEntries, st.PrefixBytes)
	long := job{prompt: randPrompt(r, 119), steps: c.ContextLen, prefix: true}
	if o := long.run(context.Background(), c, s.Run); o.err != nil {
		t.Fatalf("a request for half the budget: %v", o.err)
	}
}

// generateAlone runs a request alone on e (generate.Run).
func generateAlone(e *engine.Engine) func(context.Context, generate.Request) (generate.Result, error) {
	return func(ctx context.Context, req generate.Request) (generate.Result, error) {
		return generate.Run(ctx, e, req)
	}
}

// TestPrefixSharerGrows: a request that shares a cached prefix holding
// more than it shares (a 70-position generation, of which it shares the
// first 40 positions) still grows to the end of its room alone: when the
// cached prefix and its own pages no longer fit the budget (100
// positions), the shared pages become its own and the prefix gives way
// (it would otherwise pin room the request needs: a stall). Its tokens are
// those of generate.Run alone.
func TestPrefixSharerGrows(t *testing.T) {
	e := newPagedEngine(t, 8)
	budget := 100 * e.KVBytesPerPosition()
	s := scheduler.New(e, scheduler.Config{MaxBatch: 4, KVBudget: budget, PrefixCache: budget})
	defer s.Close()
	r := rand.New(rand.NewPCG(9, 9))
	prompt := randPrompt(r, 40)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := s.Run(ctx, generate.Request{Prompt: prompt, Steps: 70, Sampler: sampler.Params{Temperature: 1, Seed: 3}}); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, s)
	if st := s.Stats(); st.PrefixEntries != 1 || st.PrefixBytes < 70*e.KVBytesPerPosition() {
		t.Fatalf("the first generation not cached whole: %+v", st)
	}
	req := generate.Request{Prompt: append(slices.Clone(prompt), 7, 8), Steps: 100, Sampler: sampler.Params{Temperature: 1, Seed: 4}}
	got, err := s.Run(ctx, req)
	if err != nil {
		t.Fatalf("the sharer: %v (%+v)", err, s.Stats())
	}
	want, err := generate.Run(context.Background(), e, req)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Output, want.Output) || len(got.Output) != 100-len(req.Prompt)+1 {
		t.Errorf("tokens %v, alone %v", got.Output, want.Output)
	}
	waitIdle(t, s)
	if st := s.Stats(); st.PrefixSharedTokens != 40 || scheduler.Overdrawn(s) != 0 {
		t.Errorf("%d positions shared (want 40), %d steps overdrawn", st.PrefixSharedTokens, scheduler.Overdrawn(s))
	}
}

// randPrompt is a prompt of n tokens: BOS, then tokens drawn from r.
func randPrompt(r *rand.Rand, n int) []int {
	p := []int{1}
	for len(p) < n {
		p = append(p, 3+r.IntN(500))
	}
	return p
}

// TestPrefixReshare: sharers of a cached 96-token prompt (pages of 8) that
// grow into each other's room (8 of them, up to 40 positions each of their
// own, in a budget of 240 positions) are preempted, and each takes the
// cached prompt's pages again when it resumes: it feeds again only its own
// positions, never the 96 it shares. Every answer equals generate.Run
// alone.
func TestPrefixReshare(t *testing.T) {
	e := newPagedEngine(t, 8)
	c := e.Model().Config
	budget := 240 * e.KVBytesPerPosition()
	s := scheduler.New(e, scheduler.Config{MaxBatch: 8, KVBudget: budget, PrefixCache: budget})
	defer s.Close()
	r := rand.New(rand.NewPCG(10, 10))
	system := cacheSystem(t, s, c, r, 96)
	js := make([]job, 8)
	for i := range js {
		p := append(slices.Clone(system), randPrompt(r, 3)[1:]...)
		js[i] = job{prompt: p, steps: len(p) + 38, prefix: true, params: sampler.Params{Temperature: 0.9, Seed: uint64(20 + i)}}
	}
	got := runHeld(t, s, c, js, r, func(st scheduler.Stats) bool { return st.Ready == len(js) })
	sameAsAlone(t, e, js, got)
	waitIdle(t, s)
	st := s.Stats()
	if st.Preempted == 0 || st.Reshared != st.Preempted*96 || st.Recomputed > st.Preempted*(98+38-96) || scheduler.Overdrawn(s) != 0 {
		t.Errorf("%d preemptions, %d positions taken again from the prefix cache (want 96 each), %d fed again (at most %d each), %d steps overdrawn",
			st.Preempted, st.Reshared, st.Recomputed, 98+38-96, scheduler.Overdrawn(s))
	}
	t.Logf("%d preemptions, %d positions taken again, %d fed again", st.Preempted, st.Reshared, st.Recomputed)
}

// cacheSystem runs a prompt of n random tokens (a system prompt) through
// s, which keeps it in its prefix cache, and returns it.
func cacheSystem(t *testing.T, s *scheduler.Scheduler, c model.Config, r *rand.Rand, n int) []int {
	t.Helper()
	system := randPrompt(r, n)
	first := job{prompt: slices.Clone(system), steps: n + 1, prefix: true}
	if o := first.run(context.Background(), c, s.Run); o.err != nil {
		t.Fatal(o.err)
	}
	waitIdle(t, s)
	if st := s.Stats(); st.PrefixEntries != 1 {
		t.Fatalf("the system prompt not cached: %+v", st)
	}
	return system
}

// runHeld runs js through s as runShuffled does, holding s's steps
// (Scheduler.HoldSteps) until ready holds for its stats, so that which
// requests overlap does not depend on how fast the machine runs the ones
// before; it fails t if ready does not come to hold within 10 seconds.
func runHeld(t *testing.T, s *scheduler.Scheduler, c model.Config, js []job, r *rand.Rand, ready func(scheduler.Stats) bool) []outcome {
	t.Helper()
	release := s.HoldSteps()
	var got []outcome
	ran := make(chan struct{})
	go func() { got = runShuffled(s, c, js, r); close(ran) }()
	for deadline := time.Now().Add(10 * time.Second); !ready(s.Stats()); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			release()
			<-ran
			t.Fatalf("the requests never came to wait as wanted: %+v", s.Stats())
		}
	}
	release()
	<-ran
	return got
}

// sameAsAlone fails t for each of js whose outcome got differs from
// generate.Run's alone on e.
func sameAsAlone(t *testing.T, e *engine.Engine, js []job, got []outcome) {
	t.Helper()
	for i, j := range js {
		if err := got[i].equal(j.run(context.Background(), e.Model().Config, generateAlone(e))); err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
}

// TestPrefixGivesWayToItsTaker: a request that would share a cached
// prefix (its first 40 positions) but does not fit beside it (the cached
// generation holds 90 of the budget's 100 positions, the request's own
// prompt needs 32 more) is admitted without it, the prefix given up,
// instead of waiting for room nothing will free; its tokens are those of
// generate.Run alone.
func TestPrefixGivesWayToItsTaker(t *testing.T) {
	e := newPagedEngine(t, 8)
	s := scheduler.New(e, scheduler.Config{MaxBatch: 4, KVBudget: 100 * e.KVBytesPerPosition(), PrefixCache: 100 * e.KVBytesPerPosition()})
	defer s.Close()
	r := rand.New(rand.NewPCG(11, 11))
	prompt := randPrompt(r, 40)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := s.Run(ctx, generate.Request{Prompt: prompt, Steps: 90, Sampler: sampler.Params{Temperature: 1, Seed: 5}}); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, s)
	if st := s.Stats(); st.PrefixEntries != 1 || st.PrefixBytes != 90*e.KVBytesPerPosition() {
		t.Fatalf("the first generation not cached whole: %+v", st)
	}
	req := generate.Request{Prompt: append(slices.Clone(prompt), randPrompt(r, 31)[1:]...), Steps: 100, Sampler: sampler.Params{Temperature: 1, Seed: 6}}
	got, err := s.Run(ctx, req)
	if err != nil {
		t.Fatalf("the request: %v (%+v)", err, s.Stats())
	}
	want, err := generate.Run(context.Background(), e, req)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Output, want.Output) || got.CachedPrompt != 0 {
		t.Errorf("tokens %v (%d from the cache), alone %v", got.Output, got.CachedPrompt, want.Output)
	}
}

// TestPrefixJoin: a cold burst, 8 requests whose prompts start with the
// same system prompt that no cache holds, all admitted before the first
// step (16 prompt tokens a step): the first computes the system prompt, the
// others wait for it and take it from its sequence — its whole cache pages
// shared (published as a cached prefix), the rest copied — so that the
// batch prefills it once (n + 5 + 7 x 5 prompt tokens, not 8 x (n + 5));
// each answer equals generate.Run alone. With pages of 8 positions a
// 64-token system prompt is 8 shared pages; with pages of 16 a 40-token
// one is 2 pages and 8 positions copied; with pages of 64 it is copied
// whole. A follower whose leader leaves before it has computed them waits
// on the next one instead (TestPrefixJoinLeaderLeaves).
func TestPrefixJoin(t *testing.T) {
	for _, tc := range []struct{ page, system int }{{8, 64}, {16, 40}, {64, 40}} {
		t.Run(fmt.Sprintf("page=%d/system=%d", tc.page, tc.system), func(t *testing.T) {
			e, s := joinScheduler(t, tc.page, 8, 16)
			c := e.Model().Config
			r := rand.New(rand.NewPCG(12, uint64(tc.page)))
			system := randPrompt(r, tc.system)
			js := make([]job, 8)
			for i := range js {
				// Each prompt's own tokens start with a token of its own:
				// the prompts share the system prompt and no more.
				p := append(slices.Clone(system), 503+i)
				p = append(p, randPrompt(r, 5)[1:]...)
				js[i] = job{prompt: p, steps: len(p) + 8, prefix: true, params: sampler.Params{Temperature: 0.8, Seed: uint64(30 + i)}}
			}
			js[3].params = sampler.Params{} // greedy
			js[5].stopAt = 3
			got := runHeld(t, s, c, js, r, func(st scheduler.Stats) bool { return st.Ready == len(js) })
			sameAsAlone(t, e, js, got)
			waitIdle(t, s)
			st := s.Stats()
			n := uint64(tc.system)
			shared := n / uint64(tc.page) * uint64(tc.page)
			if st.PrefixJoinedTokens != 7*n || st.PromptTokens != n+5+7*5 || st.PrefixSharedTokens != 7*shared || scheduler.Overdrawn(s) != 0 {
				t.Errorf("%d prompt positions taken from the first request's sequence (want %d), %d shared (want %d), %d prompt tokens fed (want %d), %d steps overdrawn",
					st.PrefixJoinedTokens, 7*n, st.PrefixSharedTokens, 7*shared, st.PromptTokens, n+5+7*5, scheduler.Overdrawn(s))
			}
			if st.PrefixBytes > st.PrefixCap || st.PrefixShared != 0 {
				t.Errorf("after the burst: %+v", st)
			}
			t.Logf("%d steps, %d prompt tokens fed, %d taken from the first request's sequence (%d in shared pages); %d cached entries of %d bytes", st.Steps, st.PromptTokens, st.PrefixJoinedTokens, st.PrefixSharedTokens, st.PrefixEntries, st.PrefixBytes)
		})
	}
}

// cancelAt is a prefix tracer that cancels its request when the forward
// pass reaches position at, and holds the pass until the request has
// returned.
type cancelAt struct {
	prefixRec
	at       int
	cancel   func()
	returned chan struct{}
	once     sync.Once
}

func (c *cancelAt) Layer(l, pos int, x, k, v, attn []float32) {
	c.prefixRec.Layer(l, pos, x, k, v, attn)
	if pos == c.at {
		c.once.Do(func() {
			c.cancel()
			<-c.returned
		})
	}
}

// TestPrefixJoinLeaderLeaves: the first of 5 requests sharing a 64-token
// system prompt hangs up at position 40, before its pages hold the whole
// system prompt; the 4 waiting for them go on (none waits for ever): the
// next one computes it and the other 3 share its pages. Every answer
// equals generate.Run alone.
func TestPrefixJoinLeaderLeaves(t *testing.T) {
	e, s := joinScheduler(t, 8, 8, 16)
	c := e.Model().Config
	r := rand.New(rand.NewPCG(13, 13))
	system := randPrompt(r, 64)
	release := s.HoldSteps()
	ctx, cancel := context.WithCancel(context.Background())
	lead := &cancelAt{prefixRec: prefixRec{audit.NewRecorder(c, system)}, at: 40, cancel: cancel, returned: make(chan struct{})}
	var leadErr error
	go func() {
		_, leadErr = s.Run(ctx, generate.Request{Prompt: append(slices.Clone(system), 9, 10), Steps: 80, Trace: lead})
		close(lead.returned)
	}()
	for s.Stats().Ready != 1 {
		time.Sleep(time.Millisecond)
	}
	js := make([]job, 4)
	for i := range js {
		p := append(slices.Clone(system), randPrompt(r, 4)[1:]...)
		js[i] = job{prompt: p, steps: len(p) + 6, prefix: true, params: sampler.Params{Temperature: 0.9, Seed: uint64(40 + i)}}
	}
	var got []outcome
	ran := make(chan struct{})
	go func() { got = runShuffled(s, c, js, r); close(ran) }()
	for s.Stats().Ready != 5 {
		time.Sleep(time.Millisecond)
	}
	release()
	<-ran
	<-lead.returned
	if !errors.Is(leadErr, context.Canceled) {
		t.Fatalf("the first request: %v", leadErr)
	}
	sameAsAlone(t, e, js, got)
	waitIdle(t, s)
	if st := s.Stats(); st.PrefixJoinedTokens != 3*64 || scheduler.Overdrawn(s) != 0 {
		t.Errorf("%d prompt positions taken from a running request's pages (want %d), %d steps overdrawn", st.PrefixJoinedTokens, 3*64, scheduler.Overdrawn(s))
	}
}

// TestPrefixJoinKeptWhole: of two requests that start with the same
// 64-token system prompt, the one that joins the other's pages hangs up
// (its cache is not kept); the one kept then holds the published system
// prompt's pages as its own: the prefix cache keeps one entry (the
// published prefix gives way to the generation that covers it), its
// bytes counted once, and a request that starts with the whole kept
// generation takes it.
func TestPrefixJoinKeptWhole(t *testing.T) {
	e, s := joinScheduler(t, 8, 4, 16)
	c := e.Model().Config
	per := e.KVBytesPerPosition()
	r := rand.New(rand.NewPCG(14, 14))
	system := randPrompt(r, 64)
	js := make([]job, 2)
	for i := range js {
		p := append(slices.Clone(system), randPrompt(r, 4)[1:]...)
		js[i] = job{prompt: p, steps: len(p) + 12, prefix: true}
	}
	js[1].cancelA = 2
	got := runHeld(t, s, c, js, r, func(st scheduler.Stats) bool { return st.Ready == 2 })
	sameAsAlone(t, e, js, got)
	waitIdle(t, s)
	st := s.Stats()
	if st.PrefixJoinedTokens != 64 || st.PrefixEntries != 1 || st.PrefixBytes < 72*per || st.PrefixBytes > 80*per {
		t.Fatalf("%d positions joined (want 64), %d cached entries of %d positions (want 1 of 72 to 80): %+v", st.PrefixJoinedTokens, st.PrefixEntries, st.PrefixBytes/per, st)
	}
	if got[0].err != nil {
		t.Fatal(got[0].err)
	}
	next := job{prompt: append(slices.Clone(js[0].prompt), got[0].out[:len(got[0].out)-1]...), prefix: true}
	next.prompt = append(next.prompt, 5)
	next.steps = len(next.prompt) + 3
	if err := next.run(context.Background(), c, s.Run).equal(next.run(context.Background(), c, generateAlone(e))); err != nil {
		t.Fatal(err)
	}
	if after := s.Stats(); after.PrefixTokens-st.PrefixTokens != uint64(len(next.prompt)-1) {
		t.Errorf("the follow-up took %d positions from the cache, want %d", after.PrefixTokens-st.PrefixTokens, len(next.prompt)-1)
	}
}

// TestPrefixJoinNoWait: requests whose prompts share only their first 8
// tokens (a chat template's opening, say), all admitted before the first
// step with room in its prompt budget for every prompt, are all fed in
// that step: none waits a step for 8 positions it computes at once.
func TestPrefixJoinNoWait(t *testing.T) {
	e, s := joinScheduler(t, 8, 4, 128)
	c := e.Model().Config
	r := rand.New(rand.NewPCG(15, 15))
	opening := randPrompt(r, 8)
	js := make([]job, 3)
	for i := range js {
		p := append(slices.Clone(opening), 503+i)
		p = append(p, randPrompt(r, 12)[1:]...)
		js[i] = job{prompt: p, steps: len(p) + 4, prefix: true}
	}
	got := runHeld(t, s, c, js, r, func(st scheduler.Stats) bool { return st.Ready == len(js) })
	sameAsAlone(t, e, js, got)
	waitIdle(t, s)
	if st := s.Stats(); st.PrefixJoinedTokens != 0 || st.PromptTokens != 60 || st.PeakBatch != 3 {
		t.Errorf("%d positions joined (want 0), %d prompt tokens fed (want 60), peak batch %d", st.PrefixJoinedTokens, st.PromptTokens, st.PeakBatch)
	}
}

// joinScheduler is a scheduler of the join tests: an engine with cache
// pages of page positions, a budget of 1024 positions, all of which the
// prefix cache may keep, maxBatch sequences and chunk prompt tokens a step.
func joinScheduler(t *testing.T, page, maxBatch, chunk int) (*engine.Engine, *scheduler.Scheduler) {
	e := newPagedEngine(t, page)
	budget := 1024 * e.KVBytesPerPosition()
	s := scheduler.New(e, scheduler.Config{MaxBatch: maxBatch, KVBudget: budget, PrefixCache: budget, ChunkTokens: chunk})
	t.Cleanup(s.Close)
	return e, s
}

// TestPrefixConversation: a conversation's turns, each prompt the last
// one's prompt and answer and a few tokens more, one after another (pages
// of 8 positions): each turn takes the last one's cache, and once kept,
// holds it as its own — the cache keeps one entry, the pages of the
// conversation so far, not one per turn each pinning the turn before with
// a page copied from it. Every answer equals generate.Run alone.
func TestPrefixConversation(t *testing.T) {
	e, s := joinScheduler(t, 8, 4, 16)
	c := e.Model().Config
	per := e.KVBytesPerPosition()
	r := rand.New(rand.NewPCG(16, 16))
	prompt := randPrompt(r, 21)
	for turn := range 4 {
		j := job{prompt: prompt, steps: len(prompt) + 9, prefix: true, params: sampler.Params{Temperature: 0.9, Seed: uint64(turn)}}
		got := j.run(context.Background(), c, s.Run)
		if err := got.equal(j.run(context.Background(), c, generateAlone(e))); err != nil {
			t.Fatalf("turn %d: %v", turn, err)
		}
		waitIdle(t, s)
		kept := len(prompt) + len(got.out) - 1 // the last token is not fed
		st := s.Stats()
		if want := e.CacheBytes(j.steps, kept); st.PrefixEntries != 1 || st.PrefixBytes != want {
			t.Fatalf("after turn %d (%d positions kept): %d cached entries of %d positions, want 1 of %d", turn, kept, st.PrefixEntries, st.PrefixBytes/per, want/per)
		}
		if turn > 0 && st.PrefixTokens < uint64(len(prompt)-4) {
			t.Fatalf("turn %d took %d positions from the cache", turn, st.PrefixTokens)
		}
		prompt = append(append(slices.Clone(prompt), got.out[:len(got.out)-1]...), randPrompt(r, 4)[1:]...)
	}
}

// TestPrefixBranchDropped: two continuations of one conversation turn (a
// branch and the next turn, run at once) each keep their cache, sharing
// the turn's pages; a new request then makes room by giving up one of the
// two (the least recently used). The other, alone to share the turn's
// pages now, holds them as its own (mergeSolesLocked), as it would had
// the first never been: two entries stay (it and the new request), of the
// bytes of their sequences, not three. Every answer equals generate.Run
// alone.
func TestPrefixBranchDropped(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 17))
	turn := randPrompt(r, 21)
	branch, next, other := randPrompt(r, 5)[1:], randPrompt(r, 5)[1:], randPrompt(r, 9)
	// run runs the requests through s, the two continuations at once;
	// the cache's bytes after each round.
	run := func(s *scheduler.Scheduler, e *engine.Engine) (jobs []job, outs []outcome, bytes []int64) {
		c := e.Model().Config
		do := func(js ...job) {
			got := make([]outcome, len(js))
			// The requests of one round meet in one step however the
			// machine schedules their goroutines (a continuation run
			// after the other had kept its cache would take that
			// instead of the turn's).
			release := s.HoldSteps()
			var wg sync.WaitGroup
			for i, j := range js {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got[i] = j.run(context.Background(), c, s.Run)
				}()
			}
			for deadline := time.Now().Add(10 * time.Second); s.Stats().Ready < len(js); time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					release()
					wg.Wait()
					t.Fatalf("round %d: the requests never came to wait for one step: %+v", len(jobs), s.Stats())
				}
			}
			release()
			wg.Wait()
			for i, j := range js {
				if err := got[i].equal(j.run(context.Background(), c, generateAlone(e))); err != nil {
					t.Fatalf("request %d: %v", len(jobs)+i, err)
				}
			}
			waitIdle(t, s)
			jobs, outs, bytes = append(jobs, js...), append(outs, got...), append(bytes, s.Stats().PrefixBytes)
		}
		mk := func(prompt []int, steps int, seed uint64) job {
			return job{prompt: prompt, steps: steps, prefix: true, params: sampler.Params{Temperature: 0.9, Seed: seed}}
		}
		do(mk(turn, len(turn)+9, 0))
		held := append(slices.Clone(turn), outs[0].out[:len(outs[0].out)-1]...)
		do(mk(append(slices.Clone(held), branch...), len(held)+len(branch)+6, 1), mk(append(slices.Clone(held), next...), len(held)+len(next)+6, 2))
		do(mk(other, len(other)+4, 3))
		return jobs, outs, bytes
	}
	e := newPagedEngine(t, 8)
	budget := 1024 * e.KVBytesPerPosition()
	// First with room for all: the cache's bytes with the new request.
	s := scheduler.New(e, scheduler.Config{MaxBatch: 4, KVBudget: budget, PrefixCache: budget, ChunkTokens: 16})
	_, _, bytes := run(s, e)
	st := s.Stats()
	s.Close()
	if st.PrefixEntries != 4 {
		t.Fatalf("with room for all, %d entries, want 4 (the turn, its two continuations, the new request)", st.PrefixEntries)
	}
	// Then with one byte too few for the new request beside the others.
	s = scheduler.New(e, scheduler.Config{MaxBatch: 4, KVBudget: budget, PrefixCache: bytes[2] - 1, ChunkTokens: 16})
	t.Cleanup(s.Close)
	jobs, outs, _ := run(s, e)
	kept := func(i int) int64 { return e.CacheBytes(jobs[i].steps, len(jobs[i].prompt)+len(outs[i].out)-1) }
	st = s.Stats()
	if a, b := kept(1)+kept(3), kept(2)+kept(3); st.PrefixEntries != 2 || st.PrefixBytes != a && st.PrefixBytes != b {
		t.Fatalf("after a continuation was given up: %d entries of %d bytes, want 2 of %d or %d (the other continuation's sequence and the new request's)", st.PrefixEntries, st.PrefixBytes, a, b)
	}
}
