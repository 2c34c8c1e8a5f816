package mcpserver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/auth"
)

// sessionServer serves HTTPHandler behind bearer tokens as the gateway
// does (the token "acct-X" is account acct-X's), and without a token as
// an anonymous caller.
func sessionServer(t *testing.T) *httptest.Server {
	h := HTTPHandler(New(nil, Options{}))
	keyed := auth.RequireBearerToken(func(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		return &auth.TokenInfo{UserID: token}, nil
	}, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(h)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			h.ServeHTTP(w, r)
			return
		}
		keyed.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts
}

// openSession sends an MCP initialize (a POST without a session id opens
// a session) or, with method DELETE, closes session; token "" sends none.
func openSession(t *testing.T, ts *httptest.Server, method, token, session string) (int, string) {
	t.Helper()
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`)
	req, _ := http.NewRequest(method, ts.URL, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests {
		if resp.Header.Get("Retry-After") == "" {
			t.Errorf("status %d without Retry-After", resp.StatusCode)
		}
	}
	return resp.StatusCode, resp.Header.Get("Mcp-Session-Id")
}

// TestAttackSessionFlood opens sessions with bare initialize requests, as
// anyone may where the gateway takes x402 payments (no API key): each
// session kept a goroutine and its state forever (2,000 in 0.7 s, never
// closed). Beyond MaxSessions the server now refuses new sessions (503)
// until one closes; idle ones close after SessionIdle. The flood comes
// from many accounts, each within MaxSessionsPerCaller.
func TestAttackSessionFlood(t *testing.T) {
	ts := sessionServer(t)
	var first string
	refused := 0
	for i := range MaxSessions + 50 {
		code, id := openSession(t, ts, http.MethodPost, fmt.Sprintf("acct-%d", i/MaxSessionsPerCaller), "")
		switch {
		case code == http.StatusServiceUnavailable:
			refused++
		case code != http.StatusOK:
			t.Fatalf("initialize %d: status %d", i, code)
		case i == 0:
			first = id
		}
	}
	if refused != 50 {
		t.Fatalf("%d sessions refused of %d, want 50 (at most %d open)", refused, MaxSessions+50, MaxSessions)
	}
	// Closing one makes room for another.
	if code, _ := openSession(t, ts, http.MethodDelete, "acct-0", first); code != http.StatusNoContent {
		t.Fatalf("DELETE: status %d", code)
	}
	if code, _ := openSession(t, ts, http.MethodPost, "acct-0", ""); code != http.StatusOK {
		t.Fatalf("initialize after a DELETE: status %d", code)
	}
}

// TestAttackSessionHog opens sessions from one API key (and from one
// address without a key) until refused: one key holder took all
// MaxSessions, and nobody else could open a session. Each caller now has
// MaxSessionsPerCaller (429 beyond), and others are not held up.
func TestAttackSessionHog(t *testing.T) {
	ts := sessionServer(t)
	for _, hog := range []string{"acct-hog", ""} {
		var first string
		for i := range MaxSessionsPerCaller {
			code, id := openSession(t, ts, http.MethodPost, hog, "")
			if code != http.StatusOK {
				t.Fatalf("%q: initialize %d: status %d", hog, i, code)
			}
			if i == 0 {
				first = id
			}
		}
		if code, _ := openSession(t, ts, http.MethodPost, hog, ""); code != http.StatusTooManyRequests {
			t.Fatalf("%q: session %d: status %d, want 429", hog, MaxSessionsPerCaller+1, code)
		}
		if code, _ := openSession(t, ts, http.MethodPost, "acct-other"+hog, ""); code != http.StatusOK {
			t.Fatalf("another account after %q's sessions: status %d", hog, code)
		}
		if code, _ := openSession(t, ts, http.MethodDelete, hog, first); code != http.StatusNoContent {
			t.Fatalf("%q: DELETE: status %d", hog, code)
		}
		if code, _ := openSession(t, ts, http.MethodPost, hog, ""); code != http.StatusOK {
			t.Fatalf("%q: initialize after a DELETE: status %d", hog, code)
		}
	}
}
