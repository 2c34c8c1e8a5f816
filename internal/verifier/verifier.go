package verifier

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verdictnet/verdict/internal/audit"
	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/fifomap"
	"github.com/verdictnet/verdict/internal/inference"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/ledger/disputeplay"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/receipt"
)

// Config configures a Verifier.
type Config struct {
	// Client talks to a node; RPC is the same node's address (for
	// following blocks).
	Client *client.Client
	RPC    string
	// Key is the verifier's ledger account.
	Key *keys.Key
	// Worker holds the model the verifier re-runs receipts on (a
	// *worker.Local); receipts of other models are left alone.
	Worker Replayer
	// ReplayShareBps is the share of receipts re-run in full, in basis
	// points (10000: all). Receipts whose worker asked this verifier for
	// an ERC-8004 validation are always re-run.
	ReplayShareBps uint32
	// Stake is bonded at Setup when below it (default: minVerifierStake).
	Stake uint64
	// From is the first height to read (0: the next block).
	From   int64
	Logger *slog.Logger
}

// Replayer is what the verifier re-runs receipts on: the served model, a
// replay that checks a receipt (inference.Verifier) and its own trace of
// another worker's receipt for a dispute (RetraceLeaves: the tree alone
// at first, then the values of the disputed leaf's inputs once the game
// reaches them). A *worker.Local is one.
type Replayer interface {
	inference.Verifier
	ModelID() merkle.Hash
	Model() *model.Model
	Retrace(ctx context.Context, r *receipt.Receipt) (*audit.Trace, error)
	RetraceLeaves(ctx context.Context, r *receipt.Receipt, leaves []int) (*audit.Trace, error)
}

// Stats count what a verifier did.
type Stats struct {
	Seen, Replayed, Mismatches, OpeningsChecked, OpeningsBad, Validations, Disputes, DisputesWon int64
}

// Verifier follows the ledger and checks receipts.
type Verifier struct {
	cfg    Config
	send   *client.Sender
	log    *slog.Logger
	addr   ledger.Address
	params ledger.Params

	mu sync.Mutex
	// results holds the validation response (100 match, 0 mismatch) of
	// the last maxResults receipts replayed, for validation requests that
	// come after the replay.
	results *fifomap.Map[ledger.Hash, uint8]
	// requests maps a receipt to the hash of the validation request
	// addressed to this verifier that waits for its result; an entry goes
	// once answered, or once the receipt turns out not to be replayed.
	requests map[ledger.Hash]ledger.Hash
	disputes disputeplay.DisputeBook
	traces   map[ledger.Hash]*audit.Trace // receipt -> our trace, for disputes we opened

	stats struct {
		seen, replayed, mismatches, opened, openBad, validations, disputes, won atomic.Int64
	}
	// queue holds the sampled receipts, requested those named by
	// validation requests: anyone may address many of those to the
	// verifier, and they wait behind the sampled ones.
	queue, requested chan ledger.Hash
	// openings holds the posted openings to check, off the follow loop:
	// each check reads the audit, the receipt's record and its data from
	// the node, and recomputes the opened cells.
	openings chan openingsCheck
}

// openingsCheck is a MsgPostOpenings to check and the ledger's verdict
// on it.
type openingsCheck struct {
	msg    *ledger.MsgPostOpenings
	passed bool
}

// New returns a verifier.
func New(cfg Config) (*Verifier, error) {
	if cfg.Client == nil || cfg.Key == nil || cfg.Worker == nil {
		return nil, errors.New("verifier: need a ledger client, a key and a model")
	}
	if cfg.ReplayShareBps > 10000 {
		return nil, fmt.Errorf("verifier: replay share %d bps exceeds 10000", cfg.ReplayShareBps)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s, err := client.NewSender(cfg.Client, cfg.Key.Private, 1)
	if err != nil {
		return nil, err
	}
	return &Verifier{cfg: cfg, send: s, log: cfg.Logger, addr: s.Address(),
		results: fifomap.New[ledger.Hash, uint8](maxResults), requests: map[ledger.Hash]ledger.Hash{},
		traces: map[ledger.Hash]*audit.Trace{},
		queue:  make(chan ledger.Hash, 4096), requested: make(chan ledger.Hash, 4096), openings: make(chan openingsCheck, 4096)}, nil
}

// Address is the verifier's ledger account.
func (v *Verifier) Address() ledger.Address { return v.addr }

// Stats returns the counters.
func (v *Verifier) Stats() Stats {
	s := &v.stats
	return Stats{s.seen.Load(), s.replayed.Load(), s.mismatches.Load(), s.opened.Load(), s.openBad.Load(), s.validations.Load(), s.disputes.Load(), s.won.Load()}
}

// Sampled reports whether a verifier at address a re-runs receipt id when
// it re-runs share bps of receipts: the first 8 bytes of
// SHA-256("verdict/replay/v1" || a || id) mod 10000 below bps. Different
// verifiers sample different receipts; a worker cannot tell which.
func Sampled(id ledger.Hash, a ledger.Address, bps uint32) bool {
	h := sha256.New()
	h.Write([]byte("verdict/replay/v1"))
	h.Write(a[:])
	h.Write(id[:])
	var s [32]byte
	h.Sum(s[:0])
	return binary.BigEndian.Uint64(s[:8])%10000 < uint64(bps)
}

// Register adds the verifier's metrics to reg.
func (v *Verifier) Register(reg prometheus.Registerer) error {
	s := &v.stats
	for _, m := range []struct {
		name, help string
		v          *atomic.Int64
	}{
		{"verdict_verifier_receipts_seen_total", "Published receipts of the verifier's model.", &s.seen},
		{"verdict_verifier_replays_total", "Receipts re-run in full.", &s.replayed},
		{"verdict_verifier_mismatches_total", "Receipts whose replay disagreed.", &s.mismatches},
		{"verdict_verifier_openings_checked_total", "Audit openings checked.", &s.opened},
		{"verdict_verifier_openings_bad_total", "Audit openings that failed the check.", &s.openBad},
		{"verdict_verifier_validations_total", "ERC-8004 validation responses posted.", &s.validations},
		{"verdict_verifier_disputes_total", "Disputes opened.", &s.disputes},
		{"verdict_verifier_disputes_won_total", "Disputes the worker lost.", &s.won},
	} {
		c := m.v
		if err := reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: m.name, Help: m.help}, func() float64 { return float64(c.Load()) })); err != nil {
			return err
		}
	}
	return nil
}

// Setup reads the chain's parameters and bonds the verifier's stake.
func (v *Verifier) Setup(ctx context.Context) error {
	params, err := v.cfg.Client.Params(ctx)
	if err != nil {
		return fmt.Errorf("verifier setup: %w", err)
	}
	v.params = params
	want := v.cfg.Stake
	if want == 0 {
		want = v.params.MinVerifierStake
	}
	st, err := v.cfg.Client.Stake(ctx, v.addr)
	if err != nil {
		return fmt.Errorf("verifier setup: %w", err)
	}
	if st.Bonded < want {
		if _, err := v.send.Commit(ctx, &ledger.MsgBond{Amount: want - st.Bonded}); err != nil {
			return fmt.Errorf("verifier setup: bonding %d: %w", want-st.Bonded, err)
		}
	}
	v.log.Info("verifier on the ledger", "address", v.addr.String(), "replay_share_bps", v.cfg.ReplayShareBps)
	return nil
}

// Run follows the ledger until ctx ends.
func (v *Verifier) Run(ctx context.Context) error {
	f, err := client.NewFollower(v.cfg.RPC, v.cfg.From)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		v.replayLoop(ctx)
	}()
	// Dispute moves are played off the follow loop, a round after every
	// block: a move may recompute part of a trace (Reload, a forward pass:
	// seconds on a large model), and a loop waiting on it read no blocks
	// meanwhile, so that its other disputes' moves and the receipts to
	// replay waited too (the worker's follow loop does the same).
	play := make(chan struct{}, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		v.playLoop(ctx, play)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		v.openingsLoop(ctx)
	}()
	defer wg.Wait()
	model := ledger.Hash(v.cfg.Worker.ModelID())
	for ctx.Err() == nil {
		_, evs, err := f.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				v.log.Warn("following the ledger", "err", err)
				sleep(ctx, 300*time.Millisecond)
			}
			continue
		}
		v.block(ctx, model, evs, play)
	}
	return nil
}

// block acts on the events of one block and asks playLoop for a round of
// dispute moves (one is enough when a round is due already).
func (v *Verifier) block(ctx context.Context, model ledger.Hash, evs []client.Event, play chan<- struct{}) {
	for _, e := range evs {
		v.handle(ctx, model, e)
	}
	select {
	case play <- struct{}{}:
	default:
	}
}

// playLoop plays a round of dispute moves each time play is signalled,
// until ctx ends.
func (v *Verifier) playLoop(ctx context.Context, play <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-play:
			v.playDisputes(ctx)
		}
	}
}

// handle acts on one event of a block the verifier follows; model is the
// id of the model it replays.
func (v *Verifier) handle(ctx context.Context, model ledger.Hash, e client.Event) {
	switch e.Type {
	case ledger.EventReceiptPublished:
		p, err := ledger.DecodeReceiptPublished(e.Event)
		if err != nil || p.ModelID != model {
			return
		}
		v.stats.seen.Add(1)
		if Sampled(p.ReceiptID, v.addr, v.cfg.ReplayShareBps) {
			v.enqueue(v.queue, p.ReceiptID)
		}
	case ledger.EventValidationRequest:
		r, err := ledger.DecodeValidationRequest(e.Event)
		if err != nil || r.ValidatorAddress != v.addr || e.Tx == nil {
			return
		}
		vr, ok := e.Tx.Msg.(*ledger.MsgValidationRequest)
		if !ok || vr == nil {
			return
		}
		rid, err := receiptOf(vr.RequestURI)
		if err != nil {
			return
		}
		v.mu.Lock()
		v.requests[rid] = vr.RequestHash
		_, done := v.results.Get(rid)
		v.mu.Unlock()
		if !done && !Sampled(rid, v.addr, v.cfg.ReplayShareBps) && !v.enqueue(v.requested, rid) {
			v.forget(rid) // never answered: its entry would stay
		}
		v.respond(ctx, rid)
	case ledger.EventAuditPassed, ledger.EventAuditFailed:
		if e.Tx != nil {
			if p, ok := e.Tx.Msg.(*ledger.MsgPostOpenings); ok && p != nil {
				select {
				case v.openings <- openingsCheck{p, e.Type == ledger.EventAuditPassed}:
				default:
					v.log.Warn("openings queue full; openings not checked", "receipt", p.ReceiptID.String())
				}
			}
		}
	case ledger.EventDisputeOpened:
		if d, err := ledger.DecodeDisputeOpened(e.Event); err == nil && d.Challenger == v.addr {
			v.joinDispute(d.DisputeID, d.ReceiptID)
		}
	case ledger.EventReceiptFinal:
		// A dispute we meant to open did not (its transaction failed
		// in its block): the trace kept for it goes.
		if f, err := ledger.DecodeReceiptFinal(e.Event); err == nil {
			v.mu.Lock()
			delete(v.traces, f.ReceiptID)
			v.mu.Unlock()
		}
	case ledger.EventDisputeSettled:
		d, err := ledger.DecodeDisputeSettled(e.Event)
		if err != nil {
			return
		}
		if ours := v.disputes.Remove(d.DisputeID); ours {
			if d.Status == ledger.DisputeWorkerLost {
				v.stats.won.Add(1)
			}
			v.log.Info("dispute settled", "dispute", d.DisputeID.String(), "status", d.Status,
				"workerFault", d.WorkerFault, "challengerFault", d.ChallengerFault, "voidFault", d.VoidFault, "reason", d.Reason)
		}
	}
}

// enqueue queues receipt id for a replay, and reports whether it did (a
// full queue skips it).
func (v *Verifier) enqueue(q chan ledger.Hash, id ledger.Hash) bool {
	select {
	case q <- id:
		return true
	default:
		v.log.Warn("replay queue full; receipt skipped", "receipt", id.String())
		return false
	}
}

// forget drops the validation request waiting for receipt id: it will
// get no result.
func (v *Verifier) forget(id ledger.Hash) {
	v.mu.Lock()
	delete(v.requests, id)
	v.mu.Unlock()
}

// receiptOf reads the receipt id of a request URI "verdict:receipt/ID".
func receiptOf(uri string) (ledger.Hash, error) {
	const p = "verdict:receipt/"
	if len(uri) != len(p)+64 || uri[:len(p)] != p {
		return ledger.Hash{}, fmt.Errorf("request URI %q names no receipt", uri)
	}
	return ledger.ParseHash(uri[len(p):])
}

func (v *Verifier) replayLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-v.queue:
			v.check(ctx, id)
			continue
		default:
		}
		// No sampled receipt waits: one asked for by a validation request.
		select {
		case <-ctx.Done():
			return
		case id := <-v.queue:
			v.check(ctx, id)
		case id := <-v.requested:
			v.check(ctx, id)
		}
	}
}

// check re-runs a receipt; on a mismatch it opens a dispute.
func (v *Verifier) check(ctx context.Context, id ledger.Hash) {
	v.mu.Lock()
	_, done := v.results.Get(id)
	v.mu.Unlock()
	if done {
		v.respond(ctx, id)
		return
	}
	data, err := v.cfg.Client.ReceiptData(ctx, id)
	if err != nil {
		v.log.Warn("fetching a receipt", "receipt", id.String(), "err", err)
		v.forget(id)
		return
	}
	ver, err := v.cfg.Worker.Verify(ctx, data, true)
	if err != nil {
		v.log.Warn("replaying a receipt", "receipt", id.String(), "err", err)
		v.forget(id)
		return
	}
	if !ver.Replayed {
		// Not re-run (a receipt of another model, named by a validation
		// request anyone may address to this verifier): no verdict on it,
		// and no dispute, which a trace of this verifier's model could
		// only lose (its stake slashed).
		v.log.Warn("receipt not replayed; no validation and no dispute", "receipt", id.String(), "problem", ver.Problem)
		v.forget(id)
		return
	}
	v.stats.replayed.Add(1)
	result := uint8(100)
	if !ver.Match {
		result = 0
		v.stats.mismatches.Add(1)
		v.log.Warn("receipt does not replay", "receipt", id.String(), "worker", ver.Worker, "problem", ver.Problem)
		v.challenge(ctx, id, data)
	}
	v.mu.Lock()
	v.results.Put(id, result)
	v.mu.Unlock()
	v.respond(ctx, id)
}

// challenge opens a dispute with this verifier's own trace of the receipt.
func (v *Verifier) challenge(ctx context.Context, id ledger.Hash, data []byte) {
	r, err := receipt.Parse(data)
	if err != nil {
		return
	}
	if why := audit.Impossible(v.cfg.Worker.Model(), r); why != nil {
		// A receipt no run can produce (an output that breaks its own
		// stopping rule, say) may carry the exact trace of its tokens,
		// which ours would only repeat: its worker forfeits the dispute
		// at its opening, whatever the commitment, and no trace is needed.
		if _, err := v.send.Send(ctx, &ledger.MsgOpenDispute{ReceiptID: id, Commitment: r.TraceRoot[:]}); err != nil {
			v.log.Error("opening a dispute", "receipt", id.String(), "err", err)
			return
		}
		v.stats.disputes.Add(1)
		v.log.Warn("dispute opened over a receipt no run can produce", "receipt", id.String(), "problem", why)
		return
	}
	// The tree alone: the values of the disputed leaf's inputs are
	// recomputed when the game reaches it (Player.Reload).
	tr, err := v.cfg.Worker.RetraceLeaves(ctx, r, []int{})
	if err != nil {
		v.log.Error("computing our trace", "receipt", id.String(), "err", err)
		return
	}
	root := tr.Tree().Root()
	if root == r.TraceRoot {
		// The trace agrees: the mismatch is in sampling. The worker's own
		// final states, which are ours, sample another token than one it
		// signed: a sampling fault (docs/protocol.md 8.2), which it
		// forfeits at the dispute's opening. The states are read again
		// for it alone, and not kept.
		m := v.cfg.Worker
		st, err := m.RetraceLeaves(ctx, r, audit.FinalStates(m.Model(), r))
		if err != nil {
			v.log.Error("computing our final states", "receipt", id.String(), "err", err)
			return
		}
		fault, err := st.SamplingFault(m.Model())
		if err != nil {
			v.log.Warn("the receipt's trace agrees with ours and no sampling fault is found; no dispute", "receipt", id.String(), "err", err)
			return
		}
		if _, err := v.send.Send(ctx, &ledger.MsgOpenDispute{ReceiptID: id, Commitment: fault}); err != nil {
			v.log.Error("opening a dispute", "receipt", id.String(), "err", err)
			return
		}
		v.stats.disputes.Add(1)
		v.log.Warn("dispute opened over a sampling fault", "receipt", id.String())
		return
	}
	v.mu.Lock()
	v.traces[id] = tr
	v.mu.Unlock()
	if _, err := v.send.Send(ctx, &ledger.MsgOpenDispute{ReceiptID: id, Commitment: root[:]}); err != nil {
		v.log.Error("opening a dispute", "receipt", id.String(), "err", err)
		v.mu.Lock()
		delete(v.traces, id)
		v.mu.Unlock()
		return
	}
	v.stats.disputes.Add(1)
	v.log.Warn("dispute opened", "receipt", id.String())
}

func (v *Verifier) joinDispute(id, r ledger.Hash) {
	v.mu.Lock()
	defer v.mu.Unlock()
	tr := v.traces[r]
	if tr == nil {
		return
	}
	// The player holds the trace from now on (until the dispute settles):
	// kept here too, every receipt a worker forged would hold its trace
	// tree in memory for good.
	delete(v.traces, r)
	m := v.cfg.Worker
	rc := tr.Receipt()
	v.disputes.Add(id, &disputeplay.Player{Side: ledger.SideChallenger, Setup: disputeplay.TraceSetup(m.Model(), m.ModelID()), Timeout: v.params.MoveWindow,
		Responder: &dispute.Responder{Party: dispute.B, Tree: tr.Tree(), Value: tr.LeafValue},
		Reload: func(ctx context.Context, _ *ledger.Dispute, leaves []int) (func(int) ([]byte, error), error) {
			kept, err := m.RetraceLeaves(ctx, rc, leaves)
			if err != nil {
				return nil, err
			}
			return kept.LeafValue, nil
		}})
}

func (v *Verifier) playDisputes(ctx context.Context) { v.disputes.Play(ctx, v.send, v.log) }

// respond posts the ERC-8004 validation response for a receipt once both
// the request and the result are known.
func (v *Verifier) respond(ctx context.Context, id ledger.Hash) {
	v.mu.Lock()
	req, hasReq := v.requests[id]
	res, hasRes := v.results.Get(id)
	if !hasReq || !hasRes {
		v.mu.Unlock()
		return
	}
	// Taken out, so that it is answered once.
	delete(v.requests, id)
	v.mu.Unlock()
	if _, err := v.send.Send(ctx, &ledger.MsgValidationResponse{RequestHash: req, Response: res,
		ResponseURI: "verdict:replay/" + id.String(), ResponseHash: id, Tag: "verdict.replay"}); err != nil {
		v.log.Warn("validation response", "receipt", id.String(), "err", err)
		v.mu.Lock()
		if _, newer := v.requests[id]; !newer {
			v.requests[id] = req
		}
		v.mu.Unlock()
		return
	}
	v.stats.validations.Add(1)
}

// openingsLoop checks the openings handle queued, until ctx ends.
func (v *Verifier) openingsLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-v.openings:
			v.checkOpenings(ctx, c.msg, c.passed)
		}
	}
}

// checkOpenings checks posted openings independently of the ledger.
func (v *Verifier) checkOpenings(ctx context.Context, m *ledger.MsgPostOpenings, ledgerPassed bool) {
	a, found, err := v.cfg.Client.Audit(ctx, m.ReceiptID)
	if err != nil || !found {
		return
	}
	// The record names the model: another model's receipt (its data up to
	// megabytes) is not fetched, in the follow loop, to be dropped.
	rec, found, err := v.cfg.Client.Receipt(ctx, m.ReceiptID)
	if err != nil || !found || rec.ModelID != ledger.Hash(v.cfg.Worker.ModelID()) {
		return
	}
	data, err := v.cfg.Client.ReceiptData(ctx, m.ReceiptID)
	if err != nil {
		return
	}
	r, err := receipt.Parse(data)
	if err != nil || r.Model != v.cfg.Worker.ModelID() {
		return
	}
	op, err := audit.ParseOpenings(m.Openings)
	if err == nil {
		err = audit.Check(v.cfg.Worker.Model(), merkle.Hash(r.Model), r, audit.SeedOf(a.Seed), int(a.Cells), op)
	}
	v.stats.opened.Add(1)
	if err != nil {
		v.stats.openBad.Add(1)
	}
	if (err == nil) != ledgerPassed {
		v.log.Error("audit verdict differs from the ledger's", "receipt", m.ReceiptID.String(), "ours", err, "ledger_passed", ledgerPassed)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// maxResults is how many replays' results a verifier keeps for the
// validation requests that come after them (about 100 bytes each).
const maxResults = 1 << 16
