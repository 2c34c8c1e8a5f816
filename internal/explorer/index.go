package explorer

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
)

// Blocks is where the index reads the chain: *client.Follower.
type Blocks interface {
	NextBlock(ctx context.Context) (client.Block, error)
}

// The ledger's event types and attributes the index reads (docs/ledger.md,
// "Events").
const (
	evReceiptPublished = "receipt_published"
	evReceiptFinal     = "receipt_final"
	evEscrowOpened     = "escrow_opened"
	evEscrowRefunded   = "escrow_refunded"
	evAuditSelected    = "audit_selected"
	evAuditRevealed    = "audit_revealed"
	evAuditPassed      = "audit_passed"
	evAuditFailed      = "audit_failed"
	evAuditMissed      = "audit_missed"
	evDisputeOpened    = "dispute_opened"
	evDisputeMove      = "dispute_move"
	evDisputeSettled   = "dispute_settled"
	evDisputeTimeout   = "dispute_timeout"
	evModelRegistered  = "model_registered"
	evRegistered       = "Registered"
	evSlash            = "slash"
	evBond             = "bond"
)

// History bounds what the index keeps in memory.
const (
	// keepBlocks is the number of recent blocks whose counts the
	// overview charts.
	keepBlocks = 2400
	// keepReceipts is the number of receipts whose timelines are kept;
	// older ones still show, from the ledger, without a timeline.
	keepReceipts = 20000
	// recentReceipts is the number listed on the overview.
	recentReceipts = 20
)

// Step is one change in a receipt's life.
type Step struct {
	Height int64
	Time   time.Time
	// Status is the status shown from this step on (ledger.Shown*), or
	// "" for a step that does not change it (an audit selected, a
	// dispute move).
	Status string
	// What says what happened, in words.
	What string
}

// receiptInfo is what the index learned of one receipt from events.
type receiptInfo struct {
	ID        ledger.Hash
	Worker    ledger.Address
	Requester ledger.Address
	Model     ledger.Hash
	Height    int64
	Steps     []Step
	Disputes  []ledger.Hash
}

// workerStats counts one worker's record from events.
type workerStats struct {
	Receipts       uint64 // receipts published
	Final          uint64
	Slashed        uint64 // receipts slashed
	AuditsAnswered uint64 // audits whose openings it posted (passed or failed)
	AuditsMissed   uint64
	DisputesWon    uint64
	DisputesLost   uint64
}

// blockStat is one block's counts for the charts.
type blockStat struct {
	Height       int64
	Time         time.Time
	Receipts     int
	AuditsPassed int
	AuditsFailed int
}

type disputeInfo struct {
	ID      ledger.Hash
	Receipt ledger.Hash
	Worker  ledger.Address
	Height  int64
	Status  string // "" while open
}

// Index follows the ledger block by block and keeps what the ledger's
// queries cannot list: which receipts, agents, models and disputes exist,
// each receipt's timeline and each worker's counts. Everything else is
// read from the ledger when a page is drawn.
type Index struct {
	mu       sync.Mutex
	from     int64 // first height indexed
	height   int64 // last height indexed
	blocks   []blockStat
	receipts map[ledger.Hash]*receiptInfo
	order    []ledger.Hash // receipts by publication, oldest first
	escrows  map[ledger.Hash]ledger.Address
	workers  map[ledger.Address]*workerStats
	agents   []uint64
	models   []ledger.Hash
	modelN   map[ledger.Hash]uint64 // receipts per model
	disputes map[ledger.Hash]*disputeInfo
	audits   struct{ passed, failed, missed uint64 }
	version  uint64
	changed  chan struct{} // closed and replaced on every block
	stopped  chan struct{} // closed when Run returns
	stopOnce sync.Once
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{
		receipts: map[ledger.Hash]*receiptInfo{},
		escrows:  map[ledger.Hash]ledger.Address{},
		workers:  map[ledger.Address]*workerStats{},
		modelN:   map[ledger.Hash]uint64{},
		disputes: map[ledger.Hash]*disputeInfo{},
		changed:  make(chan struct{}),
		stopped:  make(chan struct{}),
	}
}

// Run reads blocks until ctx ends, retrying after errors talking to the
// node (logged by the caller through onErr, which may be nil).
func (x *Index) Run(ctx context.Context, src Blocks, onErr func(error)) error {
	// Event streams end with the index: a server shutting down does not
	// wait for browsers to hang up.
	defer x.stopOnce.Do(func() { close(x.stopped) })
	for {
		b, err := src.NextBlock(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if onErr != nil {
				onErr(err)
			}
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		x.Add(b)
	}
}

// Changed returns a channel closed at the next block indexed, and the
// index's version (the number of blocks indexed).
func (x *Index) Changed() (<-chan struct{}, uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.changed, x.version
}

// Height returns the last height indexed and the first.
func (x *Index) Height() (last, first int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.height, x.from
}

func (x *Index) worker(a ledger.Address) *workerStats {
	w := x.workers[a]
	if w == nil {
		w = &workerStats{}
		x.workers[a] = w
	}
	return w
}

func parseHash(attrs map[string]string, k string) (ledger.Hash, bool) {
	h, err := ledger.ParseHash(attrs[k])
	return h, err == nil
}

func parseAddr(attrs map[string]string, k string) (ledger.Address, bool) {
	a, err := ledger.ParseAddress(attrs[k])
	return a, err == nil
}

// Add indexes one block. Blocks must come in order; one already indexed
// is ignored.
func (x *Index) Add(b client.Block) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if b.Height <= x.height {
		return
	}
	if x.from == 0 {
		x.from = b.Height
	}
	x.height = b.Height
	bs := blockStat{Height: b.Height, Time: b.Time}
	step := func(id ledger.Hash, status, what string) {
		if r := x.receipts[id]; r != nil {
			r.Steps = append(r.Steps, Step{Height: b.Height, Time: b.Time, Status: status, What: what})
		}
	}
	for _, e := range b.Events {
		a := e.Attrs
		switch e.Type {
		case evEscrowOpened:
			if id, ok := parseHash(a, "escrowId"); ok {
				if req, ok := parseAddr(a, "requester"); ok {
					x.escrows[id] = req
				}
			}
		case evEscrowRefunded:
			if id, ok := parseHash(a, "escrowId"); ok {
				delete(x.escrows, id) // never claimed: no receipt will name it
			}
		case evReceiptPublished:
			id, ok1 := parseHash(a, "receiptId")
			w, ok2 := parseAddr(a, "worker")
			if !ok1 || !ok2 || x.receipts[id] != nil {
				continue
			}
			m, _ := parseHash(a, "modelId")
			esc, _ := parseHash(a, "escrowId")
			r := &receiptInfo{ID: id, Worker: w, Model: m, Height: b.Height, Requester: x.escrows[esc]}
			delete(x.escrows, esc)
			x.receipts[id] = r
			x.order = append(x.order, id)
			if len(x.order) > keepReceipts {
				delete(x.receipts, x.order[0])
				x.order = x.order[1:]
			}
			x.worker(w).Receipts++
			x.modelN[m]++
			bs.Receipts++
			step(id, ledger.ShownPublished, "published by worker "+short(w.String())+", challenge window until block "+a["windowEnd"])
		case evAuditSelected:
			if id, ok := parseHash(a, "receiptId"); ok {
				step(id, "", fmt.Sprintf("selected for an audit of %s cells, openings due by block %s", a["cells"], a["deadline"]))
			}
		case evAuditRevealed:
			if id, ok := parseHash(a, "receiptId"); ok {
				step(id, "", "audit seed revealed")
			}
		case evAuditPassed, evAuditFailed, evAuditMissed:
			id, ok := parseHash(a, "receiptId")
			if !ok {
				continue
			}
			var w *workerStats
			if r := x.receipts[id]; r != nil {
				w = x.worker(r.Worker)
			}
			switch e.Type {
			case evAuditPassed:
				x.audits.passed++
				bs.AuditsPassed++
				if w != nil {
					w.AuditsAnswered++
				}
				step(id, ledger.ShownAudited, "audit passed: the worker's openings check")
			case evAuditFailed:
				x.audits.failed++
				bs.AuditsFailed++
				if w != nil {
					w.AuditsAnswered++
					w.Slashed++
				}
				step(id, ledger.ShownSlashed, "audit failed: "+a["error"])
			default:
				x.audits.missed++
				bs.AuditsFailed++
				if w != nil {
					w.AuditsMissed++
					w.Slashed++
				}
				step(id, ledger.ShownSlashed, "audit missed: no openings by the deadline")
			}
		case evDisputeOpened:
			did, ok1 := parseHash(a, "disputeId")
			rid, ok2 := parseHash(a, "receiptId")
			w, _ := parseAddr(a, "worker")
			if !ok1 || !ok2 {
				continue
			}
			x.disputes[did] = &disputeInfo{ID: did, Receipt: rid, Worker: w, Height: b.Height}
			if r := x.receipts[rid]; r != nil {
				r.Disputes = append(r.Disputes, did)
			}
			step(rid, ledger.ShownChallenged, "challenged by "+short(a["challenger"])+": dispute "+short(did.String())+" opened")
		case evDisputeMove:
			did, ok := parseHash(a, "disputeId")
			if d := x.disputes[did]; ok && d != nil {
				step(d.Receipt, "", "dispute "+short(did.String())+": answer "+a["move"]+" from "+short(a["from"]))
			}
		case evDisputeTimeout:
			did, ok := parseHash(a, "disputeId")
			if d := x.disputes[did]; ok && d != nil {
				step(d.Receipt, "", "dispute "+short(did.String())+": a party missed its deadline")
			}
		case evDisputeSettled:
			did, ok := parseHash(a, "disputeId")
			d := x.disputes[did]
			if !ok || d == nil {
				continue
			}
			d.Status = a["status"]
			w := x.worker(d.Worker)
			status, what := "", "dispute "+short(did.String())+" settled: "+a["status"]
			if a["reason"] != "" {
				what += " (" + a["reason"] + ")"
			}
			switch d.Status {
			case ledger.DisputeWorkerLost, ledger.DisputeBothLost:
				w.DisputesLost++
				w.Slashed++
				status = ledger.ShownSlashed
			case ledger.DisputeChallengerLost:
				w.DisputesWon++
			}
			step(d.Receipt, status, what)
		case evReceiptFinal:
			if id, ok := parseHash(a, "receiptId"); ok {
				if w, ok := parseAddr(a, "worker"); ok {
					x.worker(w).Final++
				}
				step(id, ledger.ShownFinal, "final: the fee of "+a["fee"]+" paid to the worker")
			}
		case evModelRegistered:
			if id, ok := parseHash(a, "modelId"); ok && !slices.Contains(x.models, id) {
				x.models = append(x.models, id)
			}
		case evRegistered:
			if id, err := strconv.ParseUint(a["agentId"], 10, 64); err == nil && !slices.Contains(x.agents, id) {
				x.agents = append(x.agents, id)
			}
		case evBond:
			if w, ok := parseAddr(a, "account"); ok {
				x.worker(w) // a bonded account is listed among the workers
			}
		}
	}
	x.blocks = append(x.blocks, bs)
	if len(x.blocks) > keepBlocks {
		x.blocks = x.blocks[len(x.blocks)-keepBlocks:]
	}
	x.version++
	close(x.changed)
	x.changed = make(chan struct{})
}

// short abbreviates a hex id for display (the full id is in the link).
func short(s string) string {
	if len(s) <= 12 {
		return s
	}
	return s[:8] + "…" + s[len(s)-4:]
}

// snapshot is a copy of the index for one page.
type snapshot struct {
	From, Height int64
	Blocks       []blockStat
	Recent       []receiptInfo // newest first
	OpenDisputes []disputeInfo
	Disputes     int
	AuditsPassed uint64
	AuditsFailed uint64
	AuditsMissed uint64
	Receipts     int
	Agents       []uint64
	Models       []ledger.Hash
	ModelN       map[ledger.Hash]uint64
	Workers      map[ledger.Address]workerStats
}

func (x *Index) snapshot() snapshot {
	x.mu.Lock()
	defer x.mu.Unlock()
	s := snapshot{From: x.from, Height: x.height, Blocks: slices.Clone(x.blocks), Receipts: len(x.order),
		AuditsPassed: x.audits.passed, AuditsFailed: x.audits.failed, AuditsMissed: x.audits.missed,
		Agents: slices.Clone(x.agents), Models: slices.Clone(x.models), ModelN: map[ledger.Hash]uint64{},
		Workers: map[ledger.Address]workerStats{}, Disputes: len(x.disputes)}
	for i := len(x.order) - 1; i >= 0 && len(s.Recent) < recentReceipts; i-- {
		s.Recent = append(s.Recent, *x.receipts[x.order[i]])
	}
	for _, d := range x.disputes {
		if d.Status == "" {
			s.OpenDisputes = append(s.OpenDisputes, *d)
		}
	}
	slices.SortFunc(s.OpenDisputes, func(a, b disputeInfo) int {
		if a.Height != b.Height {
			return int(a.Height - b.Height)
		}
		return slices.Compare(a.ID[:], b.ID[:])
	})
	for k, v := range x.modelN {
		s.ModelN[k] = v
	}
	for k, v := range x.workers {
		s.Workers[k] = *v
	}
	return s
}

// receipt returns what the index knows of one receipt.
func (x *Index) receipt(id ledger.Hash) (receiptInfo, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	r := x.receipts[id]
	if r == nil {
		return receiptInfo{}, false
	}
	c := *r
	c.Steps = slices.Clone(r.Steps)
	c.Disputes = slices.Clone(r.Disputes)
	return c, true
}

// receiptsOf returns the newest receipts (at most n) a worker served or a
// requester paid for.
func (x *Index) receiptsOf(a ledger.Address, n int) []receiptInfo {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []receiptInfo
	for i := len(x.order) - 1; i >= 0 && len(out) < n; i-- {
		r := x.receipts[x.order[i]]
		if r.Worker == a || r.Requester == a {
			out = append(out, *r)
		}
	}
	return out
}
