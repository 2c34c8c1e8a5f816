package worker

import (
	"github.com/verdictnet/verdict/internal/inference"
	"github.com/verdictnet/verdict/internal/ledger"
)

// The gateway hands paid receipts over as inference.Charge values and
// opens their escrows from them, without importing the worker; these
// adapt that to the outbox's Pending and Escrower.

// SubmitCharge queues a charged receipt for publication (Submit of its
// Pending).
func (c *Chain) SubmitCharge(ch inference.Charge) error { return c.Submit(pendingOf(ch)) }

// EscrowCharges makes an Escrower of an escrow opener that reads charges
// (gateway.LedgerMeter.Escrow).
func EscrowCharges(open func(ch *inference.Charge, worker ledger.Address, model ledger.Hash, agentID uint64) (ledger.Msg, *Sender, error)) Escrower {
	return func(p *Pending, worker ledger.Address, model ledger.Hash, agentID uint64) (ledger.Msg, *Sender, error) {
		ch := chargeOf(p)
		return open(&ch, worker, model, agentID)
	}
}

func pendingOf(ch inference.Charge) Pending {
	return Pending{ReceiptID: ch.ReceiptID, Receipt: ch.Receipt, Requester: ch.Requester, Fee: ch.Fee, EscrowID: ch.EscrowID, RequestSteps: ch.RequestSteps}
}

func chargeOf(p *Pending) inference.Charge {
	return inference.Charge{ReceiptID: p.ReceiptID, Receipt: p.Receipt, Requester: p.Requester, Fee: p.Fee, EscrowID: p.EscrowID, RequestSteps: p.RequestSteps}
}
