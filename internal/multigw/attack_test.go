package multigw

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
func hostileGateway(t *testing.T, h http.HandlerFunc, opts ...func(*Options)) (*Server, *httptest.Server, ledger.Address) {
	t.Helper()
	l := newFakeLedger()
	addr := l.addHostile(t, "evil", 1000, h)
	k, err := keys.Generate(t.TempDir() + "/payer.json")
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Ledger: l, Accounts: map[string]*keys.Key{"sk": k}, Net: testNet, Logger: slog.New(slog.DiscardHandler)}
	for _, f := range opts {
		f(&o)
	}
	srv, err := New(context.Background(), o)
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
func anonymousPayment(t *testing.T, gw string, payTo ledger.Address) (int, []byte) {
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
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, out
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

// bigAnswer writes a completion answer of about mib MiB (its text all
// 'a') to w, a chunk at a time.
func bigAnswer(w io.Writer, mib int) error {
	chunk := bytes.Repeat([]byte("a"), 1<<20)
	if _, err := io.WriteString(w, `{"id":"x","object":"text_completion","choices":[{"text":"`); err != nil {
		return err
	}
	for range mib {
		if _, err := w.Write(chunk); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, `"}],"verdict":{"receipt_id":"ab"}}`)
	return err
}

// TestAttackWorkerAnswerSize: a staked worker answers with as much as the
// gateway reads. It read a non-streamed answer, or a receipt it relays,
// up to 64 MiB and then parsed and re-encoded it (about 200 MiB a
// request), its worker client asked for gzip and inflated it (64 KiB of
// gzip sent became 64 MiB), and nothing bounded the time a body took
// after its headers. Anyone can make it so: anonymous x402 requests naming
// the worker, or GETs of a receipt id it named. Now the gateway asks for
// no encoding and refuses one, reads at most MaxResponseBytes of an
// answer and MaxReceiptAnswerBytes of a receipt, each within BodyTimeout,
// and at most MaxWorkerInFlightBytes of one worker's answers at once (the
// others wait for room); the caller gets worker_failed, saying why, and
// the worker is marked down.
func TestAttackWorkerAnswerSize(t *testing.T) {
	// 60 MiB of answer gzipped into a few dozen KiB: under the old bound
	// once inflated.
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	if err := bigAnswer(zw, 60); err != nil || zw.Close() != nil {
		t.Fatal(err)
	}
	sendBomb := func(rw http.ResponseWriter) {
		rw.Header().Set("Content-Type", "application/json")
		rw.Header().Set("Content-Encoding", "gzip")
		rw.Write(bomb.Bytes())
	}
	sendHuge := func(rw http.ResponseWriter) {
		rw.Header().Set("Content-Type", "application/json")
		bigAnswer(rw, 65) // past the old bound: it was read to its end
	}
	// alloc returns what f allocated, in MiB.
	alloc := func(f func()) uint64 {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		f()
		runtime.ReadMemStats(&m1)
		return (m1.TotalAlloc - m0.TotalAlloc) >> 20
	}
	// Reading MaxResponseBytes in growing buffers allocates about twice
	// as much (more under -race); the old bound's one read, 64 MiB, did
	// not fit this.
	const maxMiB = 48
	check := func(t *testing.T, mib uint64, status int, b []byte, want string, down bool) {
		t.Helper()
		if status != http.StatusBadGateway || !strings.Contains(string(b), `"code":"worker_failed"`) || !strings.Contains(string(b), want) {
			t.Errorf("status %d: %.300s (want 502, worker_failed, %q)", status, b, want)
		}
		if mib > maxMiB {
			t.Errorf("the gateway allocated %d MiB for one request (at most %d)", mib, maxMiB)
		}
		if !down {
			t.Error("the worker is not marked down")
		}
	}
	for _, tc := range []struct {
		name   string
		answer func(http.ResponseWriter)
		want   string
	}{{"gzip", sendBomb, "Content-Encoding"}, {"huge", sendHuge, "larger than"}} {
		t.Run("paid "+tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.ws[0].answer = tc.answer
			var res *http.Response
			var b []byte
			mib := alloc(func() { res, b = e.post(t, `{"model":"tiny","prompt":"hi","max_tokens":4}`) })
			if res.Header.Get(HeaderAgentID) != "1" {
				t.Errorf("answered by agent %q, want 1", res.Header.Get(HeaderAgentID))
			}
			check(t, mib, res.StatusCode, b, tc.want, e.srv.router.IsDown(e.ws[0].addr))
		})
		t.Run("anonymous "+tc.name, func(t *testing.T) {
			srv, gw, addr := hostileGateway(t, func(rw http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				tc.answer(rw)
			})
			var status int
			var b []byte
			mib := alloc(func() { status, b = anonymousPayment(t, gw.URL, addr) })
			check(t, mib, status, b, tc.want, srv.router.IsDown(addr))
		})
		t.Run("receipt "+tc.name, func(t *testing.T) {
			const rid = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
			srv, gw, addr := hostileGateway(t, func(rw http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodGet {
					tc.answer(rw)
					return
				}
				io.Copy(io.Discard, r.Body)
				rw.Header().Set("X-Verdict-Receipt", rid)
				rw.WriteHeader(http.StatusBadRequest)
			})
			anonymousPayment(t, gw.URL, addr)
			srv.router.mu.Lock()
			clear(srv.router.down)
			srv.router.mu.Unlock()
			var status int
			var b []byte
			mib := alloc(func() {
				res, err := http.Get(gw.URL + "/v1/receipts/" + rid)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				status = res.StatusCode
				b, _ = io.ReadAll(res.Body)
			})
			check(t, mib, status, b, tc.want, srv.router.IsDown(addr))
		})
	}
	// A body whose headers came but whose bytes never end.
	t.Run("slow", func(t *testing.T) {
		srv, gw, addr := hostileGateway(t, func(rw http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			rw.Header().Set("Content-Type", "application/json")
			io.WriteString(rw, `{"choices":[{"text":"`)
			rw.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}, func(o *Options) { o.BodyTimeout = 300 * time.Millisecond })
		t0 := time.Now()
		status, b := anonymousPayment(t, gw.URL, addr)
		if d := time.Since(t0); d > 5*time.Second {
			t.Errorf("the answer took %v (BodyTimeout 300 ms)", d)
		}
		check(t, 0, status, b, "not sent within", srv.router.IsDown(addr))
	})
	// Receipts of 7 MiB each, asked for 8 times at once: the gateway
	// reads at most MaxWorkerInFlightBytes of them at once (each, of no
	// stated length, reserving MaxReceiptAnswerBytes); the rest wait for
	// room, and are read once the first are done.
	t.Run("many at once", func(t *testing.T) {
		const rid = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
		const n = 8
		gate := make(chan struct{})
		srv, gw, addr := hostileGateway(t, func(rw http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet {
				io.Copy(io.Discard, r.Body)
				rw.Header().Set("X-Verdict-Receipt", rid)
				rw.WriteHeader(http.StatusBadRequest)
				return
			}
			rw.Header().Set("Content-Type", "application/json")
			io.WriteString(rw, `"`)
			rw.(http.Flusher).Flush()
			select { // hold the gateway's reads open until the rest wait
			case <-r.Context().Done():
				return
			case <-gate:
			}
			rw.Write(bytes.Repeat([]byte("a"), 7<<20))
			io.WriteString(rw, `"`)
		})
		holders := int(MaxWorkerInFlightBytes / MaxReceiptAnswerBytes)
		waiting := make(chan struct{}, n)
		srv.onWait = func(ledger.Address) { waiting <- struct{}{} }
		anonymousPayment(t, gw.URL, addr)
		var wg sync.WaitGroup
		var ok atomic.Int32
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := http.Get(gw.URL + "/v1/receipts/" + rid)
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode == http.StatusOK && len(b) > 7<<20 {
					ok.Add(1)
				} else {
					t.Errorf("status %d: %.300s", res.StatusCode, b)
				}
			}()
		}
		for i := range n - holders {
			select {
			case <-waiting:
			case <-time.After(30 * time.Second):
				t.Fatalf("%d of %d receipts waiting for room, want %d (%d read at once within MaxWorkerInFlightBytes %d MiB)", i, n, n-holders, holders, MaxWorkerInFlightBytes>>20)
			}
		}
		close(gate)
		wg.Wait()
		if ok.Load() != n {
			t.Errorf("%d of %d receipts relayed", ok.Load(), n)
		}
		if srv.router.IsDown(addr) {
			t.Error("the worker is marked down")
		}
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if len(srv.inFlight) != 0 {
			t.Errorf("bytes still counted in flight: %v", srv.inFlight)
		}
	})
}

// TestAttackUnpaidAnswer: a staked worker with a low price, so that it
// wins the routing, answers the quote request (which carries no
// payment) itself, with text of its own making and a "verdict" object
// and receipt id of its own. The gateway relayed that answer to the
// paying caller: no escrow, no receipt, nothing audited or slashable.
// Or it refuses every request with a 4xx, which was relayed with no
// failover. Now a worker's answer to an unpaid request is never relayed
// when its workers are paid: the worker is marked down and the request
// goes to the next, paid (API key) or quoted (x402); a refusal is
// relayed only when every worker refuses, as they do a bad request.
func TestAttackUnpaidAnswer(t *testing.T) {
	const rid = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
	for _, tc := range []struct {
		name   string
		answer func(rw http.ResponseWriter)
	}{
		{"answers unpaid", func(rw http.ResponseWriter) {
			rw.Header().Set("Content-Type", "application/json")
			rw.Header().Set("X-Verdict-Receipt", rid)
			io.WriteString(rw, `{"id":"x","object":"text_completion","choices":[{"text":"made up"}],"verdict":{"receipt_id":"`+rid+`"}}`)
		}},
		{"refuses", func(rw http.ResponseWriter) {
			rw.Header().Set("Content-Type", "application/json")
			rw.WriteHeader(http.StatusBadRequest)
			io.WriteString(rw, `{"error":{"message":"made up","type":"invalid_request_error","code":"invalid_value"}}`)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			var hits atomic.Int32
			evil := e.l.addHostile(t, "evil", 100000, func(rw http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				hits.Add(1)
				if r.Header.Get(gateway.HeaderPaymentSignature) != "" {
					t.Error("the hostile worker was paid")
				}
				tc.answer(rw)
			})
			if err := e.srv.Refresh(context.Background()); err != nil {
				t.Fatal(err)
			}
			res, b := e.post(t, `{"model":"tiny","prompt":"hi","max_tokens":4}`)
			if res.StatusCode != http.StatusOK || strings.Contains(string(b), "made up") || res.Header.Get(HeaderWorker) == evil.String() || hits.Load() != 1 {
				t.Fatalf("status %d from %s after %d requests to the hostile worker: %s", res.StatusCode, res.Header.Get(HeaderWorker), hits.Load(), b)
			}
			if !e.srv.router.IsDown(evil) {
				t.Error("the hostile worker is not marked down")
			}
			e.l.mu.Lock()
			n, c := e.l.nonces[e.payAddr], e.l.charged[e.payAddr]
			e.l.mu.Unlock()
			if n != 1 || c != fullCost {
				t.Fatalf("%d escrows, %d charged: want one paid answer (%d)", n, c, fullCost)
			}
			// An x402 caller asking for a quote gets an honest worker's.
			e.srv.router.mu.Lock()
			clear(e.srv.router.down)
			e.srv.router.mu.Unlock()
			req, _ := http.NewRequest(http.MethodPost, e.gw.URL+"/v1/completions", strings.NewReader(`{"model":"tiny","prompt":"hi","max_tokens":4}`))
			req.Header.Set("Content-Type", "application/json")
			xres, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ = io.ReadAll(xres.Body)
			xres.Body.Close()
			var pr gateway.PaymentRequired
			if err := decodeB64JSON(xres.Header.Get(gateway.HeaderPaymentRequired), &pr); xres.StatusCode != http.StatusPaymentRequired || err != nil || pr.Accepts[0].PayTo == evil.String() {
				t.Fatalf("x402 caller: status %d, quote %+v (%v): %s", xres.StatusCode, pr, err, b)
			}
			if !e.srv.router.IsDown(evil) {
				t.Error("x402: the hostile worker is not marked down")
			}
		})
	}
	// A request every worker refuses (the caller's fault) gets the
	// refusal, and marks no worker down.
	t.Run("bad request", func(t *testing.T) {
		e := newTestEnv(t)
		res, b := e.post(t, `{"model":"tiny","prompt":"hi","max_tokens":0}`)
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "max_tokens must be at least 1") {
			t.Fatalf("status %d: %s", res.StatusCode, b)
		}
		for _, w := range e.ws {
			if e.srv.router.IsDown(w.addr) {
				t.Errorf("worker %d marked down for the caller's bad request", w.id)
			}
		}
		if n := e.l.nonces[e.payAddr]; n != 0 {
			t.Fatalf("%d escrows signed for a refused request", n)
		}
	})
}

// TestAttackEscrowLandedLate: worker A takes the payer's signed escrow,
// hangs up without submitting it, and keeps it. PendingWait later the
// payer's nonce had not moved, so the gateway sent the request to worker
// B with an escrow of the same nonce; A then submitted its copy just
// before B's: the ledger refused B's, the gateway blamed B (502 naming
// it, B marked down), and A was paid for a request it never answered.
// Now the gateway first uses the nonce with a send from the payer to
// itself, committed, and pays B at the next nonce: A's copy is refused,
// B serves, the caller pays once, and A is marked down. When A's escrow
// lands before that send, the send is refused and the request is A's
// (502 naming A and the escrow), going to no other worker.
func TestAttackEscrowLandedLate(t *testing.T) {
	setup := func(t *testing.T) (*testEnv, *fakeWorker, *fakeWorker, func() error) {
		e := newTestEnv(t, func(o *Options) { o.PendingWait = 300 * time.Millisecond })
		a, b := e.ws[0], e.ws[1] // the router's first and second
		a.keep = make(chan *ledger.Tx, 1)
		b.mayRefuse = true
		// land submits the escrow A kept, and publishes a receipt for it.
		land := func() error {
			tx := <-a.keep
			if err := e.l.take(tx); err != nil {
				return err
			}
			return e.l.publish(tx, fullCost)
		}
		return e, a, b, land
	}
	t.Run("after the failover", func(t *testing.T) {
		e, a, b, land := setup(t)
		var late error
		b.beforeTake = func() { late = land() } // just before B's escrow
		res, body := e.post(t, `{"model":"tiny","prompt":"hi","max_tokens":4}`)
		if res.StatusCode != http.StatusOK || res.Header.Get(HeaderAgentID) != strconv.FormatUint(b.id, 10) {
			t.Fatalf("status %d from agent %s: %s", res.StatusCode, res.Header.Get(HeaderAgentID), body)
		}
		if late == nil {
			t.Error("A's late escrow was taken by the ledger")
		}
		if got := e.l.chargedTo(e.payAddr); got != fullCost {
			t.Errorf("charged %d, want B's answer only (%d)", got, fullCost)
		}
		if !e.srv.router.IsDown(a.addr) || e.srv.router.IsDown(b.addr) {
			t.Errorf("down: A %v, B %v; want A only", e.srv.router.IsDown(a.addr), e.srv.router.IsDown(b.addr))
		}
		e.l.mu.Lock()
		defer e.l.mu.Unlock()
		if e.l.burned[e.payAddr] != 1 || e.l.nonces[e.payAddr] != 2 {
			t.Errorf("%d nonces burned, nonce %d; want 1 and 2 (B's escrow at the one after)", e.l.burned[e.payAddr], e.l.nonces[e.payAddr])
		}
	})
	t.Run("before the burn", func(t *testing.T) {
		e, a, b, land := setup(t)
		e.l.mu.Lock()
		e.l.onBroadcast = func() {
			if err := land(); err != nil {
				t.Errorf("A's escrow: %v", err)
			}
		}
		e.l.mu.Unlock()
		res, body := e.post(t, `{"model":"tiny","prompt":"hi","max_tokens":4}`)
		if res.StatusCode != http.StatusBadGateway || res.Header.Get(HeaderAgentID) != strconv.FormatUint(a.id, 10) ||
			!strings.Contains(string(body), ledger.EscrowID(e.payAddr, 0).String()) || !strings.Contains(string(body), "escrow landed") {
			t.Fatalf("status %d from agent %s: %s", res.StatusCode, res.Header.Get(HeaderAgentID), body)
		}
		if n := b.served.Load() + e.ws[2].served.Load(); n != 0 {
			t.Errorf("%d other workers served the request", n)
		}
		if got := e.l.chargedTo(e.payAddr); got != fullCost {
			t.Errorf("charged %d, want A's receipt only (%d)", got, fullCost)
		}
		if !e.srv.router.IsDown(a.addr) || e.srv.router.IsDown(b.addr) {
			t.Errorf("down: A %v, B %v; want A only", e.srv.router.IsDown(a.addr), e.srv.router.IsDown(b.addr))
		}
		if n := e.l.escrowsOf(e.payAddr); n != 1 {
			t.Errorf("%d escrows for one request", n)
		}
	})
}

// TestAttackHiddenWorker: discovery read agents 1 to MaxAgents (4096)
// only, every round, so that registering 4096 empty agents (cheap) hid
// every later worker from every gateway; and one agent the node failed
// to answer for ended the whole round. Now each round reads MaxAgents
// agents from where the last stopped, wrapping round, keeping the workers
// read before, so a worker after 5000 empty agents is found in the
// second round; an agent whose read fails is skipped, its last listing
// kept.
func TestAttackHiddenWorker(t *testing.T) {
	l := newFakeLedger()
	l.mu.Lock()
	for id := uint64(1); id <= 5000; id++ {
		l.agents = append(l.agents, ledger.Agent{AgentID: id, Owner: ledger.Address{byte(id), byte(id >> 8), 0xe7}})
	}
	l.mu.Unlock()
	good := l.addWorker(t, "good", 500, 1)
	d := &Discovery{Ledger: l, Net: testNet, Logger: slog.New(slog.DiscardHandler)}
	rounds := (good.id + DefaultMaxAgents - 1) / DefaultMaxAgents
	var got []uint64
	for range rounds {
		ws, err := d.Discover(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got = agentIDs(ws)
	}
	if !slices.Equal(got, []uint64{good.id}) {
		t.Fatalf("after %d rounds: discovered %v, want the worker %d listed after 5000 empty agents", rounds, got, good.id)
	}
	// It stays in the pool while the rounds read other agents.
	for round := range 3 {
		if ws, err := d.Discover(context.Background()); err != nil || !slices.Equal(agentIDs(ws), []uint64{good.id}) {
			t.Fatalf("round %d after: %v, %v", round, agentIDs(ws), err)
		}
	}

	// A read that fails for one agent drops neither the others nor, once
	// listed, that agent.
	l = newFakeLedger()
	ws := []*fakeWorker{l.addWorker(t, "w1", 500, 1), l.addWorker(t, "w2", 500, 1), l.addWorker(t, "w3", 500, 1)}
	all := []uint64{ws[0].id, ws[1].id, ws[2].id}
	l.failAgents = map[uint64]bool{ws[1].id: true}
	d = &Discovery{Ledger: l, Net: testNet, Logger: slog.New(slog.DiscardHandler)}
	found, err := d.Discover(context.Background())
	if want := []uint64{ws[0].id, ws[2].id}; err != nil || !slices.Equal(agentIDs(found), want) {
		t.Fatalf("with agent %d's read failing: discovered %v (%v), want %v", ws[1].id, agentIDs(found), err, want)
	}
	l.mu.Lock()
	l.failAgents = nil
	l.mu.Unlock()
	if found, err = d.Discover(context.Background()); err != nil || !slices.Equal(agentIDs(found), all) {
		t.Fatalf("once it answers: discovered %v (%v), want %v", agentIDs(found), err, all)
	}
	l.mu.Lock()
	l.failAgents = map[uint64]bool{ws[1].id: true}
	l.mu.Unlock()
	if found, err = d.Discover(context.Background()); err != nil || !slices.Equal(agentIDs(found), all) {
		t.Fatalf("failing again: discovered %v (%v), want %v (its last listing kept)", agentIDs(found), err, all)
	}
}

// maximalAnswer is a completion answer of exactly MaxResponseBytes, its
// text all 'a', with a "verdict" object to name the worker in.
func maximalAnswer() []byte {
	head, tail := `{"id":"x","object":"text_completion","choices":[{"text":"`, `"}],"verdict":{"receipt_id":"ab"}}`
	b := make([]byte, 0, MaxResponseBytes)
	b = append(b, head...)
	b = append(b, bytes.Repeat([]byte("a"), MaxResponseBytes-len(head)-len(tail))...)
	return append(b, tail...)
}

// allocated returns the bytes f allocated (the whole process's heap
// allocations while it ran; no test here runs in parallel).
func allocated(f func()) uint64 {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	f()
	runtime.ReadMemStats(&m1)
	return m1.TotalAlloc - m0.TotalAlloc
}

// TestAttackAnswerNamingCost: a staked worker answers with as much as the
// gateway reads (MaxResponseBytes). To name the worker in it the gateway
// decoded the whole answer into a map and encoded it again: naming an
// 8 MiB answer allocated 75 MiB, the request 84 MiB, so that the bound
// on a worker's answers in flight (MaxWorkerInFlightBytes) bounded a
// tenth of what they cost. Now the two fields are spliced
// into the "verdict" object: naming a maximal answer allocates a few
// hundred bytes, and the whole request (the answer read into one buffer
// of its Content-Length) about the answer's own size.
func TestAttackAnswerNamingCost(t *testing.T) {
	answer := maximalAnswer()
	w := Worker{AgentID: 7, Address: ledger.Address{7}}
	var pieces net.Buffers
	if n := allocated(func() { pieces = nameWorker(answer, w) }); n > 4<<10 {
		t.Errorf("naming the worker in a %d-byte answer allocated %d bytes", len(answer), n)
	}
	named := bytes.Join(pieces, nil)
	var v struct {
		Verdict struct {
			ReceiptID string `json:"receipt_id"`
			AgentID   uint64 `json:"agent_id"`
			Worker    string `json:"worker"`
		} `json:"verdict"`
	}
	if err := json.Unmarshal(named, &v); err != nil || v.Verdict.AgentID != 7 || v.Verdict.Worker != w.Address.String() || v.Verdict.ReceiptID != "ab" {
		t.Fatalf("named answer: %+v (%v)", v, err)
	}

	e := newTestEnv(t)
	e.ws[0].answer = func(rw http.ResponseWriter) {
		rw.Header().Set("Content-Type", "application/json")
		rw.Header().Set("Content-Length", strconv.Itoa(len(answer)))
		rw.Write(answer)
	}
	var status int
	var got int64
	n := allocated(func() {
		req, _ := http.NewRequest(http.MethodPost, e.gw.URL+"/v1/completions", strings.NewReader(`{"model":"tiny","prompt":"hi","max_tokens":4}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+e.apiKey)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		status = res.StatusCode
		got, _ = io.Copy(io.Discard, res.Body)
	})
	if status != http.StatusOK || got <= int64(len(answer)) {
		t.Fatalf("status %d, %d bytes relayed of a %d-byte answer", status, got, len(answer))
	}
	if limit := uint64(len(answer)) + 1<<20; n > limit {
		t.Errorf("one request of a %d-byte answer allocated %d bytes, want at most %d (the answer and 1 MiB)", len(answer), n, limit)
	}
}

// TestAttackAnonymousRateFanout: a worker answering 429 to a quote
// request (busy, with Retry-After) passed the request on to the next
// worker, and every later request asked it again: a caller without an
// API key, sending quote requests as fast as it liked, made the gateway
// send each of them to every worker while all were busy (30 requests to
// the workers for 10 of its own, each answered 503), so that Retry-After
// held back neither the caller nor the gateway. Now a worker that answers
// 429 is left out of every request for its Retry-After (at least a
// second, at most DownFor); the request still goes to the next worker,
// and when every worker is busy the gateway answers 429 itself, with the
// Retry-After of the first to be free, asking none.
func TestAttackAnonymousRateFanout(t *testing.T) {
	l := newFakeLedger()
	ws := []*fakeWorker{l.addWorker(t, "w1", 400, 1), l.addWorker(t, "w2", 300, 1), l.addWorker(t, "w3", 200, 1)}
	var busy [3]atomic.Bool
	var hits [3]atomic.Int32
	for i, w := range ws {
		h := w.srv.Config.Handler
		w.srv.Config.Handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if r.URL.Path == gateway.RegistrationPath {
				h.ServeHTTP(rw, r)
				return
			}
			hits[i].Add(1)
			if busy[i].Load() {
				io.Copy(io.Discard, r.Body)
				rw.Header().Set("Retry-After", "5")
				rw.Header().Set("Content-Type", "application/json")
				rw.WriteHeader(http.StatusTooManyRequests)
				io.WriteString(rw, `{"error":{"message":"busy; retry later","type":"requests","code":"rate_limit_exceeded"}}`)
				return
			}
			h.ServeHTTP(rw, r)
		})
	}
	k, err := keys.Generate(t.TempDir() + "/payer.json")
	if err != nil {
		t.Fatal(err)
	}
	var clock atomic.Int64
	clock.Store(time.Unix(1000, 0).UnixNano())
	srv, err := New(context.Background(), Options{Ledger: l, Accounts: map[string]*keys.Key{"sk": k}, Net: testNet, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv.router.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	gw := httptest.NewServer(srv)
	t.Cleanup(gw.Close)
	quote := func() (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodPost, gw.URL+"/v1/completions", strings.NewReader(`{"model":"tiny","prompt":"hi","max_tokens":4}`))
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, b
	}
	total := func() (n int32) {
		for i := range hits {
			n += hits[i].Swap(0)
		}
		return n
	}

	// One worker busy: the others quote every request; it is asked once.
	busy[0].Store(true)
	for i := range 10 {
		if res, b := quote(); res.StatusCode != http.StatusPaymentRequired || res.Header.Get(HeaderWorker) == ws[0].addr.String() {
			t.Fatalf("request %d: status %d from %s: %s", i, res.StatusCode, res.Header.Get(HeaderWorker), b)
		}
	}
	if n := hits[0].Load(); n != 1 {
		t.Errorf("the busy worker was asked %d times for 10 requests within its Retry-After, want once", n)
	}
	total()

	// All busy: 10 requests ask each worker once, and get 429 with
	// Retry-After from the gateway.
	clock.Add(int64(6 * time.Second))
	for i := range busy {
		busy[i].Store(true)
	}
	for i := range 10 {
		res, b := quote()
		ra, _ := strconv.Atoi(res.Header.Get("Retry-After"))
		if res.StatusCode != http.StatusTooManyRequests || ra < 1 || ra > 5 || !strings.Contains(string(b), `"code":"`+codeRateLimit+`"`) {
			t.Fatalf("request %d with every worker busy: status %d, Retry-After %q: %s", i, res.StatusCode, res.Header.Get("Retry-After"), b)
		}
	}
	if n := total(); n != int32(len(ws)) {
		t.Errorf("10 requests with every worker busy made %d requests to the %d workers, want one each", n, len(ws))
	}
	for _, w := range ws {
		if srv.router.IsDown(w.addr) {
			t.Errorf("worker %d marked down for being busy", w.id)
		}
	}

	// Past their Retry-After they are asked again.
	clock.Add(int64(6 * time.Second))
	busy[1].Store(false)
	if res, b := quote(); res.StatusCode != http.StatusPaymentRequired || res.Header.Get(HeaderWorker) != ws[1].addr.String() {
		t.Fatalf("after the Retry-After: status %d from %s: %s", res.StatusCode, res.Header.Get(HeaderWorker), b)
	}
}

// TestAttackBadStatus: a worker answers with a status line no server may
// send ("042", "000", "999"). Passed to WriteHeader it panicked the
// handler (net/http cut the caller's connection); it is a failed worker,
// 502, marked down when the gateway paid it.
func TestAttackBadStatus(t *testing.T) {
	for _, code := range []string{"042", "000", "999"} {
		sendBad := func(rw http.ResponseWriter) {
			conn, buf, err := http.NewResponseController(rw).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			buf.WriteString("HTTP/1.1 " + code + " Nope\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
			buf.Flush()
		}
		check := func(t *testing.T, status int, b []byte, down bool) {
			t.Helper()
			if status != http.StatusBadGateway || !strings.Contains(string(b), `"code":"worker_failed"`) || !strings.Contains(string(b), "status "+code) {
				t.Errorf("status %d: %.300s (want 502, worker_failed, status %s)", status, b, code)
			}
			if !down {
				t.Error("the worker is not marked down")
			}
		}
		t.Run("paid "+code, func(t *testing.T) {
			e := newTestEnv(t)
			e.ws[0].answer = sendBad
			res, b := e.post(t, `{"model":"tiny","prompt":"hi","max_tokens":4}`)
			check(t, res.StatusCode, b, e.srv.router.IsDown(e.ws[0].addr))
		})
		t.Run("anonymous "+code, func(t *testing.T) {
			_, gw, addr := hostileGateway(t, func(rw http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				sendBad(rw)
			})
			status, b := anonymousPayment(t, gw.URL, addr)
			check(t, status, b, true) // as a 5xx to a caller's own payment: not marked down
		})
		t.Run("receipt "+code, func(t *testing.T) {
			const rid = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
			srv, gw, addr := hostileGateway(t, func(rw http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodGet {
					sendBad(rw)
					return
				}
				io.Copy(io.Discard, r.Body)
				rw.Header().Set("X-Verdict-Receipt", rid)
				rw.WriteHeader(http.StatusBadRequest)
			})
			anonymousPayment(t, gw.URL, addr)
			srv.router.mu.Lock()
			clear(srv.router.down)
			srv.router.mu.Unlock()
			res, err := http.Get(gw.URL + "/v1/receipts/" + rid)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			check(t, res.StatusCode, b, true) // a receipt read marks no worker down
		})
	}
}
