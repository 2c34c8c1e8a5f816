package multigw

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
)

func goodRegistration(t testing.TB, agent uint64) *gateway.AgentRegistration {
	reg, err := gateway.WorkerRegistration{Name: "worker one", Base: "http://127.0.0.1:9/", ChainID: testChain, AgentID: agent}.Build()
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func TestParseRegistration(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		mod        func(r *gateway.AgentRegistration)
		raw        []byte
	}{
		{name: "good", mod: func(*gateway.AgentRegistration) {}},
		{name: "wrong type", want: "type", mod: func(r *gateway.AgentRegistration) { r.Type = "https://example.com/other" }},
		{name: "inactive", want: "not active", mod: func(r *gateway.AgentRegistration) { r.Active = false }},
		{name: "HTML in the name", want: "markup", mod: func(r *gateway.AgentRegistration) { r.Name = `<script>alert(1)</script>` }},
		{name: "control characters", want: "control", mod: func(r *gateway.AgentRegistration) { r.Name = "a\x1b[31mred" }},
		{name: "bidi override", want: "bidirectional", mod: func(r *gateway.AgentRegistration) { r.Name = "worker \u202eeno" }},
		{name: "line separator", want: "line separators", mod: func(r *gateway.AgentRegistration) { r.Name = "a\u2028b" }},
		{name: "long name", want: "at most", mod: func(r *gateway.AgentRegistration) { r.Name = strings.Repeat("n", MaxNameLen+1) }},
		{name: "javascript endpoint", want: "not an http(s) URL", mod: func(r *gateway.AgentRegistration) { r.Services[0].Endpoint = "javascript:alert(1)" }},
		{name: "file endpoint", want: "not an http(s) URL", mod: func(r *gateway.AgentRegistration) { r.Services[0].Endpoint = "file:///etc/passwd" }},
		{name: "credentials", want: "without credentials", mod: func(r *gateway.AgentRegistration) { r.Services[0].Endpoint = "http://u:p@host/v1" }},
		{name: "query", want: "without credentials", mod: func(r *gateway.AgentRegistration) { r.Services[0].Endpoint = "http://host/v1?x=1" }},
		{name: "no OpenAI service", want: "no \"OpenAI\" service", mod: func(r *gateway.AgentRegistration) { r.Services = r.Services[1:] }},
		{name: "another agent's file", want: "do not name agent 7", mod: func(r *gateway.AgentRegistration) { r.Registrations[0].AgentID = 8 }},
		{name: "another chain", want: "do not name agent 7", mod: func(r *gateway.AgentRegistration) {
			r.Registrations[0].AgentRegistry = gateway.AgentRegistryID("other")
		}},
		{name: "huge body", want: "at most", raw: bytes.Repeat([]byte(" "), MaxRegistrationBytes+1)},
		{name: "not JSON", want: "not JSON", raw: []byte("<html>hello</html>")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.raw
			if b == nil {
				reg := goodRegistration(t, 7)
				tc.mod(reg)
				b, _ = json.Marshal(reg)
			}
			got, err := ParseRegistration(b, testChain, 7)
			if tc.want == "" {
				if err != nil || got.Endpoint != "http://127.0.0.1:9/v1" || got.Name != "worker one" {
					t.Fatalf("got %+v, %v", got, err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrRegistration) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one about %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error of several lines: %q", err)
			}
		})
	}
}

func FuzzParseRegistration(f *testing.F) {
	good, _ := json.Marshal(goodRegistration(f, 7))
	f.Add(good)
	f.Add([]byte(`{"type":"https://eips.ethereum.org/EIPS/eip-8004#registration-v1","active":true,"registrations":[{"agentId":7,"agentRegistry":"cosmos:verdict-test:identity"}],"services":[{"name":"OpenAI","endpoint":"gopher://x"}]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"name":"<b>"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRegistration(b, testChain, 7)
		if err != nil {
			if !errors.Is(err, ErrRegistration) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("refusal %q: want one line wrapping ErrRegistration", err)
			}
			return
		}
		if !strings.HasPrefix(r.Endpoint, "http://") && !strings.HasPrefix(r.Endpoint, "https://") {
			t.Fatalf("accepted endpoint %q", r.Endpoint)
		}
		if strings.ContainsAny(r.Name, "<>") || strings.IndexFunc(r.Name, spoofing) >= 0 {
			t.Fatalf("accepted name %q", r.Name)
		}
	})
}

// TestRouterShares: over any run of requests at fixed scores each
// worker's count stays within one of its share (smooth weighted
// round-robin), and a worker marked down gets nothing until DownFor
// passes.
func TestRouterShares(t *testing.T) {
	for _, stakes := range [][]uint64{{400, 200, 150}, {1, 1}, {1000, 3, 7, 50}, {5}} {
		var ws []Worker
		total := 0.0
		for i, s := range stakes {
			ws = append(ws, Worker{Address: ledger.Address{byte(i + 1)}, Stake: s, Price: 1})
			total += float64(s)
		}
		ranked := rank(ws, 0)
		r := &Router{}
		count := map[ledger.Address]int{}
		for n := 1; n <= 2000; n++ {
			count[r.Order(ledger.Hash{}, ranked)[0].Address]++
			for _, w := range ws {
				share := float64(n) * float64(w.Stake) / total
				if d := math.Abs(float64(count[w.Address]) - share); d >= float64(len(ws)) {
					t.Fatalf("stakes %v: after %d requests worker %v has %d, share %.1f", stakes, n, w.Address, count[w.Address], share)
				}
			}
		}
	}
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestDiscoverRefusesHostile: agents whose registration file is not
// http(s), too large, names another agent or carries HTML are skipped with
// a log line each; the good worker is found.
func TestDiscoverRefusesHostile(t *testing.T) {
	l := newFakeLedger()
	good := l.addWorker(t, "good", 500, 1)
	hostile := l.addAgent
	serve := func(h http.HandlerFunc) string {
		s := httptest.NewServer(h)
		t.Cleanup(s.Close)
		return s.URL + gateway.RegistrationPath
	}
	hostile("verdict:worker/abc")
	hostile("file:///etc/passwd")
	hostile(serve(func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), 10<<20))
	}))
	htmlID := hostile("")
	l.agents[htmlID-1].AgentURI = serve(func(w http.ResponseWriter, r *http.Request) {
		reg := goodRegistration(t, htmlID)
		reg.Name = `<img src=x onerror=alert(1)>`
		json.NewEncoder(w).Encode(reg)
	})
	hostile(serve(func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(goodRegistration(t, good.id)) }))
	hostile(serve(func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }))
	var logs logBuf
	d := &Discovery{Ledger: l, Net: testNet, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	ws, err := d.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 || ws[0].AgentID != good.id || ws[0].Endpoint != good.srv.URL+"/v1" || ws[0].Price != 1 || ws[0].Stake != 500 {
		t.Fatalf("discovered %+v", ws)
	}
	out := logs.String()
	for _, want := range []string{"not an http(s) URL", "bytes, at most", "markup", "do not name agent", "status 404"} {
		if !strings.Contains(out, want) {
			t.Errorf("no log line about %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "worker skipped"); n != 6 {
		t.Errorf("%d skips logged, want 6:\n%s", n, out)
	}
	// A second discovery does not log the same skips again.
	d.Discover(context.Background())
	if n := strings.Count(logs.String(), "worker skipped"); n != 6 {
		t.Errorf("%d skips logged after a second discovery, want 6", n)
	}
}

type testEnv struct {
	l       *fakeLedger
	ws      []*fakeWorker
	srv     *Server
	gw      *httptest.Server
	payer   *keys.Key
	apiKey  string
	payAddr ledger.Address
}

func newTestEnv(t *testing.T, opts ...func(*Options)) *testEnv {
	l := newFakeLedger()
	e := &testEnv{l: l, apiKey: "sk-test"}
	e.ws = append(e.ws, l.addWorker(t, "w1", 400, 1), l.addWorker(t, "w2", 200, 1), l.addWorker(t, "w3", 300, 2))
	k, err := keys.Generate(t.TempDir() + "/payer.json")
	if err != nil {
		t.Fatal(err)
	}
	e.payer = k
	e.payAddr, _ = ledger.AddressOf(k.Public)
	o := Options{Ledger: l, Accounts: map[string]*keys.Key{e.apiKey: k}, Net: testNet, Logger: slog.New(slog.DiscardHandler)}
	for _, f := range opts {
		f(&o)
	}
	e.srv, err = New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	e.gw = httptest.NewServer(e.srv)
	t.Cleanup(e.gw.Close)
	return e
}

func (e *testEnv) post(t *testing.T, body string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.gw.URL+"/v1/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e.apiKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

// TestServerRoutesPaysFailsOver: three workers scored 400, 200 and 150
// get 40, 20 and 15 of 75 requests, each paid by one escrow of the payer;
// the response names the worker; a worker that stops answering loses its
// traffic to the others with nothing lost.
func TestServerRoutesPaysFailsOver(t *testing.T) {
	e := newTestEnv(t)
	const body = `{"model":"tiny","prompt":"hi","max_tokens":4}`
	for i := 0; i < 75; i++ {
		res, b := e.post(t, body)
		if res.StatusCode != 200 {
			t.Fatalf("status %d: %s", res.StatusCode, b)
		}
		var out struct {
			Choices []struct{ Text string }
			Verdict struct {
				ReceiptID string `json:"receipt_id"`
				AgentID   uint64 `json:"agent_id"`
				Worker    string `json:"worker"`
			}
		}
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		if out.Choices[0].Text != fmt.Sprintf("from %d <b>", out.Verdict.AgentID) || res.Header.Get(HeaderAgentID) != fmt.Sprint(out.Verdict.AgentID) ||
			out.Verdict.Worker != e.ws[out.Verdict.AgentID-1].addr.String() || res.Header.Get(HeaderWorker) != out.Verdict.Worker || out.Verdict.ReceiptID == "" {
			t.Fatalf("response %s, headers %v", b, res.Header)
		}
	}
	for i, want := range []int64{40, 20, 15} {
		if got := e.ws[i].served.Load(); got != want {
			t.Errorf("worker %d served %d of 75, want %d", i+1, got, want)
		}
	}
	if n := e.l.nonces[e.payAddr]; n != 75 {
		t.Errorf("payer signed %d escrows for 75 requests", n)
	}
	// Worker 1 dies: its share goes to the others; nothing is lost.
	e.ws[0].srv.Close()
	before := []int64{e.ws[1].served.Load(), e.ws[2].served.Load()}
	for i := 0; i < 20; i++ {
		if res, b := e.post(t, body); res.StatusCode != 200 {
			t.Fatalf("after worker 1 died: status %d: %s", res.StatusCode, b)
		}
	}
	got := e.ws[1].served.Load() - before[0] + e.ws[2].served.Load() - before[1]
	if got != 20 || !e.srv.router.IsDown(e.ws[0].addr) {
		t.Fatalf("the others served %d of 20; worker 1 down: %v", got, e.srv.router.IsDown(e.ws[0].addr))
	}
	if n := e.l.nonces[e.payAddr]; n != 95 {
		t.Errorf("payer signed %d escrows for 95 requests", n)
	}
	// Jailed: worker 2 gets nothing once the ledger says so.
	e.l.mu.Lock()
	e.l.stakes[e.ws[1].addr] = ledger.Stake{Bonded: 200, JailedUntil: 1000}
	e.l.mu.Unlock()
	if err := e.srv.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	before2 := e.ws[1].served.Load()
	for i := 0; i < 5; i++ {
		if res, b := e.post(t, body); res.StatusCode != 200 || res.Header.Get(HeaderAgentID) != "3" {
			t.Fatalf("status %d, agent %s: %s", res.StatusCode, res.Header.Get(HeaderAgentID), b)
		}
	}
	if e.ws[1].served.Load() != before2 {
		t.Fatal("a jailed worker got traffic")
	}
}

// TestServerMidStreamDeath: a worker that dies after its answer started
// gives the caller an error, never a spliced answer from another worker.
func TestServerMidStreamDeath(t *testing.T) {
	e := newTestEnv(t)
	for _, w := range e.ws {
		w.cut.Store(true)
	}
	res, b := e.post(t, `{"model":"tiny","prompt":"hi","stream":true}`)
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	var events []string
	for sc.Scan() {
		if l, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			events = append(events, l)
		}
	}
	if len(events) != 2 || !strings.Contains(events[0], "from 1") || !strings.Contains(events[1], `"code":"worker_failed"`) {
		t.Fatalf("events %q", events)
	}
	if e.ws[0].served.Load()+e.ws[1].served.Load()+e.ws[2].served.Load() != 1 {
		t.Fatal("the request went to a second worker after the first had answered")
	}
	res, b = e.post(t, `{"model":"tiny","prompt":"hi"}`)
	if res.StatusCode != http.StatusBadGateway || !strings.Contains(string(b), "worker_failed") || strings.Contains(string(b), "half") {
		t.Fatalf("status %d: %s", res.StatusCode, b)
	}
	if e.ws[0].served.Load()+e.ws[1].served.Load()+e.ws[2].served.Load() != 2 {
		t.Fatal("the request went to a second worker after the first had answered")
	}
}

func TestServerRefusals(t *testing.T) {
	e := newTestEnv(t)
	for _, tc := range []struct {
		body, auth string
		status     int
		code       string
	}{
		{`{"model":"tiny","prompt":"hi"}`, "Bearer nope", 401, "invalid_api_key"},
		{`{"model":"tiny","prompt":"hi"}`, "Basic eDp5", 401, "invalid_api_key"},
		{`{"model":"other","prompt":"hi"}`, "Bearer sk-test", 404, "model_not_found"},
		{`[1,2]`, "Bearer sk-test", 400, "invalid_json"},
		{`{"prompt":"hi"}`, "Bearer sk-test", 400, "invalid_value"},
	} {
		req, _ := http.NewRequest(http.MethodPost, e.gw.URL+"/v1/completions", strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", tc.auth)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.status || !strings.Contains(string(b), `"code":"`+tc.code+`"`) {
			t.Errorf("%s %s: status %d: %s", tc.auth, tc.body, res.StatusCode, b)
		}
	}
	// Without a key the caller gets the quote of the worker the router
	// picks, naming that worker.
	req, _ := http.NewRequest(http.MethodPost, e.gw.URL+"/v1/completions", strings.NewReader(`{"model":"tiny","prompt":"hi"}`))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var pr gateway.PaymentRequired
	if err := decodeB64JSON(res.Header.Get(gateway.HeaderPaymentRequired), &pr); res.StatusCode != 402 || err != nil || pr.Accepts[0].PayTo != e.ws[0].addr.String() {
		t.Fatalf("status %d, quote %+v, %v", res.StatusCode, pr, err)
	}
}

// TestServerMaxFee: quotes above MaxFee are not paid; the workers are
// not marked down for it.
func TestServerMaxFee(t *testing.T) {
	e := newTestEnv(t)
	e.srv.o.MaxFee = 99 // the fake workers quote 100
	res, b := e.post(t, `{"model":"tiny","prompt":"hi"}`)
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "max-fee 99") {
		t.Fatalf("status %d: %s", res.StatusCode, b)
	}
	if n := e.l.nonces[e.payAddr]; n != 0 {
		t.Fatalf("%d escrows signed", n)
	}
	for _, w := range e.ws {
		if e.srv.router.IsDown(w.addr) || w.served.Load() != 0 {
			t.Fatalf("worker %d down or served", w.id)
		}
	}
}

// TestServerNoAuth: a free gateway forwards to free workers without
// payment and without credentials.
func TestServerNoAuth(t *testing.T) {
	l := newFakeLedger()
	ws := []*fakeWorker{l.addWorker(t, "w1", 300, 1), l.addWorker(t, "w2", 100, 1)}
	for _, w := range ws {
		w.free = true
	}
	srv, err := New(context.Background(), Options{Ledger: l, NoAuth: true, Net: testNet, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(srv)
	defer gw.Close()
	for i := 0; i < 8; i++ {
		res, err := http.Post(gw.URL+"/v1/completions", "application/json", strings.NewReader(`{"model":"tiny","prompt":"hi"}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(b), `"agent_id":`) {
			t.Fatalf("status %d: %s", res.StatusCode, b)
		}
	}
	if ws[0].served.Load() != 6 || ws[1].served.Load() != 2 {
		t.Fatalf("served %d and %d of 8, want 6 and 2", ws[0].served.Load(), ws[1].served.Load())
	}
	if _, err := New(context.Background(), Options{Ledger: l}); err == nil {
		t.Fatal("a gateway without accounts and without NoAuth started")
	}
}

// TestRouterDownThenRetried: a worker marked down is skipped (tried last)
// until DownFor has passed, then is back in the round.
func TestRouterDownThenRetried(t *testing.T) {
	now := time.Unix(1000, 0)
	r := &Router{DownFor: 10 * time.Second, Now: func() time.Time { return now }}
	ranked := rank([]Worker{{Address: ledger.Address{1}, Stake: 100, Price: 1}, {Address: ledger.Address{2}, Stake: 100, Price: 1}}, 0)
	r.MarkDown(ledger.Address{1})
	for i := 0; i < 4; i++ {
		o := r.Order(ledger.Hash{}, ranked)
		if o[0].Address != (ledger.Address{2}) || len(o) != 2 || o[1].Address != (ledger.Address{1}) {
			t.Fatalf("order %v while worker 1 is down", o)
		}
	}
	now = now.Add(10 * time.Second)
	seen := map[ledger.Address]int{}
	for i := 0; i < 4; i++ {
		seen[r.Order(ledger.Hash{}, ranked)[0].Address]++
	}
	if seen[ledger.Address{1}] != 2 || r.IsDown(ledger.Address{1}) {
		t.Fatalf("after DownFor: %v", seen)
	}
}

// TestServerX402PassThrough: a caller without an API key pays the worker
// the gateway quoted itself; the payment goes to that worker.
func TestServerX402PassThrough(t *testing.T) {
	e := newTestEnv(t)
	do := func(sig string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, e.gw.URL+"/v1/completions", strings.NewReader(`{"model":"tiny","prompt":"hi"}`))
		req.Header.Set("Content-Type", "application/json")
		if sig != "" {
			req.Header.Set(gateway.HeaderPaymentSignature, sig)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	res := do("")
	var pr gateway.PaymentRequired
	if err := decodeB64JSON(res.Header.Get(gateway.HeaderPaymentRequired), &pr); res.StatusCode != 402 || err != nil {
		t.Fatalf("status %d: %v", res.StatusCode, err)
	}
	k, _ := keys.Generate(t.TempDir() + "/agent.json")
	var q *gateway.PaymentRequirements
	for i := range pr.Accepts {
		if pr.Accepts[i].Scheme == gateway.SchemeUpto {
			q = &pr.Accepts[i]
		}
	}
	sig, _, err := e.srv.payment(context.Background(), k, q, -1, 0)
	if err != nil {
		t.Fatal(err)
	}
	res = do(sig)
	if res.StatusCode != 200 || res.Header.Get(HeaderWorker) != q.PayTo {
		t.Fatalf("status %d, served by %s, paid %s", res.StatusCode, res.Header.Get(HeaderWorker), q.PayTo)
	}
	// A payment to an account that is no worker here is refused.
	q.PayTo = ledger.Address{0xee}.String()
	sig, _, _ = e.srv.payment(context.Background(), k, q, -1, 0)
	if res := do(sig); res.StatusCode != 400 {
		t.Fatalf("payment to a stranger: status %d", res.StatusCode)
	}
}

// FuzzNameWorker: naming the worker in an answer keeps valid JSON valid,
// leaves everything but the verdict object as it was, and never panics on
// whatever a worker sends.
func FuzzNameWorker(f *testing.F) {
	f.Add([]byte(`{"id":"x","verdict":{"receipt_id":"ab"}}`))
	f.Add([]byte(`{"verdict":null}`))
	f.Add([]byte(`{"verdict":[1]}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"choices":[{"text":"\"verdict\":{"}],"verdict":{}}`))
	f.Add([]byte(` { "verdict" : { "a" : [ 1 , {"b":"}"} ] } , "x" : true } `))
	f.Add([]byte(`{"verdict":{"agent_id":1,"worker":"evil","r":2,"agent_id":3}}`))
	f.Add([]byte(`{"verdict":{"r":1},"x":1,"verdict":{"r":2}}`))
	f.Add([]byte(`{"verdict":{"r":1},"verdict":null}`))
	f.Add([]byte(`{"verd\u0069ct":{"\u0061gent_id":0,"w\/orker":"x"}}`))
	f.Add([]byte(`{"verdict\u00e9":{},"\"verdict":{},"verdict":{"\u00e9":1e5}}`))
	w := Worker{AgentID: 7, Address: ledger.Address{7}}
	f.Fuzz(func(t *testing.T, b []byte) {
		out := bytes.Join(nameWorker(b, w), nil)
		if !json.Valid(b) {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("%s became invalid: %s", b, out)
		}
		var in, got map[string]any
		if json.Unmarshal(b, &in) != nil || json.Unmarshal(out, &got) != nil {
			return
		}
		v, ok := got["verdict"].(map[string]any)
		if was, isObj := in["verdict"].(map[string]any); isObj {
			if !ok || v["agent_id"] != float64(7) || v["worker"] != w.Address.String() {
				t.Fatalf("%s: verdict not named: %s", b, out)
			}
			delete(v, "agent_id")
			delete(v, "worker")
			delete(was, "agent_id")
			delete(was, "worker")
			a, _ := json.Marshal(was)
			c, _ := json.Marshal(v)
			if !bytes.Equal(a, c) {
				t.Fatalf("%s: the verdict object's other fields changed: %s", b, out)
			}
		} else if !bytes.Equal(out, b) {
			t.Fatalf("%s: changed, with no verdict object: %s", b, out)
		}
		delete(in, "verdict")
		delete(got, "verdict")
		a, _ := json.Marshal(in)
		c, _ := json.Marshal(got)
		if !bytes.Equal(a, c) {
			t.Fatalf("%s: changed outside verdict: %s", b, out)
		}
	})
}

// TestServerConcurrentPayer: one payer's concurrent requests are all
// paid, each escrow with the payer's next nonce.
func TestServerConcurrentPayer(t *testing.T) {
	e := newTestEnv(t)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				req, _ := http.NewRequest(http.MethodPost, e.gw.URL+"/v1/completions", strings.NewReader(`{"model":"tiny","prompt":"hi"}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+e.apiKey)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err.Error()
					return
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					errs <- fmt.Sprintf("status %d: %s", res.StatusCode, b)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	e.l.mu.Lock()
	defer e.l.mu.Unlock()
	if n := e.l.nonces[e.payAddr]; n != 40 {
		t.Fatalf("%d escrows for 40 requests", n)
	}
}

// TestServerPendingEscrow: a worker that dies after broadcasting the
// payer's escrow (which lands a little later, within PendingWait) may
// still publish a receipt for it: the request goes to no other worker and
// the caller gets a 502 naming the worker and the escrow.
func TestServerPendingEscrow(t *testing.T) {
	e := newTestEnv(t)
	e.ws[0].dieAfterPay = true
	res, b := e.post(t, `{"model":"tiny","prompt":"hi"}`)
	escrow := ledger.EscrowID(e.payAddr, 0).String()
	if res.StatusCode != http.StatusBadGateway || res.Header.Get(HeaderAgentID) != "1" || !strings.Contains(string(b), `"code":"worker_failed"`) || !strings.Contains(string(b), escrow) {
		t.Fatalf("status %d from agent %s: %s", res.StatusCode, res.Header.Get(HeaderAgentID), b)
	}
	if n := e.ws[1].served.Load() + e.ws[2].served.Load(); n != 0 {
		t.Fatalf("%d other workers served the request", n)
	}
	if !e.srv.router.IsDown(e.ws[0].addr) {
		t.Error("the worker is not marked down")
	}
	e.l.mu.Lock()
	defer e.l.mu.Unlock()
	if n := e.l.nonces[e.payAddr]; n != 1 {
		t.Fatalf("nonce %d: want the dead worker's escrow only", n)
	}
}

// TestServerStallNoDoubleCharge is the attack of a worker slower than
// HeaderTimeout that still publishes a receipt once the gateway gave up
// on it: the caller pays at most one worker for one request. A worker
// that took the escrow before stalling keeps the request (504 naming it;
// the caller pays its partial receipt only); one that stalls before
// landing the escrow loses it to the next worker, once the gateway has
// used the escrow's nonce (a send from the payer to itself), so the
// ledger refuses the staller's when it comes.
func TestServerStallNoDoubleCharge(t *testing.T) {
	for _, tc := range []struct {
		name       string
		stallFirst bool
		status     int
		agent      string
		charged    uint64
		burned     uint64
	}{
		{"escrow then stall", false, http.StatusGatewayTimeout, "1", partialCost, 0},
		{"stall then escrow", true, http.StatusOK, "2", fullCost, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, func(o *Options) { o.HeaderTimeout, o.PendingWait = 300*time.Millisecond, 300*time.Millisecond })
			w := e.ws[0]
			// It stalls until the gateway has answered.
			w.release, w.stallFirst, w.stalled = make(chan struct{}), tc.stallFirst, make(chan struct{})
			res, b := e.post(t, `{"model":"tiny","prompt":"hi","max_tokens":4}`)
			close(w.release)
			if res.StatusCode != tc.status || res.Header.Get(HeaderAgentID) != tc.agent {
				t.Fatalf("status %d from agent %s: %s", res.StatusCode, res.Header.Get(HeaderAgentID), b)
			}
			if tc.status == http.StatusGatewayTimeout && (!strings.Contains(string(b), `"code":"worker_timeout"`) || !strings.Contains(string(b), ledger.EscrowID(e.payAddr, 0).String())) {
				t.Fatalf("body %s", b)
			}
			<-w.stalled // the staller has taken or tried to take the escrow, and published
			if got := e.l.chargedTo(e.payAddr); got != tc.charged {
				t.Fatalf("the caller was charged %d for one request, want %d (partial %d, full %d)", got, tc.charged, partialCost, fullCost)
			}
			if !e.srv.router.IsDown(w.addr) {
				t.Error("the staller is not marked down")
			}
			e.l.mu.Lock()
			n, burned := e.l.nonces[e.payAddr]-e.l.burned[e.payAddr], e.l.burned[e.payAddr]
			e.l.mu.Unlock()
			if n != 1 || burned != tc.burned {
				t.Fatalf("%d escrows opened for one request, %d nonces burned (want %d)", n, burned, tc.burned)
			}
			// The next request goes to another worker and is paid as usual.
			res, b = e.post(t, `{"model":"tiny","prompt":"hi","max_tokens":4}`)
			if res.StatusCode != 200 || res.Header.Get(HeaderAgentID) == "1" {
				t.Fatalf("next request: status %d from agent %s: %s", res.StatusCode, res.Header.Get(HeaderAgentID), b)
			}
			if got := e.l.chargedTo(e.payAddr); got != tc.charged+fullCost {
				t.Fatalf("charged %d after a second request", got)
			}
		})
	}
}

// TestServerStreamFlood: a worker streaming one endless line is cut off
// at MaxEventBytes with an error event; nothing of the line is relayed.
func TestServerStreamFlood(t *testing.T) {
	e := newTestEnv(t)
	e.ws[0].flood = true
	res, b := e.post(t, `{"model":"tiny","prompt":"hi","stream":true}`)
	if res.StatusCode != 200 || res.Header.Get(HeaderAgentID) != "1" || len(b) > 4096 || !strings.Contains(string(b), "longer than") || strings.Contains(string(b), "xxx") {
		t.Fatalf("status %d, agent %s, %d bytes: %.300s", res.StatusCode, res.Header.Get(HeaderAgentID), len(b), b)
	}
}

// TestServerFreeWorkerInPaidPool: a worker that serves without payment
// (--no-auth) answers the quote request itself. In a gateway that pays
// its workers that answer is backed by no escrow and no receipt (nothing
// audits it, nothing can be slashed for it): it is not relayed. The
// worker is marked down and the request goes to the next worker, paid;
// the caller pays that one answer.
func TestServerFreeWorkerInPaidPool(t *testing.T) {
	e := newTestEnv(t)
	e.ws[0].free = true
	res, b := e.post(t, `{"model":"tiny","prompt":"hi"}`)
	if res.StatusCode != 200 || res.Header.Get(HeaderAgentID) != "2" || strings.Contains(string(b), `"free"`) {
		t.Fatalf("status %d, agent %s: %s", res.StatusCode, res.Header.Get(HeaderAgentID), b)
	}
	if !e.srv.router.IsDown(e.ws[0].addr) {
		t.Error("the free worker is not marked down")
	}
	e.l.mu.Lock()
	defer e.l.mu.Unlock()
	if n, c := e.l.nonces[e.payAddr], e.l.charged[e.payAddr]; n != 1 || c != fullCost {
		t.Fatalf("%d escrows signed, %d charged; want 1 and %d", n, c, fullCost)
	}
}

// An attack on discovery: agents whose registration files answer only
// once many requests for them are waiting at the same time (a tarpit:
// answered one after another, each would hold its fetch until
// RegistrationTimeout, 5 s, and leave the workers listed after them
// undiscovered for as long). Discover fetches them at once: every one
// answers and every worker, the honest one listed last included, is found
// in agent id order.
func TestDiscoverTarpits(t *testing.T) {
	l := newFakeLedger()
	const slow = 8
	var arrived atomic.Int32
	all := make(chan struct{})
	var ids []uint64
	for range slow {
		id := l.addAgent("")
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if arrived.Add(1) == slow {
				close(all)
			}
			select {
			case <-all:
				json.NewEncoder(w).Encode(goodRegistration(t, id))
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(s.Close)
		l.agents[id-1].AgentURI = s.URL + gateway.RegistrationPath
		ids = append(ids, id)
	}
	good := l.addWorker(t, "good", 500, 1)
	ids = append(ids, good.id)
	d := &Discovery{Ledger: l, Net: testNet, Logger: slog.New(slog.DiscardHandler)}
	ws, err := d.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := agentIDs(ws); !slices.Equal(got, ids) {
		t.Fatalf("discovered agents %v, want %v (%d requests reached the %d slow servers)", got, ids, arrived.Load(), slow)
	}
}

// The attack: many agents whose registration files never answer, listed
// before a worker. A discovery round ends within Discovery.Within however
// many there are (their cut fetches count as failed); the worker is
// reached within a few rounds, as they go into their backoffs (never
// fetched agents go before those that failed); and once its file has been
// accepted it is fetched first, so that tarpits listed later, however
// many, cannot push it out of the pool.
func TestDiscoverRoundBounded(t *testing.T) {
	l := newFakeLedger()
	tarpit := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(tarpit.Close)
	addTarpits := func(n int) {
		for range n {
			l.addAgent(tarpit.URL + gateway.RegistrationPath)
		}
	}
	addTarpits(2 * DiscoverFetches)
	good := l.addWorker(t, "good", 500, 1)
	now := time.Unix(1000, 0)
	const within = time.Second
	d := &Discovery{Ledger: l, Net: testNet, Within: within, Logger: slog.New(slog.DiscardHandler), now: func() time.Time { return now }}
	round := func(want ...uint64) {
		t.Helper()
		t0 := time.Now()
		ws, err := d.Discover(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(t0); took > within+2*time.Second {
			t.Fatalf("at %v: the round took %v, Within %v", now.Sub(time.Unix(1000, 0)), took, within)
		}
		if got := agentIDs(ws); !slices.Equal(got, want) {
			t.Fatalf("at %v: discovered %v, want %v", now.Sub(time.Unix(1000, 0)), got, want)
		}
		now = now.Add(time.Second)
	}
	round()        // 0 s: the first DiscoverFetches tarpits cut, backed off 2 s; the rest not reached
	round()        // 1 s: the next DiscoverFetches, never fetched before
	round(good.id) // 2 s: the worker, never fetched, before the first tarpits, whose backoff ended
	addTarpits(4 * DiscoverFetches)
	round(good.id) // 3 s: 64 new tarpits, never fetched: the worker, accepted before, goes first
	round(good.id)
}

// An agent whose registration file cannot be had is fetched once per
// backoff, not once per refresh: 2 s after the first failure, then 4 s,
// ...; once its file answers it is in the pool, its file kept for
// Discovery.Keep (fetched again after that, or at once when its agentURI
// changes on the ledger).
func TestDiscoverBackoff(t *testing.T) {
	l := newFakeLedger()
	good := l.addWorker(t, "good", 500, 1)
	id := l.addAgent("")
	var hits atomic.Int32
	var answer atomic.Bool
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if answer.Load() {
			json.NewEncoder(w).Encode(goodRegistration(t, id))
			return
		}
		// Down (a tarpit, cut by the client's timeout, backs off the
		// same way; a timeout short enough to keep this test quick
		// would cut the good worker's fetch too on a loaded machine).
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(s.Close)
	l.agents[id-1].AgentURI = s.URL + gateway.RegistrationPath
	now := time.Unix(1000, 0)
	d := &Discovery{Ledger: l, Net: testNet, HTTP: &http.Client{Timeout: 10 * time.Second}, Logger: slog.New(slog.DiscardHandler),
		Keep: time.Minute, now: func() time.Time { return now }}
	discover := func(after time.Duration, wantHits int32, wantIDs ...uint64) {
		t.Helper()
		now = now.Add(after)
		ws, err := d.Discover(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if h, got := hits.Load(), agentIDs(ws); h != wantHits || !slices.Equal(got, wantIDs) {
			t.Fatalf("at %v: %d fetches of the slow file, discovered %v; want %d and %v", now.Sub(time.Unix(1000, 0)), h, got, wantHits, wantIDs)
		}
	}
	discover(0, 1, good.id)
	discover(time.Second, 1, good.id)           // within 2 s: not fetched
	discover(1100*time.Millisecond, 2, good.id) // 2.1 s: fetched, failed: 4 s
	discover(3*time.Second, 2, good.id)
	answer.Store(true)
	discover(1100*time.Millisecond, 3, good.id, id) // 4.1 s later: fetched, answered
	discover(0, 3, good.id, id)                     // kept
	discover(59*time.Second, 3, good.id, id)        // for a minute
	discover(time.Second, 4, good.id, id)           // then fetched again
	l.agents[id-1].AgentURI = s.URL + "/moved.json" // its agentURI changes: fetched at once
	discover(0, 5, good.id, id)
}
