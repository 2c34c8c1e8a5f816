package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/verdictnet/verdict/internal/fifomap"
	"github.com/verdictnet/verdict/internal/inference"
	"github.com/verdictnet/verdict/internal/receipt"
)

// Authenticator checks a request's credentials and names the account they
// belong to. An error means 401.
type Authenticator interface {
	Authenticate(r *http.Request) (account string, err error)
}

// bearer returns the API key of a request's Authorization header, or an
// error that says what is wrong with the header.
func bearer(r *http.Request) (string, error) {
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	if h == "" {
		return "", errors.New("missing API key: send it as Authorization: Bearer <key>")
	}
	scheme, tok, _ := strings.Cut(h, " ")
	switch {
	case strings.EqualFold(scheme, "Basic"):
		return "", errors.New("HTTP Basic authentication is not supported: send the API key as Authorization: Bearer <key>")
	case !strings.EqualFold(scheme, "Bearer"):
		return "", fmt.Errorf("unsupported authorization scheme %q: send the API key as Authorization: Bearer <key>", trunc(scheme, 20))
	}
	if tok = strings.TrimSpace(tok); tok == "" {
		return "", errors.New("missing API key after Bearer: send it as Authorization: Bearer <key>")
	}
	return tok, nil
}

// keyTable finds the account of an API key in constant time: every key is
// compared (as a SHA-256 digest, so that lengths do not show either), and
// the time taken does not depend on which key matched, if any.
type keyTable struct {
	digests  [][32]byte
	accounts []string
}

func (t *keyTable) add(key, account string) {
	t.digests = append(t.digests, sha256.Sum256([]byte(key)))
	t.accounts = append(t.accounts, account)
}

func (t *keyTable) lookup(key string) (string, bool) {
	d := sha256.Sum256([]byte(key))
	found := -1
	for i := range t.digests {
		eq := subtle.ConstantTimeCompare(d[:], t.digests[i][:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return "", false
	}
	return t.accounts[found], true
}

// StaticKeys accepts the bearer tokens it maps to account names. Keys are
// compared in constant time.
type StaticKeys map[string]string

// Authenticate implements Authenticator.
func (k StaticKeys) Authenticate(r *http.Request) (string, error) {
	tok, err := bearer(r)
	if err != nil {
		return "", err
	}
	var t keyTable
	for key, acct := range k {
		t.add(key, acct)
	}
	acct, ok := t.lookup(tok)
	if !ok {
		return "", errors.New("incorrect API key provided")
	}
	return acct, nil
}

// ErrInsufficientQuota is returned (wrapped) by a Meter's Reserve for an
// account that cannot pay; the request gets 429 insufficient_quota.
var ErrInsufficientQuota = errors.New("insufficient quota")

// Meter accounts for what callers use. Reserve runs once a request's prompt
// is tokenized and before it is generated: it holds, against the account,
// the most the generation can cost (promptTokens plus maxCompletion
// generated tokens), or refuses it with an error wrapping
// ErrInsufficientQuota. Reservations held at once must never together
// exceed what an account can pay, so that concurrent requests cannot
// overdraw it.
type Meter interface {
	Reserve(ctx context.Context, account, model string, promptTokens, maxCompletion int) (Reservation, error)
}

// Reservation is a fee held by Meter.Reserve. Exactly one of Charge (the
// generation finished: charge what it delivered, release the rest) and
// Release (it failed or was cut short: release everything) follows. A
// receipt is charged once, whatever retries happen.
type Reservation interface {
	Charge(ctx context.Context, res *inference.Result) error
	Release()
}

// ReplayMeter is a Meter that also bills replays (MCP verify_receipt with
// replay): work that yields no receipt of its own. ReserveReplay holds, for
// account, the fee of a replay of a receipt of tokens tokens (prompt and
// output), as Reserve does for a generation of that size, or refuses it
// (wrapping ErrInsufficientQuota).
type ReplayMeter interface {
	Meter
	ReserveReplay(ctx context.Context, account string, tokens int) (ReplayReservation, error)
}

// ReplayReservation is a replay's fee held by ReserveReplay: Pay (the
// replay ran) or Release (it did not) follows, once.
type ReplayReservation interface {
	Pay(ctx context.Context) error
	Release()
}

// ErrReplayNotBilled refuses a replay on a gateway whose Meter cannot bill
// it (not a ReplayMeter).
var ErrReplayNotBilled = errors.New("this gateway does not bill replays: verify with replay false (signature only), or replay the receipt yourself with verdict verify")

// Owners remembers which account paid for each receipt: the gateway
// records it when it generates, and reads it when someone asks for the
// receipt.
type Owners interface {
	PutOwner(id, account string) error
	Owner(id string) (account string, found bool, err error)
}

// memOwners keeps the owners of the most recent maxOwners receipts.
type memOwners struct {
	mu sync.Mutex
	m  *fifomap.Map[string, string]
}

const maxOwners = 200000

func (o *memOwners) PutOwner(id, account string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = fifomap.New[string, string](maxOwners)
	}
	if _, ok := o.m.Get(id); !ok {
		o.m.Put(id, account)
	}
	return nil
}

func (o *memOwners) Owner(id string) (string, bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		return "", false, nil
	}
	a, ok := o.m.Get(id)
	return a, ok, nil
}

// FileOwners keeps receipt owners on disk, one small file per receipt
// (named by its id, holding the account name), so that receipts stay
// readable by their owner across restarts.
type FileOwners struct{ dir string }

// NewFileOwners returns the owner store in dir, creating it.
func NewFileOwners(dir string) (*FileOwners, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("receipt owners: %w", err)
	}
	return &FileOwners{dir: dir}, nil
}

func validReceiptID(id string) bool {
	return len(id) == 64 && strings.Trim(id, "0123456789abcdef") == ""
}

// PutOwner implements Owners; the first owner recorded stays.
func (f *FileOwners) PutOwner(id, account string) error {
	if !validReceiptID(id) {
		return fmt.Errorf("receipt owners: bad id %q", trunc(id, 80))
	}
	path := filepath.Join(f.dir, id)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	tmp, err := os.CreateTemp(f.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("receipt owners: %w", err)
	}
	_, err = tmp.WriteString(account)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("receipt owners: %w", err)
	}
	return nil
}

// Owner implements Owners.
func (f *FileOwners) Owner(id string) (string, bool, error) {
	if !validReceiptID(id) {
		return "", false, nil
	}
	b, err := os.ReadFile(filepath.Join(f.dir, id))
	if errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("receipt owners: %w", err)
	}
	return string(b), true, nil
}

// RequestNonceLen is the length of the random nonce the gateway puts in
// every receipt it has generated (the receipt's "nonce", hex).
const RequestNonceLen = 16

// Generate runs a generation for account through the gateway's billing:
// the Meter reserves the most the request can cost once its prompt is
// tokenized (a refusal is returned, wrapping ErrInsufficientQuota), the
// delivered tokens are charged when it completes and the rest released; a
// failed or cancelled generation releases all of it. The receipt is then
// readable by account. A generation cut short after its first token
// (inference.PartialError: the caller hung up or cancelled) is charged for the
// tokens generated and its receipt sent to the ledger like any other; the
// PartialError is returned. The HTTP API and the MCP tools both run their
// generations here.
//
// Every generation gets its own receipt: a request without a nonce is
// given RequestNonceLen random bytes, so that identical requests (same
// prompt, seed and parameters) are distinct receipts, each billed (an
// Idempotency-Key is the way to retry without paying twice).
//
// A caller over its abandoned-prefill budget (Options.AbandonedPrefill) is
// refused before anything runs (wrapping ErrAbandonedPrefill); a
// generation abandoned before its first token (inference.AbandonedError)
// counts against it.
func (s *Server) Generate(ctx context.Context, account string, req inference.Request, onDelta func(inference.Delta) error) (*inference.Result, error) {
	caller := callerOf(ctx, account)
	if err := s.prefill.admit(caller); err != nil {
		s.m.prefillRefused.Inc()
		s.log.Info("refused: abandoned prefills over the budget", "caller", caller, "err", err)
		return nil, err
	}
	res, err := s.generate(ctx, account, req, onDelta)
	if ctx.Err() != nil {
		// The caller went away (not the gateway: an x402 escrow's window
		// ends a generation with the caller still there).
		s.abandoned(caller, err)
	}
	return res, err
}

// generate is Generate once the caller is admitted.
func (s *Server) generate(ctx context.Context, account string, req inference.Request, onDelta func(inference.Delta) error) (*inference.Result, error) {
	// Each account's prompts share the worker's prefix cache only with its
	// own (no caller learns from its time to first token what another
	// account sent), and the worker's batch takes turns between accounts.
	req.Account = account
	if xr, _ := ctx.Value(x402Key{}).(*x402Request); xr != nil && s.o.X402 != nil {
		res, err := s.generateX402(ctx, xr, req, onDelta)
		if cut := (*inference.PartialError)(nil); errors.As(err, &cut) {
			// Cut short and paid for: the payer may read its receipt.
			if perr := s.owners.PutOwner(cut.Result.ReceiptID, account); perr != nil {
				return nil, errors.Join(err, perr)
			}
			s.metrics(cut.Result)
			return nil, err
		}
		if err != nil {
			return nil, err
		}
		if err := s.owners.PutOwner(res.ReceiptID, account); err != nil {
			return nil, err
		}
		s.metrics(res)
		return res, nil
	}
	if s.o.Auth != nil && account == "" {
		// Only an anonymous MCP session (x402) gets here without an
		// account: its generations go through x402 above.
		return nil, fmt.Errorf("%w: no account: use an API key or pay with x402", ErrInsufficientQuota)
	}
	if len(req.Nonce) == 0 {
		req.Nonce = make([]byte, RequestNonceLen)
		if _, err := rand.Read(req.Nonce); err != nil {
			return nil, fmt.Errorf("request nonce: %w", err)
		}
	}
	var resv Reservation
	if s.o.Meter != nil {
		admit := req.Admit
		req.Admit = func(prompt, maxCompletion int) error {
			if admit != nil {
				if err := admit(prompt, maxCompletion); err != nil {
					return err
				}
			}
			r, err := s.o.Meter.Reserve(ctx, account, req.Model, prompt, maxCompletion)
			if err != nil {
				return err
			}
			resv = r
			return nil
		}
	}
	res, err := s.o.Backend.Generate(ctx, req, onDelta)
	var cut *inference.PartialError
	if errors.As(err, &cut) {
		// Cut short (the caller hung up or cancelled): the tokens
		// generated are charged and their receipt goes to the ledger;
		// the caller still gets the error.
		res = cut.Result
		ctx = context.WithoutCancel(ctx)
	} else if err != nil {
		if resv != nil {
			resv.Release()
		}
		return nil, err
	}
	if err := s.owners.PutOwner(res.ReceiptID, account); err != nil {
		if resv != nil {
			resv.Release()
		}
		return nil, err
	}
	if s.o.Meter != nil {
		if resv == nil {
			// A backend that does not call Admit would serve unpaid.
			return nil, fmt.Errorf("receipt %s: the backend generated without admitting the request, so it was not billed", res.ReceiptID)
		}
		if err := resv.Charge(ctx, res); err != nil {
			s.log.Error("charging a completion failed", "account", account, "receipt", res.ReceiptID, "err", err)
			return nil, fmt.Errorf("charging receipt %s: %w", res.ReceiptID, err)
		}
	}
	s.metrics(res)
	if cut != nil {
		s.log.Info("generation cut short: charged the tokens generated", "account", account, "receipt", res.ReceiptID, "prompt_tokens", res.PromptTokens, "completion_tokens", res.CompletionTokens, "cause", cut.Err)
		return nil, err
	}
	return res, nil
}

// Verify checks a receipt for account (MCP verify_receipt). The signature
// check alone (replay false) is free. A replay re-runs the whole
// generation, as costly as generating it, so it is billed like a
// generation of the receipt's size: the Meter (a ReplayMeter) holds
// price x (prompt + output tokens) before the replay and charges it once
// the replay ran (whatever its outcome: the work was done); a receipt that
// is not replayed (bad signature, model not served here) or a replay that
// fails or is cancelled is not charged. Without a Meter replays are free,
// as generations are; a Meter that is not a ReplayMeter refuses them
// (ErrReplayNotBilled).
func (s *Server) Verify(ctx context.Context, account string, data []byte, replay bool) (*inference.Verification, error) {
	v := s.o.Verifier
	if v == nil {
		v, _ = s.o.Backend.(inference.Verifier)
	}
	if v == nil {
		return nil, errors.New("this gateway does not verify receipts")
	}
	if replay && s.o.Auth != nil && account == "" {
		return nil, fmt.Errorf("%w: a replay is billed to an account: use an API key (replay false checks the signature, free)", ErrInsufficientQuota)
	}
	if !replay || s.o.Meter == nil {
		return v.Verify(ctx, data, replay)
	}
	r, err := receipt.ParseAnySpelling(data)
	if err != nil {
		return v.Verify(ctx, data, false) // reports the receipt's fault, replays nothing
	}
	rm, ok := s.o.Meter.(ReplayMeter)
	if !ok {
		return nil, ErrReplayNotBilled
	}
	tokens := len(r.Prompt) + len(r.Output)
	resv, err := rm.ReserveReplay(ctx, account, tokens)
	if err != nil {
		return nil, err
	}
	out, err := v.Verify(ctx, data, true)
	if err != nil || !out.Replayed {
		resv.Release()
		return out, err
	}
	if err := resv.Pay(context.WithoutCancel(ctx)); err != nil {
		s.log.Error("charging a replay failed", "account", account, "receipt", out.ID, "err", err)
		return nil, fmt.Errorf("charging the replay of receipt %s: %w", out.ID, err)
	}
	s.m.tokens.WithLabelValues("replayed").Add(float64(tokens))
	return out, nil
}

// ReadReceipt returns a stored receipt if account may read it: the account
// that paid for it, anyone when the gateway has no authentication or
// PublicReceipts is set. Another account's receipt is inference.ErrNotFound,
// as an unknown one is, so that ids do not show what exists.
func (s *Server) ReadReceipt(ctx context.Context, account, id string) ([]byte, error) {
	id = strings.ToLower(id)
	if s.o.Auth != nil && !s.o.PublicReceipts {
		owner, found, err := s.owners.Owner(id)
		if err != nil {
			return nil, err
		}
		if !found || subtle.ConstantTimeCompare([]byte(owner), []byte(account)) != 1 {
			return nil, fmt.Errorf("%w: receipt %s", inference.ErrNotFound, id)
		}
	}
	return s.o.Backend.Receipt(ctx, id)
}

// Status returns a receipt's ledger status ("published" without a ledger).
func (s *Server) Status(ctx context.Context, id string) (string, error) {
	if s.o.Status == nil {
		return "published", nil
	}
	return s.o.Status(ctx, id)
}

// Server timeouts (HTTPServer). There is no write timeout for a whole
// response: a streamed completion or an MCP event stream may run for
// minutes; each write of a streamed completion has StreamWriteTimeout
// instead, so that a stream whose client stops reading ends.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 60 * time.Second // the whole request, body included
	IdleTimeout       = 120 * time.Second
	MaxHeaderBytes    = 64 << 10
)

// HTTPServer returns an http.Server for h with the gateway's timeouts:
// slow or idle clients are cut off, long generations and streams are not.
func HTTPServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: ReadHeaderTimeout, ReadTimeout: ReadTimeout, IdleTimeout: IdleTimeout, MaxHeaderBytes: MaxHeaderBytes}
}
