package disputeplay

import (
	"context"
	"fmt"
	"time"

	"github.com/verdictnet/verdict/internal/audit"
	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/disputegame"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
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
			return cfg, nil, err // a nil *audit.Referee stays a nil dispute.Referee
		}
		return cfg, ref, nil
	}
}

// resend is how long a player waits for its answer to show in the
// transcript before it sends the same answer again.
const resend = 3 * time.Second

// Player plays one side of a ledger dispute from its trace.
type Player struct {
	Side      ledger.Side
	Setup     disputegame.Setup
	Timeout   uint64 // the chain's moveWindow, for transcripts that do not record it
	Responder *dispute.Responder
	// Reload, when set, returns the values of the given leaves (from a
	// trace regenerated keeping them: audit.RegenerateLeaves). A player
	// whose Responder holds the tree alone (a long receipt's whole trace
	// does not fit in memory) gets, at the first opening of the disputed
	// leaf's inputs, the values of all of them, every part included. It
	// is given Move's context (a forward pass: it must stop when the
	// player does) and the dispute as the ledger holds it, whose Deadline
	// is the height the answer is due by (work scheduled by deadline
	// beside other work reads it there).
	Reload   func(ctx context.Context, d *ledger.Dispute, leaves []int) (func(i int) ([]byte, error), error)
	loaded   int // 1 + the leaf whose inputs Reload gave (0: none)
	answered map[string]time.Time
}

// Move returns the player's answer to the dispute's outstanding query, or
// ok false when there is none or it was answered in the last few seconds.
// The query is the ledger's own: disputegame.Game.Outstanding replays the
// transcript as the validators do, and a transcript they could not replay
// is an error here too. ctx is Reload's.
func (p *Player) Move(ctx context.Context, d *ledger.Dispute) (msg []byte, ok bool, err error) {
	if d.Status != ledger.DisputeOpen {
		return nil, false, nil
	}
	q, ok, err := disputegame.Game{Setup: p.Setup, Timeout: p.Timeout}.Outstanding(d.Game)
	if err != nil {
		return nil, false, fmt.Errorf("dispute %s: %w", d.DisputeID, err)
	}
	if !ok {
		return nil, false, nil
	}
	if p.Responder == nil {
		return nil, false, fmt.Errorf("dispute %s: the player has no trace to answer from", d.DisputeID)
	}
	qb, err := q.Marshal()
	if err != nil {
		return nil, false, fmt.Errorf("dispute %s: %w", d.DisputeID, err)
	}
	key := d.DisputeID.String() + string(qb)
	if at, ok := p.answered[key]; ok && time.Since(at) < resend {
		return nil, false, nil
	}
	if q.Kind == dispute.OpenLeaves && p.Reload != nil && p.loaded != q.Start+1 {
		ins, err := disputegame.Game{Setup: p.Setup, Timeout: p.Timeout}.Inputs(d.Game, q.Start)
		if err != nil {
			return nil, false, fmt.Errorf("dispute %s: %w", d.DisputeID, err)
		}
		v, err := p.Reload(ctx, d, ins)
		if err != nil {
			return nil, false, fmt.Errorf("dispute %s: regenerating the inputs of leaf %d: %w", d.DisputeID, q.Start, err)
		}
		p.Responder.Value, p.loaded = v, q.Start+1
	}
	a, err := p.Responder.Answer(q)
	if err != nil {
		return nil, false, fmt.Errorf("dispute %s: answering: %w", d.DisputeID, err)
	}
	b, err := a.Marshal()
	if err != nil {
		return nil, false, fmt.Errorf("dispute %s: %w", d.DisputeID, err)
	}
	if p.answered == nil {
		p.answered = map[string]time.Time{}
	}
	p.answered[key] = time.Now()
	return b, true, nil
}
