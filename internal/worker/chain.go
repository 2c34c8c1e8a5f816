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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/ledger/proofhooks"
	"github.com/verdictnet/verdict/internal/receipt"
)

// Pending is a receipt promised to a client and not yet on the ledger: the
// outbox entry that the worker keeps on disk until the ledger has it.
type Pending struct {
	ReceiptID string `json:"receiptId"`
	Receipt   []byte `json:"receipt"`
	// Requester pays Fee into an escrow for the receipt (an account name
	// the Escrower understands); EscrowID is set once the escrow is open.
	Requester string      `json:"requester"`
	Fee       uint64      `json:"fee"`
	EscrowID  ledger.Hash `json:"escrowId,omitzero"`
	// MaybeEscrow is an escrow that may have been opened (the node did not
	// answer); it is adopted if the ledger has it, so that a retry never
	// locks the fee twice.
	MaybeEscrow ledger.Hash `json:"maybeEscrow,omitzero"`
	Attempts    int         `json:"attempts"`
	Failed      string      `json:"failed,omitempty"`
}

// Escrower opens the escrow that pays for a pending receipt and returns
// its id; the gateway implements it with the requester's key. When the
// outcome is unknown it returns the id the escrow would have with an
// error wrapping ErrMaybeSent.
type Escrower func(ctx context.Context, p *Pending, worker ledger.Address, model ledger.Hash, agentID uint64) (ledger.Hash, error)

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
	Poll   time.Duration
	Logger *slog.Logger
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

	mu       sync.Mutex
	pending  map[string]*pendingState
	watch    map[string]*receipt.Receipt // published, not yet final
	disputes DisputeBook
	outbox   string
	failed   string

	nPublished, audits, disputed, failures atomic.Int64
}

// ChainStats count what a worker did on the ledger.
type ChainStats struct {
	Published, AuditsAnswered, Disputes, Failed int64
	Pending                                     int
}

// Stats returns the counters.
func (c *Chain) Stats() ChainStats {
	return ChainStats{c.nPublished.Load(), c.audits.Load(), c.disputed.Load(), c.failures.Load(), c.PendingCount()}
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
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s, err := NewSender(cfg.Client, w.key.Private, 1)
	if err != nil {
		return nil, err
	}
	c := &Chain{w: w, cfg: cfg, send: s, log: cfg.Logger, addr: s.Address(),
		pending: map[string]*pendingState{}, watch: map[string]*receipt.Receipt{},
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
	if _, err := QueryJSON(ctx, c.cfg.Client, "params", &c.params); err != nil {
		return fmt.Errorf("worker setup: %w", err)
	}
	for _, mi := range c.w.Models() {
		var rec ledger.Model
		found, err := QueryJSON(ctx, c.cfg.Client, "model/"+ledger.Hash(mi.ID).String(), &rec)
		if err != nil {
			return fmt.Errorf("worker setup: %w", err)
		}
		if !found {
			if _, err := c.send.Commit(ctx, ledger.Msg{RegisterModel: &ledger.MsgRegisterModel{ModelID: ledger.Hash(mi.ID), Name: mi.Name, SpecVersion: 2}}); err != nil && !strings.Contains(err.Error(), "already") {
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
		var a ledger.Agent
		if found, err := QueryJSON(ctx, c.cfg.Client, "agent/"+strconv.FormatUint(saved.AgentID, 10), &a); err == nil && found && a.Owner == c.addr {
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
			for _, a := range e.Attrs {
				if e.Type == "Registered" && a.Key == "agentId" {
					c.agent, _ = strconv.ParseUint(a.Value, 10, 64)
				}
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
	var st ledger.Stake
	if _, err := QueryJSON(ctx, c.cfg.Client, "stake/"+c.addr.String(), &st); err != nil {
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
	var params ledger.Params
	if _, err := QueryJSON(ctx, c.cfg.Client, "params", &params); err != nil {
		return nil, err
	}
	var out []ledger.Hash
	for _, mi := range c.w.Models() {
		var rec ledger.Model
		found, err := QueryJSON(ctx, c.cfg.Client, "model/"+ledger.Hash(mi.ID).String(), &rec)
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
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.follow(ctx)
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
	for _, ps := range due {
		if ctx.Err() != nil {
			return
		}
		if err := c.step(ctx, ps); errors.Is(err, errModelPending) {
			ps.next = time.Now().Add(modelPendingRetry)
			c.log.Info("receipt waits for its model to become active", "receipt", ps.p.ReceiptID, "retry_in", modelPendingRetry, "err", err)
		} else if err != nil {
			ps.p.Attempts++
			back := min(time.Duration(1<<min(ps.p.Attempts, 6))*250*time.Millisecond, 15*time.Second)
			ps.next = time.Now().Add(back)
			c.log.Warn("publishing a receipt", "receipt", ps.p.ReceiptID, "attempt", ps.p.Attempts, "retry_in", back, "err", err)
			if ps.p.Attempts >= 40 {
				c.fail(ps, err.Error())
			}
		}
	}
}

// modelPendingRetry is how long an outbox entry whose model is not active
// yet waits before it is tried again.
const modelPendingRetry = 2 * time.Second

// step advances one outbox entry.
func (c *Chain) step(ctx context.Context, ps *pendingState) error {
	p := ps.p
	var rec ledger.ReceiptRecord
	found, err := QueryJSON(ctx, c.cfg.Client, "receipt/"+p.ReceiptID, &rec)
	if err != nil {
		return err
	}
	if found {
		c.published(ctx, p)
		return nil
	}
	if !ps.sentAt.IsZero() && time.Since(ps.sentAt) < 3*time.Second {
		return nil // sent; wait for its block
	}
	r, err := receipt.Parse(p.Receipt)
	if err != nil {
		c.fail(ps, "unreadable receipt: "+err.Error())
		return nil
	}
	if p.EscrowID.IsZero() && !p.MaybeEscrow.IsZero() {
		var esc ledger.Escrow
		found, err := QueryJSON(ctx, c.cfg.Client, "escrow/"+p.MaybeEscrow.String(), &esc)
		if err != nil {
			return err
		}
		if found && esc.Worker == c.addr && esc.ReceiptID.IsZero() && esc.Fee == p.Fee {
			p.EscrowID = esc.EscrowID
		}
		p.MaybeEscrow = ledger.Hash{}
		c.mu.Lock()
		err = c.persist(p)
		c.mu.Unlock()
		if err != nil {
			return err
		}
	}
	if p.EscrowID.IsZero() {
		if c.cfg.Escrow == nil {
			c.fail(ps, "no escrow and no way to open one")
			return nil
		}
		id, err := c.cfg.Escrow(ctx, p, c.addr, ledger.Hash(r.Model), c.agent)
		if err != nil {
			if errors.Is(err, ErrMaybeSent) && !id.IsZero() {
				// Look for it before opening another; wait a block or two.
				p.MaybeEscrow = id
				ps.sentAt = time.Now()
				c.mu.Lock()
				perr := c.persist(p)
				c.mu.Unlock()
				return errors.Join(err, perr)
			}
			if perr := modelPending(err); perr != nil {
				return perr
			}
			if errors.Is(err, client.ErrRejected) {
				c.fail(ps, "opening the escrow: "+err.Error())
				return nil
			}
			return fmt.Errorf("opening the escrow: %w", err)
		}
		p.EscrowID = id
		c.mu.Lock()
		err = c.persist(p)
		c.mu.Unlock()
		if err != nil {
			return err
		}
	}
	if _, err := c.send.Send(ctx, ledger.Msg{PublishReceipt: &ledger.MsgPublishReceipt{EscrowID: p.EscrowID, Receipt: p.Receipt}}); err != nil {
		if errors.Is(err, client.ErrRejected) && strings.Contains(err.Error(), "already") {
			return nil // published meanwhile; the next look drops it
		}
		if perr := modelPending(err); perr != nil {
			return perr
		}
		return err
	}
	ps.sentAt = time.Now()
	return nil
}

// published drops an entry the ledger holds and watches its receipt.
func (c *Chain) published(ctx context.Context, p *Pending) {
	r, err := receipt.Parse(p.Receipt)
	c.mu.Lock()
	delete(c.pending, p.ReceiptID)
	if err == nil {
		c.watch[p.ReceiptID] = r
	}
	c.mu.Unlock()
	os.Remove(filepath.Join(c.outbox, p.ReceiptID+".json"))
	c.nPublished.Add(1)
	c.log.Debug("receipt published", "receipt", p.ReceiptID)
	if c.agent == 0 {
		return
	}
	rid, _ := ledger.ParseHash(p.ReceiptID)
	for _, v := range c.cfg.Validators {
		if _, err := c.send.Send(ctx, ledger.Msg{ValidationRequest: &ledger.MsgValidationRequest{
			ValidatorAddress: v, AgentID: c.agent, RequestURI: "verdict:receipt/" + p.ReceiptID, RequestHash: ValidationRequestHash(rid, v)}}); err != nil {
			c.log.Warn("validation request", "receipt", p.ReceiptID, "validator", v.String(), "err", err)
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
	delete(c.pending, ps.p.ReceiptID)
	b, _ := json.Marshal(ps.p)
	c.mu.Unlock()
	if err := writeFileSync(filepath.Join(c.failed, ps.p.ReceiptID+".json"), b); err == nil {
		os.Remove(filepath.Join(c.outbox, ps.p.ReceiptID+".json"))
	}
	c.failures.Add(1)
	c.log.Error("receipt not published", "receipt", ps.p.ReceiptID, "reason", why)
}

// follow reads every block: audits of the worker's receipts get openings,
// disputes against it get answers.
func (c *Chain) follow(ctx context.Context) {
	f, err := NewFollower(c.cfg.RPC, 0)
	if err != nil {
		c.log.Error("following the ledger", "err", err)
		return
	}
	// Audits and disputes are answered off the follow loop (at most four
	// at a time), so that one slow opening does not delay the next block.
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	defer wg.Wait()
	async := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			f()
		}()
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
			id := e.Attrs["receiptId"]
			switch e.Type {
			case "audit_selected":
				// The audit may be selected before the publishing loop has
				// seen its receipt on the ledger: the event names the worker.
				if e.Attrs["worker"] != c.addr.String() {
					continue
				}
				c.mu.Lock()
				r := c.watch[id]
				c.mu.Unlock()
				async(func() {
					if r == nil {
						b, err := c.cfg.Client.Query(ctx, "receiptData/"+id, nil)
						if err == nil {
							r, err = receipt.Parse(b)
						}
						if err != nil {
							c.log.Error("audit of an unreadable receipt", "receipt", id, "err", err)
							return
						}
					}
					c.answerAudit(ctx, id, r)
				})
			case "dispute_opened":
				if e.Attrs["worker"] == c.addr.String() {
					did := e.Attrs["disputeId"]
					async(func() { c.startDispute(ctx, did, id) })
				}
			case "receipt_final", "escrow_refunded":
				c.mu.Lock()
				delete(c.watch, id)
				c.mu.Unlock()
			}
		}
		c.playDisputes(ctx)
		if h%10 == 0 {
			c.maintain(ctx, h)
		}
	}
}

// maintain lifts the worker's jailing once its term is over and tops its
// bond back up to the configured stake after a slash (as far as its
// balance allows).
func (c *Chain) maintain(ctx context.Context, height int64) {
	var st ledger.Stake
	if _, err := QueryJSON(ctx, c.cfg.Client, "stake/"+c.addr.String(), &st); err != nil {
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

func (c *Chain) answerAudit(ctx context.Context, id string, r *receipt.Receipt) {
	var a ledger.Audit
	if _, err := QueryJSON(ctx, c.cfg.Client, "audit/"+id, &a); err != nil || a.Status != ledger.AuditPending {
		return
	}
	op, err := c.w.Open(ctx, r, proofhooks.Seed(a.Seed), int(a.Cells))
	if err != nil {
		c.log.Error("opening an audit", "receipt", id, "err", err)
		return
	}
	rid, _ := ledger.ParseHash(id)
	if _, err := c.send.Send(ctx, ledger.Msg{PostOpenings: &ledger.MsgPostOpenings{ReceiptID: rid, Openings: op.Marshal()}}); err != nil {
		c.log.Error("posting openings", "receipt", id, "err", err)
		return
	}
	c.audits.Add(1)
	c.log.Info("audit answered", "receipt", id, "cells", a.Cells)
}

func (c *Chain) startDispute(ctx context.Context, did, rid string) {
	id, err := ledger.ParseHash(did)
	if err != nil {
		return
	}
	var data []byte
	b, err := c.cfg.Client.Query(ctx, "receiptData/"+rid, nil)
	if err == nil {
		data = b
	}
	r, err := receipt.Parse(data)
	if err != nil {
		c.log.Error("dispute on an unreadable receipt", "dispute", did, "err", err)
		return
	}
	tr, err := c.w.Trace(ctx, r)
	if err != nil {
		c.log.Error("dispute: regenerating the trace", "dispute", did, "err", err)
		return
	}
	c.disputes.Add(id, &Player{Side: ledger.SideWorker, Setup: TraceSetup(c.w.m, c.w.info.ID), Timeout: c.params.MoveWindow,
		Responder: &dispute.Responder{Party: dispute.A, Tree: tr.Tree(), Value: tr.LeafValue}})
	c.disputed.Add(1)
	c.log.Warn("receipt disputed", "dispute", did, "receipt", rid)
}

func (c *Chain) playDisputes(ctx context.Context) { c.disputes.Play(ctx, c.send, c.log) }

// PlayDispute sends p's answer to dispute id's outstanding query, if any;
// done is true once the dispute is over.
func PlayDispute(ctx context.Context, s *Sender, p *Player, id ledger.Hash) (done bool, err error) {
	var d ledger.Dispute
	if _, err := QueryJSON(ctx, s.Client(), "dispute/"+id.String(), &d); err != nil {
		return false, err
	}
	if d.Status != ledger.DisputeOpen {
		return true, nil
	}
	msg, ok, err := p.Move(&d)
	if err != nil || !ok {
		return false, err
	}
	_, err = s.Send(ctx, ledger.Msg{DisputeMove: &ledger.MsgDisputeMove{DisputeID: id, Message: msg}})
	return false, err
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

// SelfEscrow is an Escrower for receipts with no paying requester: the
// worker escrows the fee for itself, so that the receipt still goes on the
// ledger and can be audited and disputed. It names no agent: an agent
// gets no reputation from its own escrows.
func (c *Chain) SelfEscrow(ctx context.Context, p *Pending, w ledger.Address, model ledger.Hash, agentID uint64) (ledger.Hash, error) {
	req, err := ledger.ReceiptRequest(p.Receipt)
	if err != nil {
		return ledger.Hash{}, fmt.Errorf("self escrow: %w", err)
	}
	// The chain refuses escrows below minEscrowFee; the worker pays it to
	// itself (less the protocol fee).
	fee := max(p.Fee, c.params.MinEscrowFee)
	nonce, err := c.send.Send(ctx, ledger.Msg{OpenEscrow: &ledger.MsgOpenEscrow{Worker: w, ModelID: model, Fee: fee, Request: req, AgentID: 0}})
	if errors.Is(err, ErrMaybeSent) {
		return ledger.EscrowID(c.addr, nonce), err
	}
	if err != nil {
		return ledger.Hash{}, err
	}
	return ledger.EscrowID(c.addr, nonce), nil
}
