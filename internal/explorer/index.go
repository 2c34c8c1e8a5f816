package explorer

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
)

// Blocks is where the index reads the chain: *client.Follower.
type Blocks interface {
	NextBlock(ctx context.Context) (client.Block, error)
}

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
	// Changed is the height of its last step: every event that changes
	// what its record shows (ReceiptRecord.Shown: its status, its
	// audit's) is a step. Shown is that status as the explorer last read
	// it from the ledger, after the index reached height ShownAt (0: never
	// read); it holds while ShownAt >= Changed.
	Changed int64
	Shown   string
	ShownAt int64
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

// agentInfo is what the index learned of one agent from the identity
// events: its owner, wallet and URI, which the account and workers pages
// show without asking the ledger (the ledger cannot list an account's
// agents: finding them by query is one query per agent ever registered,
// and registering one costs a fee unit), and when its name
// and reputation last changed. Those two are not in the events (a
// MetadataSet event names the key, not the value; feedback and
// validations are summed by the ledger's queries): the explorer reads
// them and keeps them until a later event (readCache).
type agentInfo struct {
	ID     uint64
	Owner  ledger.Address
	Wallet ledger.Address // the zero address when cleared (a transfer clears it)
	URI    string
	// Named is the height of the last MetadataSet of the agent's name
	// key (0: never set, so the agent has no name); Rated that of the last
	// feedback given or revoked, or validation requested or answered (0:
	// none, so its summaries count nothing).
	Named, Rated int64
}

// nameKey is the metadata key whose value names an agent (ERC-8004
// getMetadata(agentId, "name")).
const nameKey = "name"

type disputeInfo struct {
	ID      ledger.Hash
	Receipt ledger.Hash
	Worker  ledger.Address
	Height  int64
	Status  string // "" while open
}

// Index follows the ledger block by block and keeps what the ledger's
// queries cannot list: which receipts, agents, models and disputes exist,
// each receipt's timeline, each worker's counts, and each agent's owner,
// wallet and URI. Everything else is read from the ledger when a page is
// drawn; the index also says when the records the explorer keeps last
// changed (stakes, agents' names and summaries, models). It starts at
// the first block it is given: agents registered before it are not
// listed (nor are the receipts published before it).
type Index struct {
	mu       sync.Mutex
	from     int64 // first height indexed
	height   int64 // last height indexed
	blocks   []blockStat
	receipts map[ledger.Hash]*receiptInfo
	order    []ledger.Hash // receipts by publication, oldest first
	escrows  map[ledger.Hash]ledger.Address
	workers  map[ledger.Address]*workerStats
	agents   []*agentInfo // by registration, oldest first
	agentIDs map[uint64]*agentInfo
	// staked is the height of the last event that changed an account's
	// bonded stake, jail or slash count (what the workers page shows of
	// its stake); modelChanged that of the last event of a model's
	// record. The explorer reads these records again only after them.
	staked       map[ledger.Address]int64
	models       []ledger.Hash
	modelIDs     map[ledger.Hash]bool
	modelChanged map[ledger.Hash]int64
	modelN       map[ledger.Hash]uint64 // receipts per model
	disputes     map[ledger.Hash]*disputeInfo
	audits       struct{ passed, failed, missed uint64 }
	version      uint64
	changed      chan struct{} // closed and replaced on every block
	stopped      chan struct{} // closed when Run returns
	stopOnce     sync.Once
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{
		receipts:     map[ledger.Hash]*receiptInfo{},
		escrows:      map[ledger.Hash]ledger.Address{},
		workers:      map[ledger.Address]*workerStats{},
		agentIDs:     map[uint64]*agentInfo{},
		staked:       map[ledger.Address]int64{},
		modelIDs:     map[ledger.Hash]bool{},
		modelChanged: map[ledger.Hash]int64{},
		modelN:       map[ledger.Hash]uint64{},
		disputes:     map[ledger.Hash]*disputeInfo{},
		changed:      make(chan struct{}),
		stopped:      make(chan struct{}),
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

// attrHash reads a hash attribute of an event without a typed decoder.
func attrHash(e client.Event, k ledger.AttrKey) (ledger.Hash, bool) {
	v, ok := e.Attr(k)
	if !ok {
		return ledger.Hash{}, false
	}
	h, err := ledger.ParseHash(v)
	return h, err == nil
}

// attrUint reads an unsigned attribute of an event without a typed
// decoder.
func attrUint(e client.Event, k ledger.AttrKey) (uint64, bool) {
	v, ok := e.Attr(k)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 64)
	return n, err == nil
}

// attrAddress reads an address attribute of an event without a typed
// decoder.
func attrAddress(e client.Event, k ledger.AttrKey) (ledger.Address, bool) {
	v, ok := e.Attr(k)
	if !ok {
		return ledger.Address{}, false
	}
	a, err := ledger.ParseAddress(v)
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
			r.Changed = b.Height
		}
	}
	// Events the ledger decodes are read with its typed decoders; a
	// malformed one (a node on another version) is skipped.
	for _, e := range b.Events {
		switch e.Type {
		case ledger.EventEscrowOpened:
			if o, err := ledger.DecodeEscrowOpened(e.Event); err == nil {
				x.escrows[o.EscrowID] = o.Requester
			}
		case ledger.EventEscrowRefunded:
			if f, err := ledger.DecodeEscrowRefunded(e.Event); err == nil {
				delete(x.escrows, f.EscrowID) // never claimed: no receipt will name it
			}
		case ledger.EventReceiptPublished:
			p, err := ledger.DecodeReceiptPublished(e.Event)
			if err != nil || x.receipts[p.ReceiptID] != nil {
				continue
			}
			r := &receiptInfo{ID: p.ReceiptID, Worker: p.Worker, Model: p.ModelID, Height: b.Height, Requester: x.escrows[p.EscrowID]}
			delete(x.escrows, p.EscrowID)
			x.receipts[p.ReceiptID] = r
			x.order = append(x.order, p.ReceiptID)
			if len(x.order) > keepReceipts {
				delete(x.receipts, x.order[0])
				x.order = x.order[1:]
			}
			x.worker(p.Worker).Receipts++
			x.modelN[p.ModelID]++
			bs.Receipts++
			step(p.ReceiptID, ledger.ShownPublished, fmt.Sprintf("published by worker %s, challenge window until block %d", short(p.Worker.String()), p.WindowEnd))
		case ledger.EventAuditSelected:
			if a, err := ledger.DecodeAuditSelected(e.Event); err == nil {
				step(a.ReceiptID, "", fmt.Sprintf("selected for an audit of %d cells, openings due by block %d", a.Cells, a.Deadline))
			}
		case ledger.EventAuditRevealed:
			if id, ok := attrHash(e, ledger.AttrReceiptID); ok {
				step(id, "", "audit seed revealed")
			}
		case ledger.EventAuditPassed, ledger.EventAuditFailed, ledger.EventAuditMissed:
			id, ok := attrHash(e, ledger.AttrReceiptID)
			if !ok {
				continue
			}
			var w *workerStats
			if r := x.receipts[id]; r != nil {
				w = x.worker(r.Worker)
			}
			switch e.Type {
			case ledger.EventAuditPassed:
				x.audits.passed++
				bs.AuditsPassed++
				if w != nil {
					w.AuditsAnswered++
				}
				step(id, ledger.ShownAudited, "audit passed: the worker's openings check")
			case ledger.EventAuditFailed:
				x.audits.failed++
				bs.AuditsFailed++
				if w != nil {
					w.AuditsAnswered++
					w.Slashed++
				}
				why, _ := e.Attr(ledger.AttrError)
				step(id, ledger.ShownSlashed, "audit failed: "+why)
			default:
				x.audits.missed++
				bs.AuditsFailed++
				if w != nil {
					w.AuditsMissed++
					w.Slashed++
				}
				step(id, ledger.ShownSlashed, "audit missed: no openings by the deadline")
			}
		case ledger.EventDisputeOpened:
			d, err := ledger.DecodeDisputeOpened(e.Event)
			if err != nil {
				continue
			}
			x.disputes[d.DisputeID] = &disputeInfo{ID: d.DisputeID, Receipt: d.ReceiptID, Worker: d.Worker, Height: b.Height}
			if r := x.receipts[d.ReceiptID]; r != nil {
				r.Disputes = append(r.Disputes, d.DisputeID)
			}
			step(d.ReceiptID, ledger.ShownChallenged, "challenged by "+short(d.Challenger.String())+": dispute "+short(d.DisputeID.String())+" opened")
		case ledger.EventDisputeMove:
			m, err := ledger.DecodeDisputeMove(e.Event)
			if d := x.disputes[m.DisputeID]; err == nil && d != nil {
				step(d.Receipt, "", fmt.Sprintf("dispute %s: answer %d, from the %s", short(m.DisputeID.String()), m.Move, m.From))
			}
		case ledger.EventDisputeTimeout:
			did, ok := attrHash(e, ledger.AttrDisputeID)
			if d := x.disputes[did]; ok && d != nil {
				step(d.Receipt, "", "dispute "+short(did.String())+": a party missed its deadline")
			}
		case ledger.EventDisputeSettled:
			ds, err := ledger.DecodeDisputeSettled(e.Event)
			d := x.disputes[ds.DisputeID]
			if err != nil || d == nil {
				continue
			}
			d.Status = ds.Status
			w := x.worker(d.Worker)
			status, what := "", "dispute "+short(ds.DisputeID.String())+" settled: "+ds.Status
			if why := faultWords(ds.WorkerFault, ds.ChallengerFault, ds.VoidFault); why != "" {
				what += " (" + why + ")"
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
		case ledger.EventReceiptFinal:
			if f, err := ledger.DecodeReceiptFinal(e.Event); err == nil {
				x.worker(f.Worker).Final++
				step(f.ReceiptID, ledger.ShownFinal, fmt.Sprintf("final: the fee of %d paid to the worker", f.Fee))
			}
		case ledger.EventModelRegistered, ledger.EventModelAttested, ledger.EventModelActive:
			id, ok := attrHash(e, ledger.AttrModelID)
			if !ok {
				continue
			}
			x.modelChanged[id] = b.Height
			if e.Type == ledger.EventModelRegistered && !x.modelIDs[id] {
				x.modelIDs[id] = true
				x.models = append(x.models, id)
			}
		case ledger.EventRegistered:
			// The ledger's registerAgent: the owner is the signer, and
			// the wallet too until setAgentWallet or a transfer.
			if g, err := ledger.DecodeRegistered(e.Event); err == nil && x.agentIDs[g.AgentID] == nil {
				a := &agentInfo{ID: g.AgentID, Owner: g.Owner, Wallet: g.Owner, URI: g.AgentURI}
				x.agentIDs[g.AgentID] = a
				x.agents = append(x.agents, a)
			}
		// Events of an agent registered before the first block indexed
		// change nothing: the index does not list it (it cannot know its
		// owner), as it does not list its receipts.
		case ledger.EventURIUpdated:
			if u, err := ledger.DecodeURIUpdated(e.Event); err == nil && x.agentIDs[u.AgentID] != nil {
				x.agentIDs[u.AgentID].URI = u.AgentURI
			}
		case ledger.EventMetadataSet:
			if m, err := ledger.DecodeMetadataSet(e.Event); err == nil && m.MetadataKey == nameKey && x.agentIDs[m.AgentID] != nil {
				x.agentIDs[m.AgentID].Named = b.Height
			}
		case ledger.EventAgentWalletSet:
			if w, err := ledger.DecodeAgentWalletSet(e.Event); err == nil && x.agentIDs[w.AgentID] != nil {
				x.agentIDs[w.AgentID].Wallet = w.AgentWallet
			}
		case ledger.EventAgentTransfer:
			if t, err := ledger.DecodeAgentTransfer(e.Event); err == nil && x.agentIDs[t.AgentID] != nil {
				x.agentIDs[t.AgentID].Owner = t.To // the wallet is cleared by the AgentWalletSet that follows
			}
		case ledger.EventNewFeedback, ledger.EventFeedbackRevoked, ledger.EventValidationRequest, ledger.EventValidationResponse:
			if id, ok := attrUint(e, ledger.AttrAgentID); ok && x.agentIDs[id] != nil {
				x.agentIDs[id].Rated = b.Height
			}
		case ledger.EventBond:
			if bd, err := ledger.DecodeBond(e.Event); err == nil {
				x.worker(bd.Account) // a bonded account is listed among the workers
				x.staked[bd.Account] = b.Height
			}
		case ledger.EventUnbond, ledger.EventSlash, ledger.EventUnjail:
			if a, ok := attrAddress(e, ledger.AttrAccount); ok {
				x.staked[a] = b.Height
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
	Models       []ledger.Hash
	ModelN       map[ledger.Hash]uint64
	Workers      map[ledger.Address]workerStats
}

func (x *Index) snapshot() snapshot {
	x.mu.Lock()
	defer x.mu.Unlock()
	s := snapshot{From: x.from, Height: x.height, Blocks: slices.Clone(x.blocks), Receipts: len(x.order),
		AuditsPassed: x.audits.passed, AuditsFailed: x.audits.failed, AuditsMissed: x.audits.missed,
		Models: slices.Clone(x.models), ModelN: map[ledger.Hash]uint64{},
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

// indexedWorker is one row of the workers page as the index knows it.
type indexedWorker struct {
	Address ledger.Address
	Stats   workerStats
	Agents  []uint64 // the agents it owns, by registration
	// Shown is the agent whose URI, name and reputation the row shows:
	// the first with a URI, or the last when none has one.
	Shown  *agentInfo
	Staked int64 // the height of the last event that changed its stake
}

// workerList returns the workers page's rows, unordered: every account
// that published, bonded or owns an agent, with what the index knows of
// it. It reads only memory (the page asked the ledger for every agent).
func (x *Index) workerList() []indexedWorker {
	x.mu.Lock()
	defer x.mu.Unlock()
	rows := make(map[ledger.Address]*indexedWorker, len(x.workers))
	row := func(a ledger.Address) *indexedWorker {
		w := rows[a]
		if w == nil {
			w = &indexedWorker{Address: a, Staked: x.staked[a]}
			if s := x.workers[a]; s != nil {
				w.Stats = *s
			}
			rows[a] = w
		}
		return w
	}
	for a := range x.workers {
		row(a)
	}
	for _, ag := range x.agents {
		w := row(ag.Owner)
		w.Agents = append(w.Agents, ag.ID)
		if w.Shown == nil || w.Shown.URI == "" {
			c := *ag
			w.Shown = &c
		}
	}
	out := make([]indexedWorker, 0, len(rows))
	for _, w := range rows {
		out = append(out, *w)
	}
	return out
}

// agentsOf returns the first n agents (by registration) an account owns
// or is the wallet of, and how many there are: a lookup in memory, where
// the account page asked the ledger for every agent ever registered.
func (x *Index) agentsOf(a ledger.Address, n int) ([]agentInfo, int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []agentInfo
	total := 0
	for _, ag := range x.agents {
		if ag.Owner == a || ag.Wallet == a {
			total++
			if len(out) < n {
				out = append(out, *ag)
			}
		}
	}
	return out, total
}

// workerStat returns an account's counts as a worker, if it is one.
func (x *Index) workerStat(a ledger.Address) (workerStats, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if w := x.workers[a]; w != nil {
		return *w, true
	}
	return workerStats{}, false
}

// modelChangedAt returns the height of the last event of a model's record
// (0: none seen).
func (x *Index) modelChangedAt(id ledger.Hash) int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.modelChanged[id]
}

// faultWords says why a dispute ended, from its fault codes: the record
// and the dispute_settled event keep codes, which the explorer words
// (dispute.Fault.Describe), one clause per party at fault.
func faultWords(worker, challenger, void dispute.Fault) string {
	var clauses []string
	if worker != "" {
		clauses = append(clauses, "the worker "+worker.Describe())
	}
	if challenger != "" {
		clauses = append(clauses, "the challenger "+challenger.Describe())
	}
	if void != "" {
		clauses = append(clauses, void.Describe())
	}
	return strings.Join(clauses, "; ")
}

// modelList returns page (from 1) of the models, n a page, in the order
// they were registered, with their receipt counts, and the number of
// models registered. A page past the last is empty: its offset is not
// computed, as for ?page=92233720368547760 it overflows.
func (x *Index) modelList(page, n int) ([]ledger.Hash, []uint64, int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	total := len(x.models)
	if page < 1 || page-1 >= (total+n-1)/n {
		return nil, nil, total
	}
	from := (page - 1) * n
	ids := slices.Clone(x.models[from:min(from+n, total)])
	counts := make([]uint64, len(ids))
	for i, id := range ids {
		counts[i] = x.modelN[id]
	}
	return ids, counts, total
}

// keepShown keeps a receipt's status as the ledger showed it after the
// index reached height at, unless one read later is kept already.
func (x *Index) keepShown(id ledger.Hash, shown string, at int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if r := x.receipts[id]; r != nil && at >= r.ShownAt {
		r.Shown, r.ShownAt = shown, at
	}
}
