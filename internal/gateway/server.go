package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/verdictnet/verdict/internal/inference"
)

// Backend runs generations and keeps their receipts (inference.Backend):
// a local worker, or a Pool of workers chosen by stake and reputation.
type Backend = inference.Backend

// StatusFunc returns the ledger status of a receipt ("published",
// "audited", "challenged", "final" or "slashed").
type StatusFunc func(ctx context.Context, id string) (string, error)

// Options configure a Server.
type Options struct {
	Backend Backend
	// Auth checks API keys. New refuses a nil Auth unless NoAuth is set;
	// without Auth every request runs as account "".
	Auth   Authenticator
	NoAuth bool
	// Status gives a receipt's ledger status; nil: "published".
	Status StatusFunc
	// Meter, if set, reserves and charges the fees of generations, and
	// of replays when it is a ReplayMeter (else replays are refused).
	Meter Meter
	// Verifier checks and replays receipts (MCP verify_receipt); nil:
	// the Backend, when it is one (a *worker.Local is both).
	Verifier inference.Verifier
	// Owners records which account paid for each receipt; nil: in
	// memory (the last 200000), NewFileOwners keeps them across restarts.
	Owners Owners
	// PublicReceipts lets every authenticated caller read every receipt;
	// by default a receipt is readable only by the account that paid.
	PublicReceipts bool
	// MaxBodyBytes limits request bodies (default 1 MiB).
	MaxBodyBytes int64
	// IdempotencyBytes bounds the bytes of stored Idempotency-Key
	// responses (default 64 MiB), IdempotencyAccountBytes those of one
	// account (default an eighth of it).
	IdempotencyBytes, IdempotencyAccountBytes int64
	// MCP, if set, builds the MCP handler mounted at /mcp, behind Auth
	// like the API; its tools run generations and read receipts through
	// the gate (the Server) with the caller's account.
	MCP func(gate Gate) http.Handler
	// Registry receives the metrics; nil: a new one.
	Registry *prometheus.Registry
	// ServeMetrics serves the Registry at GET /metrics on this handler,
	// without authentication; otherwise serve MetricsHandler on an
	// address of its own.
	ServeMetrics bool
	Logger       *slog.Logger
	// Registration, if set, is the ERC-8004 registration file of the
	// agent serving this API, served without authentication at
	// RegistrationPath.
	Registration *AgentRegistration
	// X402, if set, takes x402 payments for completion requests sent
	// without an API key (x402.go).
	X402 *X402
	// Now is the clock for "created" fields; nil: time.Now.
	Now func() time.Time
	// Explorer, if set, is the web explorer (package explorer), served
	// without an API key at ExplorerPath: it shows only what the ledger
	// shows anyone.
	Explorer http.Handler
	// AbandonedPrefill bounds, per caller (its account; without one, its
	// client address), the prompt positions the worker computes for
	// requests abandoned before their first output token (nobody pays
	// for them): a bucket draining at this many positions a minute, over
	// which the caller's requests get 429 rate_limit_exceeded with
	// Retry-After (prefill.go). 0: DefaultAbandonedPrefillContexts full
	// contexts of the longest served model; negative: no limit.
	AbandonedPrefill int
}

// ExplorerPath is where Options.Explorer is served.
const ExplorerPath = "/explorer/"

// Gate is what the MCP tools go through: billed generations and receipts
// readable by their owner, for the account of the caller.
type Gate interface {
	Generate(ctx context.Context, account string, req inference.Request, onDelta func(inference.Delta) error) (*inference.Result, error)
	ReadReceipt(ctx context.Context, account, id string) ([]byte, error)
	Status(ctx context.Context, id string) (string, error)
	Verify(ctx context.Context, account string, data []byte, replay bool) (*inference.Verification, error)
}

// Server is the OpenAI-compatible HTTP API.
type Server struct {
	o      Options
	mux    *http.ServeMux
	m      *metrics
	idem   *idemCache
	owners Owners
	log    *slog.Logger
	start  time.Time
	// quoting holds a place for each x402 quote being computed (a chat
	// template rendered, a prompt encoded, for a caller who pays nothing
	// to ask): at most maxQuoting at once.
	quoting chan struct{}
	// prefill bounds each caller's abandoned prefills (prefill.go).
	prefill *prefillBudget
}

// maxQuoting is how many x402 quotes a server computes at once (each a
// template's rendering and a prompt's encoding: up to a second of CPU a
// megabyte, for anyone without a key); beyond, a quote request is refused
// with 503 and Retry-After.
func maxQuoting() int { return max(2, runtime.GOMAXPROCS(0)) }

// New returns a server for o.
func New(o Options) (*Server, error) {
	if o.Backend == nil {
		return nil, errors.New("gateway: no backend")
	}
	if o.Auth == nil && !o.NoAuth {
		return nil, errors.New("gateway: no authentication: give API keys (Options.Auth), or set NoAuth to serve everyone")
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Owners == nil {
		o.Owners = &memOwners{}
	}
	if x := o.X402; x != nil {
		if o.Auth == nil {
			// Without API keys every other route (MCP included) would
			// serve for free: x402 sits beside keys, not instead of them.
			return nil, errors.New("gateway: x402 needs API keys (Options.Auth) for the routes it does not cover")
		}
		if x.Ledger == nil || x.Submit == nil || x.PayTo.IsZero() || x.PricePerToken == 0 {
			return nil, errors.New("gateway: x402 needs a ledger, a submit function, a payTo account and a price")
		}
		if len(x.Secret) == 0 {
			x.Secret = make([]byte, 32)
			rand.Read(x.Secret)
		}
	}
	limit := func() int { return o.AbandonedPrefill }
	if o.AbandonedPrefill == 0 {
		limit = func() int { return defaultAbandonedPrefill(o.Backend) }
	}
	s := &Server{owners: o.Owners, o: o, mux: http.NewServeMux(), m: newMetrics(o.Registry), idem: newIdemCache(o.IdempotencyBytes, o.IdempotencyAccountBytes), log: o.Logger, start: o.Now(),
		quoting: make(chan struct{}, maxQuoting()), prefill: newPrefillBudget(limit, o.Now)}
	s.handle("POST /v1/chat/completions", "chat", s.post(s.chat))
	s.handle("POST /v1/completions", "completions", s.post(s.completions))
	s.handle("GET /v1/models", "models", s.authed(s.models))
	s.handle("GET /v1/models/{model...}", "model", s.authed(s.model))
	s.handle("GET /v1/receipts/{id}", "receipt", s.authed(s.receipt))
	s.handle("GET /healthz", "healthz", s.healthz)
	if o.X402 != nil {
		s.facilitatorRoutes()
	}
	if o.Registration != nil {
		s.handle("GET "+RegistrationPath, "registration", s.registration)
	}
	if o.Explorer != nil {
		s.handle(ExplorerPath, "explorer", o.Explorer.ServeHTTP)
		s.mux.Handle("GET "+strings.TrimSuffix(ExplorerPath, "/"), http.RedirectHandler(ExplorerPath, http.StatusMovedPermanently))
	}
	if o.ServeMetrics {
		s.mux.Handle("GET /metrics", MetricsHandler(o.Registry))
	}
	if o.MCP != nil {
		// MCP takes the same API keys as the OpenAI endpoints; the account
		// reaches the tools as the session's token info, which also binds
		// an MCP session to the account that opened it.
		mcpH := o.MCP(s)
		if o.Auth != nil {
			mcpH = auth.RequireBearerToken(func(ctx context.Context, _ string, _ *http.Request) (*auth.TokenInfo, error) {
				acct, _ := ctx.Value(accountKey{}).(string)
				return &auth.TokenInfo{UserID: acct}, nil
			}, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(mcpH)
		}
		keyed := s.authed(func(w http.ResponseWriter, r *http.Request, acct string) {
			mcpH.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), accountKey{}, acct)))
		})
		h := keyed
		if o.X402 != nil {
			// Without an Authorization header: an anonymous session, whose
			// generate calls pay with x402 (mcpserver.Payer); it cannot
			// use a session opened with a key (the SDK refuses a session
			// whose user differs).
			anon := o.MCP(s)
			h = func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") == "" {
					anon.ServeHTTP(w, r)
					return
				}
				keyed(w, r)
			}
		}
		// Bodies are bounded as the other POSTs' (the SDK alone allows 4 MiB).
		mcpBounded := func(w http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(w, r.Body, o.MaxBodyBytes)
			h(w, r)
		}
		s.handle("/mcp", "mcp", mcpBounded)
		s.handle("/mcp/", "mcp", mcpBounded)
	}
	// The API's paths with a method they do not take: 405.
	for path, allow := range map[string]string{
		"/v1/chat/completions": "POST", "/v1/completions": "POST", "/v1/models": "GET",
		"/v1/models/{model...}": "GET", "/v1/receipts/{id}": "GET", "/healthz": "GET",
	} {
		s.handle(path, "method_not_allowed", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Type: "invalid_request_error", Message: fmt.Sprintf("%s %s is not supported: use %s", r.Method, r.URL.Path, allow), Code: strp("method_not_allowed")})
		})
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Message: fmt.Sprintf("unknown endpoint %s %s", r.Method, r.URL.Path), Code: strp("unknown_url")})
	})
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// handle registers an instrumented route.
func (s *Server) handle(pattern, endpoint string, h http.HandlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		s.m.inFlight.Inc()
		rec := &recorder{ResponseWriter: w}
		h(rec, withClientAddr(r))
		s.m.inFlight.Dec()
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		s.m.requests.WithLabelValues(endpoint, strconv.Itoa(rec.status)).Inc()
		s.m.latency.WithLabelValues(endpoint).Observe(time.Since(t0).Seconds())
		if rec.status >= 500 {
			s.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", time.Since(t0))
		} else {
			s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", time.Since(t0))
		}
	})
}

// MetricsHandler serves a registry's metrics in the Prometheus format.
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// accountKey carries the authenticated account in a request's context.
type accountKey struct{}

// authed checks the API key before h.
func (s *Server) authed(h func(w http.ResponseWriter, r *http.Request, account string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		acct := ""
		if s.o.Auth != nil {
			var err error
			if acct, err = s.o.Auth.Authenticate(r); err != nil {
				writeError(w, &apiError{Status: http.StatusUnauthorized, Type: "invalid_request_error", Message: err.Error(), Code: strp("invalid_api_key")})
				return
			}
		}
		h(w, r, acct)
	}
}

// post reads the body of a POST (with the size limit) and runs h under the
// Idempotency-Key rule.
func (s *Server) post(h func(w http.ResponseWriter, r *http.Request, acct string, body []byte) bool) http.HandlerFunc {
	inner := s.postBody(h)
	authed := s.authed(inner)
	if s.o.X402 == nil {
		return authed
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			authed(w, r)
			return
		}
		// No API key: x402. Without PAYMENT-SIGNATURE the request is
		// quoted (402); with it, paid by the payer's escrow.
		xr := &x402Request{h: w.Header(), url: "http://" + r.Host + r.URL.Path}
		if r.TLS != nil {
			xr.url = "https://" + r.Host + r.URL.Path
		}
		acct := ""
		if hdr := r.Header.Get(HeaderPaymentSignature); hdr != "" {
			p, tx, err := decodePayment(hdr)
			if err == nil {
				// A payment names a quote of this gateway: one it did not
				// issue, or an expired one, is refused before the request
				// is read, rendered and encoded for nothing.
				err = s.o.X402.quoted(p)
			}
			if err != nil {
				writeError(w, s.x402Refused(xr, err).(*apiError))
				return
			}
			xr.payload, xr.tx, acct = p, tx, x402Scope+tx.Signer.String()
		} else {
			select {
			case s.quoting <- struct{}{}:
				defer func() { <-s.quoting }()
			default:
				w.Header().Set("Retry-After", "1")
				writeError(w, &apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Code: strp("quotes_busy"),
					Message: fmt.Sprintf("%d x402 quotes are being computed; retry in a second", cap(s.quoting))})
				return
			}
		}
		inner(w, r.WithContext(context.WithValue(r.Context(), x402Key{}, xr)), acct)
	}
}

// x402Scope prefixes the idempotency scope of an x402 payer (its
// address follows), which any signature of its key gives.
const x402Scope = "x402:"

// postBody reads the body of a POST (with the size limit) and runs h under
// the Idempotency-Key rule.
func (s *Server) postBody(h func(w http.ResponseWriter, r *http.Request, acct string, body []byte) bool) func(w http.ResponseWriter, r *http.Request, acct string) {
	return func(w http.ResponseWriter, r *http.Request, acct string) {
		// A browser may send a cross-site "simple" POST (text/plain,
		// form encoded) without asking first; JSON it may not.
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			writeError(w, &apiError{Status: http.StatusUnsupportedMediaType, Type: "invalid_request_error", Message: fmt.Sprintf("Content-Type must be application/json, got %q", trunc(r.Header.Get("Content-Type"), 80)), Code: strp("unsupported_media_type")})
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.o.MaxBodyBytes))
		if err != nil {
			var mb *http.MaxBytesError
			if errors.As(err, &mb) {
				writeError(w, &apiError{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Message: fmt.Sprintf("request body larger than %d bytes", mb.Limit), Code: strp("request_too_large")})
				return
			}
			writeError(w, invalid("", "", "reading the request body: %v", err))
			return
		}
		key := r.Header.Get("Idempotency-Key")
		if key == "" {
			h(w, r, acct, body)
			return
		}
		if len(key) > MaxIdempotencyKeyLen {
			writeError(w, invalid("", "", "Idempotency-Key longer than %d bytes", MaxIdempotencyKeyLen))
			return
		}
		hash := requestHash(r, body)
		for {
			e, owner := s.idem.begin(acct, key, hash)
			if owner {
				rec := &recorder{ResponseWriter: w, keep: true}
				complete := h(rec, r, acct, body)
				s.idem.finish(acct, key, e, rec, complete && !rec.failed)
				return
			}
			if e.hash != hash {
				writeError(w, &apiError{Status: http.StatusUnprocessableEntity, Type: "invalid_request_error", Message: "this Idempotency-Key was used with a different request", Code: strp("idempotency_key_reused")})
				return
			}
			select {
			case <-e.done:
			case <-r.Context().Done():
				return
			}
			if !e.ok {
				continue // the first attempt failed: run again
			}
			for k, v := range e.header {
				w.Header()[k] = v
			}
			w.Header().Del("Trailer") // a stream's trailer is now a header
			w.Header().Set("Idempotent-Replayed", "true")
			w.WriteHeader(e.status)
			w.Write(e.body)
			s.m.replays.Inc()
			return
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// findModel returns the served model a request names.
func (s *Server) findModel(name string) (inference.ModelInfo, *apiError) {
	for _, m := range s.o.Backend.Models() {
		if m.Name == name || strings.EqualFold(m.ID.String(), name) {
			return m, nil
		}
	}
	return inference.ModelInfo{}, &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Message: fmt.Sprintf("the model %q does not exist (GET /v1/models lists the served models)", name), Param: strp("model"), Code: strp("model_not_found")}
}

func newID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// verdictInfo is the "verdict" object of a completion.
type verdictInfo struct {
	ReceiptID  string `json:"receipt_id"`
	ReceiptURL string `json:"receipt_url"`
	ModelID    string `json:"model_id"`
	Spec       string `json:"spec"`
}

func verdictOf(res *inference.Result) *verdictInfo {
	return &verdictInfo{ReceiptID: res.ReceiptID, ReceiptURL: "/v1/receipts/" + res.ReceiptID, ModelID: res.Model.ID.String(), Spec: res.Model.Spec}
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
	// PromptTokensDetails.CachedTokens: the prompt tokens the worker took
	// from its prefix cache (OpenAI's field; billed as the others, since
	// the receipt and its replay cover the whole prompt).
	PromptTokensDetails promptTokensDetails `json:"prompt_tokens_details"`
}

type promptTokensDetails struct {
	CachedTokens int `json:"cached_tokens"`
}

func usageOf(res *inference.Result) *usage {
	return &usage{res.PromptTokens, res.CompletionTokens, res.PromptTokens + res.CompletionTokens, promptTokensDetails{res.CachedTokens}}
}

func (s *Server) metrics(res *inference.Result) {
	s.m.tokens.WithLabelValues("prompt").Add(float64(res.PromptTokens))
	s.m.tokens.WithLabelValues("completion").Add(float64(res.CompletionTokens))
	s.m.receipts.Inc()
	s.m.generated.WithLabelValues(res.FinishReason).Observe(float64(res.CompletionTokens))
}

func (s *Server) models(w http.ResponseWriter, r *http.Request, _ string) {
	var data []modelObject
	for _, m := range s.o.Backend.Models() {
		data = append(data, s.modelObject(m))
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

func (s *Server) model(w http.ResponseWriter, r *http.Request, _ string) {
	m, aerr := s.findModel(r.PathValue("model"))
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	writeJSON(w, http.StatusOK, s.modelObject(m))
}

type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	Verdict struct {
		ModelID           string `json:"model_id"`
		Spec              string `json:"spec"`
		SystemFingerprint string `json:"system_fingerprint"`
		ContextLength     int    `json:"context_length"`
		Vocab             int    `json:"vocab_size"`
		ChatTemplate      string `json:"chat_template"`
	} `json:"verdict"`
}

func (s *Server) modelObject(m inference.ModelInfo) modelObject {
	o := modelObject{ID: m.Name, Object: "model", Created: s.start.Unix(), OwnedBy: "verdict"}
	o.Verdict.ModelID = m.ID.String()
	o.Verdict.Spec = m.Spec
	o.Verdict.SystemFingerprint = m.Fingerprint
	o.Verdict.ContextLength = m.ContextLen
	o.Verdict.Vocab = m.Vocab
	o.Verdict.ChatTemplate = m.Template.Name()
	return o
}

// receipt serves GET /v1/receipts/{id}.
func (s *Server) receipt(w http.ResponseWriter, r *http.Request, acct string) {
	id := strings.ToLower(r.PathValue("id"))
	if len(id) != 64 || strings.Trim(id, "0123456789abcdef") != "" {
		writeError(w, invalid("id", "", "a receipt id is 64 hex digits, got %q", trunc(id, 80)))
		return
	}
	data, err := s.ReadReceipt(r.Context(), acct, id)
	if errors.Is(err, inference.ErrNotFound) {
		writeError(w, &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Message: "no receipt " + id, Param: strp("id"), Code: strp("receipt_not_found")})
		return
	}
	if err != nil {
		writeError(w, backendError(err, ""))
		return
	}
	status, err := s.Status(r.Context(), id)
	if err != nil {
		writeError(w, backendError(fmt.Errorf("receipt status: %w", err), ""))
		return
	}
	writeJSON(w, http.StatusOK, struct {
		ID      string          `json:"id"`
		Object  string          `json:"object"`
		Status  string          `json:"status"`
		Receipt json.RawMessage `json:"receipt"`
	}{id, "receipt", status, data})
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "models": len(s.o.Backend.Models())})
}
