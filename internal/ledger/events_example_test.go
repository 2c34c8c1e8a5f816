package ledger_test

import (
	"fmt"
	"strings"

	"github.com/verdictnet/verdict/internal/ledger"
)

// A client switches on an event's type and reads the event with its typed
// decoder; a missing or malformed attribute is an error, not a zero value.
func ExampleDecodeAuditSelected() {
	ev := ledger.Event{Type: ledger.EventAuditSelected, Attrs: []ledger.Attr{
		{Key: ledger.AttrReceiptID, Value: strings.Repeat("ab", 32)},
		{Key: ledger.AttrSeed, Value: strings.Repeat("01", 32)},
		{Key: ledger.AttrCells, Value: "4"},
		{Key: ledger.AttrDeadline, Value: "120"},
		{Key: ledger.AttrWorker, Value: strings.Repeat("cd", 32)},
	}}
	switch ev.Type {
	case ledger.EventAuditSelected:
		a, err := ledger.DecodeAuditSelected(ev)
		fmt.Println(a.ReceiptID.String()[:8], a.Cells, a.Deadline, a.Worker.String()[:8], err)
	}
	ev.Attrs[2].Value = "four"
	_, err := ledger.DecodeAuditSelected(ev)
	fmt.Println(err != nil)
	// Output:
	// abababab 4 120 cdcdcdcd <nil>
	// true
}
