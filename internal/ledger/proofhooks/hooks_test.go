package proofhooks

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/verdictnet/verdict/internal/audit"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
)

// TestAuditThroughLedger generates a real receipt with stories260K,
// publishes it, lets the chain select an audit, and posts real openings
// (accepted) or openings for another challenge (rejected, slashed): CheckTx
// takes both, leaving the proofs to the block.
func TestAuditThroughLedger(t *testing.T) {
	models, id, m, e := stories(t)
	wk, err := keys.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	r := honestReceipt(t, e, m, id, wk, 3)
	rb, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	worker := ed25519.PrivateKey(wk.Private)
	reqKey := ed25519.NewKeyFromSeed([]byte("requester seed requester seed!!!"))

	for _, honest := range []bool{true, false} {
		t.Run(fmt.Sprint("honest=", honest), func(t *testing.T) {
			params := ledger.DefaultParams()
			params.AuditRateBps = 10000
			hooks := Hooks(models)
			checks := &countingOpenings{OpeningChecker: hooks.Openings}
			hooks.Openings = checks
			l := ledger.New(ledger.NewMemStore(), hooks)
			wa, ra := ledger.Address(worker.Public().(ed25519.PublicKey)), ledger.Address(reqKey.Public().(ed25519.PublicKey))
			g := ledger.Genesis{ChainID: "ph", Params: params, Accounts: []ledger.GenesisAccount{{Address: wa, Balance: 10_000, Bonded: 10_000}, {Address: ra, Balance: 10_000}}}
			if err := l.InitGenesis(g); err != nil {
				t.Fatal(err)
			}
			var h uint64
			nonces := map[ledger.Address]uint64{}
			do := func(k ed25519.PrivateKey, msg ledger.Msg) ledger.Result {
				a := ledger.Address(k.Public().(ed25519.PublicKey))
				tx := &ledger.Tx{ChainID: "ph", Nonce: nonces[a], Fee: 1, Msg: msg}
				nonces[a]++
				tx.Sign(k)
				if est := ledger.NewChecker(l).EstimateFee(tx.Encode()); est.RequiredFee > tx.Fee {
					tx.Fee = est.RequiredFee
					tx.Sign(k)
				}
				h++
				out, err := l.FinalizeBlock(ledger.BlockContext{Height: h, Time: int64(h), Hash: ledger.Hash{byte(h), 7}}, [][]byte{tx.Encode()})
				if err != nil {
					t.Fatal(err)
				}
				if out.TxResults[0].Code != 0 {
					t.Fatalf("height %d: %s", h, out.TxResults[0].Log)
				}
				return out.TxResults[0]
			}
			do(reqKey, &ledger.MsgRegisterModel{ModelID: id, Name: "stories260K", SpecVersion: 1})
			do(reqKey, &ledger.MsgOpenEscrow{Worker: wa, ModelID: id, Fee: 50, Request: reqOf(t, rb)})
			do(worker, &ledger.MsgPublishReceipt{EscrowID: ledger.EscrowID(ra, 1), Receipt: rb})
			h++
			if _, err := l.FinalizeBlock(ledger.BlockContext{Height: h, Time: int64(h), Hash: ledger.Hash{byte(h), 7}}, nil); err != nil {
				t.Fatal(err)
			}
			rid := ledger.Hash(r.ID())
			var a ledger.Audit
			b, err := l.Query("audit/"+rid.String(), nil)
			if err != nil || json.Unmarshal(b, &a) != nil {
				t.Fatalf("no audit selected: %v", err)
			}
			seed := Seed(a.Seed)
			if !honest {
				seed++
			}
			op, err := audit.Open(context.Background(), e, r, seed, int(a.Cells))
			if err != nil {
				t.Fatal(err)
			}
			// The mempool takes either: the block checks the proofs.
			post := &ledger.Tx{ChainID: "ph", Nonce: nonces[wa], Fee: 1, Msg: &ledger.MsgPostOpenings{ReceiptID: rid, Openings: op.Marshal()}}
			post.Sign(worker)
			post.Fee = max(post.Fee, ledger.NewChecker(l).EstimateFee(post.Encode()).RequiredFee)
			post.Sign(worker)
			if r := ledger.NewChecker(l).Check(post.Encode()); r.Code != 0 {
				t.Fatalf("CheckTx: code %d %s", r.Code, r.Log)
			}
			if checks.n != 0 {
				t.Fatalf("the mempool checked the openings %d times", checks.n)
			}
			do(worker, post.Msg)
			if checks.n != 1 {
				t.Fatalf("the openings were checked %d times, want once (in the block)", checks.n)
			}
			b, _ = l.Query("audit/"+rid.String(), nil)
			json.Unmarshal(b, &a)
			want := ledger.AuditPassed
			if !honest {
				want = ledger.AuditFailed
			}
			if a.Status != want {
				t.Fatalf("audit %s, want %s", a.Status, want)
			}
		})
	}
}

// reqOf is the request hash of a receipt, for the escrow that pays for it.
func reqOf(t testing.TB, rb []byte) ledger.Hash {
	t.Helper()
	h, err := ledger.ReceiptRequest(rb)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// countingOpenings counts the openings an OpeningChecker checks.
type countingOpenings struct {
	ledger.OpeningChecker
	n int
}

func (c *countingOpenings) CheckOpenings(rb []byte, seed ledger.Hash, cells uint32, ob []byte) error {
	c.n++
	return c.OpeningChecker.CheckOpenings(rb, seed, cells, ob)
}
