package inference

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/verdictnet/verdict/internal/chat"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/sampler"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

// Errors a generation can fail with; callers test them with errors.Is.
var (
	ErrUnknownModel  = errors.New("model not found")
	ErrContextLength = errors.New("context length exceeded")
	ErrInvalid       = errors.New("invalid request")
	ErrBusy          = errors.New("too many requests")
	// ErrNotFound is returned for an unknown receipt id.
	ErrNotFound = errors.New("receipt not found")
)

// MaxTopLogprobs is the most alternatives reported per token (OpenAI's limit).
const MaxTopLogprobs = 20

// MinLogprob stands for the log-probability of a token whose probability
// underflows to zero (OpenAI reports -9999 there too).
const MinLogprob = -9999.0

// Backend runs generations and keeps their receipts: a local worker, or a
// pool of workers chosen by stake and reputation (gateway.Pool).
type Backend interface {
	Models() []ModelInfo
	Generate(ctx context.Context, req Request, onDelta func(Delta) error) (*Result, error)
	Receipt(ctx context.Context, id string) ([]byte, error)
}

// Verifier checks receipts: their signature and, when replay is set and
// the receipt's model is served, a re-run of the generation.
type Verifier interface {
	Verify(ctx context.Context, data []byte, replay bool) (*Verification, error)
}

// ModelInfo describes a served model.
type ModelInfo struct {
	Name        string               // what requests name it by
	ID          merkle.Hash          // model id (internal/modelid)
	Spec        string               // determinism specification (engine.SpecVersion)
	Fingerprint string               // OpenAI system_fingerprint: see Fingerprint
	ContextLen  int                  // positions
	Vocab       int                  // tokens
	Template    *chat.Template       // chat template (the model's, or the plain built-in)
	Format      string               // "gguf" or "llama2c"
	Tokenizer   *tokenizer.Tokenizer `json:"-"`
}

// Fingerprint derives the OpenAI system_fingerprint of a model id and a
// determinism spec version: "fp_" and the first 16 hex digits of
// SHA-256(spec || 0x00 || model id bytes). Two servers with the same
// fingerprint produce bit-identical outputs for the same request.
func Fingerprint(id merkle.Hash, spec string) string {
	h := sha256.New()
	h.Write([]byte(spec))
	h.Write([]byte{0})
	h.Write(id[:])
	return "fp_" + hex.EncodeToString(h.Sum(nil))[:16]
}

// Request is one generation.
type Request struct {
	// Model is a model's Name or its id in hex.
	Model string
	// Chat is a rendered chat prompt (see chat.Template.Render); else
	// Segments is raw prompt text (see chat.Segment); when both are nil,
	// Tokens is the prompt, used as it is.
	Chat     *chat.Prompt
	Segments []chat.Segment
	Tokens   []int
	// MaxTokens bounds the generated tokens; 0 means up to the context
	// length. It is capped by the context.
	MaxTokens int
	Sampler   sampler.Params
	// Stop strings end the generation; the text returned stops before the
	// first of them.
	Stop []string
	// Logprobs asks for the log-probability of each generated token and of
	// the TopLogprobs most likely alternatives (at most MaxTopLogprobs).
	Logprobs    bool
	TopLogprobs int
	// Nonce is the requester's request id, recorded in the receipt.
	Nonce []byte
	// Account is the caller's account as the gateway knows it (an API
	// key's account, or x402:<payer>). The worker's batch keeps each
	// account's cached prompt prefixes to itself, so that no caller can
	// tell from its time to first token what another account sent, and
	// takes turns between accounts when requests wait for room, so that
	// one account's backlog does not hold up the others
	// (generate.Request.Account). Empty: the account of every request
	// without one.
	Account string
	// Admit, if set, is called once the prompt is tokenized and before
	// the generation takes a slot, with the prompt's token count and the
	// most completion tokens the generation may produce; an error from it
	// refuses the request (Generate returns it). The gateway reserves the
	// request's fee here.
	Admit func(promptTokens, maxCompletion int) error
	// Bind, if set, is called after Admit with the RequestHash
	// (ledger.RequestHash) the receipt will have; an error from it refuses
	// the request. An x402 payer's escrow is bound to it (gateway).
	Bind func(requestHash ledger.Hash) error
}

// Alt is a candidate token with its log-probability.
type Alt struct {
	Token   int
	Text    string // the token's bytes as text (may be part of a character)
	Bytes   []byte
	Logprob float64
}

// TokenLogprob is a generated token, its log-probability and the most
// likely alternatives at its position.
type TokenLogprob struct {
	Alt
	Top []Alt
}

// Delta is a piece of streamed output.
type Delta struct {
	Text     string
	Logprobs []TokenLogprob
	// Tokens is how many generated tokens were sampled since the previous
	// delta: those whose text this one carries, or releases when it was
	// held back (part of a character, the possible start of a stop
	// string). With Logprobs it is the length of Logprobs. Tokens that never
	// show in a delta (a stop token, text withheld at the end) are in
	// Result.CompletionTokens only.
	Tokens int
}

// Finish reasons, as OpenAI names them, and FinishCancelled for a
// generation cut short (PartialError).
const (
	FinishStop      = "stop"
	FinishLength    = "length"
	FinishCancelled = "cancelled"
)

// PartialError is the error of a generation cut short after it generated at
// least one token: its context was cancelled (the caller hung up, an MCP
// client cancelled the call) or onDelta failed (the stream could not be
// written). Result is then a finished generation of the tokens generated so
// far, with FinishReason FinishCancelled: its receipt, signed and stored,
// has its step count lowered to the positions actually fed (as for a stop
// string), so that replaying it yields exactly those tokens, and the
// worker can be paid for them. Err is what cut it short (Unwrap).
type PartialError struct {
	Result *Result
	Err    error
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("generation cut short after %d tokens (receipt %s): %v", e.Result.CompletionTokens, e.Result.ReceiptID, e.Err)
}

func (e *PartialError) Unwrap() error { return e.Err }

// AbandonedError is the error of a generation whose caller went away (its
// context was cancelled: it hung up, an MCP client cancelled the call)
// before its first output token: there is no receipt, so nobody pays for
// the prompt positions the worker computed for it. PromptComputed is those
// positions (fed through the model: not those taken from its prefix cache,
// which keeps the computed prompt for a retry); Err is the cause (Unwrap).
// The gateway bounds, per caller, the positions so abandoned.
type AbandonedError struct {
	PromptComputed int
	Err            error
}

func (e *AbandonedError) Error() string {
	return fmt.Sprintf("generation abandoned before its first token (%d prompt positions computed): %v", e.PromptComputed, e.Err)
}

func (e *AbandonedError) Unwrap() error { return e.Err }

// Result is a finished generation.
type Result struct {
	Model            ModelInfo
	Text             string
	FinishReason     string
	PromptTokens     int
	CompletionTokens int
	// CachedTokens is how many of PromptTokens the worker took from its
	// prefix cache instead of computing them (the answer and receipt are
	// the same either way).
	CachedTokens int
	Logprobs     []TokenLogprob
	ReceiptID    string // hex
	Receipt      []byte // canonical signed receipt (JSON)
	// RequestSteps is the step count the request asked for (that of the
	// RequestHash passed to Bind); the receipt's is lower when a stop
	// string or a cancellation ended the generation early.
	RequestSteps int
}

// Verification is the outcome of checking a receipt.
type Verification struct {
	ID        string `json:"receipt_id"`
	Signature bool   `json:"signature_valid"`
	Worker    string `json:"worker"`
	Model     string `json:"model_id"`
	// Replayed: the generation was re-run on the served model; Match: it
	// agreed token for token and root for root.
	Replayed bool   `json:"replayed"`
	Match    bool   `json:"match"`
	Problem  string `json:"problem,omitempty"`
}

// Charge is a receipt a requester pays for, handed to the worker's ledger
// side to be published (worker.Chain.Submit): Requester pays Fee into an
// escrow for the receipt (an account name the escrow opener understands),
// or, when EscrowID is set, the escrow is already open (an x402 payment).
type Charge struct {
	ReceiptID string
	Receipt   []byte
	Requester string
	Fee       uint64
	EscrowID  ledger.Hash
	// RequestSteps, when not zero, is the step count of the request the
	// escrow is bound to, for a receipt that ended early (its steps
	// lowered by a stop string or a cancellation):
	// ledger.MsgPublishReceipt.RequestSteps.
	RequestSteps uint64
}

// Payment is the outcome of a generation paid with x402 by a caller
// without an API key (the gateway's Server.PayGenerate, which the MCP
// server calls through mcpserver.Payer): once paid, Result and Settle,
// x402's SettleResponse (JSON); on a quote or a refusal, Required, x402's
// PaymentRequired object (JSON).
type Payment struct {
	Result   *Result
	Settle   json.RawMessage
	Required json.RawMessage
}
