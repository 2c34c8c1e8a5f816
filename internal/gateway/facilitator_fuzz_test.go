package gateway

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/ledger"
)

// facilitatorFixture is a facilitator over a ledger in memory where
// testKey("payer") holds funds, and the body of a valid /verify of an
// escrow of fee for requirements of scheme (upto at price 2), after edit.
func facilitatorFixture(tb testing.TB) (*Server, func(scheme string, fee uint64, edit func(*VerifyRequest)) []byte) {
	g := ledger.Genesis{ChainID: "x402-test", Params: ledger.DefaultParams(), Accounts: []ledger.GenesisAccount{{Address: addrOf(testKey("payer")), Balance: 1_000_000}}}
	l := ledger.New(ledger.NewMemStore(), ledger.Hooks{Receipts: ledger.Receipts{}})
	if err := l.InitGenesis(g); err != nil {
		tb.Fatal(err)
	}
	s := &Server{o: Options{X402: &X402{Ledger: &memLedger{l: l, chain: g.ChainID}, PricePerToken: 2}}}
	body := func(scheme string, fee uint64, edit func(*VerifyRequest)) []byte {
		worker, model, req := ledger.Address{7}, ledger.Hash{8}, ledger.Hash{9}
		m := &ledger.MsgOpenEscrow{Worker: worker, ModelID: model, Fee: fee, Request: req}
		r := PaymentRequirements{Scheme: scheme, Network: CAIP2Network(g.ChainID), Amount: strconv.FormatUint(fee, 10), PayTo: worker.String(),
			Extra: X402QuoteExtra{ModelID: model.String(), RequestHash: req.String(), ChainID: g.ChainID}}
		if scheme == SchemeUpto {
			m.PricePerToken, r.Extra.PricePerToken = 2, "2"
		}
		tx := &ledger.Tx{ChainID: g.ChainID, Fee: 1, Msg: m}
		tx.Sign(testKey("payer"))
		p := PaymentPayload{X402Version: X402Version, Accepted: r}
		p.Payload.Transaction = base64.StdEncoding.EncodeToString(tx.Encode())
		pb, _ := json.Marshal(p)
		vr := VerifyRequest{X402Version: X402Version, PaymentPayload: pb, PaymentRequirements: r}
		if edit != nil {
			edit(&vr)
		}
		b, _ := json.Marshal(vr)
		return b
	}
	return s, body
}

// TestFacilitatorMalformed: requirements whose fields do not parse are
// refused with one line naming each.
func TestFacilitatorMalformed(t *testing.T) {
	s, body := facilitatorFixture(t)
	b := body(SchemeExact, 10, func(vr *VerifyRequest) {
		vr.PaymentRequirements.Amount, vr.PaymentRequirements.Extra.ModelID = "x", "y"
	})
	_, _, err := s.facilitatorVerify(httptest.NewRequest("POST", FacilitatorPath+"/verify", strings.NewReader(string(b))))
	var xe *x402Error
	if !errors.As(err, &xe) || xe.Reason != ReasonInvalidPayload || strings.Contains(xe.Msg, "\n") || !strings.Contains(xe.Msg, "amount") || !strings.Contains(xe.Msg, "extra.modelId") {
		t.Fatalf("refusal %v: want one line naming amount and extra.modelId", err)
	}
}

// FuzzFacilitatorVerify: no /x402/verify body makes the facilitator
// panic; it is an x402 refusal on one line, or an escrow for what the
// requirements ask.
func FuzzFacilitatorVerify(f *testing.F) {
	s, body := facilitatorFixture(f)
	f.Add(body(SchemeExact, 10, nil))
	f.Add(body(SchemeUpto, 10, nil))
	f.Add(body(SchemeUpto, 10, func(vr *VerifyRequest) { vr.PaymentRequirements.Extra.PricePerToken = "0" }))
	f.Add(body(SchemeExact, 2_000_000, nil))
	f.Add(body(SchemeExact, 10, func(vr *VerifyRequest) { vr.PaymentRequirements.Amount, vr.PaymentRequirements.PayTo = "-1", "z" }))
	f.Add(body(SchemeExact, 10, func(vr *VerifyRequest) {
		vr.PaymentPayload = json.RawMessage(`{"x402Version":2,"payload":{"transaction":"e30="}}`)
	}))
	f.Add([]byte(`{"paymentPayload":null}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tx, _, err := s.facilitatorVerify(httptest.NewRequest("POST", FacilitatorPath+"/verify", strings.NewReader(string(b))))
		if err != nil {
			var xe *x402Error
			if !errors.As(err, &xe) || strings.Contains(xe.Msg, "\n") {
				t.Fatalf("refusal %q: want an x402 error on one line", err)
			}
			return
		}
		var vr VerifyRequest
		if json.Unmarshal(b, &vr) != nil {
			t.Fatal("accepted a body that is not a verify request")
		}
		m, ok := tx.Msg.(*ledger.MsgOpenEscrow)
		amount, _ := strconv.ParseUint(vr.PaymentRequirements.Amount, 10, 64)
		if !ok || m.Worker.String() != vr.PaymentRequirements.PayTo || m.Fee < amount {
			t.Fatalf("accepted %+v for %+v", tx.Msg, vr.PaymentRequirements)
		}
	})
}
