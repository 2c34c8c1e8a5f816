package outbox

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/receipt"
)

var (
	workerKey = ed25519.NewKeyFromSeed(make([]byte, 32))
	payerKey  = ed25519.NewKeyFromSeed(append(make([]byte, 31), 1))
	workerA   = addrOf(workerKey)
	payerA    = addrOf(payerKey)
	t0        = time.Unix(1_800_000_000, 0)
)

func addrOf(k ed25519.PrivateKey) ledger.Address {
	a, err := ledger.AddressOf(k.Public().(ed25519.PublicKey))
	if err != nil {
		panic(err)
	}
	return a
}

// testRecord is a fresh outbox record for a real signed receipt (its
// nonce n makes it distinct).
func testRecord(t testing.TB, n int) Record {
	r := &receipt.Receipt{Version: receipt.Version, Spec: receipt.DefaultSpec, Model: merkle.LeafHash([]byte("model")),
		Nonce: []byte{byte(n), byte(n >> 8)}, Sampling: receipt.Sampling{TopP: 1, Steps: 4}, Prompt: []int{1, 2, 3}, Output: []int{4},
		LogitsRoot: merkle.LeafHash([]byte("logits")), TraceRoot: merkle.LeafHash([]byte("trace"))}
	if err := r.Sign(workerKey); err != nil {
		t.Fatal(err)
	}
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	id := r.ID()
	return Record{ReceiptID: hex.EncodeToString(id[:]), Receipt: b, Requester: payerA.String(), Fee: 10}
}

func requestOf(t testing.TB, r Record) ledger.Hash {
	req, err := ledger.ReceiptRequest(r.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// escrowTx is the payer's signed transaction opening r's escrow at nonce.
func escrowTx(t testing.TB, r Record, nonce uint64) *ledger.Tx {
	tx := &ledger.Tx{ChainID: "test", Fee: 1, Nonce: nonce, Msg: &ledger.MsgOpenEscrow{
		Worker: workerA, ModelID: ledger.Hash(merkle.LeafHash([]byte("model"))), Fee: r.Fee, Request: requestOf(t, r)}}
	tx.Sign(payerKey)
	if _, err := ledger.DecodeTx(tx.Encode()); err != nil {
		t.Fatal(err)
	}
	return tx
}

// show renders actions compactly: what the tables compare.
func show(acts []Action) string {
	var out []string
	for _, a := range acts {
		switch a := a.(type) {
		case Persist:
			s := "persist"
			if len(a.Record.EscrowTx) > 0 {
				s += " tx" + txNonce(a.Record.EscrowTx)
			}
			if !a.Record.EscrowID.IsZero() {
				s += " escrow"
			}
			if a.Record.Attempts > 0 {
				s += fmt.Sprintf(" attempts%d", a.Record.Attempts)
			}
			out = append(out, s)
		case QueryReceipt:
			out = append(out, "query-receipt")
		case QueryEscrow:
			s := "query-escrow"
			if !a.Payer.IsZero() {
				s += " +account"
			}
			out = append(out, s)
		case OpenEscrow:
			out = append(out, "open-escrow")
		case Broadcast:
			out = append(out, "broadcast tx"+txNonce(a.Tx))
		case Publish:
			out = append(out, "publish")
		case Remove:
			out = append(out, "remove")
		case GiveUp:
			out = append(out, "give-up: "+a.Record.Failed)
		}
	}
	return strings.Join(out, ", ")
}

func txNonce(b []byte) string {
	tx, err := ledger.DecodeTx(b)
	if err != nil {
		return "?"
	}
	return fmt.Sprint(tx.Nonce)
}

type step struct {
	ev   Event
	want string // show(actions); a prefix for give-up reasons
}

func tick(d time.Duration, h int64) Tick { return Tick{Now: t0.Add(d), Height: h} }

// TestMachine walks every branch of the outbox, one receipt at a time.
func TestMachine(t *testing.T) {
	r := testRecord(t, 1)
	id := r.ReceiptID
	req := requestOf(t, r)
	tx5, tx6 := escrowTx(t, r, 5), escrowTx(t, r, 6)
	e5 := ledger.EscrowID(payerA, 5)
	ours := ledger.Escrow{EscrowID: e5, Requester: payerA, Worker: workerA, Request: req}
	recorded := r // after a crash with the escrow transaction recorded
	recorded.EscrowTx, recorded.EscrowID = tx5.Encode(), e5
	adopted := r // an escrow seen open, or paid by x402 with the request
	adopted.EscrowID = e5
	oldOutbox := r
	oldOutbox.MaybeEscrow = e5
	rejected := func(kind TxKind, err error) Sent {
		return Sent{ID: id, Kind: kind, Outcome: Rejected, Code: ledger.Code(err), Log: err.Error()}
	}
	// lookUp brings a fresh submission to its escrow's signing.
	lookUp := []step{
		{Submit{r}, "persist"},
		{tick(0, 10), ""}, // not saved yet: nothing starts
		{Saved{id}, ""},
		{tick(0, 10), "query-receipt"},
		{ReceiptState{ID: id}, "open-escrow"},
	}
	// restart brings a recorded transaction to its settling.
	restart := []step{
		{Restore{[]Record{recorded}}, ""},
		{tick(0, 10), "query-receipt"},
		{ReceiptState{ID: id}, "query-escrow +account"},
	}
	cat := func(parts ...[]step) []step { return slices.Concat(parts...) }
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"published in the escrow's next block", cat(lookUp, []step{
			{EscrowSigned{id, tx5}, "persist tx5 escrow"},
			{Sent{ID: id, Kind: EscrowTx, Outcome: Accepted}, ""},
			{tick(100*time.Millisecond, 11), ""}, // waits for its block
			{EscrowOpened{ledger.EscrowID(payerA, 4)}, ""},
			{EscrowOpened{e5}, "publish"},
			{Sent{ID: id, Kind: PublishTx, Outcome: Accepted}, ""},
			{Published{id}, "remove"},
			{Published{id}, ""},
		})},
		{"the escrow's block seen before the broadcast's answer", cat(lookUp, []step{
			{EscrowSigned{id, tx5}, "persist tx5 escrow"},
			{EscrowOpened{e5}, ""},
			{Sent{ID: id, Kind: EscrowTx, Outcome: Accepted}, "publish"},
		})},
		{"the escrow's block seen before a second broadcast's answer", cat(restart, []step{
			{EscrowState{ID: id, AccountNonce: 5}, "broadcast tx5"},
			{EscrowOpened{e5}, ""},
			{Sent{ID: id, Kind: EscrowTx, Outcome: MaybeSent}, "publish"},
		})},
		{"a block opening the escrow id seen, then the broadcast refused: no publication", cat(lookUp, []step{
			{EscrowSigned{id, tx5}, "persist tx5 escrow"},
			{EscrowOpened{e5}, ""},
			{rejected(EscrowTx, ledger.ErrNonce), "persist"},
		})},
		{"already on the ledger", cat(lookUp[:4], []step{{ReceiptState{ID: id, Found: true}, "remove"}})},
		{"a second submission does nothing", []step{{Submit{r}, "persist"}, {Saved{id}, ""}, {Submit{r}, ""}}},
		{"a submission that could not be written is forgotten", []step{{Submit{r}, "persist"}, {Abandon{id}, ""}, {tick(0, 1), ""}}},
		{"an unreadable receipt is given up", []step{{Submit{Record{ReceiptID: id, Receipt: []byte("{")}}, "give-up: unreadable receipt"}}},
		{"a bad receipt id is given up", []step{{Submit{Record{ReceiptID: "x", Receipt: r.Receipt}}, "give-up: bad receipt id"}}},
		{"the escrow's block not seen: settled after Resend", cat(lookUp, []step{
			{EscrowSigned{id, tx5}, "persist tx5 escrow"},
			{Sent{ID: id, Kind: EscrowTx, Outcome: Accepted}, ""},
			{tick(time.Second, 30), ""}, // blocks pass, the follower lags: still waiting
			{tick(6*time.Second, 31), "query-receipt"},
			{ReceiptState{ID: id}, "query-escrow +account"},
			{EscrowState{ID: id, AccountNonce: 6, Found: true, Escrow: ours}, "persist escrow, publish"},
		})},
		{"maybe-sent escrow adopted", cat(lookUp, []step{
			{EscrowSigned{id, tx5}, "persist tx5 escrow"},
			{Sent{ID: id, Kind: EscrowTx, Outcome: MaybeSent, Log: "timeout"}, ""},
			{tick(time.Second, 12), ""},
			{tick(time.Second, 14), "query-receipt"},
			{ReceiptState{ID: id}, "query-escrow +account"},
			{EscrowState{ID: id, AccountNonce: 6, Found: true, Escrow: ours}, "persist escrow, publish"},
		})},
		{"restart: recorded transaction committed", cat(restart, []step{
			{EscrowState{ID: id, AccountNonce: 9, Found: true, Escrow: ours}, "persist escrow, publish"},
		})},
		{"restart: recorded transaction may commit: the same bytes again", cat(restart, []step{
			{EscrowState{ID: id, AccountNonce: 5}, "broadcast tx5"},
			{Sent{ID: id, Kind: EscrowTx, Outcome: Accepted}, ""},
			{EscrowOpened{e5}, "publish"},
		})},
		{"restart: an earlier nonce missing: may commit", cat(restart, []step{
			{EscrowState{ID: id, AccountNonce: 3}, "broadcast tx5"},
			{rejected(EscrowTx, ledger.ErrNonce), ""}, // its nonce is taken in the mempool: wait
			{tick(time.Second, 13), ""},
			{tick(time.Second, 14), "query-receipt"},
		})},
		{"restart: nonce taken by another transaction: a new escrow", cat(restart, []step{
			{EscrowState{ID: id, AccountNonce: 6}, "persist, query-receipt"},
			{ReceiptState{ID: id}, "open-escrow"},
			{EscrowSigned{id, tx6}, "persist tx6 escrow"},
		})},
		{"restart: the escrow id holds another request's escrow: a new escrow", cat(restart, []step{
			{EscrowState{ID: id, AccountNonce: 6, Found: true, Escrow: ledger.Escrow{Requester: payerA, Worker: workerA, Request: ledger.Hash{7}}}, "persist, query-receipt"},
			{ReceiptState{ID: id}, "open-escrow"},
		})},
		{"restart: another worker's escrow: a new escrow", cat(restart, []step{
			{EscrowState{ID: id, AccountNonce: 6, Found: true, Escrow: ledger.Escrow{Requester: payerA, Worker: payerA, Request: req}}, "persist, query-receipt"},
			{ReceiptState{ID: id}, "open-escrow"},
		})},
		{"restart: an unreadable recorded transaction is replaced", []step{
			{Restore{[]Record{{ReceiptID: id, Receipt: r.Receipt, Requester: r.Requester, EscrowTx: []byte("x"), EscrowID: e5}}}, ""},
			{tick(0, 1), "query-receipt"},
			{ReceiptState{ID: id}, "persist, open-escrow"},
		}},
		{"restart: escrow used by this receipt, final and deleted: no second escrow", cat(restart, []step{
			{EscrowState{ID: id, AccountNonce: 6}, "persist, query-receipt"},
			{ReceiptState{ID: id, Found: true}, "remove"},
		})},
		{"old outbox: a maybe-escrow of ours adopted", []step{
			{Restore{[]Record{oldOutbox}}, ""},
			{tick(0, 1), "query-receipt"},
			{ReceiptState{ID: id}, "query-escrow"},
			{EscrowState{ID: id, Found: true, Escrow: ours}, "persist escrow, publish"},
		}},
		{"old outbox: a maybe-escrow never opened", []step{
			{Restore{[]Record{oldOutbox}}, ""},
			{tick(0, 1), "query-receipt"},
			{ReceiptState{ID: id}, "query-escrow"},
			{EscrowState{ID: id}, "persist, query-receipt"},
			{ReceiptState{ID: id}, "open-escrow"},
		}},
		{"escrow refused for its nonce: retried soon, nothing recorded", cat(lookUp, []step{
			{EscrowSigned{id, tx5}, "persist tx5 escrow"},
			{rejected(EscrowTx, ledger.ErrNonce), "persist"},
			{tick(100*time.Millisecond, 10), ""},
			{tick(300*time.Millisecond, 10), "open-escrow"},
		})},
		{"escrow refused: the payer has too much in the mempool", cat(lookUp, []step{
			{EscrowSigned{id, tx5}, "persist tx5 escrow"},
			{rejected(EscrowTx, ledger.ErrPending), "persist"},
			{tick(300*time.Millisecond, 10), "open-escrow"},
		})},
		{"escrow refused: model not active: waits, no attempt", cat(lookUp, []step{
			{EscrowSigned{id, tx5}, "persist tx5 escrow"},
			{rejected(EscrowTx, ledger.ErrModelInactive), "persist"},
			{tick(time.Second, 11), ""},
			{tick(2*time.Second, 12), "open-escrow"},
		})},
		{"escrow refused: no funds: given up", cat(lookUp, []step{
			{EscrowSigned{id, tx5}, "persist tx5 escrow"},
			{rejected(EscrowTx, ledger.ErrFunds), "persist, give-up: opening the escrow: code 5"},
		})},
		{"no escrow can be opened: given up", cat(lookUp, []step{{Refused{id, "no key"}, "give-up: no key"}})},
		{"signed, never broadcast: dropped, an attempt", cat(lookUp, []step{
			{EscrowSigned{id, tx5}, "persist tx5 escrow"},
			{Failed{id, "disk full"}, "persist attempts1"},
			{tick(400*time.Millisecond, 10), ""},
			{tick(600*time.Millisecond, 10), "open-escrow"},
		})},
		{"publish refused: published meanwhile", cat(restart, []step{
			{EscrowState{ID: id, AccountNonce: 9, Found: true, Escrow: ours}, "persist escrow, publish"},
			{rejected(PublishTx, ledger.ErrExists), "query-receipt"},
			{ReceiptState{ID: id, Found: true}, "remove"},
		})},
		{"publish refused: escrow gone (refunded): a new one", []step{
			{Restore{[]Record{adopted}}, ""},
			{tick(0, 1), "query-receipt"},
			{ReceiptState{ID: id}, "publish"},
			{rejected(PublishTx, ledger.ErrNotFound), "query-escrow"},
			{EscrowState{ID: id}, "persist, query-receipt"},
			{ReceiptState{ID: id}, "open-escrow"},
		}},
		{"publish refused: escrow there after all: an attempt", []step{
			{Restore{[]Record{adopted}}, ""},
			{tick(0, 1), "query-receipt"},
			{ReceiptState{ID: id}, "publish"},
			{rejected(PublishTx, ledger.ErrNotFound), "query-escrow"},
			{EscrowState{ID: id, Found: true, Escrow: ours}, "persist escrow attempts1"},
		}},
		{"publish refused while the escrow transaction is recorded: settle it first", cat(restart, []step{
			{EscrowState{ID: id, AccountNonce: 5}, "broadcast tx5"},
			{Sent{ID: id, Kind: EscrowTx, Outcome: Accepted}, ""},
			{EscrowOpened{e5}, "publish"},
			{rejected(PublishTx, ledger.ErrNotFound), "persist tx5 escrow attempts1"},
			{tick(time.Second, 10), "query-receipt"},
			{ReceiptState{ID: id}, "query-escrow +account"},
		})},
		{"publish refused for its nonce: retried soon", []step{
			{Restore{[]Record{adopted}}, ""},
			{tick(0, 1), "query-receipt"},
			{ReceiptState{ID: id}, "publish"},
			{rejected(PublishTx, ledger.ErrNonce), ""},
			{tick(300*time.Millisecond, 1), "publish"},
		}},
		{"publish refused: model not active", []step{
			{Restore{[]Record{adopted}}, ""},
			{tick(0, 1), "query-receipt"},
			{ReceiptState{ID: id}, "publish"},
			{rejected(PublishTx, ledger.ErrModelInactive), ""},
			{tick(time.Second, 1), ""},
			{tick(2*time.Second, 1), "publish"},
		}},
		{"publish maybe sent: looked at after its blocks", []step{
			{Restore{[]Record{adopted}}, ""},
			{tick(0, 1), "query-receipt"},
			{ReceiptState{ID: id}, "publish"},
			{Sent{ID: id, Kind: PublishTx, Outcome: MaybeSent}, ""},
			{tick(time.Second, 4), ""},
			{tick(time.Second, 5), "query-receipt"},
			{ReceiptState{ID: id}, "publish"},
		}},
		{"ledger outage: backoff, attempts written", []step{
			{Restore{[]Record{r}}, ""},
			{tick(0, 0), "query-receipt"},
			{Failed{id, "connection refused"}, "persist attempts1"},
			{tick(400*time.Millisecond, 0), ""},
			{tick(500*time.Millisecond, 0), "query-receipt"},
			{Failed{id, "connection refused"}, "persist attempts2"},
			{tick(1400*time.Millisecond, 0), ""},
			{tick(1500*time.Millisecond, 0), "query-receipt"},
		}},
		{"shutdown: cancelled, no attempt", []step{
			{Restore{[]Record{r}}, ""},
			{tick(0, 0), "query-receipt"},
			{Cancelled{id}, ""},
			{tick(0, 0), "query-receipt"},
		}},
		{"the follower's publication while a query is out", []step{
			{Restore{[]Record{adopted}}, ""},
			{tick(0, 1), "query-receipt"},
			{Published{id}, "remove"},
			{ReceiptState{ID: id}, ""}, // the answer finds nothing to do
			{tick(time.Second, 9), ""},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Config{Worker: workerA})
			for i, s := range tc.steps {
				got := show(m.Step(s.ev))
				if got != s.want && !(strings.Contains(s.want, "give-up") && strings.HasPrefix(got, s.want)) {
					t.Fatalf("step %d (%T %+v): got %q, want %q", i, s.ev, s.ev, got, s.want)
				}
			}
		})
	}
}

// TestGiveUpAfterMaxAttempts: the MaxAttempts-th failure gives the receipt
// up, and attempts read back from disk count (a restart does not reset
// them).
func TestGiveUpAfterMaxAttempts(t *testing.T) {
	r := testRecord(t, 2)
	r.Attempts = 37
	m := New(Config{Worker: workerA, MaxAttempts: 40})
	m.Step(Restore{[]Record{r}})
	now := time.Duration(0)
	for i, want := range []string{"persist attempts38", "persist attempts39", "give-up: connection refused"} {
		if got := show(m.Step(tick(now, 0))); got != "query-receipt" {
			t.Fatalf("failure %d: tick: %q", i, got)
		}
		if got := show(m.Step(Failed{r.ReceiptID, "connection refused"})); got != want {
			t.Fatalf("failure %d: %q, want %q", i, got, want)
		}
		now += 20 * time.Second
	}
	if m.Len() != 0 {
		t.Fatal("given up, still in the outbox")
	}
}

// TestNonceRetriesCount: refusals for the nonce retry without counting,
// until MaxNonceRetries of them in a row count one attempt.
func TestNonceRetriesCount(t *testing.T) {
	r := testRecord(t, 3)
	r.EscrowID = ledger.EscrowID(payerA, 5)
	m := New(Config{Worker: workerA, MaxNonceRetries: 3})
	m.Step(Restore{[]Record{r}})
	m.Step(tick(0, 1))
	if got := show(m.Step(ReceiptState{ID: r.ReceiptID})); got != "publish" {
		t.Fatal(got)
	}
	now := time.Duration(0)
	for i, want := range []string{"", "", "persist escrow attempts1"} {
		if got := show(m.Step(Sent{ID: r.ReceiptID, Kind: PublishTx, Outcome: Rejected, Code: ledger.Code(ledger.ErrNonce)})); got != want {
			t.Fatalf("refusal %d: %q, want %q", i, got, want)
		}
		now += time.Second
		if got := show(m.Step(tick(now, 1))); got != "publish" {
			t.Fatalf("refusal %d: tick: %q", i, got)
		}
	}
}

// TestTickOrderAndBound: due receipts start oldest first, at most
// MaxStarts per Tick.
func TestTickOrderAndBound(t *testing.T) {
	m := New(Config{Worker: workerA, MaxStarts: 2})
	var ids []string
	for i := range 5 {
		r := testRecord(t, 10+i)
		m.Step(Submit{r})
		m.Step(Saved{r.ReceiptID})
		ids = append(ids, r.ReceiptID)
	}
	var got []string
	for range 3 {
		for _, a := range m.Step(tick(0, 1)) {
			got = append(got, a.(QueryReceipt).ID)
		}
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("started %v, want %v", got, ids)
	}
}

// TestSettle covers every fate of a recorded escrow transaction: found
// and ours (adopted), found and another's (its nonce went to another
// transaction: lost), not found with the nonce taken (lost: it can never
// commit), not found with the nonce free (it may still commit: send the
// same bytes again and wait, never a second escrow).
func TestSettle(t *testing.T) {
	payer, worker, other := ledger.Address{1}, ledger.Address{2}, ledger.Address{3}
	req, otherReq := ledger.Hash{4}, ledger.Hash{5}
	tx := &ledger.Tx{Signer: payer, Nonce: 7}
	ours := ledger.Escrow{Requester: payer, Worker: worker, Request: req}
	for _, tc := range []struct {
		name  string
		found bool
		esc   ledger.Escrow
		nonce uint64
		want  Fate
	}{
		{"committed, ours", true, ours, 8, Open},
		{"committed, ours, later nonces too", true, ours, 30, Open},
		{"another request holds the nonce", true, ledger.Escrow{Requester: payer, Worker: worker, Request: otherReq}, 8, Lost},
		{"another worker's escrow holds the nonce", true, ledger.Escrow{Requester: payer, Worker: other, Request: req}, 8, Lost},
		{"another payer's escrow", true, ledger.Escrow{Requester: other, Worker: worker, Request: req}, 8, Lost},
		{"nonce taken, no escrow", false, ledger.Escrow{}, 8, Lost},
		{"nonce free: may commit", false, ledger.Escrow{}, 7, MayCommit},
		{"an earlier nonce missing: may commit", false, ledger.Escrow{}, 5, MayCommit},
	} {
		if got := Settle(tc.found, tc.esc, tc.nonce, tx, worker, req); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestPublishRequestSteps: a receipt cut short against an escrow bound to
// its whole request (x402) is published with the request's step count,
// from its record; one without is published with none.
func TestPublishRequestSteps(t *testing.T) {
	for _, steps := range []uint64{0, 41} {
		r := testRecord(t, 1)
		r.EscrowID, r.RequestSteps = ledger.Hash{1}, steps
		m := New(Config{Worker: workerA})
		var got []Publish
		for _, ev := range []Event{
			Submit{Record: r},
			Saved{ID: r.ReceiptID},
			tick(0, 10),
			ReceiptState{ID: r.ReceiptID, Found: false},
		} {
			for _, a := range m.Step(ev) {
				if p, ok := a.(Publish); ok {
					got = append(got, p)
				}
			}
		}
		if len(got) != 1 || got[0].RequestSteps != steps || got[0].EscrowID != r.EscrowID {
			t.Fatalf("request steps %d: published %+v", steps, got)
		}
	}
}
