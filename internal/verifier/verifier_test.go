package verifier

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/worker"
)

// The worker is what the CLI and the devnet give the verifier to replay on.
var _ Replayer = (*worker.Local)(nil)

// TestSampled checks the replay sampling: the share of 20000 receipts
// sampled is within 1.5 percentage points of the asked share, 0 and 10000
// bps are exact, and two verifiers sample different receipts.
func TestSampled(t *testing.T) {
	a := ledger.Address(sha256.Sum256([]byte("verifier a")))
	b := ledger.Address(sha256.Sum256([]byte("verifier b")))
	const n = 20000
	for _, bps := range []uint32{0, 1000, 5000, 10000} {
		got, both := 0, 0
		for i := range n {
			id := ledger.Hash(sha256.Sum256(fmt.Append(nil, "receipt ", i)))
			sa, sb := Sampled(id, a, bps), Sampled(id, b, bps)
			if sa {
				got++
			}
			if sa && sb {
				both++
			}
		}
		want := n * int(bps) / 10000
		if d := got - want; d > n*150/10000 || d < -n*150/10000 || (bps == 0 && got != 0) || (bps == 10000 && got != n) {
			t.Errorf("%d bps: %d of %d sampled, want about %d", bps, got, n, want)
		}
		// Independent samplers overlap on about share^2 of the receipts.
		if bps == 1000 && (both < n/100/2 || both > n/100*2) {
			t.Errorf("two verifiers at 10%% both sampled %d of %d receipts, want about %d", both, n, n/100)
		}
	}
}

func TestReceiptOf(t *testing.T) {
	id := strings.Repeat("ab", 32)
	for _, c := range []struct {
		uri string
		ok  bool
	}{
		{"verdict:receipt/" + id, true},
		{"verdict:receipt/" + strings.ToUpper(id), false},
		{"verdict:receipt/" + id[:63], false},
		{"verdict:receipt/" + id + "0", false},
		{"https://example.com/" + id, false},
		{"", false},
	} {
		h, err := receiptOf(c.uri)
		if (err == nil) != c.ok || (c.ok && h.String() != id) {
			t.Errorf("receiptOf(%q) = %s, %v", c.uri, h, err)
		}
	}
}

func FuzzReceiptOf(f *testing.F) {
	f.Add("verdict:receipt/" + strings.Repeat("0", 64))
	f.Add("verdict:receipt/")
	f.Add("")
	f.Fuzz(func(t *testing.T, uri string) {
		h, err := receiptOf(uri)
		if err == nil && "verdict:receipt/"+h.String() != uri {
			t.Fatalf("receiptOf(%q) = %s", uri, h)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Fatalf("multi-line error %q", err)
		}
	})
}
