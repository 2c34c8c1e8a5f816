package proofhooks

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/verdictnet/verdict/internal/audit"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/sampler"
	"github.com/verdictnet/verdict/internal/synth"
)

// TestAttackLongReceiptAuditThroughLedger is audit's
// TestAttackLongReceiptAudit through the ledger: a requester's escrow
// without an audit commitment (always audited) pays for a receipt of 2302
// positions of a model with one head of 256 dimensions, whose late layer
// cells' openings alone exceed a transaction; the chain selects the audit,
// the honest worker opens the cells the seed selects, and the ledger takes
// its postOpenings and passes the audit (before the openings bound, most
// seeds selected cells the worker could not post).
func TestAttackLongReceiptAuditThroughLedger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "widehead.gguf")
	if err := synth.WriteFile(path, synth.Options{Preset: "tiny-widehead", Seed: 5}); err != nil {
		t.Fatal(err)
	}
	models, id, m, e := loadModels(t, path, 2)
	wk, err := keys.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	const T = 2300
	prompt := make([]int, T-2)
	prompt[0] = m.Vocab.BOS
	for i := 1; i < len(prompt); i++ {
		prompt[i] = 3 + (i*7919)%(m.Config.Vocab-3)
	}
	r := signedReceipt(t, e, m, id, wk, prompt, T+2, sampler.Params{})
	rb, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	lay := audit.NewLayout(m.Config, len(r.Prompt), len(r.Output))
	if lay.LayerCellBytes(lay.Positions()-1) <= audit.OpeningsBudget {
		t.Fatalf("receipt of %d positions: its last cell fits the budget", lay.Positions())
	}
	worker := ed25519.PrivateKey(wk.Private)
	reqKey := ed25519.NewKeyFromSeed([]byte("requester seed requester seed!!!"))
	params := ledger.DefaultParams()
	params.AuditRateBps = 10000
	l := ledger.New(ledger.NewMemStore(), Hooks(models))
	wa, ra := addrOf(worker), addrOf(reqKey)
	g := ledger.Genesis{ChainID: "pd", Params: params, Accounts: []ledger.GenesisAccount{{Address: wa, Balance: 1_000_000, Bonded: 10_000}, {Address: ra, Balance: 1_000_000}}}
	if err := l.InitGenesis(g); err != nil {
		t.Fatal(err)
	}
	c := &dchain{t: t, l: l, nonces: map[ledger.Address]uint64{}}
	c.ok(c.tx(reqKey, &ledger.MsgRegisterModel{ModelID: id, Name: "widehead", SpecVersion: 1}))
	c.ok(c.tx(reqKey, &ledger.MsgOpenEscrow{Worker: wa, ModelID: id, Fee: 50, Request: reqOf(t, rb)}))
	c.ok(c.tx(worker, &ledger.MsgPublishReceipt{EscrowID: ledger.EscrowID(ra, 1), Receipt: rb}))
	c.ok()
	rid := ledger.Hash(r.ID())
	var a ledger.Audit
	c.query("audit/"+rid.String(), &a)
	op, err := audit.Open(context.Background(), e, r, Seed(a.Seed), int(a.Cells))
	if err != nil {
		t.Fatal(err)
	}
	c.ok(c.tx(worker, &ledger.MsgPostOpenings{ReceiptID: rid, Openings: op.Marshal()}))
	b, err := l.Query("audit/"+rid.String(), nil)
	if err != nil || json.Unmarshal(b, &a) != nil {
		t.Fatalf("audit: %v", err)
	}
	if a.Status != ledger.AuditPassed {
		t.Fatalf("audit %s, want %s", a.Status, ledger.AuditPassed)
	}
}
