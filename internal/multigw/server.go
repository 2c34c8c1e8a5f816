package multigw

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/bits"
	"mime"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
)

// Options configure a Server.
type Options struct {
	Ledger Ledger
	// Accounts maps each API key to the key of the ledger account that
	// pays for its requests. Callers without a key pay with x402
	// themselves.
	Accounts map[string]*keys.Key
	// NoAuth forwards every request without payment (workers run
	// --no-auth); Accounts must then be empty.
	NoAuth bool
	// Refresh is the time between discoveries (default 2 s).
	Refresh time.Duration
	// Net is where the gateway may connect to, for registration files
	// and workers alike (the zero value: public addresses only; see
	// NetPolicy).
	Net NetPolicy
	// HTTP reaches the workers (default: a client that connects only
	// where Net allows, whose dial times out after DialTimeout, which
	// waits HeaderTimeout for response headers and follows no redirect).
	// A client given here is used as it is: Net does not apply to it.
	HTTP *http.Client
	// HeaderTimeout bounds the wait for a worker's response headers once
	// it is paid (default 5 minutes: a non-streamed answer's headers come
	// when it is complete); QuoteTimeout bounds a quote (default 10 s).
	HeaderTimeout, QuoteTimeout time.Duration
	// BodyTimeout bounds reading a worker's non-streamed answer, or a
	// receipt it serves, once its headers came (default 1 minute: such
	// an answer is complete when its headers are sent, so what is left is
	// at most MaxResponseBytes of transfer). A stream is cut when it
	// sends nothing for HeaderTimeout instead.
	BodyTimeout time.Duration
	// MaxFee (0: none) refuses quotes above it.
	MaxFee uint64
	// PendingWait is how long, after a paid worker failed, the gateway
	// waits for the payer's escrow to land on the ledger before it
	// decides whether the request may go to another worker, using the
	// escrow's nonce first if it has not (default 3 s; see the package
	// doc, "No double charge").
	PendingWait time.Duration
	// MaxBodyBytes bounds a request body (default 1 MiB).
	MaxBodyBytes int64
	// DownFor is how long a failed worker is skipped (default 15 s).
	DownFor time.Duration
	// ReceiptWait bounds how long an MCP generate call waits for its
	// receipt's text, which the gateway reads from the ledger once the
	// worker published it (default 5 s; past it the result's receipt is
	// empty and get_receipt reads it later).
	ReceiptWait time.Duration
	// Explorer, when set, is served at gateway.ExplorerPath.
	Explorer http.Handler
	// HTTPRegistration fetches registration files (default: Net's, see
	// Discovery.HTTP).
	HTTPRegistration *http.Client
	Logger           *slog.Logger
}

// Server is the gateway in front of many workers.
type Server struct {
	o       Options
	disc    *Discovery
	router  *Router
	hc      *http.Client
	log     *slog.Logger
	mux     *http.ServeMux
	chainID string

	keys []apiKey

	mu       sync.Mutex
	workers  []Worker
	minStake uint64
	payers   map[ledger.Address]payerMutex
	inFlight map[ledger.Address]*workerBudget // each worker's answers held (readWorker)
	// budget is each worker's MaxWorkerInFlightBytes (tests lower it);
	// onWait, when set, is called when a read waits for room (tests).
	budget int64
	onWait func(ledger.Address)
	served map[string]Worker // receipt id -> worker, bounded
	order  []string
}

type apiKey struct {
	sum [32]byte
	key *keys.Key
}

// maxServed bounds the receipts whose worker the gateway remembers.
const maxServed = 1 << 16

// New returns a server and runs a first discovery.
func New(ctx context.Context, o Options) (*Server, error) {
	if o.Ledger == nil {
		return nil, errors.New("multigw: no ledger")
	}
	if o.NoAuth && len(o.Accounts) > 0 {
		return nil, errors.New("multigw: no-auth with accounts: choose one")
	}
	if !o.NoAuth && len(o.Accounts) == 0 {
		return nil, errors.New("multigw: no accounts: give API keys mapped to the accounts that pay, or NoAuth for workers that serve for free")
	}
	if o.Refresh <= 0 {
		o.Refresh = 2 * time.Second
	}
	if o.HeaderTimeout <= 0 {
		o.HeaderTimeout = 5 * time.Minute
	}
	if o.PendingWait <= 0 {
		o.PendingWait = 3 * time.Second
	}
	if o.QuoteTimeout <= 0 {
		o.QuoteTimeout = 10 * time.Second
	}
	if o.BodyTimeout <= 0 {
		o.BodyTimeout = time.Minute
	}
	if o.ReceiptWait <= 0 {
		o.ReceiptWait = 5 * time.Second
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	hc := o.HTTP
	if hc == nil {
		hc = o.Net.workerClient(o.HeaderTimeout)
	}
	s := &Server{o: o, hc: hc, log: o.Logger, mux: http.NewServeMux(),
		disc:   &Discovery{Ledger: o.Ledger, Net: o.Net, HTTP: o.HTTPRegistration, Logger: o.Logger},
		router: &Router{DownFor: o.DownFor}, payers: map[ledger.Address]payerMutex{}, served: map[string]Worker{},
		inFlight: map[ledger.Address]*workerBudget{}, budget: MaxWorkerInFlightBytes}
	for k, key := range o.Accounts {
		if k == "" || key == nil {
			return nil, errors.New("multigw: empty API key or account key")
		}
		s.keys = append(s.keys, apiKey{sha256.Sum256([]byte(k)), key})
	}
	ch, err := o.Ledger.Chain(ctx)
	if err != nil {
		return nil, fmt.Errorf("multigw: %w", err)
	}
	s.chainID = ch.ChainID
	if err := s.Refresh(ctx); err != nil {
		return nil, err
	}
	s.mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { s.complete(w, r, "/chat/completions") })
	s.mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) { s.complete(w, r, "/completions") })
	s.mux.HandleFunc("GET /v1/models", s.models)
	s.mux.HandleFunc("GET /v1/receipts/{id}", s.receipt)
	s.mux.HandleFunc("GET /v1/workers", s.listWorkers)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "workers": len(s.Workers())})
	})
	mcpInner := s.mcpHandler()
	mcpH := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, s.o.MaxBodyBytes)
		mcpInner.ServeHTTP(w, r)
	})
	s.mux.Handle(MCPPath, mcpH)
	s.mux.Handle(MCPPath+"/", mcpH)
	if o.Explorer != nil {
		s.mux.Handle(gateway.ExplorerPath, o.Explorer)
		s.mux.Handle("GET "+strings.TrimSuffix(gateway.ExplorerPath, "/"), http.RedirectHandler(gateway.ExplorerPath, http.StatusMovedPermanently))
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "invalid_request_error", "unknown_url", fmt.Sprintf("unknown endpoint %s %s", r.Method, trunc(r.URL.Path, 200)))
	})
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Refresh rediscovers the workers.
func (s *Server) Refresh(ctx context.Context) error {
	p, err := s.o.Ledger.Params(ctx)
	if err != nil {
		return fmt.Errorf("multigw: %w", err)
	}
	ws, err := s.disc.Discover(ctx)
	if err != nil {
		return fmt.Errorf("multigw: %w", err)
	}
	s.mu.Lock()
	s.workers, s.minStake = ws, p.MinWorkerStake
	s.mu.Unlock()
	return nil
}

// Run refreshes the workers every Refresh until ctx ends; a failed
// refresh keeps the last pool and is logged.
func (s *Server) Run(ctx context.Context) error {
	t := time.NewTicker(s.o.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := s.Refresh(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("refreshing the workers", "err", err)
			}
		}
	}
}

// Workers returns the workers discovered last, jailed ones included.
func (s *Server) Workers() []Worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.workers)
}

// ranked returns the eligible workers of the model a request names, best
// first, and that model's id.
func (s *Server) ranked(model string) (ledger.Hash, []Worker, bool) {
	s.mu.Lock()
	ws, min := slices.Clone(s.workers), s.minStake
	s.mu.Unlock()
	id, ok := resolve(ws, model)
	if !ok {
		return ledger.Hash{}, nil, false
	}
	var of []Worker
	for _, w := range ws {
		if w.ModelID == id {
			of = append(of, w)
		}
	}
	return id, rank(of, min), true
}

// nameOf is what a request gives to reach w's model: the model's name,
// unless the name resolves to another model (then its id).
func nameOf(ws []Worker, w Worker) string {
	if id, _ := resolve(ws, w.ModelName); id != w.ModelID {
		return w.ModelID.String()
	}
	return w.ModelName
}

// resolve returns the model a request's model string names among the
// workers' models: the one whose id it is (hex, either case), else the
// one registered under it as a name. A ledger holds each name for one
// model; should two models the workers serve bear the same name (a chain
// from before that rule), it names the first registered (lowest height,
// then lowest id), never some of each: a caller asking for a name gets
// one model's work.
func resolve(ws []Worker, model string) (ledger.Hash, bool) {
	var best *Worker
	for i := range ws {
		w := &ws[i]
		if strings.EqualFold(model, w.ModelID.String()) {
			return w.ModelID, true
		}
		if w.ModelName == model && (best == nil || w.ModelHeight < best.ModelHeight ||
			w.ModelHeight == best.ModelHeight && bytes.Compare(w.ModelID[:], best.ModelID[:]) < 0) {
			best = w
		}
	}
	if best == nil {
		return ledger.Hash{}, false
	}
	return best.ModelID, true
}

// payerLock is the lock that orders one payer's escrows.
func (s *Server) payerLock(a ledger.Address) payerMutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.payers[a]
	if m == nil {
		m = make(payerMutex, 1)
		s.payers[a] = m
	}
	return m
}

// payerMutex orders one payer's escrows. Its Lock gives up when the
// request ends: a request waiting behind another of the same payer (held
// until that one's escrow lands or it ends: up to HeaderTimeout when its
// worker stalls) ends when its caller hangs up, instead of waiting on.
type payerMutex chan struct{}

// Lock takes the lock, or returns ctx's error if ctx ends first.
func (m payerMutex) Lock(ctx context.Context) error {
	select {
	case m <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Unlock lets the lock go.
func (m payerMutex) Unlock() { <-m }

func (s *Server) remember(id string, w Worker) {
	// Only a receipt id (64 hex digits) is kept, in the form the receipts
	// route looks up: a worker names its receipt in a header, and a
	// hostile one made the gateway keep megabytes a request.
	h, err := ledger.ParseHash(id)
	if err != nil {
		return
	}
	id = h.String()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.served[id]; ok {
		return
	}
	s.served[id] = w
	s.order = append(s.order, id)
	if len(s.order) > maxServed {
		delete(s.served, s.order[0])
		s.order = s.order[1:]
	}
}

// authenticate returns the payer of the request's API key; nil, nil
// without an Authorization header.
func (s *Server) authenticate(r *http.Request) (*keys.Key, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, nil
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return nil, errors.New("want Authorization: Bearer KEY")
	}
	found := s.keyOf(tok)
	if found == nil {
		return nil, errors.New("invalid API key")
	}
	return found, nil
}

// complete serves a completion: chat or plain.
func (s *Server) complete(w http.ResponseWriter, r *http.Request, path string) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "invalid_request_error", "unsupported_media_type", "Content-Type must be application/json")
		return
	}
	var payer *keys.Key
	if !s.o.NoAuth {
		var err error
		if payer, err = s.authenticate(r); err != nil {
			writeError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", err.Error())
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.o.MaxBodyBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large", fmt.Sprintf("reading the request body: %v", err))
		return
	}
	var top map[string]json.RawMessage
	var model string
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_json", "the body is not a JSON object")
		return
	}
	if err := json.Unmarshal(top["model"], &model); err != nil || model == "" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_value", "model: want the model's name or id")
		return
	}
	id, ranked, known := s.ranked(model)
	if !known {
		writeError(w, http.StatusNotFound, "invalid_request_error", "model_not_found", fmt.Sprintf("no worker serves the model %q (GET /v1/models lists the served models)", trunc(model, 80)))
		return
	}
	if len(ranked) == 0 {
		writeError(w, http.StatusServiceUnavailable, "server_error", "no_worker_available", fmt.Sprintf("every worker serving %q is jailed or under the minimum stake", trunc(model, 80)))
		return
	}
	// Workers name the model by id: their local names may differ.
	top["model"], _ = json.Marshal(id.String())
	body, _ = json.Marshal(top)

	if !s.o.NoAuth && payer == nil {
		s.passX402(w, r, path, body, id, ranked)
		return
	}
	res, wk, err := s.route(r.Context(), id, ranked, path, body, payer, model, requestTokens(top, len(body)))
	if err != nil {
		if r.Context().Err() != nil {
			return
		}
		writeRouteError(w, err)
		return
	}
	s.finish(w, res, wk)
}

// routeError is a request no worker served, as the caller sees it;
// retryAfter (seconds, 0: none) is sent as Retry-After.
type routeError struct {
	status     int
	typ, code  string
	msg        string
	retryAfter int
}

// codeRateLimit is the error code of a request every worker refused as
// busy (429): the one they send.
const codeRateLimit = "rate_limit_exceeded"

// busyError is the answer to a request whose workers are all busy (they
// answered 429, now or within their Retry-After): a 429 whose
// Retry-After is the time until the first of them may be asked again.
func (s *Server) busyError(model string, ranked []Worker, last error) *routeError {
	d := s.router.BusyFor(ranked)
	secs := int((d + time.Second - 1) / time.Second)
	msg := fmt.Sprintf("every worker serving %q is busy: retry in %d s", trunc(model, 80), max(secs, 1))
	if last != nil {
		msg += fmt.Sprintf(" (the last: %v)", last)
	}
	return &routeError{http.StatusTooManyRequests, "requests", codeRateLimit, msg, max(secs, 1)}
}

func (e *routeError) Error() string { return e.msg }

// writeRouteError writes err as an OpenAI-shaped error: a routeError or
// errHeld as it says, anything else as a 500.
func writeRouteError(w http.ResponseWriter, err error) {
	var re *routeError
	var h *errHeld
	switch {
	case errors.As(err, &h):
		w.Header().Set(HeaderAgentID, strconv.FormatUint(h.w.AgentID, 10))
		w.Header().Set(HeaderWorker, h.w.Address.String())
		status, code := http.StatusBadGateway, "worker_failed"
		if h.timeout {
			status, code = http.StatusGatewayTimeout, "worker_timeout"
		}
		writeError(w, status, "server_error", code, h.Error())
	case errors.As(err, &re):
		if re.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(re.retryAfter))
		}
		writeError(w, re.status, re.typ, re.code, re.msg)
	default:
		writeError(w, http.StatusInternalServerError, "server_error", "internal_error", err.Error())
	}
}

// route runs a request on the eligible workers of its model, in the
// router's order, until one answers: unpaid (payer nil: NoAuth), or paid
// from payer's account (attempt). A worker that failed before it could
// have been paid (errDown) passes the request on; one that may have been
// paid (errHeld) ends it. A worker that refused the request unpaid
// (errRefused) passes it on too: when none took it, the first refusal
// is the answer.
func (s *Server) route(ctx context.Context, id ledger.Hash, ranked []Worker, path string, body []byte, payer *keys.Key, model string, tokens uint64) (*http.Response, Worker, error) {
	var p *paying
	if payer != nil {
		addr, err := ledger.ParseAddress(payer.Address())
		if err != nil {
			return nil, Worker{}, err
		}
		p = &paying{key: payer, addr: addr, tokens: tokens, lock: s.payerLock(addr)}
		defer p.release()
	}
	var last error
	var refused refusals
	busy := true // every worker tried refused as busy (or none was: all are)
	for _, wk := range s.router.Order(id, ranked) {
		res, err := s.attempt(ctx, wk, path, body, p)
		if err == nil {
			s.quotedElsewhere(refused)
			return res, wk, nil
		}
		var d *errDown
		var h *errHeld
		var rf *errRefused
		switch {
		case errors.As(err, &h): // before errDown, which it may wrap
			s.log.Warn("worker failed holding the payer's escrow: not retried", "agent", wk.AgentID, "escrow", h.escrow, "err", h.err)
			s.router.MarkDown(wk.Address)
		case errors.As(err, &rf):
			refused = append(refused, rf)
			last, busy = err, false
			continue
		case errors.As(err, &d):
			s.failed(wk, d)
			last, busy = err, busy && d.busy > 0
			continue
		}
		return nil, wk, err
	}
	if len(refused) > 0 {
		return refused[0].response(), refused[0].w, nil
	}
	if busy {
		return nil, Worker{}, s.busyError(model, ranked, last)
	}
	return nil, Worker{}, &routeError{status: http.StatusServiceUnavailable, typ: "server_error", code: "no_worker_available", msg: fmt.Sprintf("no worker serving %q took the request; the last: %v", trunc(model, 80), last)}
}

// failed marks down a worker that failed before answering (errDown), or
// busy one that refused with a 429, so that it is not asked again until
// its Retry-After: every request failing over past a busy worker asked
// it again, as many times as requests came (a caller that sent requests
// as fast as it liked made the gateway send each to every worker, while
// all were busy: TestAttackAnonymousRateFanout).
func (s *Server) failed(wk Worker, d *errDown) {
	switch {
	case d.busy > 0:
		s.log.Info("worker busy, trying the next", "agent", wk.AgentID, "for", d.busy)
		s.router.MarkBusy(wk.Address, d.busy)
	case !d.skip:
		s.log.Warn("worker failed, trying the next", "agent", wk.AgentID, "err", d)
		s.router.MarkDown(wk.Address)
	}
}

// refusals are the workers that refused one request unpaid (errRefused).
type refusals []*errRefused

// quotedElsewhere marks down the workers that refused a request another
// worker then quoted: whatever their reason, the others serve it.
func (s *Server) quotedElsewhere(refused refusals) {
	for _, rf := range refused {
		s.log.Warn("worker refused a request another worker quoted", "agent", rf.w.AgentID, "status", rf.status)
		s.router.MarkDown(rf.w.Address)
	}
}

// finish relays a worker's answer and remembers the receipt.
func (s *Server) finish(w http.ResponseWriter, res *http.Response, wk Worker) {
	s.relay(w, res, wk)
	s.remember(w.Header().Get("X-Verdict-Receipt"), wk)
}

// paying is one request paid from a payer's account: every escrow
// signed for it, on whichever worker, carries the same ledger nonce, so
// they all have the same escrow id (ledger.EscrowID: signer and nonce)
// and the ledger opens at most one of them. The payer's lock is held
// from the first signature until the request ends or its escrow lands.
type paying struct {
	key  *keys.Key
	addr ledger.Address
	// tokens bounds the request's prompt and answer (requestTokens; 0:
	// no bound): a quote above a worker's price times it is refused.
	tokens uint64
	lock   payerMutex
	unlock func() // once; nil until locked
	signed bool
	nonce  uint64
}

func (p *paying) release() {
	if p.unlock != nil {
		p.unlock()
	}
}

// attempt runs the request on one worker: quoted and paid from p's
// account, or without payment (p nil: NoAuth). An errDown lets the
// request go to the next worker; an errHeld ends it.
//
// A paid request goes to the next worker only while the payer's escrow
// for it is not on the ledger: the worker refused the payment (402), or
// failed (unreachable, reset, a 5xx, no answer within HeaderTimeout) and
// its escrow had not landed PendingWait later. The worker had the signed
// escrow all the same, and may land it yet: the gateway first uses its
// nonce with a transaction of the payer's own that changes nothing
// (burn), committed, and the next worker's escrow takes the nonce after,
// so that the copy the worker kept is refused by the ledger and can never
// be paid. When the nonce was used meanwhile, by that worker's escrow, or
// once the escrow is on the ledger, the worker that failed holding it may
// still publish a receipt against it, so the request goes nowhere else
// (errHeld: 504 after a timeout, else 502): the caller pays at most that
// receipt, never two workers for one request.
func (s *Server) attempt(ctx context.Context, wk Worker, path string, body []byte, p *paying) (*http.Response, error) {
	if p == nil {
		return s.post(ctx, wk, path, body, nil)
	}
	q, err := s.quote(ctx, wk, path, body)
	if err != nil {
		return nil, err
	}
	if p.unlock == nil {
		if err := p.lock.Lock(ctx); err != nil {
			return nil, err
		}
		p.unlock = sync.OnceFunc(p.lock.Unlock)
	}
	nonce := int64(-1)
	if p.signed {
		nonce = int64(p.nonce)
	}
	var limit uint64 // the most the request can cost at wk's price
	if p.tokens > 0 {
		hi, lo := bits.Mul64(wk.Price, p.tokens)
		if limit = lo; hi != 0 {
			limit = math.MaxUint64
		}
	}
	sig, tx, err := s.payment(ctx, p.key, q, nonce, limit)
	if err != nil {
		return nil, err
	}
	p.signed, p.nonce = true, tx.Nonce
	escrow := ledger.EscrowID(p.addr, tx.Nonce)
	// The payer's next request waits until this escrow is in a block (the
	// ledger takes an account's transactions in nonce order) or this
	// request has ended.
	landed, stopped, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		if s.waitNonce(ctx, p.addr, tx.Nonce, stopped) {
			close(landed)
			p.unlock()
		}
	}()
	stop := func() { close(stopped); <-done }
	var wrote atomic.Bool
	tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteHeaders: func() { wrote.Store(true) }})
	res, err := s.post(tctx, wk, path, body, http.Header{gateway.HeaderPaymentSignature: {sig}})
	if err == nil && res.StatusCode != http.StatusPaymentRequired {
		stop()
		return res, nil
	}
	if err != nil && ctx.Err() != nil {
		stop()
		return nil, ctx.Err()
	}
	if err == nil {
		// The worker refused the payment (see its PAYMENT-REQUIRED).
		var pr gateway.PaymentRequired
		decodeB64JSON(res.Header.Get(gateway.HeaderPaymentRequired), &pr)
		res.Body.Close()
		err = down("worker %d refused the payment: %s", wk.AgentID, trunc(pr.Error, 80))
	} else if wrote.Load() {
		// The worker may hold the escrow: give it PendingWait to land.
		t := time.NewTimer(s.o.PendingWait)
		select {
		case <-landed:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	stop()
	if !wrote.Load() {
		// The payment never left the gateway.
		return nil, err
	}
	acct, aerr := s.account(ctx, p.addr)
	if aerr != nil {
		return nil, &errHeld{w: wk, escrow: escrow, err: fmt.Errorf("%v; reading the payer's account: %v", err, aerr)}
	}
	var ne net.Error
	timeout := errors.As(err, &ne) && ne.Timeout()
	if acct.Nonce > tx.Nonce {
		return nil, &errHeld{w: wk, escrow: escrow, err: err, timeout: timeout}
	}
	// The worker had the signed escrow and did not land it. Sent on to
	// the next worker at the same nonce, the request could be paid to
	// this one still: it lands its copy just before the next worker's,
	// which the ledger then refuses (the gateway blaming the worker that
	// served), and publishes a receipt for a request it never answered.
	// The nonce is used first, by the payer, for nothing.
	if berr := s.burn(ctx, p, tx.Nonce); berr != nil {
		return nil, &errHeld{w: wk, escrow: escrow, err: fmt.Errorf("%v; %w", err, berr), timeout: timeout, unsure: !errors.Is(berr, errNonceUsed)}
	}
	p.nonce = tx.Nonce + 1
	return nil, err
}

// errNonceUsed is a burn that found its nonce used: the worker that had
// the escrow of that nonce landed it.
var errNonceUsed = errors.New("the payer's nonce was used meanwhile: the worker's escrow landed")

// burn uses the payer's nonce n with a transaction that changes nothing
// but the fee: a send of 1 (a send must move something) from the payer
// to itself, committed before it returns. It fails with errNonceUsed when
// n was used by another transaction, which can only be the escrow a
// worker was given at that nonce (the payer's lock is held), and with
// another error when the nonce could not be had either way (the node
// unreachable, the payer unable to pay the fee): the escrow may still
// land then, so the request must go to no other worker.
func (s *Server) burn(ctx context.Context, p *paying, n uint64) error {
	tx, err := s.o.Ledger.Sign(ctx, p.key.Private, &ledger.MsgSend{To: p.addr, Amount: 1}, 1, int64(n))
	if err != nil {
		return fmt.Errorf("signing a send to the payer itself to use nonce %d: %w", n, err)
	}
	res, err := s.o.Ledger.BroadcastCommit(ctx, tx)
	if err == nil && res.Code != 0 {
		err = &client.FailedError{Height: res.Height, Code: res.Code, Log: res.Log}
	}
	if err != nil {
		if code, ok := client.ErrorCode(err); ok && code == ledger.Code(ledger.ErrNonce) {
			return errNonceUsed
		}
		return fmt.Errorf("using nonce %d with a send to the payer itself: %w", n, err)
	}
	s.log.Info("a worker failed holding the payer's escrow: its nonce used by a send to the payer itself before the next worker is tried",
		"payer", p.addr, "nonce", n, "height", res.Height)
	return nil
}

// errHeld is a paid request whose worker failed once the payer's escrow
// for it was on the ledger, or (unsure) holding that escrow signed when
// its nonce could not be burned: it goes to no other worker.
type errHeld struct {
	w       Worker
	escrow  ledger.Hash
	timeout bool
	unsure  bool
	err     error
}

func (e *errHeld) Error() string {
	held := fmt.Sprintf("after your escrow %s for this request was on the ledger", e.escrow)
	if e.unsure {
		held = fmt.Sprintf("holding your escrow %s for this request, signed, which the gateway could not cancel", e.escrow)
	}
	return fmt.Sprintf("worker %d (%s) failed %s (%v): the request was not sent to another worker, so you pay at most the receipt this worker publishes for that escrow, and the escrow returns to you at its deadline if it publishes none",
		e.w.AgentID, e.w.Address, held, e.err)
}

func (e *errHeld) Unwrap() error { return e.err }

// waitNonce reports true once the payer's account has passed nonce n,
// false when stop is closed or ctx ends first.
func (s *Server) waitNonce(ctx context.Context, a ledger.Address, n uint64, stop <-chan struct{}) bool {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-stop:
			return false
		case <-t.C:
			if acct, err := s.account(ctx, a); err == nil && acct.Nonce > n {
				return true
			}
		}
	}
}

func (s *Server) account(ctx context.Context, a ledger.Address) (ledger.Account, error) {
	var acct ledger.Account
	b, err := s.o.Ledger.Query(ctx, "account/"+a.String(), nil)
	if err != nil {
		return acct, err
	}
	err = json.Unmarshal(b, &acct)
	return acct, err
}

// passX402 serves a caller without an API key, who pays with x402 itself.
func (s *Server) passX402(w http.ResponseWriter, r *http.Request, path string, body []byte, id ledger.Hash, ranked []Worker) {
	res, wk, err := s.routeX402(r.Context(), id, ranked, path, body, r.Header.Get(gateway.HeaderPaymentSignature))
	if err != nil {
		if r.Context().Err() == nil {
			writeRouteError(w, err)
		}
		return
	}
	s.finish(w, res, wk)
}

// routeX402 runs the request of a caller who pays with x402 itself (sig:
// its PAYMENT-SIGNATURE, base64): without a payment it goes, unchanged,
// to the worker the router picks, whose 402 quote names that worker
// (payTo), failing over as route does for a quote (an answer other than
// a 402 is judged by unpaid: a worker's unpaid answer is never relayed);
// with one, to the worker the payment pays (no failover: the payment is
// bound to that worker).
func (s *Server) routeX402(ctx context.Context, id ledger.Hash, ranked []Worker, path string, body []byte, sig string) (*http.Response, Worker, error) {
	if sig == "" {
		var last error
		var refused refusals
		busy := true // as in route
		for _, wk := range s.router.Order(id, ranked) {
			res, err := s.post(ctx, wk, path, body, nil)
			if err == nil {
				if res.StatusCode == http.StatusPaymentRequired {
					s.quotedElsewhere(refused)
					return res, wk, nil
				}
				err = s.unpaid(wk, res)
			}
			var d *errDown
			var rf *errRefused
			switch {
			case errors.As(err, &rf):
				refused = append(refused, rf)
				busy = false
			case errors.As(err, &d):
				s.failed(wk, d)
				busy = busy && d.busy > 0
			default:
				return nil, wk, err
			}
			last = err
		}
		if len(refused) > 0 {
			return refused[0].response(), refused[0].w, nil
		}
		if busy {
			return nil, Worker{}, s.busyError(id.String(), ranked, last)
		}
		return nil, Worker{}, &routeError{status: http.StatusServiceUnavailable, typ: "server_error", code: "no_worker_available", msg: fmt.Sprintf("every worker failed: %v", last)}
	}
	var p gateway.PaymentPayload
	if err := decodeB64JSON(sig, &p); err != nil {
		return nil, Worker{}, &routeError{http.StatusBadRequest, "invalid_request_error", "invalid_payload", fmt.Sprintf("%s: %v", gateway.HeaderPaymentSignature, err), 0}
	}
	for _, wk := range ranked {
		if wk.Address.String() == p.Accepted.PayTo {
			res, err := s.post(ctx, wk, path, body, http.Header{gateway.HeaderPaymentSignature: {sig}})
			if err != nil {
				return nil, wk, &routeError{http.StatusBadGateway, "server_error", "worker_failed", fmt.Sprintf("the worker this payment pays failed: %v (its escrow, if submitted, returns to you at its deadline)", err), 0}
			}
			return res, wk, nil
		}
	}
	return nil, Worker{}, &routeError{http.StatusBadRequest, "invalid_request_error", "unknown_worker", fmt.Sprintf("the payment pays %q, which is not an eligible worker serving this model: ask for a new quote", trunc(p.Accepted.PayTo, 80)), 0}
}

// models lists the models some eligible worker serves.
func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	if !s.o.NoAuth {
		if _, err := s.authenticate(r); err != nil {
			writeError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", err.Error())
			return
		}
	}
	type modelOut struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		OwnedBy string `json:"owned_by"`
		Verdict struct {
			ModelID string `json:"model_id"`
			Workers int    `json:"workers"`
		} `json:"verdict"`
	}
	var data []modelOut
	seen := map[ledger.Hash]int{}
	s.mu.Lock()
	ws, min := slices.Clone(s.workers), s.minStake
	s.mu.Unlock()
	for _, wk := range rank(ws, min) {
		i, ok := seen[wk.ModelID]
		if !ok {
			i = len(data)
			seen[wk.ModelID] = i
			m := modelOut{ID: nameOf(ws, wk), Object: "model", OwnedBy: "verdict"}
			m.Verdict.ModelID = wk.ModelID.String()
			data = append(data, m)
		}
		data[i].Verdict.Workers++
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// listWorkers serves GET /v1/workers: the pool as discovered, with each
// worker's score and state (public: the ledger shows the same).
func (s *Server) listWorkers(w http.ResponseWriter, r *http.Request) {
	type out struct {
		AgentID  uint64  `json:"agent_id"`
		Address  string  `json:"address"`
		Name     string  `json:"name"`
		Endpoint string  `json:"endpoint"`
		ModelID  string  `json:"model_id"`
		Price    uint64  `json:"price"`
		Stake    uint64  `json:"stake"`
		Final    uint64  `json:"final"`
		Slashed  uint64  `json:"slashed"`
		Jailed   bool    `json:"jailed"`
		Score    float64 `json:"score"`
		Eligible bool    `json:"eligible"`
		Down     bool    `json:"down"`
	}
	s.mu.Lock()
	ws, min := slices.Clone(s.workers), s.minStake
	s.mu.Unlock()
	el := map[ledger.Address]bool{}
	for _, wk := range rank(ws, min) {
		el[wk.Address] = true
	}
	list := []out{}
	for _, wk := range ws {
		list = append(list, out{wk.AgentID, wk.Address.String(), wk.Name, wk.Endpoint, wk.ModelID.String(), wk.Price, wk.Stake, wk.Final, wk.Slashed, wk.Jailed,
			wk.Score(), el[wk.Address], s.router.IsDown(wk.Address)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": list})
}

// receipt serves GET /v1/receipts/{id} from the ledger (public once
// published), else from the worker that served it.
func (s *Server) receipt(w http.ResponseWriter, r *http.Request) {
	id := strings.ToLower(r.PathValue("id"))
	h, err := ledger.ParseHash(id)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_value", fmt.Sprintf("a receipt id is 64 hex digits, got %q", trunc(id, 80)))
		return
	}
	rec, found, err := s.o.Ledger.Receipt(r.Context(), h)
	if err == nil && found {
		data, err := s.o.Ledger.ReceiptData(r.Context(), h)
		if err == nil {
			writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "receipt", "status": rec.Shown(), "receipt": json.RawMessage(data)})
			return
		}
	}
	s.mu.Lock()
	wk, ok := s.served[id]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "invalid_request_error", "receipt_not_found", "no receipt "+id+" on the ledger or served here")
		return
	}
	res, err := s.do(r.Context(), wk, http.MethodGet, "/receipts/"+id, nil, nil)
	if err != nil {
		writeError(w, http.StatusBadGateway, "server_error", "worker_failed", fmt.Sprintf("worker %d: %v (the receipt is on the ledger once published)", wk.AgentID, err))
		return
	}
	s.relayReceipt(w, res, wk)
}

// relayReceipt passes on a worker's answer for a receipt it served, as
// JSON the gateway writes itself: the route answers anyone, on the
// gateway's origin (its explorer's too), so a worker's headers (a
// Content-Type of text/html, a year of Cache-Control) and any body that
// is not a JSON value must not reach the caller as they are.
func (s *Server) relayReceipt(w http.ResponseWriter, res *http.Response, wk Worker) {
	defer res.Body.Close()
	b, release, err := s.readWorker(res, wk, MaxReceiptAnswerBytes)
	if err == nil {
		defer release()
		if !json.Valid(b) {
			err = errors.New("its answer is not JSON")
		}
	}
	if errors.Is(err, errNoRoom) {
		writeNoRoom(w, wk, err, "the receipt is on the ledger once published")
		return
	}
	if err != nil {
		writeError(w, http.StatusBadGateway, "server_error", "worker_failed", fmt.Sprintf("worker %d: %v (the receipt is on the ledger once published)", wk.AgentID, err))
		return
	}
	w.Header().Set(HeaderAgentID, strconv.FormatUint(wk.AgentID, 10))
	w.Header().Set(HeaderWorker, wk.Address.String())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// Written within gateway.StreamWriteTimeout a piece, as an answer
	// (CallerPieceBytes): it holds room in the worker's budget until then.
	if err := writeCaller(w, res.StatusCode, func(cw io.Writer) error {
		enc := json.NewEncoder(cw)
		enc.SetEscapeHTML(false)
		return enc.Encode(json.RawMessage(b))
	}); err != nil {
		s.log.Debug("caller did not take the receipt", "agent", wk.AgentID, "err", err)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}
