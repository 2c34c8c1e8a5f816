package worker

import (
	"reflect"
	"testing"

	"github.com/verdictnet/verdict/internal/inference"
	"github.com/verdictnet/verdict/internal/ledger"
)

// TestChargeRoundTrip: a charge survives the trip through the outbox's
// Pending unchanged, field for field (a field added to Charge and not
// carried fails here).
func TestChargeRoundTrip(t *testing.T) {
	ch := inference.Charge{ReceiptID: "ab", Receipt: []byte(`{"r":1}`), Requester: "acct", Fee: 7, EscrowID: ledger.Hash{9}, RequestSteps: 12}
	v := reflect.ValueOf(&ch).Elem()
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("test charge leaves %s zero", v.Type().Field(i).Name)
		}
	}
	p := pendingOf(ch)
	if got := chargeOf(&p); !reflect.DeepEqual(got, ch) {
		t.Fatalf("round trip: %+v, want %+v", got, ch)
	}
	var seen inference.Charge
	esc := EscrowCharges(func(c *inference.Charge, w ledger.Address, m ledger.Hash, agent uint64) (ledger.Msg, *Sender, error) {
		seen = *c
		return nil, nil, nil
	})
	if _, _, err := esc(&p, ledger.Address{}, ledger.Hash{}, 0); err != nil || !reflect.DeepEqual(seen, ch) {
		t.Fatalf("escrower saw %+v (%v), want %+v", seen, err, ch)
	}
}
