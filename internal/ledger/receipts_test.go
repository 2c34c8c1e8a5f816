package ledger

import (
	"slices"
	"testing"

	"github.com/verdictnet/verdict/internal/dispute"
)

// setupMarket registers the model, bonds carol (worker) and dave
// (verifier), registers carol's agent (id 1) and opens an escrow from
// alice to carol; it returns the escrow id.
func setupMarket(t *testing.T, h *harness, fee uint64) Hash {
	h.registerModel("bob", testModel, "stories260K")
	h.ok(h.tx("carol", &MsgBond{Amount: 10_000}))
	h.ok(h.tx("dave", &MsgBond{Amount: 10_000}))
	h.ok(h.tx("carol", &MsgRegisterAgent{AgentURI: "ipfs://carol"}))
	return h.openEscrow("alice", "carol", fee, 1)
}

// openEscrow opens an escrow for the request of signedReceipt(..., nonce).
func (h *harness) openEscrow(requester, worker string, fee uint64, nonce byte) Hash {
	h.t.Helper()
	var a Account
	h.query("account/"+testAddr(requester).String(), &a)
	h.ok(h.tx(requester, &MsgOpenEscrow{Worker: testAddr(worker), ModelID: testModel, Fee: fee, Request: testRequest(nonce), AgentID: 1}))
	return EscrowID(testAddr(requester), a.Nonce)
}

func (h *harness) receiptRecord(id Hash) ReceiptRecord {
	var r ReceiptRecord
	h.query("receipt/"+id.String(), &r)
	return r
}

func TestReceiptFinalizes(t *testing.T) {
	p := testParams()
	h := newHarness(t, p)
	esc := setupMarket(t, h, 500)
	aliceBefore := h.balance("alice")
	rcpt, id := signedReceipt(t, "carol", testModel, 1)
	other, _ := signedReceipt(t, "bob", testModel, 1)
	h.fails(h.tx("carol", &MsgPublishReceipt{EscrowID: Hash{7}, Receipt: rcpt}), ErrNotFound)
	h.fails(h.tx("bob", &MsgPublishReceipt{EscrowID: esc, Receipt: rcpt}), ErrUnauthorized)
	h.fails(h.tx("carol", &MsgPublishReceipt{EscrowID: esc, Receipt: other}), ErrUnauthorized)
	tampered := append([]byte{}, rcpt...)
	tampered[len(tampered)/2] ^= 1
	h.fails(h.tx("carol", &MsgPublishReceipt{EscrowID: esc, Receipt: tampered}), ErrCheck)
	otherModel, _ := signedReceipt(t, "carol", Hash{5}, 1)
	h.fails(h.tx("carol", &MsgPublishReceipt{EscrowID: esc, Receipt: otherModel}), ErrInvalid)
	res := h.ok(h.tx("carol", &MsgPublishReceipt{EscrowID: esc, Receipt: rcpt}))
	if res.Events[1].Type != "receipt_published" {
		t.Fatalf("events %+v", res.Events)
	}
	h.fails(h.tx("carol", &MsgPublishReceipt{EscrowID: esc, Receipt: rcpt}), ErrExists)
	esc2 := h.openEscrow("alice", "carol", 1, 1)
	h.fails(h.tx("carol", &MsgPublishReceipt{EscrowID: esc2, Receipt: rcpt}), ErrExists) // same receipt twice

	r := h.receiptRecord(id)
	if r.Status != StatusPublished || r.WindowEnd != r.Height+p.ChallengeWindow {
		t.Fatalf("record %+v", r)
	}
	carolBefore := h.balance("carol")
	h.blocksUntil(r.WindowEnd - 1)
	if h.receiptRecord(id).Status != StatusPublished {
		t.Fatal("final before the window closed")
	}
	var tot Totals
	h.query("totals", &tot)
	pool := tot.Pool + p.Subsidy(r.WindowEnd)
	h.block()
	if got := h.receiptRecord(id).Status; got != StatusFinal {
		t.Fatalf("status %s after window", got)
	}
	// The fee less the protocol fee, and from the (large) pool a reward
	// capped at rewardCapBps of that protocol fee.
	burn := mulBps(500, p.ProtocolFeeBps)
	reward := min(pool, mulBps(burn, p.RewardCapBps))
	if got := h.balance("carol"); got != carolBefore+500-burn+reward {
		t.Fatalf("worker balance %d, want %d + fee 500 - protocol fee %d + reward %d", got, carolBefore, burn, reward)
	}
	h.query("totals", &tot)
	if tot.Pool != pool-reward {
		t.Fatalf("pool %d, want %d", tot.Pool, pool-reward)
	}
	if got := h.balance("alice"); got != aliceBefore-1-1 { // openEscrow fee + second escrow amount... see below
		// alice paid the escrow-2 tx fee (1) and its escrow amount (1).
		t.Fatalf("alice %d, was %d", got, aliceBefore)
	}
	if s := h.stakeOf("carol"); s.Final != 1 {
		t.Fatalf("final count %d", s.Final)
	}
	// Reputation rose: alice's feedback on agent 1.
	var f Feedback
	h.query("feedback/1/"+testAddr("alice").String()+"/1", &f)
	if f.Tag1 != "verdict.receipt" || f.Value != "1" || f.FeedbackHash != id {
		t.Fatalf("feedback %+v", f)
	}
	if _, err := h.l.Query("escrow/"+esc.String(), nil); err == nil {
		t.Fatal("paid escrow still stored")
	}
}

func TestEscrowExpiresAndWorkerNeedsStake(t *testing.T) {
	p := testParams()
	h := newHarness(t, p)
	h.registerModel("bob", testModel, "m")
	h.ok(h.tx("carol", &MsgRegisterAgent{AgentURI: "x"}))
	before := h.balance("alice")
	esc := h.openEscrow("alice", "carol", 700, 1)
	opened := h.height
	rcpt, _ := signedReceipt(t, "carol", testModel, 1)
	h.fails(h.tx("carol", &MsgPublishReceipt{EscrowID: esc, Receipt: rcpt}), ErrStake) // unbonded worker
	h.fails(h.tx("alice", &MsgOpenEscrow{Worker: testAddr("carol"), ModelID: testModel, Fee: testBalance, Request: testRequest(2)}), ErrFunds)
	h.blocksUntil(opened + p.EscrowTimeout)
	if got := h.balance("alice"); got != before-2 { // two tx fees; escrow refunded
		t.Fatalf("alice %d, want %d", got, before-2)
	}
	h.ok(h.tx("carol", &MsgBond{Amount: p.MinWorkerStake}))
	h.fails(h.tx("carol", &MsgPublishReceipt{EscrowID: esc, Receipt: rcpt}), ErrNotFound) // expired
}

func auditParams() Params {
	p := testParams()
	p.AuditRateBps = 10000
	return p
}

// publish opens an escrow and publishes a receipt; it returns the receipt id.
func (h *harness) publish(nonce byte) Hash {
	h.t.Helper()
	esc := h.openEscrow("alice", "carol", 500, nonce)
	rcpt, id := signedReceipt(h.t, "carol", testModel, nonce)
	h.ok(h.tx("carol", &MsgPublishReceipt{EscrowID: esc, Receipt: rcpt}))
	return id
}

func (h *harness) audit(id Hash) Audit {
	var a Audit
	h.query("audit/"+id.String(), &a)
	return a
}

func TestAudits(t *testing.T) {
	p := auditParams()
	t.Run("opened in time", func(t *testing.T) {
		h := newHarness(t, p)
		setupMarket(t, h, 1)
		id := h.publish(1)
		h.block() // selection happens in the next block, from its hash
		a := h.audit(id)
		if a.Status != AuditPending || a.Cells != p.AuditCells || a.Deadline != h.height+p.OpeningWindow {
			t.Fatalf("audit %+v", a)
		}
		wantSeed := derive("verdict/audit/uncommitted/v1", func() []byte { b := blockHash(h.height); return b[:] }(), id[:])
		if a.Seed != wantSeed {
			t.Fatal("seed is not derived from the block after publication")
		}
		h.fails(h.tx("dave", &MsgPostOpenings{ReceiptID: id, Openings: goodOpenings(a.Seed, a.Cells)}), ErrUnauthorized)
		h.ok(h.tx("carol", &MsgPostOpenings{ReceiptID: id, Openings: goodOpenings(a.Seed, a.Cells)}))
		h.fails(h.tx("carol", &MsgPostOpenings{ReceiptID: id, Openings: goodOpenings(a.Seed, a.Cells)}), ErrWrongState)
		h.blocksUntil(h.receiptRecord(id).WindowEnd)
		if s := h.receiptRecord(id).Status; s != StatusFinal || h.audit(id).Status != AuditPassed {
			t.Fatalf("status %s audit %s", s, h.audit(id).Status)
		}
	})
	t.Run("late opening", func(t *testing.T) {
		h := newHarness(t, p)
		setupMarket(t, h, 1)
		id := h.publish(1)
		h.block()
		a := h.audit(id)
		stake := h.stakeOf("carol").Bonded
		aliceBefore := h.balance("alice")
		h.blocksUntil(a.Deadline)
		h.fails(h.tx("carol", &MsgPostOpenings{ReceiptID: id, Openings: goodOpenings(a.Seed, a.Cells)}), ErrDeadline)
		if got := h.audit(id).Status; got != AuditMissed {
			t.Fatalf("audit %s", got)
		}
		s := h.stakeOf("carol")
		if s.Bonded != stake-mulBps(stake, p.SlashAuditBps) || s.JailedUntil == 0 || s.Slashed != 1 {
			t.Fatalf("stake after missed opening %+v", s)
		}
		if h.receiptRecord(id).Status != StatusSlashed || h.balance("alice") != aliceBefore+500 {
			t.Fatal("receipt not slashed or requester not refunded")
		}
		// Jailed: cannot publish, cannot unjail before the term.
		esc := h.openEscrow("alice", "carol", 1, 2)
		r2, _ := signedReceipt(t, "carol", testModel, 2)
		h.fails(h.tx("carol", &MsgPublishReceipt{EscrowID: esc, Receipt: r2}), ErrStake)
		h.fails(h.tx("carol", &MsgUnjail{}), ErrWrongState)
		h.blocksUntil(s.JailedUntil - 1)
		h.ok(h.tx("carol", &MsgUnjail{}))
	})
	t.Run("failed opening", func(t *testing.T) {
		h := newHarness(t, p)
		setupMarket(t, h, 1)
		id := h.publish(1)
		h.block()
		stake := h.stakeOf("carol").Bonded
		res := h.ok(h.tx("carol", &MsgPostOpenings{ReceiptID: id, Openings: []byte("forged")}))
		if res.Events[1].Type != "audit_failed" {
			t.Fatalf("events %+v", res.Events)
		}
		if h.audit(id).Status != AuditFailed || h.receiptRecord(id).Status != StatusSlashed || h.stakeOf("carol").Bonded >= stake {
			t.Fatal("failed opening not punished")
		}
	})
	// A receipt slashed by a lost dispute while its audit was pending:
	// forged openings then fail the audit but do not slash the worker a
	// second time for the same receipt (they did: stake cut and the
	// worker jailed twice), as a missed opening does not.
	t.Run("failed opening after a lost dispute", func(t *testing.T) {
		h := newHarness(t, p)
		setupMarket(t, h, 1)
		id := h.publish(1)
		h.block()
		if h.audit(id).Status != AuditPending {
			t.Fatal("not audited")
		}
		res := h.ok(h.tx("dave", &MsgOpenDispute{ReceiptID: id, Commitment: []byte("commit")}))
		var did Hash
		for _, a := range res.Events[1].Attrs {
			if a.Key == "disputeId" {
				did, _ = ParseHash(a.Value)
			}
		}
		h.ok(h.tx("carol", &MsgDisputeMove{DisputeID: did, Message: []byte("bisect")}))
		h.ok(h.tx("dave", &MsgDisputeMove{DisputeID: did, Message: []byte("referee:challenger")}))
		before := h.stakeOf("carol")
		if h.receiptRecord(id).Status != StatusSlashed || before.Slashed != 1 {
			t.Fatalf("lost dispute: receipt %s, stake %+v", h.receiptRecord(id).Status, before)
		}
		res = h.ok(h.tx("carol", &MsgPostOpenings{ReceiptID: id, Openings: []byte("forged")}))
		if h.audit(id).Status != AuditFailed {
			t.Fatalf("audit %s", h.audit(id).Status)
		}
		for _, ev := range res.Events {
			if ev.Type == EventSlash {
				t.Fatalf("slashed again: %+v", ev)
			}
		}
		if s := h.stakeOf("carol"); s.Bonded != before.Bonded || s.Slashed != 1 || s.JailedUntil != before.JailedUntil {
			t.Fatalf("stake %+v after the failed opening, %+v before", s, before)
		}
	})
	t.Run("not selected", func(t *testing.T) {
		p := testParams() // audit rate 0
		h := newHarness(t, p)
		setupMarket(t, h, 1)
		id := h.publish(1)
		h.block()
		if _, err := h.l.Query("audit/"+id.String(), nil); err == nil {
			t.Fatal("audited at rate 0")
		}
	})
}

func TestDisputes(t *testing.T) {
	p := testParams()
	start := func(t *testing.T) (*harness, Hash, Hash) {
		h := newHarness(t, p)
		setupMarket(t, h, 300)
		id := h.publish(1)
		h.fails(h.tx("carol", &MsgOpenDispute{ReceiptID: id, Commitment: []byte("commit")}), ErrUnauthorized)
		h.fails(h.tx("erin", &MsgOpenDispute{ReceiptID: id, Commitment: []byte("commit")}), ErrStake)
		h.fails(h.tx("dave", &MsgOpenDispute{ReceiptID: id, Commitment: []byte("garbage")}), ErrCheck)
		res := h.ok(h.tx("dave", &MsgOpenDispute{ReceiptID: id, Commitment: []byte("commit")}))
		var did Hash
		for _, a := range res.Events[1].Attrs {
			if a.Key == "disputeId" {
				did, _ = ParseHash(a.Value)
			}
		}
		if h.receiptRecord(id).Status != StatusChallenged {
			t.Fatal("not challenged")
		}
		return h, id, did
	}
	move := func(h *harness, who string, did Hash, msg string) []byte {
		return h.tx(who, &MsgDisputeMove{DisputeID: did, Message: []byte(msg)})
	}
	t.Run("worker loses", func(t *testing.T) {
		h, id, did := start(t)
		h.fails(move(h, "dave", did, "bisect"), ErrCheck) // worker's turn
		h.fails(move(h, "bob", did, "bisect"), ErrUnauthorized)
		h.fails(move(h, "carol", did, "nonsense"), ErrCheck)
		h.ok(move(h, "carol", did, "bisect"))
		wStake, dBal, aBal := h.stakeOf("carol").Bonded, h.balance("dave"), h.balance("alice")
		h.ok(move(h, "dave", did, "referee:challenger"))
		slashed := mulBps(wStake, p.SlashDisputeBps)
		if got := h.stakeOf("carol").Bonded; got != wStake-slashed {
			t.Fatalf("worker stake %d, want %d", got, wStake-slashed)
		}
		if got := h.balance("dave"); got != dBal-1+mulBps(slashed, p.WinnerShareBps) {
			t.Fatalf("challenger balance %d", got)
		}
		if h.balance("alice") != aBal+500 || h.receiptRecord(id).Status != StatusSlashed {
			t.Fatal("requester not refunded")
		}
		h.fails(move(h, "carol", did, "bisect"), ErrWrongState) // decided
		h.blocksUntil(h.receiptRecord(id).WindowEnd + 1)        // never pays out
		if h.receiptRecord(id).Status != StatusSlashed {
			t.Fatal("slashed receipt changed")
		}
	})
	t.Run("challenger loses after the window", func(t *testing.T) {
		h, id, did := start(t)
		end := h.receiptRecord(id).WindowEnd
		for h.height+1 < end {
			h.ok(move(h, "carol", did, "bisect"))
			h.ok(move(h, "dave", did, "bisect"))
		}
		h.blocksUntil(end)
		if h.receiptRecord(id).Status != StatusChallenged {
			t.Fatal("paid out during a dispute")
		}
		cBal, dStake := h.balance("carol"), h.stakeOf("dave").Bonded
		h.ok(move(h, "carol", did, "referee:worker"))
		if h.receiptRecord(id).Status != StatusFinal || h.balance("carol") != cBal-1+500-mulBps(500, p.ProtocolFeeBps) {
			t.Fatal("won dispute did not pay the worker")
		}
		if h.stakeOf("dave").Bonded != dStake-mulBps(dStake, p.SlashDisputeBps) {
			t.Fatal("losing challenger not slashed")
		}
	})
	// A game whose timeout cannot decide it (disputegame's Tick leaves a
	// full transcript as it is, so its deadline stays behind; or the tick
	// fails) was never stored again nor queued: the dispute stayed open
	// for good, its receipt challenged and its parties' matured
	// unbondings held. It is settled void now.
	for _, stall := range []string{"stall", "stall:error"} {
		t.Run("timeout cannot decide: "+stall, func(t *testing.T) {
			h, id, did := start(t)
			h.ok(move(h, "carol", did, stall))
			var d Dispute
			h.query("dispute/"+did.String(), &d)
			wStake, cStake := h.stakeOf("carol").Bonded, h.stakeOf("dave").Bonded
			h.blocksUntil(d.Deadline + 2)
			h.query("dispute/"+did.String(), &d)
			if d.Status != DisputeVoid || d.VoidFault != dispute.FaultGameStalled || d.WorkerFault != "" || d.ChallengerFault != "" {
				t.Fatalf("dispute %+v after its deadline, want void (game_stalled)", d)
			}
			if h.stakeOf("carol").Disputes != 0 || h.stakeOf("dave").Disputes != 0 {
				t.Fatal("the parties still count the dispute as open")
			}
			if h.stakeOf("carol").Bonded != wStake || h.stakeOf("dave").Bonded != cStake {
				t.Fatal("a void dispute punished a party")
			}
			h.blocksUntil(h.receiptRecord(id).WindowEnd + 1)
			if st := h.receiptRecord(id).Status; st != StatusFinal {
				t.Fatalf("receipt %q after its window, want final", st)
			}
		})
	}
	t.Run("late move", func(t *testing.T) {
		h, id, did := start(t)
		var d Dispute
		h.query("dispute/"+did.String(), &d)
		h.blocksUntil(d.Deadline)
		h.fails(move(h, "carol", did, "bisect"), ErrDeadline) // at deadline+1
		h.query("dispute/"+did.String(), &d)
		if d.Status != DisputeWorkerLost || d.WorkerFault != dispute.FaultTimeout || d.ChallengerFault != "" || d.VoidFault != "" || h.receiptRecord(id).Status != StatusSlashed {
			t.Fatalf("silent worker did not lose: %+v", d)
		}
	})
	t.Run("void", func(t *testing.T) {
		h, id, did := start(t)
		w, c := h.stakeOf("carol").Bonded, h.stakeOf("dave").Bonded
		h.ok(move(h, "carol", did, "referee:void"))
		if h.receiptRecord(id).Status != StatusPublished || h.stakeOf("carol").Bonded != w || h.stakeOf("dave").Bonded != c {
			t.Fatal("a void dispute punished someone")
		}
		var d Dispute
		h.query("dispute/"+did.String(), &d)
		if d.Status != DisputeVoid || d.VoidFault != dispute.FaultRefereeFailed || d.WorkerFault != "" || d.ChallengerFault != "" {
			t.Fatalf("void dispute %+v, want referee_failed", d)
		}
	})
	t.Run("window closed", func(t *testing.T) {
		h := newHarness(t, p)
		setupMarket(t, h, 1)
		id := h.publish(1)
		h.blocksUntil(h.receiptRecord(id).WindowEnd - 1)
		h.fails(h.tx("dave", &MsgOpenDispute{ReceiptID: id, Commitment: []byte("commit")}), ErrDeadline)
	})
}

// TestReceiptStatuses follows receipts through the statuses a client
// shows (ReceiptRecord.Shown) and checks that a receipt settled by its
// audit while a dispute is open stays settled when the dispute ends.
func TestReceiptStatuses(t *testing.T) {
	p := auditParams()
	p.ChallengeWindow = 30
	shown := func(h *harness, id Hash) string { return h.receiptRecord(id).Shown() }
	t.Run("published, audited, final", func(t *testing.T) {
		h := newHarness(t, p)
		setupMarket(t, h, 1)
		id := h.publish(1)
		if got := shown(h, id); got != ShownPublished {
			t.Fatalf("after publication: %s", got)
		}
		h.block()
		a := h.audit(id)
		if got, r := shown(h, id), h.receiptRecord(id); got != ShownPublished || r.Audit != AuditPending || !r.Audited {
			t.Fatalf("audit pending: %s %+v", got, r)
		}
		h.ok(h.tx("carol", &MsgPostOpenings{ReceiptID: id, Openings: goodOpenings(a.Seed, a.Cells)}))
		if got := shown(h, id); got != ShownAudited {
			t.Fatalf("audit passed: %s", got)
		}
		h.blocksUntil(h.receiptRecord(id).WindowEnd)
		if got := shown(h, id); got != ShownFinal {
			t.Fatalf("after the window: %s", got)
		}
	})
	t.Run("challenged, slashed by a missed audit, dispute lost by the challenger", func(t *testing.T) {
		h := newHarness(t, p)
		setupMarket(t, h, 1)
		id := h.publish(1)
		res := h.ok(h.tx("dave", &MsgOpenDispute{ReceiptID: id, Commitment: []byte("commit")}))
		var did Hash
		for _, a := range res.Events[1].Attrs {
			if a.Key == "disputeId" {
				did, _ = ParseHash(a.Value)
			}
		}
		if got := shown(h, id); got != ShownChallenged {
			t.Fatalf("disputed: %s", got)
		}
		// The audit was selected in the publication's next block; the
		// worker keeps playing the dispute but never opens the audit.
		h.blocksUntil(h.height + 1)
		a := h.audit(id)
		for h.height <= a.Deadline {
			h.ok(h.tx("carol", &MsgDisputeMove{DisputeID: did, Message: []byte("bisect")}))
			h.ok(h.tx("dave", &MsgDisputeMove{DisputeID: did, Message: []byte("bisect")}))
		}
		if got, r := shown(h, id), h.receiptRecord(id); got != ShownSlashed || r.Audit != AuditMissed {
			t.Fatalf("missed audit: %s %+v", got, r)
		}
		carol := h.balance("carol")
		h.ok(h.tx("carol", &MsgDisputeMove{DisputeID: did, Message: []byte("referee:worker")}))
		h.blocksUntil(h.receiptRecord(id).WindowEnd + 1)
		if got := shown(h, id); got != ShownSlashed || h.balance("carol") > carol-1+mulBps(mulBps(10_000, p.SlashDisputeBps), p.WinnerShareBps) {
			t.Fatalf("a slashed receipt came back as %s (worker balance %d -> %d)", got, carol, h.balance("carol"))
		}
	})
}

// holder holds the listed models.
type holder []Hash

func (h holder) Holds(id Hash) bool { return slices.Contains(h, id) }

// TestMissingModels: a model is needed while one of its receipts is in its
// challenge window (published or challenged), and only in committed state.
func TestMissingModels(t *testing.T) {
	h := newHarness(t, testParams())
	setupMarket(t, h, 1)
	other := Hash{7}
	h.ok(h.tx("bob", &MsgRegisterModel{ModelID: other, Name: "unused", SpecVersion: 1}))
	h.l.Store().TakeDirty() // commit
	if got := h.l.MissingModels(holder{}.Holds); len(got) != 0 {
		t.Fatalf("models needed without receipts: %+v", got)
	}
	id := h.publish(1)
	if got := h.l.MissingModels(holder{}.Holds); len(got) != 0 {
		t.Fatalf("an uncommitted receipt counts: %+v", got)
	}
	h.l.Store().TakeDirty()
	if got := h.l.MissingModels(holder{}.Holds); len(got) != 1 || got[0].ModelID != testModel || got[0].Name != "stories260K" {
		t.Fatalf("missing %+v, want the receipt's model", got)
	}
	if got := h.l.MissingModels(holder{testModel}.Holds); len(got) != 0 {
		t.Fatalf("held model reported missing: %+v", got)
	}
	h.blocksUntil(h.receiptRecord(id).WindowEnd)
	h.l.Store().TakeDirty()
	if got := h.l.MissingModels(holder{}.Holds); len(got) != 0 {
		t.Fatalf("a final receipt still needs its model: %+v", got)
	}
}

// An "upto" escrow (pricePerToken set) pays the receipt's tokens at that
// price, at most its fee; the rest returns to the requester when the
// receipt is published, and the worker is paid the rest at finality.
func TestUptoEscrow(t *testing.T) {
	p := testParams()
	h := newHarness(t, p)
	setupMarket(t, h, 500)
	// signedReceipt: 3 prompt and 2 output tokens.
	for _, tc := range []struct {
		name       string
		price, fee uint64
		nonce      byte
		want       uint64 // what the receipt costs
	}{
		{"refund", 10, 500, 2, 50},
		{"capped at the fee", 1000, 500, 3, 500},
		{"exactly the fee", 100, 500, 4, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a Account
			h.query("account/"+testAddr("alice").String(), &a)
			h.ok(h.tx("alice", &MsgOpenEscrow{Worker: testAddr("carol"), ModelID: testModel, Fee: tc.fee, Request: testRequest(tc.nonce), AgentID: 1, PricePerToken: tc.price}))
			esc := EscrowID(testAddr("alice"), a.Nonce)
			alice := h.balance("alice")
			rcpt, id := signedReceipt(t, "carol", testModel, tc.nonce)
			h.ok(h.tx("carol", &MsgPublishReceipt{EscrowID: esc, Receipt: rcpt}))
			if got := h.balance("alice"); got != alice+tc.fee-tc.want {
				t.Errorf("requester balance %d after publication, want %d + refund %d", got, alice, tc.fee-tc.want)
			}
			var e Escrow
			h.query("escrow/"+esc.String(), &e)
			if e.Fee != tc.want || e.PricePerToken != tc.price || e.ReceiptID != id {
				t.Errorf("escrow %+v, want fee %d", e, tc.want)
			}
			var settled []EscrowSettled
			for _, ev := range decodeAll(t, h.events, EventEscrowSettled, DecodeEscrowSettled) {
				if ev.EscrowID == esc {
					settled = append(settled, ev)
				}
			}
			if want := (EscrowSettled{EscrowID: esc, Requester: testAddr("alice"), Fee: tc.want, Refund: tc.fee - tc.want}); tc.want < tc.fee && (len(settled) != 1 || settled[0] != want) {
				t.Errorf("escrow_settled events %+v, want %+v", settled, want)
			} else if tc.want == tc.fee && len(settled) != 0 {
				t.Errorf("escrow_settled events %+v for a receipt that cost the whole fee", settled)
			}
			carol := h.balance("carol")
			h.blocksUntil(h.receiptRecord(id).WindowEnd)
			if h.receiptRecord(id).Status != StatusFinal {
				t.Fatal("not final")
			}
			// The worker gets the fee less the protocol fee (and a reward
			// of at most rewardCapBps of it).
			burn := mulBps(tc.want, p.ProtocolFeeBps)
			if got := h.balance("carol"); got < carol+tc.want-burn || got > carol+tc.want-burn+mulBps(burn, p.RewardCapBps) {
				t.Errorf("worker got %d, want %d less the protocol fee %d", got-carol, tc.want, burn)
			}
		})
	}
}

// A receipt whose generation ended early (a stop string, a requester who
// hung up) has fewer steps than its request asked for: publishReceipt
// checks the escrow's request at requestSteps, never below the receipt's
// own steps.
func TestPublishRequestSteps(t *testing.T) {
	h := newHarness(t, testParams())
	setupMarket(t, h, 500)
	// The request asked for 9 steps; the receipt (4 steps) ended early.
	asked := testReceipt(testModel, 5)
	asked.Sampling.Steps = 9
	var a Account
	h.query("account/"+testAddr("alice").String(), &a)
	h.ok(h.tx("alice", &MsgOpenEscrow{Worker: testAddr("carol"), ModelID: testModel, Fee: 100, Request: RequestHash(asked)}))
	esc := EscrowID(testAddr("alice"), a.Nonce)
	rcpt, id := signedReceipt(t, "carol", testModel, 5)
	h.fails(h.tx("carol", &MsgPublishReceipt{EscrowID: esc, Receipt: rcpt}), ErrInvalid)
	h.fails(h.tx("carol", &MsgPublishReceipt{EscrowID: esc, Receipt: rcpt, RequestSteps: 8}), ErrInvalid)
	h.fails(h.tx("carol", &MsgPublishReceipt{EscrowID: esc, Receipt: rcpt, RequestSteps: 3}), ErrInvalid)
	h.ok(h.tx("carol", &MsgPublishReceipt{EscrowID: esc, Receipt: rcpt, RequestSteps: 9}))
	if r := h.receiptRecord(id); r.Status != StatusPublished || r.EscrowID != esc {
		t.Fatalf("record %+v", r)
	}
}
