package mcpserver

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestAttackSessionFlood opens sessions with bare initialize requests, as
// anyone may where the gateway takes x402 payments (no API key): each
// session kept a goroutine and its state forever (2,000 in 0.7 s, never
// closed). Beyond MaxSessions the server now refuses new sessions (503)
// until one closes; idle ones close after SessionIdle.
func TestAttackSessionFlood(t *testing.T) {
	ts := httptest.NewServer(HTTPHandler(New(nil, Options{})))
	defer ts.Close()
	post := func(method, session string) (int, string) {
		t.Helper()
		body := []byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`)
		req, _ := http.NewRequest(method, ts.URL, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Mcp-Session-Id")
	}
	var first string
	refused := 0
	for i := range MaxSessions + 50 {
		code, id := post(http.MethodPost, "")
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
	if code, _ := post(http.MethodDelete, first); code != http.StatusNoContent {
		t.Fatalf("DELETE: status %d", code)
	}
	if code, _ := post(http.MethodPost, ""); code != http.StatusOK {
		t.Fatalf("initialize after a DELETE: status %d", code)
	}
}
