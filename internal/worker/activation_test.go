package worker

import (
	"errors"
	"fmt"
	"testing"

	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
)

// TestModelPending: a rejection for an inactive model (code 15) makes an
// outbox entry wait instead of failing; any other error does not.
func TestModelPending(t *testing.T) {
	inactive := &client.RejectedError{Code: ledger.Code(ledger.ErrModelInactive), Log: "openEscrow: model not active: ..."}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"inactive model", inactive, true},
		{"wrapped", fmt.Errorf("opening the escrow: %w", inactive), true},
		{"other rejection", &client.RejectedError{Code: ledger.Code(ledger.ErrNotFound), Log: "model not registered"}, false},
		{"text only", fmt.Errorf("%w: model not active", client.ErrRejected), false},
		{"unreachable", errors.New("connection refused"), false},
	}
	for _, c := range cases {
		err := modelPending(c.err)
		if got := errors.Is(err, errModelPending); got != c.want {
			t.Errorf("%s: pending %v, want %v (%v)", c.name, got, c.want, err)
		}
		if c.want && !errors.Is(err, client.ErrRejected) {
			t.Errorf("%s: the rejection is lost: %v", c.name, err)
		}
	}
	if code, ok := client.RejectionCode(fmt.Errorf("x: %w", inactive)); !ok || code != 15 {
		t.Fatalf("RejectionCode %d %v", code, ok)
	}
}
