package explorer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
)

// Bounds of the page cache: the pages drawn at one height are kept until
// the next block, at most this many and this many bytes (beyond them a
// page is drawn for its request alone).
const (
	maxCachedPages = 1024
	maxCachedBytes = 16 << 20
)

// drawnPage is a page drawn once for every request of it at one height.
// done is closed when it is drawn; the fields are not written after.
type drawnPage struct {
	done   chan struct{}
	status int
	ctype  string // Content-Type
	body   []byte
	retry  int // Retry-After, in seconds (0: none): a 503 or a 429
}

// newDrawnPage returns a page to draw, a 500 until it is.
func newDrawnPage() *drawnPage {
	return &drawnPage{done: make(chan struct{}), status: 500, ctype: "text/plain; charset=utf-8", body: []byte("explorer: the page could not be drawn\n")}
}

// pageCache holds the pages drawn at the index's current height. Every
// open browser fetches its page again at each block, and a client may ask
// for one in a loop: a page asked for again before the next block (or
// while it is being drawn) is drawn once, and its ledger queries run
// once. Only complete pages (200) are kept past their drawing: a 404
// costs a few queries and an unknown id is new each time anyway, and a
// 502 or 503 must be tried again.
type pageCache struct {
	mu     sync.Mutex
	height int64
	pages  map[string]*drawnPage
	bytes  int
}

// claim returns the page drawn (or being drawn) under key at height h and
// false, or a new page for the caller to draw and true. A new page is
// shared with the requests that come while it is drawn unless the cache
// is full. admit is asked before a new page is drawn: when it says no,
// claim returns nil (and nobody waits for a page that will not be
// drawn).
func (c *pageCache) claim(key string, h int64, admit func() bool) (*drawnPage, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pages == nil || h != c.height {
		// A new block: every page drawn before it is stale. (A
		// request that read the height just before the index moved on
		// draws at the old one: its page is not kept, below.)
		if h < c.height {
			if !admit() {
				return nil, false
			}
			return newDrawnPage(), true
		}
		c.height, c.pages, c.bytes = h, map[string]*drawnPage{}, 0
	}
	if d := c.pages[key]; d != nil {
		return d, false
	}
	if !admit() {
		return nil, false
	}
	d := newDrawnPage()
	if len(c.pages) < maxCachedPages {
		c.pages[key] = d
	}
	return d, true
}

// settle keeps a drawn page for the rest of its height when it is
// complete and fits, and forgets it otherwise.
func (c *pageCache) settle(key string, h int64, d *drawnPage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h != c.height || c.pages[key] != d {
		return
	}
	if d.status != 200 || c.bytes+len(d.body) > maxCachedBytes {
		delete(c.pages, key)
		return
	}
	c.bytes += len(d.body)
}

// cachedRead is a value read from the ledger and the index height read
// just before the query: the node had applied at least that block, so
// an event at that height or below is in the value, one above is not.
type cachedRead[T any] struct {
	v  T
	at int64
}

// reputation is an agent's ERC-8004 summary and its Validation registry
// summary, as the workers page shows them.
type reputation struct {
	Rep        string // the mean of its feedback, or "none"
	Feedback   uint64
	Validation string // mean validation response 0..100, or "none"
}

// readCache keeps the records the pages read from the ledger that change
// only with events the index sees (readCache's callers say which): each
// is read again only after such an event, so that drawing the workers
// page at each block costs a query per stake, name and summary that
// changed, not one per row. They bound the explorer's memory like the
// index does: an entry per account or agent the index lists.
type readCache struct {
	mu     sync.Mutex
	stakes map[ledger.Address]cachedRead[ledger.Stake]
	names  map[uint64]cachedRead[string]
	reps   map[uint64]cachedRead[reputation]
	models map[ledger.Hash]cachedRead[modelRead]
}

// modelRead is the answer of a model query.
type modelRead struct {
	m     ledger.Model
	found bool
}

func newReadCache() *readCache {
	return &readCache{stakes: map[ledger.Address]cachedRead[ledger.Stake]{}, names: map[uint64]cachedRead[string]{},
		reps: map[uint64]cachedRead[reputation]{}, models: map[ledger.Hash]cachedRead[modelRead]{}}
}

// cached returns the value kept under k when it was read at or after
// height changed (that of the last event that could change it).
func cached[K comparable, V any](c *readCache, m map[K]cachedRead[V], k K, changed int64) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := m[k]
	if !ok || e.at < changed {
		var zero V
		return zero, false
	}
	return e.v, true
}

// keep stores v, read after the index reached height at, unless a value
// read later is kept already.
func keep[K comparable, V any](c *readCache, m map[K]cachedRead[V], k K, v V, at int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := m[k]; ok && e.at > at {
		return
	}
	m[k] = cachedRead[V]{v: v, at: at}
}

// answered reports whether err is the ledger's own answer (a query it
// refused: an unknown key, a summary over its limits), which holds until
// the state changes, rather than a failure to reach it.
func answered(err error) bool {
	var qe *client.QueryError
	return err == nil || errors.As(err, &qe)
}

// stake returns an account's stake. changed is the height of the last
// event that changed what the workers page shows of it (bond, unbond,
// slash, unjail): its bonded stake, jail and slash count.
func (e *Explorer) stake(ctx context.Context, a ledger.Address, changed int64) (ledger.Stake, error) {
	if st, ok := cached(e.reads, e.reads.stakes, a, changed); ok {
		return st, nil
	}
	at, _ := e.o.Index.Height()
	st, err := e.o.Ledger.Stake(ctx, a)
	if err != nil {
		return st, fmt.Errorf("stake of %s: %w", a, err)
	}
	keep(e.reads, e.reads.stakes, a, st, at)
	return st, nil
}

// agentName reads an agent's "name" metadata (ERC-8004 getMetadata), ""
// when it has none. (The registration file at its URI names it too; the
// explorer does not fetch URIs from the ledger.) An agent the index saw
// no name set for has none: no query.
func (e *Explorer) agentName(ctx context.Context, ag agentInfo) string {
	if ag.Named == 0 {
		return ""
	}
	if n, ok := cached(e.reads, e.reads.names, ag.ID, ag.Named); ok {
		return n
	}
	at, _ := e.o.Index.Height()
	b, err := e.o.Ledger.Query(ctx, fmt.Sprintf("agent/%d/metadata/%s", ag.ID, nameKey), nil)
	if err != nil {
		if answered(err) {
			keep(e.reads, e.reads.names, ag.ID, "", at)
		}
		return ""
	}
	var v []byte
	name := ""
	if json.Unmarshal(b, &v) == nil {
		name = strings.ToValidUTF8(string(v), "\uFFFD")
	}
	keep(e.reads, e.reads.names, ag.ID, name, at)
	return name
}

// reputation reads ERC-8004 getSummary and the Validation registry's
// summary of an agent. An agent the index saw no feedback or validation
// for has none: no query.
func (e *Explorer) reputation(ctx context.Context, ag agentInfo) reputation {
	none := reputation{Rep: "none", Validation: "none"}
	if ag.Rated == 0 {
		return none
	}
	if r, ok := cached(e.reads, e.reads.reps, ag.ID, ag.Rated); ok {
		return r
	}
	at, _ := e.o.Index.Height()
	r := none
	req, _ := json.Marshal(ledger.SummaryRequest{AgentID: ag.ID})
	b, err := e.o.Ledger.Query(ctx, "summary", req)
	if err != nil {
		// An agent with too many clients to sum: shown as none (and
		// its validations too, as before the summaries were kept).
		if answered(err) {
			keep(e.reads, e.reads.reps, ag.ID, r, at)
		}
		return r
	}
	var s ledger.Summary
	if json.Unmarshal(b, &s) == nil && s.Count > 0 {
		r.Rep, r.Feedback = decimal(string(s.SummaryValue), s.SummaryValueDecimals), s.Count
	}
	vreq, _ := json.Marshal(ledger.ValidationSummaryRequest{AgentID: ag.ID})
	b, err = e.o.Ledger.Query(ctx, "validationSummary", vreq)
	if err == nil {
		var vs ledger.ValidationSummary
		if json.Unmarshal(b, &vs) == nil && vs.Count > 0 {
			r.Validation = fmt.Sprintf("%d/100 (%d responses)", vs.AvgResponse, vs.Count)
		}
	}
	if answered(err) {
		keep(e.reads, e.reads.reps, ag.ID, r, at)
	}
	return r
}

// model reads a model's record. Its changes all come with an event
// naming it (model_registered, model_attested, model_active).
func (e *Explorer) model(ctx context.Context, id ledger.Hash) (ledger.Model, bool, error) {
	changed := e.o.Index.modelChangedAt(id)
	if m, ok := cached(e.reads, e.reads.models, id, changed); ok {
		return m.m, m.found, nil
	}
	at, _ := e.o.Index.Height()
	m, found, err := e.o.Ledger.Model(ctx, id)
	if err != nil {
		return m, found, fmt.Errorf("model %s: %w", id, err)
	}
	keep(e.reads, e.reads.models, id, modelRead{m: m, found: found}, at)
	return m, found, nil
}

// receiptStatus returns the status a receipt the index lists shows
// (ReceiptRecord.Shown; "" when the ledger cannot say). The index keeps
// it until the receipt's next step: the account page lists 50 receipts
// and the overview 20, and drawing them at every block asked the node
// for each of them every time.
func (e *Explorer) receiptStatus(ctx context.Context, ri receiptInfo) string {
	if ri.ShownAt > 0 && ri.ShownAt >= ri.Changed {
		return ri.Shown
	}
	at, _ := e.o.Index.Height()
	rec, found, err := e.o.Ledger.Receipt(ctx, ri.ID)
	if err != nil {
		return ""
	}
	shown := ""
	if found {
		shown = rec.Shown()
	}
	e.o.Index.keepShown(ri.ID, shown, at)
	return shown
}
