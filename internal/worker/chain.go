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

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verdictnet/verdict/internal/audit"
	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/receipt"
)

// Pending is a receipt promised to a client and not yet on the ledger: the
// outbox entry that the worker keeps on disk until the ledger has it.
type Pending struct {
	ReceiptID string `json:"receiptId"`
	Receipt   []byte `json:"receipt"`
	// Requester pays Fee into an escrow for the receipt (an account name
	// the Escrower understands). EscrowID is the escrow the receipt is
	// published against once it is open.
	Requester string      `json:"requester"`
	Fee       uint64      `json:"fee"`
	EscrowID  ledger.Hash `json:"escrowId,omitzero"`
	// RequestSteps, when not zero, is the step count of the request the
	// escrow (opened before the generation: x402) was bound to, for a
	// receipt that ended early (MsgPublishReceipt.RequestSteps).
	RequestSteps uint64 `json:"requestSteps,omitempty"`
	// EscrowTx is the signed transaction opening EscrowID, written here
	// before it is broadcast and kept until the ledger shows the escrow:
	// after a crash the outbox finds it committed, sends the same bytes
	// again, or, once its nonce went to another transaction (so it can
	// never commit), signs a new one. A receipt never gets a second
	// escrow while its first may still commit.
	EscrowTx []byte `json:"escrowTx,omitempty"`
	// MaybeEscrow is an escrow that may have been opened, from outboxes
	// written before EscrowTx existed; it is adopted if the ledger has it.
	MaybeEscrow ledger.Hash `json:"maybeEscrow,omitzero"`
	// Attempts counts failed publishing steps (kept on disk, so that a
	// restart does not reset the give-up limit).
	Attempts int    `json:"attempts"`
	Failed   string `json:"failed,omitempty"`
}

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

	mu      sync.Mutex
	pending map[string]*pendingState
	watch   map[string]*receipt.Receipt // published, not yet final
	// reveals holds the sender of each escrow this process opened with an
	// audit commitment (the requester's, whose key derives the secret:
	// AuditSecret), by receipt id;
	// revealAt the height its receipt was published, once seen. The
	// secret is revealed once the block after that is committed.
	reveals  map[string]*Sender
	revealAt map[string]int64
	disputes DisputeBook
	outbox   string
	failed   string

	nPublished, audits, disputed, failures atomic.Int64
	worstAudit                             atomic.Int64 // blocks, see ChainStats.WorstAuditBlocks
	validations                            chan string  // published receipts to ask validations for

	// The follow state (Dir/follow.json) and the disputes it lists.
	fmu       sync.Mutex
	fstate    followState
	fdisputes map[string]string // dispute id to receipt id
	fdirty    bool
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

type pendingState struct {
	p      *Pending
	sentAt time.Time
	next   time.Time
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
	c := &Chain{w: w, cfg: cfg, send: s, log: cfg.Logger, addr: s.Address(),
		pending: map[string]*pendingState{}, watch: map[string]*receipt.Receipt{}, validations: make(chan string, 4096),
		reveals: map[string]*Sender{}, revealAt: map[string]int64{},
		outbox: filepath.Join(cfg.Dir, "outbox"), failed: filepath.Join(cfg.Dir, "failed")}
	for _, d := range []string{c.outbox, c.failed} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("worker chain: %w", err)
		}
	}
	ents, err := os.ReadDir(c.outbox)
	if err != nil {
		return nil, fmt.Errorf("worker chain: %w", err)
	}
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !validID(id) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(c.outbox, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("worker chain: %w", err)
		}
		var p Pending
		if err := json.Unmarshal(b, &p); err != nil || p.ReceiptID != id {
			return nil, fmt.Errorf("worker chain: outbox entry %s is corrupt", e.Name())
		}
		c.pending[id] = &pendingState{p: &p}
	}
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
			if _, err := c.send.Commit(ctx, ledger.Msg{RegisterModel: &ledger.MsgRegisterModel{ModelID: ledger.Hash(mi.ID), Name: mi.Name, SpecVersion: 2}}); err != nil && !isCode(err, ledger.ErrExists) {
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
		res, err := c.send.Commit(ctx, ledger.Msg{RegisterAgent: &ledger.MsgRegisterAgent{AgentURI: uri,
			Metadata: []ledger.MetadataEntry{{MetadataKey: "verdict.role", MetadataValue: []byte("worker")}}}})
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
		if _, err := c.send.Commit(ctx, ledger.Msg{Bond: &ledger.MsgBond{Amount: want - st.Bonded}}); err != nil {
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

// errModelPending: the ledger refused a transaction because the receipt's
// model is not active yet; the outbox entry waits (without counting
// towards giving up) until validators attest to holding the model.
var errModelPending = errors.New("model not active yet")

// modelPending wraps a rejection for an inactive model in errModelPending.
func modelPending(err error) error {
	if code, ok := client.RejectionCode(err); ok && code == ledger.Code(ledger.ErrModelInactive) {
		return fmt.Errorf("%w: %w", errModelPending, err)
	}
	return nil
}

// Submit puts a receipt in the outbox: it is on disk when Submit returns,
// and the worker publishes it (opening its escrow first) however long the
// ledger takes. Submitting the same receipt id again does nothing.
func (c *Chain) Submit(p Pending) error {
	if !validID(p.ReceiptID) {
		return fmt.Errorf("outbox: bad receipt id %q", p.ReceiptID)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[p.ReceiptID]; ok {
		return nil
	}
	if err := c.persist(&p); err != nil {
		return err
	}
	c.pending[p.ReceiptID] = &pendingState{p: &p}
	return nil
}

// PendingCount is the number of receipts in the outbox.
func (c *Chain) PendingCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// DefaultMaxPending is ChainConfig.MaxPending's default.
const DefaultMaxPending = 1024

// Backlogged reports whether the outbox holds MaxPending receipts or more:
// publishing has fallen behind serving, and new requests should wait.
func (c *Chain) Backlogged() bool { return c.PendingCount() >= c.cfg.MaxPending }

// IsPending reports whether a receipt is in the outbox.
func (c *Chain) IsPending(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pending[id]
	return ok
}

func (c *Chain) persist(p *Pending) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return writeFileSync(filepath.Join(c.outbox, p.ReceiptID+".json"), b)
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
	t := time.NewTicker(c.cfg.Poll)
	defer t.Stop()
	for {
		c.publish(ctx)
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-t.C:
		}
	}
}

// publish moves the outbox forward: open escrows, send receipts, and drop
// the entries the ledger holds.
func (c *Chain) publish(ctx context.Context) {
	c.mu.Lock()
	var due []*pendingState
	now := time.Now()
	for _, ps := range c.pending {
		if !now.Before(ps.next) {
			due = append(due, ps)
		}
	}
	c.mu.Unlock()
	slices.SortFunc(due, func(a, b *pendingState) int { return strings.Compare(a.p.ReceiptID, b.p.ReceiptID) })
	// Entries step concurrently (their queries and record writes overlap;
	// each account's transactions still go out in nonce order through its
	// Sender).
	work := make(chan *pendingState)
	var wg sync.WaitGroup
	for range min(publishers, len(due)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ps := range work {
				c.stepOne(ctx, ps)
			}
		}()
	}
	for _, ps := range due {
		if ctx.Err() != nil {
			break
		}
		work <- ps
	}
	close(work)
	wg.Wait()
}

// publishers is how many outbox entries step at once.
const publishers = 8

// stepOne steps one entry and handles its failure.
func (c *Chain) stepOne(ctx context.Context, ps *pendingState) {
	if err := c.step(ctx, ps); errors.Is(err, errModelPending) {
		ps.next = time.Now().Add(modelPendingRetry)
		c.log.Info("receipt waits for its model to become active", "receipt", ps.p.ReceiptID, "retry_in", modelPendingRetry, "err", err)
	} else if err != nil && ctx.Err() == nil {
		ps.p.Attempts++
		back := min(time.Duration(1<<min(ps.p.Attempts, 6))*250*time.Millisecond, 15*time.Second)
		ps.next = time.Now().Add(back)
		c.log.Warn("publishing a receipt", "receipt", ps.p.ReceiptID, "attempt", ps.p.Attempts, "retry_in", back, "err", err)
		if ps.p.Attempts >= maxAttempts {
			c.fail(ps, err.Error())
		} else if serr := c.save(ps.p); serr != nil {
			c.log.Error("saving an outbox entry", "receipt", ps.p.ReceiptID, "err", serr)
		}
	}
}

// maxAttempts failed steps give an outbox entry up (moved to failed/);
// with the backoff's 15 s cap that is about nine minutes of failures.
const maxAttempts = 40

// modelPendingRetry is how long an outbox entry whose model is not active
// yet waits before it is tried again.
const modelPendingRetry = 2 * time.Second

// step advances one outbox entry: drop it once the ledger has its
// receipt; otherwise settle a recorded escrow transaction, open an escrow
// when there is none, and send the receipt.
func (c *Chain) step(ctx context.Context, ps *pendingState) error {
	p := ps.p
	if !ps.sentAt.IsZero() && time.Since(ps.sentAt) < 3*time.Second {
		return nil // sent; wait for its block (the follower drops it then)
	}
	rid, err := ledger.ParseHash(p.ReceiptID)
	if err != nil {
		c.fail(ps, "bad receipt id: "+err.Error())
		return nil
	}
	_, found, err := c.cfg.Client.Receipt(ctx, rid)
	if err != nil {
		return err
	}
	if found {
		c.published(p)
		return nil
	}
	r, err := receipt.Parse(p.Receipt)
	if err != nil {
		c.fail(ps, "unreadable receipt: "+err.Error())
		return nil
	}
	req := ledger.RequestHash(r)
	if p.EscrowID.IsZero() && !p.MaybeEscrow.IsZero() {
		esc, found, err := c.cfg.Client.Escrow(ctx, p.MaybeEscrow)
		if err != nil {
			return err
		}
		if found && esc.Worker == c.addr && esc.ReceiptID.IsZero() && esc.Request == req {
			p.EscrowID = esc.EscrowID
		}
		p.MaybeEscrow = ledger.Hash{}
		if err := c.save(p); err != nil {
			return err
		}
	}
	if len(p.EscrowTx) > 0 {
		ready, err := c.settleEscrow(ctx, ps, req)
		if err != nil || !ready {
			return err
		}
	}
	if p.EscrowID.IsZero() {
		if c.cfg.Escrow == nil {
			c.fail(ps, "no escrow and no way to open one")
			return nil
		}
		msg, s, err := c.cfg.Escrow(p, c.addr, ledger.Hash(r.Model), c.agent)
		if err != nil {
			if errors.Is(err, client.ErrRejected) {
				c.fail(ps, "opening the escrow: "+err.Error())
				return nil
			}
			return fmt.Errorf("opening the escrow: %w", err)
		}
		_, err = s.SendRecorded(ctx, msg, func(tx *ledger.Tx) error {
			p.EscrowTx, p.EscrowID = tx.Encode(), ledger.EscrowID(tx.Signer, tx.Nonce)
			return c.save(p)
		})
		if err == nil && msg.OpenEscrow != nil && !msg.OpenEscrow.AuditCommit.IsZero() {
			c.mu.Lock()
			c.reveals[p.ReceiptID] = s
			c.mu.Unlock()
		}
		if errors.Is(err, ErrMaybeSent) {
			ps.sentAt = time.Now() // look for it before anything else
			return err
		}
		if err != nil {
			if len(p.EscrowTx) > 0 {
				// Refused (nothing was taken) or never broadcast.
				p.EscrowTx, p.EscrowID = nil, ledger.Hash{}
				if serr := c.save(p); serr != nil {
					return errors.Join(err, serr)
				}
			}
			if perr := modelPending(err); perr != nil {
				return perr
			}
			if errors.Is(err, client.ErrRejected) && !isCode(err, ledger.ErrNonce) {
				c.fail(ps, "opening the escrow: "+err.Error())
				return nil
			}
			return fmt.Errorf("opening the escrow: %w", err)
		}
		// In the mempool: the receipt can follow it into the same block.
	}
	if _, err := c.send.Send(ctx, ledger.Msg{PublishReceipt: &ledger.MsgPublishReceipt{EscrowID: p.EscrowID, Receipt: p.Receipt, RequestSteps: p.RequestSteps}}); err != nil {
		if code, ok := client.RejectionCode(err); ok && code == ledger.Code(ledger.ErrExists) {
			return nil // published meanwhile; the next look drops it
		}
		if isCode(err, ledger.ErrNotFound) && len(p.EscrowTx) == 0 && c.escrowGone(ctx, p.EscrowID) {
			// The escrow was seen open (or comes from an outbox written
			// before escrow transactions were recorded) and is gone:
			// refunded after escrowTimeout, or never opened. Open another.
			c.log.Warn("escrow gone; opening another", "receipt", p.ReceiptID, "escrow", p.EscrowID.String())
			p.EscrowID = ledger.Hash{}
			if serr := c.save(p); serr != nil {
				return errors.Join(err, serr)
			}
		}
		if perr := modelPending(err); perr != nil {
			return perr
		}
		return err
	}
	ps.sentAt = time.Now()
	return nil
}

// settleEscrow decides the fate of an entry's recorded escrow transaction.
// The escrow is on the ledger and answers the receipt's request: the
// record is dropped and the receipt goes out against it (ready). The
// transaction's nonce went to another transaction, or to this one whose
// message failed: it can never open the escrow, so the record is dropped
// and a new escrow is opened (ready). Otherwise the transaction may still
// commit: its same bytes are broadcast again and the entry waits (not
// ready). The account is read before the escrow, so that a transaction
// committed between the two reads is never taken for a lost one.
func (c *Chain) settleEscrow(ctx context.Context, ps *pendingState, req ledger.Hash) (ready bool, err error) {
	p := ps.p
	tx, err := ledger.DecodeTx(p.EscrowTx)
	if err != nil || tx.Msg.OpenEscrow == nil {
		c.log.Error("outbox entry with an unreadable escrow transaction; opening another", "receipt", p.ReceiptID, "err", err)
		p.EscrowTx, p.EscrowID = nil, ledger.Hash{}
		return true, c.save(p)
	}
	acct, err := c.cfg.Client.Account(ctx, tx.Signer)
	if err != nil {
		return false, err
	}
	esc, found, err := c.cfg.Client.Escrow(ctx, p.EscrowID)
	if err != nil {
		return false, err
	}
	switch d := decideEscrow(found, esc, acct.Nonce, tx, c.addr, req); d {
	case escrowOpen:
		p.EscrowTx = nil
		return true, c.save(p)
	case escrowLost:
		c.log.Info("escrow transaction lost; opening another", "receipt", p.ReceiptID, "nonce", tx.Nonce, "accountNonce", acct.Nonce)
		p.EscrowTx, p.EscrowID = nil, ledger.Hash{}
		return true, c.save(p)
	default:
		ps.sentAt = time.Now()
		if _, err := c.cfg.Client.BroadcastSync(ctx, tx); err != nil {
			if code, ok := client.RejectionCode(err); ok && code == ledger.Code(ledger.ErrNonce) {
				return false, nil // its nonce is taken in the mempool (by it, or by a rival): wait for the block
			}
			return false, fmt.Errorf("sending the escrow transaction again: %w", err)
		}
		return false, nil
	}
}

// escrowFate is what an outbox entry's recorded escrow transaction came to.
type escrowFate int

const (
	// escrowMayCommit: not on the ledger, its nonce still free: it may
	// commit (send it again and wait).
	escrowMayCommit escrowFate = iota
	// escrowOpen: the escrow is on the ledger, for this worker and this
	// request.
	escrowOpen
	// escrowLost: the nonce was taken and the escrow is not this one: the
	// transaction can never open it.
	escrowLost
)

// decideEscrow is settleEscrow's decision, from what the ledger holds
// under the recorded escrow id (found, esc) and the paying account's next
// nonce, read before the escrow.
func decideEscrow(found bool, esc ledger.Escrow, accountNonce uint64, tx *ledger.Tx, worker ledger.Address, req ledger.Hash) escrowFate {
	if found {
		if esc.Worker == worker && esc.Request == req && esc.Requester == tx.Signer {
			return escrowOpen
		}
		return escrowLost // another transaction of the payer's holds the nonce
	}
	if accountNonce > tx.Nonce {
		return escrowLost
	}
	return escrowMayCommit
}

// escrowGone reports whether the ledger answers that escrow id does not
// exist (false when it cannot be asked).
func (c *Chain) escrowGone(ctx context.Context, id ledger.Hash) bool {
	_, found, err := c.cfg.Client.Escrow(ctx, id)
	return err == nil && !found
}

// save writes an outbox entry (under c.mu).
func (c *Chain) save(p *Pending) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[p.ReceiptID]; !ok {
		return nil // published or given up meanwhile
	}
	return c.persist(p)
}

// published drops an entry the ledger holds, watches its receipt and
// queues its validation requests; an entry no longer pending is left
// alone (the follower and the publishing loop may both see it).
func (c *Chain) published(p *Pending) {
	r, err := receipt.Parse(p.Receipt)
	c.mu.Lock()
	if _, ok := c.pending[p.ReceiptID]; !ok {
		c.mu.Unlock()
		return
	}
	delete(c.pending, p.ReceiptID)
	if err == nil {
		c.watch[p.ReceiptID] = r
	}
	c.mu.Unlock()
	os.Remove(filepath.Join(c.outbox, p.ReceiptID+".json"))
	c.nPublished.Add(1)
	c.log.Debug("receipt published", "receipt", p.ReceiptID)
	if c.agent == 0 || len(c.cfg.Validators) == 0 {
		return
	}
	select {
	case c.validations <- p.ReceiptID:
	default:
		c.log.Warn("validation requests queue full; not asking for this receipt's validation", "receipt", p.ReceiptID)
	}
}

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
			if _, err := c.send.Send(ctx, ledger.Msg{ValidationRequest: &ledger.MsgValidationRequest{
				ValidatorAddress: v, AgentID: c.agent, RequestURI: "verdict:receipt/" + id, RequestHash: ValidationRequestHash(rid, v)}}); err != nil && ctx.Err() == nil {
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

func (c *Chain) fail(ps *pendingState, why string) {
	ps.p.Failed = why
	c.mu.Lock()
	if _, ok := c.pending[ps.p.ReceiptID]; !ok {
		c.mu.Unlock()
		return
	}
	delete(c.pending, ps.p.ReceiptID)
	delete(c.reveals, ps.p.ReceiptID)
	b, _ := json.Marshal(ps.p)
	c.mu.Unlock()
	if err := writeFileSync(filepath.Join(c.failed, ps.p.ReceiptID+".json"), b); err == nil {
		os.Remove(filepath.Join(c.outbox, ps.p.ReceiptID+".json"))
	}
	c.failures.Add(1)
	c.log.Error("receipt not published", "receipt", ps.p.ReceiptID, "reason", why)
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
	// slow opening does not delay the next block; at most four openings or
	// traces are computed at a time.
	sem := make(chan struct{}, 4)
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
		task(st.Next, func() { c.startDispute(ctx, sem, d.Dispute, d.Receipt) })
	}
	for ctx.Err() == nil {
		h, evs, err := f.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("following the ledger", "err", err)
				sleep(ctx, 300*time.Millisecond)
			}
			continue
		}
		for _, e := range evs {
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
				r := c.watch[id]
				c.mu.Unlock()
				task(h, func() { c.answerAudit(ctx, sem, id, r) })
			case ledger.EventDisputeOpened:
				if d, err := ledger.DecodeDisputeOpened(e.Event); err == nil && d.Worker == c.addr {
					did, id := d.DisputeID.String(), d.ReceiptID.String()
					task(h, func() { c.startDispute(ctx, sem, did, id) })
				}
			case ledger.EventReceiptPublished:
				// Drop the outbox entry at once, without a query.
				p, err := ledger.DecodeReceiptPublished(e.Event)
				if err != nil || p.Worker != c.addr {
					continue
				}
				c.mu.Lock()
				ps := c.pending[p.ReceiptID.String()]
				c.mu.Unlock()
				if ps != nil {
					c.published(ps.p)
				}
				c.mu.Lock()
				if _, ok := c.reveals[p.ReceiptID.String()]; ok {
					c.revealAt[p.ReceiptID.String()] = h
				}
				c.mu.Unlock()
			case ledger.EventReceiptFinal:
				if f, err := ledger.DecodeReceiptFinal(e.Event); err == nil {
					c.mu.Lock()
					delete(c.watch, f.ReceiptID.String())
					c.mu.Unlock()
				}
			}
		}
		task(h, func() { c.revealAudits(ctx, h) })
		c.saveFollow(wm.handled(h))
		c.playDisputes(ctx)
		if h%10 == 0 {
			c.maintain(ctx, h)
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
		if _, err := c.send.Send(ctx, ledger.Msg{Unjail: &ledger.MsgUnjail{}}); err == nil {
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
	if _, err := c.send.Send(ctx, ledger.Msg{Bond: &ledger.MsgBond{Amount: amt}}); err == nil {
		c.log.Info("bond topped up", "amount", amt, "bonded", st.Bonded+amt)
	}
}

// answerAudit posts the openings of receipt id's audit and returns once
// the audit is no longer pending (the openings committed, or the audit
// over): a transaction lost on the way is sent again.
func (c *Chain) answerAudit(ctx context.Context, sem chan struct{}, id string, r *receipt.Receipt) {
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
					if op, err = c.openings(ctx, sem, r, a); err != nil {
						if ctx.Err() == nil {
							c.log.Error("opening an audit", "receipt", id, "err", err)
						}
						return
					}
				}
			}
			if err == nil {
				if _, err = c.send.Send(ctx, ledger.Msg{PostOpenings: &ledger.MsgPostOpenings{ReceiptID: rid, Openings: op}}); err == nil {
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

// openings computes an audit's openings, holding a slot of sem.
func (c *Chain) openings(ctx context.Context, sem chan struct{}, r *receipt.Receipt, a ledger.Audit) ([]byte, error) {
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-sem }()
	op, err := c.w.Open(ctx, r, audit.SeedOf(a.Seed), int(a.Cells))
	if err != nil {
		return nil, err
	}
	return op.Marshal(), nil
}

// startDispute starts playing dispute did over receipt rid, retrying
// while the ledger cannot be read; it records the dispute in the follow
// state first, so that a restart plays it too.
func (c *Chain) startDispute(ctx context.Context, sem chan struct{}, did, rid string) {
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
	for ctx.Err() == nil {
		d, found, err := c.cfg.Client.Dispute(ctx, id)
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
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	// The tree alone: the values of the disputed leaf's inputs are
	// regenerated when the game reaches it (Player.Reload).
	tr, err := c.w.TraceLeaves(ctx, r, []int{})
	<-sem
	if err != nil {
		c.log.Error("dispute: regenerating the trace", "dispute", did, "err", err)
		c.trackDispute(did, "")
		return
	}
	c.disputes.Add(id, &Player{Side: ledger.SideWorker, Setup: TraceSetup(c.w.m, c.w.info.ID), Timeout: c.params.MoveWindow,
		Responder: &dispute.Responder{Party: dispute.A, Tree: tr.Tree(), Value: tr.LeafValue},
		Reload: func(leaves []int) (func(int) ([]byte, error), error) {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			defer func() { <-sem }()
			t, err := c.w.TraceLeaves(ctx, r, leaves)
			if err != nil {
				return nil, err
			}
			return t.LeafValue, nil
		}})
	c.disputed.Add(1)
	c.log.Warn("receipt disputed", "dispute", did, "receipt", rid)
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
	c.mu.Lock()
	var ids []string
	for id, at := range c.revealAt {
		if at < h {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	senders := make([]*Sender, len(ids))
	for i, id := range ids {
		senders[i] = c.reveals[id]
		delete(c.reveals, id)
		delete(c.revealAt, id)
	}
	c.mu.Unlock()
	for i, id := range ids {
		rid, err := ledger.ParseHash(id)
		if err != nil || senders[i] == nil {
			continue
		}
		// The worker's account sends it (and pays the fee): the secret is
		// the requester's, derived from its key.
		if _, err := c.send.Send(ctx, ledger.Msg{RevealAudit: &ledger.MsgRevealAudit{ReceiptID: rid, Secret: senders[i].AuditSecret(rid)}}); err != nil {
			c.log.Warn("revealing the audit secret (the receipt will be audited)", "receipt", id, "err", err)
		}
	}
}

// SelfEscrow is an Escrower for receipts with no paying requester: the
// worker escrows the fee for itself, so that the receipt still goes on the
// ledger and can be audited and disputed. It names no agent: an agent
// gets no reputation from its own escrows.
func (c *Chain) SelfEscrow(p *Pending, w ledger.Address, model ledger.Hash, agentID uint64) (ledger.Msg, *Sender, error) {
	req, err := ledger.ReceiptRequest(p.Receipt)
	if err != nil {
		return ledger.Msg{}, nil, fmt.Errorf("self escrow: %w: %w", client.ErrRejected, err)
	}
	// The chain refuses escrows below minEscrowFee; the worker pays it to
	// itself (less the protocol fee).
	fee := max(p.Fee, c.params.MinEscrowFee)
	rid, err := ledger.ParseHash(p.ReceiptID)
	if err != nil {
		return ledger.Msg{}, nil, fmt.Errorf("self escrow: %w: receipt id: %w", client.ErrRejected, err)
	}
	// The worker commits to an audit secret of its own and reveals it
	// after publication (revealAudits); an escrow without one is always
	// audited (docs/ledger.md, attack 6).
	return ledger.Msg{OpenEscrow: &ledger.MsgOpenEscrow{Worker: w, ModelID: model, Fee: fee, Request: req, AuditCommit: c.send.AuditCommit(rid), AgentID: 0}}, c.send, nil
}
