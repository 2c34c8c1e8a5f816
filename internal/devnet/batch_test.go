package devnet

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
)

// TestSendBatch sends batches through a real node: one transaction (a
// batch of one is answered unbatched by CometBFT), then three whose
// second cannot be paid: the first is taken, the second refused with its
// code, the third refused for its nonce, and the sender's next nonce
// follows the first; an urgent batch (SendBatchUrgent) is answered the
// same way. The fee estimates and the receipt queries of a batch answer
// for each item.
func TestSendBatch(t *testing.T) {
	d := start(t, Options{BlockInterval: 200 * time.Millisecond})
	ctx := context.Background()
	s, err := client.NewSender(d.Client, d.User.Private, 1)
	if err != nil {
		t.Fatal(err)
	}
	user := s.Address()
	acct, err := d.Client.Account(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	to := ledger.Address{9}
	send := func(amount uint64) ledger.Msg { return &ledger.MsgSend{To: to, Amount: amount} }
	if fees := d.Client.EstimateFees(ctx, d.User.Private, []ledger.Msg{send(1), send(2)}, 1); len(fees) != 2 || fees[0] < 1 || fees[1] < 1 {
		t.Fatalf("fees %v", fees)
	}
	txs, errs := s.SendBatch(ctx, []ledger.Msg{send(1)}, nil)
	if len(txs) != 1 || errs[0] != nil || txs[0].Nonce != acct.Nonce {
		t.Fatalf("a batch of one: %v %v", txs, errs)
	}
	recorded := 0
	txs, errs = s.SendBatch(ctx, []ledger.Msg{send(2), send(acct.Balance * 2), send(3)}, func(txs []*ledger.Tx) error {
		recorded = len(txs)
		return nil
	})
	code := func(err error) uint32 { c, _ := client.RejectionCode(err); return c }
	if recorded != 3 || len(txs) != 3 || errs[0] != nil || code(errs[1]) != ledger.Code(ledger.ErrFunds) || code(errs[2]) != ledger.Code(ledger.ErrNonce) {
		t.Fatalf("recorded %d; answers %v", recorded, errs)
	}
	if txs[1].Nonce != acct.Nonce+2 {
		t.Fatalf("nonces %d %d %d from %d", txs[0].Nonce, txs[1].Nonce, txs[2].Nonce, acct.Nonce)
	}
	// The refused nonce is the next one.
	txs, errs = s.SendBatch(ctx, []ledger.Msg{send(4)}, nil)
	if errs[0] != nil || txs[0].Nonce != acct.Nonce+2 {
		t.Fatalf("after the refusal: nonce %d, %v", txs[0].Nonce, errs[0])
	}
	// An urgent batch: the same answers.
	txs, errs = s.SendBatchUrgent(ctx, []ledger.Msg{send(6), send(acct.Balance * 2)}, nil)
	if len(txs) != 2 || errs[0] != nil || code(errs[1]) != ledger.Code(ledger.ErrFunds) || txs[0].Nonce != acct.Nonce+3 {
		t.Fatalf("urgent batch: %v %v", txs, errs)
	}
	// A record error broadcasts nothing.
	boom := errors.New("disk full")
	_, errs = s.SendBatch(ctx, []ledger.Msg{send(5)}, func([]*ledger.Tx) error { return boom })
	if !errors.Is(errs[0], boom) {
		t.Fatalf("record error: %v", errs[0])
	}
	for _, ids := range [][]ledger.Hash{{{1}}, {{1}, {2}}} {
		found, err := d.Client.HasReceipts(ctx, ids)
		if err != nil || len(found) != len(ids) || found[0] {
			t.Fatalf("receipts %v: %v %v", ids, found, err)
		}
	}
}
