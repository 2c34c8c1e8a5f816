package proofhooks

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/verdictnet/verdict/internal/audit"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/modelid"
	"github.com/verdictnet/verdict/internal/receipt"
)

// Models are the models a node holds, by model id.
type Models struct {
	mu sync.RWMutex
	m  map[ledger.Hash]*model.Model
}

// Add loads a model (and its tokenizer, for llama2.c checkpoints) and
// returns its model id.
func (ms *Models) Add(path, tokenizer string) (ledger.Hash, error) {
	m, err := model.Load(path, tokenizer)
	if err != nil {
		return ledger.Hash{}, err
	}
	id, err := modelid.Of(m)
	if err != nil {
		m.Close()
		return ledger.Hash{}, fmt.Errorf("%s: %w", path, err)
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.m == nil {
		ms.m = map[ledger.Hash]*model.Model{}
	}
	if old, ok := ms.m[ledger.Hash(id)]; ok {
		old.Close()
	}
	ms.m[ledger.Hash(id)] = m
	return ledger.Hash(id), nil
}

// Get returns the model with id.
func (ms *Models) Get(id ledger.Hash) (*model.Model, bool) {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	m, ok := ms.m[id]
	return m, ok
}

// Close releases every model.
func (ms *Models) Close() {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for _, m := range ms.m {
		m.Close()
	}
	ms.m = nil
}

// Openings implements ledger.OpeningChecker with audit.Check. The audit's
// challenge seed is the first 8 bytes (big-endian) of the ledger's seed.
type Openings struct {
	Models *Models
}

// Seed maps a ledger audit seed to the audit package's challenge seed.
func Seed(s ledger.Hash) uint64 { return binary.BigEndian.Uint64(s[:8]) }

// CheckOpenings implements ledger.OpeningChecker.
func (o Openings) CheckOpenings(rb []byte, seed ledger.Hash, cells uint32, ob []byte) error {
	r, err := receipt.Parse(rb)
	if err != nil {
		return err
	}
	m, ok := o.Models.Get(ledger.Hash(r.Model))
	if !ok {
		return fmt.Errorf("model %s is not held by this node", ledger.Hash(r.Model))
	}
	op, err := audit.ParseOpenings(ob)
	if err != nil {
		return err
	}
	return audit.Check(m, merkle.Hash(r.Model), r, Seed(seed), int(cells), op)
}

// Hooks returns the ledger hooks of a node holding models.
func Hooks(models *Models) ledger.Hooks {
	return ledger.Hooks{Receipts: ledger.Receipts{}, Openings: Openings{Models: models}}
}
