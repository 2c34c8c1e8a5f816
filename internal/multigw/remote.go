package multigw

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/receipt"
)

// Bounds on what the gateway reads of a worker.
//
// MaxResponseBytes bounds a worker's non-streamed answer. Such an answer
// is read whole before anything is relayed (a worker that dies mid-answer
// then costs the caller a clean error, not half an answer; naming the
// worker in it splices two fields in, nameWorker), and anyone who stakes
// one worker can make it answer as much as allowed to anonymous requests
// naming it. An honest answer holds
// the text of at most max_tokens tokens (at most the model's context) as
// JSON, a few bytes a token: 8 MiB is over a million tokens of ordinary
// text; with logprobs (up to 20 alternatives a token, each with its text
// and bytes) a token takes one to a few KiB, so 8 MiB still holds a few
// thousand of them. A longer answer is asked for as a stream, which is
// relayed line by line, each line at most MaxEventBytes, with no bound on
// the whole. It was 64 MiB, read and re-encoded into about 200 MiB a
// request.
//
// MaxReceiptAnswerBytes bounds a worker's answer to GET /receipts/{id}:
// the largest receipt (receipt.MaxSize) and the JSON around it.
//
// MaxWorkerInFlightBytes bounds what the gateway holds at once of one
// worker's non-streamed answers and receipts, all requests together: an
// answer is read once as much as it can hold (its Content-Length, else
// the bound on its kind) is free of it, waiting meanwhile (at most
// BodyTimeout, and no longer than its caller), so that the gateway never
// holds more. The bounds above bound one request; this one bounds a
// hostile worker's concurrent answers, which anonymous callers can ask
// for as often as they like.
const (
	MaxResponseBytes       = 8 << 20
	MaxEventBytes          = 4 << 20
	MaxReceiptAnswerBytes  = receipt.MaxSize + 4096
	MaxWorkerInFlightBytes = 4 * MaxResponseBytes
)

// readLine reads up to and including '\n', failing past max bytes.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		b, err := br.ReadSlice('\n')
		if len(line)+len(b) > max {
			return nil, fmt.Errorf("a stream line longer than %d bytes", max)
		}
		line = append(line, b...)
		if err != bufio.ErrBufferFull {
			return line, err
		}
	}
}

// Response headers naming the worker that served a request.
const (
	HeaderAgentID = "X-Verdict-Agent-Id"
	HeaderWorker  = "X-Verdict-Worker"
)

// errDown is a worker that failed before answering: the request may go
// to another worker. skip: the worker is not marked down (it is busy, or
// its quote is above MaxFee). busy: the worker refused with a 429, to be
// left out of every request for that long (Router.MarkBusy).
type errDown struct {
	err  error
	skip bool
	busy time.Duration
}

func (e *errDown) Error() string { return e.err.Error() }
func (e *errDown) Unwrap() error { return e.err }

func down(format string, a ...any) error { return &errDown{err: fmt.Errorf(format, a...)} }

// post sends body to the worker's path (under its /v1 endpoint) with
// header hdr. A failure to reach the worker, or a 5xx, is errDown.
func (s *Server) post(ctx context.Context, w Worker, path string, body []byte, hdr http.Header) (*http.Response, error) {
	res, err := s.do(ctx, w, http.MethodPost, path, body, hdr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, down("worker %d at %s: %w", w.AgentID, w.Endpoint, err)
	}
	if res.StatusCode >= 500 {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		res.Body.Close()
		return nil, down("worker %d: status %d: %s", w.AgentID, res.StatusCode, trunc(string(b), 200))
	}
	return res, nil
}

// do sends a request to the worker's path (under its /v1 endpoint): a
// POST of body (JSON) or a GET. The response's Body is a *workerBody,
// whose request readWorker and relay can cut.
func (s *Server) do(ctx context.Context, w Worker, method, path string, body []byte, hdr http.Header) (*http.Response, error) {
	rctx, cancel := context.WithCancel(ctx)
	var rb io.Reader
	if body != nil {
		rb = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(rctx, method, w.Endpoint+path, rb)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("worker %d: %w", w.AgentID, err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := s.hc.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	// The client takes any three digits ("042"); a status the gateway
	// relays goes to WriteHeader, which panics below 100. Nothing but a
	// final status (the client reads past 1xx but a 101) is an answer.
	if res.StatusCode < 200 || res.StatusCode > 599 {
		res.Body.Close()
		cancel()
		return nil, fmt.Errorf("status %03d is not a final HTTP status", res.StatusCode)
	}
	res.Body = &workerBody{ReadCloser: res.Body, parent: ctx, ctx: rctx, cancel: cancel}
	return res, nil
}

// workerBody is the body of a worker's response: its request can be cut
// (cancel) when the worker takes too long to send it, and closing it
// ends the request.
type workerBody struct {
	io.ReadCloser
	parent context.Context // the request's context before do's cancel
	ctx    context.Context // the request's context, which cancel ends
	cancel context.CancelFunc
	cut    atomic.Bool // the gateway cut it: the worker was too slow
}

func (b *workerBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// cutAfter arms the cut of res's request after d: reads after it fail.
// The returned timer is stopped, or Reset for another d, by the caller.
// Nil when res's body is not a workerBody (a test's).
func cutAfter(res *http.Response, d time.Duration) (*time.Timer, *workerBody) {
	b, ok := res.Body.(*workerBody)
	if !ok {
		return nil, nil
	}
	return time.AfterFunc(d, func() { b.cut.Store(true); b.cancel() }), b
}

// errWorkerAnswer is an answer the gateway refused to read on: too
// large, encoded, too slow, or past the worker's MaxWorkerInFlightBytes.
var errWorkerAnswer = errors.New("worker's answer refused")

// readWorker reads a worker's non-streamed answer or receipt whole: at
// most max bytes, within BodyTimeout of its headers, in the encoding the
// gateway asked for (none: the worker client does not ask for gzip, so
// 64 KiB of gzip cannot inflate to as many MiB as allowed), and within
// the worker's MaxWorkerInFlightBytes: it first reserves as much as the
// answer can hold (its Content-Length, else max), waiting for room while
// the worker's other answers hold it (within BodyTimeout, and only while
// the caller waits), and gives back what the answer did not use once
// read. release gives back the rest, once the answer has been written
// out; it is not nil when err is nil. A failure that is the worker's
// (not the caller's hang-up, nor errNoRoom) marks it down: it is broken
// or hostile.
func (s *Server) readWorker(res *http.Response, w Worker, max int64) (b []byte, release func(), err error) {
	defer func() {
		if err == nil || errors.Is(err, errNoRoom) {
			return
		}
		if wb, ok := res.Body.(*workerBody); ok && wb.parent.Err() != nil {
			return // the caller hung up
		}
		s.log.Warn("worker's answer refused", "agent", w.AgentID, "err", err)
		s.router.MarkDown(w.Address)
	}()
	if ce := res.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return nil, nil, fmt.Errorf("%w: Content-Encoding %q, which the gateway did not ask for", errWorkerAnswer, trunc(ce, 40))
	}
	if res.ContentLength > max {
		return nil, nil, fmt.Errorf("%w: larger than %d bytes (Content-Length %d)", errWorkerAnswer, max, res.ContentLength)
	}
	t, wb := cutAfter(res, s.o.BodyTimeout)
	if t != nil {
		defer t.Stop()
	}
	ctx := context.Background()
	if wb != nil {
		ctx = wb.ctx // ends at the cut or when the caller hangs up
	}
	want := max
	if res.ContentLength >= 0 {
		want = res.ContentLength
	}
	r, err := s.reserve(ctx, w.Address, want)
	if err != nil {
		if wb != nil && wb.parent.Err() != nil {
			return nil, nil, wb.parent.Err()
		}
		return nil, nil, fmt.Errorf("%w: worker %d's other answers held the %d bytes the gateway holds of one worker's answers at once (MaxWorkerInFlightBytes) for %s", errNoRoom, w.AgentID, s.budget, s.o.BodyTimeout)
	}
	b, err = readAll(io.LimitReader(res.Body, want+1), res.ContentLength)
	switch {
	case wb != nil && wb.cut.Load():
		err = fmt.Errorf("%w: not sent within %s of its headers", errWorkerAnswer, s.o.BodyTimeout)
	case err == nil && int64(len(b)) > want:
		err = fmt.Errorf("%w: larger than %d bytes", errWorkerAnswer, max)
	}
	if err != nil {
		r.release()
		return nil, nil, err
	}
	r.keep(int64(len(b)))
	return b, r.release, nil
}

// writeNoRoom answers errNoRoom: 503 with Retry-After, naming the worker;
// paid says what the caller pays.
func writeNoRoom(rw http.ResponseWriter, w Worker, err error, paid string) {
	rw.Header().Set("Retry-After", strconv.Itoa(gateway.RetryAfterBusy))
	writeError(rw, http.StatusServiceUnavailable, "server_error", codeWorkerBusy, fmt.Sprintf("the gateway did not read worker %d's answer (%v); nothing of it is returned, and %s; retry later", w.AgentID, err, paid))
}

// errNoRoom is an answer the gateway did not read because the worker's
// other answers held all of its MaxWorkerInFlightBytes for as long as
// the answer could wait (BodyTimeout). It is not the worker's failure:
// the caller gets a 503 with Retry-After (codeWorkerBusy).
var errNoRoom = errors.New("no room for the worker's answer")

// codeWorkerBusy is the error code of errNoRoom.
const codeWorkerBusy = "worker_busy"

// readAll is io.ReadAll starting with room for size bytes and one more
// (the read that sees the end), when size is known (not negative): an
// answer that states its length is read into one allocation.
func readAll(r io.Reader, size int64) ([]byte, error) {
	if size < 0 {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, size+1)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// workerBudget is one worker's MaxWorkerInFlightBytes: a weighted
// semaphore (FIFO: a large answer waiting is not passed by smaller ones
// for good), and the reservations held of it or waiting for it (the
// entry is dropped when none is left).
type workerBudget struct {
	sem   *semaphore.Weighted
	users int
}

// reservation is room held of a worker's budget.
type reservation struct {
	s    *Server
	a    ledger.Address
	wb   *workerBudget
	held int64
	once sync.Once
}

// reserve takes n bytes of worker a's budget, waiting for room until ctx
// ends (its error then).
func (s *Server) reserve(ctx context.Context, a ledger.Address, n int64) (*reservation, error) {
	s.mu.Lock()
	wb := s.inFlight[a]
	if wb == nil {
		wb = &workerBudget{sem: semaphore.NewWeighted(s.budget)}
		s.inFlight[a] = wb
	}
	wb.users++
	s.mu.Unlock()
	r := &reservation{s: s, a: a, wb: wb}
	if !wb.sem.TryAcquire(n) {
		if s.onWait != nil {
			s.onWait(a)
		}
		if err := wb.sem.Acquire(ctx, n); err != nil {
			r.release()
			return nil, err
		}
	}
	r.held = n
	return r, nil
}

// keep gives back all but n bytes of what r holds.
func (r *reservation) keep(n int64) {
	if n < r.held {
		r.wb.sem.Release(r.held - n)
		r.held = n
	}
}

// release gives back what r holds; once.
func (r *reservation) release() {
	r.once.Do(func() {
		if r.held > 0 {
			r.wb.sem.Release(r.held)
		}
		r.s.mu.Lock()
		defer r.s.mu.Unlock()
		if r.wb.users--; r.wb.users == 0 {
			delete(r.s.inFlight, r.a)
		}
	})
}

// MaxRefusalBytes bounds the body of a worker's refusal (a 4xx) that the
// gateway keeps to relay.
const MaxRefusalBytes = 64 << 10

// errRefused is a worker's 4xx (but 401, 402 and 429) to a request that
// carried no payment, in a gateway whose workers are paid. The caller's
// request may be at fault: then every worker refuses it alike, and the
// first refusal is relayed once all have been tried. Or the worker
// refuses what others serve: the request goes to the next worker either
// way, and a worker that refused a request another then quoted is marked
// down.
type errRefused struct {
	w      Worker
	status int
	header http.Header
	body   []byte
}

func (e *errRefused) Error() string {
	return fmt.Sprintf("worker %d refused the request (status %d): %s", e.w.AgentID, e.status, trunc(string(e.body), 200))
}

// response is the refusal as the worker's response, to relay.
func (e *errRefused) response() *http.Response {
	return &http.Response{StatusCode: e.status, Header: e.header, Body: io.NopCloser(bytes.NewReader(e.body)), ContentLength: int64(len(e.body))}
}

// unpaid judges a worker's answer other than a 402 to a request that
// carried no payment, in a gateway whose workers are paid (by the
// gateway from an API key's account, or by an x402 caller), and closes
// it: 401 (not taking x402) and 429 (busy, not marked down) are errDown,
// another 4xx errRefused, and anything else errDown. A 2xx is an answer
// no escrow and no receipt backs, its text whatever the worker made up,
// never audited nor slashable: relayed, it let a staked worker with a low
// price win requests and serve them so.
func (s *Server) unpaid(w Worker, res *http.Response) error {
	defer res.Body.Close()
	switch st := res.StatusCode; {
	case st == http.StatusTooManyRequests:
		return &errDown{err: fmt.Errorf("worker %d: status %d to a request without payment", w.AgentID, st), skip: true, busy: retryAfter(res.Header)}
	case st == http.StatusUnauthorized:
		return down("worker %d: status %d to a request without payment", w.AgentID, st)
	case st >= 400 && st < 500:
		b, release, err := s.readWorker(res, w, MaxRefusalBytes)
		if errors.Is(err, errNoRoom) {
			return &errDown{err: fmt.Errorf("worker %d: status %d to a request without payment: %w", w.AgentID, st, err), skip: true}
		}
		if err != nil {
			return down("worker %d: status %d to a request without payment: %w", w.AgentID, st, err)
		}
		release()
		return &errRefused{w: w, status: st, header: res.Header.Clone(), body: b}
	}
	return down("worker %d answered a request it was not paid for (status %d) instead of quoting it: an answer no escrow and no receipt backs is not relayed", w.AgentID, res.StatusCode)
}

// retryAfter is a response's Retry-After (seconds, or a date), or
// gateway.RetryAfterBusy seconds when it has none the gateway can read.
func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return gateway.RetryAfterBusy * time.Second
}

// quote asks w for the x402 quote of the request: the "upto" entry of its
// PAYMENT-REQUIRED, checked against what the ledger says of w. An answer
// other than a 402 is judged by unpaid.
func (s *Server) quote(ctx context.Context, w Worker, path string, body []byte) (*gateway.PaymentRequirements, error) {
	qctx, cancel := context.WithTimeout(ctx, s.o.QuoteTimeout)
	defer cancel()
	res, err := s.post(qctx, w, path, body, nil)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = down("worker %d: no quote within %s", w.AgentID, s.o.QuoteTimeout)
		}
		return nil, err
	}
	if res.StatusCode != http.StatusPaymentRequired {
		return nil, s.unpaid(w, res)
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 1<<16))
	res.Body.Close()
	return s.quoteOf(w, res.Header.Get(gateway.HeaderPaymentRequired))
}

// quoteOf judges h, the PAYMENT-REQUIRED header of w's 402: its first
// "upto" entry, checked against what the ledger says of w.
func (s *Server) quoteOf(w Worker, h string) (*gateway.PaymentRequirements, error) {
	var pr gateway.PaymentRequired
	if err := decodeB64JSON(h, &pr); err != nil {
		return nil, down("worker %d: %s: %v", w.AgentID, gateway.HeaderPaymentRequired, err)
	}
	for _, a := range pr.Accepts {
		if a.Scheme != gateway.SchemeUpto {
			continue
		}
		if err := s.checkQuote(w, a); err != nil {
			return nil, down("worker %d: its quote %v", w.AgentID, err)
		}
		return &a, nil
	}
	return nil, down("worker %d: no %q quote", w.AgentID, gateway.SchemeUpto)
}

// checkQuote checks a quote against the ledger's view of w.
func (s *Server) checkQuote(w Worker, a gateway.PaymentRequirements) error {
	switch {
	case a.PayTo != w.Address.String():
		return fmt.Errorf("pays %s, not the worker's account %s", trunc(a.PayTo, 80), w.Address)
	case a.Network != gateway.CAIP2Network(s.chainID) || a.Extra.ChainID != s.chainID:
		return fmt.Errorf("is for network %q", trunc(a.Network, 80))
	case !strings.EqualFold(a.Extra.ModelID, w.ModelID.String()):
		return fmt.Errorf("is for model %q", trunc(a.Extra.ModelID, 80))
	case a.Extra.PricePerToken != strconv.FormatUint(w.Price, 10):
		return fmt.Errorf("asks %q per token; it advertises %d on the ledger", trunc(a.Extra.PricePerToken, 40), w.Price)
	}
	return nil
}

// payment signs, with the payer's key, the openEscrow transaction of an
// upto quote with the given nonce (negative: the account's next) and
// returns the PAYMENT-SIGNATURE header. A quote above limit (0: none), the
// most the request can cost at the worker's price, is a worker's lie.
func (s *Server) payment(ctx context.Context, payer *keys.Key, a *gateway.PaymentRequirements, nonce int64, limit uint64) (string, *ledger.Tx, error) {
	amount, err1 := strconv.ParseUint(a.Amount, 10, 64)
	payTo, err2 := ledger.ParseAddress(a.PayTo)
	model, err3 := ledger.ParseHash(a.Extra.ModelID)
	reqHash, err4 := ledger.ParseHash(a.Extra.RequestHash)
	price, err5 := strconv.ParseUint(a.Extra.PricePerToken, 10, 64)
	// One line naming each bad field: errors.Join would put them on
	// lines of their own, which a log line or an error body must not hold.
	var bad []string
	for _, e := range []struct {
		field string
		err   error
	}{{"amount", err1}, {"payTo", err2}, {"extra.modelId", err3}, {"extra.requestHash", err4}, {"extra.pricePerToken", err5}} {
		if e.err != nil {
			bad = append(bad, e.field+": "+e.err.Error())
		}
	}
	if len(bad) > 0 {
		return "", nil, down("malformed quote: %s", strings.Join(bad, "; "))
	}
	if limit > 0 && amount > limit {
		return "", nil, down("worker quotes %d, more than the request can cost at its price (%d per token, %d tokens at most)", amount, price, limit/max(price, 1))
	}
	if s.o.MaxFee > 0 && amount > s.o.MaxFee {
		return "", nil, &errDown{err: fmt.Errorf("worker quotes %d, more than the gateway's --max-fee %d", amount, s.o.MaxFee), skip: true}
	}
	tx, err := s.o.Ledger.Sign(ctx, payer.Private, &ledger.MsgOpenEscrow{Worker: payTo, ModelID: model, Fee: amount, Request: reqHash, PricePerToken: price}, 1, nonce)
	if err != nil {
		return "", nil, fmt.Errorf("signing the escrow: %w", err)
	}
	p := gateway.PaymentPayload{X402Version: gateway.X402Version, Accepted: *a}
	p.Payload.Transaction = base64.StdEncoding.EncodeToString(tx.Encode())
	b, err := json.Marshal(p)
	if err != nil {
		return "", nil, err
	}
	return base64.StdEncoding.EncodeToString(b), tx, nil
}

func decodeB64JSON(h string, v any) error {
	if h == "" {
		return errors.New("missing")
	}
	if len(h) > gateway.MaxPaymentHeaderBytes {
		return fmt.Errorf("%d bytes", len(h))
	}
	b, err := base64.StdEncoding.DecodeString(h)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// Bounds requestTokens allows for what a chat template adds to the
// messages it renders: TemplateTokens, and TemplateTokensPerMessage for
// each message.
const (
	TemplateTokens           = 1024
	TemplateTokensPerMessage = 16
)

// requestTokens bounds the tokens a request's prompt and answer can hold,
// as far as the gateway can tell without the model's tokenizer: two per
// byte of the body (a token of the prompt stands for at least one byte of
// the rendered text; JSON writes each byte of text as one or more, and a
// template may render a message's content, or its tools, twice as long,
// indented), the chat template's own (TemplateTokens and
// TemplateTokensPerMessage), and max_tokens or max_completion_tokens. 0
// when the request sets neither: a worker then quotes up to its model's
// context, which the gateway does not know.
func requestTokens(top map[string]json.RawMessage, bodyBytes int) uint64 {
	var max uint64
	for _, k := range []string{"max_tokens", "max_completion_tokens"} {
		var n uint64
		if json.Unmarshal(top[k], &n) == nil && n > max {
			max = n
		}
	}
	if max == 0 || max > 1<<40 {
		return 0
	}
	var msgs []json.RawMessage
	json.Unmarshal(top["messages"], &msgs)
	return max + 2*uint64(bodyBytes) + TemplateTokens + TemplateTokensPerMessage*uint64(len(msgs))
}

// CallerPieceBytes is the most of a non-streamed answer or receipt the
// gateway writes to its caller within one gateway.StreamWriteTimeout.
// Such an answer holds its share of the worker's MaxWorkerInFlightBytes
// until written: with no write deadline a caller that sent a request and
// read nothing (a zero TCP window) held it for as long as it liked, and
// the worker's other answers waited out BodyTimeout and failed
// (TestAttackStalledReader). A caller now has to take each MiB within
// StreamWriteTimeout (30 s), a maximal answer (MaxResponseBytes) within
// 8 of them, or its answer is cut and its room given back.
const CallerPieceBytes = 1 << 20

// callerWriter writes to the caller, each piece of at most
// CallerPieceBytes within gateway.StreamWriteTimeout.
type callerWriter struct {
	rw http.ResponseWriter
	rc *http.ResponseController
}

func (c callerWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), CallerPieceBytes)
		_ = c.rc.SetWriteDeadline(time.Now().Add(gateway.StreamWriteTimeout))
		m, err := c.rw.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// writeCaller writes a non-streamed answer to the caller: the status
// (with the headers already set), then what body writes to its writer,
// each piece within gateway.StreamWriteTimeout (callerWriter), flushed
// within it too. The deadline is cleared after (net/http sets none of its
// own on a connection kept alive). An error is the caller's: it hung up
// or stopped reading.
func writeCaller(rw http.ResponseWriter, status int, body func(io.Writer) error) error {
	rc := http.NewResponseController(rw)
	defer rc.SetWriteDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Now().Add(gateway.StreamWriteTimeout))
	rw.WriteHeader(status)
	if err := body(callerWriter{rw: rw, rc: rc}); err != nil {
		return err
	}
	_ = rc.SetWriteDeadline(time.Now().Add(gateway.StreamWriteTimeout))
	if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// relayed are the worker's response headers passed on to the caller.
var relayed = []string{"Content-Type", "Cache-Control", "X-Verdict-Receipt", gateway.HeaderPaymentRequired, gateway.HeaderPaymentResponse, "Retry-After"}

// relay copies the worker's answer to the caller, naming the worker in
// the headers and in every "verdict" object. A non-streamed answer is read
// whole first; a stream that breaks ends with an error event. It returns
// whether the answer was complete.
func (s *Server) relay(rw http.ResponseWriter, res *http.Response, w Worker) bool {
	defer res.Body.Close()
	h := rw.Header()
	for _, k := range relayed {
		if v := res.Header.Values(k); len(v) > 0 {
			h[k] = v
		}
	}
	h.Set(HeaderAgentID, strconv.FormatUint(w.AgentID, 10))
	h.Set(HeaderWorker, w.Address.String())
	ct := res.Header.Get("Content-Type")
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/event-stream") {
		b, release, err := s.readWorker(res, w, MaxResponseBytes)
		if err != nil {
			for _, k := range relayed {
				h.Del(k)
			}
			if errors.Is(err, errNoRoom) {
				s.log.Warn("no room for a worker's answer", "agent", w.AgentID, "err", err)
				writeNoRoom(rw, w, err, "you pay at most for the receipt it published")
				return false
			}
			s.log.Warn("worker failed mid-answer", "agent", w.AgentID, "err", err)
			writeError(rw, http.StatusBadGateway, "server_error", "worker_failed", fmt.Sprintf("worker %d failed while sending its answer (%v); nothing of it is returned, and you pay at most for the receipt it published", w.AgentID, err))
			return false
		}
		defer release()
		out := net.Buffers{b}
		if res.StatusCode == http.StatusOK {
			out = nameWorker(b, w)
		}
		n := 0
		for _, p := range out {
			n += len(p)
		}
		h.Set("Content-Length", strconv.Itoa(n))
		if err := writeCaller(rw, res.StatusCode, func(cw io.Writer) error {
			_, err := out.WriteTo(cw)
			return err
		}); err != nil {
			// The caller stopped reading (or hung up): the answer, and
			// its room in the worker's budget, are given back now.
			s.log.Debug("caller did not take the answer", "agent", w.AgentID, "err", err)
			return false
		}
		return res.StatusCode == http.StatusOK
	}
	h.Set("Trailer", "X-Verdict-Receipt")
	if h.Get(gateway.HeaderPaymentResponse) != "" {
		h.Add("Trailer", gateway.HeaderPaymentResponse)
	}
	rw.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(rw)
	// Each write to the caller has gateway.StreamWriteTimeout: a caller
	// that keeps its connection open and reads nothing held this relay,
	// and the worker's connection with it, for good (net/http sets no
	// deadline of its own here, nor clears this one: cleared at the end).
	defer rc.SetWriteDeadline(time.Time{})
	send := func(b []byte, flush bool) error {
		_ = rc.SetWriteDeadline(time.Now().Add(gateway.StreamWriteTimeout))
		if _, err := rw.Write(b); err != nil {
			return err
		}
		if flush {
			if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
				return err
			}
		}
		return nil
	}
	br := bufio.NewReaderSize(res.Body, 64<<10)
	done := false
	// A stream that sends nothing for HeaderTimeout is a worker that
	// stalled, as one that sends no headers for as long: it is cut.
	t, wb := cutAfter(res, s.o.HeaderTimeout)
	if t != nil {
		defer t.Stop()
	}
	for {
		line, err := readLine(br, MaxEventBytes)
		if t != nil {
			t.Reset(s.o.HeaderTimeout)
		}
		if err != nil && wb != nil && wb.cut.Load() {
			err = fmt.Errorf("nothing sent for %s", s.o.HeaderTimeout)
		}
		if len(line) > 0 && err == nil {
			if bytes.HasPrefix(line, []byte("data: {")) {
				named := append(make([]byte, 0, len(line)+128), "data: "...)
				for _, p := range nameWorker(bytes.TrimSpace(line[len("data: "):]), w) {
					named = append(named, p...)
				}
				line = append(named, '\n')
			}
			if bytes.Equal(bytes.TrimSpace(line), []byte("data: [DONE]")) {
				done = true
			}
			if werr := send(line, len(bytes.TrimSpace(line)) == 0); werr != nil {
				return false // the caller hung up or stopped reading; the worker sees it too
			}
		}
		if err != nil {
			if !done {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				s.log.Warn("worker failed mid-stream", "agent", w.AgentID, "err", err)
				if wb == nil || wb.parent.Err() == nil {
					s.router.MarkDown(w.Address) // it broke off, or sent a line past MaxEventBytes
				}
				b, _ := json.Marshal(errorBody("server_error", "worker_failed", fmt.Sprintf("worker %d failed mid-stream (%v): the answer above is incomplete; you pay at most for the receipt it published", w.AgentID, err)))
				_ = send(append(append([]byte("data: "), b...), '\n', '\n'), true)
				return false
			}
			break
		}
	}
	for _, k := range []string{"X-Verdict-Receipt", gateway.HeaderPaymentResponse} {
		if v := res.Trailer.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	return true
}

type apiErr struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

func errorBody(typ, code, msg string) map[string]apiErr {
	return map[string]apiErr{"error": {Message: msg, Type: typ, Code: code}}
}

// writeError writes an OpenAI-shaped error.
func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(errorBody(typ, code, msg))
}
