package worker

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"sync"

	"github.com/verdictnet/verdict/internal/audit"
	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/disputegame"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/receipt"
)

// A dispute over a receipt bisects the trace tree (docs/protocol.md,
// audit.DisputeSetup): the worker's root is the receipt's TraceRoot, the
// challenger's commitment the 32-byte root of its own trace of the same
// tokens, and the referee recomputes the one cell where they part. The
// ledger runs the game (proofhooks.Hooks); a Player answers for a party.

// TraceSetup is the dispute setup for receipts of model m with id, the
// same as the ledger's (proofhooks.Models.DisputeSetup) for that model.
func TraceSetup(m *model.Model, id merkle.Hash) disputegame.Setup {
	return func(rb, commitment []byte) (dispute.Config, dispute.Referee, error) {
		cfg, ref, err := audit.DisputeSetup(m, id, rb, commitment)
		if err != nil || ref == nil {
			return cfg, nil, err // a nil referee: decided at once (Config.Forfeit)
		}
		return cfg, ref, nil
	}
}

func parseReceipt(b []byte) (*receipt.Receipt, error) { return receipt.Parse(b) }

// DisputeBook holds the disputes one party is playing. It is safe for
// concurrent use; the zero value is empty and ready.
type DisputeBook struct {
	mu sync.Mutex
	m  map[ledger.Hash]*Player
}

// Add starts playing dispute id with p.
func (b *DisputeBook) Add(id ledger.Hash, p *Player) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[ledger.Hash]*Player{}
	}
	b.m[id] = p
}

// Remove stops playing dispute id and reports whether it was being played.
func (b *DisputeBook) Remove(id ledger.Hash) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.m[id]
	delete(b.m, id)
	return ok
}

// Play makes each dispute's outstanding move, if any, in dispute id order,
// and forgets the disputes that are over; it returns their ids.
func (b *DisputeBook) Play(ctx context.Context, s *Sender, log *slog.Logger) (over []ledger.Hash) {
	b.mu.Lock()
	ids := make([]ledger.Hash, 0, len(b.m))
	for id := range b.m {
		ids = append(ids, id)
	}
	b.mu.Unlock()
	slices.SortFunc(ids, func(x, y ledger.Hash) int { return bytes.Compare(x[:], y[:]) })
	for _, id := range ids {
		b.mu.Lock()
		p := b.m[id]
		b.mu.Unlock()
		if p == nil {
			continue
		}
		done, err := PlayDispute(ctx, s, p, id)
		if err != nil {
			log.Warn("dispute move", "dispute", id.String(), "err", err)
		}
		if done {
			b.Remove(id)
			over = append(over, id)
		}
	}
	return over
}
