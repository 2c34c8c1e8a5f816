package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"math"
	"sort"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/sampler"
)

// unboundedSelect is the cell selection before the openings bound: k
// distinct draws below T*L + O, whatever their openings' size.
func unboundedSelect(l Layout, id [32]byte, seed uint64, k int) []int {
	n := l.Cells()
	seen := map[int]bool{}
	var out []int
	var ctr uint64
	for len(out) < k {
		c := int(uniform(id, seed, 'c', &ctr, uint64(n)))
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	sort.Ints(out)
	return out
}

// postTx is the postOpenings transaction a worker sends with openings o,
// decoded as every node decodes it (ledger.DecodeTx: the 6 MiB
// transaction limit and the 5 MiB openings limit).
func postTx(t *testing.T, worker ed25519.PrivateKey, id [32]byte, ob []byte) error {
	t.Helper()
	tx := &ledger.Tx{ChainID: strings.Repeat("c", 64), Nonce: math.MaxUint64, Fee: math.MaxUint64,
		Msg: &ledger.MsgPostOpenings{ReceiptID: ledger.Hash(id), Openings: ob}}
	tx.Sign(worker)
	_, err := ledger.DecodeTx(tx.Encode())
	return err
}

// TestAttackLongReceiptAudit: a requester pays for a long receipt of a
// model with a large head (here one head of 256 dimensions, as a layer of
// qwen3 or llama 3 8B has 128), so that the keys and values a late layer
// cell opens, (p+1)*2*hd floats, exceed what a postOpenings transaction
// carries. Before the openings bound some challenge seed selected such
// cells: the honest worker could not post its openings by the deadline
// and was slashed and jailed. Now a challenge selects only cells whose
// worst-case openings fit (Layout.Challengeable): for every seed the
// honest openings are at most OpeningsBudget, the ledger takes the
// transaction, and audit.Check accepts them.
func TestAttackLongReceiptAudit(t *testing.T) {
	f := synthFixture(t, "tiny-widehead", "f32", 2)
	worker := ed25519.NewKeyFromSeed(make([]byte, 32))

	// The whole budget: a transaction carrying OpeningsBudget bytes of
	// openings (the largest chain id, nonce and fee) is within the
	// ledger's limits, and one more base64 quantum is not.
	if err := postTx(t, worker, [32]byte{}, make([]byte, OpeningsBudget)); err != nil {
		t.Fatalf("openings of OpeningsBudget bytes: %v", err)
	}
	if err := postTx(t, worker, [32]byte{}, make([]byte, OpeningsBudget+3*1024/4)); !errors.Is(err, ledger.ErrDecode) {
		t.Fatalf("openings 1 KiB (base64) over OpeningsBudget: %v", err)
	}

	const T = 2300 // positions: past the bound at which one cell alone cannot be posted
	prompt := make([]int, T-2)
	prompt[0] = f.m.Vocab.BOS
	for i := 1; i < len(prompt); i++ {
		prompt[i] = 3 + (i*7919)%(f.m.Config.Vocab-3)
	}
	r := f.generateReceipt(t, prompt, sampler.Params{}, T+2)
	lay := NewLayout(f.m.Config, len(r.Prompt), len(r.Output))
	if lay.Positions() < T-1 {
		t.Fatalf("receipt of %d positions", lay.Positions())
	}
	if n := 4 * ((8*lay.HeadDim*lay.Positions() + 2) / 3); n <= OpeningsBudget {
		t.Fatalf("the last cell's keys and values take %d bytes of base64, within the budget %d: the receipt is too short", n, OpeningsBudget)
	}
	tr, err := Regenerate(context.Background(), f.e, r)
	if err != nil {
		t.Fatal(err)
	}
	id := r.ID()
	k := int(ledger.DefaultParams().AuditCells)
	positions, logits := lay.Challengeable(k)
	if positions < 100 || positions >= lay.Positions() || !logits {
		t.Fatalf("challengeable: %d of %d positions, logits %v", positions, lay.Positions(), logits)
	}
	t.Logf("%d positions, hd %d, K %d: layer cells challengeable below position %d", lay.Positions(), lay.HeadDim, k, positions)

	refused := 0
	for seed := uint64(0); seed < 8; seed++ {
		// Before: the unbounded selection.
		old := unboundedSelect(lay, id, seed, k)
		o, err := tr.openCells(seed, old)
		if err != nil {
			t.Fatal(err)
		}
		if err := postTx(t, worker, id, o.Marshal()); err != nil {
			refused++
			if !errors.Is(err, ledger.ErrDecode) {
				t.Fatalf("seed %d: %v", seed, err)
			}
		}

		// Now: every selected cell fits, and the honest openings pass.
		cells := lay.Select(id, seed, k)
		if len(cells) != k {
			t.Fatalf("seed %d: %d cells", seed, len(cells))
		}
		for _, c := range cells {
			cell, _ := lay.Cell(c)
			if !cell.Logits && cell.P >= positions {
				t.Fatalf("seed %d: cell %d at position %d, past the bound %d", seed, c, cell.P, positions)
			}
		}
		o, err = tr.Open(seed, k)
		if err != nil {
			t.Fatal(err)
		}
		ob := o.Marshal()
		if len(ob) > OpeningsBudget {
			t.Fatalf("seed %d: openings of %d bytes, budget %d", seed, len(ob), OpeningsBudget)
		}
		if err := postTx(t, worker, id, ob); err != nil {
			t.Fatalf("seed %d: the ledger refuses the honest openings (the worker would be slashed): %v", seed, err)
		}
		parsed, err := ParseOpenings(ob)
		if err != nil {
			t.Fatal(err)
		}
		if err := Check(f.m, f.id, r, seed, k, parsed); err != nil {
			t.Fatalf("seed %d: honest openings rejected: %v", seed, err)
		}
	}
	if refused == 0 {
		t.Fatal("no seed's unbounded selection was too large to post: the receipt does not exercise the attack")
	}
	t.Logf("unbounded selection: %d of 8 seeds' honest openings could not be posted", refused)
}
