package mcpserver

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/verdictnet/verdict/internal/chat"
	"github.com/verdictnet/verdict/internal/inference"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/sampler"
	"github.com/verdictnet/verdict/internal/testutil"
	"github.com/verdictnet/verdict/internal/worker"
)

var (
	once    sync.Once
	sharedW *worker.Local
	openErr error
)

func testWorker(t *testing.T) *worker.Local {
	t.Helper()
	path := testutil.Shared(t, "models/stories260K.gguf")
	once.Do(func() { sharedW, openErr = worker.Open(worker.Config{ModelPath: path, Threads: 1}) })
	if openErr != nil {
		t.Fatal(openErr)
	}
	return sharedW
}

func inMemory(t *testing.T, s *mcp.Server) *mcp.ClientSession {
	t.Helper()
	ctx := context.Background()
	t1, t2 := mcp.NewInMemoryTransports()
	if _, err := s.Connect(ctx, t1, nil); err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "0"}, nil).Connect(ctx, t2, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func overHTTP(t *testing.T, s *mcp.Server) *mcp.ClientSession {
	t.Helper()
	ts := httptest.NewServer(HTTPHandler(s))
	t.Cleanup(ts.Close)
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "0"}, nil).Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: ts.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// call runs a tool and decodes its structured result into out; it returns
// the tool error text, if any.
func call(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any, out any) string {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
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
		return sb.String()
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s: %s: %v", name, b, err)
	}
	return ""
}

func TestTools(t *testing.T) {
	w := testWorker(t)
	s := New(w, Options{})
	for _, tr := range []struct {
		name string
		conn func(*testing.T, *mcp.Server) *mcp.ClientSession
	}{{"in-memory", inMemory}, {"http", overHTTP}} {
		t.Run(tr.name, func(t *testing.T) {
			cs := tr.conn(t, s)
			tl, err := cs.ListTools(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tool := range tl.Tools {
				names = append(names, tool.Name)
			}
			if strings.Join(names, ",") != "generate,get_receipt,list_models,verify_receipt" {
				t.Errorf("tools %v", names)
			}

			var models ModelsOutput
			if e := call(t, cs, "list_models", map[string]any{}, &models); e != "" || len(models.Models) != 1 || models.Models[0].ModelID != w.Models()[0].ID.String() {
				t.Fatalf("list_models: %q %+v", e, models)
			}

			// The tool's greedy text equals the worker's (itself checked
			// against run.c in package worker).
			want, err := w.Generate(context.Background(), inference.Request{Model: "stories260K", Chat: mustRender(t, w.Models()[0].Template, "Once upon a time"), MaxTokens: 20, Sampler: sampler.Params{Temperature: 1}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			var g GenerateOutput
			if e := call(t, cs, "generate", map[string]any{"messages": []map[string]any{{"role": "user", "content": "Once upon a time"}}, "max_tokens": 20, "temperature": 1, "seed": 0}, &g); e != "" {
				t.Fatal(e)
			}
			if g.Text != want.Text || g.ReceiptID != want.ReceiptID || g.CompletionTokens != 20 {
				t.Errorf("generate %+v, want text %q receipt %s", g, want.Text, want.ReceiptID)
			}
			r, err := receipt.Parse([]byte(g.Receipt))
			if err != nil || r.Verify() != nil {
				t.Fatalf("receipt %q: %v", g.Receipt, err)
			}

			var got ReceiptOutput
			if e := call(t, cs, "get_receipt", map[string]any{"id": g.ReceiptID}, &got); e != "" || got.Receipt != g.Receipt || got.Status != "published" {
				t.Errorf("get_receipt: %q %+v", e, got)
			}
			var v inference.Verification
			if e := call(t, cs, "verify_receipt", map[string]any{"id": g.ReceiptID}, &v); e != "" || !v.Signature || !v.Replayed || !v.Match {
				t.Errorf("verify by id: %q %+v", e, v)
			}
			tampered := strings.Replace(g.Receipt, `"steps":`, `"steps":1`, 1)
			if e := call(t, cs, "verify_receipt", map[string]any{"receipt": tampered, "replay": false}, &v); e != "" || v.Signature || v.Problem == "" {
				t.Errorf("tampered: %q %+v", e, v)
			}

			// Tool errors are reported as tool errors, not protocol failures.
			for _, tc := range []struct {
				tool string
				args map[string]any
				want string
			}{
				{"generate", map[string]any{"prompt": "a", "model": "gpt-4"}, "not found"},
				{"generate", map[string]any{}, "either prompt or messages"},
				{"generate", map[string]any{"prompt": "a", "temperature": 3}, "temperature"},
				{"generate", map[string]any{"prompt": strings.Repeat("dog ", 300)}, "context length"},
				{"get_receipt", map[string]any{"id": strings.Repeat("0", 64)}, "not found"},
				{"verify_receipt", map[string]any{"receipt": "{}"}, "receipt"},
			} {
				if e := call(t, cs, tc.tool, tc.args, &struct{}{}); !strings.Contains(e, tc.want) {
					t.Errorf("%s %v: error %q, want %q", tc.tool, tc.args, e, tc.want)
				}
			}
		})
	}
}

func mustRender(t *testing.T, tp *chat.Template, user string) *chat.Prompt {
	t.Helper()
	p, err := tp.Render(&chat.Request{Messages: []chat.Message{{Role: chat.RoleUser, Content: user}}, AddGenerationPrompt: true})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
