package multigw

import (
	"sync"
	"time"

	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/ledger"
)

// DefaultDownFor is how long a worker that failed is skipped.
const DefaultDownFor = 15 * time.Second

// Router picks the worker of each request by smooth weighted round-robin
// over the workers' scores (see the package documentation) and keeps the
// workers that failed marked down for a while.
type Router struct {
	// DownFor is how long a failed worker is skipped (default
	// DefaultDownFor).
	DownFor time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu      sync.Mutex
	current map[string]map[ledger.Address]float64 // model id -> counters
	down    map[ledger.Address]time.Time          // until
	busy    map[ledger.Address]time.Time          // until (MarkBusy)
}

func (r *Router) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Order returns the workers to try for one request, in order: the one the
// round-robin chooses among the ranked workers that are not down, then the
// others not down, best ranked first, then those down, best ranked first
// (a request is tried on a worker marked down rather than refused). A
// worker marked busy is left out until then: it asked not to be asked
// before (MarkBusy). ranked must be as gateway.Rank orders it, all
// serving model.
func (r *Router) Order(model ledger.Hash, ranked []Worker) []Worker {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	var up, down []Worker
	for _, w := range ranked {
		if until, ok := r.busy[w.Address]; ok {
			if now.Before(until) {
				continue
			}
			delete(r.busy, w.Address)
		}
		if until, ok := r.down[w.Address]; ok && now.Before(until) {
			down = append(down, w)
			continue
		}
		delete(r.down, w.Address)
		up = append(up, w)
	}
	if r.current == nil {
		r.current = map[string]map[ledger.Address]float64{}
	}
	cur := r.current[model.String()]
	if cur == nil {
		cur = map[ledger.Address]float64{}
		r.current[model.String()] = cur
	}
	// A worker out of the round loses its counter.
	in := map[ledger.Address]bool{}
	for _, w := range up {
		in[w.Address] = true
	}
	for a := range cur {
		if !in[a] {
			delete(cur, a)
		}
	}
	if len(up) == 0 {
		return down
	}
	total, best := 0.0, -1
	for i, w := range up {
		s := w.Score()
		total += s
		cur[w.Address] += s
		if best < 0 || cur[w.Address] > cur[up[best].Address] {
			best = i
		}
	}
	cur[up[best].Address] -= total
	out := make([]Worker, 0, len(ranked))
	out = append(out, up[best])
	out = append(out, up[:best]...)
	out = append(out, up[best+1:]...)
	return append(out, down...)
}

// MarkDown skips worker a for DownFor.
func (r *Router) MarkDown(a ledger.Address) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down == nil {
		r.down = map[ledger.Address]time.Time{}
	}
	d := r.DownFor
	if d <= 0 {
		d = DefaultDownFor
	}
	r.down[a] = r.now().Add(d)
}

// MarkBusy leaves worker a out of every request for d, as its 429's
// Retry-After asked: at least a second, at most DownFor.
func (r *Router) MarkBusy(a ledger.Address, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.busy == nil {
		r.busy = map[ledger.Address]time.Time{}
	}
	most := r.DownFor
	if most <= 0 {
		most = DefaultDownFor
	}
	r.busy[a] = r.now().Add(min(max(d, time.Second), most))
}

// BusyFor returns how long until the first of ranked is no longer busy;
// 0 when one of them is not busy now.
func (r *Router) BusyFor(ranked []Worker) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	var first time.Duration
	for i, w := range ranked {
		until, ok := r.busy[w.Address]
		if !ok || !now.Before(until) {
			return 0
		}
		if d := until.Sub(now); i == 0 || d < first {
			first = d
		}
	}
	return first
}

// IsDown reports whether a is marked down now.
func (r *Router) IsDown(a ledger.Address) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	until, ok := r.down[a]
	return ok && r.now().Before(until)
}

// rank orders the eligible workers of one model as gateway.Rank does.
func rank(ws []Worker, minStake uint64) []Worker {
	var cs []gateway.Candidate
	by := map[ledger.Address]Worker{}
	for _, w := range ws {
		if _, dup := by[w.Address]; dup {
			continue // one account, several agents: the first
		}
		cs = append(cs, w.Candidate())
		by[w.Address] = w
	}
	var out []Worker
	for _, c := range gateway.Rank(cs, minStake) {
		out = append(out, by[c.Address])
	}
	return out
}
