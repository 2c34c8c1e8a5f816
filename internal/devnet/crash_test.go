package devnet

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/chat"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/worker"
)

// TestOutboxRestart stops a devnet with outbox entries at each point of an
// escrow's life, as a crash leaves them (the in-process node's mempool
// dies with it), and starts it again on the same directory:
//
//   - A: the escrow transaction was recorded and never sent (nonce free);
//   - B: recorded, never sent, and its nonce went to another escrow (C's):
//     it can never commit;
//   - C: the escrow committed, the receipt was never sent;
//   - D: an outbox written before escrow transactions were recorded, with
//     the id of an escrow that never opened (what a crash left before).
//
// Every receipt is published exactly once, each against one escrow of
// its own request, and the requester pays each fee (and one escrow
// transaction fee) exactly once: C's escrow is adopted, A's transaction is
// sent again (the same bytes, its nonce), B and D get new escrows.
func TestOutboxRestart(t *testing.T) {
	dir := t.TempDir()
	// Receipts stay published (their escrows readable) while the test
	// looks at them.
	p := DevParams()
	p.ChallengeWindow = 150
	o := Options{Dir: dir, Addr: "127.0.0.1:0", BlockInterval: 200 * time.Millisecond, Threads: 1, Logger: testLogger(t), Params: &p}
	d, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	ctx := context.Background()
	user, _ := ledger.AddressOf(d.User.Public)
	var params ledger.Params
	if _, err := worker.QueryJSON(ctx, d.Client, "params", &params); err != nil {
		t.Fatal(err)
	}
	fee := params.MinEscrowFee + 7
	type entry struct {
		p   worker.Pending
		req ledger.Hash
	}
	var es [4]entry
	for i := range es {
		res, err := d.Worker.Generate(ctx, worker.Request{Model: d.Model.Name, Segments: []chat.Segment{{Text: "The cat", BOS: true}},
			MaxTokens: 4, Nonce: []byte{byte(i)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		req, err := ledger.ReceiptRequest(res.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		es[i] = entry{worker.Pending{ReceiptID: res.ReceiptID, Receipt: res.Receipt, Requester: user.String(), Fee: fee}, req}
	}
	if es[0].p.ReceiptID == es[1].p.ReceiptID {
		t.Fatal("two nonces, one receipt")
	}
	acct, err := d.Client.Account(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	n := acct.Nonce
	open := func(e entry, nonce uint64) *ledger.Tx {
		tx, err := d.Client.Sign(ctx, d.User.Private, &ledger.MsgOpenEscrow{Worker: d.Chain.Address(),
			ModelID: ledger.Hash(d.Model.ID), Fee: fee, Request: e.req, AgentID: d.Chain.AgentID()}, 1, int64(nonce))
		if err != nil {
			t.Fatal(err)
		}
		return tx
	}
	txC := open(es[2], n)
	if res, err := d.Client.BroadcastCommit(ctx, txC); err != nil || res.Code != 0 {
		t.Fatalf("opening C's escrow: %v %+v", err, res)
	}
	txB, txA := open(es[1], n), open(es[0], n+1)
	balBefore := balance(t, d, user)
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	for i, tx := range []*ledger.Tx{txA, txB, txC, nil} {
		p := es[i].p
		if tx != nil {
			p.EscrowTx, p.EscrowID = tx.Encode(), ledger.EscrowID(user, tx.Nonce)
		} else {
			p.EscrowID = ledger.EscrowID(user, n+1000)
		}
		b, _ := json.Marshal(p)
		if err := os.WriteFile(filepath.Join(dir, "worker", "outbox", p.ReceiptID+".json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	d2 := start(t, o)
	for _, e := range es {
		waitStatus(t, d2, e.p.ReceiptID, 90*time.Second, ledger.StatusPublished)
	}
	escrows := map[ledger.Hash]bool{}
	for i, e := range es {
		var rec ledger.ReceiptRecord
		if _, err := worker.QueryJSON(ctx, d2.Client, "receipt/"+e.p.ReceiptID, &rec); err != nil {
			t.Fatal(err)
		}
		var esc ledger.Escrow
		if found, err := worker.QueryJSON(ctx, d2.Client, "escrow/"+rec.EscrowID.String(), &esc); err != nil || !found {
			t.Fatalf("receipt %d: escrow %s: %v", i, rec.EscrowID, err)
		}
		if esc.Request != e.req || esc.Requester != user || esc.Fee != fee || escrows[rec.EscrowID] {
			t.Fatalf("receipt %d published against %+v", i, esc)
		}
		escrows[rec.EscrowID] = true
	}
	if got, want := escrowOf(t, d2, es[2].p.ReceiptID), ledger.EscrowID(user, n); got != want {
		t.Errorf("C published against %s, not its committed escrow %s", got, want)
	}
	if got := escrowOf(t, d2, es[1].p.ReceiptID); got == ledger.EscrowID(user, n) {
		t.Errorf("B published against C's escrow")
	}
	// A, B and D cost their fee and one escrow transaction each; nothing
	// else left the account (a second escrow would have).
	if got, want := balance(t, d2, user), balBefore-3*(fee+1); got != want {
		t.Errorf("requester balance %d, want %d (%d before the restart)", got, want, balBefore)
	}
	for deadline := time.Now().Add(30 * time.Second); d2.Chain.PendingCount() != 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond) // the worker sees the publication a block later
	}
	if d2.Chain.PendingCount() != 0 || d2.Chain.Stats().Failed != 0 {
		t.Errorf("outbox after the restart: %+v", d2.Chain.Stats())
	}
}

func escrowOf(t *testing.T, d *Devnet, id string) ledger.Hash {
	t.Helper()
	var rec ledger.ReceiptRecord
	if _, err := worker.QueryJSON(context.Background(), d.Client, "receipt/"+id, &rec); err != nil {
		t.Fatal(err)
	}
	return rec.EscrowID
}

// TestFollowerResumes audits every receipt and stops the devnet right
// after an audit was selected (and again right after a burst of requests),
// before the worker's follower may have seen it or its openings may have
// committed; after each restart the follower resumes from the block it
// had handled, so every audit is answered: every audit passes, none is
// missed, and the worker is never slashed or jailed.
func TestFollowerResumes(t *testing.T) {
	dir := t.TempDir()
	p := DevParams()
	p.AuditRateBps = 10000
	// An opening window (20 s) wide enough that a loaded test machine,
	// restarting the whole devnet under the race detector, cannot make an
	// honest worker miss it; a follower that starts at the current height
	// after a restart misses the audit whatever the window.
	p.OpeningWindow, p.ChallengeWindow = 100, 150
	o := Options{Dir: dir, Addr: "127.0.0.1:0", BlockInterval: 200 * time.Millisecond, Threads: 1, Logger: testLogger(t), Params: &p}
	d, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	ctx := context.Background()
	var ids []string
	for round := range 2 {
		// A receipt published by hand: its audit is selected in the next
		// block; stop as soon as that block is committed.
		res, err := d.Worker.Generate(ctx, worker.Request{Model: d.Model.Name, Segments: []chat.Segment{{Text: "The dog", BOS: true}},
			MaxTokens: 4, Nonce: []byte{byte(round)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := ledger.ReceiptRequest(res.Receipt)
		// The user's sender (the gateway's) shares the account: commit
		// through one of its own.
		us, err := worker.NewSender(d.Client, d.User.Private, 1)
		if err != nil {
			t.Fatal(err)
		}
		nonce, err := us.Send(ctx, &ledger.MsgOpenEscrow{Worker: d.Chain.Address(),
			ModelID: ledger.Hash(d.Model.ID), Fee: p.MinEscrowFee, Request: req})
		if err != nil {
			t.Fatalf("escrow: %v", err)
		}
		user, _ := ledger.AddressOf(d.User.Public)
		r, err := d.Chain.Sender().Commit(ctx, &ledger.MsgPublishReceipt{EscrowID: ledger.EscrowID(user, nonce), Receipt: res.Receipt})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ReceiptID)
		for h, _ := d.Client.Height(ctx); h <= r.Height; h, _ = d.Client.Height(ctx) {
			time.Sleep(5 * time.Millisecond)
		}
		if err := d.Stop(); err != nil {
			t.Fatal(err)
		}
		d = start(t, o)
		// A burst through the gateway, stopped as soon as it is answered.
		for i := range 4 {
			code, body := post(t, d, d.APIKey, "/v1/completions", `{"model":"verdict-tiny","prompt":"The cat","max_tokens":6,"seed":`+string(rune('0'+i))+`}`)
			if code != 200 {
				t.Fatalf("status %d: %s", code, body)
			}
			var cr chatResponse
			json.Unmarshal(body, &cr)
			ids = append(ids, cr.Verdict.ReceiptID)
		}
		time.Sleep(300 * time.Millisecond)
		if err := d.Stop(); err != nil {
			t.Fatal(err)
		}
		d = start(t, o)
	}
	for _, id := range ids {
		var rec ledger.ReceiptRecord
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			rec = ledger.ReceiptRecord{}
			if _, err := worker.QueryJSON(ctx, d.Client, "receipt/"+id, &rec); err != nil {
				t.Fatal(err)
			}
			if rec.Audited && rec.Audit != ledger.AuditPending {
				break
			}
		}
		if rec.Audit != ledger.AuditPassed || rec.Status == ledger.StatusSlashed {
			t.Errorf("receipt %s: %+v", id, rec)
		}
	}
	t.Logf("worst audit after the last restart: %d blocks from selection to resolution (window %d)", d.Chain.Stats().WorstAuditBlocks, p.OpeningWindow)
	var st ledger.Stake
	worker.QueryJSON(ctx, d.Client, "stake/"+d.Chain.Address().String(), &st)
	if st.JailedUntil != 0 || st.Slashed != 0 || st.Bonded < 10*p.MinWorkerStake {
		t.Errorf("honest worker's stake after restarts: %+v", st)
	}
}
