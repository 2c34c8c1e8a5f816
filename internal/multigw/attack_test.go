package multigw

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
)

// addHostile registers an agent whose API is served by h (its
// registration file is a valid one naming its server).
func (l *fakeLedger) addHostile(t *testing.T, name string, stake uint64, h http.HandlerFunc) ledger.Address {
	t.Helper()
	seed := make([]byte, ed25519.SeedSize)
	copy(seed, name)
	a, _ := ledger.AddressOf(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
	srv := httptest.NewUnstartedServer(nil)
	srv.Start()
	t.Cleanup(srv.Close)
	l.mu.Lock()
	id := uint64(len(l.agents) + 1)
	l.agents = append(l.agents, ledger.Agent{AgentID: id, Owner: a, AgentURI: srv.URL + gateway.RegistrationPath})
	l.meta[fmt.Sprintf("agent/%d/metadata/%s", id, MetaRole)] = []byte(RoleWorker)
	l.meta[fmt.Sprintf("agent/%d/metadata/%s", id, MetaModel)] = []byte(l.model.String())
	l.meta[fmt.Sprintf("agent/%d/metadata/%s", id, MetaPrice)] = []byte("1")
	l.stakes[a] = ledger.Stake{Bonded: stake}
	l.mu.Unlock()
	srv.Config.Handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == gateway.RegistrationPath {
			reg, _ := gateway.WorkerRegistration{Name: name, Base: srv.URL, ChainID: testChain, AgentID: id, X402: true}.Build()
			json.NewEncoder(rw).Encode(reg)
			return
		}
		h(rw, r)
	})
	return a
}

// hostileGateway is a gateway whose one worker is served by h.
func hostileGateway(t *testing.T, h http.HandlerFunc) (*Server, *httptest.Server, ledger.Address) {
	t.Helper()
	l := newFakeLedger()
	addr := l.addHostile(t, "evil", 1000, h)
	k, err := keys.Generate(t.TempDir() + "/payer.json")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(context.Background(), Options{Ledger: l, Accounts: map[string]*keys.Key{"sk": k}, Net: testNet, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(srv)
	t.Cleanup(gw.Close)
	return srv, gw, addr
}

// anonymousPayment is an x402 payment header any caller can send: no
// signature, naming payTo, so the gateway relays the request to that
// worker (which refuses it).
func anonymousPayment(t *testing.T, gw string, payTo ledger.Address) {
	t.Helper()
	p := gateway.PaymentPayload{X402Version: 2}
	p.Accepted.PayTo = payTo.String()
	b, _ := json.Marshal(p)
	req, _ := http.NewRequest("POST", gw+"/v1/completions", strings.NewReader(`{"model":"tiny","prompt":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(gateway.HeaderPaymentSignature, base64.StdEncoding.EncodeToString(b))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
}

// TestAttackReceiptRelayHTML: a hostile worker names a receipt id in its
// answer to an anonymous request and then serves that "receipt" as HTML
// with a year of caching. The unauthenticated receipts route relayed it
// as it was, on the gateway's origin (its explorer's too): a script ran
// there. Now the route answers only JSON it writes itself, with nosniff,
// and none of the worker's headers.
func TestAttackReceiptRelayHTML(t *testing.T) {
	const rid = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	for _, body := range []string{`<script>alert(document.domain)</script>`, `{"id":"` + rid + `","note":"<script>alert(1)</script>"}`} {
		_, gw, addr := hostileGateway(t, func(rw http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet {
				rw.Header().Set("Content-Type", "text/html")
				rw.Header().Set("Cache-Control", "public, max-age=31536000")
				io.WriteString(rw, body)
				return
			}
			io.Copy(io.Discard, r.Body)
			rw.Header().Set("X-Verdict-Receipt", rid)
			rw.WriteHeader(http.StatusBadRequest)
		})
		anonymousPayment(t, gw.URL, addr)
		res, err := http.Get(gw.URL + "/v1/receipts/" + rid)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if ct := res.Header.Get("Content-Type"); ct != "application/json" || res.Header.Get("X-Content-Type-Options") != "nosniff" || res.Header.Get("Cache-Control") != "" {
			t.Fatalf("worker's %q relayed as %d, Content-Type %q, Cache-Control %q, nosniff %q: %s", body, res.StatusCode, ct, res.Header.Get("Cache-Control"), res.Header.Get("X-Content-Type-Options"), b)
		}
		if !json.Valid(b) || (strings.HasPrefix(body, "<") && res.StatusCode != http.StatusBadGateway) {
			t.Fatalf("worker's %q answered %d: %s", body, res.StatusCode, b)
		}
	}
}

// TestAttackRememberedIDs: a hostile worker names megabytes as its
// receipt id; the gateway kept every one (40 anonymous requests held 320
// MiB). Now it keeps ids that are receipt ids only, and refuses a worker's
// headers past MaxWorkerHeaderBytes.
func TestAttackRememberedIDs(t *testing.T) {
	n := 0
	srv, gw, addr := hostileGateway(t, func(rw http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		n++
		id := strconv.Itoa(n) + strings.Repeat("a", 32<<10)
		if n%2 == 0 {
			id = strings.Repeat("b", 1<<20) // past the header limit
		}
		rw.Header().Set("X-Verdict-Receipt", id)
		rw.WriteHeader(http.StatusBadRequest)
	})
	for range 8 {
		anonymousPayment(t, gw.URL, addr)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if n == 0 || len(srv.served) != 0 {
		t.Fatalf("%d requests relayed, %d ids kept", n, len(srv.served))
	}
}

// TestAttackPayerLockStall: a worker takes a payment and stalls without
// submitting the escrow, holding the payer's lock (its escrows go in
// nonce order) until HeaderTimeout. Another request of that payer waited
// that long even after its caller had hung up. Now the wait ends with
// the request.
func TestAttackPayerLockStall(t *testing.T) {
	e := newTestEnv(t, func(o *Options) { o.HeaderTimeout = 5 * time.Second })
	for _, w := range e.ws {
		w.stall, w.stallFirst, w.stalled = 4*time.Second, true, make(chan struct{})
	}
	first := make(chan struct{})
	go func() { // holds the lock
		defer close(first)
		req, _ := http.NewRequest(http.MethodPost, e.gw.URL+"/v1/completions", strings.NewReader(`{"model":"tiny","prompt":"first","max_tokens":4}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+e.apiKey)
		if res, err := http.DefaultClient.Do(req); err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}()
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/completions", strings.NewReader(`{"model":"tiny","prompt":"second","max_tokens":4}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e.apiKey)
	t0 := time.Now()
	e.srv.ServeHTTP(httptest.NewRecorder(), req)
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("a request whose caller left after 300 ms waited %v for the payer's lock", d)
	}
	<-first
}

// TestAttackSlowAcceptedFiles: an attacker registers agents whose
// registration files are valid but each take most of a fetch's time, as
// many as fill a discovery round's Within. Their files accepted, they
// were fetched first in every round, so a new worker, fetched after them,
// was cut at the round's end every time (then backed off, behind them
// still): never discovered. Now an accepted file is kept
// (Discovery.Keep), and the next round fetches only the new worker's.
func TestAttackSlowAcceptedFiles(t *testing.T) {
	l := newFakeLedger()
	serve := func(id uint64, lag time.Duration) {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(lag):
				json.NewEncoder(w).Encode(goodRegistration(t, id))
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(s.Close)
		l.mu.Lock()
		l.agents[id-1].AgentURI = s.URL + gateway.RegistrationPath
		l.mu.Unlock()
	}
	var slow []uint64
	for range 2 * DiscoverFetches {
		id := l.addAgent("")
		serve(id, 900*time.Millisecond)
		slow = append(slow, id)
	}
	now := time.Unix(1000, 0)
	d := &Discovery{Ledger: l, Net: testNet, Within: 20 * time.Second, Logger: slog.New(slog.DiscardHandler), now: func() time.Time { return now }}
	discover := func() []uint64 {
		t.Helper()
		ws, err := d.Discover(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return agentIDs(ws)
	}
	if got := discover(); !slices.Equal(got, slow) {
		t.Fatalf("the slow agents' files: discovered %v, want %v", got, slow)
	}
	// A worker registers; its file takes 600 ms. Two rounds of the slow
	// files (2 x 900 ms) and it no longer fit a 2 s round.
	good := l.addAgent("")
	serve(good, 600*time.Millisecond)
	d.Within = 2 * time.Second
	for round := range 3 {
		now = now.Add(2 * time.Second)
		if got := discover(); !slices.Contains(got, good) || len(got) != len(slow)+1 {
			t.Fatalf("round %d after the worker registered: discovered %v, want the %d slow agents and %d", round, got, len(slow), good)
		}
	}
}

// TestAttackInflatedQuote: a staked worker quotes a request for far more
// than it can cost at the worker's own price (the payer's whole balance),
// and the gateway signed whatever a worker quoted (unless --max-fee was
// set): the escrow locked it, and a receipt of the worker's choosing, as
// long as the fee allowed, could take it. Now a quote above the price
// times what the request can hold (requestTokens: its max_tokens, its
// body's bytes and the chat template's) is refused as a worker's
// failure: the request goes to the next worker, the liar is marked down.
func TestAttackInflatedQuote(t *testing.T) {
	e := newTestEnv(t)
	liar := e.ws[0]
	liar.amount = "1000000000"
	res, b := e.post(t, `{"model":"tiny","prompt":"hi","max_tokens":4}`)
	if res.StatusCode != http.StatusOK || res.Header.Get(HeaderAgentID) == strconv.FormatUint(liar.id, 10) {
		t.Fatalf("status %d from agent %s: %s", res.StatusCode, res.Header.Get(HeaderAgentID), b)
	}
	if got := e.l.chargedTo(e.payAddr); got != fullCost {
		t.Fatalf("charged %d, want one answer's %d", got, fullCost)
	}
	e.l.mu.Lock()
	n := e.l.nonces[e.payAddr]
	e.l.mu.Unlock()
	if n != 1 || !e.srv.router.IsDown(liar.addr) {
		t.Fatalf("%d escrows signed; the liar marked down: %v", n, e.srv.router.IsDown(liar.addr))
	}
	// A quote of the whole bound is taken, one more is not.
	const body = `{"model":"tiny","prompt":"hi","max_tokens":4}`
	var top map[string]json.RawMessage
	json.Unmarshal([]byte(body), &top)
	top["model"], _ = json.Marshal(e.l.model.String()) // as the gateway sends it
	sent, _ := json.Marshal(top)
	bound := requestTokens(top, len(sent))
	if want := uint64(4 + 2*len(sent) + TemplateTokens); bound != want {
		t.Fatalf("requestTokens %d, want %d", bound, want)
	}
	next := e.ws[1]                     // price 1
	e.srv.router.MarkDown(e.ws[2].addr) // next goes first
	for _, tc := range []struct {
		amount uint64
		served bool
	}{{bound + 1, false}, {bound, true}} {
		e.srv.router.mu.Lock()
		delete(e.srv.router.down, next.addr)
		e.srv.router.mu.Unlock()
		next.amount = strconv.FormatUint(tc.amount, 10)
		res, b := e.post(t, body)
		if served := res.Header.Get(HeaderAgentID) == strconv.FormatUint(next.id, 10); res.StatusCode != http.StatusOK || served != tc.served {
			t.Fatalf("a quote of %d (bound %d): status %d from agent %s: %s", tc.amount, bound, res.StatusCode, res.Header.Get(HeaderAgentID), b)
		}
	}
}
