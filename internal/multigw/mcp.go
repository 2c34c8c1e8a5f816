package multigw

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"

	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/inference"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/mcpserver"
	"github.com/verdictnet/verdict/internal/receipt"
)

// MCPPath is where the MCP server is mounted.
const MCPPath = "/mcp"

// mcpHandler serves the MCP tools (package mcpserver) over streamable
// HTTP, forwarded to the pool (mcpTools): behind the API keys (the
// session's token info names the paying account), or, without an
// Authorization header, in an anonymous session whose generate calls pay
// with x402 (the SDK refuses a session whose user differs, so the two
// are separate servers). With NoAuth every call is anonymous and free.
func (s *Server) mcpHandler() http.Handler {
	open := func() http.Handler {
		return mcpserver.HTTPHandler(mcpserver.New(nil, mcpserver.Options{Forward: mcpTools{s}}))
	}
	if s.o.NoAuth {
		return open()
	}
	keyed := auth.RequireBearerToken(func(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		k := s.keyOf(token)
		if k == nil {
			return nil, fmt.Errorf("%w: unknown API key", auth.ErrInvalidToken)
		}
		return &auth.TokenInfo{UserID: k.Address()}, nil
	}, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(open())
	anon := open()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			anon.ServeHTTP(w, r)
			return
		}
		keyed.ServeHTTP(w, r)
	})
}

// keyOf returns the account key of an API key, nil for an unknown one.
func (s *Server) keyOf(tok string) *keys.Key {
	sum := sha256.Sum256([]byte(tok))
	var found *keys.Key
	for _, k := range s.keys {
		if subtle.ConstantTimeCompare(sum[:], k.sum[:]) == 1 {
			found = k.key
		}
	}
	return found
}

// payerOf returns the key of the account an MCP session's token names.
func (s *Server) payerOf(account string) *keys.Key {
	for _, k := range s.keys {
		if k.key.Address() == account {
			return k.key
		}
	}
	return nil
}

// mcpTools is mcpserver.Forwarder over the pool.
type mcpTools struct{ s *Server }

var _ mcpserver.Forwarder = mcpTools{}

// Models lists the models some eligible worker serves, best ranked
// first (the spec, fingerprint and context length are the workers' own:
// empty here).
func (m mcpTools) Models(context.Context) ([]mcpserver.ModelOut, error) {
	s := m.s
	s.mu.Lock()
	ws, min := s.workers, s.minStake
	s.mu.Unlock()
	var out []mcpserver.ModelOut
	seen := map[ledger.Hash]bool{}
	for _, wk := range rank(ws, min) {
		if !seen[wk.ModelID] {
			seen[wk.ModelID] = true
			out = append(out, mcpserver.ModelOut{Name: nameOf(ws, wk), ModelID: wk.ModelID.String()})
		}
	}
	return out, nil
}

// completionBody is the OpenAI request a generate call becomes.
type completionBody struct {
	Model       string              `json:"model"`
	Prompt      string              `json:"prompt,omitempty"`
	Messages    []mcpserver.Message `json:"messages,omitempty"`
	MaxTokens   int                 `json:"max_tokens,omitempty"`
	Temperature *float64            `json:"temperature,omitempty"`
	TopP        *float64            `json:"top_p,omitempty"`
	Seed        *int64              `json:"seed,omitempty"`
	Stop        []string            `json:"stop,omitempty"`
}

// completionAnswer is what is read of a worker's OpenAI answer.
type completionAnswer struct {
	Model             string `json:"model"`
	SystemFingerprint string `json:"system_fingerprint"`
	Choices           []struct {
		Text    string `json:"text"`
		Message *struct {
			Content string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Verdict struct {
		ReceiptID string `json:"receipt_id"`
		ModelID   string `json:"model_id"`
	} `json:"verdict"`
}

// Generate runs a generate call as an OpenAI request (chat completions
// for messages, completions for a prompt) routed like one sent over HTTP:
// paid from the session's account with failover (route), paid with the
// call's x402 payment (routeX402), or free (NoAuth).
func (m mcpTools) Generate(ctx context.Context, c mcpserver.Caller, in mcpserver.GenerateInput) (mcpserver.Forwarded, error) {
	s := m.s
	var f mcpserver.Forwarded
	model := in.Model
	if model == "" {
		ms, _ := m.Models(ctx)
		if len(ms) == 0 {
			return f, errors.New("no worker serves a model")
		}
		model = ms[0].Name
	}
	id, ranked, known := s.ranked(model)
	switch {
	case !known:
		return f, fmt.Errorf("no worker serves the model %q (list_models lists the served models)", trunc(model, 80))
	case len(ranked) == 0:
		return f, fmt.Errorf("every worker serving %q is jailed or under the minimum stake", trunc(model, 80))
	}
	path := "/completions"
	if len(in.Messages) > 0 {
		path = "/chat/completions"
	}
	body, err := json.Marshal(completionBody{Model: id.String(), Prompt: in.Prompt, Messages: in.Messages, MaxTokens: in.MaxTokens,
		Temperature: in.Temperature, TopP: in.TopP, Seed: in.Seed, Stop: in.Stop})
	if err != nil {
		return f, err
	}
	var res *http.Response
	var wk Worker
	switch {
	case s.o.NoAuth:
		res, wk, err = s.route(ctx, id, ranked, path, body, nil, model, 0)
	case c.Account != "":
		payer := s.payerOf(c.Account)
		if payer == nil {
			return f, fmt.Errorf("no account %q here", trunc(c.Account, 80))
		}
		var top map[string]json.RawMessage
		json.Unmarshal(body, &top)
		res, wk, err = s.route(ctx, id, ranked, path, body, payer, model, requestTokens(top, len(body)))
	default:
		sig := ""
		if len(c.Payment) > 0 {
			sig = base64.StdEncoding.EncodeToString(c.Payment)
		}
		res, wk, err = s.routeX402(ctx, id, ranked, path, body, sig)
	}
	if err != nil {
		return f, err
	}
	defer res.Body.Close()
	b, release, err := s.readWorker(res, wk, MaxResponseBytes)
	if err != nil {
		return f, fmt.Errorf("worker %d failed while sending its answer (%v); you pay at most for the receipt it published", wk.AgentID, err)
	}
	defer release()
	if res.StatusCode == http.StatusPaymentRequired {
		var pr gateway.PaymentRequired
		if err := decodeB64JSON(res.Header.Get(gateway.HeaderPaymentRequired), &pr); err != nil {
			return f, fmt.Errorf("worker %d: a 402 without a valid %s: %v", wk.AgentID, gateway.HeaderPaymentRequired, err)
		}
		f.Required, _ = json.Marshal(pr)
		msg := "payment required"
		if pr.Error != "" {
			msg = pr.Error
		}
		return f, fmt.Errorf("worker %d (%s): %s", wk.AgentID, wk.Address, trunc(msg, 200))
	}
	if res.StatusCode != http.StatusOK {
		var e struct {
			Error apiErr `json:"error"`
		}
		msg := trunc(string(b), 300)
		if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
			msg = trunc(e.Error.Message, 300) // a worker's text, up to MaxResponseBytes
		}
		return f, fmt.Errorf("worker %d: status %d: %s", wk.AgentID, res.StatusCode, msg)
	}
	var a completionAnswer
	if err := json.Unmarshal(b, &a); err != nil || len(a.Choices) == 0 {
		return f, fmt.Errorf("worker %d: not an OpenAI completion: %s", wk.AgentID, trunc(string(b), 200))
	}
	if h := res.Header.Get(gateway.HeaderPaymentResponse); h != "" {
		var settle map[string]any
		if err := decodeB64JSON(h, &settle); err == nil {
			f.Settle, _ = json.Marshal(settle)
		}
	}
	ch := a.Choices[0]
	text := ch.Text
	if ch.Message != nil {
		text = ch.Message.Content
	}
	rid := strings.ToLower(a.Verdict.ReceiptID)
	s.remember(rid, wk)
	f.Output = mcpserver.GenerateOutput{Text: text, FinishReason: ch.FinishReason, Model: wk.ModelName, ModelID: wk.ModelID.String(),
		SystemFingerprint: a.SystemFingerprint, PromptTokens: a.Usage.PromptTokens, CompletionTokens: a.Usage.CompletionTokens,
		ReceiptID: rid, AgentID: wk.AgentID, Worker: wk.Address.String()}
	if rid != "" {
		// The receipt's text: from the ledger once the worker published
		// it, or from the worker while it serves it without credentials.
		wctx, cancel := context.WithTimeout(ctx, s.o.ReceiptWait)
		defer cancel()
		for {
			if data, _, err := m.receipt(wctx, rid); err == nil {
				f.Output.Receipt = string(data)
				break
			}
			t := time.NewTimer(200 * time.Millisecond)
			select {
			case <-wctx.Done():
			case <-t.C:
			}
			t.Stop()
			if wctx.Err() != nil {
				break
			}
		}
	}
	return f, nil
}

// Receipt reads a receipt as GET /v1/receipts/{id} does: from the ledger
// (public once published), else from the worker that served it.
func (m mcpTools) Receipt(ctx context.Context, _ mcpserver.Caller, id string) ([]byte, string, error) {
	id = strings.ToLower(id)
	if _, err := ledger.ParseHash(id); err != nil {
		return nil, "", fmt.Errorf("a receipt id is 64 hex digits, got %q", trunc(id, 80))
	}
	return m.receipt(ctx, id)
}

func (m mcpTools) receipt(ctx context.Context, id string) ([]byte, string, error) {
	s := m.s
	h, err := ledger.ParseHash(id)
	if err != nil {
		return nil, "", err
	}
	if rec, found, err := s.o.Ledger.Receipt(ctx, h); err == nil && found {
		data, err := s.o.Ledger.ReceiptData(ctx, h)
		if err == nil {
			return data, rec.Shown(), nil
		}
	}
	s.mu.Lock()
	wk, ok := s.served[id]
	s.mu.Unlock()
	if !ok {
		return nil, "", fmt.Errorf("no receipt %s on the ledger or served here: %w", id, inference.ErrNotFound)
	}
	res, err := s.do(ctx, wk, http.MethodGet, "/receipts/"+id, nil, nil)
	if err != nil {
		return nil, "", fmt.Errorf("worker %d: %w (the receipt is on the ledger once published)", wk.AgentID, err)
	}
	defer res.Body.Close()
	var out struct {
		Status  string          `json:"status"`
		Receipt json.RawMessage `json:"receipt"`
	}
	if res.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("worker %d: status %d for receipt %s (it is on the ledger once published)", wk.AgentID, res.StatusCode, id)
	}
	b, release, err := s.readWorker(res, wk, MaxReceiptAnswerBytes)
	if err != nil {
		return nil, "", fmt.Errorf("worker %d: receipt %s: %w", wk.AgentID, id, err)
	}
	defer release()
	if err := json.Unmarshal(b, &out); err != nil || len(out.Receipt) == 0 {
		return nil, "", fmt.Errorf("worker %d: not a receipt answer for %s", wk.AgentID, id)
	}
	return out.Receipt, out.Status, nil
}

// Verify checks a receipt's signature. The gateway holds no model, so it
// replays nothing: with replay the result says so (Problem), and the
// receipt can be replayed by `verdict verify` or a worker's own MCP
// server where its model is.
func (m mcpTools) Verify(_ context.Context, _ mcpserver.Caller, data []byte, replay bool) (*inference.Verification, error) {
	r, err := receipt.ParseAnySpelling(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", inference.ErrInvalid, err)
	}
	id := r.ID()
	v := &inference.Verification{ID: hex.EncodeToString(id[:]), Worker: keys.Address(r.Worker), Model: r.Model.String()}
	if err := r.Verify(); err != nil {
		v.Problem = err.Error()
		return v, nil
	}
	v.Signature = true
	if replay {
		v.Problem = "not replayed: this gateway holds no model (replay it with `verdict verify` or a worker's own MCP server where model " + r.Model.String() + " is served)"
	}
	return v, nil
}
