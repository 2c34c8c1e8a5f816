package worker

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verdictnet/verdict/internal/audit"
	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/outbox"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/slots"
)

// Pending is a receipt promised to a client and not yet on the ledger: the
// outbox entry that the worker keeps on disk until the ledger has it
// (outbox.Record: the escrow it is paid from, its recorded escrow
// transaction and its failed attempts).
type Pending = outbox.Record

// Escrower says how the escrow that pays for a pending receipt is opened:
// the message and the sender of the account that pays (the gateway holds
// the requester's key). The Chain signs it through the sender, records
// the signed transaction in the outbox and only then broadcasts it. An
// error wrapping client.ErrRejected gives the receipt up.
type Escrower func(p *Pending, worker ledger.Address, model ledger.Hash, agentID uint64) (ledger.Msg, *Sender, error)

// ChainConfig configures a worker's life on the ledger.
type ChainConfig struct {
	// Client talks to a node; RPC is the same node's address (for
	// following blocks).
	Client *client.Client
	RPC    string
	// Dir holds the outbox (outbox/), the failed entries (failed/) and
	// agent.json.
	Dir string
	// Stake is bonded at Setup when the bonded stake is below it (default:
	// the chain's minWorkerStake).
	Stake    uint64
	AgentURI string
	// Validators are asked (ERC-8004 validationRequest) to validate every
	// published receipt.
	Validators []ledger.Address
	Escrow     Escrower
	// Poll is the publishing loop's period (default 200 ms).
	Poll time.Duration
	// MaxPending bounds the outbox: past it, Backlogged is true and the
	// gateway refuses new paid requests (default 1024; a receipt is never
	// refused once answered, so the outbox may pass the bound by the
	// requests running when it is reached).
	MaxPending int
	Logger     *slog.Logger
}

// Chain publishes a Local worker's receipts on the ledger, answers its
// audits and plays its disputes.
type Chain struct {
	w      *Local
	cfg    ChainConfig
	send   *Sender
	log    *slog.Logger
	addr   ledger.Address
	params ledger.Params
	agent  uint64

	// The outbox: its state machine (under mu, with watch, contested and
	// the submissions being written) and its records on disk.
	mu      sync.Mutex
	box     *outbox.Machine
	writing map[string]chan struct{}
	store   *outbox.Store
	// watch holds the receipts published and not yet final or slashed,
	// for their audits' openings (answerAudit reads a receipt from the
	// ledger when it is not here).
	watch map[string]watched
	// contested maps the disputes open against the worker to their
	// receipts: a settled dispute's event names the dispute alone
	// (receiptLife).
	contested map[string]string
	// reveals holds the sender of each escrow opened with an audit
	// commitment (the requester's, whose key derives the secret:
	// AuditSecret), by receipt id; revealAt the height its receipt was
	// published, once seen. The secret is revealed once the block after
	// that is committed. Kept in memory, and found again after a restart
	// for the receipts still in the outbox (restoreReveals); a receipt
	// published but not yet revealed at a crash is audited instead (safe,
	// more work).
	reveals  map[string]*Sender
	revealAt map[string]int64
	revealer batchSender                          // sends the reveals: send (a fake in tests)
	tip      func(context.Context) (int64, error) // the ledger's height: Client.Height
	disputes DisputeBook

	nPublished, audits, disputed, failures atomic.Int64
	worstAudit                             atomic.Int64 // blocks, see ChainStats.WorstAuditBlocks
	validations                            chan string  // published receipts to ask validations for

	// The follow state (Dir/follow.json) and the disputes it lists.
	fmu       sync.Mutex
	fstate    followState
	fdisputes map[string]string // dispute id to receipt id
	fdirty    bool

	tmu   sync.Mutex
	trees map[string]*sharedTree // receipt id to its disputes' trace tree

	// work grants the slots of the proof work (audit openings, dispute
	// traces and reloads), earliest deadline first: see slot. onSlot, when
	// set (tests), is told of each slot granted before the work runs.
	work *slots.Scheduler
	// read is the height of the last block the follow loop read: proof
	// work due by it or before can no longer land (slot).
	read   atomic.Int64
	onSlot func(what string, deadline uint64)
}

// ChainStats count what a worker did on the ledger.
type ChainStats struct {
	Published, AuditsAnswered, Disputes, Failed int64
	Pending                                     int
	// WorstAuditBlocks is the most blocks an audit answered by this
	// process took, from the block that selected it to the first block at
	// which the worker saw it resolved (its openings committed): at most
	// the chain's openingWindow, or the audit was missed.
	WorstAuditBlocks int64
}

// Stats returns the counters.
func (c *Chain) Stats() ChainStats {
	return ChainStats{Published: c.nPublished.Load(), AuditsAnswered: c.audits.Load(), Disputes: c.disputed.Load(), Failed: c.failures.Load(),
		Pending: c.PendingCount(), WorstAuditBlocks: c.worstAudit.Load()}
}

// Register adds the worker's ledger metrics to reg.
func (c *Chain) Register(reg prometheus.Registerer) error {
	counter := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	for _, col := range []prometheus.Collector{
		counter("verdict_worker_receipts_published_total", "Receipts the ledger accepted from this worker.", &c.nPublished),
		counter("verdict_worker_audits_answered_total", "Audit openings posted.", &c.audits),
		counter("verdict_worker_disputes_total", "Disputes opened against this worker.", &c.disputed),
		counter("verdict_worker_receipts_failed_total", "Receipts given up on (moved to failed/).", &c.failures),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "verdict_worker_outbox_pending", Help: "Receipts waiting in the outbox."},
			func() float64 { return float64(c.PendingCount()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "verdict_worker_audit_worst_blocks", Help: "Most blocks an audit took from selection to resolution (openingWindow at most)."},
			func() float64 { return float64(c.worstAudit.Load()) }),
	} {
		if err := reg.Register(col); err != nil {
			return err
		}
	}
	return nil
}

// NewChain returns the ledger side of w; it loads the outbox from disk.
func NewChain(w *Local, cfg ChainConfig) (*Chain, error) {
	if cfg.Client == nil || cfg.Dir == "" {
		return nil, errors.New("worker chain: need a ledger client and a directory")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 200 * time.Millisecond
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s, err := NewSender(cfg.Client, w.key.Private, 1)
	if err != nil {
		return nil, err
	}
	c := &Chain{w: w, cfg: cfg, send: s, revealer: s, tip: cfg.Client.Height, log: cfg.Logger, addr: s.Address(),
		box: outbox.New(outbox.Config{Worker: s.Address(), MaxStarts: publishStarts}), watch: map[string]watched{}, contested: map[string]string{}, writing: map[string]chan struct{}{}, reveals: map[string]*Sender{}, revealAt: map[string]int64{}, validations: make(chan string, 4096),
		work: slots.New(proofSlots)}
	if c.store, err = outbox.OpenStore(cfg.Dir); err != nil {
		return nil, fmt.Errorf("worker chain: %w", err)
	}
	recs, err := c.store.Load()
	if err != nil {
		return nil, fmt.Errorf("worker chain: %w", err)
	}
	c.restoreReveals(recs)
	// Receipts that cannot be read are given up at once.
	c.carry(context.Background(), c.box.Step(outbox.Restore{Records: recs}))
	return c, nil
}

// Address is the worker's ledger account (its receipt-signing key).
func (c *Chain) Address() ledger.Address { return c.addr }

// AgentID is the worker's ERC-8004 agent id (0 before Setup).
func (c *Chain) AgentID() uint64 { return c.agent }

// Params are the chain's parameters (read at Setup).
func (c *Chain) Params() ledger.Params { return c.params }

// Setup registers the served model and the worker's ERC-8004 identity
// (once; the agent id is kept in Dir/agent.json) and bonds stake. It
// waits for each transaction's block.
func (c *Chain) Setup(ctx context.Context) error {
	var err error
	if c.params, err = c.cfg.Client.Params(ctx); err != nil {
		return fmt.Errorf("worker setup: %w", err)
	}
	for _, mi := range c.w.Models() {
		_, found, err := c.cfg.Client.Model(ctx, ledger.Hash(mi.ID))
		if err != nil {
			return fmt.Errorf("worker setup: %w", err)
		}
		if !found {
			_, err := c.send.Commit(ctx, &ledger.MsgRegisterModel{ModelID: ledger.Hash(mi.ID), Name: mi.Name, SpecVersion: 2})
			switch {
			case isCode(err, ledger.ErrNameTaken):
				return fmt.Errorf("worker setup: the ledger holds the name %q for another model (serve model %s under a name of its own: --name): %w", mi.Name, mi.ID, err)
			case err != nil && !isCode(err, ledger.ErrExists): // ErrExists: registered meanwhile
				return fmt.Errorf("worker setup: registering model %s: %w", mi.Name, err)
			}
		}
	}
	agentFile := filepath.Join(c.cfg.Dir, "agent.json")
	var saved struct {
		AgentID uint64 `json:"agentId"`
		Chain   string `json:"chainId"`
	}
	chain, err := c.cfg.Client.ChainID(ctx)
	if err != nil {
		return fmt.Errorf("worker setup: %w", err)
	}
	if b, err := os.ReadFile(agentFile); err == nil && json.Unmarshal(b, &saved) == nil && saved.Chain == chain && saved.AgentID > 0 {
		if a, found, err := c.cfg.Client.Agent(ctx, saved.AgentID); err == nil && found && a.Owner == c.addr {
			c.agent = saved.AgentID
		}
	}
	if c.agent == 0 {
		uri := c.cfg.AgentURI
		if uri == "" {
			uri = "verdict:worker/" + c.addr.String()
		}
		res, err := c.send.Commit(ctx, &ledger.MsgRegisterAgent{AgentURI: uri,
			Metadata: []ledger.MetadataEntry{{MetadataKey: "verdict.role", MetadataValue: []byte("worker")}}})
		if err != nil {
			return fmt.Errorf("worker setup: registering the agent: %w", err)
		}
		for _, e := range res.Events {
			if g, err := ledger.DecodeRegistered(e); err == nil {
				c.agent = g.AgentID
			}
		}
		if c.agent == 0 {
			return errors.New("worker setup: no agent id in the Registered event")
		}
		saved.AgentID, saved.Chain = c.agent, chain
		b, _ := json.Marshal(saved)
		if err := writeFileSync(agentFile, b); err != nil {
			return fmt.Errorf("worker setup: %w", err)
		}
	}
	if inactive, err := c.InactiveModels(ctx); err != nil {
		return fmt.Errorf("worker setup: %w", err)
	} else if len(inactive) > 0 {
		c.log.Warn("model registered but not active yet: receipts wait in the outbox until validators holding the chain's quorum of voting power attest to holding it (validator nodes started with --model do; by hand: verdict tx --validator-home DIR attest-model)",
			"modelIds", fmt.Sprint(inactive), "quorumBps", c.params.ModelQuorumBps)
	}
	want := c.cfg.Stake
	if want == 0 {
		want = c.params.MinWorkerStake
	}
	st, err := c.cfg.Client.Stake(ctx, c.addr)
	if err != nil {
		return fmt.Errorf("worker setup: %w", err)
	}
	if st.Bonded < want {
		if _, err := c.send.Commit(ctx, &ledger.MsgBond{Amount: want - st.Bonded}); err != nil {
			return fmt.Errorf("worker setup: bonding %d: %w", want-st.Bonded, err)
		}
	}
	c.log.Info("worker on the ledger", "address", c.addr.String(), "agentId", c.agent, "bonded", max(want, st.Bonded))
	return nil
}

// InactiveModels returns the ids of the served models that the ledger does
// not run yet: not registered, or registered and not active (validators
// holding the chain's quorum of voting power have not attested to holding
// them; see docs/ledger.md). Escrows for them are refused until then.
func (c *Chain) InactiveModels(ctx context.Context) ([]ledger.Hash, error) {
	params, err := c.cfg.Client.Params(ctx)
	if err != nil {
		return nil, err
	}
	var out []ledger.Hash
	for _, mi := range c.w.Models() {
		rec, found, err := c.cfg.Client.Model(ctx, ledger.Hash(mi.ID))
		if err != nil {
			return nil, err
		}
		if !found || !rec.Active && params.ModelQuorumBps != 0 {
			out = append(out, ledger.Hash(mi.ID))
		}
	}
	return out, nil
}

// WaitModelsActive waits until the ledger runs every served model
// (InactiveModels is empty), polling every poll, or until ctx ends.
func (c *Chain) WaitModelsActive(ctx context.Context, poll time.Duration) error {
	for {
		inactive, err := c.InactiveModels(ctx)
		if err == nil && len(inactive) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("models %v are not active: validators holding the chain's quorum of voting power have not attested to holding them", inactive)
			}
			return fmt.Errorf("waiting for the models to become active: %w (%w)", err, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// isCode reports whether err is a transaction the ledger refused or
// failed with class want (see ledger.Code).
func isCode(err, want error) bool {
	code, ok := client.ErrorCode(err)
	return ok && code == ledger.Code(want)
}

// Run publishes the outbox and follows the ledger for audits and disputes
// until ctx ends.
func (c *Chain) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.follow(ctx)
	}()
	go func() {
		defer wg.Done()
		c.requestValidations(ctx)
	}()
	// Every Poll the outbox steps its due receipts; a step's rounds (ask
	// for the receipts, open escrows, publish) may take longer than Poll
	// under load, so up to publishCycles steps overlap: each receipt is
	// in one of them at most (the Machine starts nothing for a receipt
	// whose answer is still out).
	t := time.NewTicker(c.cfg.Poll)
	defer t.Stop()
	cycles := make(chan struct{}, publishCycles)
	for {
		select {
		case cycles <- struct{}{}:
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-cycles }()
				c.publish(ctx)
			}()
		default:
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-t.C:
		}
	}
}

// publishCycles is how many publishing steps may overlap, and
// publishStarts how many receipts one step starts: a large backlog goes
// out in waves, one wave's escrows signed while the previous one's
// receipts are published.
const (
	publishCycles = 3
	publishStarts = 256
)

// requestValidations asks the configured validators to validate each
// published receipt (ERC-8004 validationRequest), off the publishing and
// following loops.
func (c *Chain) requestValidations(ctx context.Context) {
	for {
		var id string
		select {
		case <-ctx.Done():
			return
		case id = <-c.validations:
		}
		rid, _ := ledger.ParseHash(id)
		for _, v := range c.cfg.Validators {
			if _, err := c.send.Send(ctx, &ledger.MsgValidationRequest{
				ValidatorAddress: v, AgentID: c.agent, RequestURI: "verdict:receipt/" + id, RequestHash: ValidationRequestHash(rid, v)}); err != nil && ctx.Err() == nil {
				c.log.Warn("validation request", "receipt", id, "validator", v.String(), "err", err)
			}
		}
	}
}

// ValidationRequestHash is the ERC-8004 request hash under which a worker
// asks validator v to validate receipt id.
func ValidationRequestHash(id ledger.Hash, v ledger.Address) ledger.Hash {
	h := sha256.New()
	h.Write([]byte("verdict/validation/v1\x00"))
	h.Write(id[:])
	h.Write(v[:])
	var out ledger.Hash
	h.Sum(out[:0])
	return out
}

// follow reads every block: audits of the worker's receipts get openings,
// disputes against it get answers. It starts where the last run left off
// (Dir/follow.json), so that audits selected and disputes opened while the
// worker was down are answered too.
func (c *Chain) follow(ctx context.Context) {
	st, err := c.loadFollow(ctx)
	if err != nil {
		c.log.Error("following the ledger", "err", err)
		return
	}
	if st.Next > 0 {
		// Blocks older than the longest answer window hold nothing that
		// can still be answered in time (audits and dispute queries of
		// theirs are past their deadlines): after a long outage start past
		// them, so that replaying history does not delay live deadlines.
		if h, err := c.cfg.Client.Height(ctx); err == nil {
			if floor := resumeFloor(h, c.params); st.Next < floor {
				c.log.Warn("skipping blocks whose deadlines passed while the worker was down", "from", st.Next, "to", floor)
				st.Next = floor
			}
		}
	}
	f, err := NewFollower(c.cfg.RPC, st.Next)
	if err != nil {
		c.log.Error("following the ledger", "err", err)
		return
	}
	if st.Next > 0 {
		c.log.Info("following the ledger from where it was left", "height", st.Next, "disputes", len(st.Disputes))
	}
	// Audits and disputes are answered off the follow loop, so that one
	// slow opening does not delay the next block; at most proofSlots
	// openings or traces are computed at a time, the most urgent first
	// (Chain.slot).
	var wg sync.WaitGroup
	defer wg.Wait()
	wm := &watermark{low: st.Next, open: map[int64]int{}}
	// task runs fn off the loop; block h counts as handled (and the next
	// run starts after it) once fn and the tasks of every earlier block
	// returned.
	task := func(h int64, fn func()) {
		wm.begin(h)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn()
			if ctx.Err() == nil {
				c.saveFollow(wm.end(h))
			}
		}()
	}
	for _, d := range st.Disputes {
		c.mu.Lock()
		c.contested[d.Dispute] = d.Receipt
		c.mu.Unlock()
		task(st.Next, func() { c.startDispute(ctx, d.Dispute, d.Receipt) })
	}
	// Dispute moves are played off the loop too, one round at a time and
	// again after every block: a move may regenerate part of a trace
	// (Player.Reload), seconds of work under load, and a follow loop
	// waiting on it read no blocks meanwhile, so that audits selected
	// then went unanswered past their deadline (TestCrashSIGKILL under the
	// race detector: 13 receipts slashed after a restart).
	play := make(chan struct{}, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-play:
				c.playDisputes(ctx)
			}
		}
	}()
	for ctx.Err() == nil {
		h, evs, err := f.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("following the ledger", "err", err)
				sleep(ctx, 300*time.Millisecond)
			}
			continue
		}
		c.read.Store(h)
		if h%16 == 0 {
			c.unwatchOld(h)
		}
		var outboxEvs []outbox.Event
		for _, e := range evs {
			c.receiptLife(e.Event)
			switch e.Type {
			case ledger.EventAuditSelected:
				a, err := ledger.DecodeAuditSelected(e.Event)
				// The audit may be selected before the publishing loop has
				// seen its receipt on the ledger: the event names the worker.
				if err != nil || a.Worker != c.addr {
					continue
				}
				id := a.ReceiptID.String()
				c.mu.Lock()
				r := c.watch[id].r
				c.mu.Unlock()
				task(h, func() { c.answerAudit(ctx, id, r) })
			case ledger.EventDisputeSettled:
				// A move of it under way stops (its context ends): the
				// other disputes' moves wait behind it.
				if d, err := ledger.DecodeDisputeSettled(e.Event); err == nil && c.disputes.Remove(d.DisputeID) {
					c.trackDispute(d.DisputeID.String(), "")
				}
			case ledger.EventDisputeOpened:
				if d, err := ledger.DecodeDisputeOpened(e.Event); err == nil && d.Worker == c.addr {
					did, id := d.DisputeID.String(), d.ReceiptID.String()
					task(h, func() { c.startDispute(ctx, did, id) })
				}
			case ledger.EventReceiptPublished:
				// Drop the outbox entry at once, without a query.
				if p, err := ledger.DecodeReceiptPublished(e.Event); err == nil && p.Worker == c.addr {
					outboxEvs = append(outboxEvs, outbox.Published{ID: p.ReceiptID.String()})
					c.mu.Lock()
					if _, ok := c.reveals[p.ReceiptID.String()]; ok {
						c.revealAt[p.ReceiptID.String()] = h
					}
					c.mu.Unlock()
				}
			case ledger.EventEscrowOpened:
				// A receipt waiting for its escrow goes out now.
				if o, err := ledger.DecodeEscrowOpened(e.Event); err == nil && o.Worker == c.addr {
					outboxEvs = append(outboxEvs, outbox.EscrowOpened{EscrowID: o.EscrowID})
				}
			}
		}
		if len(outboxEvs) > 0 {
			// Off the follow loop: publishing must not delay the next block.
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.feed(ctx, outboxEvs)
			}()
		}
		task(h, func() { c.revealAudits(ctx, h) })
		c.saveFollow(wm.handled(h))
		select {
		case play <- struct{}{}:
		default: // a round is due already
		}
		if h%10 == 0 {
			c.maintain(ctx, h)
		}
	}
}

// receiptLife drops from watch each receipt whose life on the ledger
// event e ends: paid (final), or slashed, by a failed or missed audit or
// by a dispute the worker lost (or both parties lost), after which it is
// never final. Dropped at EventReceiptFinal alone, every receipt slashed
// stayed in memory for good. A settled dispute's event names the dispute
// alone: the disputes opened against the worker are kept in contested
// until they settle, to find their receipts.
func (c *Chain) receiptLife(e ledger.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch e.Type {
	case ledger.EventReceiptFinal:
		if f, err := ledger.DecodeReceiptFinal(e); err == nil {
			delete(c.watch, f.ReceiptID.String())
		}
	case ledger.EventAuditFailed, ledger.EventAuditMissed:
		// The receipt is slashed, or was settled already.
		if o, err := ledger.DecodeAuditOutcome(e); err == nil {
			delete(c.watch, o.ReceiptID.String())
		}
	case ledger.EventDisputeOpened:
		if d, err := ledger.DecodeDisputeOpened(e); err == nil && d.Worker == c.addr {
			c.contested[d.DisputeID.String()] = d.ReceiptID.String()
		}
	case ledger.EventDisputeSettled:
		d, err := ledger.DecodeDisputeSettled(e)
		if err != nil {
			return
		}
		rid, ok := c.contested[d.DisputeID.String()]
		if !ok {
			return // another worker's
		}
		delete(c.contested, d.DisputeID.String())
		// A dispute the worker lost slashes its receipt whatever other
		// disputes of it are open; one it won or that ended void leaves the
		// receipt to become final.
		if d.Status == ledger.DisputeWorkerLost || d.Status == ledger.DisputeBothLost {
			delete(c.watch, rid)
		}
	}
}

// watched is a receipt in Chain.watch, and the height of the last block
// the follow loop had read when it was published.
type watched struct {
	r  *receipt.Receipt
	at int64
}

// unwatchOld drops from watch the receipts published more than
// challengeWindow+openingWindow blocks before height h: no audit can be
// selected for them any more, or answered. A receipt whose end event
// (final, slashed) went by before it was watched (a restart republishing
// its outbox after a long outage) stayed there for good.
func (c *Chain) unwatchOld(h int64) {
	if c.params.ChallengeWindow == 0 {
		return // the chain's parameters not read yet
	}
	keep := int64(c.params.ChallengeWindow + c.params.OpeningWindow + 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, w := range c.watch {
		if h-w.at > keep {
			delete(c.watch, id)
		}
	}
}

// resumeFloor is the oldest block worth reading at height h: one whose
// audits (openingWindow) or dispute queries (moveWindow) may still be
// answered in time, with a block to spare.
func resumeFloor(h int64, p ledger.Params) int64 {
	return h - int64(max(p.OpeningWindow, p.MoveWindow)) - 1
}

// watermark tracks which blocks the follower handled: low is the first
// block not handled yet (every block below it was read and its tasks
// returned).
type watermark struct {
	mu   sync.Mutex
	low  int64         // 0: nothing read yet
	last int64         // the last block read
	open map[int64]int // running tasks by block
}

func (w *watermark) begin(h int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.open[h]++
}

func (w *watermark) end(h int64) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.open[h]--; w.open[h] <= 0 {
		delete(w.open, h)
	}
	return w.advance()
}

// handled records that block h was read (its tasks started).
func (w *watermark) handled(h int64) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.low == 0 {
		w.low = h
	}
	w.last = h
	return w.advance()
}

func (w *watermark) advance() int64 {
	for w.low != 0 && w.low <= w.last && w.open[w.low] == 0 {
		w.low++
	}
	return w.low
}

// followState is Dir/follow.json: the chain, the next block the follower
// reads after a restart (every block below it was handled: its audits'
// openings committed or the audit over, its disputes in Disputes) and the
// disputes being played.
type followState struct {
	Chain    string       `json:"chainId"`
	Next     int64        `json:"next"`
	Disputes []disputeRef `json:"disputes,omitempty"`
}

type disputeRef struct {
	Dispute string `json:"disputeId"`
	Receipt string `json:"receiptId"`
}

// loadFollow reads Dir/follow.json; a missing file, or one of another
// chain, starts at the next block.
func (c *Chain) loadFollow(ctx context.Context) (followState, error) {
	var chain string
	for {
		var err error
		if chain, err = c.cfg.Client.ChainID(ctx); err == nil {
			break
		}
		if ctx.Err() != nil {
			return followState{}, ctx.Err()
		}
		c.log.Warn("following the ledger", "err", err)
		sleep(ctx, time.Second)
	}
	var st followState
	b, err := os.ReadFile(filepath.Join(c.cfg.Dir, followFile))
	if errors.Is(err, os.ErrNotExist) {
		st = followState{Chain: chain}
	} else if err != nil {
		return st, fmt.Errorf("reading %s: %w", followFile, err)
	} else if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s is corrupt: %w", followFile, err)
	} else if st.Chain != chain {
		c.log.Warn("follow state of another chain; following from the next block", "was", st.Chain, "chain", chain)
		st = followState{Chain: chain}
	}
	c.fmu.Lock()
	defer c.fmu.Unlock()
	c.fstate = st
	if c.fdisputes == nil {
		c.fdisputes = map[string]string{}
	}
	for _, d := range st.Disputes {
		c.fdisputes[d.Dispute] = d.Receipt
	}
	return st, nil
}

const followFile = "follow.json"

// saveFollow records next as the block to resume from (when it moved)
// with the disputes being played.
func (c *Chain) saveFollow(next int64) {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	if next == 0 || next == c.fstate.Next && !c.fdirty {
		return
	}
	c.fstate.Next = next
	c.fstate.Disputes = c.fstate.Disputes[:0]
	for d, r := range c.fdisputes {
		c.fstate.Disputes = append(c.fstate.Disputes, disputeRef{d, r})
	}
	slices.SortFunc(c.fstate.Disputes, func(a, b disputeRef) int { return strings.Compare(a.Dispute, b.Dispute) })
	b, _ := json.Marshal(c.fstate)
	if err := writeFileSync(filepath.Join(c.cfg.Dir, followFile), b); err != nil {
		c.log.Error("saving the follow state", "err", err)
		return
	}
	c.fdirty = false
}

// trackDispute adds (or, with rid empty, removes) a dispute in the follow
// state; the next saveFollow writes it.
func (c *Chain) trackDispute(did, rid string) {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	if c.fdisputes == nil {
		c.fdisputes = map[string]string{}
	}
	if rid == "" {
		delete(c.fdisputes, did)
	} else {
		c.fdisputes[did] = rid
	}
	c.fdirty = true
}

// maintain lifts the worker's jailing once its term is over and tops its
// bond back up to the configured stake after a slash (as far as its
// balance allows).
func (c *Chain) maintain(ctx context.Context, height int64) {
	st, err := c.cfg.Client.Stake(ctx, c.addr)
	if err != nil {
		return
	}
	if st.JailedUntil != 0 && uint64(height) >= st.JailedUntil {
		if _, err := c.send.Send(ctx, &ledger.MsgUnjail{}); err == nil {
			c.log.Info("unjailing", "jailed_until", st.JailedUntil)
		}
	}
	want := c.cfg.Stake
	if want == 0 {
		want = c.params.MinWorkerStake
	}
	if st.Bonded >= want {
		return
	}
	acct, err := c.cfg.Client.Account(ctx, c.addr)
	if err != nil || acct.Balance <= 1 {
		return
	}
	amt := min(want-st.Bonded, acct.Balance-1)
	if _, err := c.send.Send(ctx, &ledger.MsgBond{Amount: amt}); err == nil {
		c.log.Info("bond topped up", "amount", amt, "bonded", st.Bonded+amt)
	}
}

// answerAudit posts the openings of receipt id's audit and returns once
// the audit is no longer pending (the openings committed, or the audit
// over): a transaction lost on the way is sent again.
func (c *Chain) answerAudit(ctx context.Context, id string, r *receipt.Receipt) {
	rid, err := ledger.ParseHash(id)
	if err != nil {
		return
	}
	var op []byte
	var sent time.Time
	for ctx.Err() == nil {
		a, found, err := c.cfg.Client.Audit(ctx, rid)
		if err == nil && (!found || a.Status != ledger.AuditPending) {
			if !sent.IsZero() {
				blocks := int64(-1)
				if h, err := c.cfg.Client.Height(ctx); err == nil && a.Deadline >= c.params.OpeningWindow {
					blocks = h - int64(a.Deadline-c.params.OpeningWindow)
					for {
						w := c.worstAudit.Load()
						if blocks <= w || c.worstAudit.CompareAndSwap(w, blocks) {
							break
						}
					}
				}
				c.log.Info("audit answered", "receipt", id, "cells", a.Cells, "status", a.Status, "blocks", blocks)
			}
			return
		}
		if err == nil && time.Since(sent) > 3*time.Second {
			if op == nil {
				if r == nil {
					// Read from the ledger (a failure to ask is retried).
					var b []byte
					if b, err = c.cfg.Client.ReceiptData(ctx, rid); err == nil {
						if r, err = receipt.Parse(b); err != nil {
							c.log.Error("audit of an unreadable receipt", "receipt", id, "err", err)
							return
						}
					}
				}
				if err == nil {
					if op, err = c.openings(ctx, r, a); err != nil {
						switch {
						case errors.Is(err, errLate):
							c.log.Warn("audit missed: its deadline passed before its openings could be computed", "receipt", id, "err", err)
						case ctx.Err() == nil:
							c.log.Error("opening an audit", "receipt", id, "err", err)
						}
						return
					}
				}
			}
			if err == nil {
				if _, err = c.send.Send(ctx, &ledger.MsgPostOpenings{ReceiptID: rid, Openings: op}); err == nil {
					if sent.IsZero() {
						c.audits.Add(1)
					}
					sent = time.Now()
				}
			}
		}
		if err != nil && ctx.Err() == nil {
			c.log.Warn("answering an audit", "receipt", id, "err", err)
		}
		sleep(ctx, c.cfg.Poll)
	}
}

// errLate is proof work whose deadline passed before it could start.
var errLate = errors.New("deadline passed while waiting for a slot")

// proofSlots is how many openings and traces (each a forward pass over a
// whole receipt) the worker computes at a time.
const proofSlots = 4

// slot waits for one of the proof slots for work due by deadline, the
// height its answer must land by on the ledger (an audit's Deadline, a
// dispute's), and returns the function that gives it back. Slots go to
// the earliest deadline first, ties in the order asked: a plain queue let
// disputes (a verifier's minimum stake each, from any accounts) hold
// every slot while an audit's opening waited behind them past its
// deadline, and the honest worker was slashed for a missed audit
// (TestAttackDisputesCrowdAudit).
//
// Work whose deadline passed while it waited (a block at or past its
// deadline was read: its answer would land after it) gives its slot back
// at once, with errLate: earliest deadline first serves overdue work
// first, and under a backlog each overdue piece computed for nothing
// would make the next one overdue too.
func (c *Chain) slot(ctx context.Context, deadline uint64, what string) (release func(), err error) {
	release, err = c.work.Acquire(ctx, deadline)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if h := c.read.Load(); h > 0 && uint64(h) >= deadline {
		release()
		return nil, fmt.Errorf("%s: %w: due by height %d, block %d read", what, errLate, deadline, h)
	}
	if c.onSlot != nil {
		c.onSlot(what, deadline)
	}
	return release, nil
}

// openings computes an audit's openings in a proof slot, asked for by
// the audit's deadline.
func (c *Chain) openings(ctx context.Context, r *receipt.Receipt, a ledger.Audit) ([]byte, error) {
	release, err := c.slot(ctx, a.Deadline, "audit openings")
	if err != nil {
		return nil, err
	}
	defer release()
	op, err := c.w.Open(ctx, r, audit.SeedOf(a.Seed), int(a.Cells))
	if err != nil {
		return nil, err
	}
	return op.Marshal(), nil
}

// startDispute starts playing dispute did over receipt rid, retrying
// while the ledger cannot be read; it records the dispute in the follow
// state first, so that a restart plays it too.
func (c *Chain) startDispute(ctx context.Context, did, rid string) {
	id, err := ledger.ParseHash(did)
	if err != nil {
		return
	}
	receiptID, err := ledger.ParseHash(rid)
	if err != nil {
		return
	}
	c.trackDispute(did, rid)
	var r *receipt.Receipt
	var d ledger.Dispute
	for ctx.Err() == nil {
		rec, found, err := c.cfg.Client.Dispute(ctx, id)
		d = rec
		if err == nil && (!found || d.Status != ledger.DisputeOpen) {
			c.trackDispute(did, "")
			return
		}
		var b []byte
		if err == nil {
			b, err = c.cfg.Client.ReceiptData(ctx, receiptID)
		}
		if err == nil {
			if r, err = receipt.Parse(b); err != nil {
				c.log.Error("dispute on an unreadable receipt", "dispute", did, "err", err)
				c.trackDispute(did, "")
				return
			}
			break
		}
		c.log.Warn("dispute: reading the ledger", "dispute", did, "err", err)
		sleep(ctx, c.cfg.Poll)
	}
	if r == nil {
		return
	}
	// The tree answers the dispute's first query, due by its deadline.
	tree, err := c.disputeTree(ctx, d.Deadline, rid, r)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Error("dispute: regenerating the trace", "dispute", did, "err", err)
			c.trackDispute(did, "")
		}
		return
	}
	c.disputes.Add(id, &Player{Side: ledger.SideWorker, Setup: TraceSetup(c.w.m, c.w.info.ID), Timeout: c.params.MoveWindow,
		Responder: &dispute.Responder{Party: dispute.A, Tree: tree, Value: func(i int) ([]byte, error) {
			return nil, fmt.Errorf("leaf %d not kept", i)
		}},
		Reload: func(ctx context.Context, d *ledger.Dispute, leaves []int) (func(int) ([]byte, error), error) {
			// The dispute as the ledger holds it now: its Deadline is the
			// height this opening is due by.
			release, err := c.slot(ctx, d.Deadline, "dispute reload")
			if err != nil {
				return nil, err
			}
			defer release()
			t, err := c.w.TraceLeaves(ctx, r, leaves)
			if err != nil {
				return nil, err
			}
			return t.LeafValue, nil
		}})
	c.disputed.Add(1)
	c.log.Warn("receipt disputed", "dispute", did, "receipt", rid)
}

// sharedTree is the trace tree of a disputed receipt, shared by the
// disputes over it while any of them holds it.
type sharedTree struct {
	mu   sync.Mutex // held while the tree is regenerated
	tree weak.Pointer[merkle.Tree]
}

// disputeTree returns the trace tree of receipt rid (the tree alone: the
// values of the disputed leaf's inputs are regenerated when the game
// reaches it, Player.Reload), regenerated in a proof slot asked for by
// deadline (the dispute's first answer's) unless a dispute over the same
// receipt still holds it. Disputes are cheap to open in numbers
// (minVerifierStake each, from any accounts, over one receipt): each
// regenerating and keeping its own tree, a long receipt's (GBs) times the
// disputes, would exhaust the worker's memory and CPU.
func (c *Chain) disputeTree(ctx context.Context, deadline uint64, rid string, r *receipt.Receipt) (*merkle.Tree, error) {
	c.tmu.Lock()
	if c.trees == nil {
		c.trees = map[string]*sharedTree{}
	}
	for id, e := range c.trees { // forget the trees no dispute holds
		if id != rid && e.mu.TryLock() {
			if e.tree.Value() == nil {
				delete(c.trees, id)
			}
			e.mu.Unlock()
		}
	}
	e := c.trees[rid]
	if e == nil {
		e = &sharedTree{}
		c.trees[rid] = e
	}
	c.tmu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := e.tree.Value(); t != nil {
		return t, nil
	}
	release, err := c.slot(ctx, deadline, "dispute trace")
	if err != nil {
		return nil, err
	}
	tr, err := c.w.TraceLeaves(ctx, r, []int{})
	release()
	if err != nil {
		return nil, err
	}
	t := tr.Tree()
	e.tree = weak.Make(t)
	return t, nil
}

func (c *Chain) playDisputes(ctx context.Context) {
	for _, id := range c.disputes.Play(ctx, c.send, c.log) {
		c.trackDispute(id.String(), "")
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Sender is the worker account's transaction sender (share it: one
// account's transactions must go through one sender to keep nonces in
// order).
func (c *Chain) Sender() *Sender { return c.send }

// revealAudits reveals the audit secrets of the receipts published before
// block h, now that h, the block after their publication (whose hash the
// ledger mixes with the secret), is committed. A reveal that fails (or one
// never sent, after a restart) only means the receipt is audited.
func (c *Chain) revealAudits(ctx context.Context, h int64) {
	type reveal struct {
		id  string
		at  int64 // the receipt's publication height
		msg ledger.Msg
	}
	c.mu.Lock()
	var due []reveal
	for id, at := range c.revealAt {
		if at >= h {
			continue
		}
		if s := c.reveals[id]; s != nil {
			if rid, err := ledger.ParseHash(id); err == nil {
				due = append(due, reveal{id, at, &ledger.MsgRevealAudit{ReceiptID: rid, Secret: s.AuditSecret(rid)}})
			}
		}
		delete(c.reveals, id)
		delete(c.revealAt, id)
	}
	c.mu.Unlock()
	slices.SortFunc(due, func(a, b reveal) int { return strings.Compare(a.id, b.id) })
	// The worker's account sends them (and pays the fees): each secret is
	// the requester's, derived from its key. They go in one batch, with
	// consecutive nonces, so that a block's worth of receipts is revealed
	// within the reveal window under load (one by one, they came too late
	// and most receipts were audited: TestCrashSIGKILL); the batch takes
	// its turn among the audits' openings (SendBatchUrgent), which would
	// otherwise hold it back past the window after a restart, when every
	// receipt not revealed is audited. A reveal the ledger refuses for
	// itself (its audit decided) makes it refuse every later one of the
	// batch for its nonce: those go again, as does a whole batch refused
	// for a stale nonce (once). Before each batch, the reveals whose
	// window has passed at the ledger's height (the follower may be
	// reading older blocks) are left out: the ledger would refuse them.
	for stale := 0; len(due) > 0 && ctx.Err() == nil; {
		tip := h
		if t, err := c.tip(ctx); err == nil && t > tip {
			tip = t
		}
		late := 0
		due = slices.DeleteFunc(due, func(r reveal) bool {
			// Sent now, it lands at tip+1 at the earliest; the ledger takes
			// it up to at+1+revealWindow.
			if tip > r.at+int64(c.params.RevealWindow) {
				late++
				return true
			}
			return false
		})
		if late > 0 {
			c.log.Info("audit secrets not revealed: past their reveal window (the receipts will be audited)", "receipts", late, "height", tip)
		}
		if len(due) == 0 {
			return
		}
		msgs := make([]ledger.Msg, len(due))
		for i, r := range due {
			msgs[i] = r.msg
		}
		_, errs := c.revealer.SendBatchUrgent(ctx, msgs, nil)
		var again []reveal
		for i, err := range errs {
			if code, ok := client.RejectionCode(err); ok && code == ledger.Code(ledger.ErrNonce) {
				again = append(again, due[i])
			} else if err != nil {
				c.log.Warn("revealing the audit secret (the receipt will be audited)", "receipt", due[i].id, "err", err)
			}
		}
		if len(again) == len(due) {
			if stale++; stale > 1 {
				c.log.Warn("revealing audit secrets: refused for the nonce twice (the receipts will be audited)", "receipts", len(due), "err", errs[0])
				return
			}
		}
		due = again
	}
}

// restoreReveals finds, after a restart, the audit secrets to reveal for
// the receipts waiting in the outbox whose escrow transaction was signed:
// the escrow's payer is asked of the Escrower again (the sender whose key
// derives the secret), and kept where its commitment is the transaction's.
// Without this every receipt in the outbox at a crash was audited.
func (c *Chain) restoreReveals(recs []outbox.Record) {
	if c.cfg.Escrow == nil {
		return
	}
	for i := range recs {
		r := &recs[i]
		if len(r.EscrowTx) == 0 {
			continue
		}
		tx, err := ledger.DecodeTx(r.EscrowTx)
		if err != nil {
			continue
		}
		m, ok := tx.Msg.(*ledger.MsgOpenEscrow)
		rid, err := ledger.ParseHash(r.ReceiptID)
		if !ok || err != nil || m.AuditCommit.IsZero() {
			continue
		}
		_, s, err := c.cfg.Escrow(r, c.addr, m.ModelID, m.AgentID)
		if err != nil || s == nil || s.Address() != tx.Signer || s.AuditCommit(rid) != m.AuditCommit {
			continue
		}
		c.reveals[r.ReceiptID] = s
	}
}

// batchSender sends transactions of one account in a batch, as
// client.Sender.SendBatchUrgent does.
type batchSender interface {
	SendBatchUrgent(ctx context.Context, msgs []ledger.Msg, record func([]*ledger.Tx) error) ([]*ledger.Tx, []error)
}

// SelfEscrow is an Escrower for receipts with no paying requester: the
// worker escrows the fee for itself, so that the receipt still goes on the
// ledger and can be audited and disputed. It names no agent: an agent
// gets no reputation from its own escrows.
func (c *Chain) SelfEscrow(p *Pending, w ledger.Address, model ledger.Hash, agentID uint64) (ledger.Msg, *Sender, error) {
	req, err := ledger.ReceiptRequest(p.Receipt)
	if err != nil {
		return nil, nil, fmt.Errorf("self escrow: %w: %w", client.ErrRejected, err)
	}
	// The chain refuses escrows below minEscrowFee; the worker pays it to
	// itself (less the protocol fee).
	fee := max(p.Fee, c.params.MinEscrowFee)
	rid, err := ledger.ParseHash(p.ReceiptID)
	if err != nil {
		return nil, nil, fmt.Errorf("self escrow: %w: receipt id: %w", client.ErrRejected, err)
	}
	// The worker commits to an audit secret of its own and reveals it
	// after publication (revealAudits); an escrow without one is always
	// audited (docs/ledger.md, attack 6).
	return &ledger.MsgOpenEscrow{Worker: w, ModelID: model, Fee: fee, Request: req, AuditCommit: c.send.AuditCommit(rid), AgentID: 0}, c.send, nil
}
