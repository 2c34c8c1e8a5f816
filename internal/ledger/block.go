package ledger

import (
	"encoding/binary"
	"math/bits"
)

// beginBlock selects audits for the receipts published in the previous
// block, using this block's hash, which was unknown when they were
// published.
func (e *exec) beginBlock() {
	for _, m := range e.ctx.Misbehaving {
		reason := ""
		switch {
		case m.Height > e.ctx.Height:
			reason = ReasonEvidenceFuture
		case e.ctx.Height-m.Height > e.params.EvidenceMaxAgeBlocks:
			reason = ReasonEvidenceTooOld
		}
		if reason != "" {
			e.emit(EventEvidenceIgnored, Attr{AttrAccount, m.Validator.String()}, Attr{AttrHeight, u64(m.Height)}, Attr{AttrReason, reason})
			continue
		}
		amt := e.slash(m.Validator, e.params.SlashEvidenceBps, true, "consensus misbehaviour")
		e.burn(amt, "consensus misbehaviour")
	}
	for _, id := range e.queueTake(qAudit, e.ctx.Height) {
		// A receipt challenged in the block that published it is
		// selected as any other: a dispute does not spare it its audit
		// (a worker's sybil challenging every receipt at once would
		// otherwise escape them all).
		r, err := e.receipt(id)
		if err != nil || (r.Status != StatusPublished && r.Status != StatusChallenged) {
			continue
		}
		var esc Escrow
		if get(e.st, keyEscrow(r.EscrowID), &esc) && !esc.AuditCommit.IsZero() {
			// The requester's secret and this block's hash decide
			// (revealAudit); unrevealed by the deadline, the receipt is
			// audited.
			put(e.st, keyBeacon(id), Hash(e.ctx.Hash))
			e.queuePush(qReveal, r.Height+1+e.params.RevealWindow+1, id)
			continue
		}
		// No secret: nothing a proposer or worker controls decides
		// whether the receipt is audited; it is, whenever audits are on
		// (the block hash only picks the cells).
		if e.params.AuditRateBps > 0 {
			e.maybeAudit(r, derive("verdict/audit/uncommitted/v1", e.ctx.Hash[:], id[:]), 10000)
		}
	}
	for _, id := range e.queueTake(qReveal, e.ctx.Height) {
		e.st.Delete(keyBeacon(id))
		if _, ok := e.st.Get(keyRevealed(id)); ok {
			e.st.Delete(keyRevealed(id))
			continue
		}
		if e.params.AuditRateBps == 0 {
			// Audits are off: an unrevealed secret audits nothing
			// either (it did, with auditCells cells, possibly 0, a
			// worker that did not answer paid for with a slash).
			continue
		}
		r, err := e.receipt(id)
		if err != nil || (r.Status != StatusPublished && r.Status != StatusChallenged) {
			continue
		}
		e.emit(EventAuditUnrevealed, Attr{AttrReceiptID, id.String()})
		e.maybeAudit(r, derive("verdict/audit/unrevealed/v1", e.ctx.Hash[:], id[:]), 10000)
	}
}

// maybeAudit selects r for an audit when the seed's first 8 bytes
// (big-endian) mod 10000 are below rateBps: the audit asks for auditCells
// cells (chosen by the seed) by openingWindow blocks from now.
func (e *exec) maybeAudit(r ReceiptRecord, seed Hash, rateBps uint32) {
	id := r.ReceiptID
	if binary.BigEndian.Uint64(seed[:8])%10000 >= uint64(rateBps) {
		return
	}
	a := Audit{ReceiptID: id, Seed: seed, Cells: e.params.AuditCells, Deadline: e.ctx.Height + e.params.OpeningWindow, Status: AuditPending}
	put(e.st, keyAudit(id), a)
	r.Audited, r.Audit = true, a.Status
	put(e.st, keyReceipt(id), r)
	e.queuePush(qOpening, a.Deadline+1, id)
	e.emit(EventAuditSelected, Attr{AttrReceiptID, id.String()}, Attr{AttrSeed, seed.String()}, Attr{AttrCells, u64(uint64(a.Cells))}, Attr{AttrDeadline, u64(a.Deadline)}, Attr{AttrWorker, r.Worker.String()})
}

// endBlock runs the deadlines that fall at this height, pays out receipts
// whose window closed, returns matured unbondings, refunds expired escrows,
// mints the subsidy and pays the block's fees.
func (e *exec) endBlock() {
	h := e.ctx.Height
	for _, id := range e.queueTake(qOpening, h) {
		var a Audit
		if !get(e.st, keyAudit(id), &a) || a.Status != AuditPending {
			continue
		}
		a.Status = AuditMissed
		r := e.setAudit(a)
		e.emit(EventAuditMissed, Attr{AttrReceiptID, id.String()})
		if r.Status == StatusPublished || r.Status == StatusChallenged {
			e.slashReceipt(r, e.params.SlashAuditBps, "missing opening")
		}
	}
	for _, id := range e.queueTake(qMove, h) {
		var d Dispute
		if !get(e.st, keyDispute(id), &d) || d.Status != DisputeOpen || d.Deadline >= h {
			continue // decided, or answered since (its new deadline is queued)
		}
		next, err := e.l.hooks.Disputes.Tick(d.Game, h)
		if err != nil {
			e.emit(EventDisputeError, Attr{AttrDisputeID, id.String()}, Attr{AttrError, err.Error()})
			if !e.unavailable(err) { // a node without the model stops instead
				e.voidDispute(d)
			}
			continue
		}
		d.Game = next
		e.emit(EventDisputeTimeout, Attr{AttrDisputeID, id.String()})
		if err := e.advanceDispute(d); err != nil { // unavailable models were recorded there
			e.emit(EventDisputeError, Attr{AttrDisputeID, id.String()}, Attr{AttrError, err.Error()})
			if e.l.fatal == nil {
				e.voidDispute(d)
			}
		}
	}
	var paid []payout
	for _, id := range e.queueTake(qFinal, h) {
		if r, err := e.receipt(id); err == nil && r.Status == StatusPublished {
			paid = append(paid, e.finalize(r))
		}
	}
	for _, id := range e.queueTake(qEscrow, h) {
		var esc Escrow
		if get(e.st, keyEscrow(id), &esc) && esc.ReceiptID.IsZero() {
			e.refund(id, "expired")
		}
	}
	for _, id := range e.queueTake(qUnbond, h) {
		e.releaseUnbonding(Address(id))
	}
	e.rewards(paid)
}

// payout is a receipt paid in this block: its worker, escrowed fee and
// the protocol fee burned from it.
type payout struct {
	worker    Address
	fee, burn uint64
}

// finalize pays a receipt whose window closed unchallenged: the escrowed
// fee less the protocol fee (protocolFeeBps, burned) goes to the worker,
// its record counts one more final receipt, and when the escrow named the
// worker's agent and paid at least minFeedbackFee, the requester's
// feedback (value 1, tag1 "verdict.receipt", tag2 "final") is recorded.
func (e *exec) finalize(r ReceiptRecord) payout {
	var esc Escrow
	get(e.st, keyEscrow(r.EscrowID), &esc)
	e.st.Delete(keyEscrow(r.EscrowID))
	burn := mulBps(esc.Fee, e.params.ProtocolFeeBps)
	_ = e.credit(r.Worker, esc.Fee-burn)
	if burn > 0 {
		e.burn(burn, "protocol fee")
	}
	pay := payout{worker: r.Worker, fee: esc.Fee, burn: burn}
	s := e.stake(r.Worker)
	s.Final++
	put(e.st, keyStake(r.Worker), s)
	e.settleReceipt(r, StatusFinal)
	e.emit(EventReceiptFinal, Attr{AttrReceiptID, r.ReceiptID.String()}, Attr{AttrWorker, r.Worker.String()}, Attr{AttrFee, u64(esc.Fee)}, Attr{AttrProtocolFee, u64(burn)})
	if esc.AgentID == 0 || esc.Fee < e.params.MinFeedbackFee {
		return pay
	}
	a, err := e.agent(esc.AgentID)
	if err != nil || (a.Owner != r.Worker && a.AgentWallet != r.Worker) || esc.Requester == a.Owner || esc.Requester == a.AgentWallet {
		return pay
	}
	e.addFeedback(Feedback{AgentID: a.AgentID, ClientAddress: esc.Requester, Value: "1", Tag1: "verdict.receipt", Tag2: "final", FeedbackHash: r.ReceiptID})
	return pay
}

// rewards mints the block subsidy into the reward pool, pays each receipt
// finalized at this block's height its share of the pool weighted by its
// fee, but at most rewardCapBps of the protocol fee it burned (so a
// receipt never earns more than it cost: self-dealing and an idle pool
// pay no windfall; the rest stays in the pool), and pays the block's fees
// to the proposer (or into the pool when unknown).
func (e *exec) rewards(paid []payout) {
	get(e.st, keyTotals, &e.totals) // finalize and slash may have changed it
	sub := e.params.Subsidy(e.ctx.Height)
	if e.totals.Minted+sub < e.totals.Minted {
		sub = 0 // supply cap reached
	}
	e.totals.Minted += sub
	e.totals.Pool += sub
	fees := e.totals.Fees
	e.totals.Fees = 0
	if e.ctx.Proposer.IsZero() {
		e.totals.Pool += fees
		fees = 0
	}
	var sum uint64
	for _, p := range paid {
		sum += p.fee // bounded by the supply
	}
	rewards := make([]uint64, len(paid))
	pool := e.totals.Pool
	for i, p := range paid {
		if sum == 0 {
			break // zero-fee receipts earn nothing
		}
		hi, lo := bits.Mul64(pool, p.fee)
		share, _ := bits.Div64(hi, lo, sum) // < pool: p.fee <= sum
		rewards[i] = min(share, mulBps(p.burn, e.params.RewardCapBps))
		e.totals.Pool -= rewards[i]
	}
	e.saveTotals()
	for i, p := range paid {
		if rewards[i] > 0 {
			_ = e.credit(p.worker, rewards[i])
			e.emit(EventReward, Attr{AttrAccount, p.worker.String()}, Attr{AttrAmount, u64(rewards[i])}, Attr{AttrKind, "work"})
		}
	}
	if fees > 0 {
		_ = e.credit(e.ctx.Proposer, fees)
		e.emit(EventReward, Attr{AttrAccount, e.ctx.Proposer.String()}, Attr{AttrAmount, u64(fees)}, Attr{AttrKind, "fees"})
	}
}
