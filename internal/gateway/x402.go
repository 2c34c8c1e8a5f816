package gateway

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/verdictnet/verdict/internal/inference"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/receipt"
)

// x402 (version 2) headers and constants.
const (
	HeaderPaymentRequired  = "PAYMENT-REQUIRED"
	HeaderPaymentSignature = "PAYMENT-SIGNATURE"
	HeaderPaymentResponse  = "PAYMENT-RESPONSE"
	X402Version            = 2
	// SchemeExact pays the quoted amount, the most the request can cost,
	// into an escrow for the receipt: the worker gets all of it.
	SchemeExact = "exact"
	// SchemeUpto authorises the same amount as a maximum: the escrow
	// carries the price per token (openEscrow's pricePerToken) and the
	// receipt costs its prompt and generated tokens at that price; the
	// ledger returns the rest to the payer when the receipt is published.
	SchemeUpto = "upto"
	// X402Asset names the ledger's coin in payment requirements.
	X402Asset = "verdict"
	// MaxPaymentHeaderBytes bounds a PAYMENT-SIGNATURE header.
	MaxPaymentHeaderBytes = 16 << 10
)

// X402Reason is an x402 error reason (the "error" of PAYMENT-REQUIRED).
type X402Reason string

// Reasons a payment is refused.
const (
	ReasonPaymentRequired   X402Reason = "payment_required"
	ReasonInvalidPayload    X402Reason = "invalid_payload"
	ReasonInvalidScheme     X402Reason = "unsupported_scheme"
	ReasonInvalidNetwork    X402Reason = "invalid_network"
	ReasonInvalidSignature  X402Reason = "invalid_signature"
	ReasonExpired           X402Reason = "payment_expired"
	ReasonReplayed          X402Reason = "payment_replayed"
	ReasonInsufficientFunds X402Reason = "insufficient_funds"
	ReasonRequestMismatch   X402Reason = "request_mismatch"
	ReasonAmountTooLow      X402Reason = "amount_too_low"
	ReasonSettleFailed      X402Reason = "settlement_failed"
)

// X402Ledger is what x402 payments need from a ledger node
// (client.Client has it).
type X402Ledger interface {
	ChainID(ctx context.Context) (string, error)
	Height(ctx context.Context) (int64, error)
	Account(ctx context.Context, a ledger.Address) (ledger.Account, error)
	BroadcastCommit(ctx context.Context, tx *ledger.Tx) (client.Result, error)
}

// X402 configures x402 payments: a completion request without an API key
// is quoted (402 with PAYMENT-REQUIRED) and served when it carries a
// PAYMENT-SIGNATURE whose escrow transaction the gateway submits.
type X402 struct {
	Ledger        X402Ledger
	PayTo         ledger.Address // the worker's account
	PricePerToken uint64
	// Submit queues the receipt for publication against the payer's
	// escrow (worker.Chain.SubmitCharge).
	Submit func(inference.Charge) error
	// Timeout is how long a quote may be paid (default 120 s).
	Timeout time.Duration
	// Secret keys the quotes' nonces (default: random at New).
	Secret []byte
	// Now is the clock (default time.Now).
	Now func() time.Time
	// EscrowTimeout is the ledger's escrowTimeout (0: no bound). An
	// escrow with no receipt that many blocks after it landed is
	// refunded, and the generation it paid for goes unpaid: one still
	// running when the chain is EscrowMargin blocks from that height is
	// cut short, answered with what it generated (finish_reason length),
	// and its receipt published.
	EscrowTimeout uint64
	// EscrowMargin is the blocks left for the receipt's publication
	// (default: a quarter of EscrowTimeout, at least 2).
	EscrowMargin uint64
	// HeightPoll is how often a running generation's escrow height is
	// checked (default 1 s).
	HeightPoll time.Duration
	// Backlogged reports that the worker's outbox is past its bound
	// (worker.Chain.Backlogged): requests are neither quoted nor paid
	// (429 with Retry-After, ErrBacklog), since a receipt that waits in
	// the outbox past its escrow's timeout goes unpaid. nil: never.
	Backlogged func() bool

	mu   sync.Mutex
	used map[string]int64 // nonces paid, until their deadline
}

// PaymentRequirements is one way to pay (an entry of accepts). It,
// PaymentRequired, PaymentPayload, ResourceInfo and SettleResponse follow
// @x402/core 2.27's types.
type PaymentRequirements struct {
	Scheme            string         `json:"scheme"`
	Network           string         `json:"network"`
	Asset             string         `json:"asset"`
	Amount            string         `json:"amount"`
	PayTo             string         `json:"payTo"`
	MaxTimeoutSeconds int            `json:"maxTimeoutSeconds"`
	Extra             X402QuoteExtra `json:"extra"`
}

// X402QuoteExtra binds a quote to one request: the RequestHash the escrow
// must name, the receipt nonce that hash includes, and its deadline.
type X402QuoteExtra struct {
	RequestHash string `json:"requestHash"`
	Nonce       string `json:"nonce"`    // base64
	Deadline    int64  `json:"deadline"` // unix seconds
	ModelID     string `json:"modelId"`
	ChainID     string `json:"chainId"`
	// PricePerToken (decimal; upto only) is the escrow's pricePerToken.
	PricePerToken string `json:"pricePerToken,omitempty"`
}

// ResourceInfo describes the paid resource.
type ResourceInfo struct {
	URL         string `json:"url"`
	Description string `json:"description,omitempty"`
	MimeType    string `json:"mimeType,omitempty"`
}

// PaymentRequired is the decoded PAYMENT-REQUIRED header: the quote, or
// with an empty accepts and an error, a refused payment.
type PaymentRequired struct {
	X402Version int                   `json:"x402Version"`
	Error       string                `json:"error,omitempty"`
	Resource    ResourceInfo          `json:"resource"`
	Accepts     []PaymentRequirements `json:"accepts"`
}

// PaymentPayload is the decoded PAYMENT-SIGNATURE; its payload holds the
// payer's signed openEscrow transaction (canonical bytes, base64).
type PaymentPayload struct {
	X402Version int                 `json:"x402Version"`
	Resource    *ResourceInfo       `json:"resource,omitempty"`
	Accepted    PaymentRequirements `json:"accepted"`
	Payload     struct {
		Transaction string `json:"transaction"`
	} `json:"payload"`
}

// SettleResponse is the decoded PAYMENT-RESPONSE: the escrow
// transaction's hash and, in extra, escrowId, height and receiptId.
type SettleResponse struct {
	Success     bool           `json:"success"`
	ErrorReason string         `json:"errorReason,omitempty"`
	Payer       string         `json:"payer,omitempty"`
	Transaction string         `json:"transaction"`
	Network     string         `json:"network"`
	Amount      string         `json:"amount,omitempty"`
	Extra       map[string]any `json:"extra,omitempty"`
}

// x402Request is a completion request taken by x402 (in its context).
type x402Request struct {
	// h receives PAYMENT-REQUIRED and PAYMENT-RESPONSE: the response's
	// header over HTTP, a header read back by the MCP tools.
	h       http.Header
	url     string
	payload *PaymentPayload // nil: quote
	tx      *ledger.Tx
}

type x402Key struct{}

var errQuoted = errors.New("x402: quoted")

// x402Error is a refused payment: 402 with PAYMENT-REQUIRED.
type x402Error struct {
	Reason X402Reason
	Msg    string
}

func (e *x402Error) Error() string { return fmt.Sprintf("x402 %s: %s", e.Reason, e.Msg) }

func refuse(reason X402Reason, format string, a ...any) error {
	return &x402Error{reason, fmt.Sprintf(format, a...)}
}

func (x *X402) now() time.Time {
	if x.Now != nil {
		return x.Now()
	}
	return time.Now()
}

func (x *X402) timeout() time.Duration {
	if x.Timeout > 0 {
		return x.Timeout
	}
	return 120 * time.Second
}

// nonce is deadline (8 bytes, big-endian unix seconds) || 16 random bytes
// || the first 16 bytes of HMAC-SHA256(Secret, the first 24): the
// gateway's own, unforgeable, self-expiring request id.
func (x *X402) newNonce() ([]byte, int64) {
	deadline := x.now().Add(x.timeout()).Unix()
	n := binary.BigEndian.AppendUint64(nil, uint64(deadline))
	var r [16]byte
	rand.Read(r[:])
	n = append(n, r[:]...)
	return append(n, x.mac(n)...), deadline
}

func (x *X402) mac(b []byte) []byte {
	m := hmac.New(sha256.New, x.Secret)
	m.Write([]byte("verdict/x402/nonce/v1"))
	m.Write(b)
	return m.Sum(nil)[:16]
}

// quoted checks that a payment names a quote of this gateway (its nonce
// issued here, not expired); the nonce is claimed, and the rest checked,
// when the request is run.
func (x *X402) quoted(p *PaymentPayload) error {
	nonce, err := base64.StdEncoding.DecodeString(p.Accepted.Extra.Nonce)
	if err != nil {
		return refuse(ReasonInvalidPayload, "accepted.extra.nonce is not base64")
	}
	_, err = x.checkNonce(nonce)
	return err
}

// checkNonce returns the deadline of a nonce the gateway issued.
func (x *X402) checkNonce(n []byte) (int64, error) {
	if len(n) != 40 || !hmac.Equal(x.mac(n[:24]), n[24:]) {
		return 0, refuse(ReasonInvalidPayload, "the quote's nonce was not issued by this gateway")
	}
	d := int64(binary.BigEndian.Uint64(n))
	if x.now().Unix() > d {
		return 0, refuse(ReasonExpired, "the quote expired at %s", time.Unix(d, 0).UTC().Format(time.RFC3339))
	}
	return d, nil
}

// claim marks a nonce used (false: it was already).
func (x *X402) claim(n []byte, deadline int64) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	now := x.now().Unix()
	for k, d := range x.used {
		if d < now {
			delete(x.used, k)
		}
	}
	if x.used == nil {
		x.used = map[string]int64{}
	}
	if _, ok := x.used[string(n)]; ok {
		return false
	}
	x.used[string(n)] = deadline
	return true
}

func (x *X402) unclaim(n []byte) {
	x.mu.Lock()
	delete(x.used, string(n))
	x.mu.Unlock()
}

// decodePayment parses a PAYMENT-SIGNATURE header and the transaction in
// it (signature checked).
func decodePayment(h string) (*PaymentPayload, *ledger.Tx, error) {
	if len(h) > MaxPaymentHeaderBytes {
		return nil, nil, refuse(ReasonInvalidPayload, "%s header of %d bytes, at most %d", HeaderPaymentSignature, len(h), MaxPaymentHeaderBytes)
	}
	b, err := base64.StdEncoding.DecodeString(h)
	if err != nil {
		return nil, nil, refuse(ReasonInvalidPayload, "%s is not base64: %v", HeaderPaymentSignature, err)
	}
	var p PaymentPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, nil, refuse(ReasonInvalidPayload, "%s is not a payment payload: %v", HeaderPaymentSignature, err)
	}
	if p.X402Version != X402Version {
		return nil, nil, refuse(ReasonInvalidPayload, "x402Version %d, want %d", p.X402Version, X402Version)
	}
	raw, err := base64.StdEncoding.DecodeString(p.Payload.Transaction)
	if err != nil || len(raw) == 0 {
		return nil, nil, refuse(ReasonInvalidPayload, "payload.transaction is not a base64 transaction")
	}
	tx, err := ledger.DecodeTx(raw)
	if err != nil {
		if errors.Is(err, ledger.ErrSignature) {
			return nil, nil, refuse(ReasonInvalidSignature, "%v", err)
		}
		return nil, nil, refuse(ReasonInvalidPayload, "payload.transaction: %v", err)
	}
	return &p, tx, nil
}

// generateX402 runs a request paid (or to be quoted) by x402.
func (s *Server) generateX402(ctx context.Context, xr *x402Request, req inference.Request, onDelta func(inference.Delta) error) (*inference.Result, error) {
	x := s.o.X402
	chainID, err := x.Ledger.ChainID(ctx)
	if err != nil {
		return nil, fmt.Errorf("x402: ledger: %w", err)
	}
	network := CAIP2Network(chainID)
	if x.Backlogged != nil && x.Backlogged() {
		// Before the escrow is submitted: the payer's coins stay theirs.
		return nil, fmt.Errorf("%w: the worker's receipts wait to be published on the ledger", ErrBacklog)
	}
	var prompt, maxc int
	admit := req.Admit
	req.Admit = func(p, m int) error {
		prompt, maxc = p, m
		if admit != nil {
			return admit(p, m)
		}
		return nil
	}
	amount := func() uint64 { return x.PricePerToken * uint64(prompt+maxc) }
	if xr.payload == nil {
		nonce, deadline := x.newNonce()
		req.Nonce = nonce
		var q, up PaymentRequirements
		req.Bind = func(h ledger.Hash) error {
			info, _ := s.findModel(req.Model)
			q = PaymentRequirements{Scheme: SchemeExact, Network: network, Asset: X402Asset, Amount: strconv.FormatUint(amount(), 10),
				PayTo: x.PayTo.String(), MaxTimeoutSeconds: int(x.timeout() / time.Second),
				Extra: X402QuoteExtra{RequestHash: h.String(), Nonce: base64.StdEncoding.EncodeToString(nonce), Deadline: deadline, ModelID: info.ID.String(), ChainID: chainID}}
			up = q
			up.Scheme, up.Extra.PricePerToken = SchemeUpto, strconv.FormatUint(x.PricePerToken, 10)
			return errQuoted
		}
		if _, err := s.o.Backend.Generate(ctx, req, nil); !errors.Is(err, errQuoted) {
			if err == nil {
				err = errors.New("x402: the backend generated without binding the request")
			}
			return nil, err
		}
		s.setPaymentRequired(xr, ReasonPaymentRequired, []PaymentRequirements{q, up})
		return nil, &apiError{Status: http.StatusPaymentRequired, Type: "invalid_request_error", Code: strp(string(ReasonPaymentRequired)),
			Message: fmt.Sprintf("payment required: pay %s %s to %s with x402 (%s header; see %s) or use an API key", q.Amount, X402Asset, q.PayTo, HeaderPaymentSignature, HeaderPaymentRequired)}
	}
	p, tx := xr.payload, xr.tx
	acc := p.Accepted
	if acc.Scheme != SchemeExact && acc.Scheme != SchemeUpto {
		return nil, s.x402Refused(xr, refuse(ReasonInvalidScheme, "scheme %q: this gateway takes %q and %q", acc.Scheme, SchemeExact, SchemeUpto))
	}
	if acc.Network != network || tx.ChainID != chainID {
		return nil, s.x402Refused(xr, refuse(ReasonInvalidNetwork, "network %q, transaction for chain %q: this gateway settles on %s", acc.Network, tx.ChainID, network))
	}
	nonce, err := base64.StdEncoding.DecodeString(acc.Extra.Nonce)
	if err != nil {
		return nil, s.x402Refused(xr, refuse(ReasonInvalidPayload, "accepted.extra.nonce is not base64"))
	}
	deadline, err := x.checkNonce(nonce)
	if err != nil {
		return nil, s.x402Refused(xr, err)
	}
	m, ok := tx.Msg.(*ledger.MsgOpenEscrow)
	if !ok || m == nil {
		return nil, s.x402Refused(xr, refuse(ReasonInvalidPayload, "the transaction is %q, not openEscrow", tx.Msg.Kind()))
	}
	if m.Worker != x.PayTo {
		return nil, s.x402Refused(xr, refuse(ReasonInvalidPayload, "the escrow pays %s, not this worker %s", m.Worker, x.PayTo))
	}
	if err := checkScheme(acc.Scheme, m, x.PricePerToken); err != nil {
		return nil, s.x402Refused(xr, err)
	}
	req.Nonce = nonce
	var settle SettleResponse
	var escrowID ledger.Hash
	// gctx ends the generation before its escrow expires (watchEscrow).
	gctx, cancel := context.WithCancel(ctx)
	var watched sync.WaitGroup
	stopWatch := sync.OnceFunc(func() { cancel(); watched.Wait() })
	defer stopWatch()
	req.Bind = func(h ledger.Hash) error {
		if m.Request != h {
			return refuse(ReasonRequestMismatch, "the escrow is for request %s; this request is %s (the request changed since its quote)", m.Request, h)
		}
		if info, _ := s.findModel(req.Model); ledger.Hash(info.ID) != m.ModelID {
			return refuse(ReasonRequestMismatch, "the escrow is for model %s", m.ModelID)
		}
		if err := x.checkFunds(ctx, tx, amount()); err != nil {
			return err
		}
		if !x.claim(nonce, deadline) {
			return refuse(ReasonReplayed, "this quote was already paid")
		}
		res, err := x.submit(ctx, tx)
		if err != nil {
			x.unclaim(nonce)
			return err
		}
		escrowID = ledger.EscrowID(tx.Signer, tx.Nonce)
		settle = settled(tx, res, network)
		setPaymentResponse(xr.h, settle)
		if x.EscrowTimeout > 0 {
			watched.Add(1)
			go func() {
				defer watched.Done()
				x.watchEscrow(gctx, res.Height, cancel)
			}()
		}
		return nil
	}
	res, err := s.o.Backend.Generate(gctx, req, onDelta)
	stopWatch()
	var cut *inference.PartialError
	if errors.As(err, &cut) {
		// Cut short (the payer hung up, or the escrow's window): the
		// tokens generated are paid, their receipt published against
		// the escrow.
		res = cut.Result
		if ctx.Err() == nil {
			// The window, not the payer: an answer that reached its
			// length.
			res.FinishReason, cut = "length", nil
		}
	} else if err != nil {
		var xe *x402Error
		if errors.As(err, &xe) {
			return nil, s.x402Refused(xr, err)
		}
		return nil, err
	}
	if escrowID.IsZero() {
		// A backend that does not call Bind would serve unpaid.
		return nil, fmt.Errorf("x402: receipt %s: the backend generated without binding the request, so it was not paid", res.ReceiptID)
	}
	ch := inference.Charge{ReceiptID: res.ReceiptID, Receipt: res.Receipt, Requester: tx.Signer.String(), Fee: m.Fee, EscrowID: escrowID}
	if rc, perr := receipt.Parse(res.Receipt); perr == nil && rc.Sampling.Steps < res.RequestSteps {
		// Ended early (stop string, hang-up): the escrow is bound to the
		// steps asked for.
		ch.RequestSteps = uint64(res.RequestSteps)
	}
	if m.PricePerToken != 0 {
		ch.Fee = uptoFee(m, res)
		settle.Amount = strconv.FormatUint(ch.Fee, 10)
		settle.Extra["maxAmount"] = strconv.FormatUint(m.Fee, 10)
	}
	if err := x.Submit(ch); err != nil {
		return nil, fmt.Errorf("x402: queueing receipt %s for escrow %s: %w", res.ReceiptID, escrowID, err)
	}
	if cut != nil {
		return nil, cut
	}
	settle.Extra["receiptId"] = res.ReceiptID
	setPaymentResponse(xr.h, settle) // seen unless a stream has started
	return res, nil
}

// uptoFee is what the ledger charges an upto escrow for a receipt: its
// tokens at the escrow's price, at most the escrow's fee.
func uptoFee(m *ledger.MsgOpenEscrow, res *inference.Result) uint64 {
	n := uint64(res.PromptTokens + res.CompletionTokens)
	if n > m.Fee/m.PricePerToken {
		return m.Fee
	}
	return m.PricePerToken * n
}

// checkScheme checks an escrow against the scheme it is paid under: no
// pricePerToken for exact, the quoted price for upto.
func checkScheme(scheme string, m *ledger.MsgOpenEscrow, price uint64) error {
	switch {
	case scheme == SchemeExact && m.PricePerToken != 0:
		return refuse(ReasonInvalidPayload, "an exact payment's escrow has no pricePerToken (it has %d): pay with scheme %q", m.PricePerToken, SchemeUpto)
	case scheme == SchemeUpto && m.PricePerToken < price:
		return refuse(ReasonAmountTooLow, "the escrow's pricePerToken is %d, the price is %d", m.PricePerToken, price)
	case scheme == SchemeUpto && m.PricePerToken != price:
		return refuse(ReasonInvalidPayload, "the escrow's pricePerToken is %d, the price is %d", m.PricePerToken, price)
	}
	return nil
}

// MCPResource is the resource an x402 payment over MCP pays for.
const MCPResource = "mcp://tool/generate"

// TakesPayments reports whether the server takes x402 payments (for the
// MCP tools: mcpserver.Payer).
func (s *Server) TakesPayments() bool { return s.o.X402 != nil }

// PayGenerate runs an MCP generate call made without an API key, paid
// with x402 (mcpserver.Payer): payment is the PaymentPayload as JSON (the
// tool call's _meta["x402/payment"]), nil for a quote. The checks, the
// escrow and the receipt are those of an HTTP request; the quote or the
// reason for a refusal comes back as the PaymentRequired object, the
// settlement as the SettleResponse.
func (s *Server) PayGenerate(ctx context.Context, payment json.RawMessage, req inference.Request) (inference.Payment, error) {
	var out inference.Payment
	if s.o.X402 == nil {
		return out, errors.New("x402: this gateway takes no payments: use an API key")
	}
	xr := &x402Request{h: http.Header{}, url: MCPResource}
	acct := ""
	var err error
	if len(payment) > 0 {
		var p *PaymentPayload
		var tx *ledger.Tx
		if p, tx, err = decodePayment(base64.StdEncoding.EncodeToString(payment)); err == nil {
			err = s.o.X402.quoted(p) // as over HTTP: a quote of this gateway's
		}
		if err == nil {
			xr.payload, xr.tx, acct = p, tx, x402Scope+tx.Signer.String()
		} else {
			err = s.x402Refused(xr, err)
		}
	} else {
		// A quote: at most maxQuoting at once, over HTTP and MCP together.
		select {
		case s.quoting <- struct{}{}:
			defer func() { <-s.quoting }()
		default:
			return out, fmt.Errorf("%w: %d x402 quotes are being computed; retry in a second", inference.ErrBusy, cap(s.quoting))
		}
	}
	if err == nil {
		out.Result, err = s.Generate(context.WithValue(ctx, x402Key{}, xr), acct, req, nil)
	}
	for _, hv := range []struct {
		name string
		dst  *json.RawMessage
	}{{HeaderPaymentRequired, &out.Required}, {HeaderPaymentResponse, &out.Settle}} {
		if v := xr.h.Get(hv.name); v != "" {
			*hv.dst, _ = base64.StdEncoding.DecodeString(v)
		}
	}
	var ae *apiError
	if errors.As(err, &ae) {
		err = errors.New(ae.Message)
	}
	return out, err
}

func (s *Server) setPaymentRequired(xr *x402Request, reason X402Reason, accepts []PaymentRequirements) {
	if accepts == nil {
		accepts = []PaymentRequirements{}
	}
	b, _ := json.Marshal(PaymentRequired{X402Version: X402Version, Error: string(reason),
		Resource: ResourceInfo{URL: xr.url, Description: "Verdict verifiable inference", MimeType: "application/json"}, Accepts: accepts})
	xr.h.Set(HeaderPaymentRequired, base64.StdEncoding.EncodeToString(b))
}

// x402Refused sets PAYMENT-REQUIRED with the reason of a refusal and
// returns the 402.
func (s *Server) x402Refused(xr *x402Request, err error) error {
	var xe *x402Error
	if !errors.As(err, &xe) {
		return err
	}
	s.setPaymentRequired(xr, xe.Reason, nil)
	return &apiError{Status: http.StatusPaymentRequired, Type: "invalid_request_error", Code: strp(string(xe.Reason)), Message: "payment refused: " + xe.Msg}
}

func setPaymentResponse(h http.Header, r SettleResponse) {
	b, _ := json.Marshal(r)
	h.Set(HeaderPaymentResponse, base64.StdEncoding.EncodeToString(b))
}

// checkFunds checks an escrow transaction's fee against amount and the
// payer's ledger nonce and balance.
func (x *X402) checkFunds(ctx context.Context, tx *ledger.Tx, amount uint64) error {
	m := tx.Msg.(*ledger.MsgOpenEscrow)
	if m.Fee < amount {
		return refuse(ReasonAmountTooLow, "the escrow holds %d, the request may cost %d", m.Fee, amount)
	}
	a, err := x.Ledger.Account(ctx, tx.Signer)
	if err != nil {
		return fmt.Errorf("x402: ledger: %w", err)
	}
	if a.Nonce != tx.Nonce {
		return refuse(ReasonReplayed, "transaction nonce %d, the payer's next is %d", tx.Nonce, a.Nonce)
	}
	if a.Balance < m.Fee || a.Balance-m.Fee < tx.Fee {
		return refuse(ReasonInsufficientFunds, "the payer holds %d, the escrow and its fee need %d", a.Balance, m.Fee+tx.Fee)
	}
	return nil
}

// submit broadcasts an escrow transaction and waits for its block.
// watchEscrow cancels a paid generation (ctx) when the chain reaches, less
// the margin, the height at which the escrow that landed at height landed
// expires (EscrowTimeout); it returns then or when ctx ends.
func (x *X402) watchEscrow(ctx context.Context, landed int64, cancel func()) {
	margin := x.EscrowMargin
	if margin == 0 {
		margin = max(x.EscrowTimeout/4, 2)
	}
	cut := landed + int64(x.EscrowTimeout) - int64(min(margin, x.EscrowTimeout))
	poll := cmp.Or(x.HeightPoll, time.Second)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if h, err := x.Ledger.Height(ctx); err == nil && h >= cut {
			cancel()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (x *X402) submit(ctx context.Context, tx *ledger.Tx) (client.Result, error) {
	res, err := x.Ledger.BroadcastCommit(ctx, tx)
	if err != nil {
		if errors.Is(err, client.ErrRejected) {
			return res, refuse(ReasonSettleFailed, "the ledger refused the escrow: %v", err)
		}
		return res, fmt.Errorf("x402: submitting the escrow: %w", err)
	}
	if res.Code != 0 {
		return res, refuse(ReasonSettleFailed, "the escrow failed in block %d: code %d: %s", res.Height, res.Code, res.Log)
	}
	return res, nil
}

func settled(tx *ledger.Tx, res client.Result, network string) SettleResponse {
	return SettleResponse{Success: true, Payer: tx.Signer.String(), Transaction: res.Hash, Network: network, Amount: strconv.FormatUint(tx.Msg.(*ledger.MsgOpenEscrow).Fee, 10),
		Extra: map[string]any{"escrowId": ledger.EscrowID(tx.Signer, tx.Nonce).String(), "height": res.Height}}
}
