package scheduler

import (
	"slices"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/generate"
)

// PrefixTracer is a request's Tracer that can hand over what it traced of
// its sequence's first positions (TracePrefix, at the end of a generation)
// and take such a trace for a new sequence (ResumePrefix, before it is fed
// anything): the prefix cache gives a prompt that starts with a finished
// generation's tokens that generation's keys and values of those
// positions, and its tracer their trace. The value TracePrefix returns is
// opaque to the scheduler; ResumePrefix gets it back. A request whose
// Trace is neither nil nor a PrefixTracer neither gives nor takes a
// cached prefix.
type PrefixTracer interface {
	TracePrefix(m int) (any, error)
	ResumePrefix(p any, m int) error
}

// minPrefix is the fewest positions a cached prefix must give a prompt to
// be taken (a beginning-of-sequence token alone is no reuse).
const minPrefix = 4

// prefix is a finished generation's key/value cache kept for later
// prompts that start with its tokens (Config.PrefixCache).
type prefix struct {
	scope  string // generate.Request.Account: only its requests take it
	tokens []int  // the tokens fed: seq holds positions [0, len(tokens))
	seq    *engine.Sequence
	trace  any // the generation's PrefixTracer.TracePrefix; nil: untraced
	// bytes is the cache seq holds but the pages it shares with base,
	// the cached prefix its generation took (pinned while this one is
	// kept: those pages are counted there).
	bytes int64
	base  *prefix
	pins  int    // requests admitted to take it, sequences and cached prefixes sharing its pages
	used  uint64 // Scheduler.clock when last kept or taken
}

// prefixWant is what a request may take from the prefix cache: a cached
// prefix of its scope (req.Account) giving at least minPrefix of its
// prompt's first limit tokens, with a trace when traced.
type prefixWant struct {
	req    generate.Request
	limit  int
	traced bool
}

// wantPrefix is what req may take from the prefix cache (nil: nothing,
// the cache off, too short a prompt, or a tracer that is no
// PrefixTracer), limit the positions before the first whose logits it
// wants.
func (s *Scheduler) wantPrefix(req generate.Request, limit int) *prefixWant {
	_, traced := req.Trace.(PrefixTracer)
	if s.prefixCap <= 0 || limit < minPrefix || (req.Trace != nil && !traced) {
		return nil
	}
	return &prefixWant{req: req, limit: limit, traced: traced}
}

// planLocked chooses the cached prefix w would take if admitted now, the
// one giving the most positions, and the room it would then ask for: its
// full need but the whole pages it would share (counted in the cache).
func (s *Scheduler) planLocked(w *waiter) {
	w.kv, w.pref, w.m = w.full, nil, 0
	if w.want == nil {
		return
	}
	w.pref, w.m = s.longestLocked(w.want.req.Account, w.want.req.Prompt[:w.want.limit], w.want.traced, 1)
	if w.m < minPrefix {
		w.pref, w.m = nil, 0
		return
	}
	page := s.e.PagePositions()
	w.kv = w.full - min(int64(w.m/page*page)*s.perKV, w.full)
}

// takePrefix gives sl's sequence (nothing fed yet) the cached prefix its
// admission chose and pinned (w.pref, w.m positions), with its trace
// when req has a tracer, and returns the positions it took (0: none). The
// sequence shares the prefix's whole pages (engine.Sequence.SharePrefix),
// which count in the prefix cache's bytes, not in sl's room: the prefix
// stays pinned while the sequence shares them (sl.pref).
func (s *Scheduler) takePrefix(req generate.Request, sl *slot, w *waiter) int {
	if w.pref == nil {
		return 0
	}
	best, m := w.pref, w.m
	shared, err := sl.seq.SharePrefix(best.seq, m)
	if err == nil && w.want.traced {
		if err = req.Trace.(PrefixTracer).ResumePrefix(best.trace, m); err != nil {
			// The positions taken are fed again (into copies of the
			// shared pages: a step finds the room they need).
			sl.seq.Pos = 0
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w.pref = nil // sl's pin now, or none
	if err != nil || shared == 0 {
		best.pins--
		if err != nil {
			return 0
		}
	} else {
		sl.pref, sl.shared = best, shared
		s.sharedTokens.Add(uint64(shared / s.perKV))
		// Admitted without the room of full-w.kv bytes: any more
		// shared gives its room back (a step finds what any less
		// lacks).
		if give := min(shared-(w.full-w.kv), sl.kv); give > 0 {
			sl.kv -= give
			s.kvUsed -= give
			s.admitLocked()
		}
	}
	s.prefixHits.Add(1)
	s.prefixTokens.Add(uint64(m))
	return m
}

// reshareLocked gives sl, preempted and about to feed its tokens again
// from the first, the whole pages of the cached prefix of its account
// that holds the most of them (at least one page), shared as takePrefix
// shares them: those positions are not computed again. Fed again, they
// are neither traced nor reported, so any cached prefix will do, traced
// or not.
func (s *Scheduler) reshareLocked(sl *slot) {
	best, m := s.longestLocked(sl.acct, sl.hist, false, s.e.PagePositions())
	if best == nil {
		return
	}
	shared, err := sl.seq.SharePrefix(best.seq, m)
	if err != nil || shared == 0 {
		return
	}
	best.pins++
	s.clock++
	best.used = s.clock
	sl.pref, sl.shared = best, shared
	s.reshared.Add(uint64(m))
}

// longestLocked is the cached prefix of scope (with a trace when traced)
// whose tokens start tokens the longest, counted in whole units of unit
// positions, and that length (nil, 0: none of a unit).
func (s *Scheduler) longestLocked(scope string, tokens []int, traced bool, unit int) (*prefix, int) {
	var best *prefix
	m := 0
	for _, p := range s.prefixes {
		if p.scope != scope || (traced && p.trace == nil) {
			continue
		}
		if n := commonPrefix(p.tokens, tokens) / unit * unit; n > m {
			best, m = p, n
		}
	}
	return best, m
}

// unshareLocked unpins the cached prefix whose pages sl's sequence
// shared, once the sequence has been released (or handed to the prefix
// cache with its pin: keepPrefix).
func (s *Scheduler) unshareLocked(sl *slot) {
	if sl.pref != nil {
		sl.pref.pins--
		sl.pref, sl.shared = nil, 0
	}
}

// sharedLocked is the bytes of cached prefixes' pages that running
// sequences share.
func (s *Scheduler) sharedLocked() int64 {
	var n int64
	for _, sl := range s.active {
		n += sl.shared
	}
	return n
}

// keepPrefix keeps the cache of sl, whose generation of req ended with
// output after its last step (no step under way holds its sequence: not
// after a cancelled exchange), for later prompts: its sequence goes to the
// prefix cache instead of back to the engine, and the room it held in the
// budget goes with it (Config.PrefixCache bounds what is kept, the least
// recently used given up first). A cache whose tokens start another's (or
// are another's) is not kept twice: the longer one stays.
func (s *Scheduler) keepPrefix(req generate.Request, sl *slot, output []int) {
	n := sl.seq.Pos
	pt, traced := req.Trace.(PrefixTracer)
	if s.prefixCap <= 0 || n < minPrefix || (req.Trace != nil && !traced) || n > len(req.Prompt)+len(output) {
		return
	}
	// Its own pages only: those it shares are its base's (s.mu: sl.shared).
	s.mu.Lock()
	own := sl.seq.Bytes() - sl.shared
	s.mu.Unlock()
	p := &prefix{scope: req.Account, tokens: append(slices.Clip(req.Prompt), output...)[:n:n], seq: sl.seq, bytes: own}
	// covered refreshes and reports a kept cache that holds p's tokens.
	covered := func() bool {
		for _, q := range s.prefixes {
			if q.scope == p.scope && len(q.tokens) >= n && slices.Equal(q.tokens[:n], p.tokens) && (q.trace != nil || !traced) {
				s.clock++
				q.used = s.clock
				return true
			}
		}
		return false
	}
	// Not kept: no trace copied (checked again below, after the copy).
	s.mu.Lock()
	skip := s.closed || p.bytes > s.prefixCap || covered()
	s.mu.Unlock()
	if skip {
		return
	}
	if traced {
		tr, err := pt.TracePrefix(n)
		if err != nil {
			return
		}
		p.trace = tr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || covered() {
		return
	}
	s.dropLocked(func(q *prefix) bool {
		return q.scope == p.scope && len(q.tokens) < n && slices.Equal(p.tokens[:len(q.tokens)], q.tokens) && (p.trace != nil || q.trace == nil)
	})
	for s.prefixBytes+p.bytes > s.prefixCap && s.evictLocked(nil) {
	}
	if s.prefixBytes+p.bytes > s.prefixCap {
		return
	}
	s.clock++
	p.used = s.clock
	s.prefixes = append(s.prefixes, p)
	s.prefixBytes += p.bytes
	// The sequence is the cache's now: its room in the budget too, and
	// the pin of the prefix whose pages it shares.
	sl.kept = true
	s.kvUsed -= sl.kv
	sl.kv = 0
	p.base, sl.pref, sl.shared = sl.pref, nil, 0
}

// evictLocked gives up the least recently used cached prefix nothing
// pins (dropLocked) but keep; false when there is none.
func (s *Scheduler) evictLocked(keep *prefix) bool {
	var lru *prefix
	for _, p := range s.prefixes {
		if p.pins == 0 && p != keep && (lru == nil || p.used < lru.used) {
			lru = p
		}
	}
	if lru == nil {
		return false
	}
	s.dropLocked(func(p *prefix) bool { return p == lru })
	return true
}

// dropLocked gives up the cached prefixes that nothing pins (no Run
// copying from it, no sequence or cached prefix sharing its pages) for
// which drop is true: their sequences go back to the engine, and the
// prefixes whose pages they shared are unpinned (and dropped too, if
// drop is true for them).
func (s *Scheduler) dropLocked(drop func(*prefix) bool) {
	for again := true; again; {
		again = false
		kept := s.prefixes[:0]
		for _, p := range s.prefixes {
			if p.pins == 0 && drop(p) {
				p.seq.Release()
				s.prefixBytes -= p.bytes
				if p.base != nil {
					p.base.pins--
					again = again || p.base.pins == 0
				}
				continue
			}
			kept = append(kept, p)
		}
		clear(s.prefixes[len(kept):])
		s.prefixes = kept
	}
}

// commonPrefix is the length of the longest common prefix of a and b.
func commonPrefix(a, b []int) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
