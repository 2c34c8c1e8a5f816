package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/verdictnet/verdict/internal/inference"
	"github.com/verdictnet/verdict/internal/mcpserver"
)

// seeCaller reports the abandoned-prefill caller of each generation.
type seeCaller struct {
	Backend
	got chan string
}

func (b seeCaller) Generate(ctx context.Context, req inference.Request, f func(inference.Delta) error) (*inference.Result, error) {
	b.got <- callerOf(ctx, req.Account)
	return b.Backend.Generate(ctx, req, f)
}

// TestPrefillCallerAddress: on a gateway without API keys, the caller a
// generation's abandoned prefill counts against is its client's address,
// over HTTP and over MCP (the address of the request that opened the
// session), never the one empty account every caller shares.
func TestPrefillCallerAddress(t *testing.T) {
	w := testWorker(t)
	sc := seeCaller{Backend: w, got: make(chan string, 4)}
	srv, err := New(Options{Backend: sc, NoAuth: true, MCP: func(g Gate) http.Handler {
		return mcpserver.HTTPHandler(mcpserver.New(w, mcpserver.Options{Gate: g}))
	}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	if resp, rb := post(t, ts.URL+"/v1/completions", `{"model":"stories260K","prompt":"Once","max_tokens":3}`); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, rb)
	}
	if c := <-sc.got; c != "address 127.0.0.1" {
		t.Errorf("HTTP: caller %q", c)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "x", Version: "0"}, nil).Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: ts.URL + "/mcp"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if _, e := toolCall(t, cs, "generate", map[string]any{"prompt": "Once", "max_tokens": 3}); e != "" {
		t.Fatal(e)
	}
	if c := <-sc.got; c != "address 127.0.0.1" {
		t.Errorf("MCP: caller %q", c)
	}
}
