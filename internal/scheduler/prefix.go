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
	// shareBase is the bytes of seq's pages that are base's (shared
	// with it): seq holds shareBase+bytes.
	shareBase int64
	pins      int    // requests admitted to take it, sequences and cached prefixes sharing its pages
	used      uint64 // Scheduler.clock when last kept or taken
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

// joinLocked gives sl, about to be fed its prompt from the first position
// (sl.want: it took no cached prefix at admission), the most positions of
// either a cached prefix of its scope (kept or published since it was
// admitted) or the positions its prompt shares with a generation admitted
// before it and running (a leader: a request with the same system prompt,
// say). wait is true while the leader still has them to compute (its
// prompt is fed in this step or a later one) and the step's prompt budget
// left for sl (budget) is less than they are: sl is fed nothing meanwhile
// rather than computing the same positions over this step and later ones
// (the budget goes in admission order: the leader's prompt takes it
// first). Where sl could feed them all in this step, it does not wait a
// step for them (a chat template's few first tokens, say); it takes what
// the leader has computed so far, if that is more than a cached prefix
// gives. Then sl takes them from the leader's sequence
// (joinRunningLocked). gave is true when sl took positions in shared
// pages (its room shrank by them).
func (s *Scheduler) joinLocked(sl *slot, ready []work, budget int) (wait, gave bool) {
	want := sl.want
	tokens := want.req.Prompt[:want.limit]
	best, m := s.longestLocked(sl.acct, tokens, want.traced, 1)
	var lead *slot
	target := 0
	// Only a leader admitted before sl (ahead of it in ready, where
	// every slot's caller waits, before the step and after it until its
	// result is delivered: its sequence is still): none waits on one that
	// waits on it.
	for _, w := range ready {
		o := w.sl
		if o == sl {
			break
		}
		if o.gone || o.evicted || o.acct != sl.acct || !publishable(o.trace, want.traced) {
			continue
		}
		n := o.seq.Pos
		c := commonPrefix(o.hist[:n], tokens)
		if c == n && o.feed != nil && o.prompt {
			c += commonPrefix(o.feed[o.off:], tokens[c:])
		}
		// Positions in pages o shares are in the cache already.
		if c > target && int64(c)*s.perKV > o.shared {
			lead, target = o, c
		}
	}
	sl.want = nil
	if lead != nil && lead.seq.Pos < target && budget < target {
		sl.want = want
		return true, false
	}
	if lead != nil {
		target = min(target, lead.seq.Pos)
	}
	if lead != nil && target > m && target >= minPrefix && int64(target)*s.perKV > lead.shared {
		if ok, gave := s.joinRunningLocked(sl, lead, target, tokens); ok {
			return false, gave
		}
	}
	if best == nil || m < minPrefix {
		return false, false
	}
	return false, s.joinPrefixLocked(sl, best, m, tokens)
}

// joinRunningLocked gives sl (nothing fed) the first m positions of
// lead's sequence, with their trace: the whole pages below m shared — those
// lead does not share yet published as a cached prefix first
// (publishLocked), so that they count once, in the cache, pinned while
// shared — and the rest copied into sl's own room. Where the pages cannot
// be published (the prefix cache too small), all m are copied. ok is
// false when sl took nothing.
func (s *Scheduler) joinRunningLocked(sl *slot, lead *slot, m int, tokens []int) (ok, gave bool) {
	tr, err := s.lentTraceLocked(lead, m)
	if err != nil {
		return false, false
	}
	page := s.e.PagePositions()
	full := m / page * page
	p := lead.pref
	if full > 0 && int64(full)*s.perKV > lead.shared {
		p = s.publishLocked(lead, full, tr)
	}
	var shared int64
	if full > 0 && p != nil {
		shared, err = sl.seq.SharePrefix(lead.seq, m)
	} else {
		err = sl.seq.CopyPrefix(lead.seq, m)
	}
	if err != nil || !s.resumeLocked(sl, tr, m) {
		return false, false
	}
	return true, s.tookLocked(sl, p, shared, m, tokens)
}

// lentTraceLocked returns the trace of lead's first m positions (nil when
// lead is untraced), taken from its tracer once for every request that
// joins it: a position's leaves never change once it is fed, and a trace
// of n positions gives any fewer (PrefixTracer.ResumePrefix).
func (s *Scheduler) lentTraceLocked(lead *slot, m int) (any, error) {
	pt, ok := lead.trace.(PrefixTracer)
	if !ok {
		return nil, nil
	}
	if lead.lent == nil || lead.lentN < m {
		tr, err := pt.TracePrefix(m)
		if err != nil {
			return nil, err
		}
		lead.lent, lead.lentN = tr, m
	}
	return lead.lent, nil
}

// publishable reports whether a running generation traced by tr can
// publish its pages for a request traced (or not).
func publishable(tr engine.Tracer, traced bool) bool {
	if tr == nil {
		return !traced
	}
	_, ok := tr.(PrefixTracer)
	return ok
}

// publishLocked makes lead's first m positions (whole pages) a cached
// prefix that shares its pages, with trace tr (lead's, of m positions or
// more), as if lead had taken it at admission: the pages' bytes move from
// lead's room to the prefix cache (less those it shares already: counted
// in its cached prefix, the new one's base), and lead pins it. Nil when it
// does not fit the prefix cache.
func (s *Scheduler) publishLocked(lead *slot, m int, tr any) *prefix {
	seq, err := s.e.NewSequence(m)
	if err != nil {
		return nil
	}
	shared, err := seq.SharePrefix(lead.seq, m)
	if err != nil || shared <= lead.shared || shared-lead.shared > lead.kv {
		seq.Release()
		return nil
	}
	p := &prefix{scope: lead.acct, tokens: slices.Clone(lead.hist[:m]), seq: seq, trace: tr, bytes: shared - lead.shared, base: lead.pref, shareBase: lead.shared, pins: 1}
	for s.prefixBytes+p.bytes > s.prefixCap && s.evictLocked(nil) {
	}
	if s.prefixBytes+p.bytes > s.prefixCap {
		seq.Release()
		return nil
	}
	s.clock++
	p.used = s.clock
	s.prefixes = append(s.prefixes, p)
	s.prefixBytes += p.bytes
	s.kvUsed -= p.bytes
	lead.kv -= p.bytes
	// lead's pin of its former prefix is p's now (its base).
	lead.pref, lead.shared = p, shared
	return p
}

// joinPrefixLocked gives sl (nothing fed) the first m positions of
// cached prefix p, as takePrefix does at admission: it shares p's whole
// pages below m and takes their trace, and its first step feeds its prompt
// from position m. It reports whether its room shrank.
func (s *Scheduler) joinPrefixLocked(sl *slot, p *prefix, m int, tokens []int) bool {
	shared, err := sl.seq.SharePrefix(p.seq, m)
	if err != nil || !s.resumeLocked(sl, p.trace, m) {
		return false
	}
	return s.tookLocked(sl, p, shared, m, tokens)
}

// resumeLocked gives sl's tracer, if it takes prefixes, trace tr of the m
// positions its sequence now holds; false (the sequence set back to
// position 0, fed from the first after all, into copies of any shared
// pages: its room holds its whole prompt) where it cannot.
func (s *Scheduler) resumeLocked(sl *slot, tr any, m int) bool {
	if pt, ok := sl.trace.(PrefixTracer); ok && pt.ResumePrefix(tr, m) != nil {
		sl.seq.Pos = 0
		return false
	}
	return true
}

// tookLocked counts the m positions sl took at its first step, shared of
// them in whole pages of cached prefix p (pinned while sl shares them, out
// of sl's room), and reports whether sl's room shrank.
func (s *Scheduler) tookLocked(sl *slot, p *prefix, shared int64, m int, tokens []int) bool {
	give := min(shared, sl.kv)
	if shared > 0 {
		p.pins++
		sl.pref, sl.shared = p, shared
		sl.kv -= give
		s.kvUsed -= give
	}
	s.clock++
	if p != nil {
		p.used = s.clock
	}
	sl.off, sl.cached = m, m
	sl.hist = append(sl.hist[:0], tokens[:m]...)
	s.prefixHits.Add(1)
	s.prefixTokens.Add(uint64(m))
	s.sharedTokens.Add(uint64(shared / s.perKV))
	s.joinedTokens.Add(uint64(m))
	return give > 0
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
	if p := sl.pref; p != nil {
		p.pins--
		sl.pref, sl.shared = nil, 0
		if p.pins == 1 {
			// Pinned now by one cached prefix, maybe: it may cover p.
			for _, q := range s.prefixes {
				if q.base == p {
					s.mergeLocked(q)
					break
				}
			}
		}
	}
}

// mergeLocked merges into cached prefix p its base b when p alone pins
// it and holds its tokens (and a trace where it has one): b, of no use
// for a lookup p does not answer, goes, and p counts as its own the pages
// it shares with b but those b shares with its own base. The pages of b
// that p does not share (b's last, partial page, which p holds a copy of)
// are freed. A prefix a generation published for others (publishLocked)
// so becomes part of the generation's cache once nothing else shares it,
// and a conversation's turns kept one after another hold one cache.
// It reports whether it merged.
func (s *Scheduler) mergeLocked(p *prefix) bool {
	b := p.base
	if b == nil || b.pins != 1 || p.shareBase < b.shareBase || len(b.tokens) > len(p.tokens) || !slices.Equal(p.tokens[:len(b.tokens)], b.tokens) || (p.trace == nil && b.trace != nil) {
		return false
	}
	s.prefixes = slices.DeleteFunc(s.prefixes, func(q *prefix) bool { return q == b })
	before := p.bytes + b.bytes
	p.bytes = p.seq.Bytes() - b.shareBase
	s.prefixBytes += p.bytes - before
	p.base, p.shareBase = b.base, b.shareBase // b's pin of its base is p's
	b.seq.Release()
	return true
}

// mergeSolesLocked merges into each cached prefix its base where it alone
// pins it (mergeLocked), until none is left to merge: for the bases whose
// other sharers have gone since, such as a conversation turn's cache and
// a sibling branch of it (another continuation of the same turn) that was
// given up to make room (dropLocked). Not called from dropLocked itself: a
// caller making room for a cached prefix it is about to take (fitsLocked)
// must find that prefix still cached, not merged into another.
func (s *Scheduler) mergeSolesLocked() {
	for merged := true; merged; {
		merged = false
		for _, q := range s.prefixes {
			if q.base != nil && q.base.pins == 1 && s.mergeLocked(q) {
				merged = true
				break
			}
		}
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
	p := &prefix{scope: req.Account, tokens: slices.Concat(req.Prompt, output)[:n:n], seq: sl.seq, bytes: own}
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
	// The sequence is the cache's now: its room in the budget too, and
	// the pin of the prefix whose pages it shares, which p takes the place
	// of if nothing else pins it (mergeLocked: a prefix it published for
	// others, or took whole).
	sl.kept = true
	s.kvUsed -= sl.kv
	sl.kv = 0
	p.base = sl.pref
	p.shareBase = sl.shared
	sl.pref, sl.shared = nil, 0
	s.clock++
	p.used = s.clock
	s.prefixes = append(s.prefixes, p)
	s.prefixBytes += p.bytes
	s.mergeSolesLocked() // p's base, and any a prefix given up above left to one
	s.checkLocked()
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
