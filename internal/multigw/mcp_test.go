package multigw

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/inference"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/mcpserver"
)

type bearer string

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if b != "" {
		r.Header.Set("Authorization", "Bearer "+string(b))
	}
	return http.DefaultTransport.RoundTrip(r)
}

// mcpClient connects the official go-sdk client to the gateway's /mcp,
// with API key key ("": none).
func mcpClient(t *testing.T, url, key string) (*mcp.ClientSession, error) {
	t.Helper()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "0"}, nil).Connect(context.Background(),
		&mcp.StreamableClientTransport{Endpoint: url + MCPPath, HTTPClient: &http.Client{Transport: bearer(key)}}, nil)
	if err == nil {
		t.Cleanup(func() { cs.Close() })
	}
	return cs, err
}

// callTool runs a tool; it decodes a structured result into out and
// returns the result and its error text ("" when it succeeded).
func callTool(t *testing.T, cs *mcp.ClientSession, name string, meta mcp.Meta, args map[string]any, out any) (*mcp.CallToolResult, string) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Meta: meta, Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if res.IsError {
		var sb strings.Builder
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				sb.WriteString(tc.Text)
			}
		}
		return res, sb.String()
	}
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s: %v: %s", name, err, b)
	}
	return res, ""
}

// TestMCPKeyed: an MCP client with an API key reaches the pool through the
// gateway's /mcp: generate is a routed, paid request (the payer's escrow,
// the serving worker named, failover when a worker is dead), and the
// receipt tools read and check what was served.
func TestMCPKeyed(t *testing.T) {
	e := newTestEnv(t)
	if _, err := mcpClient(t, e.gw.URL, "sk-wrong"); err == nil {
		t.Fatal("an unknown API key opened an MCP session")
	}
	cs, err := mcpClient(t, e.gw.URL, e.apiKey)
	if err != nil {
		t.Fatal(err)
	}
	var models mcpserver.ModelsOutput
	if _, msg := callTool(t, cs, "list_models", nil, nil, &models); msg != "" || len(models.Models) != 1 || models.Models[0].Name != "tiny" || models.Models[0].ModelID != e.l.model.String() {
		t.Fatalf("list_models: %s %+v", msg, models)
	}
	var out mcpserver.GenerateOutput
	if _, msg := callTool(t, cs, "generate", nil, map[string]any{"model": "tiny", "prompt": "hi", "max_tokens": 4}, &out); msg != "" {
		t.Fatal(msg)
	}
	w := e.ws[out.AgentID-1]
	if out.AgentID != 1 || out.Worker != w.addr.String() || out.Text != "from 1 <b>" || out.ModelID != e.l.model.String() || out.ReceiptID == "" {
		t.Fatalf("generate: %+v", out)
	}
	w.mu.Lock()
	want := string(w.receipts[out.ReceiptID])
	w.mu.Unlock()
	if out.Receipt != want {
		t.Fatalf("receipt %q, the worker signed %q", out.Receipt, want)
	}
	if got := e.l.chargedTo(e.payAddr); got != fullCost {
		t.Fatalf("charged %d for one generate", got)
	}
	// Messages go to the chat endpoint.
	if _, msg := callTool(t, cs, "generate", nil, map[string]any{"messages": []map[string]string{{"role": "user", "content": "hi"}}}, &out); msg != "" ||
		!strings.HasPrefix(out.Text, "chat from ") || out.FinishReason != "stop" || out.PromptTokens != 2 || out.CompletionTokens != 3 || out.SystemFingerprint != "fp_x" {
		t.Fatalf("chat generate: %s %+v", msg, out)
	}
	var rec mcpserver.ReceiptOutput
	if _, msg := callTool(t, cs, "get_receipt", nil, map[string]any{"id": out.ReceiptID}, &rec); msg != "" || rec.Status != "published" || rec.Receipt != out.Receipt {
		t.Fatalf("get_receipt: %s %+v", msg, rec)
	}
	var v inference.Verification
	if _, msg := callTool(t, cs, "verify_receipt", nil, map[string]any{"id": out.ReceiptID}, &v); msg != "" || !v.Signature || v.Replayed || v.ID != out.ReceiptID ||
		!strings.Contains(v.Problem, "not replayed") {
		t.Fatalf("verify_receipt: %s %+v", msg, v)
	}
	tampered := strings.Replace(out.Receipt, `"output":"`, `"output":"A`, 1)
	if _, msg := callTool(t, cs, "verify_receipt", nil, map[string]any{"receipt": tampered, "replay": false}, &v); msg == "" && v.Signature {
		t.Fatalf("a tampered receipt verified: %+v", v)
	}
	if _, msg := callTool(t, cs, "get_receipt", nil, map[string]any{"id": strings.Repeat("ab", 32)}, &rec); !strings.Contains(msg, "not found") {
		t.Fatalf("unknown receipt: %q", msg)
	}
	// Worker 1 dies: generate fails over.
	e.ws[0].srv.Close()
	if _, msg := callTool(t, cs, "generate", nil, map[string]any{"prompt": "hi"}, &out); msg != "" || out.AgentID == 1 || out.AgentID == 0 {
		t.Fatalf("after worker 1 died: %s %+v", msg, out)
	}
	if _, msg := callTool(t, cs, "generate", nil, map[string]any{"model": "nope", "prompt": "hi"}, &out); !strings.Contains(msg, "no worker serves the model") {
		t.Fatalf("unknown model: %q", msg)
	}
}

// TestMCPX402: an MCP client without an API key pays with x402 over MCP:
// a generate call without a payment fails with the worker's quote (x402's
// PaymentRequired in structuredContent); the same call with the payment
// in _meta["x402/payment"] is served by the worker it pays, and the
// settlement comes back in _meta["x402/payment-response"].
func TestMCPX402(t *testing.T) {
	e := newTestEnv(t)
	cs, err := mcpClient(t, e.gw.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	args := map[string]any{"model": "tiny", "prompt": "hi", "max_tokens": 4}
	res, msg := callTool(t, cs, "generate", nil, args, nil)
	if !strings.Contains(msg, `"x402/error"`) {
		t.Fatalf("unpaid generate: %q", msg)
	}
	var pr gateway.PaymentRequired
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &pr); err != nil || len(pr.Accepts) != 1 || pr.Accepts[0].PayTo != e.ws[0].addr.String() {
		t.Fatalf("structuredContent %s", b)
	}
	agent, _ := keys.Generate(t.TempDir() + "/agent.json")
	sig, _, err := e.srv.payment(context.Background(), agent, &pr.Accepts[0], -1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var payload map[string]any
	if err := decodeB64JSON(sig, &payload); err != nil {
		t.Fatal(err)
	}
	var out mcpserver.GenerateOutput
	res, msg = callTool(t, cs, "generate", mcp.Meta{mcpserver.MetaPayment: payload}, args, &out)
	if msg != "" || out.AgentID != 1 || out.Text != "from 1 <b>" {
		t.Fatalf("paid generate: %s %+v", msg, out)
	}
	var settle gateway.SettleResponse
	b, _ = json.Marshal(res.Meta[mcpserver.MetaPaymentResponse])
	if err := json.Unmarshal(b, &settle); err != nil || !settle.Success || settle.Payer == "" {
		t.Fatalf("payment response %s", b)
	}
	// A payment to an account that is no worker here is refused.
	payload["accepted"].(map[string]any)["payTo"] = strings.Repeat("ee", 32)
	if _, msg := callTool(t, cs, "generate", mcp.Meta{mcpserver.MetaPayment: payload}, args, &out); !strings.Contains(msg, "not an eligible worker") {
		t.Fatalf("payment to a stranger: %q", msg)
	}
}

// TestMCPNoAuth: a free gateway serves MCP without credentials.
func TestMCPNoAuth(t *testing.T) {
	l := newFakeLedger()
	w := l.addWorker(t, "free", 400, 1)
	w.free = true
	srv, err := New(context.Background(), Options{Ledger: l, NoAuth: true, Net: testNet, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(srv)
	t.Cleanup(gw.Close)
	cs, err := mcpClient(t, gw.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	var out mcpserver.GenerateOutput
	if _, msg := callTool(t, cs, "generate", nil, map[string]any{"prompt": "hi"}, &out); msg != "" || out.Text != "free" || out.AgentID != 1 || out.Receipt == "" {
		t.Fatalf("generate: %s %+v", msg, out)
	}
}

// TestMCPStallNoDoubleCharge: over MCP too, a worker that took the
// escrow and stalls past HeaderTimeout keeps the request: the call fails
// naming it and the escrow, and the caller pays its partial receipt only.
func TestMCPStallNoDoubleCharge(t *testing.T) {
	e := newTestEnv(t, func(o *Options) { o.HeaderTimeout, o.PendingWait = 300*time.Millisecond, 300*time.Millisecond })
	w := e.ws[0]
	w.release, w.stalled = make(chan struct{}), make(chan struct{}) // it stalls until the call has failed
	cs, err := mcpClient(t, e.gw.URL, e.apiKey)
	if err != nil {
		t.Fatal(err)
	}
	_, msg := callTool(t, cs, "generate", nil, map[string]any{"prompt": "hi"}, &struct{}{})
	close(w.release)
	if !strings.Contains(msg, "worker 1 ") || !strings.Contains(msg, ledger.EscrowID(e.payAddr, 0).String()) {
		t.Fatalf("generate: %q", msg)
	}
	<-w.stalled
	if got := e.l.chargedTo(e.payAddr); got != partialCost {
		t.Fatalf("charged %d, want the staller's partial receipt %d", got, partialCost)
	}
	if n := e.ws[1].served.Load() + e.ws[2].served.Load(); n != 0 {
		t.Fatalf("%d other workers served the call", n)
	}
}
