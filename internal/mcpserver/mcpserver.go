package mcpserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/verdictnet/verdict/internal/chat"
	"github.com/verdictnet/verdict/internal/inference"
	"github.com/verdictnet/verdict/internal/sampler"
)

// Backend is what the tools call: a local worker (internal/worker), or
// anything else that runs generations and checks receipts.
type Backend interface {
	inference.Backend
	inference.Verifier
}

// Gate bills generations and replays and guards receipts for the account
// of the caller (the gateway implements it): generations are reserved,
// charged and sent to the ledger like those of the HTTP API, a replay
// (verify_receipt) is billed like a generation of the receipt's size, and
// a receipt is readable only by the account that paid for it.
type Gate interface {
	Generate(ctx context.Context, account string, req inference.Request, onDelta func(inference.Delta) error) (*inference.Result, error)
	ReadReceipt(ctx context.Context, account, id string) ([]byte, error)
	Status(ctx context.Context, id string) (string, error)
	Verify(ctx context.Context, account string, data []byte, replay bool) (*inference.Verification, error)
}

// x402 over MCP (the x402 MCP transport, specs/transports-v2/mcp.md of
// the x402 specification): the payment travels in a tool call's
// _meta[MetaPayment], the settlement comes back in the result's
// _meta[MetaPaymentResponse], and a payment that is required or refused
// is a tool error whose content[0].text is {"x402/error": {"code": 402,
// "message", "data": PaymentRequired}} and whose structuredContent is the
// PaymentRequired object.
const (
	MetaPayment         = "x402/payment"
	MetaPaymentResponse = "x402/payment-response"
	// HeaderPayment is x402's HTTP header, also taken on the MCP POST
	// that carries the tool call (base64 of the PaymentPayload).
	HeaderPayment = "PAYMENT-SIGNATURE"
)

// Payer is a Gate that takes x402 payments for generate from callers
// without an API key (the gateway with x402).
type Payer interface {
	// TakesPayments reports whether x402 payments are taken.
	TakesPayments() bool
	// PayGenerate runs req paid by payment (the x402 PaymentPayload,
	// JSON; nil asks for a quote). On a quote or a refusal, Required is
	// the PaymentRequired object (JSON) and the error says why; once
	// paid, Settle is the SettleResponse (JSON).
	PayGenerate(ctx context.Context, payment json.RawMessage, req inference.Request) (Payment, error)
}

// Forwarder serves the tools from workers elsewhere instead of a local
// Backend: the gateway in front of many workers (internal/multigw), which
// has no model of its own. generate's arguments are checked here, then
// Generate runs them on a worker the forwarder chooses and pays; receipts
// and verification go through it too.
type Forwarder interface {
	// Models lists the models served.
	Models(ctx context.Context) ([]ModelOut, error)
	// Generate runs in for the caller.
	Generate(ctx context.Context, c Caller, in GenerateInput) (Forwarded, error)
	// Receipt returns a receipt (canonical JSON) and its ledger status.
	Receipt(ctx context.Context, c Caller, id string) ([]byte, string, error)
	// Verify checks a receipt (replay: re-run it where its model is).
	Verify(ctx context.Context, c Caller, data []byte, replay bool) (*inference.Verification, error)
}

// Caller is who calls a tool of a Forwarder.
type Caller struct {
	// Account is the UserID of the request's token info (set by the
	// server's authentication); "" without one.
	Account string
	// Payment is the call's x402 PaymentPayload (JSON; see paymentOf),
	// nil when it carries none.
	Payment json.RawMessage
}

// Forwarded is the outcome of Forwarder.Generate: the output, and for a
// caller paying with x402 the settlement (Settle, x402's SettleResponse)
// or, when a payment is required or was refused, Required (x402's
// PaymentRequired: the call fails with it, as for a Payer).
type Forwarded struct {
	Output   GenerateOutput
	Settle   json.RawMessage
	Required json.RawMessage
}

// Payment is the outcome of Payer.PayGenerate (inference's, so that the
// gateway implements Payer without importing this package).
type Payment = inference.Payment

// paymentRequired is a tool error carrying x402's PaymentRequired: its
// text is the x402/error wrapper (the middleware in New copies the object
// into structuredContent).
type paymentRequired struct {
	msg      string
	required json.RawMessage
}

func (e *paymentRequired) Error() string {
	b, _ := json.Marshal(map[string]any{"x402/error": map[string]any{"code": 402, "message": e.msg, "data": e.required}})
	return string(b)
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
	// Forward, if set, serves every tool instead of the backend (which
	// may then be nil) and the Gate.
	Forward Forwarder
}

// Limits on generate's stop strings, as the gateway's HTTP API has them.
const (
	MaxStops   = 4
	MaxStopLen = 256
)

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
	// AgentID and Worker name the worker that served the generation
	// when the server forwards it (a gateway in front of many workers).
	AgentID uint64 `json:"agent_id,omitempty" jsonschema:"the serving worker's agent id (gateway in front of many workers)"`
	Worker  string `json:"worker,omitempty" jsonschema:"the serving worker's ledger address (gateway in front of many workers)"`
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
	s.AddReceivingMiddleware(structuredPaymentRequired)
	return s
}

// structuredPaymentRequired gives a tool error carrying an x402/error
// (paymentRequired) its PaymentRequired object as structuredContent, as
// the x402 MCP transport asks.
func structuredPaymentRequired(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		res, err := next(ctx, method, req)
		r, ok := res.(*mcp.CallToolResult)
		if err != nil || !ok || !r.IsError || len(r.Content) == 0 {
			return res, err
		}
		tc, ok := r.Content[0].(*mcp.TextContent)
		if !ok {
			return res, err
		}
		var w struct {
			E *struct {
				Code int             `json:"code"`
				Data json.RawMessage `json:"data"`
			} `json:"x402/error"`
		}
		if json.Unmarshal([]byte(tc.Text), &w) == nil && w.E != nil && w.E.Code == 402 && len(w.E.Data) > 0 {
			r.StructuredContent = w.E.Data
		}
		return res, err
	}
}

// Limits on the sessions HTTPHandler keeps: each holds a goroutine and
// its state until it is closed.
const (
	// SessionIdle closes a session that no request used for this long.
	SessionIdle = 10 * time.Minute
	// MaxSessions bounds the live sessions of a server: a request that
	// would open another is refused (503, Retry-After).
	MaxSessions = 4096
	// MaxSessionsPerCaller bounds the live sessions one caller opens: an
	// account (the user of its bearer token) or, for calls without one,
	// a client address. Beyond it a request that would open another is
	// refused (429, Retry-After), so that one key holder cannot take all
	// MaxSessions and shut everyone else out.
	MaxSessionsPerCaller = 64
)

// HTTPHandler serves s over streamable HTTP. Idle sessions are closed
// after SessionIdle; at most MaxSessions are open at a time, at most
// MaxSessionsPerCaller of them opened by one caller.
func HTTPHandler(s *mcp.Server) http.Handler {
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{SessionTimeout: SessionIdle})
	var owners sessionOwners
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A POST without a session id opens a session.
		if r.Method != http.MethodPost || r.Header.Get("Mcp-Session-Id") != "" {
			h.ServeHTTP(w, r)
			return
		}
		who := callerKey(r)
		total, mine := owners.count(s, who)
		switch {
		case total >= MaxSessions:
			w.Header().Set("Retry-After", strconv.Itoa(int(SessionIdle/time.Second)))
			http.Error(w, fmt.Sprintf("too many MCP sessions open (at most %d): close one (DELETE) or retry later", MaxSessions), http.StatusServiceUnavailable)
			return
		case mine >= MaxSessionsPerCaller:
			w.Header().Set("Retry-After", strconv.Itoa(int(SessionIdle/time.Second)))
			http.Error(w, fmt.Sprintf("you have %d MCP sessions open (at most %d a caller): close one (DELETE) or retry later", mine, MaxSessionsPerCaller), http.StatusTooManyRequests)
			return
		}
		h.ServeHTTP(&sessionRecorder{ResponseWriter: w, owners: &owners, who: who}, r)
	})
}

// callerKey names who opens a session: the account of its bearer token
// or, without one, the client's address.
func callerKey(r *http.Request) string {
	if ti := auth.TokenInfoFromContext(r.Context()); ti != nil {
		return "account " + ti.UserID
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "address " + host
}

// sessionOwners maps the live sessions HTTPHandler opened to their
// callers (callerKey).
type sessionOwners struct {
	mu    sync.Mutex
	owner map[string]string // session id -> caller
}

// count forgets the sessions s no longer holds (closed, idle) and returns
// how many s holds and how many of them who opened.
func (o *sessionOwners) count(s *mcp.Server, who string) (total, mine int) {
	live := map[string]bool{}
	for ss := range s.Sessions() {
		live[ss.ID()] = true
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for id, c := range o.owner {
		switch {
		case !live[id]:
			delete(o.owner, id)
		case c == who:
			mine++
		}
	}
	return len(live), mine
}

func (o *sessionOwners) add(id, who string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.owner == nil {
		o.owner = map[string]string{}
	}
	o.owner[id] = who
}

// sessionRecorder records the session a response opens (its
// Mcp-Session-Id header) as who's.
type sessionRecorder struct {
	http.ResponseWriter
	owners *sessionOwners
	who    string
	done   bool
}

func (w *sessionRecorder) record() {
	if !w.done {
		w.done = true
		if id := w.Header().Get("Mcp-Session-Id"); id != "" {
			w.owners.add(id, w.who)
		}
	}
}

func (w *sessionRecorder) WriteHeader(code int) {
	w.record()
	w.ResponseWriter.WriteHeader(code)
}

func (w *sessionRecorder) Write(b []byte) (int, error) {
	w.record()
	return w.ResponseWriter.Write(b)
}

// Flush passes on a flush (a streamed response's events).
func (w *sessionRecorder) Flush() {
	w.record()
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the writer underneath.
func (w *sessionRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type tools struct {
	b Backend
	o Options
}

func (t *tools) model(name string) (inference.ModelInfo, error) {
	ms := t.b.Models()
	if len(ms) == 0 {
		return inference.ModelInfo{}, errors.New("no model is served")
	}
	if name == "" {
		return ms[0], nil
	}
	for _, m := range ms {
		if m.Name == name || m.ID.String() == name {
			return m, nil
		}
	}
	return inference.ModelInfo{}, fmt.Errorf("model %q not found", name)
}

func (t *tools) generate(ctx context.Context, call *mcp.CallToolRequest, in GenerateInput) (*mcp.CallToolResult, GenerateOutput, error) {
	var out GenerateOutput
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
	case len(in.Stop) > MaxStops:
		return nil, out, fmt.Errorf("at most %d stop strings, got %d", MaxStops, len(in.Stop))
	case (in.Prompt == "") == (len(in.Messages) == 0):
		return nil, out, errors.New("give either prompt or messages")
	}
	for i, s := range in.Stop {
		if s == "" || len(s) > MaxStopLen {
			return nil, out, fmt.Errorf("stop[%d] must have 1 to %d bytes, it has %d", i, MaxStopLen, len(s))
		}
	}
	if t.o.Forward != nil {
		return t.forward(ctx, call, in)
	}
	info, err := t.model(in.Model)
	if err != nil {
		return nil, out, err
	}
	req := inference.Request{Model: info.Name, MaxTokens: in.MaxTokens, Stop: in.Stop}
	req.Sampler = sampler.Params{Temperature: float32(temp)}
	if topP < 1 {
		req.Sampler.TopP = float32(topP)
	}
	// Below float32's smallest, a temperature would run greedy and a
	// top_p without a cut (TopP 0): not what was asked.
	switch {
	case temp > 0 && req.Sampler.Temperature == 0:
		return nil, out, fmt.Errorf("temperature %v is too small", temp)
	case topP < 1 && req.Sampler.TopP == 0:
		return nil, out, fmt.Errorf("top_p %v is too small", topP)
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
	var res *inference.Result
	var result *mcp.CallToolResult
	switch p, ok := t.o.Gate.(Payer); {
	case ok && unauthenticated(call) && p.TakesPayments():
		// No API key: x402.
		payment, err := paymentOf(call)
		if err != nil {
			return nil, out, err
		}
		paid, err := p.PayGenerate(ctx, payment, req)
		if len(paid.Required) > 0 {
			return nil, out, &paymentRequired{msg: errText(err), required: paid.Required}
		}
		if err != nil {
			return nil, out, err
		}
		res = paid.Result
		var settle map[string]any
		if err := json.Unmarshal(paid.Settle, &settle); err != nil {
			return nil, out, fmt.Errorf("x402 settlement: %w", err)
		}
		result = &mcp.CallToolResult{Meta: mcp.Meta{MetaPaymentResponse: settle}}
	case t.o.Gate != nil:
		res, err = t.o.Gate.Generate(ctx, account(call), req, nil)
	default:
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
	return result, out, nil
}

// forward runs a checked generate call through the Forwarder.
func (t *tools) forward(ctx context.Context, call *mcp.CallToolRequest, in GenerateInput) (*mcp.CallToolResult, GenerateOutput, error) {
	c, err := caller(call)
	if err != nil {
		return nil, GenerateOutput{}, err
	}
	f, err := t.o.Forward.Generate(ctx, c, in)
	if len(f.Required) > 0 {
		return nil, GenerateOutput{}, &paymentRequired{msg: errText(err), required: f.Required}
	}
	if err != nil {
		return nil, GenerateOutput{}, err
	}
	var result *mcp.CallToolResult
	if len(f.Settle) > 0 {
		var settle map[string]any
		if err := json.Unmarshal(f.Settle, &settle); err != nil {
			return nil, GenerateOutput{}, fmt.Errorf("x402 settlement: %w", err)
		}
		result = &mcp.CallToolResult{Meta: mcp.Meta{MetaPaymentResponse: settle}}
	}
	return result, f.Output, nil
}

// caller is the Forwarder's view of a call: its account and payment.
func caller(call *mcp.CallToolRequest) (Caller, error) {
	p, err := paymentOf(call)
	return Caller{Account: account(call), Payment: p}, err
}

func errText(err error) string {
	if err == nil {
		return "payment required"
	}
	return err.Error()
}

// unauthenticated reports a call made without credentials (no token info:
// the gateway lets such calls through only when it takes x402 payments).
func unauthenticated(call *mcp.CallToolRequest) bool {
	return call == nil || call.Extra == nil || call.Extra.TokenInfo == nil
}

// paymentOf returns the x402 PaymentPayload of a call: its
// _meta[MetaPayment], else the PAYMENT-SIGNATURE header of the HTTP
// request that carried it (base64); nil when there is none.
func paymentOf(call *mcp.CallToolRequest) (json.RawMessage, error) {
	if call != nil && call.Params != nil {
		if v, ok := call.Params.Meta[MetaPayment]; ok && v != nil {
			b, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("_meta[%q]: %w", MetaPayment, err)
			}
			return b, nil
		}
	}
	if call != nil && call.Extra != nil {
		if h := call.Extra.Header.Get(HeaderPayment); h != "" {
			b, err := base64.StdEncoding.DecodeString(h)
			if err != nil {
				b = []byte(h) // not JSON either: refused with x402's reason
			}
			return b, nil
		}
	}
	return nil, nil
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
	if t.o.Forward != nil {
		data, _, err := t.o.Forward.Receipt(ctx, Caller{Account: account(call)}, id)
		return data, err
	}
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
	if t.o.Forward != nil {
		data, st, err := t.o.Forward.Receipt(ctx, Caller{Account: account(call)}, in.ID)
		if err != nil {
			return nil, out, fmt.Errorf("receipt %q: %w", in.ID, err)
		}
		return nil, ReceiptOutput{ID: in.ID, Status: st, Receipt: string(data)}, nil
	}
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

func (t *tools) verify(ctx context.Context, call *mcp.CallToolRequest, in VerifyInput) (*mcp.CallToolResult, *inference.Verification, error) {
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
	var v *inference.Verification
	var err error
	switch {
	case t.o.Forward != nil:
		v, err = t.o.Forward.Verify(ctx, Caller{Account: account(call)}, data, replay)
	case t.o.Gate != nil:
		v, err = t.o.Gate.Verify(ctx, account(call), data, replay)
	default:
		v, err = t.b.Verify(ctx, data, replay)
	}
	if err != nil {
		return nil, nil, err
	}
	return nil, v, nil
}

func (t *tools) listModels(ctx context.Context, _ *mcp.CallToolRequest, _ empty) (*mcp.CallToolResult, ModelsOutput, error) {
	out := ModelsOutput{Models: []ModelOut{}}
	if t.o.Forward != nil {
		ms, err := t.o.Forward.Models(ctx)
		if err != nil {
			return nil, out, err
		}
		out.Models = append(out.Models, ms...)
		return nil, out, nil
	}
	for _, m := range t.b.Models() {
		out.Models = append(out.Models, ModelOut{Name: m.Name, ModelID: m.ID.String(), Spec: m.Spec, SystemFingerprint: m.Fingerprint, ContextLength: m.ContextLen, ChatTemplate: m.Template.Name()})
	}
	return nil, out, nil
}
