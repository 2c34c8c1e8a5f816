package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/verdictnet/verdict/internal/inference"
)

// fakeForwarder records what the tools forward to it.
type fakeForwarder struct {
	calls []GenerateInput
	payer []Caller
}

func (f *fakeForwarder) Models(context.Context) ([]ModelOut, error) {
	return []ModelOut{{Name: "far", ModelID: strings.Repeat("ab", 32)}}, nil
}

func (f *fakeForwarder) Generate(_ context.Context, c Caller, in GenerateInput) (Forwarded, error) {
	f.calls = append(f.calls, in)
	f.payer = append(f.payer, c)
	if in.Prompt == "pay" && c.Payment == nil {
		return Forwarded{Required: json.RawMessage(`{"x402Version":2,"error":"payment_required","accepts":[]}`)}, errors.New("payment required")
	}
	out := Forwarded{Output: GenerateOutput{Text: "t:" + in.Prompt, ReceiptID: "r", AgentID: 7, Worker: "w"}}
	if c.Payment != nil {
		out.Settle = json.RawMessage(`{"success":true}`)
	}
	return out, nil
}

func (f *fakeForwarder) Receipt(_ context.Context, _ Caller, id string) ([]byte, string, error) {
	if id != "r" {
		return nil, "", inference.ErrNotFound
	}
	return []byte(`{"r":1}`), "final", nil
}

func (f *fakeForwarder) Verify(_ context.Context, _ Caller, data []byte, replay bool) (*inference.Verification, error) {
	return &inference.Verification{ID: string(data), Signature: true, Replayed: replay}, nil
}

// TestForward: with a Forwarder and no backend, the tools check their
// arguments here, forward what passes, and carry the forwarder's worker,
// x402 quote and settlement through.
func TestForward(t *testing.T) {
	f := &fakeForwarder{}
	cs := overHTTP(t, New(nil, Options{Forward: f}))
	var models ModelsOutput
	if e := call(t, cs, "list_models", map[string]any{}, &models); e != "" || len(models.Models) != 1 || models.Models[0].Name != "far" {
		t.Fatalf("list_models: %q %+v", e, models)
	}
	var g GenerateOutput
	if e := call(t, cs, "generate", map[string]any{"prompt": "hi", "temperature": 0.5}, &g); e != "" || g.Text != "t:hi" || g.AgentID != 7 || g.Worker != "w" {
		t.Fatalf("generate: %q %+v", e, g)
	}
	if len(f.calls) != 1 || *f.calls[0].Temperature != 0.5 {
		t.Fatalf("forwarded %+v", f.calls)
	}
	for _, args := range []map[string]any{{"prompt": "a", "temperature": 3}, {}, {"prompt": "a", "max_tokens": -1}, {"prompt": "a", "stop": []string{"1", "2", "3", "4", "5"}}} {
		if e := call(t, cs, "generate", args, &struct{}{}); e == "" {
			t.Errorf("generate %v: no error", args)
		}
	}
	if len(f.calls) != 1 {
		t.Fatalf("refused arguments were forwarded: %+v", f.calls[1:])
	}
	// A quote is x402's tool error; a payment comes back settled.
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "generate", Arguments: map[string]any{"prompt": "pay"}})
	if err != nil || !res.IsError || res.StructuredContent == nil {
		t.Fatalf("unpaid: %v %+v", err, res)
	}
	res, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "generate", Arguments: map[string]any{"prompt": "pay"}, Meta: mcp.Meta{MetaPayment: map[string]any{"x402Version": 2}}})
	if err != nil || res.IsError || res.Meta[MetaPaymentResponse] == nil || string(f.payer[len(f.payer)-1].Payment) != `{"x402Version":2}` {
		t.Fatalf("paid: %v %+v", err, res)
	}
	var rec ReceiptOutput
	if e := call(t, cs, "get_receipt", map[string]any{"id": "r"}, &rec); e != "" || rec.Status != "final" || rec.Receipt != `{"r":1}` {
		t.Fatalf("get_receipt: %q %+v", e, rec)
	}
	if e := call(t, cs, "get_receipt", map[string]any{"id": "x"}, &rec); !strings.Contains(e, "not found") {
		t.Fatalf("unknown receipt: %q", e)
	}
	var v inference.Verification
	if e := call(t, cs, "verify_receipt", map[string]any{"id": "r"}, &v); e != "" || v.ID != `{"r":1}` || !v.Replayed {
		t.Fatalf("verify by id: %q %+v", e, v)
	}
}
