package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/chat"
	"github.com/verdictnet/verdict/internal/inference"
)

// argsBackend is a Backend that records the request it is given.
type argsBackend struct {
	models []inference.ModelInfo
	got    *inference.Request
}

func (b *argsBackend) Models() []inference.ModelInfo { return b.models }
func (b *argsBackend) Generate(_ context.Context, req inference.Request, _ func(inference.Delta) error) (*inference.Result, error) {
	b.got = &req
	return &inference.Result{Text: "ok", FinishReason: "stop"}, nil
}
func (b *argsBackend) Receipt(context.Context, string) ([]byte, error) {
	return nil, errors.New("no receipt")
}
func (b *argsBackend) Verify(_ context.Context, data []byte, _ bool) (*inference.Verification, error) {
	return &inference.Verification{}, nil
}

func newArgsBackend(tb testing.TB) *argsBackend {
	var ms []inference.ModelInfo
	for _, name := range []string{chat.Llama2Name, chat.PlainName} {
		tp, err := chat.Builtin(name, "<s>", "</s>")
		if err != nil {
			tb.Fatal(err)
		}
		ms = append(ms, inference.ModelInfo{Name: "m-" + name, Template: tp})
	}
	return &argsBackend{models: ms}
}

// TestGenerateTooSmall: a temperature or top_p too small for float32 is
// refused, not run greedy or without a top-p cut.
func TestGenerateTooSmall(t *testing.T) {
	b := newArgsBackend(t)
	tl := &tools{b: b}
	for _, args := range []string{`{"prompt":"x","temperature":1e-50}`, `{"prompt":"x","top_p":1e-50}`} {
		var in GenerateInput
		if err := json.Unmarshal([]byte(args), &in); err != nil {
			t.Fatal(err)
		}
		b.got = nil
		if _, _, err := tl.generate(context.Background(), nil, in); err == nil || !strings.Contains(err.Error(), "too small") || b.got != nil {
			t.Errorf("%s: err %v, ran %v", args, err, b.got != nil)
		}
	}
}

// FuzzGenerateArgs: no arguments of the generate tool make it panic; a
// refusal is one line, and what it runs is within the tool's limits with
// the sampling the arguments ask for.
func FuzzGenerateArgs(f *testing.F) {
	for _, s := range []string{
		`{"prompt":"hi"}`,
		`{"model":"m-llama2","messages":[{"role":"system","content":"s"},{"role":"user","content":"u"},{"role":"assistant","content":"a"}],"max_tokens":3,"temperature":0.5,"top_p":0.9,"seed":-1,"stop":["x","y"]}`,
		`{"messages":[{"role":"tool","content":"x"}]}`,
		`{"messages":[{"role":"user","content":"u"},{"role":"user","content":"v"}]}`,
		`{"prompt":"x","temperature":1e-50}`, `{"prompt":"x","top_p":4e-46}`, `{"prompt":"x","top_p":0.99999999999}`,
		`{"prompt":"x","stop":[""]}`, `{"prompt":"x","model":"nope"}`, `{"prompt":"x","messages":[]}`, `{}`, `{"max_tokens":-1}`,
	} {
		f.Add([]byte(s))
	}
	b := newArgsBackend(f)
	tl := &tools{b: b}
	f.Fuzz(func(t *testing.T, args []byte) {
		var in GenerateInput
		if json.Unmarshal(args, &in) != nil {
			return
		}
		b.got = nil
		_, out, err := tl.generate(context.Background(), nil, in)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			if b.got != nil {
				t.Fatalf("refused (%v) after running", err)
			}
			return
		}
		r := b.got
		if r == nil || out.Text != "ok" {
			t.Fatal("accepted without running")
		}
		if r.MaxTokens < 0 || len(r.Stop) > MaxStops || r.Sampler.Validate() != nil || (r.Chat == nil) == (r.Segments == nil) {
			t.Fatalf("ran out-of-range request %+v", r)
		}
		if in.Temperature != nil && *in.Temperature > 0 && r.Sampler.Temperature == 0 {
			t.Fatalf("temperature %v ran greedy", *in.Temperature)
		}
		if in.TopP != nil && *in.TopP < 1 && r.Sampler.TopP == 0 {
			t.Fatalf("top_p %v ran without a cut", *in.TopP)
		}
	})
}
