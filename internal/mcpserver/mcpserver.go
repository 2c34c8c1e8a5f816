package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/verdictnet/verdict/internal/chat"
	"github.com/verdictnet/verdict/internal/sampler"
	"github.com/verdictnet/verdict/internal/worker"
)

// Backend is what the tools call: a local worker in phase 1.
type Backend interface {
	Models() []worker.ModelInfo
	Generate(ctx context.Context, req worker.Request, onDelta func(worker.Delta) error) (*worker.Result, error)
	Receipt(ctx context.Context, id string) ([]byte, error)
	Verify(ctx context.Context, data []byte, replay bool) (*worker.Verification, error)
}

// Gate bills generations and replays and guards receipts for the account
// of the caller (the gateway implements it): generations are reserved,
// charged and sent to the ledger like those of the HTTP API, a replay
// (verify_receipt) is billed like a generation of the receipt's size, and
// a receipt is readable only by the account that paid for it.
type Gate interface {
	Generate(ctx context.Context, account string, req worker.Request, onDelta func(worker.Delta) error) (*worker.Result, error)
	ReadReceipt(ctx context.Context, account, id string) ([]byte, error)
	Status(ctx context.Context, id string) (string, error)
	Verify(ctx context.Context, account string, data []byte, replay bool) (*worker.Verification, error)
}

// Options configure the server.
type Options struct {
	// Version is reported to clients (default "dev").
	Version string
	// Status gives a receipt's ledger status; nil: "published". Unused
	// with a Gate.
	Status func(ctx context.Context, id string) (string, error)
	// Gate, if set, runs every generation and receipt read for the
	// caller's account: the UserID of the request's token info (set by
	// the gateway's authentication). Without a Gate (stdio) the tools
	// call the backend directly.
	Gate Gate
}

// Message is a chat message of the generate tool.
type Message struct {
	Role    string `json:"role" jsonschema:"system, user or assistant"`
	Content string `json:"content"`
}

// GenerateInput are the generate tool's arguments.
type GenerateInput struct {
	Model       string    `json:"model,omitempty" jsonschema:"model name or id; default: the first served model"`
	Prompt      string    `json:"prompt,omitempty" jsonschema:"raw prompt text (give this or messages)"`
	Messages    []Message `json:"messages,omitempty" jsonschema:"chat messages, rendered with the model's chat template"`
	MaxTokens   int       `json:"max_tokens,omitempty" jsonschema:"most tokens to generate; 0: up to the context length"`
	Temperature *float64  `json:"temperature,omitempty" jsonschema:"0 to 2; default 1; 0 is greedy"`
	TopP        *float64  `json:"top_p,omitempty" jsonschema:"nucleus mass in (0, 1]; default 1"`
	Seed        *int64    `json:"seed,omitempty" jsonschema:"sampling seed; default 0"`
	Stop        []string  `json:"stop,omitempty" jsonschema:"up to 4 stop strings"`
}

// GenerateOutput is the generate tool's result.
type GenerateOutput struct {
	Text              string `json:"text"`
	FinishReason      string `json:"finish_reason"`
	Model             string `json:"model"`
	ModelID           string `json:"model_id"`
	SystemFingerprint string `json:"system_fingerprint"`
	PromptTokens      int    `json:"prompt_tokens"`
	CompletionTokens  int    `json:"completion_tokens"`
	ReceiptID         string `json:"receipt_id"`
	Receipt           string `json:"receipt" jsonschema:"the signed receipt, canonical JSON text"`
}

// ReceiptInput names a receipt.
type ReceiptInput struct {
	ID string `json:"id" jsonschema:"receipt id, 64 hex digits"`
}

// ReceiptOutput is a stored receipt.
type ReceiptOutput struct {
	ID      string `json:"id"`
	Status  string `json:"status" jsonschema:"ledger status: published, audited, challenged, final or slashed"`
	Receipt string `json:"receipt" jsonschema:"the signed receipt, canonical JSON text"`
}

// VerifyInput are the verify_receipt tool's arguments.
type VerifyInput struct {
	ID      string `json:"id,omitempty" jsonschema:"receipt id of a receipt stored here"`
	Receipt string `json:"receipt,omitempty" jsonschema:"a receipt's JSON text (instead of id); any spelling, its canonical form is what is signed"`
	Replay  *bool  `json:"replay,omitempty" jsonschema:"re-run the generation when the model is served here; default true"`
}

// ModelsOutput lists the served models.
type ModelsOutput struct {
	Models []ModelOut `json:"models"`
}

// ModelOut describes a model.
type ModelOut struct {
	Name              string `json:"name"`
	ModelID           string `json:"model_id"`
	Spec              string `json:"spec"`
	SystemFingerprint string `json:"system_fingerprint"`
	ContextLength     int    `json:"context_length"`
	ChatTemplate      string `json:"chat_template"`
}

type empty struct{}

// New returns an MCP server with Verdict's tools.
func New(b Backend, o Options) *mcp.Server {
	if o.Version == "" {
		o.Version = "dev"
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "verdict", Title: "Verdict verifiable inference", Version: o.Version}, nil)
	t := &tools{b: b, o: o}
	mcp.AddTool(s, &mcp.Tool{Name: "generate", Description: "Run verifiable LLM inference: returns the generated text and a signed receipt that anyone can check by replaying it on the deterministic engine."}, t.generate)
	mcp.AddTool(s, &mcp.Tool{Name: "get_receipt", Description: "Fetch a signed inference receipt by id, with its ledger status."}, t.getReceipt)
	mcp.AddTool(s, &mcp.Tool{Name: "verify_receipt", Description: "Verify an inference receipt: its signature and, when the model is served here, a full replay of the generation (billed like a generation of the receipt's prompt and output tokens; replay false checks the signature only, free)."}, t.verify)
	mcp.AddTool(s, &mcp.Tool{Name: "list_models", Description: "List the served models with their model ids (Merkle roots over the weights and tokenizer)."}, t.listModels)
	return s
}

// HTTPHandler serves s over streamable HTTP.
func HTTPHandler(s *mcp.Server) http.Handler {
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)
}

type tools struct {
	b Backend
	o Options
}

func (t *tools) model(name string) (worker.ModelInfo, error) {
	ms := t.b.Models()
	if len(ms) == 0 {
		return worker.ModelInfo{}, errors.New("no model is served")
	}
	if name == "" {
		return ms[0], nil
	}
	for _, m := range ms {
		if m.Name == name || m.ID.String() == name {
			return m, nil
		}
	}
	return worker.ModelInfo{}, fmt.Errorf("model %q not found", name)
}

func (t *tools) generate(ctx context.Context, call *mcp.CallToolRequest, in GenerateInput) (*mcp.CallToolResult, GenerateOutput, error) {
	var out GenerateOutput
	info, err := t.model(in.Model)
	if err != nil {
		return nil, out, err
	}
	req := worker.Request{Model: info.Name, MaxTokens: in.MaxTokens, Stop: in.Stop}
	temp, topP := 1.0, 1.0
	if in.Temperature != nil {
		temp = *in.Temperature
	}
	if in.TopP != nil {
		topP = *in.TopP
	}
	switch {
	case !(temp >= 0 && temp <= 2):
		return nil, out, fmt.Errorf("temperature must be in [0, 2], got %v", temp)
	case !(topP > 0 && topP <= 1):
		return nil, out, fmt.Errorf("top_p must be in (0, 1], got %v", topP)
	case in.MaxTokens < 0:
		return nil, out, fmt.Errorf("max_tokens must not be negative, got %d", in.MaxTokens)
	case len(in.Stop) > 4:
		return nil, out, fmt.Errorf("at most 4 stop strings, got %d", len(in.Stop))
	case (in.Prompt == "") == (len(in.Messages) == 0):
		return nil, out, errors.New("give either prompt or messages")
	}
	req.Sampler = sampler.Params{Temperature: float32(temp)}
	if topP < 1 {
		req.Sampler.TopP = float32(topP)
	}
	if in.Seed != nil {
		req.Sampler.Seed = uint64(*in.Seed)
	}
	if in.Prompt != "" {
		req.Segments = []chat.Segment{{Text: in.Prompt, BOS: true}}
	} else {
		msgs := make([]chat.Message, len(in.Messages))
		for i, m := range in.Messages {
			msgs[i] = chat.Message{Role: m.Role, Content: m.Content}
		}
		if req.Chat, err = info.Template.Render(&chat.Request{Messages: msgs, AddGenerationPrompt: true}); err != nil {
			return nil, out, err
		}
	}
	var res *worker.Result
	if t.o.Gate != nil {
		res, err = t.o.Gate.Generate(ctx, account(call), req, nil)
	} else {
		res, err = t.b.Generate(ctx, req, nil)
	}
	if err != nil {
		return nil, out, err
	}
	out = GenerateOutput{
		Text: res.Text, FinishReason: res.FinishReason, Model: info.Name, ModelID: info.ID.String(),
		SystemFingerprint: info.Fingerprint, PromptTokens: res.PromptTokens, CompletionTokens: res.CompletionTokens,
		ReceiptID: res.ReceiptID, Receipt: string(res.Receipt),
	}
	return nil, out, nil
}

// account is the caller's account: the user of its bearer token.
func account(call *mcp.CallToolRequest) string {
	if call == nil || call.Extra == nil || call.Extra.TokenInfo == nil {
		return ""
	}
	return call.Extra.TokenInfo.UserID
}

// receipt reads a stored receipt, through the gate when there is one.
func (t *tools) receipt(ctx context.Context, call *mcp.CallToolRequest, id string) ([]byte, error) {
	if t.o.Gate != nil {
		return t.o.Gate.ReadReceipt(ctx, account(call), id)
	}
	return t.b.Receipt(ctx, id)
}

func (t *tools) status(ctx context.Context, id string) (string, error) {
	if t.o.Gate != nil {
		return t.o.Gate.Status(ctx, id)
	}
	if t.o.Status == nil {
		return "published", nil
	}
	return t.o.Status(ctx, id)
}

func (t *tools) getReceipt(ctx context.Context, call *mcp.CallToolRequest, in ReceiptInput) (*mcp.CallToolResult, ReceiptOutput, error) {
	var out ReceiptOutput
	data, err := t.receipt(ctx, call, in.ID)
	if err != nil {
		return nil, out, fmt.Errorf("receipt %q: %w", in.ID, err)
	}
	st, err := t.status(ctx, in.ID)
	if err != nil {
		return nil, out, err
	}
	return nil, ReceiptOutput{ID: in.ID, Status: st, Receipt: string(data)}, nil
}

func (t *tools) verify(ctx context.Context, call *mcp.CallToolRequest, in VerifyInput) (*mcp.CallToolResult, *worker.Verification, error) {
	data := []byte(in.Receipt)
	switch {
	case (in.ID == "") == (in.Receipt == ""):
		return nil, nil, errors.New("give either id or receipt")
	case in.ID != "":
		var err error
		if data, err = t.receipt(ctx, call, in.ID); err != nil {
			return nil, nil, fmt.Errorf("receipt %q: %w", in.ID, err)
		}
	}
	replay := in.Replay == nil || *in.Replay
	var v *worker.Verification
	var err error
	if t.o.Gate != nil {
		v, err = t.o.Gate.Verify(ctx, account(call), data, replay)
	} else {
		v, err = t.b.Verify(ctx, data, replay)
	}
	if err != nil {
		return nil, nil, err
	}
	return nil, v, nil
}

func (t *tools) listModels(ctx context.Context, _ *mcp.CallToolRequest, _ empty) (*mcp.CallToolResult, ModelsOutput, error) {
	out := ModelsOutput{Models: []ModelOut{}}
	for _, m := range t.b.Models() {
		out.Models = append(out.Models, ModelOut{Name: m.Name, ModelID: m.ID.String(), Spec: m.Spec, SystemFingerprint: m.Fingerprint, ContextLength: m.ContextLen, ChatTemplate: m.Template.Name()})
	}
	return nil, out, nil
}
