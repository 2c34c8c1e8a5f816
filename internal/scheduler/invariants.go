//go:build invariants

package scheduler

import (
	"fmt"
	"slices"
)

// checkLocked panics where the scheduler's accounting breaks a rule it
// relies on (built with -tags invariants: the race-detector run of the
// tests in .ci/run; a no-op otherwise): every prefix a sequence shares or
// a cached prefix is based on is in the cache, pinned at least once for
// each of them; the cache's bytes are the sum of its entries', within
// its bound; the room counted as held is what the running sequences and
// the requests admitted hold, and with the cache's fits the budget.
func (s *Scheduler) checkLocked() {
	defer func() {
		if msg := recover(); msg != nil {
			// Unlocked, so that the scheduler goroutine's deferred
			// cleanup does not wait for s.mu for ever: the panic
			// ends the process.
			s.mu.Unlock()
			panic(msg)
		}
	}()
	refs := map[*prefix]int{}
	held := s.pendingKV
	for _, sl := range s.active {
		held += sl.kv
		if sl.pref != nil {
			if !slices.Contains(s.prefixes, sl.pref) {
				panic("scheduler invariant: a sequence shares the pages of a prefix not in the cache")
			}
			refs[sl.pref]++
		}
		if sl.kv < 0 || sl.shared < 0 || (sl.pref == nil) != (sl.shared == 0) {
			panic(fmt.Sprintf("scheduler invariant: a sequence holds %d bytes of room, shares %d (prefix %v)", sl.kv, sl.shared, sl.pref != nil))
		}
	}
	var bytes int64
	for _, p := range s.prefixes {
		bytes += p.bytes
		if p.base != nil {
			if !slices.Contains(s.prefixes, p.base) {
				panic("scheduler invariant: a cached prefix is based on one not in the cache")
			}
			refs[p.base]++
		}
		if p.bytes < 0 || p.shareBase < 0 || p.bytes+p.shareBase != p.seq.Bytes() || (p.base == nil && p.shareBase != 0) {
			panic(fmt.Sprintf("scheduler invariant: a cached prefix counts %d bytes as its own and %d as its base's of the %d its sequence holds", p.bytes, p.shareBase, p.seq.Bytes()))
		}
	}
	for p, n := range refs {
		if p.pins < n {
			panic(fmt.Sprintf("scheduler invariant: a cached prefix pinned %d times, shared by %d", p.pins, n))
		}
	}
	if bytes != s.prefixBytes || bytes > s.prefixCap {
		panic(fmt.Sprintf("scheduler invariant: the prefix cache counts %d bytes, its entries hold %d, its bound is %d", s.prefixBytes, bytes, s.prefixCap))
	}
	if held != s.kvUsed {
		panic(fmt.Sprintf("scheduler invariant: %d bytes counted as held, the sequences and the requests admitted hold %d", s.kvUsed, held))
	}
	if s.kvUsed < 0 || s.kvUsed+s.prefixBytes > s.cfg.KVBudget {
		panic(fmt.Sprintf("scheduler invariant: %d bytes held by sequences and %d by the prefix cache, the budget is %d", s.kvUsed, s.prefixBytes, s.cfg.KVBudget))
	}
}
