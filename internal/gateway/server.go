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
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/verdictnet/verdict/internal/worker"
)

// Backend runs generations and keeps their receipts: a local worker in
// phase 1, a client of remote workers chosen by stake and reputation later.
type Backend interface {
	Models() []worker.ModelInfo
	Generate(ctx context.Context, req worker.Request, onDelta func(worker.Delta) error) (*worker.Result, error)
	Receipt(ctx context.Context, id string) ([]byte, error)
}

// StatusFunc returns the ledger status of a receipt ("published",
// "audited", "challenged", "final" or "slashed").
type StatusFunc func(ctx context.Context, id string) (string, error)

// Authenticator checks a request's credentials and names the account they
// belong to. An error means 401.
type Authenticator interface {
	Authenticate(r *http.Request) (account string, err error)
}

// StaticKeys accepts the bearer tokens it maps to account names.
type StaticKeys map[string]string

// Authenticate implements Authenticator.
func (k StaticKeys) Authenticate(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return "", errors.New("missing API key: send it as Authorization: Bearer <key>")
	}
	acct, ok := k[tok]
	if !ok {
		return "", errors.New("incorrect API key provided")
	}
	return acct, nil
}

// ErrInsufficientQuota is returned (wrapped) by a Meter's Check for an
// account that cannot pay; the request gets 429 insufficient_quota.
var ErrInsufficientQuota = errors.New("insufficient quota")

// Meter accounts for what callers use: in later phases, payment per token
// from an escrow on the ledger. Check runs before a generation (an error
// refuses the request); Charge runs once per completed generation, and a
// request repeated with the same Idempotency-Key is not charged again.
type Meter interface {
	Check(ctx context.Context, account, model string) error
	Charge(ctx context.Context, account string, res *worker.Result) error
}

// Options configure a Server.
type Options struct {
	Backend Backend
	// Auth checks API keys; nil: every request is accepted as account "".
	Auth Authenticator
	// Status gives a receipt's ledger status; nil: "published".
	Status StatusFunc
	// Meter, if set, checks and charges accounts.
	Meter Meter
	// MaxBodyBytes limits request bodies (default 1 MiB).
	MaxBodyBytes int64
	// IdempotencyEntries bounds the remembered Idempotency-Key responses
	// (default 10000).
	IdempotencyEntries int
	// MCP, if set, is mounted at /mcp, behind Auth like the API.
	MCP http.Handler
	// Registry receives the metrics; nil: a new one. /metrics serves it.
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// Now is the clock for "created" fields; nil: time.Now.
	Now func() time.Time
}

// Server is the OpenAI-compatible HTTP API.
type Server struct {
	o     Options
	mux   *http.ServeMux
	m     *metrics
	idem  *idemCache
	log   *slog.Logger
	start time.Time
}

// New returns a server for o.
func New(o Options) (*Server, error) {
	if o.Backend == nil {
		return nil, errors.New("gateway: no backend")
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
	s := &Server{o: o, mux: http.NewServeMux(), m: newMetrics(o.Registry), idem: newIdemCache(o.IdempotencyEntries), log: o.Logger, start: o.Now()}
	s.handle("POST /v1/chat/completions", "chat", s.post(s.chat))
	s.handle("POST /v1/completions", "completions", s.post(s.completions))
	s.handle("GET /v1/models", "models", s.authed(s.models))
	s.handle("GET /v1/models/{model...}", "model", s.authed(s.model))
	s.handle("GET /v1/receipts/{id}", "receipt", s.authed(s.receipt))
	s.handle("GET /healthz", "healthz", s.healthz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{}))
	if o.MCP != nil {
		// MCP takes the same API keys as the OpenAI endpoints.
		h := s.authed(func(w http.ResponseWriter, r *http.Request, _ string) { o.MCP.ServeHTTP(w, r) })
		s.handle("/mcp", "mcp", h)
		s.handle("/mcp/", "mcp", h)
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
		h(rec, r)
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
	return s.authed(func(w http.ResponseWriter, r *http.Request, acct string) {
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
		ck := acct + "\x00" + key
		for {
			e, owner := s.idem.begin(ck, hash)
			if owner {
				rec := &recorder{ResponseWriter: w, keep: true}
				complete := h(rec, r, acct, body)
				s.idem.finish(ck, e, rec, complete && !rec.failed)
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
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// findModel returns the served model a request names.
func (s *Server) findModel(name string) (worker.ModelInfo, *apiError) {
	for _, m := range s.o.Backend.Models() {
		if m.Name == name || strings.EqualFold(m.ID.String(), name) {
			return m, nil
		}
	}
	return worker.ModelInfo{}, &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Message: fmt.Sprintf("the model %q does not exist (GET /v1/models lists the served models)", name), Param: strp("model"), Code: strp("model_not_found")}
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

func verdictOf(res *worker.Result) *verdictInfo {
	return &verdictInfo{ReceiptID: res.ReceiptID, ReceiptURL: "/v1/receipts/" + res.ReceiptID, ModelID: res.Model.ID.String(), Spec: res.Model.Spec}
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func usageOf(res *worker.Result) *usage {
	return &usage{res.PromptTokens, res.CompletionTokens, res.PromptTokens + res.CompletionTokens}
}

// check asks the meter whether acct may run a generation on model.
func (s *Server) check(ctx context.Context, acct, model string) *apiError {
	if s.o.Meter == nil {
		return nil
	}
	if err := s.o.Meter.Check(ctx, acct, model); err != nil {
		if errors.Is(err, ErrInsufficientQuota) {
			return &apiError{Status: http.StatusTooManyRequests, Type: "insufficient_quota", Message: err.Error(), Code: strp("insufficient_quota")}
		}
		return backendError(fmt.Errorf("checking the account: %w", err), "")
	}
	return nil
}

// account records a finished generation: metrics, and the charge.
func (s *Server) account(ctx context.Context, acct string, res *worker.Result) {
	if s.o.Meter != nil {
		if err := s.o.Meter.Charge(ctx, acct, res); err != nil {
			s.log.Error("charging a completion failed", "account", acct, "receipt", res.ReceiptID, "err", err)
		}
	}
	s.metrics(res)
}

func (s *Server) metrics(res *worker.Result) {
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

func (s *Server) modelObject(m worker.ModelInfo) modelObject {
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
func (s *Server) receipt(w http.ResponseWriter, r *http.Request, _ string) {
	id := strings.ToLower(r.PathValue("id"))
	if len(id) != 64 || strings.Trim(id, "0123456789abcdef") != "" {
		writeError(w, invalid("id", "", "a receipt id is 64 hex digits, got %q", trunc(id, 80)))
		return
	}
	data, err := s.o.Backend.Receipt(r.Context(), id)
	if errors.Is(err, worker.ErrNotFound) {
		writeError(w, &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Message: "no receipt " + id, Param: strp("id"), Code: strp("receipt_not_found")})
		return
	}
	if err != nil {
		writeError(w, backendError(err, ""))
		return
	}
	status := "published"
	if s.o.Status != nil {
		if status, err = s.o.Status(r.Context(), id); err != nil {
			writeError(w, backendError(fmt.Errorf("receipt status: %w", err), ""))
			return
		}
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
