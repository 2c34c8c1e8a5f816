package outbox_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/outbox"
	"github.com/verdictnet/verdict/internal/receipt"
)

// A driver feeds the Machine events and carries out the actions it
// returns, writing each Persist before what follows it. Here a receipt
// whose escrow is already open (paid with x402) goes to the ledger.
func ExampleMachine() {
	r := &receipt.Receipt{Version: receipt.Version, Spec: receipt.DefaultSpec, Sampling: receipt.Sampling{TopP: 1, Steps: 2},
		Prompt: []int{1}, Output: []int{2}}
	r.Sign(ed25519.NewKeyFromSeed(make([]byte, 32)))
	b, _ := r.Marshal()
	id := r.ID()
	rec := outbox.Record{ReceiptID: hex.EncodeToString(id[:]), Receipt: b, EscrowID: ledger.Hash{1}}

	m := outbox.New(outbox.Config{})
	now := time.Unix(1_800_000_000, 0)
	for _, ev := range []outbox.Event{
		outbox.Submit{Record: rec},        // the driver writes the record...
		outbox.Saved{ID: rec.ReceiptID},   // ...and says so; then answers the client
		outbox.Tick{Now: now, Height: 10}, // time passes
		outbox.ReceiptState{ID: rec.ReceiptID, Found: false},
		outbox.Sent{ID: rec.ReceiptID, Kind: outbox.PublishTx, Outcome: outbox.Accepted},
		outbox.Published{ID: rec.ReceiptID}, // the follower saw it in a block
	} {
		for _, a := range m.Step(ev) {
			fmt.Printf("%T -> %T\n", ev, a)
		}
	}
	fmt.Println("left:", m.Len())
	// Output:
	// outbox.Submit -> outbox.Persist
	// outbox.Tick -> outbox.QueryReceipt
	// outbox.ReceiptState -> outbox.Publish
	// outbox.Published -> outbox.Remove
	// left: 0
}
