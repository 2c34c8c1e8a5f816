package multigw

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
)

// quoteWorker is the worker the quotes of quoteHeader are for.
func quoteWorker() Worker {
	return Worker{AgentID: 3, Address: ledger.Address{7, 7}, ModelID: ledger.Hash{1, 2, 3}, Price: 5}
}

// quoteHeader is a PAYMENT-REQUIRED header holding one upto quote that
// w's entry on the ledger agrees with, after edit.
func quoteHeader(w Worker, edit func(*gateway.PaymentRequirements)) string {
	a := gateway.PaymentRequirements{Scheme: gateway.SchemeUpto, Network: gateway.CAIP2Network(testChain), Amount: "100", PayTo: w.Address.String(),
		MaxTimeoutSeconds: 60, Extra: gateway.X402QuoteExtra{RequestHash: ledger.Hash{9}.String(), ModelID: w.ModelID.String(), ChainID: testChain, PricePerToken: strconv.FormatUint(w.Price, 10)}}
	if edit != nil {
		edit(&a)
	}
	b, _ := json.Marshal(gateway.PaymentRequired{X402Version: gateway.X402Version, Accepts: []gateway.PaymentRequirements{{Scheme: "exact"}, a}})
	return base64.StdEncoding.EncodeToString(b)
}

// TestQuoteMalformed: a quote whose fields do not parse is refused with
// a one-line error naming them.
func TestQuoteMalformed(t *testing.T) {
	s := &Server{o: Options{Ledger: newFakeLedger()}, chainID: testChain}
	k, err := keys.New(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	w := quoteWorker()
	a, err := s.quoteOf(w, quoteHeader(w, func(a *gateway.PaymentRequirements) {
		a.Amount, a.Extra.RequestHash = "-1", "xyz"
	}))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = s.payment(context.Background(), k, a, -1, 0)
	var d *errDown
	if !errors.As(err, &d) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "amount") || !strings.Contains(err.Error(), "requestHash") {
		t.Fatalf("error %q: want one line naming amount and requestHash", err)
	}
}

// FuzzQuote: no PAYMENT-REQUIRED header a worker sends makes the gateway
// panic; a refusal is errDown with a one-line message, and a quote taken
// signs an escrow to the worker of the amount quoted.
func FuzzQuote(f *testing.F) {
	w := quoteWorker()
	f.Add(quoteHeader(w, nil))
	f.Add(quoteHeader(w, func(a *gateway.PaymentRequirements) { a.Amount = "18446744073709551616" }))
	f.Add(quoteHeader(w, func(a *gateway.PaymentRequirements) { a.Extra.ModelID = strings.ToUpper(a.Extra.ModelID) }))
	f.Add(quoteHeader(w, func(a *gateway.PaymentRequirements) { a.Amount, a.Extra.RequestHash = "x", "\n" }))
	f.Add("")
	f.Add("e30=")
	f.Add("!!!")
	f.Add(base64.StdEncoding.EncodeToString([]byte(`{"accepts":[{"scheme":"upto","payTo":null,"extra":[]}]}`)))
	s := &Server{o: Options{Ledger: newFakeLedger(), MaxFee: 1 << 20}, chainID: testChain}
	k, err := keys.New(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, h string) {
		check := func(err error) {
			var d *errDown
			if !errors.As(err, &d) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("refusal %q (%T): want a one-line errDown", err, err)
			}
		}
		a, err := s.quoteOf(w, h)
		if err != nil {
			check(err)
			return
		}
		if a.Scheme != gateway.SchemeUpto || a.PayTo != w.Address.String() {
			t.Fatalf("took quote %+v", a)
		}
		_, tx, err := s.payment(context.Background(), k, a, -1, 1000)
		if err != nil {
			check(err)
			return
		}
		m, ok := tx.Msg.(*ledger.MsgOpenEscrow)
		if amount, _ := strconv.ParseUint(a.Amount, 10, 64); !ok || m.Worker != w.Address || m.Fee != amount || m.Fee > 1000 {
			t.Fatalf("signed %+v for quote %+v", tx.Msg, a)
		}
	})
}
