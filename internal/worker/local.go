package worker

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verdictnet/verdict/internal/audit"
	"github.com/verdictnet/verdict/internal/chat"
	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/generate"
	"github.com/verdictnet/verdict/internal/gguf"
	"github.com/verdictnet/verdict/internal/inference"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/modelid"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/scheduler"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

// The request, result and error types are internal/inference's; these
// names stay for the worker's callers and its own files.
type (
	// ModelInfo is inference.ModelInfo.
	ModelInfo = inference.ModelInfo
	// Request is inference.Request.
	Request = inference.Request
	// Alt is inference.Alt.
	Alt = inference.Alt
	// TokenLogprob is inference.TokenLogprob.
	TokenLogprob = inference.TokenLogprob
	// Delta is inference.Delta.
	Delta = inference.Delta
	// Result is inference.Result.
	Result = inference.Result
	// Verification is inference.Verification.
	Verification = inference.Verification
)

// Errors a generation can fail with (inference's); callers test them with
// errors.Is.
var (
	ErrUnknownModel  = inference.ErrUnknownModel
	ErrContextLength = inference.ErrContextLength
	ErrInvalid       = inference.ErrInvalid
	ErrBusy          = inference.ErrBusy
)

// Finish reasons, as OpenAI names them, and FinishCancelled for a
// generation cut short (PartialError).
const (
	FinishStop      = inference.FinishStop
	FinishLength    = inference.FinishLength
	FinishCancelled = inference.FinishCancelled
)

// AbandonedError is inference.AbandonedError: a generation whose caller
// went away before its first token.
type AbandonedError = inference.AbandonedError

// PartialError is inference.PartialError: a generation cut short, with
// the receipt of the tokens generated so far.
type PartialError = inference.PartialError

// deltaError is an error of the caller's onDelta.
type deltaError struct{ err error }

func (e *deltaError) Error() string { return e.err.Error() }
func (e *deltaError) Unwrap() error { return e.err }

// Fingerprint is inference.Fingerprint.
func Fingerprint(id merkle.Hash, spec string) string { return inference.Fingerprint(id, spec) }

// Config configures a Local worker.
type Config struct {
	ModelPath     string
	TokenizerPath string
	// Name is the model name served; default: DefaultName.
	Name    string
	Threads int
	// Key signs receipts; nil: a fresh key for this process.
	Key *keys.Key
	// Store keeps the receipts; nil: NewMemStore(0).
	Store Store
	// MaxConcurrent generations run at once, as one continuous batch
	// (default 16, see internal/scheduler); up to MaxQueue more wait
	// (default 64); beyond that Generate fails with ErrBusy.
	MaxConcurrent, MaxQueue int
	// KVBudget is the key/value cache, in bytes, the running generations
	// share (default: MaxConcurrent full contexts); each holds the cache
	// pages of the positions it has filled, its prompt's from admission.
	// One that needs a page when the budget is full takes it from the
	// latest admitted generations, which compute their caches again
	// later (same answers and receipts: scheduler.Config.KVBudget). A
	// request whose prompt and max_tokens could never fit fails with
	// ErrContextLength.
	KVBudget int64
	// KVPage is the positions of a key/value cache page, the steps in
	// which a generation takes memory from KVBudget (0: 256; never
	// changes a result).
	KVPage int
	// HugeWeights makes Open copy the model's weights out of the file's
	// mapping into memory in huge pages (model.CopyToHugePages: decode
	// 3-12% faster; the process then holds the weights as its own memory
	// instead of sharing the file's pages). Never changes a result.
	HugeWeights bool
	// PrefixCache is the most bytes of KVBudget that finished
	// generations' caches may keep, so that a prompt starting with the
	// same tokens (a system prompt; a conversation's earlier turns, which
	// the next request sends again) takes their keys, values and trace
	// instead of computing them: the same tokens, logits and receipt as
	// computing them (scheduler.Config.PrefixCache). Running generations
	// come first: kept caches give way, least recently used first.
	// 0: a quarter of KVBudget, at most 1 GiB; negative: none.
	PrefixCache int64
	// Speculate is the most draft tokens a generation feeds after each
	// token it samples (prompt lookup decoding, scheduler.Config.Speculate):
	// every one the sampler picks saves a step, with the same tokens,
	// logits and receipt. 0: none.
	Speculate int
	// KV is the precision of the key/value cache: engine.KVF32 (the
	// default, engine.SpecVersion) or engine.KVF16 (engine.SpecKV16: half
	// the memory and the attention's reads; the model is then served
	// under its id for that spec, modelid.OfSpec, and its receipts replay
	// only with that spec).
	KV engine.KVType
	// ChunkTokens is the most prompt tokens prefilled per batch step
	// (default 128).
	ChunkTokens int
	// MaxReplayPositions is the most positions (prompt and output tokens
	// but the last) a replay (Verify) computes: a replay holds its whole
	// key/value cache and trace, and a receipt may span up to
	// engine.MaxPositions (2^20: on a 1B model, 64 GiB of f32 cache), so
	// that anyone who can hand this worker a receipt (a verifier following
	// the ledger, a gateway's MCP verify_receipt) could otherwise make it
	// run out of memory. A longer receipt is not replayed: its
	// Verification says so (Replayed false; a gateway charges nothing).
	// 0: the model file's context length.
	MaxReplayPositions int
	Logger             *slog.Logger
	// CheatForTests, when set, makes a dishonest worker for tests: it
	// computes with a copy of the model whose attention norms are one ulp
	// off in one element, while signing receipts under the real model's id.
	CheatForTests bool
	// ForcedOutputForTests, when set, makes a worker for tests of what
	// reads answers (tool-call parsing): every generation answers this
	// text, then EOS, whatever the model computes (the logits are
	// overwritten before sampling, so its receipts do not replay).
	ForcedOutputForTests string
	// PrefilledForTests, when set, is called for tests of hang-ups before
	// the first token: on the generation's goroutine once its prompt is
	// computed (the logits of its last position in hand) and before its
	// first token is sampled, with its context and account.
	PrefilledForTests func(ctx context.Context, account string)
}

// Local runs generations in this process.
type Local struct {
	info  ModelInfo
	m     *model.Model
	tok   *tokenizer.Tokenizer
	e     *engine.Engine
	key   *keys.Key
	store Store
	log   *slog.Logger
	stops []int
	// forced: see Config.ForcedOutputForTests.
	forced []int
	// prefilled: Config.PrefilledForTests.
	prefilled func(ctx context.Context, account string)
	sched     *scheduler.Scheduler

	// Replays (Verify) run beside the batch, a few at a time.
	sem     chan struct{}
	mu      sync.Mutex
	waiting int
	maxWait int
	// maxReplay is Config.MaxReplayPositions, its default applied.
	maxReplay int
}

// DefaultName is the name a worker serves the model file at path under
// when it is given none: the file name without its extension, and under
// the binary16 cache (another spec, so another model id) that name with
// "+kv16" after it. A ledger holds each name for one model id (the first
// to register it), so that a name a caller asks for designates one model.
func DefaultName(path string, kv engine.KVType) string {
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	if kv == engine.KVF16 {
		name += "+kv16"
	}
	return name
}

// Open loads the model of cfg and returns a worker serving it.
func Open(cfg Config) (*Local, error) {
	m, err := model.Load(cfg.ModelPath, cfg.TokenizerPath)
	if err != nil {
		return nil, err
	}
	if cfg.HugeWeights {
		if n := m.CopyToHugePages(); n > 0 && cfg.Logger != nil {
			cfg.Logger.Info("weights copied into huge pages", "model", cfg.ModelPath, "bytes", n)
		}
	}
	w, err := New(m, cfg)
	if err != nil {
		m.Close()
		return nil, err
	}
	return w, nil
}

// New returns a worker serving the loaded model m; Close closes m.
func New(m *model.Model, cfg Config) (*Local, error) {
	if m.Vocab == nil {
		return nil, fmt.Errorf("%s: no tokenizer", m.Path)
	}
	tok, err := tokenizer.New(m.Vocab)
	if err != nil {
		return nil, fmt.Errorf("%s: tokenizer: %w", m.Path, err)
	}
	spec := cfg.KV.Spec()
	id, err := modelid.OfSpec(m, spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Path, err)
	}
	em := m
	if cfg.CheatForTests {
		em = cheatModel(m)
	}
	e, err := engine.New(em, engine.Options{Threads: cfg.Threads, TraceLayers: traceLayers, KV: cfg.KV, PagePositions: cfg.KVPage})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Path, err)
	}
	key := cfg.Key
	if key == nil {
		if key, err = keys.GenerateKey(rand.Reader); err != nil {
			e.Close()
			return nil, err
		}
	}
	name := cfg.Name
	if name == "" {
		name = DefaultName(m.Path, cfg.KV)
	}
	src := ""
	if m.Format == "gguf" {
		src, err = ggufTemplate(m.Path)
		if err != nil {
			e.Close()
			return nil, err
		}
	}
	tmpl, err := chat.ForVocab(src, m.Vocab)
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("%s: %w", m.Path, err)
	}
	store := cfg.Store
	if store == nil {
		store = NewMemStore(0)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	queue := cfg.MaxQueue
	if queue <= 0 {
		queue = scheduler.DefaultMaxQueue
	}
	w := &Local{
		info: ModelInfo{
			Name: name, ID: id, Spec: spec, Fingerprint: Fingerprint(id, spec),
			ContextLen: m.Config.ContextLen, Vocab: m.Config.Vocab, Template: tmpl, Format: m.Format, Tokenizer: tok,
		},
		m: m, tok: tok, e: e, key: key, store: store, log: log,
		sem: make(chan struct{}, replays), maxWait: queue, maxReplay: cmp.Or(cfg.MaxReplayPositions, m.Config.ContextLen),
		sched: scheduler.New(e, scheduler.Config{MaxBatch: cfg.MaxConcurrent, MaxQueue: queue, KVBudget: cfg.KVBudget, ChunkTokens: cfg.ChunkTokens, PrefixCache: cfg.PrefixCache, Speculate: cfg.Speculate}),
	}
	// Generation stops on BOS (as llama2.c) and on every end-of-generation
	// token: EOS, EOT, EOM and those llama.cpp recognises by text.
	for _, t := range append([]int{m.Vocab.BOS}, tok.EOG()...) {
		if t >= 0 && t < m.Config.Vocab && !slices.Contains(w.stops, t) {
			w.stops = append(w.stops, t)
		}
	}
	slices.Sort(w.stops)
	w.prefilled = cfg.PrefilledForTests
	if cfg.ForcedOutputForTests != "" {
		if w.forced, err = tok.Encode(cfg.ForcedOutputForTests, false); err != nil {
			e.Close()
			return nil, fmt.Errorf("forced output: %w", err)
		}
	}
	return w, nil
}

// forceToken makes forced[j] (EOS past the end) the only likely token.
func forceToken(logits []float32, forced []int, j, eos int) {
	t := eos
	if j < len(forced) {
		t = forced[j]
	}
	for i := range logits {
		logits[i] = -1e9
	}
	if t >= 0 && t < len(logits) {
		logits[t] = 1e9
	}
}

// ggufTemplate reads tokenizer.chat_template from a GGUF file ("" when it
// has none).
func ggufTemplate(path string) (string, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if !f.Has("tokenizer.chat_template") {
		return "", nil
	}
	s, err := f.String("tokenizer.chat_template")
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// replays is the most receipt replays (Verify) run at once.
const replays = 2

// Close stops the batch and releases the engine and the model.
func (w *Local) Close() error {
	w.sched.Close()
	w.e.Close()
	return w.m.Close()
}

// Register adds the batch's metrics (scheduler.Collector) to reg.
func (w *Local) Register(reg prometheus.Registerer) error {
	return reg.Register(scheduler.NewCollector(w.sched.Stats))
}

// BatchStats reports the continuous batch: its size, queue, KV cache use
// and throughput.
func (w *Local) BatchStats() scheduler.Stats { return w.sched.Stats() }

// Key returns the key that signs receipts.
func (w *Local) Key() *keys.Key { return w.key }

// Models lists the served models.
func (w *Local) Models() []ModelInfo { return []ModelInfo{w.info} }

// lookup finds a model by name or hex id.
func (w *Local) lookup(name string) (ModelInfo, bool) {
	if name == w.info.Name || strings.EqualFold(name, w.info.ID.String()) {
		return w.info, true
	}
	return ModelInfo{}, false
}

// Receipt returns a stored receipt by hex id.
func (w *Local) Receipt(ctx context.Context, id string) ([]byte, error) {
	return w.store.Get(strings.ToLower(id))
}

func (w *Local) acquire(ctx context.Context) (func(), error) {
	select {
	case w.sem <- struct{}{}:
		return func() { <-w.sem }, nil
	default:
	}
	w.mu.Lock()
	if w.waiting >= w.maxWait {
		w.mu.Unlock()
		return nil, fmt.Errorf("%w: %d generations running and %d waiting", ErrBusy, cap(w.sem), w.waiting)
	}
	w.waiting++
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.waiting--
		w.mu.Unlock()
	}()
	select {
	case w.sem <- struct{}{}:
		return func() { <-w.sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Prompt returns the prompt tokens of a request.
func (w *Local) Prompt(req *Request) ([]int, error) {
	if req.Chat != nil {
		text := req.Chat.Text()
		if err := w.fits(w.tok.MinTokens(text), len(text)); err != nil {
			return nil, err
		}
		out, err := req.Chat.Encode(w.tok)
		if err != nil {
			return nil, fmt.Errorf("%w: prompt: %v", ErrInvalid, err)
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%w: empty prompt", ErrInvalid)
		}
		return out, nil
	}
	if req.Segments == nil {
		if len(req.Tokens) == 0 {
			return nil, fmt.Errorf("%w: empty prompt", ErrInvalid)
		}
		for i, t := range req.Tokens {
			if t < 0 || t >= w.info.Vocab {
				return nil, fmt.Errorf("%w: prompt token %d at index %d is outside the vocabulary of %d", ErrInvalid, t, i, w.info.Vocab)
			}
		}
		return append([]int(nil), req.Tokens...), nil
	}
	least, size := 0, 0
	for _, s := range req.Segments {
		least, size = least+w.tok.MinTokens(s.Text), size+len(s.Text)
	}
	if err := w.fits(least, size); err != nil {
		return nil, err
	}
	var out []int
	eos := w.m.Vocab.EOS
	for i, s := range req.Segments {
		ts, err := w.tok.Encode(s.Text, s.BOS)
		if err != nil {
			return nil, fmt.Errorf("%w: prompt segment %d: %v", ErrInvalid, i, err)
		}
		out = append(out, ts...)
		if s.EOS && eos >= 0 {
			out = append(out, eos)
		}
		if len(out) > w.info.ContextLen {
			break // too long already; the caller reports it
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: empty prompt", ErrInvalid)
	}
	return out, nil
}

// fits refuses a prompt of size bytes that gives at least least tokens
// (tokenizer.MinTokens) when they could not fit the context, before it is
// encoded: a text of megabytes (a template's rendering is bounded at 16
// MiB) costs seconds to encode, and would be refused anyway.
func (w *Local) fits(least, size int) error {
	if least > w.info.ContextLen {
		return fmt.Errorf("%w: this model's maximum context length is %d tokens, the prompt (%d bytes) has %d or more", ErrContextLength, w.info.ContextLen, size, least)
	}
	return nil
}

// errStopString ends a generation on a stop string.
var errStopString = errors.New("stop string")

// Generate runs a request. onDelta, if not nil, sees the text as it is
// produced (and the log-probabilities when asked); an error from it aborts
// the generation. The receipt is signed and stored before Generate returns.
func (w *Local) Generate(ctx context.Context, req Request, onDelta func(Delta) error) (*Result, error) {
	info, ok := w.lookup(req.Model)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownModel, req.Model)
	}
	if err := req.Sampler.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if req.MaxTokens < 0 {
		return nil, fmt.Errorf("%w: max tokens %d is negative", ErrInvalid, req.MaxTokens)
	}
	if req.TopLogprobs < 0 || req.TopLogprobs > MaxTopLogprobs {
		return nil, fmt.Errorf("%w: top logprobs %d out of range [0, %d]", ErrInvalid, req.TopLogprobs, MaxTopLogprobs)
	}
	if len(req.Nonce) > receipt.MaxNonceLen {
		return nil, fmt.Errorf("%w: nonce of %d bytes, at most %d", ErrInvalid, len(req.Nonce), receipt.MaxNonceLen)
	}
	for i, s := range req.Stop {
		if s == "" {
			return nil, fmt.Errorf("%w: stop[%d] is empty", ErrInvalid, i)
		}
	}
	prompt, err := w.Prompt(&req)
	if err != nil {
		return nil, err
	}
	ctxLen := info.ContextLen
	if len(prompt) > ctxLen {
		return nil, fmt.Errorf("%w: this model's maximum context length is %d tokens, the prompt has %d or more", ErrContextLength, ctxLen, len(prompt))
	}
	steps := ctxLen
	if req.MaxTokens > 0 && req.MaxTokens-1 < ctxLen-len(prompt) {
		steps = len(prompt) + req.MaxTokens - 1
	}
	// Refused by the batch at once (it could never fit the key/value
	// budget, or the queue is full): said before the request is admitted
	// for billing and its payment bound (an x402 escrow goes to the ledger
	// at Bind, and would stay locked until it expired).
	if err := w.sched.Check(req.Account, len(prompt), steps); err != nil {
		switch {
		case errors.Is(err, scheduler.ErrTooLarge):
			return nil, fmt.Errorf("%w: %v", ErrContextLength, err)
		case errors.Is(err, scheduler.ErrBusy):
			return nil, fmt.Errorf("%w: %v", ErrBusy, err)
		}
		return nil, err
	}
	if req.Admit != nil {
		if err := req.Admit(len(prompt), steps-len(prompt)+1); err != nil {
			return nil, err
		}
	}
	requestSteps := audit.EffectiveSteps(steps, ctxLen)
	if req.Bind != nil {
		p := req.Sampler
		h := ledger.RequestHash(&receipt.Receipt{Model: info.ID, Nonce: req.Nonce, Prompt: prompt,
			Sampling: receipt.Sampling{Temperature: p.Temperature, TopK: p.TopK, TopP: p.TopP, Seed: p.Seed, Steps: requestSteps, Stop: w.stops}})
		if err := req.Bind(h); err != nil {
			return nil, err
		}
	}

	rec := audit.NewRecorder(w.m.Config, prompt)
	dec := w.tok.NewStreamDecoder()
	// Prime the decoder with the last prompt token, so a leading space
	// after BOS is handled as in the whole text.
	if _, err := dec.Next(prompt[len(prompt)-1]); err != nil {
		return nil, fmt.Errorf("decoding the prompt: %w", err)
	}
	dec.Flush()
	match := &stopMatcher{stops: req.Stop}
	var text strings.Builder
	var lps []TokenLogprob
	var lp logprobs
	prev := prompt[len(prompt)-1]
	stopString := false
	unsent := 0 // tokens generated since the last delta
	emit := func(s string, tl []TokenLogprob) error {
		text.WriteString(s)
		if onDelta != nil && (s != "" || len(tl) > 0) {
			n := unsent
			unsent = 0
			if err := onDelta(Delta{Text: s, Logprobs: tl, Tokens: n}); err != nil {
				return &deltaError{err}
			}
		}
		return nil
	}
	// A cancelled Run returns while the batch may still be tracing its
	// next position into rec; the gate ends the tracing first.
	trace := &traceGate{t: rec}
	greq := generate.Request{
		Prompt: prompt, Steps: steps, Sampler: req.Sampler, StopTokens: w.stops, Trace: trace, Account: req.Account,
		// The receipt commits to, and logprobs read, only the vectors
		// output tokens are sampled from.
		OutputLogitsOnly: true,
		OnLogits: func(pos int, logits []float32) error {
			if w.forced != nil && pos >= len(prompt)-1 {
				forceToken(logits, w.forced, pos-(len(prompt)-1), w.m.Vocab.EOS)
			}
			// Hashed beside the next step; the engine's vector is
			// this generation's and nobody changes it after this.
			rec.LogitsAsync(pos, logits)
			if req.Logprobs && pos >= len(prompt)-1 {
				lp.set(logits)
			}
			if w.prefilled != nil && pos == len(prompt)-1 {
				w.prefilled(ctx, req.Account)
			}
			return nil
		},
		OnToken: func(pos, t int) error {
			var tl []TokenLogprob
			if req.Logprobs {
				a, err := w.alt(prev, t, &lp)
				if err != nil {
					return err
				}
				e := TokenLogprob{Alt: a}
				for _, id := range lp.top(req.TopLogprobs) {
					b, err := w.alt(prev, id, &lp)
					if err != nil {
						return err
					}
					e.Top = append(e.Top, b)
				}
				lps = append(lps, e)
				tl = []TokenLogprob{e}
			}
			prev = t
			unsent++
			if slices.Contains(w.stops, t) {
				return emit("", tl)
			}
			b, err := dec.Next(t)
			if err != nil {
				return err
			}
			s, hit := match.push(string(b))
			if err := emit(s, tl); err != nil {
				return err
			}
			if hit {
				stopString = true
				return errStopString
			}
			return nil
		},
	}
	res, err := w.sched.Run(ctx, greq)
	trace.stop()
	finish := FinishLength
	var cut error // what cut the generation short
	var de *deltaError
	switch {
	case stopString && errors.Is(err, errStopString):
		finish = FinishStop
		steps = len(prompt) + len(res.Output) - 1
	case err != nil && len(res.Output) > 0 && (ctx.Err() != nil || errors.As(err, &de)):
		// Cut short: a receipt for the tokens generated, as for a stop
		// string (every one of them was sampled from recorded logits
		// after the positions before it were traced).
		finish, cut = FinishCancelled, err
		if de != nil {
			cut = de.err
		}
		steps = len(prompt) + len(res.Output) - 1
	case err != nil && len(res.Output) == 0 && ctx.Err() != nil:
		// Gone before the first token: no receipt, the prompt computed
		// for nothing (the gateway bounds it per caller).
		w.log.Debug("generation abandoned before its first token", "model", info.Name, "prompt_tokens", len(prompt), "computed", res.PromptComputed, "cached", res.CachedPrompt)
		return nil, &AbandonedError{PromptComputed: res.PromptComputed, Err: err}
	case errors.Is(err, generate.ErrPromptTooLong), errors.Is(err, scheduler.ErrTooLarge):
		return nil, fmt.Errorf("%w: %v", ErrContextLength, err)
	case errors.Is(err, scheduler.ErrBusy):
		return nil, fmt.Errorf("%w: %v", ErrBusy, err)
	case err != nil:
		return nil, fmt.Errorf("generation: %w", err)
	default:
		if res.Stopped {
			finish = FinishStop
		}
		s, hit := match.push(string(dec.Flush()))
		if !hit {
			s += match.flush()
		} else {
			finish = FinishStop
		}
		if err := emit(s, nil); err != nil {
			// Generated in full, but the end could not be delivered:
			// the receipt is whole, the caller is gone.
			cut = err
			if errors.As(err, &de) {
				cut = de.err
			}
		}
	}
	if req.Chat != nil {
		rec.SetChatTemplate(merkle.Hash(req.Chat.Digest))
	}
	rc, err := rec.Receipt(info.ID, info.Spec, req.Sampler, audit.EffectiveSteps(steps, ctxLen), w.stops, res.Output, req.Nonce, w.key)
	if err != nil {
		return nil, fmt.Errorf("receipt: %w", err)
	}
	data, err := rc.Marshal()
	if err != nil {
		return nil, fmt.Errorf("receipt: %w", err)
	}
	rid := rc.ID()
	id := hex.EncodeToString(rid[:])
	if err := w.store.Put(id, data); err != nil {
		return nil, fmt.Errorf("storing receipt %s: %w", id, err)
	}
	w.log.Debug("generation", "model", info.Name, "prompt_tokens", len(prompt), "output_tokens", len(res.Output), "receipt", id, "finish", finish)
	out := &Result{
		Model: info, Text: text.String(), FinishReason: finish,
		PromptTokens: len(prompt), CompletionTokens: len(res.Output), CachedTokens: res.CachedPrompt, Logprobs: lps,
		ReceiptID: id, Receipt: data, RequestSteps: requestSteps,
	}
	if cut != nil {
		return nil, &PartialError{Result: out, Err: cut}
	}
	return out, nil
}

// traceGate passes a generation's trace to its recorder until stop, which
// waits for a call in progress: after it the recorder is the caller's
// alone.
type traceGate struct {
	mu      sync.Mutex
	t       engine.Tracer
	stopped bool
}

func (g *traceGate) Layer(l, pos int, x, k, v, attn []float32) {
	g.mu.Lock()
	if !g.stopped {
		g.t.Layer(l, pos, x, k, v, attn)
	}
	g.mu.Unlock()
}

func (g *traceGate) Final(pos int, x []float32) {
	g.mu.Lock()
	if !g.stopped {
		g.t.Final(pos, x)
	}
	g.mu.Unlock()
}

// traceLayers is engine.Options.TraceLayers for the worker's tracers: the
// rows of open gates go to audit.TraceLayerRows together (their gates
// held meanwhile), the others to their Tracer.
func traceLayers(l int, rows []engine.LayerRow) {
	var gates []*traceGate
	inner := make([]engine.LayerRow, 0, len(rows))
	for _, row := range rows {
		g, ok := row.Tracer.(*traceGate)
		if !ok {
			inner = append(inner, row)
			continue
		}
		if len(gates) == 0 || gates[len(gates)-1] != g {
			// An item's rows are consecutive: each gate once.
			g.mu.Lock()
			gates = append(gates, g)
		}
		if !g.stopped {
			row.Tracer = g.t
			inner = append(inner, row)
		}
	}
	audit.TraceLayerRows(l, inner)
	for _, g := range gates {
		g.mu.Unlock()
	}
}

var _ scheduler.PrefixTracer = (*traceGate)(nil)

// TracePrefix and ResumePrefix make the gate a scheduler.PrefixTracer:
// its recorder's trace of a generation's first positions goes with the
// generation's cache to the prefix cache, and from it to a generation
// whose prompt starts with the same tokens.
func (g *traceGate) TracePrefix(m int) (any, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	rec, ok := g.t.(*audit.Recorder)
	if g.stopped || !ok {
		return nil, errors.New("trace prefix: the generation's trace is closed")
	}
	return rec.TracePrefix(m)
}

func (g *traceGate) ResumePrefix(p any, m int) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	rec, ok := g.t.(*audit.Recorder)
	tp, isPrefix := p.(*audit.TracePrefix)
	if g.stopped || !ok || !isPrefix {
		return errors.New("resuming a trace prefix: not a recorder's prefix")
	}
	return rec.ResumePrefix(tp, m)
}

func (g *traceGate) stop() {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
}

func (w *Local) alt(prev, t int, lp *logprobs) (Alt, error) {
	b, err := w.tok.Piece(prev, t)
	if err != nil {
		return Alt{}, err
	}
	return Alt{Token: t, Text: string(b), Bytes: b, Logprob: lp.of(t)}, nil
}

// Verify parses a receipt (in any JSON spelling: its canonical form is what
// is signed), checks its signature and, when replay is set and
// the receipt's model is served here, re-runs the generation and compares
// every token and both Merkle roots. A receipt that fails a check gives a
// Verification saying why, not an error; errors are for unreadable input.
func (w *Local) Verify(ctx context.Context, data []byte, replay bool) (*Verification, error) {
	r, err := receipt.ParseAnySpelling(data) // callers (people, agents) may have re-formatted it

	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	id := r.ID()
	v := &Verification{ID: hex.EncodeToString(id[:]), Worker: keys.Address(r.Worker), Model: r.Model.String()}
	if err := r.Verify(); err != nil {
		v.Problem = err.Error()
		return v, nil
	}
	v.Signature = true
	if !replay {
		return v, nil
	}
	if r.Model != w.info.ID {
		v.Problem = "model " + r.Model.String() + " is not served here; not replayed"
		return v, nil
	}
	if n := len(r.Prompt) + len(r.Output) - 1; n > w.maxReplay {
		v.Problem = fmt.Sprintf("the receipt spans %d positions, this worker replays at most %d (its --max-replay-positions); not replayed", n, w.maxReplay)
		return v, nil
	}
	release, err := w.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	v.Replayed = true
	if err := audit.Replay(ctx, w.e, r, w.info.ID); err != nil {
		var mm *audit.Mismatch
		if !errors.As(err, &mm) {
			if ctx.Err() != nil {
				return nil, err
			}
		}
		v.Problem = err.Error()
		return v, nil
	}
	v.Match = true
	return v, nil
}
