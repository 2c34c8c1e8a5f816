package worker

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/ledger/disputegame"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/outbox"
	"github.com/verdictnet/verdict/internal/receipt"
)

// deadLedger is a client of an address where nothing listens.
func deadLedger(t *testing.T) *client.Client {
	c, err := client.New("tcp://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestOutboxSurvivesLedgerOutage submits receipts while the ledger is
// unreachable: Submit succeeds (the receipt is on disk), publishing fails
// and backs off without losing anything, a second submission of the same
// id is a no-op, and a new Chain on the same directory (a restart) finds
// every receipt still pending.
func TestOutboxSurvivesLedgerOutage(t *testing.T) {
	w := testWorker(t)
	dir := t.TempDir()
	escrows := 0
	cfg := ChainConfig{Client: deadLedger(t), RPC: "tcp://127.0.0.1:1", Dir: dir, Poll: 10 * time.Millisecond,
		Escrow: func(*Pending, ledger.Address, ledger.Hash, uint64) (ledger.Msg, *Sender, error) {
			escrows++
			return nil, nil, errors.New("unreachable")
		}}
	c, err := NewChain(w, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i, p := range []string{"Once upon a time", "The little dog"} {
		res, err := w.Generate(context.Background(), textReq(p, 4+i), nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ReceiptID)
		for range 2 {
			if err := c.Submit(Pending{ReceiptID: res.ReceiptID, Receipt: res.Receipt, Requester: "someone", Fee: 5}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := c.PendingCount(); n != 2 {
		t.Fatalf("%d pending, want 2", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	c.publish(ctx)
	c.publish(ctx)
	cancel()
	for _, id := range ids {
		if !c.IsPending(id) {
			t.Fatalf("receipt %s left the outbox while the ledger was down", id)
		}
		if _, err := os.Stat(filepath.Join(dir, "outbox", id+".json")); err != nil {
			t.Fatal(err)
		}
	}
	c2, err := NewChain(w, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if !c2.IsPending(id) {
			t.Fatalf("receipt %s lost across a restart", id)
		}
		// The failed attempts are on disk: a restart does not reset the
		// give-up limit.
		r2, _ := c2.box.Record(id)
		r1, _ := c.box.Record(id)
		if got, want := r2.Attempts, r1.Attempts; got != want || got == 0 {
			t.Fatalf("receipt %s: %d attempts after the restart, %d before", id, got, want)
		}
	}
	if err := c.Submit(Pending{ReceiptID: "not-an-id"}); err == nil {
		t.Fatal("accepted a bad receipt id")
	}
	// A corrupt entry is reported, naming the file.
	bad := filepath.Join(dir, "outbox", ids[0]+".json")
	os.WriteFile(bad, []byte("{"), 0o644)
	if _, err := NewChain(w, cfg); err == nil {
		t.Fatal("loaded a corrupt outbox")
	}
}

// TestFileStore stores receipts durably and finds them again.
func TestFileStore(t *testing.T) {
	dir := t.TempDir()
	s, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	id := "00000000000000000000000000000000000000000000000000000000000000ab"
	if _, err := s.Get(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get of a missing receipt: %v", err)
	}
	if err := s.Put(id, []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(id, []byte(`{"a":2}`)); err != nil {
		t.Fatal(err)
	}
	s2, _ := NewFileStore(dir)
	if b, err := s2.Get(id); err != nil || string(b) != `{"a":1}` {
		t.Fatalf("got %q, %v; want the first copy", b, err)
	}
	for _, bad := range []string{"../x", "AB", ""} {
		if err := s.Put(bad, nil); err == nil {
			t.Errorf("Put(%q) accepted", bad)
		}
		if _, err := s.Get(bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q): %v", bad, err)
		}
	}
}

// TestPlayerDispute plays a real dispute between an honest worker and a
// challenger whose trace differs at one leaf, through Player.Move on the
// transcripts the ledger's dispute game stores: the challenger loses. The
// worker holds the tree alone and regenerates the disputed leaf's inputs
// once (Player.Reload), as it does in Chain.
func TestPlayerDispute(t *testing.T) {
	w := testWorker(t)
	res, err := w.Generate(context.Background(), textReq("Once upon a time", 6), nil)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := parseReceipt(res.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := w.Trace(context.Background(), rc)
	if err != nil {
		t.Fatal(err)
	}
	N := tr.Tree().Len()
	bad := N - 1 // a final state: its inputs are opened
	hs := make([]merkle.Hash, N)
	for i := range hs {
		hs[i] = tr.Tree().Leaf(i)
	}
	v, _ := tr.LeafValue(bad)
	lie := append([]byte(nil), v...)
	lie[0] ^= 1
	hs[bad] = merkle.LeafHash(lie)
	ltree := merkle.NewTree(hs)
	root := ltree.Root()
	setup := TraceSetup(w.Model(), w.ModelID())
	g := disputegame.Game{Setup: setup}
	state, err := g.Start(res.Receipt, root[:], 1, 5)
	if err != nil {
		t.Fatal(err)
	}
	// The worker keeps the tree alone and regenerates the values of the
	// disputed leaf's inputs once, when the game reaches it.
	lazy, err := w.TraceLeaves(context.Background(), rc, []int{})
	if err != nil {
		t.Fatal(err)
	}
	reloads := 0
	reload := func(ctx context.Context, _ *ledger.Dispute, leaves []int) (func(int) ([]byte, error), error) {
		reloads++
		kept, err := w.TraceLeaves(ctx, rc, leaves)
		if err != nil {
			return nil, err
		}
		return kept.LeafValue, nil
	}
	if _, err := lazy.LeafValue(0); err == nil {
		t.Fatal("the tree-only trace kept a value")
	}
	defer func() {
		if reloads != 1 {
			t.Errorf("the worker regenerated values %d times, want once", reloads)
		}
	}()
	players := map[ledger.Side]*Player{
		ledger.SideWorker: {Side: ledger.SideWorker, Setup: setup, Timeout: 5, Responder: &dispute.Responder{Party: dispute.A, Tree: lazy.Tree(), Value: lazy.LeafValue}, Reload: reload},
		ledger.SideChallenger: {Side: ledger.SideChallenger, Setup: setup, Timeout: 5, Responder: &dispute.Responder{Party: dispute.B, Tree: ltree, Value: func(i int) ([]byte, error) {
			if i == bad {
				return lie, nil
			}
			return tr.LeafValue(i)
		}}},
	}
	h := uint64(1)
	for round := 0; round < 64; round++ {
		st, err := g.Status(state)
		if err != nil {
			t.Fatal(err)
		}
		if st.Done {
			if !st.Lost[1] || st.Lost[0] {
				t.Fatalf("outcome %+v: want the challenger to lose", st)
			}
			return
		}
		h++
		moved := false
		for _, side := range []ledger.Side{ledger.SideWorker, ledger.SideChallenger} {
			msg, ok, err := players[side].Move(context.Background(), &ledger.Dispute{Status: ledger.DisputeOpen, Game: state})
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				continue
			}
			if state, err = g.Step(state, side, msg, h); err != nil {
				t.Fatalf("round %d, %s: %v", round, side, err)
			}
			moved = true
		}
		if !moved {
			t.Fatalf("round %d: nobody moved", round)
		}
	}
	t.Fatal("dispute did not end")
}

// FuzzPlayerMove feeds arbitrary transcripts to a player: errors, never a
// panic.
func FuzzPlayerMove(f *testing.F) {
	f.Add([]byte(`{"receipt":"","commitment":"","start":1,"entries":[]}`))
	f.Add([]byte(`{"entries":[{"height":3,"from":1,"msg":"e30="}]}`))
	f.Add([]byte(`[]`))
	w := testWorker(f)
	setup := TraceSetup(w.Model(), w.ModelID())
	f.Fuzz(func(t *testing.T, game []byte) {
		p := &Player{Side: ledger.SideWorker, Setup: setup, Timeout: 5}
		p.Move(context.Background(), &ledger.Dispute{Status: ledger.DisputeOpen, Game: game})
	})
}

// TestWatermark: the follower resumes at the first block with a task
// still running, whatever order tasks end in.
func TestWatermark(t *testing.T) {
	w := &watermark{open: map[int64]int{}}
	if got := w.handled(10); got != 11 {
		t.Fatalf("after block 10: %d", got)
	}
	w.begin(11)
	w.begin(11)
	if got := w.handled(11); got != 11 {
		t.Fatalf("block 11 has tasks: %d", got)
	}
	w.begin(12)
	if got := w.handled(12); got != 11 {
		t.Fatalf("%d", got)
	}
	w.handled(13)
	if got := w.end(12); got != 11 {
		t.Fatalf("block 12 done, 11 not: %d", got)
	}
	if got := w.end(11); got != 11 {
		t.Fatalf("one task of 11 left: %d", got)
	}
	if got := w.end(11); got != 14 {
		t.Fatalf("all done: %d, want 14", got)
	}
	// Resuming: low starts at the saved height, tasks of earlier replays
	// keep it.
	r := &watermark{low: 20, open: map[int64]int{}}
	r.begin(20)
	if got := r.handled(20); got != 20 {
		t.Fatalf("resumed: %d", got)
	}
	if got := r.end(20); got != 21 {
		t.Fatalf("resumed, done: %d", got)
	}
}

// TestResumeFloor: after an outage the follower reads from the oldest
// block whose audits or dispute queries can still be answered.
func TestResumeFloor(t *testing.T) {
	p := ledger.Params{OpeningWindow: 10, MoveWindow: 8}
	if got := resumeFloor(1000, p); got != 989 {
		t.Fatalf("floor %d, want 989", got)
	}
	// An audit selected at s is due at s+10: at height 1000 it can still
	// land in block 1001 when s >= 991; every such block is read.
	if floor, oldest := resumeFloor(1000, p), int64(1000+1-p.OpeningWindow); floor > oldest {
		t.Fatalf("floor %d skips an audit selected at %d that can still be answered", floor, oldest)
	}
	if got := resumeFloor(5, p); got > 0 {
		t.Fatalf("young chain: floor %d", got)
	}
}

// refusingLedger is a batchSender that answers as client.Sender.SendBatch
// does against the ledger (TestSendBatch in internal/devnet): the reveals
// of the receipts in refuse are refused for their own reason, and once one
// transaction of a batch is refused every later one is refused for its
// nonce; stale refuses a whole batch for its nonce first (a restart).
type refusingLedger struct {
	refuse   map[ledger.Hash]bool
	stale    bool
	batches  int
	tried    map[ledger.Hash]bool
	revealed []ledger.Hash
}

func (l *refusingLedger) SendBatchUrgent(_ context.Context, msgs []ledger.Msg, _ func([]*ledger.Tx) error) ([]*ledger.Tx, []error) {
	l.batches++
	errs := make([]error, len(msgs))
	refused := l.stale
	l.stale = false
	for i, m := range msgs {
		id := m.(*ledger.MsgRevealAudit).ReceiptID
		l.tried[id] = true
		switch {
		case refused:
			errs[i] = &client.RejectedError{Code: ledger.Code(ledger.ErrNonce), Log: "wrong nonce"}
		case l.refuse[id]:
			errs[i] = &client.RejectedError{Code: ledger.Code(ledger.ErrDeadline), Log: "deadline passed"}
			refused = true
		default:
			l.revealed = append(l.revealed, id)
		}
	}
	return make([]*ledger.Tx, len(msgs)), errs
}

// TestRevealRefusalInBatch reveals the audit secrets of a block's
// receipts in one batch of which two are refused: the others, refused for
// their nonce only, go in the next batches, not left to be audited; after
// a stale nonce the whole batch goes again; a receipt whose reveal window
// has passed at the ledger's height (which the follower may lag) is not
// sent. Before, one refusal left every later receipt of the batch
// unrevealed (TestCrashSIGKILL's logs after a restart: 65 at once, each
// then audited).
func TestRevealRefusalInBatch(t *testing.T) {
	w := testWorker(t)
	c, err := NewChain(w, ChainConfig{Client: deadLedger(t), RPC: "tcp://127.0.0.1:1", Dir: t.TempDir(), Poll: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
		Escrow: func(*Pending, ledger.Address, ledger.Hash, uint64) (ledger.Msg, *Sender, error) {
			return nil, nil, errors.New("unused")
		}})
	if err != nil {
		t.Fatal(err)
	}
	c.params.RevealWindow = 2
	requester, err := NewSender(deadLedger(t), w.key.Private, 1)
	if err != nil {
		t.Fatal(err)
	}
	const published = 20
	var ids []ledger.Hash
	for i := range 6 {
		ids = append(ids, ledger.Hash{byte(i + 1)})
	}
	late := ledger.Hash{0xff} // published 3 blocks earlier: its window passed
	for _, tc := range []struct {
		name  string
		stale bool
		tip   int64 // the ledger's height
		want  []ledger.Hash
	}{
		{"two refused", false, published + 1, []ledger.Hash{ids[0], ids[2], ids[4], ids[5]}},
		{"stale nonce", true, published + 1, []ledger.Hash{ids[0], ids[2], ids[4], ids[5]}},
		{"follower behind", false, published + 3, nil}, // every window passed
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, id := range append(ids, late) {
				c.reveals[id.String()] = requester
				c.revealAt[id.String()] = published
			}
			c.revealAt[late.String()] = published - 3
			l := &refusingLedger{refuse: map[ledger.Hash]bool{ids[1]: true, ids[3]: true, late: true}, stale: tc.stale, tried: map[ledger.Hash]bool{}}
			c.revealer = l
			c.tip = func(context.Context) (int64, error) { return tc.tip, nil }
			c.revealAudits(context.Background(), published+1)
			if !slices.Equal(l.revealed, tc.want) {
				t.Fatalf("revealed %v in %d batches, want %v", l.revealed, l.batches, tc.want)
			}
			if l.tried[late] || tc.want == nil && len(l.tried) > 0 {
				t.Fatalf("a reveal past its window was sent: %v", l.tried)
			}
			if len(c.reveals) != 0 || len(c.revealAt) != 0 {
				t.Fatalf("%d reveals left", len(c.reveals))
			}
		})
	}
}

// TestRestartRestoresReveals restarts a Chain on an outbox holding
// receipts whose escrow transactions were signed with an audit commitment:
// the new Chain reveals the secrets of those whose payer the Escrower
// still names with the committed key, not of one signed by another key
// (whose secret it cannot know). Before, every receipt in the outbox at a
// crash went unrevealed, and was audited.
func TestRestartRestoresReveals(t *testing.T) {
	w := testWorker(t)
	dir := t.TempDir()
	payerKey, err := keys.GenerateKey(rand.NewChaCha8([32]byte{21}))
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := keys.GenerateKey(rand.NewChaCha8([32]byte{22}))
	if err != nil {
		t.Fatal(err)
	}
	payer, err := NewSender(deadLedger(t), payerKey.Private, 1)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewSender(deadLedger(t), otherKey.Private, 1)
	if err != nil {
		t.Fatal(err)
	}
	store, err := outbox.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i, signer := range []*Sender{payer, other, payer} {
		res, err := w.Generate(context.Background(), textReq("Once upon a time", 3+i), nil)
		if err != nil {
			t.Fatal(err)
		}
		rid, _ := ledger.ParseHash(res.ReceiptID)
		rec := outbox.Record{ReceiptID: res.ReceiptID, Receipt: res.Receipt, Requester: "payer", Fee: 5}
		if i < 2 {
			m := &ledger.MsgOpenEscrow{Worker: ledger.Address{1}, ModelID: ledger.Hash{2}, Fee: 5, Request: ledger.Hash{3}, AuditCommit: signer.AuditCommit(rid)}
			tx := &ledger.Tx{ChainID: "test", Fee: 1, Nonce: uint64(i), Msg: m}
			tx.Sign(map[*Sender]*keys.Key{payer: payerKey, other: otherKey}[signer].Private)
			rec.EscrowTx, rec.EscrowID = tx.Encode(), ledger.EscrowID(tx.Signer, tx.Nonce)
		}
		if err := store.Save(rec); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ReceiptID)
	}
	c, err := NewChain(w, ChainConfig{Client: deadLedger(t), RPC: "tcp://127.0.0.1:1", Dir: dir, Poll: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
		Escrow: func(p *Pending, _ ledger.Address, _ ledger.Hash, _ uint64) (ledger.Msg, *Sender, error) {
			if p.Requester != "payer" {
				return nil, nil, errors.New("unknown payer")
			}
			return nil, payer, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	// The first: signed by the payer's key; the second by another key;
	// the third has no escrow yet (revealed once it is opened).
	for i, want := range []bool{true, false, false} {
		if got := c.reveals[ids[i]] == payer; got != want || (!want && c.reveals[ids[i]] != nil) {
			t.Errorf("receipt %d: reveal restored %v, want %v", i, got, want)
		}
		if !c.IsPending(ids[i]) {
			t.Errorf("receipt %d left the outbox", i)
		}
	}
}

// TestReceiptLifeEnds: the worker watches its published receipts until
// their life on the ledger ends: paid (receipt_final), or slashed by a
// failed or missed audit or by a dispute it lost (or both parties lost),
// which the dispute_settled event names by the dispute alone. A slashed
// receipt was watched for good (it never becomes final). A receipt whose
// dispute the worker won, or whose audit passed, stays watched until it
// is final; other workers' disputes leave the watch alone; no dispute is
// remembered once settled.
func TestReceiptLifeEnds(t *testing.T) {
	c, err := NewChain(testWorker(t), ChainConfig{Client: deadLedger(t), Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	id := func(s string) string { return ledger.Hash(sha256.Sum256([]byte(s))).String() }
	for _, r := range []string{"final", "audit failed", "audit missed", "dispute lost", "both lost", "dispute won", "void", "audit passed", "other's dispute"} {
		c.watch[id(r)] = watched{r: &receipt.Receipt{}}
	}
	ev := func(typ ledger.EventType, kv ...string) ledger.Event {
		e := ledger.Event{Type: typ}
		for i := 0; i+1 < len(kv); i += 2 {
			e.Attrs = append(e.Attrs, ledger.Attr{Key: ledger.AttrKey(kv[i]), Value: kv[i+1]})
		}
		return e
	}
	worker, other := c.Address().String(), ledger.Address{1}.String()
	opened := func(dispute, receipt, w string) ledger.Event {
		return ev(ledger.EventDisputeOpened, "disputeId", id(dispute), "receiptId", id(receipt), "challenger", other, "worker", w)
	}
	settled := func(dispute, status string) ledger.Event {
		return ev(ledger.EventDisputeSettled, "disputeId", id(dispute), "status", status, "workerFault", "", "challengerFault", "", "voidFault", "", "reason", "")
	}
	for _, e := range []ledger.Event{
		ev(ledger.EventReceiptFinal, "receiptId", id("final"), "worker", worker, "fee", "10", "protocolFee", "1"),
		ev(ledger.EventAuditFailed, "receiptId", id("audit failed"), "error", "bad opening"),
		ev(ledger.EventAuditMissed, "receiptId", id("audit missed")),
		ev(ledger.EventAuditPassed, "receiptId", id("audit passed")),
		opened("d1", "dispute lost", worker),
		opened("d2", "both lost", worker),
		opened("d3", "dispute won", worker),
		opened("d4", "void", worker),
		opened("d5", "other's dispute", other),
		settled("d1", ledger.DisputeWorkerLost),
		settled("d2", ledger.DisputeBothLost),
		settled("d3", ledger.DisputeChallengerLost),
		settled("d4", ledger.DisputeVoid),
		settled("d5", ledger.DisputeWorkerLost),
	} {
		c.receiptLife(e)
	}
	var left []string
	for _, r := range []string{"final", "audit failed", "audit missed", "dispute lost", "both lost", "dispute won", "void", "audit passed", "other's dispute"} {
		if c.watch[id(r)].r != nil {
			left = append(left, r)
		}
	}
	if want := []string{"dispute won", "void", "audit passed", "other's dispute"}; !slices.Equal(left, want) {
		t.Errorf("watched after the events: %q, want %q", left, want)
	}
	if len(c.contested) != 0 {
		t.Errorf("%d settled disputes still remembered", len(c.contested))
	}
}

// TestUnwatchOld: a receipt whose end event went by before it was
// watched (a restart republishing its outbox after an outage) stayed in
// watch for good; receipts published more than challengeWindow +
// openingWindow blocks ago, which no audit can select any more, go.
func TestUnwatchOld(t *testing.T) {
	c, err := NewChain(testWorker(t), ChainConfig{Client: deadLedger(t), Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	c.params = ledger.DefaultParams()
	keep := int64(c.params.ChallengeWindow + c.params.OpeningWindow + 1)
	c.watch["old"] = watched{r: &receipt.Receipt{}, at: 100}
	c.watch["young"] = watched{r: &receipt.Receipt{}, at: 101}
	c.unwatchOld(101 + keep)
	if _, ok := c.watch["old"]; ok {
		t.Error("a receipt past every audit's reach is still watched")
	}
	if _, ok := c.watch["young"]; !ok {
		t.Error("a receipt an audit may still select is no longer watched")
	}
}
