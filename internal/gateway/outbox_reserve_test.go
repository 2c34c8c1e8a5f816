package gateway

import (
	"context"
	"errors"
	"testing"

	"github.com/verdictnet/verdict/internal/chat"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/worker"
)

// TestOutboxFeesReserved: the fees of receipts waiting in the worker's
// real outbox (worker.Chain, whose ledger is unreachable, so nothing
// leaves it) are held against the payer's balance: once they and a new
// request's most cost pass the balance, the request is refused, though
// the ledger still shows the whole balance; after a restart of the
// worker (a new Chain on the same folder) the fees still wait, and are
// still held.
func TestOutboxFeesReserved(t *testing.T) {
	w := testWorker(t)
	dead, err := client.New("tcp://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	chain, err := worker.NewChain(w, worker.ChainConfig{Client: dead, RPC: "tcp://127.0.0.1:1", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	payer := newAddress(t)
	const balance = 60
	led := &fakeLedger{balance: map[ledger.Address]uint64{payer: balance}, pending: map[string]bool{}}
	m := &LedgerMeter{Ledger: led, PricePerToken: 1, Submit: chain.SubmitCharge, Pending: chain.IsPending}
	ctx := context.Background()
	const maxTokens = 8
	serve := func(i int) error {
		req := worker.Request{Model: "stories260K", Segments: []chat.Segment{{Text: "Once upon a time", BOS: true}}, MaxTokens: maxTokens, Nonce: []byte{byte(i)}}
		prompt, err := w.Models()[0].Tokenizer.Encode("Once upon a time", true)
		if err != nil {
			t.Fatal(err)
		}
		r, err := m.Reserve(ctx, payer.String(), "stories260K", len(prompt), maxTokens)
		if err != nil {
			return err
		}
		res, err := w.Generate(ctx, req, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r.Charge(ctx, res)
	}
	served := 0
	for i := range 10 {
		err := serve(i)
		if errors.Is(err, ErrInsufficientQuota) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		served++
	}
	_, owed := m.Held(payer)
	if served == 0 || served == 10 || chain.PendingCount() != served || owed == 0 || owed > balance {
		t.Fatalf("%d served, %d in the outbox, %d owed of a balance of %d", served, chain.PendingCount(), owed, balance)
	}
	t.Logf("balance %d: %d requests served, %d owed by their receipts in the outbox, then refused", balance, served, owed)
	// A restart: the outbox is read back, its receipts still pending.
	chain2, err := worker.NewChain(w, worker.ChainConfig{Client: dead, RPC: "tcp://127.0.0.1:1", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	m.Pending = chain2.IsPending
	if err := serve(100); !errors.Is(err, ErrInsufficientQuota) {
		t.Fatalf("after the worker's restart: %v, want a refusal", err)
	}
	// Once the escrows are on the ledger (the balance shows them) and the
	// receipts left the outbox, only the balance counts: what is left can
	// be spent.
	led.balance[payer] -= owed
	m.Pending = func(string) bool { return false }
	if left := led.balance[payer]; left < 1+1+escrowTxFee {
		t.Fatalf("%d left: the test needs more", left)
	}
	if _, err := m.Reserve(ctx, payer.String(), "stories260K", 1, 1); err != nil {
		t.Fatalf("after publication, with %d left: %v", led.balance[payer], err)
	}
}
