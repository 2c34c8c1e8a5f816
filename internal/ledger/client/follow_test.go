package client

import (
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/verdictnet/verdict/internal/ledger"
)

// TestEventOf: an event as CometBFT's results carry it converts to the
// ledger's, attributes in order, and reads with the ledger's decoder.
func TestEventOf(t *testing.T) {
	rid, w := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
	ae := abci.Event{Type: string(ledger.EventAuditSelected), Attributes: []abci.EventAttribute{
		{Key: string(ledger.AttrReceiptID), Value: rid, Index: true},
		{Key: string(ledger.AttrSeed), Value: strings.Repeat("01", 32), Index: true},
		{Key: string(ledger.AttrCells), Value: "4", Index: true},
		{Key: string(ledger.AttrDeadline), Value: "90", Index: true},
		{Key: string(ledger.AttrWorker), Value: w, Index: true},
	}}
	tx := &ledger.Tx{Nonce: 3}
	ev := EventOf(7, ae, tx)
	if ev.Height != 7 || ev.Tx != tx || ev.Type != ledger.EventAuditSelected || len(ev.Attrs) != 5 || ev.Attrs[2] != (ledger.Attr{Key: ledger.AttrCells, Value: "4"}) {
		t.Fatalf("EventOf: %+v", ev)
	}
	a, err := ledger.DecodeAuditSelected(ev.Event)
	if err != nil || a.ReceiptID.String() != rid || a.Worker.String() != w || a.Cells != 4 || a.Deadline != 90 {
		t.Fatalf("decoded %+v, %v", a, err)
	}
}
