package gateway

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/inference"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/receipt"
)

// publish does what the worker's outbox does with a queued x402 receipt:
// publishes it against the payer's escrow.
func (e *x402Env) publish(t *testing.T, p inference.Charge) {
	t.Helper()
	var a ledger.Account
	e.led.query(t, "account/"+addrOf(workerKey(t)).String(), &a)
	tx := &ledger.Tx{ChainID: e.led.chain, Nonce: a.Nonce, Fee: 1,
		Msg: &ledger.MsgPublishReceipt{EscrowID: p.EscrowID, Receipt: p.Receipt, RequestSteps: p.RequestSteps}}
	tx.Sign(workerKey(t))
	if res, err := e.led.BroadcastCommit(context.Background(), tx); err != nil || res.Code != 0 {
		t.Fatalf("publishing receipt %s against escrow %s: %v %+v", p.ReceiptID, p.EscrowID, err, res)
	}
}

// tokens returns a receipt's prompt and output token counts and steps.
func tokens(t *testing.T, b []byte) (prompt, output, steps int) {
	t.Helper()
	r, err := receipt.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return len(r.Prompt), len(r.Output), r.Sampling.Steps
}

// TestX402Upto: the payer authorises max_tokens x price with scheme upto;
// the receipt, once published, costs the tokens generated and the rest
// returns to the payer on the ledger. A generation that ends early on a
// stop string (its receipt's steps lowered) is published against the
// escrow, bound to the steps asked for, under upto and exact alike (under
// exact the worker gets the whole amount); so is a stream the payer hangs
// up on, charged for what was generated.
func TestX402Upto(t *testing.T) {
	e := newX402Env(t)
	payer := testKey("payer")
	const body = `{"model":"stories260K","prompt":"Once upon a time","max_tokens":100,"temperature":0,"stop":["."]}`
	for _, sch := range []string{SchemeUpto, SchemeExact} {
		t.Run(sch, func(t *testing.T) {
			before := e.balance(t, payer)
			q := scheme(e.quoteAt(t, "/v1/completions", body), sch)
			max, _ := strconv.ParseUint(q.Accepts[0].Amount, 10, 64)
			res, b := post(t, e.ts.URL+"/v1/completions", body, HeaderPaymentSignature, e.pay(t, q, payer, nil))
			if res.StatusCode != 200 {
				t.Fatalf("%d %s", res.StatusCode, b)
			}
			r := decodeResp(t, b)
			if f := r.Choices[0].FinishReason; f == nil || *f != "stop" || r.Usage.CompletionTokens >= 100 {
				t.Fatalf("the generation did not stop early on the stop string: %s", b)
			}
			p := <-e.submitted
			np, no, steps := tokens(t, p.Receipt)
			if steps != np+no-1 || p.RequestSteps != uint64(np+100-1) {
				t.Fatalf("receipt steps %d (%d+%d tokens), request steps %d", steps, np, no, p.RequestSteps)
			}
			due := max
			if sch == SchemeUpto {
				due = 2 * uint64(np+no)
			}
			sr := decodeHeader[SettleResponse](t, res.Header.Get(HeaderPaymentResponse))
			if sr.Amount != strconv.FormatUint(due, 10) || p.Fee != due {
				t.Errorf("settled %s, queued fee %d; want %d (the most was %d)", sr.Amount, p.Fee, due, max)
			}
			if got := e.balance(t, payer); got != before-max-1 {
				t.Errorf("payer %d after the escrow, want %d", got, before-max-1)
			}
			e.publish(t, p)
			if got := e.balance(t, payer); got != before-due-1 {
				t.Errorf("payer %d after publication, want %d: the receipt's %d tokens cost %d of the %d authorised", got, before-due-1, np+no, due, max)
			}
			var esc ledger.Escrow
			e.led.query(t, "escrow/"+p.EscrowID.String(), &esc)
			if esc.Fee != due || esc.ReceiptID.String() != p.ReceiptID {
				t.Errorf("escrow %+v, want fee %d", esc, due)
			}
			t.Logf("%s: authorised %d, charged %d for %d+%d tokens", sch, max, due, np, no)
		})
	}

	// A payer that hangs up on an upto stream pays for what was generated.
	// It streams 5 tokens, then waits for the payer to hang up.
	var hold atomic.Int64
	hold.Store(5)
	held := make(chan struct{}, 1)
	slow, err := New(Options{Backend: slowStream{Backend: testWorker(t), delay: 3 * time.Millisecond, hold: &hold, held: held}, Auth: oneKey("k"), X402: e.x})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(slow)
	defer ts.Close()
	const long = `{"model":"stories260K","prompt":"Once upon a time","max_tokens":100,"temperature":0,"stream":true}`
	before := e.balance(t, payer)
	res, b := post(t, ts.URL+"/v1/completions", long)
	if res.StatusCode != http.StatusPaymentRequired {
		t.Fatalf("%d %s", res.StatusCode, b)
	}
	q := scheme(decodeHeader[PaymentRequired](t, res.Header.Get(HeaderPaymentRequired)), SchemeUpto)
	max, _ := strconv.ParseUint(q.Accepts[0].Amount, 10, 64)
	req, _ := http.NewRequest("POST", ts.URL+"/v1/completions", strings.NewReader(long))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderPaymentSignature, e.pay(t, q, payer, nil))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	for chunks := 0; chunks < 2 && sc.Scan(); {
		if strings.HasPrefix(sc.Text(), "data: {") {
			chunks++
		}
	}
	<-held
	resp.Body.Close()
	var p inference.Charge
	select {
	case p = <-e.submitted:
	case <-time.After(20 * time.Second):
		t.Fatal("the hung-up stream's receipt was not queued")
	}
	np, no, steps := tokens(t, p.Receipt)
	if no == 0 || no >= 100 || steps != np+no-1 || p.RequestSteps != uint64(np+100-1) {
		t.Fatalf("hung-up receipt: %d+%d tokens, %d steps, request steps %d", np, no, steps, p.RequestSteps)
	}
	e.publish(t, p)
	due := 2 * uint64(np+no)
	if got := e.balance(t, payer); got != before-due-1 {
		t.Errorf("payer %d, want %d: %d+%d tokens generated cost %d of the %d authorised", got, before-due-1, np, no, due, max)
	}
	if v, err := testWorker(t).Verify(context.Background(), p.Receipt, true); err != nil || !v.Match {
		t.Errorf("the hung-up receipt does not replay: %+v %v", v, err)
	}
	t.Logf("hung up: authorised %d, charged %d for %d+%d tokens", max, due, np, no)
}
