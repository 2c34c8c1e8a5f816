package multigw

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/testutil"
)

// TestAttackStalledCaller: a streaming caller that keeps its connection
// open and reads nothing blocked the relay's write for good, and with it
// the worker's connection (a goroutine, its buffers and a worker's
// stream each, for as long as the caller liked). Each write to the
// caller now has gateway.StreamWriteTimeout.
func TestAttackStalledCaller(t *testing.T) {
	defer func(d time.Duration) { gateway.StreamWriteTimeout = d }(gateway.StreamWriteTimeout)
	gateway.StreamWriteTimeout = 200 * time.Millisecond
	e := newTestEnv(t)
	req := httptest.NewRequest(http.MethodPost, "/v1/completions", strings.NewReader(`{"model":"tiny","prompt":"hi","stream":true}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e.apiKey)
	w := testutil.NewStallWriter(0)
	done := make(chan struct{})
	go func() { defer close(done); e.srv.ServeHTTP(w, req) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the relay to a caller that reads nothing never ended")
	}
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
}

// TestAttackStalledReader: a non-streamed answer, or a receipt from the
// receipts route, holds its share of the worker's in-flight budget
// (MaxWorkerInFlightBytes) until written to the caller, and was written
// with no deadline. A caller that sent a request over a real connection
// and read nothing (a small receive buffer, never read: a zero TCP
// window) held that share for as long as it liked, so that another
// caller's answer from the same worker waited out BodyTimeout and got a
// 503. Each piece written to the caller now has gateway.StreamWriteTimeout
// (CallerPieceBytes); the stalled answer is cut, its room given back, and
// the other caller is served.
func TestAttackStalledReader(t *testing.T) {
	defer func(d time.Duration) { gateway.StreamWriteTimeout = d }(gateway.StreamWriteTimeout)
	gateway.StreamWriteTimeout = 300 * time.Millisecond
	rid := strings.Repeat("ab", 32)
	// Each answer is several MiB, more than the gateway's socket can
	// buffer (net.ipv4.tcp_wmem's 4 MiB at most) and the caller's.
	maxReceipt := []byte(`{"status":"served","receipt":"` + strings.Repeat("a", MaxReceiptAnswerBytes-64) + `"}`)
	for _, tc := range []struct {
		name, raw, path string
		answer          []byte
	}{
		{"answer", "", "/v1/completions", maximalAnswer()},
		{"receipt", "GET /v1/receipts/" + rid + " HTTP/1.1\r\nHost: gw\r\n\r\n", "/v1/receipts/" + rid, maxReceipt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs logBuf
			srv, gw, addr := hostileGateway(t, func(rw http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				rw.Header().Set("Content-Type", "application/json")
				rw.Header().Set("Content-Length", strconv.Itoa(len(tc.answer)))
				rw.Write(tc.answer)
			}, func(o *Options) {
				o.BodyTimeout = 10 * time.Second
				o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			})
			srv.budget = int64(len(tc.answer)) // one answer at a time
			newRequest := func() *http.Request {
				if tc.raw != "" {
					req, _ := http.NewRequest(http.MethodGet, gw.URL+tc.path, nil)
					return req
				}
				req := anonymousRequest(context.Background(), addr)
				req.RequestURI, req.URL.Scheme, req.URL.Host = "", "http", gw.Listener.Addr().String()
				return req
			}
			if tc.raw != "" {
				ws := srv.Workers()
				if len(ws) != 1 {
					t.Fatalf("%d workers", len(ws))
				}
				srv.remember(rid, ws[0])
			}

			// The attacker: a request, then nothing read.
			c, err := net.Dial("tcp", gw.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.(*net.TCPConn).SetReadBuffer(4096); err != nil {
				t.Fatal(err)
			}
			raw := tc.raw
			if raw == "" {
				var b bytes.Buffer
				if err := newRequest().Write(&b); err != nil {
					t.Fatal(err)
				}
				raw = b.String()
			}
			if _, err := io.WriteString(c, raw); err != nil {
				t.Fatal(err)
			}
			// Its answer is read and holds the worker's whole budget.
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				srv.mu.Lock()
				held := srv.inFlight[addr] != nil
				srv.mu.Unlock()
				if held {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the stalled caller's answer was never read")
				}
			}

			// Another caller's answer from the same worker is served.
			res, err := http.DefaultClient.Do(newRequest())
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil || res.StatusCode != http.StatusOK || len(body) < len(tc.answer) {
				t.Fatalf("the other caller: status %d, %d bytes, %v: %.300s", res.StatusCode, len(body), err, body)
			}

			// The stalled answer was cut: the other was not served
			// while the kernel still took the first in.
			for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logs.String(), "caller did not take the "); time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the stalled caller's answer was never cut: %s", logs.String())
				}
			}
		})
	}
}
