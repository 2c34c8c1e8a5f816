package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/verdictnet/verdict/internal/mcpserver"
)

// headerTransport adds a header to every request.
type headerTransport struct{ name, value string }

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if h.name != "" {
		r.Header.Set(h.name, h.value)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// anonSession connects to the gateway's MCP endpoint without an API key
// (the official go-sdk client), sending header with every request.
func anonSession(t *testing.T, url string, header headerTransport) *mcp.ClientSession {
	t.Helper()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "0"}, nil).Connect(context.Background(),
		&mcp.StreamableClientTransport{Endpoint: url + "/mcp", HTTPClient: &http.Client{Transport: header}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// paymentRequired reads the x402 PaymentRequired of a tool error in both
// forms the x402 MCP transport gives it (structuredContent and the
// x402/error wrapper in content[0].text), which must agree.
func paymentRequiredOf(t *testing.T, res *mcp.CallToolResult) PaymentRequired {
	t.Helper()
	if !res.IsError || len(res.Content) == 0 {
		t.Fatalf("not a payment-required tool error: %+v", res)
	}
	var pr PaymentRequired
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &pr); err != nil {
		t.Fatalf("structuredContent %s: %v", b, err)
	}
	var w struct {
		E struct {
			Code int             `json:"code"`
			Data PaymentRequired `json:"data"`
		} `json:"x402/error"`
	}
	text := res.Content[0].(*mcp.TextContent).Text
	if err := json.Unmarshal([]byte(text), &w); err != nil || w.E.Code != 402 || w.E.Data.Error != pr.Error || len(w.E.Data.Accepts) != len(pr.Accepts) {
		t.Fatalf("content[0].text %s (%v) does not wrap %s", text, err, b)
	}
	return pr
}

// TestX402OverMCP: an MCP client without an API key (the official go-sdk
// client) gets, for generate, a tool error carrying x402's
// PaymentRequired (the x402 MCP transport); it pays in the call's
// _meta["x402/payment"] (here with upto, refunded on the ledger once the
// receipt is published) or with the PAYMENT-SIGNATURE header of the HTTP
// request, and gets the settlement in the result's
// _meta["x402/payment-response"]. A replayed or tampered payment is
// refused the same way and charges nothing; an anonymous session reads no
// receipt and replays nothing.
func TestX402OverMCP(t *testing.T) {
	e := newX402Env(t)
	w := testWorker(t)
	srv, err := New(Options{Backend: w, Auth: oneKey("k"), X402: e.x, MCP: func(g Gate) http.Handler {
		return mcpserver.HTTPHandler(mcpserver.New(w, mcpserver.Options{Gate: g}))
	}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close) // after the sessions (cleanups run last first)
	ctx := context.Background()
	payer := testKey("payer")
	cs := anonSession(t, ts.URL, headerTransport{})
	args := map[string]any{"prompt": "Once upon a time", "max_tokens": 100, "temperature": 0, "stop": []string{"."}}
	call := func(cs *mcp.ClientSession, meta mcp.Meta) *mcp.CallToolResult {
		t.Helper()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Meta: meta, Name: "generate", Arguments: args})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	payload := func(hdr string) map[string]any {
		b, _ := base64.StdEncoding.DecodeString(hdr)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}

	// Unpaid: the quote.
	q := paymentRequiredOf(t, call(cs, nil))
	if q.Error != string(ReasonPaymentRequired) || len(q.Accepts) != 2 || q.Resource.URL != MCPResource {
		t.Fatalf("quote %+v", q)
	}
	before := e.balance(t, payer)

	// Paid with upto in _meta.
	uq := scheme(q, SchemeUpto)
	hdr := e.pay(t, uq, payer, nil)
	res := call(cs, mcp.Meta{mcpserver.MetaPayment: payload(hdr)})
	if res.IsError {
		t.Fatalf("paid call: %+v", res.Content[0])
	}
	var out mcpserver.GenerateOutput
	b, _ := json.Marshal(res.StructuredContent)
	json.Unmarshal(b, &out)
	b, _ = json.Marshal(res.Meta[mcpserver.MetaPaymentResponse])
	var sr SettleResponse
	if err := json.Unmarshal(b, &sr); err != nil || !sr.Success || sr.Payer != addrOf(payer).String() || sr.Extra["receiptId"] != out.ReceiptID {
		t.Fatalf("settlement %s (%v), receipt %s", b, err, out.ReceiptID)
	}
	due := 2 * uint64(out.PromptTokens+out.CompletionTokens)
	max, _ := strconv.ParseUint(uq.Accepts[0].Amount, 10, 64)
	if sr.Amount != strconv.FormatUint(due, 10) || due >= max {
		t.Errorf("settled %s for %d+%d tokens (max %d), want %d", sr.Amount, out.PromptTokens, out.CompletionTokens, max, due)
	}
	p := <-e.submitted
	if p.ReceiptID != out.ReceiptID {
		t.Fatalf("queued %s, answered %s", p.ReceiptID, out.ReceiptID)
	}
	e.publish(t, p)
	if got := e.balance(t, payer); got != before-due-1 {
		t.Errorf("payer %d after publication, want %d (%d of %d returned)", got, before-due-1, max-due, max)
	}

	// The same payment again, and a tampered one: refused, nothing charged.
	paid := e.balance(t, payer)
	if pr := paymentRequiredOf(t, call(cs, mcp.Meta{mcpserver.MetaPayment: payload(hdr)})); pr.Error != string(ReasonReplayed) {
		t.Errorf("replayed payment: %+v", pr)
	}
	tampered := payload(e.pay(t, scheme(paymentRequiredOf(t, call(cs, nil)), SchemeExact), payer, nil))
	tampered["payload"].(map[string]any)["transaction"] = base64.StdEncoding.EncodeToString([]byte(`{"chainId":"x"}`))
	if pr := paymentRequiredOf(t, call(cs, mcp.Meta{mcpserver.MetaPayment: tampered})); pr.Error != string(ReasonInvalidPayload) {
		t.Errorf("tampered payment: %+v", pr)
	}
	if e.balance(t, payer) != paid {
		t.Error("a refused payment was charged")
	}
	select {
	case p := <-e.submitted:
		t.Errorf("a refused payment queued %s", p.ReceiptID)
	default:
	}

	// Paid with exact, in the HTTP header of the MCP request.
	q = paymentRequiredOf(t, call(cs, nil))
	hcs := anonSession(t, ts.URL, headerTransport{mcpserver.HeaderPayment, e.pay(t, scheme(q, SchemeExact), payer, nil)})
	res = call(hcs, nil)
	if res.IsError || res.Meta[mcpserver.MetaPaymentResponse] == nil {
		t.Fatalf("paid by header: %+v", res)
	}
	p = <-e.submitted
	e.publish(t, p)
	if got := e.balance(t, payer); got != paid-max-1 {
		t.Errorf("payer %d after an exact payment, want %d", got, paid-max-1)
	}

	// An anonymous session reads no receipt and replays nothing; the
	// signature check is free.
	for _, tc := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{"get_receipt", map[string]any{"id": out.ReceiptID}, "not found"},
		{"verify_receipt", map[string]any{"id": out.ReceiptID}, "not found"},
		{"verify_receipt", map[string]any{"receipt": string(p.Receipt)}, "use an API key"},
	} {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tc.tool, Arguments: tc.args})
		if err != nil || !res.IsError || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, tc.want) {
			t.Errorf("%s %v: %+v %v, want an error with %q", tc.tool, tc.args, res, err, tc.want)
		}
	}
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "verify_receipt", Arguments: map[string]any{"receipt": string(p.Receipt), "replay": false}}); err != nil || res.IsError {
		t.Errorf("signature check: %+v %v", res, err)
	}
}
