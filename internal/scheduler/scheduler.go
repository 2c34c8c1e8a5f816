package scheduler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/generate"
	"github.com/verdictnet/verdict/internal/sampler"
)

// Errors Run fails with besides those of generate.Run; test them with
// errors.Is.
var (
	// ErrBusy: the batch and the queue are full; try again later.
	ErrBusy = errors.New("batch and queue full")
	// ErrTooLarge: the request needs more key/value cache than the whole
	// budget, so it could never run.
	ErrTooLarge = errors.New("request exceeds the KV cache budget")
	// ErrClosed: the scheduler was closed.
	ErrClosed = errors.New("scheduler closed")
)

// pollOne is how long the engine's threads poll for the next step after a
// step of one sequence (engine.Soon): its caller's sampling, hashing and
// streaming take 0.1 ms or so; a caller slower than this, or a generation
// that ends, leaves them asleep again soon (on a loaded machine a thread
// that polls takes the CPU from other processes).
const pollOne = time.Millisecond

// Defaults of Config.
const (
	DefaultMaxBatch    = 16
	DefaultMaxQueue    = 64
	DefaultChunkTokens = 128
	DefaultMaxWait     = 10 * time.Millisecond
	// DefaultPrefixCacheMax bounds the default prefix cache: the
	// default budget, MaxBatch full contexts, is 128 GiB for a
	// 131072-position Llama 3.2 1B, which running sequences rarely come
	// to fill, where kept caches would.
	DefaultPrefixCacheMax = 1 << 30
)

// Config bounds a Scheduler.
type Config struct {
	// MaxBatch is the most sequences running at once (default 16).
	MaxBatch int
	// KVBudget is the key/value cache, in bytes, shared by the running
	// sequences: each holds the pages of the positions it has filled
	// (engine.Engine.CacheBytes), and its prompt's from admission; a
	// request whose prompt and max tokens together exceed it fails with
	// ErrTooLarge. Default: MaxBatch sequences of the full context length.
	KVBudget int64
	// MaxQueue is the most requests waiting for room (default 64); beyond
	// it Run fails with ErrBusy, unless another account has more requests
	// waiting than the newcomer's would: its latest then fails in the
	// newcomer's place (generate.Request.Account).
	MaxQueue int
	// ChunkTokens is the most prompt tokens prefilled in one step, over
	// all newcomers (default 128), so that a long prompt is fed over
	// several steps and never stalls the running sequences for long.
	// Tokens of running sequences are never held back.
	ChunkTokens int
	// Speculate is the most draft tokens a generation feeds after the
	// token it sampled in one step (prompt lookup decoding: the tokens
	// that followed its last few tokens where they occurred before in its
	// prompt or output); each the sampler then picks is one step saved,
	// with the same tokens, logits and trace as without. 0: none.
	Speculate int
	// MaxWait is the longest a step waits for running requests still
	// busy with their previous token before it goes on without them
	// (default 10 ms); it never waits longer than the last step took.
	MaxWait time.Duration
	// PrefixCache is the most bytes of KVBudget that finished
	// generations' caches may keep, so that a later prompt starting with
	// the same tokens (a system prompt, a conversation's earlier turns)
	// takes their keys and values, and their trace, instead of
	// computing them again: the same bits. The prompt's sequence shares
	// the cached cache's whole pages (engine.Sequence.SharePrefix): they
	// count once, in the prefix cache, which keeps them while any
	// sequence shares them; the rest is copied. Running sequences come
	// first: a request that needs the room gives up the least recently
	// used cache no sequence shares. 0: a quarter of KVBudget, at most
	// DefaultPrefixCacheMax; negative: no prefix cache.
	PrefixCache int64
}

// Stats is a snapshot of a Scheduler.
type Stats struct {
	Running int // sequences admitted and not yet ended
	Ready   int // running sequences whose callers wait for their next step
	Queued  int // requests waiting for room
	Batch   int // sequences in the last step
	// PeakBatch is the most sequences in one step since the start.
	PeakBatch int
	KVUsed    int64 // bytes of the budget held by running sequences
	KVBudget  int64
	MaxBatch  int
	// Preempted counts, since the start, the running sequences that gave
	// up their cache for an earlier one that needed room (and fed their
	// tokens again later: Recomputed counts those tokens, Reshared those
	// they took again from the prefix cache instead, its pages shared);
	// Resuming is the sequences now waiting to.
	Preempted, Recomputed, Reshared uint64
	Resuming                        int
	// The prefix cache (Config.PrefixCache): the bytes and the finished
	// generations' caches it keeps, its bound, and since the start the
	// requests that took a cached prefix and the prompt tokens they so
	// did not compute, PrefixSharedTokens those of them in whole pages
	// shared rather than copied (engine.Sequence.SharePrefix).
	// PrefixShared is the bytes of cached caches' pages that running
	// sequences share now (counted in PrefixBytes, not in KVUsed: without
	// sharing, each would hold a copy).
	PrefixBytes        int64
	PrefixEntries      int
	PrefixCap          int64
	PrefixHits         uint64
	PrefixTokens       uint64
	PrefixSharedTokens uint64
	PrefixShared       int64
	// PrefixJoinedTokens counts, since the start, the prompt tokens
	// requests took at their first step rather than at admission, most of
	// them from a running generation: a request whose prompt starts with
	// what an earlier one is prefilling waits for those positions instead
	// of computing them too, then takes them, sharing their whole pages (a
	// burst of requests with a new system prompt computes it once).
	// Counted in PrefixTokens too.
	PrefixJoinedTokens uint64
	// Draft tokens fed (Config.Speculate) and those the sampler picked,
	// since the start.
	Drafted, Accepted uint64
	// Counters since the start.
	Steps        uint64 // forward passes
	PromptTokens uint64 // prompt tokens prefilled
	OutputTokens uint64 // tokens generated
	// DecodeRate is the generated tokens per second of recent steps (an
	// exponentially weighted average over steps that ran), 0 when idle.
	DecodeRate float64
	// Forward is the wall time of every step's forward pass since the
	// start (engine.Forward, all of the step's sequences together).
	Forward Histogram
	// Gap is the wall time between the end of one step's forward pass
	// and the start of the next, while generations are running: the
	// callers' per-token work (logit hashing, sampling, stop checks,
	// streaming), the wait for it (Config.MaxWait) and the scheduler's
	// own, during which the engine computes nothing. A gap is not counted
	// when the batch empties before the next step.
	Gap Histogram
}

// StepBounds are the upper bounds, in seconds, of the buckets of
// Stats.Forward and Stats.Gap (a last bucket, +Inf, holds the rest).
var StepBounds = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Histogram counts durations in the buckets of StepBounds.
type Histogram struct {
	// Counts[i] is the number of durations d with StepBounds[i-1] < d <=
	// StepBounds[i] (not cumulative); Counts[len(StepBounds)] those above
	// the last bound. Nil before the first duration.
	Counts []uint64
	Count  uint64  // durations counted
	Sum    float64 // their sum, in seconds
}

// observe counts d.
func (h *Histogram) observe(d time.Duration) {
	if h.Counts == nil {
		h.Counts = make([]uint64, len(StepBounds)+1)
	}
	v := d.Seconds()
	i := 0
	for i < len(StepBounds) && v > StepBounds[i] {
		i++
	}
	h.Counts[i]++
	h.Count++
	h.Sum += v
}

// clone returns a copy of h that shares no memory with it.
func (h Histogram) clone() Histogram {
	h.Counts = append([]uint64(nil), h.Counts...)
	return h
}

// Mean is the mean duration counted, 0 when none was.
func (h Histogram) Mean() time.Duration {
	if h.Count == 0 {
		return 0
	}
	return time.Duration(h.Sum / float64(h.Count) * 1e9)
}

// Sub returns the durations counted in h and not in an earlier snapshot
// before of the same histogram.
func (h Histogram) Sub(before Histogram) Histogram {
	d := Histogram{Count: h.Count - before.Count, Sum: h.Sum - before.Sum}
	if h.Counts != nil {
		d.Counts = make([]uint64, len(h.Counts))
		for i := range h.Counts {
			d.Counts[i] = h.Counts[i]
			if i < len(before.Counts) {
				d.Counts[i] -= before.Counts[i]
			}
		}
	}
	return d
}

// Scheduler runs generations on one engine as a continuous batch. It is
// safe for concurrent use; Close stops it.
type Scheduler struct {
	e     *engine.Engine
	cfg   Config
	perKV int64 // bytes of cache per position
	// prefixCap is Config.PrefixCache resolved (0: no prefix cache).
	prefixCap int64
	// polling: the engine's threads were told a step follows soon
	// (engine.Soon) after the last one (the loop's goroutine only).
	polling bool

	mu      sync.Mutex
	active  []*slot   // admitted, in admission order
	queue   []*waiter // FIFO
	running int       // admitted (active, or about to be)
	kvUsed  int64
	// pendingKV is the part of kvUsed held by requests admitted and not
	// yet active (checkLocked: kvUsed is it and the active slots' kv).
	pendingKV int64
	closed    bool
	// resuming counts the slots preempted and not yet fed again; starved
	// is whether the last step left a sequence out for want of room.
	// Either holds newcomers in the queue: the room is theirs first.
	resuming int
	starved  bool
	// accounts holds, for each account (generate.Request.Account) with a
	// request admitted or waiting, its running requests and the clock of
	// its latest admission: the queue takes turns between accounts.
	accounts map[string]*account
	// The prefix cache: finished generations' sequences, the bytes they
	// hold, and the clock of their last use.
	prefixes    []*prefix
	prefixBytes int64
	clock       uint64
	batch       int
	peak        int
	rate        float64
	forward     Histogram
	gap         Histogram
	// ended is when the last step's forward pass ended, zero once the
	// batch has emptied since (the scheduler goroutine's).
	ended time.Time

	// hold, when not nil (HoldSteps), keeps steps from starting
	// until it is closed, while requests queue.
	hold chan struct{}

	steps, promptTokens, outputTokens atomic.Uint64
	preempted, recomputed             atomic.Uint64
	reshared                          atomic.Uint64
	// overdrawn counts the steps after which a sequence held more cache
	// than the budget counted for it (never: tests check).
	overdrawn                atomic.Uint64
	prefixHits, prefixTokens atomic.Uint64
	sharedTokens             atomic.Uint64
	joinedTokens             atomic.Uint64
	drafted, accepted        atomic.Uint64

	wake chan struct{} // cap 1: something changed
	quit chan struct{}
	done chan struct{}
}

// slot is a running sequence.
type slot struct {
	seq   *engine.Sequence
	trace engine.Tracer
	acct  string // generate.Request.Account
	cap   int    // positions seq has room for
	kv    int64  // bytes of the budget it holds (Scheduler.mu)
	// pref is the cached prefix whose pages seq shares, pinned while it
	// does, and shared the bytes of those pages: counted in the prefix
	// cache's bytes, not in kv (Scheduler.mu).
	pref   *prefix
	shared int64
	// want is what sl may still take from the prefix cache, or from a
	// running generation's pages, before its first step (nil: nothing, or
	// it took a cached prefix at admission); cached is the positions its
	// first step so took (step: joinLocked) (Scheduler.mu).
	want   *prefixWant
	cached int
	// lent is the trace of its first lentN positions that requests
	// joining it took (lentTraceLocked) (Scheduler.mu).
	lent  any
	lentN int
	out   chan stepResult // cap 1: at most one exchange is outstanding
	// hist holds the tokens fed at positions 0, 1, ...: those of
	// seq's positions, and, while evicted (preempted, Scheduler.mu), the
	// positions it had, which seq is fed again before feed.
	hist    []int
	evicted bool

	// Guarded by Scheduler.mu: the tokens to feed next (nil when the
	// caller holds the turn), the index into feed of the first position
	// whose logits are wanted, whether the caller left, and whether the
	// prefix cache took its sequence (keepPrefix).
	feed   []int
	first  int
	prompt bool // feed is (the rest of) the prompt
	gone   bool
	kept   bool
	// computed is the prompt positions handed to steps for it
	// (generate.Result.PromptComputed).
	computed int

	// The scheduler goroutine's: tokens of feed already fed, and the
	// logits gathered over the chunks.
	off int
	got [][]float32
}

type stepResult struct {
	logits [][]float32
	err    error
}

// account is an account's share of the batch (Scheduler.accounts).
type account struct {
	running, waiting int
	admitted         uint64 // Scheduler.clock at its latest admission
}

// waiter is a request waiting for admission (queued, or admitted at once).
type waiter struct {
	acct string
	full int64       // the cache its prompt and first token need, without a cached prefix
	want *prefixWant // the cached prefix it would take (nil: none)
	// Set by planLocked, and kept from its admission on: the room it
	// holds (full, but the whole pages it shares of pref) and the cached
	// prefix it takes, giving m positions (pinned once admitted).
	kv    int64
	pref  *prefix
	m     int
	ready chan struct{} // closed when admitted or failed
	err   error
}

// New starts a scheduler on e; the engine must outlive it.
func New(e *engine.Engine, cfg Config) *Scheduler {
	c := e.Model().Config
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = DefaultMaxQueue
	}
	if cfg.ChunkTokens <= 0 {
		cfg.ChunkTokens = DefaultChunkTokens
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	s := &Scheduler{e: e, perKV: e.KVBytesPerPosition(), accounts: map[string]*account{}, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	if cfg.KVBudget <= 0 {
		cfg.KVBudget = int64(cfg.MaxBatch) * int64(c.ContextLen) * s.perKV
	}
	switch {
	case cfg.PrefixCache == 0:
		s.prefixCap = min(cfg.KVBudget/4, DefaultPrefixCacheMax)
	case cfg.PrefixCache > 0:
		s.prefixCap = min(cfg.PrefixCache, cfg.KVBudget)
	}
	s.cfg = cfg
	go s.loop()
	return s
}

// KVBytes is the float32 key/value cache of positions positions of a model
// with layers layers and kvDim-wide keys: a key and value per layer,
// layers * kvDim * 2 * 4 bytes a position (a binary16 cache, half:
// engine.KVBytesPerPosition is what the scheduler counts).
func KVBytes(layers, kvDim, positions int) int64 {
	return int64(layers) * int64(kvDim) * 2 * 4 * int64(positions)
}

// Config returns the scheduler's configuration, defaults filled in.
func (s *Scheduler) Config() Config { return s.cfg }

// Stats returns a snapshot of the scheduler.
func (s *Scheduler) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	ready := 0
	for _, sl := range s.active {
		if sl.feed != nil && !sl.gone {
			ready++
		}
	}
	return Stats{
		Running: s.running, Ready: ready, Queued: len(s.queue), Batch: s.batch, PeakBatch: s.peak, KVUsed: s.kvUsed, KVBudget: s.cfg.KVBudget, MaxBatch: s.cfg.MaxBatch,
		Preempted: s.preempted.Load(), Recomputed: s.recomputed.Load(), Reshared: s.reshared.Load(), Resuming: s.resuming,
		PrefixBytes: s.prefixBytes, PrefixEntries: len(s.prefixes), PrefixCap: s.prefixCap, PrefixHits: s.prefixHits.Load(), PrefixTokens: s.prefixTokens.Load(), PrefixSharedTokens: s.sharedTokens.Load(), PrefixShared: s.sharedLocked(),
		PrefixJoinedTokens: s.joinedTokens.Load(), Drafted: s.drafted.Load(), Accepted: s.accepted.Load(),
		Steps: s.steps.Load(), PromptTokens: s.promptTokens.Load(), OutputTokens: s.outputTokens.Load(), DecodeRate: s.rate,
		Forward: s.forward.clone(), Gap: s.gap.clone(),
	}
}

// HoldSteps keeps the scheduler from starting a step until release is
// called, while requests are admitted, queue and hand over their tokens
// (Stats.Ready counts those waiting for a step): a test's requests so meet
// in one step however fast the machine runs the ones before. Not for
// serving.
func (s *Scheduler) HoldSteps() (release func()) {
	h := make(chan struct{})
	s.mu.Lock()
	s.hold = h
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.hold = nil
		s.mu.Unlock()
		close(h)
	}
}

// Close stops the scheduler: queued and running requests fail with
// ErrClosed.
func (s *Scheduler) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return
	}
	s.closed = true
	for _, w := range s.queue {
		w.err = ErrClosed
		close(w.ready)
	}
	s.queue = nil
	s.mu.Unlock()
	close(s.quit)
	<-s.done
}

func (s *Scheduler) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run performs the generation described by req as part of the batch and
// returns what generate.Run returns for it alone (req.TokenByToken is
// ignored: prompts are fed in chunks, with the same results). The
// callbacks run on the caller's goroutine; req.Trace runs on the
// scheduler's, never at the same time as the callbacks.
// fits fails with ErrTooLarge when a request of prompt tokens running
// to steps positions could never fit the key/value budget.
func (s *Scheduler) fits(prompt, steps int) error {
	if kv := s.e.CacheBytes(steps, steps); kv > s.cfg.KVBudget {
		budget := s.cfg.KVBudget / s.perKV
		if int64(prompt) > budget {
			return fmt.Errorf("%w: the prompt's %d tokens need %d bytes of KV cache, the budget is %d bytes (%d positions)", ErrTooLarge, prompt, int64(prompt)*s.perKV, s.cfg.KVBudget, budget)
		}
		return fmt.Errorf("%w: %d positions (prompt %d and up to %d generated tokens) need %d bytes of KV cache, the budget is %d bytes (%d positions); ask for fewer tokens", ErrTooLarge, steps, prompt, steps-prompt+1, kv, s.cfg.KVBudget, budget)
	}
	return nil
}

// Check says, before a request is paid for, whether Run would refuse it
// at once: ErrTooLarge when its prompt tokens running to steps positions
// (0 or beyond the context: the context) could never fit the key/value
// budget, ErrBusy when the queue is full and a request of acct could not
// take a place in it. A paid request (an x402 escrow) submits its
// payment before Run: refused then, its escrow stayed locked until it
// expired, and its fee was lost. ErrBusy is a snapshot: Run may still
// find the queue full.
func (s *Scheduler) Check(acct string, prompt, steps int) error {
	if c := s.e.Model().Config; steps <= 0 || steps > c.ContextLen {
		steps = c.ContextLen
	}
	if err := s.fits(prompt, steps); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) >= s.cfg.MaxQueue && !s.canPushOutLocked(acct) {
		return fmt.Errorf("%w: %d sequences running and %d waiting", ErrBusy, s.running, len(s.queue))
	}
	return nil
}

func (s *Scheduler) Run(ctx context.Context, req generate.Request) (res generate.Result, err error) {
	c := s.e.Model().Config
	if len(req.Prompt) == 0 {
		return res, errors.New("generate: empty prompt")
	}
	if err := req.Sampler.Validate(); err != nil {
		return res, fmt.Errorf("generate: %w", err)
	}
	steps := req.Steps
	if steps <= 0 || steps > c.ContextLen {
		steps = c.ContextLen
	}
	if len(req.Prompt) > steps {
		if len(req.Prompt) > c.ContextLen {
			return res, fmt.Errorf("generate: %w: %d tokens, the context length is %d", generate.ErrPromptTooLong, len(req.Prompt), c.ContextLen)
		}
		return res, fmt.Errorf("generate: %w: %d tokens, more than the %d steps asked for", generate.ErrPromptTooLong, len(req.Prompt), steps)
	}
	for i, t := range req.Prompt {
		if t < 0 || t >= c.Vocab {
			return res, fmt.Errorf("generate: prompt token %d at index %d is outside the vocabulary of %d", t, i, c.Vocab)
		}
	}
	if err := s.fits(len(req.Prompt), steps); err != nil {
		return res, err
	}
	first := 0
	if req.OnLogits == nil || req.OutputLogitsOnly {
		first = len(req.Prompt) - 1
	}
	// Admitted with room for the prompt and the first token generated,
	// but the pages it will share with the cached prefix it takes, chosen
	// at admission (planLocked); it takes the rest a page at a time as it
	// grows (step).
	w := &waiter{acct: req.Account, full: s.e.CacheBytes(steps, len(req.Prompt)+1), want: s.wantPrefix(req, first)}
	if err := s.admit(ctx, w); err != nil {
		return res, err
	}
	seq, err := s.e.NewSequence(steps)
	if err != nil {
		s.release(w)
		return res, fmt.Errorf("generate: %w", err)
	}
	sl := &slot{seq: seq, trace: req.Trace, acct: req.Account, cap: steps, kv: w.kv, out: make(chan stepResult, 1)}
	s.mu.Lock()
	s.pendingKV -= w.kv
	s.active = append(s.active, sl)
	s.mu.Unlock()
	defer func() { res.PromptComputed = s.leave(sl) }()

	report := func(from int, logits [][]float32) error {
		if req.OnLogits == nil {
			return nil
		}
		for i, l := range logits {
			if err := req.OnLogits(from+i, l); err != nil {
				return err
			}
		}
		return nil
	}
	// A cached prefix gives positions before the first whose logits are
	// wanted (and always leaves the last prompt token to feed).
	skip := s.takePrefix(req, sl, w)
	sl.hist = slices.Clone(req.Prompt[:skip])
	if skip == 0 && w.want != nil {
		// Its first step may find a cached prefix, or a running
		// generation computing the positions its prompt starts with.
		s.mu.Lock()
		sl.want = w.want
		s.mu.Unlock()
	}
	logits, err := s.exchange(ctx, sl, req.Prompt[skip:], first-skip, true)
	s.mu.Lock()
	res.CachedPrompt = skip + sl.cached
	s.mu.Unlock()
	if err != nil {
		return res, err
	}
	if err := report(first, logits); err != nil {
		return res, err
	}
	last := logits[len(logits)-1]
	pos := len(req.Prompt) // the position the next token goes to
	// emit hands the caller token t, of position p; done when it ends
	// the generation (a stop token, the last position).
	emit := func(p, t int) (done bool, err error) {
		res.Output = append(res.Output, t)
		s.outputTokens.Add(1)
		if req.OnToken != nil {
			if err := req.OnToken(p, t); err != nil {
				return true, err
			}
		}
		if isStop(t, req.StopTokens) {
			res.Stopped = true
			return true, nil
		}
		return p >= steps, nil
	}
	// A step feeds the token sampled, then (Config.Speculate) the tokens
	// that followed the last ones the latest time they occurred: position
	// pos+i's logits, computed with feed[i] there, are those the
	// generation would compute as long as feed[1..i] are the tokens it
	// samples (a position's logits depend only on the tokens up to it),
	// so each draft token the sampler picks is taken with its logits, and
	// the first it does not ends the step's tokens: the positions after
	// are fed again.
	for done := false; !done; {
		if err := ctx.Err(); err != nil {
			if len(res.Output) == 0 {
				// Gone before its first token (nobody pays for the
				// prompt): its positions are whole and no step holds
				// them, so the prefix cache keeps them, as it would
				// those of a generation that ended, for the caller's
				// retry of the same prompt.
				s.keepPrefix(req, sl, nil)
			}
			return res, err
		}
		next := sampler.Sample(last, req.Sampler, pos)
		end, err := emit(pos, next)
		if err != nil {
			// The caller ended it (a stop string, a caller gone):
			// every position fed is whole, no step holds it.
			s.keepPrefix(req, sl, res.Output)
			return res, err
		}
		if end {
			break
		}
		feed := []int{next}
		if k := min(s.cfg.Speculate, steps-1-pos); k > 0 {
			feed = append(feed, draft(req.Prompt, res.Output, k)...)
			s.drafted.Add(uint64(len(feed) - 1))
		}
		logits, err := s.exchange(ctx, sl, feed, 0, false)
		if err != nil {
			return res, err
		}
		for i := 0; ; {
			if err := report(pos, logits[i:i+1]); err != nil {
				return res, err
			}
			last = logits[i]
			pos++
			if i++; i == len(feed) {
				break
			}
			t := sampler.Sample(last, req.Sampler, pos)
			if t != feed[i] {
				sl.seq.Pos = pos // the drafts from here on were not the tokens
				break
			}
			s.accepted.Add(1)
			end, err := emit(pos, t)
			if err != nil || end {
				sl.seq.Pos = pos // t ends it: fed ahead of its turn
				if err != nil {
					s.keepPrefix(req, sl, res.Output)
					return res, err
				}
				done = true
				break
			}
		}
	}
	s.keepPrefix(req, sl, res.Output)
	return res, nil
}

func isStop(t int, stops []int) bool {
	for _, s := range stops {
		if t == s {
			return true
		}
	}
	return false
}

// admit waits for room for w's cache (w.full, less the pages of the
// cached prefix it will share: planLocked) and a place in the batch for
// a request of account w.acct.
func (s *Scheduler) admit(ctx context.Context, w *waiter) error {
	acct := w.acct
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if len(s.queue) == 0 && s.tryAdmitLocked(w) {
		s.mu.Unlock()
		return nil
	}
	if len(s.queue) >= s.cfg.MaxQueue && !s.pushOutLocked(acct) {
		n, q := s.running, len(s.queue)
		s.mu.Unlock()
		return fmt.Errorf("%w: %d sequences running and %d waiting", ErrBusy, n, q)
	}
	w.ready = make(chan struct{})
	s.queue = append(s.queue, w)
	s.accountLocked(acct).waiting++
	s.mu.Unlock()
	select {
	case <-w.ready:
		return w.err
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, q := range s.queue {
		if q == w {
			s.queue = append(s.queue[:i], s.queue[i+1:]...)
			s.accountLocked(acct).waiting--
			s.forgetLocked(acct)
			s.admitLocked() // the next in turn may have changed
			return ctx.Err()
		}
	}
	// Admitted (or failed) meanwhile: give the room back.
	if w.err == nil {
		s.releaseLocked(w)
	}
	return ctx.Err()
}

// pushOutLocked makes room in the full queue for a request of account
// acct, when another account has more requests waiting than acct would
// with it: the latest of the account with the most waiting fails with
// ErrBusy (as it would have had it come after this one). False when no
// account has: one account's flood cannot keep the others out of the
// queue, and a single account's requests are first come, first served.
func (s *Scheduler) pushOutLocked(acct string) bool {
	heavy, most, ok := s.heaviestLocked(acct)
	if !ok {
		return false
	}
	for i := len(s.queue) - 1; i >= 0; i-- {
		if w := s.queue[i]; w.acct == heavy {
			s.queue = slices.Delete(s.queue, i, i+1)
			s.accounts[heavy].waiting--
			w.err = fmt.Errorf("%w: the queue's %d places are full, %d of them this account's; a request of an account with fewer took this one's place", ErrBusy, s.cfg.MaxQueue, most)
			close(w.ready)
			return true
		}
	}
	return false
}

// heaviestLocked returns the account with the most requests waiting, and
// how many, and whether a request of acct may push one of them out: that
// account waits with more than one request more than acct.
func (s *Scheduler) heaviestLocked(acct string) (heavy string, most int, ok bool) {
	for _, w := range s.queue {
		if n := s.accounts[w.acct].waiting; n > most {
			heavy, most = w.acct, n
		}
	}
	own := 0
	if a := s.accounts[acct]; a != nil {
		own = a.waiting
	}
	return heavy, most, most > own+1
}

// canPushOutLocked reports whether pushOutLocked(acct) would make room.
func (s *Scheduler) canPushOutLocked(acct string) bool {
	_, _, ok := s.heaviestLocked(acct)
	return ok
}

// accountLocked returns acct's share, made if it has none.
func (s *Scheduler) accountLocked(acct string) *account {
	a := s.accounts[acct]
	if a == nil {
		a = &account{}
		s.accounts[acct] = a
	}
	return a
}

// forgetLocked drops the share of acct once it has no request admitted
// or waiting (the map holds only accounts with requests).
func (s *Scheduler) forgetLocked(acct string) {
	if a := s.accounts[acct]; a != nil && a.running == 0 && a.waiting == 0 {
		delete(s.accounts, acct)
	}
}

// startLocked counts an admitted request w holding w.kv bytes, and pins
// the cached prefix it will take.
func (s *Scheduler) startLocked(w *waiter) {
	a := s.accountLocked(w.acct)
	a.running++
	s.clock++
	a.admitted = s.clock
	s.running++
	s.kvUsed += w.kv
	s.pendingKV += w.kv
	if w.pref != nil {
		w.pref.pins++
		w.pref.used = s.clock
	}
}

// tryAdmitLocked admits w if it fits: taking the cached prefix planLocked
// chooses, which is then not given up to make room, or, where that does
// not fit, without one (giving up any cached prefix: a request never
// waits for a prefix that holds the room it needs).
func (s *Scheduler) tryAdmitLocked(w *waiter) bool {
	s.planLocked(w)
	if !s.roomLocked(w.kv, w.pref) {
		if w.pref == nil {
			return false
		}
		w.kv, w.pref, w.m = w.full, nil, 0
		if !s.roomLocked(w.kv, nil) {
			return false
		}
	}
	s.startLocked(w)
	return true
}

// unpinLocked unpins the cached prefix an admitted waiter was to take
// (it gave up before it took it: takePrefix).
func (s *Scheduler) unpinLocked(w *waiter) {
	if w.pref != nil {
		w.pref.pins--
		w.pref = nil
	}
}

// stopLocked uncounts an admitted request of acct holding kv bytes.
func (s *Scheduler) stopLocked(acct string, kv int64) {
	if a := s.accounts[acct]; a != nil {
		a.running--
		s.forgetLocked(acct)
	}
	s.running--
	s.kvUsed -= kv
}

// nextLocked is the index in the queue of the request whose turn is next:
// of the accounts waiting, the one with the fewest requests running, then
// the one admitted least recently; its earliest request. With one account
// (or none named) that is the queue's order.
func (s *Scheduler) nextLocked() int {
	best := 0
	for i, w := range s.queue[1:] {
		a, b := s.accounts[w.acct], s.accounts[s.queue[best].acct]
		if a.running < b.running || (a.running == b.running && a.admitted < b.admitted) {
			best = i + 1
		}
	}
	return best
}

// roomLocked reports whether a newcomer holding kv bytes of cache fits in
// the batch and the budget: not while running sequences wait for room
// (resuming, starved), and giving up cached prefixes (least recently used
// first, never keep: the one it takes) to make room.
func (s *Scheduler) roomLocked(kv int64, keep *prefix) bool {
	if s.running >= s.cfg.MaxBatch || s.resuming > 0 || s.starved {
		return false
	}
	return s.fitsLocked(kv+s.headroomLocked(), keep)
}

// headroomLocked is the largest page a running sequence would take next
// (0 when all are at their caps): a newcomer is admitted only beside it,
// so that an admission never leaves the next sequence to grow to preempt
// another. (Room for every running sequence's next page instead halved
// the 16 streams a budget of 16 pages held on the 110m shape, for 20% fewer
// tokens a second: BenchmarkKVBudget.)
func (s *Scheduler) headroomLocked() int64 {
	var n int64
	for _, sl := range s.active {
		if !sl.gone && !sl.kept {
			n = max(n, s.e.CacheBytes(sl.cap, int((sl.kv+sl.shared)/s.perKV)+1)-sl.shared-sl.kv)
		}
	}
	return n
}

// fitsLocked reports whether kv more bytes of cache fit in the budget,
// giving up cached prefixes (least recently used first, never keep) to
// make room.
func (s *Scheduler) fitsLocked(kv int64, keep *prefix) bool {
	for s.kvUsed+s.prefixBytes+kv > s.cfg.KVBudget {
		if !s.evictLocked(keep) {
			return false
		}
	}
	return true
}

// admitLocked admits queued requests, each in its turn (nextLocked), while
// the next fits.
func (s *Scheduler) admitLocked() {
	for len(s.queue) > 0 {
		i := s.nextLocked()
		w := s.queue[i]
		if !s.tryAdmitLocked(w) {
			return
		}
		s.queue = slices.Delete(s.queue, i, i+1)
		s.accountLocked(w.acct).waiting--
		close(w.ready)
	}
}

// release gives back the room of an admitted request that never ran.
func (s *Scheduler) release(w *waiter) {
	s.mu.Lock()
	s.releaseLocked(w)
	s.mu.Unlock()
}

// releaseLocked is release with s.mu held.
func (s *Scheduler) releaseLocked(w *waiter) {
	s.pendingKV -= w.kv
	s.stopLocked(w.acct, w.kv)
	s.unpinLocked(w)
	s.admitLocked()
}

// leave ends a slot: the scheduler drops it (and frees its room) before its
// next step. It returns the prompt positions handed to steps for it: no
// step takes it after.
func (s *Scheduler) leave(sl *slot) int {
	s.mu.Lock()
	sl.gone = true
	n := sl.computed
	s.mu.Unlock()
	s.signal()
	return n
}

// exchange hands the scheduler the tokens to feed and waits for their
// logits (those of positions first.. of feed).
func (s *Scheduler) exchange(ctx context.Context, sl *slot, feed []int, first int, prompt bool) ([][]float32, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	sl.feed, sl.first, sl.prompt = feed, first, prompt
	// The loop needs a wake-up when the first running request is ready
	// (to start its wait for the others) and when the last one is: not
	// for each of those in between (a step of 16 would wake it 16 times
	// while the callers still at work need the CPU).
	ready, busy := 0, 0
	for _, o := range s.active {
		switch {
		case o.gone:
		case o.feed != nil:
			ready++
		default:
			busy++
		}
	}
	s.mu.Unlock()
	if ready == 1 || busy == 0 {
		s.signal()
	}
	select {
	case r := <-sl.out:
		return r.logits, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.quit:
		return nil, ErrClosed
	}
}

// work is a slot's share of one step.
type work struct {
	sl     *slot
	feed   []int
	first  int
	prompt bool // feed is (the rest of) the prompt
}

// loop is the scheduler goroutine: one step per iteration.
func (s *Scheduler) loop() {
	defer close(s.done)
	defer func() {
		// Closed: no step follows. The callers still running get
		// ErrClosed; their sequences go back to the engine.
		s.mu.Lock()
		for _, sl := range s.active {
			if !sl.kept {
				sl.seq.Release()
			}
			s.unshareLocked(sl)
		}
		s.active = nil
		s.dropLocked(func(*prefix) bool { return true })
		s.mu.Unlock()
	}()
	var since time.Time    // when the oldest ready request became ready
	var last time.Duration // the last step's forward pass
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		if h := s.hold; h != nil {
			s.mu.Unlock()
			<-h
			continue
		}
		s.reapLocked()
		empty := len(s.active) == 0
		if empty {
			s.rate = 0
			s.ended = time.Time{}
		}
		var ready []work
		busy := 0
		for _, sl := range s.active {
			if sl.feed != nil {
				ready = append(ready, work{sl, sl.feed, sl.first, sl.prompt})
			} else {
				busy++
			}
		}
		s.mu.Unlock()
		if len(ready) == 0 {
			since = time.Time{}
			if s.polling && empty {
				// The last generation ended: no step follows.
				s.e.Idle()
				s.polling = false
			}
			select {
			case <-s.wake:
			case <-s.quit:
			}
			continue
		}
		if busy > 0 {
			if since.IsZero() {
				since = time.Now()
			}
			// Waiting longer than a step costs more than a late
			// request loses by joining the next one.
			if rem := min(s.cfg.MaxWait, last) - time.Since(since); rem > 0 {
				t := time.NewTimer(rem)
				select {
				case <-s.wake:
				case <-t.C:
				case <-s.quit:
				}
				t.Stop()
				continue
			}
		}
		since = time.Time{}
		dt, ran := s.step(ready)
		if ran {
			last = dt
			continue
		}
		// Every ready sequence waits for room that busy ones hold: one of
		// them hands over its next token (and can be preempted) or ends.
		t := time.NewTimer(s.cfg.MaxWait)
		select {
		case <-s.wake:
		case <-t.C:
		case <-s.quit:
		}
		t.Stop()
	}
}

// reapLocked drops the slots whose callers left, releases their sequences
// (engine.Sequence.Release: the next sequences' caches take their
// memory) and admits queued requests into the room they free. It runs on
// the scheduler goroutine between steps, so no Forward holds a dropped
// sequence: its caller has left Run (which may return while a step with
// its sequence is under way) and it is in no later step.
func (s *Scheduler) reapLocked() {
	kept := s.active[:0]
	for _, sl := range s.active {
		if sl.gone {
			if !sl.kept {
				sl.seq.Release()
			}
			s.unshareLocked(sl)
			if sl.evicted {
				s.resuming--
			}
			s.stopLocked(sl.acct, sl.kv)
			continue
		}
		kept = append(kept, sl)
	}
	clear(s.active[len(kept):])
	s.active = kept
	if len(kept) == 0 {
		s.starved = false // nobody waits for room any more
	}
	s.mergeSolesLocked() // bases whose other sharers admissions gave up
	s.admitLocked()
	s.checkLocked()
}

// step runs one forward pass over the ready slots: every pending token of
// running sequences, and up to ChunkTokens prompt tokens of newcomers (and
// of preempted sequences feeding their tokens again), as far as the
// budget has room for the pages they grow into; ran is false when none
// had room.
//
// Room goes to the sequences in admission order: one that needs a page
// when the budget is full takes the cached prefixes' room first, then
// preempts the latest admitted sequences that wait for a step (never a
// busy one: its caller may be using its sequence), which give up their
// cache and, once there is room again, feed their tokens again untraced
// and without logits before going on (a position's keys and values
// depend only on the tokens up to it: the same bits). An earlier sequence
// so always gets its room, and a lone request always fits (Run refuses
// what could not), so every request ends. While a sequence waits for
// room, the ones after it take none.
func (s *Scheduler) step(ready []work) (time.Duration, bool) {
	budget := s.cfg.ChunkTokens
	var items []*engine.Item
	var in []work
	var at []int // the position each item starts at
	prompt, decode, again := 0, 0, 0
	s.mu.Lock()
	s.starved = false
	var victims []*slot
	freed := false // a sequence's room shrank: admit into it after
	// waiting are the newcomers that wait for an earlier one to compute
	// the positions their prompts start with (joinLocked).
	var waiting []*slot
	for _, w := range ready {
		sl := w.sl
		if sl.gone || slices.Contains(victims, sl) {
			continue // its caller left (reaped before the next step), or preempted just now
		}
		if sl.evicted && sl.seq.Pos == 0 {
			s.reshareLocked(sl)
		}
		if sl.evicted && sl.seq.Pos == len(sl.hist) {
			sl.evicted = false
			s.resuming--
		}
		if sl.want != nil {
			if sl.off > 0 || sl.seq.Pos > 0 || sl.evicted || !w.prompt {
				sl.want = nil
			} else if wait, gave := s.joinLocked(sl, ready, budget); wait {
				waiting = append(waiting, sl)
				continue
			} else {
				freed = freed || gave
			}
		}
		a := sl.off
		toks := w.feed[a:]
		if sl.evicted {
			toks = sl.hist[sl.seq.Pos:]
		}
		n := len(toks)
		if n > 1 {
			n = min(n, budget)
			if n == 0 {
				continue
			}
		}
		if need := s.e.CacheBytes(sl.cap, sl.seq.Pos+n) - sl.shared - sl.kv; need > 0 {
			if s.starved || !s.growLocked(sl, need, &victims) {
				s.starved = true
				continue
			}
		}
		if n > 1 {
			budget -= n
		}
		it := &engine.Item{Seq: sl.seq, Tokens: toks[:n], Logits: engine.LogitsNone}
		if sl.evicted {
			// Fed again: traced and reported the first time.
			again += n
		} else {
			it.Trace = sl.trace
			if b := a + n; w.first < b {
				it.Logits = engine.LogitsAll
				it.LogitsFrom = max(w.first-a, 0)
			}
			if w.prompt {
				prompt += n
				sl.computed += n
			} else {
				decode++
			}
		}
		items = append(items, it)
		in = append(in, w)
		at = append(at, sl.seq.Pos)
	}
	if freed {
		s.admitLocked()
	}
	s.mu.Unlock()
	if len(items) == 0 {
		return 0, false
	}
	start := time.Now()
	err := s.e.Forward(items...)
	end := time.Now()
	dt := end.Sub(start)
	// The next step waits for the callers' per-token work (hashing,
	// sampling, streaming): with several callers the engine's threads
	// must not poll meanwhile (the callers need the CPUs); one caller's
	// is short and leaves a CPU free, and they poll through it (16 streams:
	// 3% more tokens/s parked than polling; one stream: 4% more polling).
	if len(items) > 1 {
		s.e.Idle()
		s.polling = false
	} else {
		s.e.Soon(min(s.cfg.MaxWait, pollOne))
		s.polling = true
	}
	s.steps.Add(1)
	s.promptTokens.Add(uint64(prompt))
	s.recomputed.Add(uint64(again))
	s.mu.Lock()
	s.batch = len(items)
	s.peak = max(s.peak, s.batch)
	s.forward.observe(dt)
	if !s.ended.IsZero() {
		s.gap.observe(start.Sub(s.ended))
	}
	s.ended = end
	if dt > 0 && decode > 0 {
		r := float64(decode) / dt.Seconds()
		if s.rate == 0 || math.IsNaN(s.rate) {
			s.rate = r
		} else {
			s.rate = float64(0.8*s.rate) + float64(0.2*r) // rounded products: no fused multiply-add (detcheck)
		}
	}
	var deliver []*slot
	var results []stepResult
	for i, w := range in {
		sl := w.sl
		if err != nil {
			sl.feed, sl.off, sl.got = nil, 0, nil
			deliver = append(deliver, sl)
			results = append(results, stepResult{err: fmt.Errorf("generate: %w", err)})
			continue
		}
		if sl.seq.Bytes()-sl.shared > sl.kv {
			s.overdrawn.Add(1)
		}
		if sl.evicted {
			continue // fed again: the feed waits for the next step
		}
		sl.hist = append(sl.hist[:at[i]], items[i].Tokens...)
		sl.got = append(sl.got, items[i].Out...)
		sl.off += len(items[i].Tokens)
		if sl.off == len(w.feed) {
			deliver = append(deliver, sl)
			results = append(results, stepResult{logits: sl.got})
			sl.feed, sl.off, sl.got = nil, 0, nil
		}
	}
	// The newcomers that waited take what was computed for them now,
	// while the sequences of this step wait for their results: the one
	// that computed it may be busy with its next token at the next step.
	freed = false
	for _, sl := range waiting {
		if want := sl.want; err == nil && want != nil && !sl.gone && !sl.evicted {
			_, gave := s.joinLocked(sl, ready, 0)
			freed = freed || gave
			if sl.off == 0 {
				sl.want = want // nothing taken: the next step looks again
			}
		}
	}
	if freed {
		s.admitLocked()
	}
	s.checkLocked()
	s.mu.Unlock()
	for i, sl := range deliver {
		select {
		case sl.out <- results[i]:
		default: // cannot happen: one exchange at a time
		}
	}
	return dt, true
}

// growLocked makes room for need more bytes of sl's cache, giving up
// cached prefixes and then preempting the latest admitted sequences after
// sl that wait for a step (adding them to victims), and takes it; false,
// with nothing preempted, when even that would not make room (or, rarely,
// after preempting, when a prefix being taken holds the rest). Last, when
// sl alone pins the cached prefix whose pages it shares, its pages are
// counted as sl's own, and the prefix (holding more than sl shares) may
// go: so the earliest admitted sequence always finds its room.
func (s *Scheduler) growLocked(sl *slot, need int64, victims *[]*slot) bool {
	if s.fitsLocked(need, nil) {
		s.kvUsed += need
		sl.kv += need
		return true
	}
	free := s.cfg.KVBudget - s.kvUsed - need
	var cands []*slot
	for i := len(s.active) - 1; i >= 0 && s.active[i] != sl; i-- {
		if v := s.active[i]; !v.gone && (v.kv > 0 || v.shared > 0) && v.feed != nil {
			cands = append(cands, v)
			free += v.kv
		}
	}
	if free-s.keptLocked(sl, cands) < 0 {
		return false
	}
	for !s.fitsLocked(need, nil) {
		if len(cands) == 0 {
			if p := sl.pref; p != nil && p.pins == 1 {
				sl.kv += sl.shared
				s.kvUsed += sl.shared
				s.unshareLocked(sl)
				continue
			}
			return false
		}
		s.preemptLocked(cands[0])
		*victims = append(*victims, cands[0])
		cands = cands[1:]
	}
	s.kvUsed += need
	sl.kv += need
	return true
}

// keptLocked is the room cached prefixes would still hold if the
// sequences cands were preempted and sl, when it then alone pinned the
// one it shares, counted its pages as its own (growLocked): the bytes of
// the prefixes something else pins (a sequence before sl, a request
// taking it, a kept prefix that shares its pages and is itself kept),
// plus sl's shared bytes when its prefix stays.
func (s *Scheduler) keptLocked(sl *slot, cands []*slot) int64 {
	left := make(map[*prefix]int, len(s.prefixes))
	for _, p := range s.prefixes {
		left[p] = p.pins
	}
	for _, v := range cands {
		if v.pref != nil {
			left[v.pref]--
		}
	}
	if sl.pref != nil {
		left[sl.pref]--
	}
	// The prefixes nothing would pin go, and unpin their bases.
	for again := true; again; {
		again = false
		for _, p := range s.prefixes {
			if n, ok := left[p]; ok && n == 0 {
				delete(left, p)
				if p.base != nil {
					left[p.base]--
					again = true
				}
			}
		}
	}
	var kept int64
	for _, p := range s.prefixes {
		if _, ok := left[p]; ok {
			kept += p.bytes
		}
	}
	if _, stays := left[sl.pref]; sl.pref != nil && !stays {
		kept += sl.shared // counted as sl's own once its prefix goes
	}
	return kept
}

// preemptLocked makes v, a sequence waiting for a step (its caller is
// blocked in exchange), give up its cache: it is fed its tokens again
// once there is room (step).
func (s *Scheduler) preemptLocked(v *slot) {
	if !v.evicted {
		v.hist = v.hist[:v.seq.Pos]
		v.evicted = true
		s.resuming++
	}
	v.seq.Release()
	s.unshareLocked(v)
	v.seq, _ = s.e.NewSequence(v.cap) // v.cap fitted before
	s.kvUsed -= v.kv
	v.kv = 0
	s.preempted.Add(1)
}
