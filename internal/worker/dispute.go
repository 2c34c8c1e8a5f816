package worker

import (
	"context"

	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/disputegame"
	"github.com/verdictnet/verdict/internal/ledger/disputeplay"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/receipt"
)

// The dispute player lives in internal/ledger/disputeplay, beside the
// ledger's game; these names stay for the worker's callers.

// Player is disputeplay.Player.
type Player = disputeplay.Player

// DisputeBook is disputeplay.DisputeBook.
type DisputeBook = disputeplay.DisputeBook

// TraceSetup is disputeplay.TraceSetup.
func TraceSetup(m *model.Model, id merkle.Hash) disputegame.Setup {
	return disputeplay.TraceSetup(m, id)
}

// PlayDispute is disputeplay.PlayDispute.
func PlayDispute(ctx context.Context, s *Sender, p *Player, id ledger.Hash) (done bool, err error) {
	return disputeplay.PlayDispute(ctx, s, p, id)
}

func parseReceipt(b []byte) (*receipt.Receipt, error) { return receipt.Parse(b) }
