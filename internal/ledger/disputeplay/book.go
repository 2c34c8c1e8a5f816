package disputeplay

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
)

// DisputeBook holds the disputes one party is playing. It is safe for
// concurrent use; the zero value is empty and ready.
type DisputeBook struct {
	mu sync.Mutex
	m  map[ledger.Hash]*entry
}

// entry is a dispute played: its player, and the context of its moves,
// cancelled when the dispute is removed.
type entry struct {
	p      *Player
	ctx    context.Context
	cancel context.CancelFunc
}

// Add starts playing dispute id with p.
func (b *DisputeBook) Add(id ledger.Hash, p *Player) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[ledger.Hash]*entry{}
	}
	if old := b.m[id]; old != nil {
		old.cancel()
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.m[id] = &entry{p: p, ctx: ctx, cancel: cancel}
}

// Player returns the player of dispute id (nil: not played).
func (b *DisputeBook) Player(id ledger.Hash) *Player {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.m[id]; e != nil {
		return e.p
	}
	return nil
}

// Remove stops playing dispute id and reports whether it was being played.
// A move of it under way (a Reload: a forward pass over the receipt) sees
// its context cancelled: the dispute settled, and the work would hold up
// the other disputes' moves for nothing.
func (b *DisputeBook) Remove(id ledger.Hash) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[id]
	if ok {
		e.cancel()
	}
	delete(b.m, id)
	return ok
}

// Play makes each dispute's outstanding move, if any, in dispute id order,
// and forgets the disputes that are over; it returns their ids.
func (b *DisputeBook) Play(ctx context.Context, s *client.Sender, log *slog.Logger) (over []ledger.Hash) {
	b.mu.Lock()
	ids := make([]ledger.Hash, 0, len(b.m))
	for id := range b.m {
		ids = append(ids, id)
	}
	b.mu.Unlock()
	slices.SortFunc(ids, func(x, y ledger.Hash) int { return bytes.Compare(x[:], y[:]) })
	for _, id := range ids {
		b.mu.Lock()
		e := b.m[id]
		b.mu.Unlock()
		if e == nil {
			continue
		}
		// The move's context ends with ctx or when the dispute is removed.
		mctx, stop := context.WithCancel(ctx)
		unhook := context.AfterFunc(e.ctx, stop)
		done, err := PlayDispute(mctx, s, e.p, id)
		unhook()
		stop()
		if err != nil && e.ctx.Err() == nil {
			log.Warn("dispute move", "dispute", id.String(), "err", err)
		}
		if done {
			b.Remove(id)
			over = append(over, id)
		}
	}
	return over
}

// PlayDispute sends p's answer to dispute id's outstanding query, if any;
// done is true once the dispute is over.
func PlayDispute(ctx context.Context, s *client.Sender, p *Player, id ledger.Hash) (done bool, err error) {
	d, _, err := s.Client().Dispute(ctx, id)
	if err != nil {
		return false, fmt.Errorf("dispute %s: %w", id, err)
	}
	if d.Status != ledger.DisputeOpen {
		return true, nil
	}
	msg, ok, err := p.Move(ctx, &d)
	if err != nil || !ok {
		return false, err
	}
	if _, err := s.Send(ctx, &ledger.MsgDisputeMove{DisputeID: id, Message: msg}); err != nil {
		return false, fmt.Errorf("dispute %s: move: %w", id, err)
	}
	return false, nil
}
