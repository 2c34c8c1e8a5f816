package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/verdictnet/verdict/internal/chat"
	"github.com/verdictnet/verdict/internal/inference"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/mcpserver"
	"github.com/verdictnet/verdict/internal/testutil"
	"github.com/verdictnet/verdict/internal/worker"
)

// The tests in this file are attacks on the gateway, each of which worked
// before the gateway was hardened against it.

// fakeLedger is the ledger as a meter sees it: balances, and the outbox of
// charged receipts whose escrows are not on the ledger yet.
type fakeLedger struct {
	mu        sync.Mutex
	balance   map[ledger.Address]uint64
	submitted []inference.Charge
	pending   map[string]bool
	// replayFees is what replays paid (payReplay).
	replayFees uint64
}

func (f *fakeLedger) Account(_ context.Context, a ledger.Address) (ledger.Account, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return ledger.Account{Balance: f.balance[a]}, nil
}

func (f *fakeLedger) submit(p inference.Charge) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.submitted = append(f.submitted, p)
	f.pending[p.ReceiptID] = true
	return nil
}

func (f *fakeLedger) isPending(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pending[id]
}

// publishAll puts every submitted escrow on the ledger: the fees leave the
// balances and the receipts leave the outbox.
func (f *fakeLedger) publishAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.submitted {
		if f.pending[p.ReceiptID] {
			a, _ := ledger.ParseAddress(p.Requester)
			f.balance[a] -= p.Fee + escrowTxFee
			delete(f.pending, p.ReceiptID)
		}
	}
}

func (f *fakeLedger) spent(a ledger.Address) (n int, fees uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.submitted {
		if p.Requester == a.String() {
			n++
			fees += p.Fee + escrowTxFee
		}
	}
	return n, fees
}

func newAddress(t testing.TB) ledger.Address {
	t.Helper()
	k, err := keys.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ledger.AddressOf(k.Public)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// billed is a gateway whose API keys belong to ledger accounts with the
// given balances, charged by a LedgerMeter, with MCP mounted.
type billed struct {
	ts     *httptest.Server
	srv    *Server
	ledger *fakeLedger
	meter  *LedgerMeter
	addr   map[string]ledger.Address // API key -> account
	gen    *counting
}

func newBilled(t *testing.T, balances map[string]uint64, mod func(*Options)) *billed {
	t.Helper()
	b := &billed{ledger: &fakeLedger{balance: map[ledger.Address]uint64{}, pending: map[string]bool{}}, addr: map[string]ledger.Address{}}
	auth := StaticKeys{}
	for key, bal := range balances {
		a := newAddress(t)
		b.addr[key] = a
		b.ledger.balance[a] = bal
		auth[key] = a.String()
	}
	b.meter = &LedgerMeter{Ledger: b.ledger, PricePerToken: 1, Submit: b.ledger.submit, Pending: b.ledger.isPending}
	w := testWorker(t)
	b.gen = &counting{Backend: w}
	o := Options{Backend: b.gen, Verifier: w, Auth: auth, Meter: b.meter, MCP: func(g Gate) http.Handler {
		return mcpserver.HTTPHandler(mcpserver.New(w, mcpserver.Options{Gate: g}))
	}}
	if mod != nil {
		mod(&o)
	}
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	b.srv = srv
	b.ts = httptest.NewServer(srv)
	t.Cleanup(b.ts.Close)
	return b
}

// promptTokens counts a completions prompt's tokens (BOS included).
func promptTokens(t testing.TB, prompt string) int {
	toks, err := testWorker(t).Models()[0].Tokenizer.Encode(prompt, true)
	if err != nil {
		t.Fatal(err)
	}
	return len(toks)
}

// Concurrent requests from an account with a small balance cannot spend
// more than it has: each holds its largest fee while it runs. (Before, the
// meter checked only that the balance covered one token, so every one of
// the concurrent requests was served.) Run with -race.
func TestConcurrentRequestsCannotOverdraw(t *testing.T) {
	const maxTokens, n = 10, 16
	need := uint64(promptTokens(t, "Once upon a time")+maxTokens) + escrowTxFee
	const balance = 100
	b := newBilled(t, map[string]uint64{"sk-poor": balance}, nil)
	body := fmt.Sprintf(`{"model":"stories260K","prompt":"Once upon a time","max_tokens":%d,"temperature":1}`, maxTokens)
	var wg sync.WaitGroup
	var ok, refused atomic.Int64
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Different seeds: different receipts, each charged.
			resp, rb := post(t, b.ts.URL+"/v1/completions", strings.Replace(body, "}", fmt.Sprintf(`,"seed":%d}`, i), 1), "Authorization", "Bearer sk-poor")
			switch {
			case resp.StatusCode == 200:
				ok.Add(1)
			case resp.StatusCode == 429 && bytes.Contains(rb, []byte(`"insufficient_quota"`)) && resp.Header.Get("Retry-After") != "":
				refused.Add(1)
			default:
				t.Errorf("status %d %s", resp.StatusCode, rb)
			}
		}()
	}
	wg.Wait()
	a := b.addr["sk-poor"]
	served, fees := b.ledger.spent(a)
	if fees > balance || int64(served) != ok.Load() {
		t.Errorf("%d requests charged %d in all from a balance of %d (%d answered)", served, fees, balance, ok.Load())
	}
	if ok.Load() == 0 || ok.Load() > int64(balance/need) || ok.Load()+refused.Load() != n {
		t.Errorf("%d served, %d refused; at most %d can be paid", ok.Load(), refused.Load(), balance/need)
	}
	t.Logf("%d concurrent requests needing up to %d each on a balance of %d: %d served, %d refused, %d charged", n, need, balance, ok.Load(), refused.Load(), fees)
	if held, owed := b.meter.Held(a); held != 0 || owed != fees {
		t.Errorf("after the burst: %d held, %d owed, want 0 and %d", held, owed, fees)
	}
	// Once the escrows are on the ledger, the balance shows them and the
	// outbox no longer counts them: what is left can still be spent.
	b.ledger.publishAll()
	left := balance - fees
	resp, rb := post(t, b.ts.URL+"/v1/completions", body, "Authorization", "Bearer sk-poor")
	if want := left >= need; (resp.StatusCode == 200) != want {
		t.Errorf("with %d left (a request needs %d): %d %s", left, need, resp.StatusCode, rb)
	}
}

// A request reserves its fee for max_tokens and is charged only for what
// it delivered; the rest is released.
func TestChargeDeliveredReleaseRest(t *testing.T) {
	b := newBilled(t, map[string]uint64{"sk-a": 1000}, nil)
	resp, rb := post(t, b.ts.URL+"/v1/completions", `{"model":"stories260K","prompt":"Once upon a time","max_tokens":100,"temperature":0,"stop":["."]}`, "Authorization", "Bearer sk-a")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, rb)
	}
	r := decodeResp(t, rb)
	if r.Usage.CompletionTokens >= 100 {
		t.Fatalf("the generation did not stop early: %s", rb)
	}
	a := b.addr["sk-a"]
	_, fees := b.ledger.spent(a)
	if want := uint64(r.Usage.TotalTokens) + escrowTxFee; fees != want {
		t.Errorf("charged %d, want %d for %d tokens delivered", fees, want, r.Usage.TotalTokens)
	}
	if held, _ := b.meter.Held(a); held != 0 {
		t.Errorf("%d still held", held)
	}
	// A request that fails releases its reservation.
	resp, rb = post(t, b.ts.URL+"/v1/completions", `{"model":"stories260K","prompt":[1,99999]}`, "Authorization", "Bearer sk-a")
	if resp.StatusCode != 400 {
		t.Errorf("bad token: %d %s", resp.StatusCode, rb)
	}
	if held, _ := b.meter.Held(a); held != 0 {
		t.Errorf("%d held after a failed request", held)
	}
}

// mcpSession connects to the gateway's MCP endpoint with an API key.
func mcpSession(t *testing.T, url, key string) *mcp.ClientSession {
	t.Helper()
	hc := &http.Client{Transport: bearerTransport{key}}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "attacker", Version: "0"}, nil).Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: url + "/mcp", HTTPClient: hc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

type bearerTransport struct{ key string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return http.DefaultTransport.RoundTrip(r)
}

// toolCall runs a tool; it returns the structured result, or the error
// text of a tool error.
func toolCall(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) (map[string]any, string) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if res.IsError {
		var sb strings.Builder
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				sb.WriteString(tc.Text)
			}
		}
		return nil, sb.String()
	}
	out, _ := res.StructuredContent.(map[string]any)
	return out, ""
}

// MCP calls are billed to the caller's account like API calls: an account
// that cannot pay gets a tool error and no generation; one that can is
// charged and its receipt goes to the outbox. (Before, the worker's MCP
// generate called the backend directly: no check, no charge, no ledger.)
func TestMCPIsBilled(t *testing.T) {
	b := newBilled(t, map[string]uint64{"sk-rich": 10000, "sk-broke": 3}, nil)
	broke := mcpSession(t, b.ts.URL, "sk-broke")
	if _, e := toolCall(t, broke, "generate", map[string]any{"prompt": "Once upon a time", "max_tokens": 20}); !strings.Contains(e, "insufficient quota") {
		t.Errorf("a broke account's MCP generate: %q", e)
	}
	if n := b.gen.n.Load(); n != 1 { // admitted by nothing: refused before it generated a token
		t.Errorf("%d backend calls", n)
	}
	if n, _ := b.ledger.spent(b.addr["sk-broke"]); n != 0 {
		t.Errorf("broke account charged %d times", n)
	}
	rich := mcpSession(t, b.ts.URL, "sk-rich")
	out, e := toolCall(t, rich, "generate", map[string]any{"prompt": "Once upon a time", "max_tokens": 20})
	if e != "" {
		t.Fatal(e)
	}
	n, fees := b.ledger.spent(b.addr["sk-rich"])
	if want := uint64(out["prompt_tokens"].(float64)+out["completion_tokens"].(float64)) + escrowTxFee; n != 1 || fees != want {
		t.Errorf("MCP generate charged %d times, %d in all; want once, %d", n, fees, want)
	}
	b.ledger.mu.Lock()
	sub := b.ledger.submitted[len(b.ledger.submitted)-1]
	b.ledger.mu.Unlock()
	if sub.ReceiptID != out["receipt_id"] || sub.Requester != b.addr["sk-rich"].String() {
		t.Errorf("outbox got %s for %s, want %s for %s", sub.ReceiptID, sub.Requester, out["receipt_id"], b.addr["sk-rich"])
	}
	if resp, _ := post(t, b.ts.URL+"/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`); resp.StatusCode != 401 {
		t.Errorf("MCP without a key: %d", resp.StatusCode)
	}
}

// An MCP session belongs to the account that opened it: another API key
// cannot ride on its session id.
func TestMCPSessionHijack(t *testing.T) {
	b := newBilled(t, map[string]uint64{"sk-alice": 10000, "sk-bob": 10000}, nil)
	alice := mcpSession(t, b.ts.URL, "sk-alice")
	req, _ := http.NewRequest("POST", b.ts.URL+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"generate","arguments":{"prompt":"Hi","max_tokens":2}}}`))
	req.Header.Set("Authorization", "Bearer sk-bob")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", alice.ID())
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("bob on alice's session: %d %s", resp.StatusCode, body)
	}
}

// A receipt is readable only by the account that paid for it, over HTTP
// and over MCP (get_receipt and verify_receipt by id); PublicReceipts opens
// them to every caller.
func TestReceiptsReadableByOwnerOnly(t *testing.T) {
	for _, public := range []bool{false, true} {
		b := newBilled(t, map[string]uint64{"sk-alice": 10000, "sk-bob": 10000}, func(o *Options) { o.PublicReceipts = public })
		resp, rb := post(t, b.ts.URL+"/v1/completions", `{"model":"stories260K","prompt":"Once upon a time","max_tokens":5}`, "Authorization", "Bearer sk-alice")
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, rb)
		}
		id := decodeResp(t, rb).Verdict.ReceiptID
		read := func(key string) int {
			req, _ := http.NewRequest("GET", b.ts.URL+"/v1/receipts/"+id, nil)
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if c := read("sk-alice"); c != 200 {
			t.Errorf("public=%v: the owner reads her receipt: %d", public, c)
		}
		want := 404
		if public {
			want = 200
		}
		if c := read("sk-bob"); c != want {
			t.Errorf("public=%v: another account reads it: %d, want %d", public, c, want)
		}
		bob := mcpSession(t, b.ts.URL, "sk-bob")
		_, e1 := toolCall(t, bob, "get_receipt", map[string]any{"id": id})
		_, e2 := toolCall(t, bob, "verify_receipt", map[string]any{"id": id, "replay": false})
		if public != (e1 == "" && e2 == "") || !public && (!strings.Contains(e1, "not found") || !strings.Contains(e2, "not found")) {
			t.Errorf("public=%v: bob over MCP: get_receipt %q, verify_receipt %q", public, e1, e2)
		}
		alice := mcpSession(t, b.ts.URL, "sk-alice")
		if out, e := toolCall(t, alice, "get_receipt", map[string]any{"id": id}); e != "" || out["id"] != id {
			t.Errorf("public=%v: alice over MCP: %q %v", public, e, out)
		}
	}
}

// The gateway does not start open by accident; /metrics is not served on
// the API's address unless asked.
func TestSafeDefaults(t *testing.T) {
	if _, err := New(Options{Backend: testWorker(t)}); err == nil || !strings.Contains(err.Error(), "no authentication") {
		t.Errorf("a gateway without Auth or NoAuth: %v", err)
	}
	b := newBilled(t, map[string]uint64{"sk-a": 1}, nil)
	if resp, _ := get(t, b.ts.URL+"/metrics"); resp.StatusCode == 200 {
		t.Errorf("/metrics served on the API address")
	}
	rec := httptest.NewRecorder()
	MetricsHandler(b.srv.o.Registry).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "verdict_gateway_requests_in_flight") {
		t.Errorf("metrics handler: %d", rec.Code)
	}
}

// A cross-site page can POST text/plain (or a form) without a CORS
// preflight; the JSON endpoints refuse anything but application/json.
func TestContentTypeRequired(t *testing.T) {
	ts, b := newServer(t, nil)
	body := `{"model":"stories260K","prompt":"Once","max_tokens":2}`
	for _, ct := range []string{"text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""} {
		req, _ := http.NewRequest("POST", ts.URL+"/v1/completions", strings.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		rb, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType || !bytes.Contains(rb, []byte("unsupported_media_type")) {
			t.Errorf("Content-Type %q: %d %s", ct, resp.StatusCode, rb)
		}
	}
	if resp, rb := post(t, ts.URL+"/v1/completions", body, "Content-Type", "application/json; charset=utf-8"); resp.StatusCode != 200 {
		t.Errorf("application/json with charset: %d %s", resp.StatusCode, rb)
	}
	if n := b.n.Load(); n != 1 {
		t.Errorf("%d generations", n)
	}
}

// Wrong methods are 405 with Allow; the auth header's problems are named.
func TestMethodsAndAuthMessages(t *testing.T) {
	ts, _ := newServer(t, func(o *Options) { o.Auth = StaticKeys{"sk-good": "alice"} })
	for _, tc := range []struct{ method, path, allow string }{
		{"GET", "/v1/chat/completions", "POST"},
		{"PUT", "/v1/completions", "POST"},
		{"DELETE", "/v1/models", "GET"},
		{"POST", "/v1/receipts/" + strings.Repeat("a", 64), "GET"},
	} {
		req, _ := http.NewRequest(tc.method, ts.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		rb, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != tc.allow || !bytes.Contains(rb, []byte(`"method_not_allowed"`)) {
			t.Errorf("%s %s: %d Allow %q %s", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), rb)
		}
	}
	body := `{"model":"stories260K","prompt":"Once","max_tokens":2}`
	for _, tc := range []struct{ auth, want string }{
		{"Basic dXNlcjpzay1nb29k", "Basic authentication is not supported"},
		{"", "missing API key"},
		{"Token sk-good", `unsupported authorization scheme \"Token\"`},
		{"Bearer ", "missing API key"},
		{"Bearer sk-bad", "incorrect API key"},
	} {
		resp, rb := post(t, ts.URL+"/v1/completions", body, "Authorization", tc.auth)
		if resp.StatusCode != 401 || !bytes.Contains(rb, []byte(tc.want)) {
			t.Errorf("Authorization %q: %d %s", tc.auth, resp.StatusCode, rb)
		}
	}
	if resp, rb := post(t, ts.URL+"/v1/completions", body, "Authorization", "bearer sk-good"); resp.StatusCode != 200 {
		t.Errorf("lower-case scheme: %d %s", resp.StatusCode, rb)
	}
}

// Rate-limited requests say when to come back.
func TestRetryAfter(t *testing.T) {
	ts, _ := newServer(t, func(o *Options) { o.Backend = failing{o.Backend, inference.ErrBusy} })
	resp, rb := post(t, ts.URL+"/v1/completions", `{"model":"stories260K","prompt":"a"}`)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != fmt.Sprint(RetryAfterBusy) {
		t.Errorf("%d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), rb)
	}
}

// keyTable finds every key and no other, whatever their lengths.
func TestKeyTable(t *testing.T) {
	var kt keyTable
	keys := []string{"a", "sk-1", "sk-10", strings.Repeat("k", 200)}
	for i, k := range keys {
		kt.add(k, fmt.Sprint("acct", i))
	}
	for i, k := range keys {
		if a, ok := kt.lookup(k); !ok || a != fmt.Sprint("acct", i) {
			t.Errorf("%q: %q %v", k, a, ok)
		}
	}
	for _, k := range []string{"", "sk-", "sk-100", "A", strings.Repeat("k", 199)} {
		if a, ok := kt.lookup(k); ok {
			t.Errorf("%q matched %q", k, a)
		}
	}
}

// slow is a backend whose streamed tokens arrive slowly.
type slow struct {
	Backend
	delay time.Duration
}

func (s slow) Generate(ctx context.Context, req inference.Request, f func(inference.Delta) error) (*inference.Result, error) {
	return s.Backend.Generate(ctx, req, func(d inference.Delta) error {
		time.Sleep(s.delay)
		if f == nil {
			return nil
		}
		return f(d)
	})
}

// The server's timeouts cut off a client that sends its headers too
// slowly, and do not cut off a stream (or a long generation) that runs
// longer than them.
func TestServerTimeouts(t *testing.T) {
	s, err := New(Options{Backend: slow{testWorker(t), 20 * time.Millisecond}, NoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	hs := HTTPServer(s)
	if hs.WriteTimeout != 0 || hs.ReadTimeout == 0 || hs.ReadHeaderTimeout == 0 || hs.IdleTimeout == 0 {
		t.Fatalf("timeouts: %+v", hs)
	}
	hs.ReadHeaderTimeout, hs.ReadTimeout = 200*time.Millisecond, 300*time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	base := "http://" + ln.Addr().String()
	for _, stream := range []bool{true, false} {
		t0 := time.Now()
		resp, rb := post(t, base+"/v1/completions", fmt.Sprintf(`{"model":"stories260K","prompt":"Once upon a time","max_tokens":40,"stream":%v}`, stream))
		if d := time.Since(t0); resp.StatusCode != 200 || d < hs.ReadTimeout || stream && !bytes.HasSuffix(rb, []byte("data: [DONE]\n\n")) {
			t.Errorf("stream=%v: %d after %v: %.200s", stream, resp.StatusCode, d, rb)
		}
	}
	// Slowloris: headers that never end.
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	t0 := time.Now()
	_, err = bufio.NewReader(c).ReadString('\n')
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("a client stalled in its headers was kept %v (%v)", d, err)
	}
}

// Idempotency-Keys are per account, the stored responses are bounded in
// bytes, and a request still running is never evicted: its retry waits for
// it rather than generating again.
func TestIdempotencyBounds(t *testing.T) {
	gate := make(chan struct{})
	var running atomic.Int64
	ts, b := newServer(t, func(o *Options) {
		o.Auth = StaticKeys{"sk-a": "alice", "sk-b": "bob"}
		o.IdempotencyBytes, o.IdempotencyAccountBytes = 8<<10, 4<<10
		o.Backend = blocking{o.Backend, gate, &running}
	})
	srv := ts.Config.Handler.(*Server)
	body := `{"model":"stories260K","prompt":"Once upon a time","max_tokens":3,"seed":%d}`
	// alice's request with key "slow" starts and blocks.
	first := make(chan []byte, 1)
	go func() {
		_, rb := post(t, ts.URL+"/v1/completions", fmt.Sprintf(body, 0), "Authorization", "Bearer sk-a", "Idempotency-Key", "slow")
		first <- rb
	}()
	for running.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// Many other keys, far beyond the bounds, from both accounts.
	for i := 1; i <= 60; i++ {
		key := []string{"sk-a", "sk-b"}[i%2]
		if resp, rb := post(t, ts.URL+"/v1/completions", fmt.Sprintf(body, i), "Authorization", "Bearer "+key, "Idempotency-Key", fmt.Sprint("k", i)); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, rb)
		}
		total, a := srv.idem.stored("alice")
		_, bb := srv.idem.stored("bob")
		if total > 8<<10 || a > 4<<10 || bb > 4<<10 {
			t.Fatalf("stored %d bytes (alice %d, bob %d), bounds 8 KiB and 4 KiB", total, a, bb)
		}
	}
	// The retry of the request still running waits for it.
	n := running.Load() // every generation started, the blocked one included
	retry := make(chan []byte, 1)
	go func() {
		_, rb := post(t, ts.URL+"/v1/completions", fmt.Sprintf(body, 0), "Authorization", "Bearer sk-a", "Idempotency-Key", "slow")
		retry <- rb
	}()
	time.Sleep(50 * time.Millisecond)
	close(gate)
	r1, r2 := <-first, <-retry
	if running.Load() != n || !bytes.Equal(r1, r2) {
		t.Errorf("the retry of a request that was in flight during the flood ran again (%d -> %d generations)", n, running.Load())
	}
	// The same key and body from another account is its own request.
	_, r3 := post(t, ts.URL+"/v1/completions", fmt.Sprintf(body, 0), "Authorization", "Bearer sk-b", "Idempotency-Key", "slow")
	if running.Load() != n+1 || bytes.Equal(r1, r3) || b.n.Load() != n+1 {
		t.Errorf("bob got alice's stored response for her key")
	}
}

// blocking is a backend whose first generation waits for gate.
type blocking struct {
	Backend
	gate    chan struct{}
	running *atomic.Int64
}

func (b blocking) Generate(ctx context.Context, req inference.Request, f func(inference.Delta) error) (*inference.Result, error) {
	if b.running.Add(1) == 1 {
		<-b.gate
	}
	return b.Backend.Generate(ctx, req, f)
}

// Admit reports the largest fee a request can cost: prompt plus the most
// completion tokens the context leaves.
func TestAdmitBounds(t *testing.T) {
	w := testWorker(t)
	for _, max := range []int{0, 7, 100000} {
		var p, c int
		res, err := w.Generate(context.Background(), inference.Request{Model: "stories260K", Segments: []chat.Segment{{Text: "Once upon a time", BOS: true}}, MaxTokens: max,
			Admit: func(prompt, maxCompletion int) error { p, c = prompt, maxCompletion; return nil }}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx := w.Models()[0].ContextLen
		want := ctx - p + 1
		if max > 0 && max < want {
			want = max
		}
		if p != res.PromptTokens || c != want || res.CompletionTokens > c {
			t.Errorf("max_tokens %d: admitted %d+%d, generated %d+%d", max, p, c, res.PromptTokens, res.CompletionTokens)
		}
	}
}

// A worker whose outbox passed its bound refuses new paid requests with
// 429 and Retry-After, before generating (nothing is charged or held),
// and serves again once the backlog drains. (The refusal comes at
// admission, after tokenizing, before the first token.)
func TestBacklogRefuses(t *testing.T) {
	b := newBilled(t, map[string]uint64{"sk-a": 1000}, nil)
	var backlog atomic.Bool
	backlog.Store(true)
	b.meter.Backlogged = backlog.Load
	body := `{"model":"stories260K","prompt":"Once upon a time","max_tokens":4}`
	resp, rb := post(t, b.ts.URL+"/v1/completions", body, "Authorization", "Bearer sk-a")
	if resp.StatusCode != 429 || !bytes.Contains(rb, []byte(`"rate_limit_exceeded"`)) || resp.Header.Get("Retry-After") != strconv.Itoa(RetryAfterBacklog) {
		t.Fatalf("backlogged: %d %v %s", resp.StatusCode, resp.Header, rb)
	}
	if n := len(b.ledger.submitted); n != 0 {
		t.Fatalf("%d receipts submitted while backlogged", n)
	}
	if held, owed := b.meter.Held(b.addr["sk-a"]); held != 0 || owed != 0 {
		t.Fatalf("refused request holds %d, owes %d", held, owed)
	}
	backlog.Store(false)
	if resp, rb := post(t, b.ts.URL+"/v1/completions", body, "Authorization", "Bearer sk-a"); resp.StatusCode != 200 {
		t.Fatalf("after the backlog: %d %s", resp.StatusCode, rb)
	}
}

// TestAttackPrefixCacheProbe: the worker's prefix cache makes a prompt
// whose opening was sent recently answer sooner; a caller who times its
// requests could so learn what another account sent. The attack: alice
// sends a prompt, mallory sends one that starts with it; mallory's takes
// no cached prefix (the worker's counters), alice's next one does. Before
// the gateway gave each account its own scope, mallory's took alice's.
func TestAttackPrefixCacheProbe(t *testing.T) {
	b := newBilled(t, map[string]uint64{"sk-alice": 1 << 30, "sk-mallory": 1 << 30}, nil)
	w := testWorker(t)
	secret := "Lily whispered the secret password to Tom under the old oak tree in the garden"
	// send returns usage.prompt_tokens_details.cached_tokens.
	send := func(key, prompt string) int {
		t.Helper()
		resp, rb := post(t, b.ts.URL+"/v1/completions", fmt.Sprintf(`{"model":"stories260K","prompt":%q,"max_tokens":4,"temperature":0}`, prompt), "Authorization", "Bearer "+key)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", key, resp.StatusCode, rb)
		}
		var r struct {
			Usage struct {
				PromptTokensDetails struct {
					CachedTokens *int `json:"cached_tokens"`
				} `json:"prompt_tokens_details"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(rb, &r); err != nil || r.Usage.PromptTokensDetails.CachedTokens == nil {
			t.Fatalf("%s: no usage.prompt_tokens_details.cached_tokens in %s (%v)", key, rb, err)
		}
		return *r.Usage.PromptTokensDetails.CachedTokens
	}
	send("sk-alice", secret)
	before := w.BatchStats()
	if n := send("sk-mallory", secret+" and"); n != 0 {
		t.Fatalf("mallory's prompt took %d tokens of alice's from the cache", n)
	}
	if st := w.BatchStats(); st.PrefixHits != before.PrefixHits {
		t.Fatalf("mallory's prompt took a cached prefix of alice's (%d tokens)", st.PrefixTokens-before.PrefixTokens)
	}
	if n := send("sk-alice", secret+" and"); n < 10 {
		t.Fatalf("alice's own follow-up took %d tokens from the cache: %+v", n, w.BatchStats())
	}
}

// TestAttackQueueFlood: mallory floods a worker that runs one generation
// at a time, with a queue of 4: her first request runs (held at its first
// token), 4 more wait, 3 get 429. Alice's one request, sent then, takes
// the place of mallory's latest in the queue (which gets 429) and is
// the second to run (the queue takes turns between accounts:
// inference.Request.Account) — not refused, nor, with room in the queue,
// run after the whole flood. (The order the generations start in, at
// their first token: the answers' order at the client also depends on how
// soon each response is written after its generation ends, and the next
// generation can be done by then.)
func TestAttackQueueFlood(t *testing.T) {
	one, err := worker.Open(worker.Config{ModelPath: testutil.Shared(t, "models/stories260K.gguf"), Threads: 1, MaxConcurrent: 1, MaxQueue: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	hold := &holdFirst{Backend: one, held: make(chan struct{}), release: make(chan struct{})}
	var released sync.Once
	release := func() { released.Do(func() { close(hold.release) }) }
	defer release() // a failed test lets the held generation end
	b := newBilled(t, map[string]uint64{"sk-alice": 1 << 30, "sk-mallory": 1 << 30}, func(o *Options) { o.Backend = hold })
	var mu sync.Mutex
	var done []string
	busy := 0
	send := func(key, name string) {
		resp, rb := post(t, b.ts.URL+"/v1/completions", fmt.Sprintf(`{"model":"stories260K","prompt":"Once upon a time %s","max_tokens":20,"temperature":0}`, name), "Authorization", "Bearer "+key)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case resp.StatusCode == http.StatusOK:
			done = append(done, name)
		case resp.StatusCode == http.StatusTooManyRequests && key == "sk-mallory":
			busy++
		default:
			t.Errorf("%s: %d %s", name, resp.StatusCode, rb)
		}
	}
	var wg sync.WaitGroup
	flood := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			send("sk-mallory", fmt.Sprint("mallory", i))
		}()
	}
	flood(0)
	<-hold.held
	for i := 1; i < 8; i++ {
		flood(i)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Microsecond) {
		mu.Lock()
		refused := busy
		mu.Unlock()
		if one.BatchStats().Queued == 4 && refused == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the flood never filled the queue: %+v, %d refused", one.BatchStats(), refused)
			release()
			wg.Wait()
			return
		}
	}
	alice := make(chan struct{})
	go func() {
		defer close(alice)
		send("sk-alice", "alice")
	}()
	// Alice's request is in the queue (or was refused) before the flood
	// goes on.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Microsecond) {
		mu.Lock()
		n := busy + len(done)
		mu.Unlock()
		if n == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("no request of mallory's gave alice's its place: %+v", one.BatchStats())
			release()
			wg.Wait()
			<-alice
			return
		}
	}
	release()
	wg.Wait()
	<-alice
	started := hold.order()
	if i := slices.Index(started, "alice"); i != 1 {
		t.Errorf("alice's generation started %dth, after %v (0th: refused)", i+1, started[:max(i, 0)])
	}
	if len(done) != 5 || busy != 4 {
		t.Errorf("%d answered %v, %d refused: want mallory's first four answered, and alice's", len(done), done, busy)
	}
}

// holdFirst is a backend whose first generation stops at its first token
// (holding its place in the worker's batch) until release is closed.
// It records the order the generations start in: the last word of each
// one's prompt, at its first token.
type holdFirst struct {
	Backend
	first         atomic.Bool
	held, release chan struct{}
	mu            sync.Mutex
	started       []string
}

func (h *holdFirst) Generate(ctx context.Context, req inference.Request, f func(inference.Delta) error) (*inference.Result, error) {
	hold := h.first.CompareAndSwap(false, true)
	name := ""
	if n := len(req.Segments); n > 0 {
		words := strings.Fields(req.Segments[n-1].Text)
		name = words[len(words)-1]
	}
	inner, n := f, 0
	f = func(d inference.Delta) error {
		if n++; n == 1 {
			h.mu.Lock()
			h.started = append(h.started, name)
			h.mu.Unlock()
			if hold {
				close(h.held)
				<-h.release
			}
		}
		if inner == nil {
			return nil
		}
		return inner(d)
	}
	return h.Backend.Generate(ctx, req, f)
}

// order is the generations started so far, in the order they started.
func (h *holdFirst) order() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.started)
}

// TestAttackMCPLimits sends over MCP what the HTTP API refuses: a body
// over MaxBodyBytes (the MCP SDK alone took 4 MiB: a prompt four times
// the size the API allows was tokenized, for a free x402 quote too) and a
// stop string over MaxStopLen (generated with). Both are now refused: the
// body with 413, the stop string as a tool error naming the limit, before
// any generation.
func TestAttackMCPLimits(t *testing.T) {
	b := newBilled(t, map[string]uint64{"sk-alice": 100000}, func(o *Options) { o.MaxBodyBytes = 64 << 10 })
	cs := mcpSession(t, b.ts.URL, "sk-alice")
	if _, e := toolCall(t, cs, "generate", map[string]any{"prompt": "Once upon a time", "max_tokens": 2, "stop": []string{strings.Repeat("x", MaxStopLen+1)}}); !strings.Contains(e, fmt.Sprintf("1 to %d bytes", MaxStopLen)) {
		t.Errorf("MCP generate with a stop of %d bytes: %q", MaxStopLen+1, e)
	}
	if n := b.gen.n.Load(); n != 0 {
		t.Errorf("%d generations for refused calls", n)
	}
	big := `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"generate","arguments":{"prompt":"` + strings.Repeat("a ", 64<<10) + `","max_tokens":1}}}`
	resp, body := post(t, b.ts.URL+"/mcp", big, "Authorization", "Bearer sk-alice", "Accept", "application/json, text/event-stream",
		"Mcp-Session-Id", cs.ID(), "Mcp-Protocol-Version", "2025-06-18")
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("MCP body of %d bytes over a limit of %d: %d %.200s", len(big), 64<<10, resp.StatusCode, body)
	}
	if n := b.gen.n.Load(); n != 0 {
		t.Errorf("%d generations for refused calls", n)
	}
}
