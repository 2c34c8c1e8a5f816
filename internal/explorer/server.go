package explorer

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/model"
)

// Ledger is what the explorer reads from a node: *client.Client.
type Ledger interface {
	Query(ctx context.Context, path string, data []byte) ([]byte, error)
	Height(ctx context.Context) (int64, error)
	Validators(ctx context.Context) ([]ledger.ValidatorUpdate, error)
	Params(ctx context.Context) (ledger.Params, error)
	Account(ctx context.Context, a ledger.Address) (ledger.Account, error)
	Stake(ctx context.Context, a ledger.Address) (ledger.Stake, error)
	Model(ctx context.Context, id ledger.Hash) (ledger.Model, bool, error)
	Agent(ctx context.Context, id uint64) (ledger.Agent, bool, error)
	Receipt(ctx context.Context, id ledger.Hash) (ledger.ReceiptRecord, bool, error)
	ReceiptData(ctx context.Context, id ledger.Hash) ([]byte, error)
	Audit(ctx context.Context, receipt ledger.Hash) (ledger.Audit, bool, error)
	Dispute(ctx context.Context, id ledger.Hash) (ledger.Dispute, bool, error)
}

var _ Ledger = (*client.Client)(nil)

// Options configure an explorer.
type Options struct {
	// Ledger is the node the pages read.
	Ledger Ledger
	// Index is fed by the caller (Index.Run with a client.Follower);
	// Start does both.
	Index *Index
	// Prefix is the path the explorer is served under, with slashes at
	// both ends (default "/explorer/").
	Prefix string
	// Models are the models the explorer holds, by model id: their
	// tokenizers decode prompts and outputs, their shapes name the cells
	// of audits and disputes, and their paths go into the `verdict
	// verify` command. A receipt of another model shows its tokens.
	Models map[ledger.Hash]*model.Model
	// MaxBuilds bounds the pages drawn at once, each a few ledger
	// queries (default 8). A request beyond it is answered 503 with
	// Retry-After: the node the explorer reads is the one a worker needs
	// for its audits and disputes, and a flood of requests for distinct
	// pages must not take it.
	MaxBuilds int
	// MaxStreams bounds the event streams open at once (default 256);
	// beyond it 503 with Retry-After (the page's script then polls).
	MaxStreams int
	// ClientRate bounds, per client, the work that queries the node:
	// the pages it makes the explorer draw (a page served from the page
	// cache costs nothing), its searches and receipt downloads, in a
	// token bucket of ClientBurst tokens refilled at ClientRate a second
	// (defaults 5 and 20; a negative rate: no bound). Beyond it 429 with
	// Retry-After: MaxBuilds bounds everyone's pages together, and one
	// client drawing distinct pages as fast as it can would take every
	// slot from the others.
	ClientRate  float64
	ClientBurst int
	// TrustedProxies are the proxies whose X-Forwarded-For header names
	// the client. A client is the connection's remote address (IPv6 by
	// /64) unless that is in TrustedProxies: then it is the header's
	// last address not in them. Behind a proxy that is not listed, its
	// clients are one client.
	TrustedProxies []netip.Prefix
	Logger         *slog.Logger
}

// Defaults of Options.
const (
	DefaultMaxBuilds  = 8
	DefaultMaxStreams = 256
)

// buildTimeout bounds the drawing of one page: it goes on when the
// request that started it hangs up (others may wait for it), but not for
// good.
const buildTimeout = 30 * time.Second

// Explorer serves the pages.
type Explorer struct {
	o       Options
	mux     *http.ServeMux
	tmpl    map[string]*template.Template
	log     *slog.Logger
	toks    *tokenizers
	pages   pageCache
	reads   *readCache
	builds  chan struct{} // a slot per page drawn at once
	streams atomic.Int64  // event streams open
	limits  *clientLimits // nil: no bound per client
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// New returns an explorer over o.Ledger and o.Index.
func New(o Options) (*Explorer, error) {
	if o.Ledger == nil || o.Index == nil {
		return nil, errors.New("explorer: no ledger or no index")
	}
	if o.Prefix == "" {
		o.Prefix = "/explorer/"
	}
	if !strings.HasPrefix(o.Prefix, "/") || !strings.HasSuffix(o.Prefix, "/") {
		return nil, fmt.Errorf("explorer: prefix %q must start and end with a slash", o.Prefix)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxBuilds <= 0 {
		o.MaxBuilds = DefaultMaxBuilds
	}
	if o.MaxStreams <= 0 {
		o.MaxStreams = DefaultMaxStreams
	}
	if math.IsNaN(o.ClientRate) || math.IsInf(o.ClientRate, 0) {
		return nil, fmt.Errorf("explorer: client rate %v is not a number of requests per second", o.ClientRate)
	}
	e := &Explorer{o: o, mux: http.NewServeMux(), log: o.Logger, toks: newTokenizers(o.Models), reads: newReadCache(),
		builds: make(chan struct{}, o.MaxBuilds), limits: newClientLimits(o.ClientRate, o.ClientBurst, o.TrustedProxies)}
	if err := e.parseTemplates(); err != nil {
		return nil, err
	}
	p := o.Prefix
	e.mux.HandleFunc("GET "+p+"{$}", e.page("overview", e.overview))
	e.mux.HandleFunc("GET "+p+"models", e.page("models", e.models, "page"))
	e.mux.HandleFunc("GET "+p+"workers", e.page("workers", e.workers, "page"))
	e.mux.HandleFunc("GET "+p+"receipt/{id}", e.page("receipt", e.receipt))
	e.mux.HandleFunc("GET "+p+"receipt/{id}/json", e.receiptJSON)
	e.mux.HandleFunc("GET "+p+"account/{addr}", e.page("account", e.account))
	e.mux.HandleFunc("GET "+p+"search", e.search)
	e.mux.HandleFunc("GET "+p+"events", e.events)
	e.mux.HandleFunc("GET "+p+"static/{file}", e.static)
	e.mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
		e.fail(w, r, &pageError{Status: http.StatusNotFound, Msg: fmt.Sprintf("There is no page %s here.", r.URL.Path)})
	})
	return e, nil
}

// Start builds an explorer reading the node at rpc: it follows the chain
// from height from (1: the whole chain, which the worker and dispute counts
// need) until ctx ends.
func Start(ctx context.Context, rpc string, from int64, o Options) (*Explorer, error) {
	c, err := client.New(rpc)
	if err != nil {
		return nil, fmt.Errorf("explorer: %w", err)
	}
	f, err := client.NewFollower(rpc, from)
	if err != nil {
		return nil, fmt.Errorf("explorer: %w", err)
	}
	o.Ledger, o.Index = c, NewIndex()
	e, err := New(o)
	if err != nil {
		return nil, err
	}
	go o.Index.Run(ctx, f, func(err error) { e.log.Warn("explorer: reading the ledger", "err", err) })
	return e, nil
}

// static serves the script and the style sheet (nothing else: no listing).
func (e *Explorer) static(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	types := map[string]string{"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
	b, err := fs.ReadFile(staticFS, "static/"+name)
	if types[name] == "" || err != nil {
		e.fail(w, r, notFound("There is no file %s here.", name))
		return
	}
	w.Header().Set("Content-Type", types[name])
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}

// ServeHTTP implements http.Handler. Pages carry a Content-Security-Policy
// that runs only the explorer's own script: text from the ledger (prompts,
// agent URIs, model names) is escaped by html/template, and even markup
// that slipped through could not run a script.
func (e *Explorer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	e.mux.ServeHTTP(w, r)
}

// pageError is a page that cannot be shown: an unknown id (404), a
// malformed one (404: the URL names nothing), the node not answering (502).
type pageError struct {
	Status int
	Msg    string
}

func (p *pageError) Error() string { return p.Msg }

func notFound(format string, args ...any) error {
	return &pageError{Status: http.StatusNotFound, Msg: fmt.Sprintf(format, args...)}
}

// nodeError wraps an error talking to the node.
func nodeError(err error) error {
	return &pageError{Status: http.StatusBadGateway, Msg: "The ledger node did not answer: " + err.Error()}
}

// layout is what every page's frame shows.
type layout struct {
	Title  string
	Prefix string
	Nav    string
	Height int64
	Page   any
	Error  *pageError
}

// page serves a page drawn by build, once per block: the same page (its
// path and the query parameters params, which build reads) asked for
// again at the same height is the copy drawn first (pageCache). A client
// past its rate (Options.ClientRate) draws no page: 429. At most
// Options.MaxBuilds pages are drawn at once; beyond, 503.
func (e *Explorer) page(name string, build func(r *http.Request) (string, any, error), params ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.Path
		for _, p := range params {
			key += "\x00" + p + "=" + r.URL.Query().Get(p)
		}
		h, _ := e.o.Index.Height()
		var wait time.Duration
		d, mine := e.pages.claim(key, h, func() bool {
			ok, retry := e.limits.allow(r)
			wait = retry
			return ok
		})
		if d == nil {
			e.tooMany(w, r, wait)
			return
		}
		if !mine {
			select {
			case <-d.done:
				e.write(w, d)
			case <-r.Context().Done():
			}
			return
		}
		func() {
			// Whatever happens to the drawing, the requests waiting
			// for it get an answer.
			defer func() {
				close(d.done)
				e.pages.settle(key, h, d)
			}()
			e.draw(d, r, h, name, build)
		}()
		e.write(w, d)
	}
}

// draw draws a page into d at height h (the page says so; its data is
// read at h or after).
func (e *Explorer) draw(d *drawnPage, r *http.Request, h int64, name string, build func(r *http.Request) (string, any, error)) {
	release, ok := e.slot()
	if !ok {
		e.busy(d, r, h)
		return
	}
	defer release()
	// Waiters share the page: the first request hanging up does not
	// end it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), buildTimeout)
	defer cancel()
	title, data, err := build(r.WithContext(ctx))
	if err != nil {
		e.failPage(d, r, h, err)
		return
	}
	e.renderPage(d, http.StatusOK, name, layout{Title: title, Prefix: e.o.Prefix, Nav: name, Height: h, Page: data})
}

// slot takes one of the MaxBuilds slots for work that queries the node,
// without waiting: false when all are taken.
func (e *Explorer) slot() (release func(), ok bool) {
	select {
	case e.builds <- struct{}{}:
		return func() { <-e.builds }, true
	default:
		return nil, false
	}
}

// busy is the page answered when every slot is taken.
func (e *Explorer) busy(d *drawnPage, r *http.Request, h int64) {
	e.failPage(d, r, h, &pageError{Status: http.StatusServiceUnavailable, Msg: "The explorer is drawing as many pages as it may at once; try again in a moment."})
	d.retry = 1
}

// tooMany answers a client past its rate: 429, with the seconds until it
// has a token again.
func (e *Explorer) tooMany(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	h, _ := e.o.Index.Height()
	var d drawnPage
	e.failPage(&d, r, h, &pageError{Status: http.StatusTooManyRequests,
		Msg: "You asked for more pages than the explorer draws for one client; try again in a moment."})
	d.retry = retryAfter(wait)
	e.write(w, &d)
}

// admit takes a token of the request's client for work that queries the
// node, answering 429 when it has none.
func (e *Explorer) admit(w http.ResponseWriter, r *http.Request) bool {
	ok, wait := e.limits.allow(r)
	if !ok {
		e.tooMany(w, r, wait)
	}
	return ok
}

// enter admits a request that queries the node outside the page cache (a
// search, a receipt download): a token of its client's, then one of the
// build slots. It answers 429 or 503 itself when it returns ok false; the
// caller calls release when done.
func (e *Explorer) enter(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	if !e.admit(w, r) {
		return nil, false
	}
	release, ok = e.slot()
	if !ok {
		e.refuse(w, r)
	}
	return release, ok
}

func (e *Explorer) write(w http.ResponseWriter, d *drawnPage) {
	w.Header().Set("Content-Type", d.ctype)
	w.Header().Set("Cache-Control", "no-store")
	if d.retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(d.retry))
	}
	w.WriteHeader(d.status)
	w.Write(d.body)
}

func (e *Explorer) fail(w http.ResponseWriter, r *http.Request, err error) {
	h, _ := e.o.Index.Height()
	var d drawnPage
	e.failPage(&d, r, h, err)
	e.write(w, &d)
}

func (e *Explorer) failPage(d *drawnPage, r *http.Request, h int64, err error) {
	var pe *pageError
	if !errors.As(err, &pe) {
		e.log.Error("explorer page failed", "path", r.URL.Path, "err", err)
		pe = &pageError{Status: http.StatusInternalServerError, Msg: "The page could not be drawn: " + err.Error()}
	}
	title := "Not found"
	if pe.Status != http.StatusNotFound {
		title = http.StatusText(pe.Status)
	}
	e.renderPage(d, pe.Status, "error", layout{Title: title, Prefix: e.o.Prefix, Height: h, Error: pe})
}

func (e *Explorer) renderPage(d *drawnPage, status int, name string, l layout) {
	var buf bytes.Buffer
	if err := e.tmpl[name].ExecuteTemplate(&buf, "layout", l); err != nil {
		e.log.Error("explorer template", "page", name, "err", err)
		d.status, d.ctype, d.body = http.StatusInternalServerError, "text/plain; charset=utf-8", []byte("explorer: the page could not be drawn\n")
		return
	}
	d.status, d.ctype, d.body = status, "text/html; charset=utf-8", buf.Bytes()
}

// events streams server-sent events: "block" with the height of every
// block the index reads (data: {"height":H,"version":V}). Pages refresh
// their content when one arrives.
func (e *Explorer) events(w http.ResponseWriter, r *http.Request) {
	// Each stream holds a connection and a goroutine for as long as the
	// client keeps it: their number is bounded.
	if n := e.streams.Add(1); n > int64(e.o.MaxStreams) {
		e.streams.Add(-1)
		w.Header().Set("Retry-After", "30")
		http.Error(w, "explorer: too many event streams open; try again later", http.StatusServiceUnavailable)
		return
	}
	defer e.streams.Add(-1)
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	// Watch before the headers go out: a block read while they do is
	// an event, not missed by a page that loaded before it.
	ch, _ := e.o.Index.Changed()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n\n")
	fl.Flush()
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-e.o.Index.stopped:
			return
		case <-ping.C:
			fmt.Fprint(w, ": ping\n\n")
		case <-ch:
			var v uint64
			ch, v = e.o.Index.Changed()
			h, _ := e.o.Index.Height()
			fmt.Fprintf(w, "event: block\ndata: {\"height\":%d,\"version\":%d}\n\n", h, v)
		}
		fl.Flush()
	}
}

// refuse answers 503 when every slot is taken.
func (e *Explorer) refuse(w http.ResponseWriter, r *http.Request) {
	h, _ := e.o.Index.Height()
	var d drawnPage
	e.busy(&d, r, h)
	e.write(w, &d)
}

// search sends a receipt id, an account or an agent id to its page.
func (e *Explorer) search(w http.ResponseWriter, r *http.Request) {
	q := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("q")))
	if h, err := ledger.ParseHash(q); err == nil {
		release, ok := e.enter(w, r)
		if !ok {
			return
		}
		defer release()
		if _, found, err := e.o.Ledger.Receipt(r.Context(), h); err == nil && found {
			http.Redirect(w, r, e.o.Prefix+"receipt/"+q, http.StatusSeeOther)
			return
		}
		http.Redirect(w, r, e.o.Prefix+"account/"+q, http.StatusSeeOther)
		return
	}
	e.fail(w, r, notFound("%q is neither a receipt id nor an account (64 hex digits).", q))
}
