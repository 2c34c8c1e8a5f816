package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestGatewayCommand(t *testing.T) {
	dir := sharedModelsDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"gateway", "--model", filepath.Join(dir, "stories260K.gguf"), "--addr", "127.0.0.1:0", "--threads", "1", "--api-keys", "sk-1,sk-2"}, &out, &errb)
	}()
	re := regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)
	var base string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			base = m[1]
			break
		}
	}
	if base == "" {
		cancel()
		t.Fatalf("gateway did not start: stdout %q stderr %q", out.String(), errb.String())
	}
	do := func(method, path, key, body string) (int, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		if method == "POST" && path == "/mcp" {
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := do("GET", "/healthz", "", ""); code != 200 {
		t.Errorf("healthz: %d %s", code, body)
	}
	if code, _ := do("POST", "/v1/completions", "", `{"model":"stories260K","prompt":"a","max_tokens":2}`); code != 401 {
		t.Errorf("no key: %d", code)
	}
	if code, body := do("POST", "/v1/completions", "sk-2", `{"model":"stories260K","prompt":"a","max_tokens":2}`); code != 200 || !strings.Contains(body, `"receipt_id"`) {
		t.Errorf("completion: %d %s", code, body)
	}
	initMCP := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	if code, _ := do("POST", "/mcp", "", initMCP); code != 401 {
		t.Errorf("mcp without key: %d", code)
	}
	if code, body := do("POST", "/mcp", "sk-1", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`); code != 200 || !strings.Contains(body, `"verdict"`) {
		t.Errorf("mcp initialize: %d %s", code, body)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit status %d: %s", code, errb.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("gateway did not stop")
	}
}

func TestGatewayCommandErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"gateway"}, "verdict: gateway: --model is required"},
		{[]string{"gateway", "--model", "/nonexistent.gguf"}, "/nonexistent.gguf"},
		{[]string{"gateway", "--model", "x", "extra"}, `unexpected argument "extra"`},
		{[]string{"mcp"}, "verdict: mcp: --model is required"},
	} {
		code, _, stderr := verdict(tc.args...)
		if code != 1 || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, stderr, tc.want)
		}
	}
}
