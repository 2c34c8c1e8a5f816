package multigw

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/ledger"
)

// anonymousRequest is the request anonymousPayment sends: a payment
// naming payTo, relayed to that worker.
func anonymousRequest(ctx context.Context, payTo ledger.Address) *http.Request {
	p := gateway.PaymentPayload{X402Version: 2}
	p.Accepted.PayTo = payTo.String()
	b, _ := json.Marshal(p)
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/completions", strings.NewReader(`{"model":"tiny","prompt":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(gateway.HeaderPaymentSignature, base64.StdEncoding.EncodeToString(b))
	return req
}

// TestWorkerInFlightWait: a worker's answers past its in-flight bound
// (MaxWorkerInFlightBytes) wait for room instead of failing at once; a
// waiter whose caller hangs up gives up at once, and one that waited
// BodyTimeout gets a 503 with Retry-After, the worker not marked down.
func TestWorkerInFlightWait(t *testing.T) {
	answer := maximalAnswer()
	// gate holds the worker's answers after their first bytes.
	newGateway := func(t *testing.T, gate chan struct{}, opts ...func(*Options)) (*Server, ledger.Address) {
		srv, _, addr := hostileGateway(t, func(rw http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			rw.Header().Set("Content-Type", "application/json")
			rw.Header().Set("Content-Length", strconv.Itoa(len(answer)))
			rw.Write(answer[:1024])
			rw.(http.Flusher).Flush()
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
			rw.Write(answer[1024:])
		}, opts...)
		srv.budget = MaxResponseBytes // one maximal answer at a time
		return srv, addr
	}

	t.Run("two maximal answers", func(t *testing.T) {
		gate := make(chan struct{})
		srv, addr := newGateway(t, gate)
		waiting := make(chan struct{}, 2)
		srv.onWait = func(ledger.Address) { waiting <- struct{}{} }
		results := make(chan *httptest.ResponseRecorder, 2)
		for range 2 {
			go func() {
				rec := httptest.NewRecorder()
				srv.ServeHTTP(rec, anonymousRequest(context.Background(), addr))
				results <- rec
			}()
		}
		select {
		case <-waiting: // the second answer waits while the first is read
		case <-time.After(30 * time.Second):
			t.Fatal("neither answer waited for room")
		}
		close(gate)
		for range 2 {
			rec := <-results
			if rec.Code != http.StatusOK || rec.Body.Len() <= len(answer) || !bytes.Contains(rec.Body.Bytes(), []byte(`"agent_id":1`)) {
				t.Errorf("status %d, %d bytes: %.300s", rec.Code, rec.Body.Len(), rec.Body.Bytes())
			}
		}
		if srv.router.IsDown(addr) {
			t.Error("the worker is marked down")
		}
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if len(srv.inFlight) != 0 {
			t.Errorf("still counted in flight: %v", srv.inFlight)
		}
	})

	// The room is held (as by another answer) for the rest of the test.
	hold := func(t *testing.T, srv *Server, addr ledger.Address) {
		r, err := srv.reserve(context.Background(), addr, srv.budget)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.release)
	}

	t.Run("caller hangs up", func(t *testing.T) {
		srv, addr := newGateway(t, make(chan struct{}))
		hold(t, srv, addr)
		ctx, cancel := context.WithCancel(context.Background())
		srv.onWait = func(ledger.Address) { cancel() }
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.ServeHTTP(httptest.NewRecorder(), anonymousRequest(ctx, addr))
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second): // BodyTimeout is a minute
			t.Fatal("a waiter whose caller hung up went on waiting")
		}
		if srv.router.IsDown(addr) {
			t.Error("the worker is marked down")
		}
	})

	t.Run("waited BodyTimeout", func(t *testing.T) {
		srv, addr := newGateway(t, make(chan struct{}), func(o *Options) { o.BodyTimeout = 200 * time.Millisecond })
		hold(t, srv, addr)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, anonymousRequest(context.Background(), addr))
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), `"code":"`+codeWorkerBusy+`"`) ||
			rec.Header().Get(HeaderAgentID) != "1" {
			t.Errorf("status %d, Retry-After %q, agent %q: %s", rec.Code, rec.Header().Get("Retry-After"), rec.Header().Get(HeaderAgentID), rec.Body)
		}
		if srv.router.IsDown(addr) {
			t.Error("the worker is marked down")
		}
	})
}
