package proofhooks

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/verdictnet/verdict/internal/audit"
	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/disputegame"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/modelid"
	"github.com/verdictnet/verdict/internal/receipt"
)

// Models are the models a node holds, by model id.
type Models struct {
	mu sync.RWMutex
	m  map[ledger.Hash]held
}

// held is a model held under one of its ids, and the determinism spec the
// id is of (modelid.OfSpec).
type held struct {
	m    *model.Model
	spec string
}

// Add loads a model (and its tokenizer, for llama2.c checkpoints) and
// returns its model id (engine.SpecVersion). The model is held under its
// id for every specification the engine implements (engine.SpecKV16 too:
// receipts name the id of the spec they were made under, and the audits
// and disputes of each run under it).
func (ms *Models) Add(path, tokenizer string) (ledger.Hash, error) {
	m, err := model.Load(path, tokenizer)
	if err != nil {
		return ledger.Hash{}, err
	}
	specs := []string{engine.SpecVersion, engine.SpecKV16}
	cs, err := modelid.ComputeSpecs(m, specs...)
	if err != nil {
		m.Close()
		return ledger.Hash{}, fmt.Errorf("%s: %w", path, err)
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.m == nil {
		ms.m = map[ledger.Hash]held{}
	}
	for i, c := range cs {
		id := ledger.Hash(c.Root)
		if old, ok := ms.m[id]; ok && !ms.heldElsewhere(old.m, id) {
			old.m.Close()
		}
		ms.m[id] = held{m: m, spec: specs[i]}
	}
	return ledger.Hash(cs[0].Root), nil
}

// heldElsewhere reports whether m is held under another id than id (a
// model is held once per spec; it is closed once no id holds it).
func (ms *Models) heldElsewhere(m *model.Model, id ledger.Hash) bool {
	for k, o := range ms.m {
		if o.m == m && k != id {
			return true
		}
	}
	return false
}

// Get returns the model with id.
func (ms *Models) Get(id ledger.Hash) (*model.Model, bool) {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	h, ok := ms.m[id]
	return h.m, ok
}

// forReceipt returns the model a receipt names, and an error when the
// receipt's spec is not the spec its model id is of: the id of the model
// under one spec (verdict-det/2) with another spec's words (+kv16) made
// the audits and disputes run under the receipt's spec, so that a worker
// computing with the binary16 cache passed every check on the chain under
// the f32 model's id (and name), and an honest challenger lost its stake.
func (ms *Models) forReceipt(r *receipt.Receipt) (*model.Model, error) {
	ms.mu.RLock()
	h, ok := ms.m[ledger.Hash(r.Model)]
	ms.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("receipt %s: model %s: %w", ledger.Hash(r.ID()), ledger.Hash(r.Model), ledger.ErrModelUnavailable)
	}
	if r.Spec != h.spec {
		return h.m, fmt.Errorf("%w: receipt %s names model %s, whose id is of spec %q, and says spec %q", errSpecMismatch, ledger.Hash(r.ID()), ledger.Hash(r.Model), h.spec, r.Spec)
	}
	return h.m, nil
}

// errSpecMismatch is a receipt whose spec is not its model id's.
var errSpecMismatch = errors.New("spec mismatch")

// Close releases every model.
func (ms *Models) Close() {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	closed := map[*model.Model]bool{}
	for _, h := range ms.m {
		if !closed[h.m] {
			closed[h.m] = true
			h.m.Close()
		}
	}
	ms.m = nil
}

// Openings implements ledger.OpeningChecker with audit.Check. The audit's
// challenge seed is the first 8 bytes (big-endian) of the ledger's seed.
type Openings struct {
	Models *Models
}

// Seed maps a ledger audit seed to the audit package's challenge seed.
func Seed(s ledger.Hash) uint64 { return audit.SeedOf(s) }

// CheckOpenings implements ledger.OpeningChecker.
func (o Openings) CheckOpenings(rb []byte, seed ledger.Hash, cells uint32, ob []byte) error {
	r, err := receipt.Parse(rb)
	if err != nil {
		return err
	}
	m, err := o.Models.forReceipt(r)
	if err != nil {
		return fmt.Errorf("openings: %w", err)
	}
	op, err := audit.ParseOpenings(ob)
	if err != nil {
		return err
	}
	return audit.Check(m, merkle.Hash(r.Model), r, Seed(seed), int(cells), op)
}

// DisputeSetup is the disputegame.Setup of a node holding ms: the
// bisection game over the receipt's trace tree (audit.DisputeSetup) with
// the engine referee of the receipt's model. A receipt of a model the node
// does not hold gives an error wrapping ledger.ErrModelUnavailable.
//
// A dispute whose largest answer (audit.Referee.MaxAnswerBytes, carried
// base64-encoded in a disputeMove transaction) could exceed
// ledger.MaxTxBytes is refused: its parties could not answer in time and
// an honest one would lose. Since the inputs of a long attention leaf are
// opened in parts of audit.DisputePartBytes, no model shape the project
// knows comes near it at its whole context (audit
// TestMaxAnswerBytesWholeContexts); it stays as a guard for a shape whose
// single state or head would not fit.
func (ms *Models) DisputeSetup(rb, commitment []byte) (dispute.Config, dispute.Referee, error) {
	return ms.disputeSetup(rb, commitment, ledger.MaxTxBytes)
}

// txOverhead bounds what a disputeMove transaction adds to its message:
// the envelope, the dispute id and the signature.
const txOverhead = 1024

func (ms *Models) disputeSetup(rb, commitment []byte, maxTx int) (dispute.Config, dispute.Referee, error) {
	r, err := receipt.Parse(rb)
	if err != nil {
		return dispute.Config{}, nil, fmt.Errorf("dispute setup: %w", err)
	}
	m, err := ms.forReceipt(r)
	if errors.Is(err, errSpecMismatch) {
		// The worker signed a receipt whose spec is not its model id's:
		// it loses at once, as for a receipt no run can produce.
		return dispute.Config{Forfeit: [2]dispute.Loss{{Fault: dispute.FaultSpecMismatch, Why: fmt.Sprintf("signed a receipt whose spec is not its model id's: %v", err)}}}, nil, nil
	}
	if err != nil {
		return dispute.Config{}, nil, fmt.Errorf("dispute over %w", err)
	}
	cfg, ref, err := audit.DisputeSetup(m, r.Model, rb, commitment)
	if err != nil {
		return dispute.Config{}, nil, err
	}
	if ref == nil {
		return cfg, nil, nil // decided at once (Config.Forfeit)
	}
	if n := ref.MaxAnswerBytes(); 4*((n+2)/3)+txOverhead > maxTx {
		return dispute.Config{}, nil, fmt.Errorf("dispute setup: receipt %s is too long to dispute on this chain: an answer may take %d bytes, transactions are limited to %d", ledger.Hash(r.ID()), 4*((n+2)/3)+txOverhead, maxTx)
	}
	return cfg, ref, nil
}

// Hooks returns the ledger hooks of a node holding models: receipt
// signatures, audit openings and the dispute game, all checked with the
// deterministic engine on the node's models.
func Hooks(models *Models) ledger.Hooks {
	return ledger.Hooks{Receipts: ledger.Receipts{}, Openings: Openings{Models: models},
		Disputes: disputegame.Game{Setup: models.DisputeSetup}, Models: models}
}

// Holds reports whether the node holds the model with id.
func (ms *Models) Holds(id ledger.Hash) bool {
	_, ok := ms.Get(id)
	return ok
}

// IDs returns the ids of the models held, in byte order (a validator node
// attests to holding each of them: see node.ModelLister).
func (ms *Models) IDs() []ledger.Hash {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	ids := make([]ledger.Hash, 0, len(ms.m))
	for id := range ms.m {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b ledger.Hash) int { return bytes.Compare(a[:], b[:]) })
	return ids
}
