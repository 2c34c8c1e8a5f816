package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/inference"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/testutil"
)

// memLedger runs the ledger's state machine in memory, one block per
// transaction: the X402Ledger of the tests.
type memLedger struct {
	mu    sync.Mutex
	l     *ledger.Ledger
	h     uint64
	chain string
}

func (m *memLedger) ChainID(context.Context) (string, error) { return m.chain, nil }

func (m *memLedger) Account(_ context.Context, a ledger.Address) (ledger.Account, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var acct ledger.Account
	b, err := ledger.QueryState(m.l.Store(), "account/"+a.String(), nil)
	if err != nil {
		return acct, err
	}
	return acct, json.Unmarshal(b, &acct)
}

func (m *memLedger) query(t *testing.T, path string, v any) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	b, err := ledger.QueryState(m.l.Store(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func (m *memLedger) Height(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(m.h), nil
}

func (m *memLedger) BroadcastCommit(_ context.Context, tx *ledger.Tx) (client.Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	raw := tx.Encode()
	if r := ledger.NewChecker(m.l).Check(raw); r.Code != 0 {
		return client.Result{}, &client.RejectedError{Code: r.Code, Log: r.Log}
	}
	m.h++
	br, err := m.l.FinalizeBlock(ledger.BlockContext{Height: m.h, Time: 1_700_000_000 + int64(m.h)}, [][]byte{raw})
	if err != nil {
		return client.Result{}, err
	}
	sum := sha256.Sum256(raw)
	return client.Result{Hash: strings.ToUpper(hex.EncodeToString(sum[:])), Height: int64(m.h), Code: br.TxResults[0].Code, Log: br.TxResults[0].Log}, nil
}

func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("x402 test key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func addrOf(k ed25519.PrivateKey) ledger.Address {
	a, err := ledger.AddressOf(k.Public().(ed25519.PublicKey))
	if err != nil {
		panic(err)
	}
	return a
}

type x402Env struct {
	ts        *httptest.Server
	led       *memLedger
	x         *X402
	submitted chan inference.Charge
	now       time.Time
	nowMu     sync.Mutex
	gen       *counting
}

func (e *x402Env) clock() time.Time { e.nowMu.Lock(); defer e.nowMu.Unlock(); return e.now }
func (e *x402Env) advance(d time.Duration) {
	e.nowMu.Lock()
	e.now = e.now.Add(d)
	e.nowMu.Unlock()
}

// workerKey is the key of the test worker, which signs its receipts: the
// x402 payTo, so that the tests can publish what it queues.
func workerKey(t testing.TB) ed25519.PrivateKey { return testWorker(t).Key().Private }

func newX402Env(t *testing.T) *x402Env {
	t.Helper()
	w := testWorker(t)
	p := ledger.DefaultParams()
	p.ModelQuorumBps = 0
	g := ledger.Genesis{ChainID: "x402-test", Params: p, Accounts: []ledger.GenesisAccount{
		{Address: addrOf(testKey("payer")), Balance: 1_000_000}, {Address: addrOf(testKey("poor")), Balance: 10},
		{Address: addrOf(workerKey(t)), Balance: 1_000_000},
	}}
	l := ledger.New(ledger.NewMemStore(), ledger.Hooks{Receipts: ledger.Receipts{}})
	if err := l.InitGenesis(g); err != nil {
		t.Fatal(err)
	}
	e := &x402Env{led: &memLedger{l: l, chain: g.ChainID}, submitted: make(chan inference.Charge, 10), now: time.Unix(1_800_000_000, 0)}
	mi := w.Models()[0]
	reg := &ledger.Tx{ChainID: g.ChainID, Fee: 1, Msg: &ledger.MsgRegisterModel{ModelID: ledger.Hash(mi.ID), Name: mi.Name, SpecVersion: 2}}
	reg.Sign(workerKey(t))
	if res, err := e.led.BroadcastCommit(context.Background(), reg); err != nil || res.Code != 0 {
		t.Fatalf("registering the model: %v %+v", err, res)
	}
	bond := &ledger.Tx{ChainID: g.ChainID, Nonce: 1, Fee: 1, Msg: &ledger.MsgBond{Amount: p.MinWorkerStake}}
	bond.Sign(workerKey(t))
	if res, err := e.led.BroadcastCommit(context.Background(), bond); err != nil || res.Code != 0 {
		t.Fatalf("bonding the worker: %v %+v", err, res)
	}
	e.x = &X402{Ledger: e.led, PayTo: addrOf(workerKey(t)), PricePerToken: 2, Now: e.clock,
		Submit: func(p inference.Charge) error { e.submitted <- p; return nil }}
	e.ts, e.gen = newServer(t, func(o *Options) { o.Auth = oneKey("k"); o.X402 = e.x })
	return e
}

const x402Body = `{"model":"stories260K","messages":[{"role":"user","content":"Lily"}],"max_tokens":8,"seed":3}`

func decodeHeader[T any](t *testing.T, h string) T {
	t.Helper()
	var v T
	b, err := base64.StdEncoding.DecodeString(h)
	if err != nil {
		t.Fatalf("header %q: %v", h, err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("header %s: %v", b, err)
	}
	return v
}

// quote asks for the price of body: a 402 with PAYMENT-REQUIRED.
func (e *x402Env) quote(t *testing.T, body string) PaymentRequired {
	t.Helper()
	return e.quoteAt(t, "/v1/chat/completions", body)
}

// quoteAt asks for the price of body at path.
func (e *x402Env) quoteAt(t *testing.T, path, body string) PaymentRequired {
	t.Helper()
	res, b := post(t, e.ts.URL+path, body)
	if res.StatusCode != http.StatusPaymentRequired {
		t.Fatalf("status %d: %s", res.StatusCode, b)
	}
	return decodeHeader[PaymentRequired](t, res.Header.Get(HeaderPaymentRequired))
}

// scheme keeps the requirements of one scheme in a quote (first).
func scheme(q PaymentRequired, name string) PaymentRequired {
	for _, a := range q.Accepts {
		if a.Scheme == name {
			q.Accepts = []PaymentRequirements{a}
			return q
		}
	}
	panic("no " + name + " in the quote")
}

// pay builds the PAYMENT-SIGNATURE of a quote signed by key, with mod
// applied to the escrow transaction before it is signed.
func (e *x402Env) pay(t *testing.T, q PaymentRequired, key ed25519.PrivateKey, mod func(*ledger.Tx)) string {
	t.Helper()
	acc := q.Accepts[0]
	a, err := e.led.Account(context.Background(), addrOf(key))
	if err != nil {
		t.Fatal(err)
	}
	amount, _ := strconv.ParseUint(acc.Amount, 10, 64)
	payTo, _ := ledger.ParseAddress(acc.PayTo)
	model, _ := ledger.ParseHash(acc.Extra.ModelID)
	req, _ := ledger.ParseHash(acc.Extra.RequestHash)
	price, _ := strconv.ParseUint(acc.Extra.PricePerToken, 10, 64) // upto; absent (0) for exact
	tx := &ledger.Tx{ChainID: acc.Extra.ChainID, Nonce: a.Nonce, Fee: 1,
		Msg: &ledger.MsgOpenEscrow{Worker: payTo, ModelID: model, Fee: amount, Request: req, PricePerToken: price}}
	if mod != nil {
		mod(tx)
	}
	tx.Sign(key)
	p := PaymentPayload{X402Version: X402Version, Accepted: acc}
	p.Payload.Transaction = base64.StdEncoding.EncodeToString(tx.Encode())
	b, _ := json.Marshal(p)
	return base64.StdEncoding.EncodeToString(b)
}

func (e *x402Env) balance(t *testing.T, k ed25519.PrivateKey) uint64 {
	a, err := e.led.Account(context.Background(), addrOf(k))
	if err != nil {
		t.Fatal(err)
	}
	return a.Balance
}

// TestX402Pay: a request without an API key is quoted, paid with the
// payer's own escrow transaction, served, and its receipt queued for
// publication against that escrow.
func TestX402Pay(t *testing.T) {
	e := newX402Env(t)
	payer := testKey("payer")
	before := e.balance(t, payer)
	q := e.quote(t, x402Body)
	if e.gen.n.Load() != 1 || e.balance(t, payer) != before {
		t.Fatalf("a quote ran %d generations (want 1, stopped before a slot) and moved the balance", e.gen.n.Load())
	}
	if q.X402Version != 2 || q.Error != string(ReasonPaymentRequired) || len(q.Accepts) != 2 || !strings.HasSuffix(q.Resource.URL, "/v1/chat/completions") {
		t.Fatalf("quote %+v", q)
	}
	acc := q.Accepts[0]
	if acc.Scheme != "exact" || acc.Network != "cosmos:x402-test" || acc.Asset != X402Asset || acc.PayTo != addrOf(workerKey(t)).String() || acc.MaxTimeoutSeconds != 120 || acc.Extra.PricePerToken != "" {
		t.Fatalf("requirements %+v", acc)
	}
	// The same quote, as a maximum with its price per token.
	up := q.Accepts[1]
	if up.Scheme != SchemeUpto || up.Extra.PricePerToken != "2" || up.Amount != acc.Amount || up.Extra.Nonce != acc.Extra.Nonce || up.Extra.RequestHash != acc.Extra.RequestHash || up.PayTo != acc.PayTo {
		t.Fatalf("upto requirements %+v", up)
	}
	q.Accepts = q.Accepts[:1]
	hdr := e.pay(t, q, payer, nil)
	res, b := post(t, e.ts.URL+"/v1/chat/completions", x402Body, HeaderPaymentSignature, hdr)
	if res.StatusCode != 200 {
		t.Fatalf("paid request: %d %s", res.StatusCode, b)
	}
	r := decodeResp(t, b)
	sr := decodeHeader[SettleResponse](t, res.Header.Get(HeaderPaymentResponse))
	if !sr.Success || sr.Network != acc.Network || sr.Payer != addrOf(payer).String() || len(sr.Transaction) != 64 || sr.Extra["receiptId"] != r.Verdict.ReceiptID {
		t.Fatalf("settlement %+v, receipt %s", sr, r.Verdict.ReceiptID)
	}
	// amount = price x (prompt + most completion tokens)
	want := 2 * (r.Usage.PromptTokens + 8)
	if acc.Amount != strconv.Itoa(want) {
		t.Errorf("amount %s, want %d", acc.Amount, want)
	}
	var esc ledger.Escrow
	e.led.query(t, "escrow/"+sr.Extra["escrowId"].(string), &esc)
	p := <-e.submitted
	rh, err := ledger.ReceiptRequest(p.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	if esc.Requester != addrOf(payer) || esc.Request != rh || p.EscrowID != esc.EscrowID || p.ReceiptID != r.Verdict.ReceiptID || strconv.FormatUint(esc.Fee, 10) != acc.Amount {
		t.Fatalf("escrow %+v, pending %+v, receipt request %s", esc, p, rh)
	}
	if got := e.balance(t, payer); got != before-esc.Fee-1 {
		t.Errorf("payer balance %d, want %d", got, before-esc.Fee-1)
	}

	// The same payment again is refused, nothing charged.
	paid := e.balance(t, payer)
	res, b = post(t, e.ts.URL+"/v1/chat/completions", x402Body, HeaderPaymentSignature, hdr)
	checkRefused(t, res, b, ReasonReplayed)
	if e.balance(t, payer) != paid {
		t.Error("a replay was charged")
	}
	// The payer may commit to its own audit secret in the escrow.
	commit := sha256.Sum256([]byte("secret"))
	hdr = e.pay(t, e.quote(t, x402Body), payer, func(tx *ledger.Tx) { tx.Msg.(*ledger.MsgOpenEscrow).AuditCommit = commit })
	res, b = post(t, e.ts.URL+"/v1/chat/completions", x402Body, HeaderPaymentSignature, hdr)
	if res.StatusCode != 200 {
		t.Fatalf("escrow with an audit commitment: %d %s", res.StatusCode, b)
	}
	sr = decodeHeader[SettleResponse](t, res.Header.Get(HeaderPaymentResponse))
	e.led.query(t, "escrow/"+sr.Extra["escrowId"].(string), &esc)
	if esc.AuditCommit != commit {
		t.Fatalf("escrow %+v lost the audit commitment", esc)
	}
	<-e.submitted
	// An API key still works as before (the account pays nothing here:
	// no meter).
	res, b = post(t, e.ts.URL+"/v1/chat/completions", x402Body, "Authorization", "Bearer k")
	if res.StatusCode != 200 || res.Header.Get(HeaderPaymentResponse) != "" {
		t.Fatalf("API key: %d %s", res.StatusCode, b)
	}
}

func checkRefused(t *testing.T, res *http.Response, body []byte, want X402Reason) {
	t.Helper()
	if res.StatusCode != http.StatusPaymentRequired {
		t.Fatalf("status %d, want 402: %s", res.StatusCode, body)
	}
	pr := decodeHeader[PaymentRequired](t, res.Header.Get(HeaderPaymentRequired))
	if pr.X402Version != 2 || pr.Error != string(want) || pr.Accepts == nil {
		t.Fatalf("PAYMENT-REQUIRED %+v, want error %q (body %s)", pr, want, body)
	}
	var eb struct {
		Error struct{ Code string } `json:"error"`
	}
	if json.Unmarshal(body, &eb); eb.Error.Code != string(want) {
		t.Fatalf("body %s, want code %q", body, want)
	}
	if res.Header.Get(HeaderPaymentResponse) != "" {
		t.Fatal("a refused payment has a PAYMENT-RESPONSE")
	}
}

// TestX402Refusals: expired, underfunded, wrong-network, tampered and
// malformed payments are refused with the x402 error shape and nothing is
// charged or generated.
func TestX402Refusals(t *testing.T) {
	for _, sch := range []string{SchemeExact, SchemeUpto} {
		t.Run(sch, func(t *testing.T) { testX402Refusals(t, sch) })
	}
}

func testX402Refusals(t *testing.T, sch string) {
	e := newX402Env(t)
	payer, poor := testKey("payer"), testKey("poor")
	for _, tc := range []struct {
		name   string
		key    ed25519.PrivateKey
		body   string // sent with the payment (default x402Body)
		header func(q PaymentRequired) string
		want   X402Reason
	}{
		{name: "expired", key: payer, want: ReasonExpired, header: func(q PaymentRequired) string {
			h := e.pay(t, q, payer, nil)
			e.advance(121 * time.Second)
			return h
		}},
		{name: "underfunded", key: poor, want: ReasonInsufficientFunds},
		{name: "wrong network (transaction)", key: payer, want: ReasonInvalidNetwork, header: func(q PaymentRequired) string {
			return e.pay(t, q, payer, func(tx *ledger.Tx) { tx.ChainID = "other-chain" })
		}},
		{name: "wrong network (accepted)", key: payer, want: ReasonInvalidNetwork, header: func(q PaymentRequired) string {
			q.Accepts[0].Network = "eip155:8453"
			return e.pay(t, q, payer, nil)
		}},
		{name: "scheme", key: payer, want: ReasonInvalidScheme, header: func(q PaymentRequired) string {
			q.Accepts[0].Scheme = "deferred"
			return e.pay(t, q, payer, nil)
		}},
		{name: "exact with a price per token", key: payer, want: ReasonInvalidPayload, header: func(q PaymentRequired) string {
			q.Accepts[0].Scheme = SchemeExact
			return e.pay(t, q, payer, func(tx *ledger.Tx) { tx.Msg.(*ledger.MsgOpenEscrow).PricePerToken = 2 })
		}},
		{name: "upto price lowered", key: payer, want: ReasonAmountTooLow, header: func(q PaymentRequired) string {
			q.Accepts[0].Scheme = SchemeUpto
			return e.pay(t, q, payer, func(tx *ledger.Tx) { tx.Msg.(*ledger.MsgOpenEscrow).PricePerToken = 1 })
		}},
		{name: "upto without a price", key: payer, want: ReasonAmountTooLow, header: func(q PaymentRequired) string {
			q.Accepts[0].Scheme = SchemeUpto
			return e.pay(t, q, payer, func(tx *ledger.Tx) { tx.Msg.(*ledger.MsgOpenEscrow).PricePerToken = 0 })
		}},
		{name: "upto price raised", key: payer, want: ReasonInvalidPayload, header: func(q PaymentRequired) string {
			q.Accepts[0].Scheme = SchemeUpto
			return e.pay(t, q, payer, func(tx *ledger.Tx) { tx.Msg.(*ledger.MsgOpenEscrow).PricePerToken = 3 })
		}},
		{name: "replayed quote", key: payer, want: ReasonReplayed, header: func(q PaymentRequired) string {
			h := e.pay(t, q, payer, nil)
			if res, b := post(t, e.ts.URL+"/v1/chat/completions", x402Body, HeaderPaymentSignature, h); res.StatusCode != 200 {
				t.Fatalf("first payment: %d %s", res.StatusCode, b)
			}
			<-e.submitted
			return h
		}},
		{name: "tampered request", key: payer, want: ReasonRequestMismatch,
			body: strings.Replace(x402Body, "Lily", "Tom", 1)},
		{name: "tampered max_tokens", key: payer, want: ReasonRequestMismatch,
			body: strings.Replace(x402Body, `"max_tokens":8`, `"max_tokens":9`, 1)},
		{name: "amount lowered", key: payer, want: ReasonAmountTooLow, header: func(q PaymentRequired) string {
			return e.pay(t, q, payer, func(tx *ledger.Tx) { tx.Msg.(*ledger.MsgOpenEscrow).Fee-- })
		}},
		{name: "another worker", key: payer, want: ReasonInvalidPayload, header: func(q PaymentRequired) string {
			return e.pay(t, q, payer, func(tx *ledger.Tx) { tx.Msg.(*ledger.MsgOpenEscrow).Worker = addrOf(testKey("other")) })
		}},
		{name: "forged nonce", key: payer, want: ReasonInvalidPayload, header: func(q PaymentRequired) string {
			n, _ := base64.StdEncoding.DecodeString(q.Accepts[0].Extra.Nonce)
			n[30] ^= 1
			q.Accepts[0].Extra.Nonce = base64.StdEncoding.EncodeToString(n)
			return e.pay(t, q, payer, nil)
		}},
		{name: "tampered signature", key: payer, want: ReasonInvalidSignature, header: func(q PaymentRequired) string {
			h := e.pay(t, q, payer, nil)
			p := decodeHeader[PaymentPayload](t, h)
			raw, _ := base64.StdEncoding.DecodeString(p.Payload.Transaction)
			var tx ledger.Tx
			json.Unmarshal(raw, &tx)
			tx.Msg.(*ledger.MsgOpenEscrow).Fee++ // the payer signed another amount
			p.Payload.Transaction = base64.StdEncoding.EncodeToString(tx.Encode())
			b, _ := json.Marshal(p)
			return base64.StdEncoding.EncodeToString(b)
		}},
		{name: "not base64", key: payer, want: ReasonInvalidPayload, header: func(PaymentRequired) string { return "%%%" }},
		{name: "not JSON", key: payer, want: ReasonInvalidPayload, header: func(PaymentRequired) string { return base64.StdEncoding.EncodeToString([]byte("{")) }},
		{name: "oversized", key: payer, want: ReasonInvalidPayload, header: func(PaymentRequired) string { return strings.Repeat("A", MaxPaymentHeaderBytes+4) }},
		{name: "version 1", key: payer, want: ReasonInvalidPayload, header: func(q PaymentRequired) string {
			p := decodeHeader[PaymentPayload](t, e.pay(t, q, payer, nil))
			p.X402Version = 1
			b, _ := json.Marshal(p)
			return base64.StdEncoding.EncodeToString(b)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := scheme(e.quote(t, x402Body), sch)
			hdr := ""
			if tc.header != nil {
				hdr = tc.header(q)
			} else {
				hdr = e.pay(t, q, tc.key, nil)
			}
			body := x402Body
			if tc.body != "" {
				body = tc.body
			}
			before, gens := e.balance(t, tc.key), e.gen.n.Load()
			res, b := post(t, e.ts.URL+"/v1/chat/completions", body, HeaderPaymentSignature, hdr)
			checkRefused(t, res, b, tc.want)
			if e.balance(t, tc.key) != before {
				t.Errorf("charged %d", before-e.balance(t, tc.key))
			}
			if n := e.gen.n.Load() - gens; n > 1 {
				t.Errorf("%d generations", n)
			}
			select {
			case p := <-e.submitted:
				t.Errorf("a refused payment queued receipt %s", p.ReceiptID)
			default:
			}
		})
	}
}

// TestX402KeysStay: x402 sits beside API keys: a wrong key is still 401
// (not a free or x402 request), and x402 without keys is refused at New.
func TestX402KeysStay(t *testing.T) {
	e := newX402Env(t)
	res, b := post(t, e.ts.URL+"/v1/chat/completions", x402Body, "Authorization", "Bearer wrong")
	if res.StatusCode != http.StatusUnauthorized || res.Header.Get(HeaderPaymentRequired) != "" {
		t.Fatalf("wrong key: %d %s", res.StatusCode, b)
	}
	if _, err := New(Options{Backend: stubBackend{}, NoAuth: true, X402: &X402{Ledger: e.led, PayTo: e.x.PayTo, PricePerToken: 1, Submit: e.x.Submit}}); err == nil {
		t.Fatal("x402 without API keys accepted")
	}
	if _, err := New(Options{Backend: stubBackend{}, Auth: oneKey("k"), X402: &X402{Ledger: e.led, PricePerToken: 1, Submit: e.x.Submit}}); err == nil {
		t.Fatal("x402 without payTo accepted")
	}
}

// TestX402OfficialClient pays through the official x402 TypeScript client
// (@x402/core's x402Client and x402HTTPClient) with a client scheme for
// Verdict's network registered in the test. It needs @x402/core in
// e2e/node_modules (or a directory holding node_modules/@x402/core in
// $VERDICT_X402_DIR) and skips without it.
func TestX402OfficialClient(t *testing.T) {
	for _, sch := range []string{SchemeExact, SchemeUpto} {
		t.Run(sch, func(t *testing.T) { testX402OfficialClient(t, sch) })
	}
}

// testX402OfficialClient pays with scheme sch and publishes the receipt
// as the worker's outbox would: under upto the payer gets back, on the
// ledger, what the tokens generated did not cost.
func testX402OfficialClient(t *testing.T, sch string) {
	dir := os.Getenv("VERDICT_X402_DIR")
	if dir == "" {
		dir = filepath.Join(testutil.RepoRoot(t), "e2e")
	}
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "@x402", "core", "package.json"))
	}
	if err != nil {
		t.Skipf("node or @x402/core missing (%v): add @x402/core to e2e/package.json or set VERDICT_X402_DIR", err)
	}
	script, err := os.ReadFile(filepath.Join("testdata", "x402client.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	e := newX402Env(t)
	payer := testKey("payer")
	before := e.balance(t, payer)
	// Room for 200 tokens; the answer stops at its first full stop.
	body := strings.Replace(x402Body, `"max_tokens":8`, `"max_tokens":200,"stop":["."]`, 1)
	cmd := exec.Command(node, "--input-type=module")
	cmd.Dir, cmd.Stdin = dir, bytes.NewReader(script)
	cmd.Env = append(os.Environ(), "URL="+e.ts.URL+"/v1/chat/completions", "BODY="+body, "SEED="+hex.EncodeToString(payer.Seed()), "NONCE=0", "CHAIN=x402-test", "SCHEME="+sch)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var got struct {
		Required  PaymentRequired
		Settle    SettleResponse
		ReceiptID string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	p := <-e.submitted
	var esc ledger.Escrow
	e.led.query(t, "escrow/"+p.EscrowID.String(), &esc)
	info, err := ledger.Receipts{}.VerifyReceipt(p.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	rh := info.Request
	if p.RequestSteps != 0 { // stopped early at the full stop
		rh = info.RequestAt(p.RequestSteps)
	}
	if !got.Settle.Success || got.Settle.Payer != addrOf(payer).String() || got.Settle.Extra["receiptId"] != got.ReceiptID || p.ReceiptID != got.ReceiptID ||
		esc.Requester != addrOf(payer) || esc.Request != rh || strconv.FormatUint(esc.Fee, 10) != got.Required.Accepts[0].Amount {
		t.Fatalf("settle %+v, escrow %+v, receipt %s", got.Settle, esc, got.ReceiptID)
	}
	if e.balance(t, payer) != before-esc.Fee-1 {
		t.Errorf("payer balance %d, want %d", e.balance(t, payer), before-esc.Fee-1)
	}
	if got.Settle.Amount != strconv.FormatUint(p.Fee, 10) {
		t.Errorf("settled %s, the receipt is queued for %d", got.Settle.Amount, p.Fee)
	}
	e.publish(t, p)
	np, no, _ := tokens(t, p.Receipt)
	due := esc.Fee
	if sch == SchemeUpto {
		due = 2 * uint64(np+no)
		if esc.PricePerToken != 2 || due >= esc.Fee {
			t.Fatalf("upto escrow %+v: %d+%d tokens cost %d, not less than the %d authorised", esc, np, no, due, esc.Fee)
		}
	}
	if got := e.balance(t, payer); got != before-due-1 {
		t.Errorf("payer balance %d after publication, want %d (%d of the %d authorised returned)", got, before-due-1, esc.Fee-due, esc.Fee)
	}
	t.Logf("%s: authorised %d, charged %d, returned %d", sch, esc.Fee, due, esc.Fee-due)
}

// TestX402Facilitator: /x402/supported, /verify and /settle let another
// resource server use the ledger as its x402 facilitator; verify charges
// nothing, settle submits the payer's escrow once.
func TestX402Facilitator(t *testing.T) {
	e := newX402Env(t)
	payer := testKey("payer")
	res, b := get(t, e.ts.URL+"/x402/supported")
	var sup SupportedResponse
	if json.Unmarshal(b, &sup); res.StatusCode != 200 || len(sup.Kinds) != 2 || sup.Kinds[0] != (SupportedKind{2, "exact", "cosmos:x402-test"}) || sup.Kinds[1] != (SupportedKind{2, "upto", "cosmos:x402-test"}) {
		t.Fatalf("supported: %d %s", res.StatusCode, b)
	}
	q := e.quote(t, x402Body)
	body := func(hdr string, req PaymentRequirements) string {
		p, _ := base64.StdEncoding.DecodeString(hdr)
		vb, _ := json.Marshal(VerifyRequest{X402Version: 2, PaymentPayload: p, PaymentRequirements: req})
		return string(vb)
	}
	hdr := e.pay(t, q, payer, nil)
	before := e.balance(t, payer)
	var vr VerifyResponse
	res, b = post(t, e.ts.URL+"/x402/verify", body(hdr, q.Accepts[0]))
	if json.Unmarshal(b, &vr); res.StatusCode != 200 || !vr.IsValid || vr.Payer != addrOf(payer).String() || e.balance(t, payer) != before {
		t.Fatalf("verify: %d %s", res.StatusCode, b)
	}
	other := q.Accepts[0]
	other.Amount = strconv.Itoa(1 << 20) // more than the escrow holds
	res, b = post(t, e.ts.URL+"/x402/verify", body(hdr, other))
	if json.Unmarshal(b, &vr); res.StatusCode != 200 || vr.IsValid || vr.InvalidReason != string(ReasonAmountTooLow) {
		t.Fatalf("verify with a larger amount: %s", b)
	}
	other = q.Accepts[0]
	other.Extra.RequestHash = strings.Repeat("ab", 32)
	res, b = post(t, e.ts.URL+"/x402/verify", body(hdr, other))
	if json.Unmarshal(b, &vr); res.StatusCode != 200 || vr.IsValid || vr.InvalidReason != string(ReasonRequestMismatch) {
		t.Fatalf("verify for another request: %s", b)
	}
	// An upto payment verifies against upto requirements only, with the
	// price per token they name.
	uq := scheme(q, SchemeUpto)
	uhdr := e.pay(t, uq, payer, nil)
	for _, tc := range []struct {
		req  PaymentRequirements
		hdr  string
		want string // invalid reason; "" valid
	}{
		{uq.Accepts[0], uhdr, ""},
		{q.Accepts[0], uhdr, string(ReasonInvalidScheme)},
		{uq.Accepts[0], hdr, string(ReasonInvalidScheme)},
		{func() PaymentRequirements { r := uq.Accepts[0]; r.Extra.PricePerToken = "3"; return r }(), uhdr, string(ReasonAmountTooLow)},
		{func() PaymentRequirements { r := uq.Accepts[0]; r.Extra.PricePerToken = ""; return r }(), uhdr, string(ReasonInvalidPayload)},
	} {
		res, b = post(t, e.ts.URL+"/x402/verify", body(tc.hdr, tc.req))
		vr = VerifyResponse{}
		if json.Unmarshal(b, &vr); res.StatusCode != 200 || vr.IsValid != (tc.want == "") || vr.InvalidReason != tc.want {
			t.Errorf("verify upto (%s, price %q): %s, want %q", tc.req.Scheme, tc.req.Extra.PricePerToken, b, tc.want)
		}
	}
	var sr SettleResponse
	res, b = post(t, e.ts.URL+"/x402/settle", body(hdr, q.Accepts[0]))
	if json.Unmarshal(b, &sr); res.StatusCode != 200 || !sr.Success || len(sr.Transaction) != 64 {
		t.Fatalf("settle: %d %s", res.StatusCode, b)
	}
	var esc ledger.Escrow
	e.led.query(t, "escrow/"+sr.Extra["escrowId"].(string), &esc)
	if esc.Requester != addrOf(payer) || e.balance(t, payer) != before-esc.Fee-1 {
		t.Fatalf("escrow %+v, balance %d", esc, e.balance(t, payer))
	}
	res, b = post(t, e.ts.URL+"/x402/settle", body(hdr, q.Accepts[0]))
	if json.Unmarshal(b, &sr); res.StatusCode != 200 || sr.Success || sr.ErrorReason != string(ReasonReplayed) || e.balance(t, payer) != before-esc.Fee-1 {
		t.Fatalf("settle again: %s", b)
	}
	res, b = post(t, e.ts.URL+"/x402/settle", `{"x402Version":2}`)
	if json.Unmarshal(b, &sr); res.StatusCode != 200 || sr.Success || sr.ErrorReason != string(ReasonInvalidPayload) {
		t.Fatalf("settle of nothing: %s", b)
	}
}

// unbound is a backend that generates without calling Bind.
type unbound struct{ Backend }

func (u unbound) Generate(ctx context.Context, req inference.Request, f func(inference.Delta) error) (*inference.Result, error) {
	req.Bind = nil
	return u.Backend.Generate(ctx, req, f)
}

// TestX402UnboundBackend: a backend that skips Bind is never served for
// free: no quote, no answer.
func TestX402UnboundBackend(t *testing.T) {
	e := newX402Env(t)
	q := e.quote(t, x402Body)
	hdr := e.pay(t, q, testKey("payer"), nil)
	s, err := New(Options{Backend: unbound{testWorker(t)}, Auth: oneKey("k"), X402: e.x})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	before := e.balance(t, testKey("payer"))
	defer func() {
		if e.balance(t, testKey("payer")) != before {
			t.Error("charged")
		}
		select {
		case p := <-e.submitted:
			t.Errorf("receipt %s queued", p.ReceiptID)
		default:
		}
	}()
	for _, h := range []string{"", hdr} {
		var res *http.Response
		var b []byte
		if h == "" {
			res, b = post(t, ts.URL+"/v1/chat/completions", x402Body)
		} else {
			res, b = post(t, ts.URL+"/v1/chat/completions", x402Body, HeaderPaymentSignature, h)
		}
		if res.StatusCode == 200 || res.StatusCode == 402 {
			t.Fatalf("paid %v: status %d: %s", h != "", res.StatusCode, b)
		}
	}
}

// TestX402Stream: a paid stream carries PAYMENT-RESPONSE (the escrow; its
// headers go out before the receipt exists) and the receipt in its trailer.
func TestX402Stream(t *testing.T) {
	e := newX402Env(t)
	body := strings.Replace(x402Body, `"seed":3`, `"seed":3,"stream":true`, 1)
	hdr := e.pay(t, e.quote(t, body), testKey("payer"), nil)
	res, b := post(t, e.ts.URL+"/v1/chat/completions", body, HeaderPaymentSignature, hdr)
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("paid stream: %d %s", res.StatusCode, b)
	}
	sr := decodeHeader[SettleResponse](t, res.Header.Get(HeaderPaymentResponse))
	p := <-e.submitted
	if !sr.Success || sr.Extra["escrowId"] != p.EscrowID.String() || res.Trailer.Get("X-Verdict-Receipt") != p.ReceiptID {
		t.Fatalf("settlement %+v, trailer %q, queued %s for escrow %s", sr, res.Trailer.Get("X-Verdict-Receipt"), p.ReceiptID, p.EscrowID)
	}
	// The settlement's final form follows as a trailer: the receipt, and
	// under upto what it costs.
	hdr = e.pay(t, scheme(e.quote(t, body), SchemeUpto), testKey("payer"), nil)
	res, b = post(t, e.ts.URL+"/v1/chat/completions", body, HeaderPaymentSignature, hdr)
	if res.StatusCode != 200 {
		t.Fatalf("paid upto stream: %d %s", res.StatusCode, b)
	}
	p = <-e.submitted
	head := decodeHeader[SettleResponse](t, res.Header.Get(HeaderPaymentResponse))
	tr := decodeHeader[SettleResponse](t, res.Trailer.Get(HeaderPaymentResponse))
	if head.Amount != tr.Extra["maxAmount"] || tr.Amount != strconv.FormatUint(p.Fee, 10) || tr.Extra["receiptId"] != p.ReceiptID || tr.Transaction != head.Transaction {
		t.Fatalf("upto stream: header %+v, trailer %+v, queued %s for %d", head, tr, p.ReceiptID, p.Fee)
	}
}

// TestAttackIdempotencyFlush: without an API key, a caller sends x402
// payments each signed by a key made for the request (refused: 402), each
// with its own Idempotency-Key. Each refusal was stored under an account
// of its own, and the cache, full, evicted the largest account first: the
// paying customer's. Its retry of "order-42" then ran (and was billed)
// again. Now a 402 is never stored.
func TestAttackIdempotencyFlush(t *testing.T) {
	e := newX402Env(t)
	s, err := New(Options{Backend: e.gen, Auth: oneKey("k"), X402: e.x, IdempotencyBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	legit := `{"model":"stories260K","messages":[{"role":"user","content":"Lily"}],"max_tokens":8,"seed":3}`
	post(t, ts.URL+"/v1/chat/completions", legit, "Authorization", "Bearer k", "Idempotency-Key", "order-42")
	nonce := ""
	bogus := func() string { return base64.StdEncoding.EncodeToString(bogusPayment(nonce)) }
	for i := range 300 {
		r, _ := post(t, ts.URL+"/v1/chat/completions", `{"model":"stories260K","messages":[{"role":"user","content":"x"}]}`,
			HeaderPaymentSignature, bogus(), "Idempotency-Key", fmt.Sprintf("%0200d", i))
		if r.StatusCode != http.StatusPaymentRequired {
			t.Fatalf("bogus payment: %d", r.StatusCode)
		}
	}
	// Requests that fail before any payment (a body the API refuses, an
	// unknown model whose name the error repeats) under the same bogus
	// signatures, naming a real quote's nonce (one quote serves any
	// number of them): their 400s and 404s were stored, one account each.
	res, b := post(t, ts.URL+"/v1/chat/completions", `{"model":"stories260K","messages":[{"role":"user","content":"x"}]}`)
	if res.StatusCode != http.StatusPaymentRequired {
		t.Fatalf("quote: %d %s", res.StatusCode, b)
	}
	nonce = scheme(decodeHeader[PaymentRequired](t, res.Header.Get(HeaderPaymentRequired)), SchemeExact).Accepts[0].Extra.Nonce
	for i := range 300 {
		body := `{}`
		if i%2 == 1 {
			body = fmt.Sprintf(`{"model":"%0500d","messages":[{"role":"user","content":"x"}]}`, i)
		}
		r, _ := post(t, ts.URL+"/v1/chat/completions", body, HeaderPaymentSignature, bogus(), "Idempotency-Key", fmt.Sprintf("bad-%0200d", i))
		if r.StatusCode != http.StatusBadRequest && r.StatusCode != http.StatusNotFound {
			t.Fatalf("bogus request: %d", r.StatusCode)
		}
	}
	n := e.gen.n.Load()
	res, _ = post(t, ts.URL+"/v1/chat/completions", legit, "Authorization", "Bearer k", "Idempotency-Key", "order-42")
	if res.Header.Get("Idempotent-Replayed") != "true" || e.gen.n.Load() != n {
		t.Fatalf("the paying account's retry after the flood: replayed %q, %d generations more", res.Header.Get("Idempotent-Replayed"), e.gen.n.Load()-n)
	}
}

// TestAttackEscrowExpiresMidGeneration: a paid generation outlasts its
// escrow (escrowTimeout blocks: 50 s at 500 ms blocks), a long answer on
// a slow model or one read slowly. The escrow was refunded at its expiry
// with no receipt, and the worker's receipt then refused ("escrow not
// found"): the answer went unpaid. Now the generation is cut short
// EscrowMargin blocks before the expiry, answered (finish_reason length),
// and its receipt, queued at once, is published in time.
func TestAttackEscrowExpiresMidGeneration(t *testing.T) {
	e := newX402Env(t)
	// The answer takes 60 tokens of 25 ms, 60 blocks; the escrow expires
	// after 40, and the cut comes at 10, leaving 30 (750 ms) to answer and
	// publish.
	x := &X402{Ledger: e.led, PayTo: e.x.PayTo, PricePerToken: e.x.PricePerToken, Now: e.clock, Submit: e.x.Submit,
		EscrowTimeout: 40, EscrowMargin: 30, HeightPoll: 2 * time.Millisecond}
	s, err := New(Options{Backend: slow{e.gen, 25 * time.Millisecond}, Auth: oneKey("k"), X402: x})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	body := `{"model":"stories260K","messages":[{"role":"user","content":"Lily"}],"max_tokens":60,"seed":3}`
	res, b := post(t, ts.URL+"/v1/chat/completions", body)
	if res.StatusCode != http.StatusPaymentRequired {
		t.Fatalf("quote: %d %s", res.StatusCode, b)
	}
	q := scheme(decodeHeader[PaymentRequired](t, res.Header.Get(HeaderPaymentRequired)), SchemeExact)
	hdr := e.pay(t, q, testKey("payer"), nil)
	// Blocks keep coming while the answer is generated: one every 25 ms,
	// a token's time (the chain of the test has no clock of its own).
	stop := make(chan struct{})
	blocks := make(chan struct{})
	go func() {
		defer close(blocks)
		for {
			select {
			case <-stop:
				return
			case <-time.After(25 * time.Millisecond):
				e.led.mu.Lock()
				e.led.h++
				_, err := e.led.l.FinalizeBlock(ledger.BlockContext{Height: e.led.h, Time: 1_700_000_000 + int64(e.led.h)}, nil)
				e.led.mu.Unlock()
				if err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	res, b = post(t, ts.URL+"/v1/chat/completions", body, HeaderPaymentSignature, hdr)
	close(stop)
	<-blocks
	if res.StatusCode != http.StatusOK {
		t.Fatalf("paid request: %d %s", res.StatusCode, b)
	}
	var out struct {
		Choices []struct {
			FinishReason string `json:"finish_reason"`
		}
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		}
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.Choices[0].FinishReason != "length" || out.Usage.CompletionTokens >= 60 {
		t.Fatalf("answer: finish %q after %d tokens", out.Choices[0].FinishReason, out.Usage.CompletionTokens)
	}
	// What the worker's outbox sends at once: the receipt against the escrow.
	ch := <-e.submitted
	wk := workerKey(t)
	acct, _ := e.led.Account(context.Background(), addrOf(wk))
	tx := &ledger.Tx{ChainID: "x402-test", Nonce: acct.Nonce, Fee: 1, Msg: &ledger.MsgPublishReceipt{EscrowID: ch.EscrowID, Receipt: ch.Receipt, RequestSteps: ch.RequestSteps}}
	tx.Sign(wk)
	if r, err := e.led.BroadcastCommit(context.Background(), tx); err != nil || r.Code != 0 {
		t.Fatalf("publishing the cut answer's receipt: %v %+v", err, r)
	}
}

// TestAttackBacklogUnpaid: a caller floods a worker whose receipts wait
// in its outbox past its bound (the ledger slower than the worker), then
// pays for requests with x402. The API-key path refused new requests
// then; x402 served them, and their receipts, queued behind the backlog,
// could reach the ledger after their escrows' timeout: refunded, the
// answers free. Now x402 neither quotes nor takes a payment while the
// outbox is backlogged (429 with Retry-After, the escrow not submitted,
// nothing generated), and takes the same payment once it drains.
func TestAttackBacklogUnpaid(t *testing.T) {
	e := newX402Env(t)
	var backlogged atomic.Bool
	e.x.Backlogged = backlogged.Load
	payer := testKey("payer")
	q := scheme(e.quote(t, x402Body), SchemeUpto)
	hdr := e.pay(t, q, payer, nil)
	backlogged.Store(true)
	before, n := e.balance(t, payer), e.gen.n.Load()
	for _, h := range [][]string{nil, {HeaderPaymentSignature, hdr}} {
		res, b := post(t, e.ts.URL+"/v1/chat/completions", x402Body, h...)
		if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "publishing backlog") {
			t.Fatalf("backlogged, paid %v: %d (Retry-After %q) %s", h != nil, res.StatusCode, res.Header.Get("Retry-After"), b)
		}
	}
	if e.balance(t, payer) != before || e.gen.n.Load() != n || len(e.submitted) != 0 {
		t.Fatalf("backlogged: balance %d -> %d, %d generations, %d receipts queued", before, e.balance(t, payer), e.gen.n.Load()-n, len(e.submitted))
	}
	backlogged.Store(false)
	res, b := post(t, e.ts.URL+"/v1/chat/completions", x402Body, HeaderPaymentSignature, hdr)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("the same payment once drained: %d %s", res.StatusCode, b)
	}
	if c := <-e.submitted; c.ReceiptID != decodeResp(t, b).Verdict.ReceiptID {
		t.Fatalf("queued %s", c.ReceiptID)
	}
}

// parked holds every Generate until release is closed, telling entered.
type parked struct {
	Backend
	entered chan struct{}
	release chan struct{}
}

func (p parked) Generate(ctx context.Context, req inference.Request, f func(inference.Delta) error) (*inference.Result, error) {
	p.entered <- struct{}{}
	<-p.release
	return p.Backend.Generate(ctx, req, f)
}

// TestAttackQuoteFlood: anyone without a key may ask for a quote, and each
// renders the chat template and encodes the prompt (up to a second of CPU
// a megabyte), as many at once as callers send, beside the batch's own
// work; a payment naming no quote of the gateway (a key made for the
// request, any nonce) was rendered and encoded too before it was refused.
// Now at most maxQuoting quotes are computed at once (503 and Retry-After
// beyond), and a payment whose nonce this gateway did not issue is refused
// before its request is read.
func TestAttackQuoteFlood(t *testing.T) {
	e := newX402Env(t)
	p := parked{entered: make(chan struct{}, 64), release: make(chan struct{})}
	ts, _ := newServer(t, func(o *Options) {
		o.Auth, o.X402 = oneKey("k"), e.x
		p.Backend = o.Backend
		o.Backend = p
	})
	var once sync.Once
	release := func() { once.Do(func() { close(p.release) }) }
	defer release() // before the server's Cleanup waits for its requests
	n := maxQuoting()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r, b := post(t, ts.URL+"/v1/chat/completions", x402Body); r.StatusCode != http.StatusPaymentRequired {
				t.Errorf("a quote: %d %s", r.StatusCode, b)
			}
		}()
	}
	for range n {
		<-p.entered
	}
	// (Computed, it would wait for the release: the client gives up.)
	c := &http.Client{Timeout: 10 * time.Second}
	r, err := c.Post(ts.URL+"/v1/chat/completions", "application/json", strings.NewReader(x402Body))
	if err != nil {
		t.Fatalf("quote %d while %d are computed: %v, want 503 with Retry-After at once", n+1, n, err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Errorf("quote %d while %d are computed: %d %s, want 503 with Retry-After", n+1, n, r.StatusCode, b)
	}
	// A payment of a key made for the request, naming no quote: refused
	// at once (it does not wait for a place, nor reaches the backend).
	pb := bogusPayment(base64.StdEncoding.EncodeToString(make([]byte, 40)))
	// (Its body does not even parse: it is not read.)
	r, b = post(t, ts.URL+"/v1/chat/completions", `{"model":`, HeaderPaymentSignature, base64.StdEncoding.EncodeToString(pb))
	if r.StatusCode != http.StatusPaymentRequired || !strings.Contains(string(b), "not issued by this gateway") {
		t.Errorf("a payment naming no quote: %d %s", r.StatusCode, b)
	}
	select {
	case <-p.entered:
		t.Error("the payment naming no quote reached the backend")
	default:
	}
	release()
	wg.Wait()
	// Room again once they are done.
	go func() {
		for range p.entered {
		}
	}()
	if r, b := post(t, ts.URL+"/v1/chat/completions", x402Body); r.StatusCode != http.StatusPaymentRequired {
		t.Errorf("a quote after the others: %d %s", r.StatusCode, b)
	}
}

// TestAttackQuoteFloodMCP: MCP's generate asks for a quote the same way
// (no payment in its _meta): the quotes over MCP share the HTTP quotes'
// places, and a payment naming no quote of this gateway is refused before
// its request runs.
func TestAttackQuoteFloodMCP(t *testing.T) {
	e := newX402Env(t)
	p := parked{entered: make(chan struct{}, 64), release: make(chan struct{})}
	defer close(p.release)
	s, err := New(Options{Backend: p, Auth: oneKey("k"), X402: e.x})
	if err != nil {
		t.Fatal(err)
	}
	p.Backend = e.gen
	s.o.Backend = p
	for range cap(s.quoting) {
		s.quoting <- struct{}{} // every place taken (by HTTP quotes, say)
	}
	req := inference.Request{Model: "stories260K", Segments: nil, MaxTokens: 4}
	quoted := make(chan error, 1)
	go func() { _, err := s.PayGenerate(context.Background(), nil, req); quoted <- err }()
	select {
	case err := <-quoted:
		if !errors.Is(err, inference.ErrBusy) {
			t.Fatalf("an MCP quote while every place is taken: %v, want ErrBusy", err)
		}
	case <-p.entered:
		t.Fatal("an MCP quote was computed while every place was taken")
	}
	for range cap(s.quoting) {
		<-s.quoting
	}
	pb := bogusPayment(base64.StdEncoding.EncodeToString(make([]byte, 40)))
	if _, err := s.PayGenerate(context.Background(), pb, req); err == nil || !strings.Contains(err.Error(), "not issued by this gateway") {
		t.Fatalf("an MCP payment naming no quote: %v", err)
	}
	select {
	case <-p.entered:
		t.Fatal("a refused MCP call reached the backend")
	default:
	}
}

// bogusPayment is the x402 PaymentPayload (JSON) of an escrow signed by a
// key made for it, funded by nothing, naming the quote nonce nonce
// (base64; "" names none): what anyone can send without a key or a coin.
func bogusPayment(nonce string) []byte {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	tx := &ledger.Tx{ChainID: "x402-test", Fee: 1, Msg: &ledger.MsgOpenEscrow{Worker: ledger.Address{1}, ModelID: ledger.Hash{1}, Fee: 1, Request: ledger.Hash{1}}}
	tx.Sign(k)
	p := PaymentPayload{X402Version: X402Version}
	p.Accepted.Scheme = SchemeExact
	p.Accepted.Extra.Nonce = nonce
	p.Payload.Transaction = base64.StdEncoding.EncodeToString(tx.Encode())
	b, _ := json.Marshal(p)
	return b
}
