package worker

import (
	"github.com/verdictnet/verdict/internal/audit"
	"github.com/verdictnet/verdict/internal/dispute"
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
		if err != nil {
			return cfg, nil, err
		}
		return cfg, ref, nil
	}
}

func parseReceipt(b []byte) (*receipt.Receipt, error) { return receipt.Parse(b) }
