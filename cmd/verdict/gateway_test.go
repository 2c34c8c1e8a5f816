package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/multigw"
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
	keysFile := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(keysFile, []byte("# API keys\nsk-1 alice\nsk-2   # bob's\n"), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"gateway", "--model", filepath.Join(dir, "stories260K.gguf"), "--addr", "127.0.0.1:0", "--threads", "1", "--api-keys-file", keysFile, "--metrics", "127.0.0.1:0"}, &out, &errb)
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
		if method == "POST" {
			req.Header.Set("Content-Type", "application/json")
		}
		if method == "POST" && path == "/mcp" {
			req.Header.Set("Accept", "application/json, text/event-stream")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	mre := regexp.MustCompile(`metrics: (http://127\.0\.0\.1:\d+/metrics)`)
	if m := mre.FindStringSubmatch(out.String()); m == nil {
		t.Errorf("no metrics address in %q", out.String())
	} else if resp, err := http.Get(m[1]); err != nil || resp.StatusCode != 200 {
		t.Errorf("metrics: %v", err)
	}
	if code, _ := do("GET", "/metrics", "", ""); code != 404 {
		t.Errorf("/metrics on the API address: %d", code)
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
		{[]string{"gateway", "--model", "/nonexistent.gguf", "--no-auth"}, "/nonexistent.gguf"},
		{[]string{"gateway", "--model", "x", "extra"}, `unexpected argument "extra"`},
		{[]string{"mcp"}, "verdict: mcp: --model is required"},
		{[]string{"gateway", "--model", "x"}, "no API keys: give --api-keys-file FILE or $VERDICT_API_KEYS, or --no-auth"},
		{[]string{"gateway", "--model", "x", "--api-keys", "a", "--no-auth"}, "--no-auth with API keys"},
		{[]string{"gateway", "--model", "x", "--api-keys", "a,a"}, `API key "a" given twice`},
		{[]string{"gateway", "--model", "x", "--api-keys-file", "/nonexistent"}, "--api-keys-file"},
		{[]string{"gateway", "--node", "tcp://127.0.0.1:1", "--model", "x", "--no-auth"}, "--node serves the ledger's workers"},
		{[]string{"gateway", "--model", "x", "--accounts", "a.json"}, "--accounts needs --node"},
		{[]string{"gateway", "--node", "tcp://127.0.0.1:1"}, "give --accounts FILE"},
		{[]string{"gateway", "--node", "tcp://127.0.0.1:1", "--accounts", "/nonexistent.json"}, "--accounts: open /nonexistent.json"},
		{[]string{"gateway", "--node", "tcp://127.0.0.1:1", "--no-auth"}, "gateway: ledger tcp://127.0.0.1:1: "},
		{[]string{"gateway", "--node", "tcp://127.0.0.1:1", "--no-auth", "--allow-worker-net", "10.1.0.0/99"}, "--allow-worker-net: netip.ParsePrefix(\"10.1.0.0/99\")"},
		{[]string{"gateway", "--model", "x", "--no-auth", "--allow-private-workers"}, "--allow-private-workers and --allow-worker-net need --node"},
		{[]string{"gateway", "--model", "x", "--no-auth", "--chain-id", "verdict-dev"}, "--max-tx-fee and --chain-id need --node"},
		{[]string{"gateway", "--model", "x", "--no-auth", "--max-tx-fee", "5"}, "--max-tx-fee and --chain-id need --node"},
		{[]string{"gateway", "--node", "tcp://127.0.0.1:1", "--no-auth", "--max-tx-fee", "0"}, "gateway: --max-tx-fee must be positive"},
		{[]string{"gateway", "--node", "tcp://127.0.0.1:1", "--no-auth", "--body-timeout", "0s"}, "--body-timeout: want a positive duration, got 0s"},
		{[]string{"gateway", "--node", "tcp://127.0.0.1:1", "--no-auth", "--body-timeout", "-1m"}, "gateway: --body-timeout: want a positive duration, got -1m0s"},
		{[]string{"gateway", "--node", "tcp://127.0.0.1:1", "--no-auth", "--header-timeout", "0"}, "gateway: --header-timeout: want a positive duration, got 0s"},
		{[]string{"gateway", "--node", "tcp://127.0.0.1:1", "--no-auth", "--header-timeout", "-5s"}, "gateway: --header-timeout: want a positive duration, got -5s"},
		{[]string{"gateway", "--node", "tcp://127.0.0.1:1", "--no-auth", "--refresh", "0s"}, "gateway: --refresh: want a positive duration, got 0s"},
		{[]string{"gateway", "--node", "tcp://127.0.0.1:1", "--no-auth", "--refresh", "-2s"}, "gateway: --refresh: want a positive duration, got -2s"},
		{[]string{"gateway", "--node", "tcp://127.0.0.1:1", "--no-auth", "--down-for", "0s"}, "gateway: --down-for: want a positive duration, got 0s"},
		{[]string{"gateway", "--node", "tcp://127.0.0.1:1", "--no-auth", "--down-for", "-1s"}, "gateway: --down-for: want a positive duration, got -1s"},
		// A local model's flags are refused with --node, not dropped.
		{[]string{"gateway", "--node", "tcp://127.0.0.1:1", "--no-auth", "--metrics", "127.0.0.1:0", "--concurrency", "4"}, "--node serves the ledger's workers: --concurrency, --metrics belong to a gateway with a local model"},
		{[]string{"gateway", "--node", "tcp://127.0.0.1:1", "--no-auth", "--public-receipts"}, "--public-receipts belong to a gateway with a local model"},
		{[]string{"gateway", "--node", "tcp://127.0.0.1:1", "--no-auth", "--abandoned-prefill", "100"}, "--abandoned-prefill belong to a gateway with a local model"},
	} {
		code, _, stderr := verdict(tc.args...)
		if code != 1 || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, stderr, tc.want)
		}
	}
}

// TestGatewayNodeTimeouts: --header-timeout and --body-timeout reach the
// multigw options, with their defaults when not given.
func TestGatewayNodeTimeouts(t *testing.T) {
	defer func(f func(context.Context, multiGateway, io.Writer) error) { runMultiGateway = f }(runMultiGateway)
	var got multigw.Options
	runMultiGateway = func(_ context.Context, g multiGateway, _ io.Writer) error {
		got = g.options(nil)
		return nil
	}
	for _, tc := range []struct {
		args         []string
		header, body time.Duration
	}{
		{nil, 5 * time.Minute, time.Minute},
		{[]string{"--header-timeout", "90s", "--body-timeout", "2m30s"}, 90 * time.Second, 150 * time.Second},
	} {
		args := append([]string{"gateway", "--node", "tcp://127.0.0.1:1", "--no-auth"}, tc.args...)
		if code, _, stderr := verdict(args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		if got.HeaderTimeout != tc.header || got.BodyTimeout != tc.body {
			t.Errorf("%v: HeaderTimeout %v, BodyTimeout %v; want %v and %v", tc.args, got.HeaderTimeout, got.BodyTimeout, tc.header, tc.body)
		}
	}
}

func TestLoadAPIKeys(t *testing.T) {
	f := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(f, []byte("sk-file carol\n\n  # comment\nsk-file2\n"), 0o600)
	k, err := loadAPIKeys("sk-flag", f, "sk-env1, sk-env2")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"sk-flag": "key1", "sk-env1": "key2", "sk-env2": "key3", "sk-file": "carol", "sk-file2": "key5"}
	if len(k) != len(want) {
		t.Fatalf("keys %v", k)
	}
	for key, acct := range want {
		if k[key] != acct {
			t.Errorf("%s: %q, want %q", key, k[key], acct)
		}
	}
	os.WriteFile(f, []byte("a b c\n"), 0o600)
	if _, err := loadAPIKeys("", f, ""); err == nil || !strings.Contains(err.Error(), ":1: want KEY or KEY ACCOUNT") {
		t.Errorf("bad line: %v", err)
	}
}

// FuzzAPIKeysFile: any keys file is read or refused with one line, and
// every key read is non-empty and has no spaces.
func FuzzAPIKeysFile(f *testing.F) {
	for _, s := range []string{"sk-1\n", "sk-1 alice\nsk-2 bob # c\n", "# only\n\n", "a b c\n", "sk-1\nsk-1\n", "\t k \t acct\r\n", "\x00\xff"} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, s string) {
		path := filepath.Join(dir, "keys")
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := loadAPIKeys("", path, "")
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error of several lines: %q", err)
			}
			return
		}
		for key, acct := range k {
			if key == "" || strings.ContainsAny(key, " \t\n#") || acct == "" {
				t.Errorf("key %q account %q from %q", key, acct, s)
			}
		}
	})
}
