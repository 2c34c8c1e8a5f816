package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/verdictnet/verdict/internal/inference"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
)

// ErrNoWorker is returned (wrapped) when no eligible worker serves the
// requested model; the request gets 503.
var ErrNoWorker = errors.New("no worker available")

// WorkerBackend is a worker the gateway can route to: what the API and
// the MCP tools call.
type WorkerBackend interface {
	Backend
	inference.Verifier
}

// Candidate is a worker with what the ledger says about it.
type Candidate struct {
	Backend WorkerBackend
	Address ledger.Address
	// Price is the worker's price per token.
	Price uint64
	// From the ledger: bonded stake, receipts paid out, times slashed,
	// and whether it is jailed.
	Stake, Final, Slashed uint64
	Jailed                bool
}

// Score ranks an eligible candidate: its stake, scaled by its record
// (final receipts count for it, each slash counts as ten failures), divided
// by its price. More stake and a cleaner record win; a cheaper worker wins
// between equals.
func (c Candidate) Score() float64 {
	rep := float64(c.Final+1) / float64(c.Final+10*c.Slashed+1)
	return float64(c.Stake) * rep / float64(max(c.Price, 1))
}

// Rank returns the eligible candidates (not jailed, stake at least
// minStake) best first; ties go to the lower address, so the order is
// the same everywhere.
func Rank(cs []Candidate, minStake uint64) []Candidate {
	var out []Candidate
	for _, c := range cs {
		if !c.Jailed && c.Stake >= minStake {
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b Candidate) int {
		if r := cmp.Compare(b.Score(), a.Score()); r != 0 {
			return r
		}
		return slices.Compare(a.Address[:], b.Address[:])
	})
	return out
}

// Pool routes requests to the best worker serving the model, by stake,
// reputation and price as the ledger reports them (refreshed every
// Refresh). It implements Backend and the MCP server's backend.
type Pool struct {
	// Client reads the workers' stake records; nil: the candidates are
	// used as given.
	Client   *client.Client
	MinStake uint64
	Refresh  time.Duration // default 2 s

	mu      sync.Mutex
	cands   []Candidate
	updated time.Time
}

// NewPool returns a pool of workers (their ledger records are read on
// first use).
func NewPool(c *client.Client, minStake uint64, cands ...Candidate) *Pool {
	return &Pool{Client: c, MinStake: minStake, cands: cands}
}

func (p *Pool) refresh(ctx context.Context) []Candidate {
	p.mu.Lock()
	defer p.mu.Unlock()
	every := p.Refresh
	if every <= 0 {
		every = 2 * time.Second
	}
	if p.Client != nil && time.Since(p.updated) >= every {
		var h uint64
		if ch, err := p.Client.Chain(ctx); err == nil {
			h = ch.Height
		}
		for i := range p.cands {
			st, err := p.Client.Stake(ctx, p.cands[i].Address)
			if err != nil {
				continue // keep the last known record
			}
			c := &p.cands[i]
			c.Stake, c.Final, c.Slashed, c.Jailed = st.Bonded, st.Final, st.Slashed, h < st.JailedUntil
		}
		p.updated = time.Now()
	}
	return slices.Clone(p.cands)
}

// Ranked returns the eligible workers, best first.
func (p *Pool) Ranked(ctx context.Context) []Candidate { return Rank(p.refresh(ctx), p.MinStake) }

// Models implements Backend: every model some worker serves.
func (p *Pool) Models() []inference.ModelInfo {
	p.mu.Lock()
	cands := slices.Clone(p.cands)
	p.mu.Unlock()
	var out []inference.ModelInfo
	seen := map[string]bool{}
	for _, c := range cands {
		for _, m := range c.Backend.Models() {
			if !seen[m.ID.String()] {
				seen[m.ID.String()] = true
				out = append(out, m)
			}
		}
	}
	return out
}

func serves(b Backend, model string) bool {
	for _, m := range b.Models() {
		if m.Name == model || strings.EqualFold(m.ID.String(), model) {
			return true
		}
	}
	return false
}

// Generate implements Backend on the best eligible worker serving the
// model.
func (p *Pool) Generate(ctx context.Context, req inference.Request, onDelta func(inference.Delta) error) (*inference.Result, error) {
	known := false
	for _, c := range p.Ranked(ctx) {
		if serves(c.Backend, req.Model) {
			return c.Backend.Generate(ctx, req, onDelta)
		}
	}
	for _, m := range p.Models() {
		if m.Name == req.Model || strings.EqualFold(m.ID.String(), req.Model) {
			known = true
		}
	}
	if !known {
		return nil, fmt.Errorf("%w: %q", inference.ErrUnknownModel, req.Model)
	}
	return nil, fmt.Errorf("%w: every worker serving %q is jailed or under the minimum stake", ErrNoWorker, req.Model)
}

// Receipt implements Backend: the receipt from whichever worker has it.
func (p *Pool) Receipt(ctx context.Context, id string) ([]byte, error) {
	p.mu.Lock()
	cands := slices.Clone(p.cands)
	p.mu.Unlock()
	for _, c := range cands {
		b, err := c.Backend.Receipt(ctx, id)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, inference.ErrNotFound) {
			return nil, err
		}
	}
	return nil, inference.ErrNotFound
}

// Verify implements the MCP backend with the first worker serving the
// receipt's model (any worker checks signatures).
func (p *Pool) Verify(ctx context.Context, data []byte, replay bool) (*inference.Verification, error) {
	p.mu.Lock()
	cands := slices.Clone(p.cands)
	p.mu.Unlock()
	if len(cands) == 0 {
		return nil, ErrNoWorker
	}
	var first *inference.Verification
	for _, c := range cands {
		v, err := c.Backend.Verify(ctx, data, replay)
		if err != nil {
			return nil, err
		}
		if !replay || v.Replayed || !v.Signature {
			return v, nil
		}
		if first == nil {
			first = v
		}
	}
	return first, nil
}
