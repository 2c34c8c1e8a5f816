package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// bearer adds an API key to every request.
type bearer struct {
	key string
	rt  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return b.rt.RoundTrip(r)
}

// TestDevnetE2E runs `verdict devnet --model stories260K` on free ports
// and drives it as users would: the official openai npm client (e2e/
// devnet.mjs) sends a chat completion, a streamed and a seeded sampled one
// and waits for each receipt to be final on the ledger; `verdict verify`
// replays every one of them; the go-sdk MCP client calls the generate tool
// over HTTP and its receipt becomes final too. Ctrl-C (context
// cancellation) stops everything and frees the ports. Without node or
// e2e/node_modules the npm part is skipped, except in CI (CI=true).
func TestDevnetE2E(t *testing.T) {
	dir := sharedModelsDir(t)
	stories := filepath.Join(dir, "stories260K.gguf")
	data := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outR, outW := io.Pipe()
	var errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"devnet", "--data", data, "--model", stories, "--addr", "127.0.0.1:0", "--block-interval", "200ms", "--threads", "1"}, outW, &errb)
		outW.Close()
	}()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var base, apiKey, rpc, mcpURL, explorerURL string
	timeout := time.After(90 * time.Second)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("devnet exited before ready: %s", errb.String())
			}
			t.Log(l)
			f := strings.Fields(l)
			switch {
			case strings.HasPrefix(l, "  OpenAI API:"):
				base = f[2]
			case strings.HasPrefix(l, "  MCP:"):
				mcpURL = f[1]
			case strings.HasPrefix(l, "  ledger RPC:"):
				rpc = f[2]
			case strings.HasPrefix(l, "  explorer:"):
				explorerURL = f[1]
			case strings.HasPrefix(l, "  API key:"):
				apiKey = f[2]
			case strings.HasPrefix(l, "verdict devnet ready"):
				break wait
			}
		case <-timeout:
			t.Fatalf("devnet not ready in 90 s: %s", errb.String())
		}
	}
	go func() {
		for range lines {
		}
	}()
	if base == "" || apiKey == "" || rpc == "" || mcpURL == "" || explorerURL == "" {
		t.Fatalf("missing URLs: base %q key %q rpc %q mcp %q explorer %q", base, apiKey, rpc, mcpURL, explorerURL)
	}
	// The explorer printed beside the API answers without a key.
	if resp, err := http.Get(explorerURL); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), "<h1>Overview</h1>") {
			t.Fatalf("explorer %s: %d\n%.300s", explorerURL, resp.StatusCode, b)
		}
	}
	origin := strings.TrimSuffix(base, "/v1")
	var ids []string

	// The official openai npm client.
	root := filepath.Join("..", "..")
	e2e := filepath.Join(root, "e2e")
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(e2e, "node_modules", "openai", "package.json"))
	}
	switch {
	case err != nil && os.Getenv("CI") == "true":
		t.Fatalf("the npm part cannot run in CI: %v (run `npm ci` in e2e/)", err)
	case err != nil:
		t.Logf("skipping the openai npm client: %v (run `npm ci` in e2e/)", err)
	default:
		outFile := filepath.Join(t.TempDir(), "receipts.txt")
		nctx, ncancel := context.WithTimeout(ctx, 6*time.Minute)
		cmd := exec.CommandContext(nctx, node, "--test", "devnet.mjs")
		cmd.Dir = e2e
		cmd.Env = append(os.Environ(), "VERDICT_BASE_URL="+base, "VERDICT_API_KEY="+apiKey, "VERDICT_MODEL=stories260K", "VERDICT_RECEIPTS_OUT="+outFile)
		out, err := cmd.CombinedOutput()
		ncancel()
		if err != nil {
			t.Fatalf("node devnet.mjs: %v\n%s\ndevnet log:\n%s", err, out, errb.String())
		}
		b, _ := os.ReadFile(outFile)
		ids = strings.Fields(string(b))
		if len(ids) != 3 {
			t.Fatalf("node reported %d final receipts, want 3:\n%s", len(ids), out)
		}
	}

	// The go-sdk MCP client over streamable HTTP, with the API key.
	hc := &http.Client{Transport: bearer{apiKey, http.DefaultTransport}}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "devnet-test", Version: "0"}, nil).Connect(ctx, &mcp.StreamableClientTransport{Endpoint: mcpURL, HTTPClient: hc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "generate", Arguments: map[string]any{"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0.7, "seed": 11}})
	if err != nil || res.IsError {
		t.Fatalf("generate: %v %+v", err, res)
	}
	b, _ := json.Marshal(res.StructuredContent)
	var gen struct {
		ReceiptID string `json:"receipt_id"`
	}
	json.Unmarshal(b, &gen)
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(gen.ReceiptID) {
		t.Fatalf("MCP generate returned no receipt id: %s", b)
	}
	// verify_receipt replays it, paid with a ledger send from the
	// caller's account to the worker (committed before the answer).
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "verify_receipt", Arguments: map[string]any{"id": gen.ReceiptID}})
	if err != nil {
		t.Fatalf("verify_receipt: %v", err)
	}
	if b, _ = json.Marshal(res.StructuredContent); res.IsError || !strings.Contains(string(b), `"match":true`) {
		t.Fatalf("verify_receipt: %+v %s", res, b)
	}
	cs.Close()
	status := func(id string) (string, []byte) {
		req, _ := http.NewRequest("GET", origin+"/v1/receipts/"+id, nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r struct {
			Status  string          `json:"status"`
			Receipt json.RawMessage `json:"receipt"`
		}
		body, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("receipt %s: %s", id, body)
		}
		return r.Status, r.Receipt
	}
	deadline := time.Now().Add(90 * time.Second)
	for st, _ := status(gen.ReceiptID); st != "final"; st, _ = status(gen.ReceiptID) {
		if time.Now().After(deadline) {
			t.Fatalf("MCP receipt %s is %q after 90 s", gen.ReceiptID, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ids = append(ids, gen.ReceiptID)

	// `verdict verify` replays every receipt.
	for _, id := range ids {
		_, rb := status(id)
		f := filepath.Join(t.TempDir(), id+".json")
		if err := os.WriteFile(f, rb, 0o644); err != nil {
			t.Fatal(err)
		}
		var vout, verr syncBuffer
		if code := run(ctx, []string{"verify", f, "--model", stories, "--threads", "1"}, &vout, &verr); code != 0 || !strings.HasPrefix(vout.String(), "ok: receipt "+id) {
			t.Fatalf("verify %s: exit %d: %s %s", id, code, vout.String(), verr.String())
		}
	}

	// Ctrl-C: everything stops and the ports are free.
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("devnet exit %d: %s", code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("devnet did not stop in 30 s")
	}
	for _, a := range []string{origin, strings.Replace(rpc, "tcp://", "http://", 1)} {
		u, _ := url.Parse(a)
		c, err := net.DialTimeout("tcp", u.Host, time.Second)
		if err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after stop", a)
		}
	}
}
