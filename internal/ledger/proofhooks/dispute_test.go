package proofhooks

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/verdictnet/verdict/internal/audit"
	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/generate"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/disputegame"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/sampler"
	"github.com/verdictnet/verdict/internal/testutil"
)

// stories loads stories260K into a Models and returns it with an engine.
func stories(t *testing.T) (*Models, ledger.Hash, *model.Model, *engine.Engine) {
	t.Helper()
	return loadModels(t, testutil.Shared(t, "models/stories260K.gguf"), 1)
}

// loadModels loads the model file at path into a Models and returns it
// with an engine of threads threads (both closed when the test ends).
func loadModels(t *testing.T, path string, threads int) (*Models, ledger.Hash, *model.Model, *engine.Engine) {
	t.Helper()
	models := &Models{}
	t.Cleanup(models.Close)
	id, err := models.Add(path, "")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := models.Get(id)
	e, err := engine.New(m, engine.Options{Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return models, id, m, e
}

// honestReceipt generates a signed receipt as `verdict run --receipt` does.
func honestReceipt(t *testing.T, e *engine.Engine, m *model.Model, id ledger.Hash, k *keys.Key, seed uint64) *receipt.Receipt {
	t.Helper()
	return signedReceipt(t, e, m, id, k, []int{1, 403, 407, 261, 378}, 24, sampler.Params{Temperature: 0.9, Seed: seed})
}

// signedReceipt generates from prompt (steps, sampler p, BOS the stop
// token) with the trace recorded and returns its receipt signed by k.
func signedReceipt(t *testing.T, e *engine.Engine, m *model.Model, id ledger.Hash, k *keys.Key, prompt []int, steps int, p sampler.Params) *receipt.Receipt {
	t.Helper()
	rec := audit.NewRecorder(m.Config, prompt)
	stop := []int{m.Vocab.BOS}
	res, err := generate.Run(context.Background(), e, generate.Request{Prompt: prompt, Steps: steps, Sampler: p, StopTokens: stop,
		OnLogits: func(pos int, l []float32) error { rec.Logits(pos, l); return nil }, Trace: rec})
	if err != nil {
		t.Fatal(err)
	}
	r, err := rec.Receipt(merkle.Hash(id), engine.SpecVersion, p, audit.EffectiveSteps(steps, m.Config.ContextLen), stop, res.Output, nil, k)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// forged returns tr with leaf i's value changed in one byte.
func forged(t *testing.T, tr *audit.Trace, i int, rng *rand.Rand) *audit.Trace {
	t.Helper()
	v, err := tr.LeafValue(i)
	if err != nil {
		t.Fatal(err)
	}
	v = append([]byte(nil), v...)
	v[rng.IntN(len(v))] ^= byte(1 + rng.IntN(255))
	out, err := tr.WithLeaf(i, v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// refereeLog records every referee the node's dispute game builds (one
// per replay of a transcript) to measure the referee's work.
type refereeLog struct {
	mu   sync.Mutex
	refs []*audit.Referee
}

func (rl *refereeLog) setup(ms *Models) disputegame.Setup {
	return func(rb, c []byte) (dispute.Config, dispute.Referee, error) {
		cfg, ref, err := ms.DisputeSetup(rb, c)
		if err == nil {
			rl.mu.Lock()
			rl.refs = append(rl.refs, ref.(*audit.Referee))
			rl.mu.Unlock()
		}
		return cfg, ref, err
	}
}

// dchain drives a ledger through FinalizeBlock, one block per call.
type dchain struct {
	t      *testing.T
	l      *ledger.Ledger
	h      uint64
	nonces map[ledger.Address]uint64
	paid   map[ledger.Address]uint64 // fees of the transactions built
}

// tx signs msg with the fee the ledger asks for it (ledger.Checker.EstimateFee).
func (c *dchain) tx(k ed25519.PrivateKey, msg ledger.Msg) []byte {
	a := ledger.Address(k.Public().(ed25519.PublicKey))
	tx := &ledger.Tx{ChainID: "pd", Nonce: c.nonces[a], Fee: 1, Msg: msg}
	c.nonces[a]++
	tx.Sign(k)
	if est := ledger.NewChecker(c.l).EstimateFee(tx.Encode()); est.RequiredFee > tx.Fee {
		tx.Fee = est.RequiredFee
		tx.Sign(k)
	}
	if c.paid == nil {
		c.paid = map[ledger.Address]uint64{}
	}
	c.paid[a] += tx.Fee
	return tx.Encode()
}

func (c *dchain) block(txs ...[]byte) (ledger.BlockResult, error) {
	c.h++
	res, err := c.l.FinalizeBlock(ledger.BlockContext{Height: c.h, Time: int64(c.h), Hash: sha256.Sum256(fmt.Append(nil, "pd", c.h))}, txs)
	if err != nil {
		c.h--
	}
	return res, err
}

func (c *dchain) ok(txs ...[]byte) ledger.BlockResult {
	c.t.Helper()
	res, err := c.block(txs...)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, r := range res.TxResults {
		if r.Code != 0 {
			c.t.Fatalf("height %d: %s", c.h, r.Log)
		}
	}
	return res
}

func (c *dchain) query(path string, v any) {
	c.t.Helper()
	b, err := c.l.Query(path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		c.t.Fatal(err)
	}
}

func addrOf(k ed25519.PrivateKey) ledger.Address {
	return ledger.Address(k.Public().(ed25519.PublicKey))
}

// TestDisputeThroughLedger plays the bisection game over a real
// stories260K receipt through ledger transactions, with the engine referee
// run inside FinalizeBlock: a lying challenger, a worker whose receipt
// commits to a trace forged at a random leaf, and a silent party (its
// answer's deadline passes). The liar (or the silent party) loses and is
// slashed slashDisputeBps of its stake, winnerShareBps of which goes to
// the winner and the rest is burned, within ceil(log2(leaves))+3 rounds;
// the referee recomputes one leaf from one layer's inputs.
func TestDisputeThroughLedger(t *testing.T) {
	models, id, m, e := stories(t)
	wk, err := keys.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	r := honestReceipt(t, e, m, id, wk, 3)
	honest, err := audit.Regenerate(context.Background(), e, r)
	if err != nil {
		t.Fatal(err)
	}
	N := honest.Tree().Len()
	maxRounds := bits.Len(uint(N-1)) + 3
	rng := rand.New(rand.NewPCG(11, 12))
	worker := ed25519.PrivateKey(wk.Private)
	chall := ed25519.NewKeyFromSeed([]byte("challenger seed challenger seed!"))
	req := ed25519.NewKeyFromSeed([]byte("requester seed requester seed!!!"))

	for _, c := range []struct {
		name               string
		workerLies, silent bool // silent: the liar's opponent (the honest party) never answers
		loser              ledger.Side
	}{
		{"lying challenger", false, false, ledger.SideChallenger},
		{"lying worker", true, false, ledger.SideWorker},
		{"lying worker", true, false, ledger.SideWorker},
		{"lying challenger, silent worker", false, true, ledger.SideWorker},
		{"lying worker, silent challenger", true, true, ledger.SideChallenger},
	} {
		leaf := rng.IntN(N)
		t.Run(fmt.Sprintf("%s at leaf %d", c.name, leaf), func(t *testing.T) {
			wt, ct, rr := honest, forged(t, honest, leaf, rng), r
			if c.workerLies {
				wt, ct = ct, honest
				cp := *r
				cp.TraceRoot = wt.Tree().Root()
				if err := cp.Sign(wk.Private); err != nil {
					t.Fatal(err)
				}
				rr = &cp
			}
			rb, err := rr.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			rl := &refereeLog{}
			hooks := Hooks(models)
			game := disputegame.Game{Setup: rl.setup(models)}
			hooks.Disputes = game
			p := ledger.DefaultParams()
			p.AuditRateBps, p.ChallengeWindow = 0, 100
			l := ledger.New(ledger.NewMemStore(), hooks)
			g := ledger.Genesis{ChainID: "pd", Params: p, Accounts: []ledger.GenesisAccount{
				{Address: addrOf(worker), Balance: 10_000, Bonded: 10_000},
				{Address: addrOf(chall), Balance: 10_000, Bonded: 20_000},
				{Address: addrOf(req), Balance: 10_000}}}
			if err := l.InitGenesis(g); err != nil {
				t.Fatal(err)
			}
			ch := &dchain{t: t, l: l, nonces: map[ledger.Address]uint64{}}
			ch.ok(ch.tx(req, &ledger.MsgRegisterModel{ModelID: id, Name: "stories260K", SpecVersion: 1}),
				ch.tx(req, &ledger.MsgOpenEscrow{Worker: addrOf(worker), ModelID: id, Fee: 50, Request: reqOf(t, rb)}))
			ch.ok(ch.tx(worker, &ledger.MsgPublishReceipt{EscrowID: ledger.EscrowID(addrOf(req), 1), Receipt: rb}))
			root := ct.Tree().Root()
			res := ch.ok(ch.tx(chall, &ledger.MsgOpenDispute{ReceiptID: ledger.Hash(rr.ID()), Commitment: root[:]}))
			var did ledger.Hash
			for _, ev := range res.TxResults[0].Events {
				if d, err := ledger.DecodeDisputeOpened(ev); err == nil {
					did = d.DisputeID
				}
			}
			var before ledger.Totals
			ch.query("totals", &before)
			balance := func(k ed25519.PrivateKey) (ledger.Account, ledger.Stake) {
				var a ledger.Account
				var s ledger.Stake
				ch.query("account/"+addrOf(k).String(), &a)
				ch.query("stake/"+addrOf(k).String(), &s)
				return a, s
			}
			wa0, ws0 := balance(worker)
			ca0, cs0 := balance(chall)
			paid0 := map[ledger.Address]uint64{addrOf(worker): ch.paid[addrOf(worker)], addrOf(chall): ch.paid[addrOf(chall)]}

			players := map[ledger.Side]struct {
				key  ed25519.PrivateKey
				resp *dispute.Responder
			}{
				ledger.SideWorker:     {worker, &dispute.Responder{Party: dispute.A, Tree: wt.Tree(), Value: wt.LeafValue}},
				ledger.SideChallenger: {chall, &dispute.Responder{Party: dispute.B, Tree: ct.Tree(), Value: ct.LeafValue}},
			}
			var d ledger.Dispute
			rounds := 0
			for step := 0; ; step++ {
				if step > 4*maxRounds {
					t.Fatal("dispute does not end")
				}
				ch.query("dispute/"+did.String(), &d)
				if d.Status != ledger.DisputeOpen {
					break
				}
				if rounds, err = game.Rounds(d.Game); err != nil {
					t.Fatal(err)
				}
				q, ok, err := game.Outstanding(d.Game)
				if err != nil || !ok {
					t.Fatalf("open dispute without a query: %v", err)
				}
				var txs [][]byte
				for _, side := range []ledger.Side{ledger.SideWorker, ledger.SideChallenger} {
					if c.silent && side == c.loser && q.Round >= 3 {
						continue // falls silent from round 3
					}
					if len(txs) > 0 && q.Kind == dispute.OpenLeaves {
						break // one valid opening of the agreed leaves decides
					}
					a, err := players[side].resp.Answer(q)
					if err != nil {
						t.Fatal(err)
					}
					b, err := a.Marshal()
					if err != nil {
						t.Fatal(err)
					}
					txs = append(txs, ch.tx(players[side].key, &ledger.MsgDisputeMove{DisputeID: did, Message: b}))
				}
				ch.ok(txs...)
				if c.silent && q.Round >= 3 {
					for ch.h <= q.Deadline {
						ch.ok()
					}
				}
			}
			if rounds > maxRounds {
				t.Fatalf("%d rounds, limit ceil(log2(%d))+3 = %d", rounds, N, maxRounds)
			}
			var rec ledger.ReceiptRecord
			ch.query("receipt/"+ledger.Hash(rr.ID()).String(), &rec)
			wantD, wantR := ledger.DisputeChallengerLost, ledger.StatusPublished
			if c.loser == ledger.SideWorker {
				wantD, wantR = ledger.DisputeWorkerLost, ledger.StatusSlashed
			}
			// The silent party loses by its deadline, a liar who answers
			// by the recomputation.
			wantF := [2]dispute.Fault{}
			wantF[c.loser-1] = dispute.FaultStateMismatch
			if c.silent {
				wantF[c.loser-1] = dispute.FaultTimeout
			}
			if d.Status != wantD || rec.Status != wantR || [2]dispute.Fault{d.WorkerFault, d.ChallengerFault} != wantF || d.VoidFault != "" {
				t.Fatalf("dispute %+v, receipt %s; want %s %q, %s", d, rec.Status, wantD, wantF, wantR)
			}

			// The loser lost slashDisputeBps of its stake; a winning
			// challenger got winnerShareBps of that (less its move fees),
			// the rest burned; a losing challenger's slash is burned whole
			// (the worker gains nothing from it).
			wa1, ws1 := balance(worker)
			ca1, cs1 := balance(chall)
			var after ledger.Totals
			ch.query("totals", &after)
			loserStake0, loserStake1, winnerBal0, winnerBal1, winnerKey := ws0.Bonded, ws1.Bonded, ca0.Balance, ca1.Balance, chall
			if c.loser == ledger.SideChallenger {
				loserStake0, loserStake1, winnerBal0, winnerBal1, winnerKey = cs0.Bonded, cs1.Bonded, wa0.Balance, wa1.Balance, worker
			}
			slashed := loserStake0 * uint64(p.SlashDisputeBps) / 10000
			share := slashed * uint64(p.WinnerShareBps) / 10000
			if c.loser == ledger.SideChallenger {
				share = 0
			}
			var acct ledger.Account
			ch.query("account/"+addrOf(winnerKey).String(), &acct)
			moveFees := ch.paid[addrOf(winnerKey)] - paid0[addrOf(winnerKey)]
			if loserStake1 != loserStake0-slashed || winnerBal1 != winnerBal0+share-moveFees || after.Burned-before.Burned != slashed-share {
				t.Fatalf("loser stake %d -> %d (slash %d), winner balance %d -> %d (share %d, fees %d), burned %d",
					loserStake0, loserStake1, slashed, winnerBal0, winnerBal1, share, moveFees, after.Burned-before.Burned)
			}

			// Every referee the node built recomputed at most one leaf and
			// read at most one layer's attention inputs; the game ended by
			// the referee unless a party fell silent.
			lay := audit.NewLayout(m.Config, len(rr.Prompt), len(rr.Output))
			judged := 0
			for _, ref := range rl.refs {
				if ref.Calls > 1 || ref.LeavesRead > 1+lay.KVHeads*lay.Positions() {
					t.Fatalf("a referee recomputed %d leaves reading %d", ref.Calls, ref.LeavesRead)
				}
				judged += ref.Calls
			}
			if (judged > 0) == c.silent {
				t.Fatalf("silent=%v but %d recomputations", c.silent, judged)
			}
			t.Logf("%d leaves: %s lost in %d rounds (limit %d), %d moves; faults %q %q", N, c.loser, rounds, maxRounds, d.Moves, d.WorkerFault, d.ChallengerFault)
		})
	}
}

// TestDisputeWithoutModel: a node that does not hold the receipt's model
// cannot referee a dispute; FinalizeBlock fails (the node stops) and the
// state is unchanged instead of deciding differently from the nodes that
// hold it.
func TestDisputeWithoutModel(t *testing.T) {
	_, id, m, e := stories(t)
	wk, err := keys.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	r := honestReceipt(t, e, m, id, wk, 5)
	rb, _ := r.Marshal()
	worker, chall := ed25519.PrivateKey(wk.Private), ed25519.NewKeyFromSeed([]byte("challenger seed challenger seed!"))
	p := ledger.DefaultParams()
	p.AuditRateBps = 0
	l := ledger.New(ledger.NewMemStore(), Hooks(&Models{}))
	if err := l.InitGenesis(ledger.Genesis{ChainID: "pd", Params: p, Accounts: []ledger.GenesisAccount{
		{Address: addrOf(worker), Balance: 10_000, Bonded: 10_000}, {Address: addrOf(chall), Balance: 10_000, Bonded: 10_000}}}); err != nil {
		t.Fatal(err)
	}
	ch := &dchain{t: t, l: l, nonces: map[ledger.Address]uint64{}}
	ch.ok(ch.tx(chall, &ledger.MsgRegisterModel{ModelID: id, Name: "s", SpecVersion: 1}),
		ch.tx(chall, &ledger.MsgOpenEscrow{Worker: addrOf(worker), ModelID: id, Fee: 5, Request: reqOf(t, rb)}))
	ch.ok(ch.tx(worker, &ledger.MsgPublishReceipt{EscrowID: ledger.EscrowID(addrOf(chall), 1), Receipt: rb}))
	hash := l.AppHash()
	other := ledger.Hash{9}
	_, err = ch.block(ch.tx(chall, &ledger.MsgOpenDispute{ReceiptID: ledger.Hash(r.ID()), Commitment: other[:]}))
	if !errors.Is(err, ledger.ErrModelUnavailable) {
		t.Fatalf("FinalizeBlock error %v, want ErrModelUnavailable", err)
	}
	if l.AppHash() != hash || l.Info().Height != ch.h {
		t.Fatal("a failed block changed the state")
	}
}

// TestDisputeTooLongForATransaction: a dispute whose largest answer could
// not fit in a transaction is refused at setup (here with a smaller
// transaction limit than the chain's).
func TestDisputeTooLongForATransaction(t *testing.T) {
	models, id, m, e := stories(t)
	wk, err := keys.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	r := honestReceipt(t, e, m, id, wk, 3)
	rb, _ := r.Marshal()
	other := ledger.Hash{9}
	if _, _, err := models.disputeSetup(rb, other[:], ledger.MaxTxBytes); err != nil {
		t.Fatal(err)
	}
	ref, err := audit.NewReferee(m, r)
	if err != nil {
		t.Fatal(err)
	}
	need := 4*((ref.MaxAnswerBytes()+2)/3) + txOverhead
	if _, _, err := models.disputeSetup(rb, other[:], need); err != nil {
		t.Fatalf("limit %d = the bound: %v", need, err)
	}
	if _, _, err := models.disputeSetup(rb, other[:], need-1); err == nil || !strings.Contains(err.Error(), "too long to dispute") {
		t.Fatalf("limit %d: error %v", need-1, err)
	}
}

// TestOpeningsWithoutModel: a node that does not hold the receipt's model
// cannot check audit openings; the block fails and the state is unchanged
// (no slash), while CheckTx refuses the transaction with code 14.
func TestOpeningsWithoutModel(t *testing.T) {
	_, id, m, e := stories(t)
	wk, err := keys.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	r := honestReceipt(t, e, m, id, wk, 5)
	rb, _ := r.Marshal()
	worker, req := ed25519.PrivateKey(wk.Private), ed25519.NewKeyFromSeed([]byte("requester seed requester seed!!!"))
	p := ledger.DefaultParams()
	p.AuditRateBps = 10000
	l := ledger.New(ledger.NewMemStore(), Hooks(&Models{}))
	if err := l.InitGenesis(ledger.Genesis{ChainID: "pd", Params: p, Accounts: []ledger.GenesisAccount{
		{Address: addrOf(worker), Balance: 10_000, Bonded: 10_000}, {Address: addrOf(req), Balance: 10_000}}}); err != nil {
		t.Fatal(err)
	}
	ch := &dchain{t: t, l: l, nonces: map[ledger.Address]uint64{}}
	ch.ok(ch.tx(req, &ledger.MsgRegisterModel{ModelID: id, Name: "s", SpecVersion: 1}),
		ch.tx(req, &ledger.MsgOpenEscrow{Worker: addrOf(worker), ModelID: id, Fee: 5, Request: reqOf(t, rb)}))
	ch.ok(ch.tx(worker, &ledger.MsgPublishReceipt{EscrowID: ledger.EscrowID(addrOf(req), 1), Receipt: rb}))
	ch.ok() // the audit is selected
	hash := l.AppHash()
	post := ch.tx(worker, &ledger.MsgPostOpenings{ReceiptID: ledger.Hash(r.ID()), Openings: []byte("{}")})
	if res := ledger.NewChecker(l).Check(post); res.Code != ledger.Code(ledger.ErrCheck) {
		t.Fatalf("CheckTx: code %d %s", res.Code, res.Log)
	}
	if _, err := ch.block(post); !errors.Is(err, ledger.ErrModelUnavailable) {
		t.Fatalf("FinalizeBlock error %v, want ErrModelUnavailable", err)
	}
	var a ledger.Audit
	ch.query("audit/"+ledger.Hash(r.ID()).String(), &a)
	if l.AppHash() != hash || a.Status != ledger.AuditPending {
		t.Fatalf("a failed block changed the state (audit %s)", a.Status)
	}
}

// TestDisputeWholeContextThroughLedger: a stories260K receipt that fills
// the model's whole context (512 positions), whose worker committed to a
// trace forged at an attention leaf of the last position (the leaf whose
// inputs are the keys and values of every position), disputed through
// ledger transactions with the engine referee inside FinalizeBlock, the
// answers limited (here, so that a short model needs them) to a few
// key/value leaves: the inputs are opened part by part, one transaction
// each, by the challenger alone; the worker loses and is slashed, and the
// referee finishes the one leaf.
func TestDisputeWholeContextThroughLedger(t *testing.T) {
	models, id, m, e := stories(t)
	wk, err := keys.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	prompt := make([]int, m.Config.ContextLen-1)
	prompt[0] = 1
	for i := 1; i < len(prompt); i++ {
		prompt[i] = 3 + rng.IntN(m.Config.Vocab-3)
	}
	rec := audit.NewRecorder(m.Config, prompt)
	sp := sampler.Params{Temperature: 0}
	steps := len(prompt) + 2
	res, err := generate.Run(context.Background(), e, generate.Request{Prompt: prompt, Steps: steps, Sampler: sp,
		OnLogits: func(pos int, l []float32) error { rec.Logits(pos, l); return nil }, Trace: rec})
	if err != nil {
		t.Fatal(err)
	}
	r, err := rec.Receipt(merkle.Hash(id), engine.SpecVersion, sp, audit.EffectiveSteps(steps, m.Config.ContextLen), nil, res.Output, nil, wk)
	if err != nil {
		t.Fatal(err)
	}
	honest, err := audit.Regenerate(context.Background(), e, r)
	if err != nil {
		t.Fatal(err)
	}
	lay := audit.NewLayout(m.Config, len(r.Prompt), len(r.Output))
	if lay.Positions() != m.Config.ContextLen {
		t.Fatalf("%d positions, want the context of %d", lay.Positions(), m.Config.ContextLen)
	}
	T := lay.Positions()
	leaf := lay.ALeaf(lay.Layers-1, 1, T-1)
	lie := forged(t, honest, leaf, rng)
	cp := *r
	cp.TraceRoot = lie.Tree().Root()
	if err := cp.Sign(wk.Private); err != nil {
		t.Fatal(err)
	}
	rb, err := cp.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	const size = 48 // inputs per part
	partBytes := 4*lay.Dim + (size-1)*8*lay.HeadDim
	rl := &refereeLog{}
	setup := func(rb, c []byte) (dispute.Config, dispute.Referee, error) {
		cfg, ref, err := rl.setup(models)(rb, c)
		if err != nil {
			return cfg, nil, err
		}
		return cfg, ref.(*audit.Referee).WithPartBytes(partBytes), nil
	}
	hooks := Hooks(models)
	game := disputegame.Game{Setup: setup}
	hooks.Disputes = game
	p := ledger.DefaultParams()
	p.AuditRateBps, p.ChallengeWindow = 0, 100
	worker := ed25519.PrivateKey(wk.Private)
	chall := ed25519.NewKeyFromSeed([]byte("challenger seed challenger seed!"))
	req := ed25519.NewKeyFromSeed([]byte("requester seed requester seed!!!"))
	l := ledger.New(ledger.NewMemStore(), hooks)
	if err := l.InitGenesis(ledger.Genesis{ChainID: "pd", Params: p, Accounts: []ledger.GenesisAccount{
		{Address: addrOf(worker), Balance: 10_000, Bonded: 10_000},
		{Address: addrOf(chall), Balance: 10_000, Bonded: 20_000},
		{Address: addrOf(req), Balance: 10_000}}}); err != nil {
		t.Fatal(err)
	}
	ch := &dchain{t: t, l: l, nonces: map[ledger.Address]uint64{}}
	ch.ok(ch.tx(req, &ledger.MsgRegisterModel{ModelID: id, Name: "stories260K", SpecVersion: 1}),
		ch.tx(req, &ledger.MsgOpenEscrow{Worker: addrOf(worker), ModelID: id, Fee: 50, Request: reqOf(t, rb)}))
	ch.ok(ch.tx(worker, &ledger.MsgPublishReceipt{EscrowID: ledger.EscrowID(addrOf(req), 1), Receipt: rb}))
	root := honest.Tree().Root()
	opened := ch.ok(ch.tx(chall, &ledger.MsgOpenDispute{ReceiptID: ledger.Hash(cp.ID()), Commitment: root[:]}))
	var did ledger.Hash
	for _, ev := range opened.TxResults[0].Events {
		if d, err := ledger.DecodeDisputeOpened(ev); err == nil {
			did = d.DisputeID
		}
	}
	players := map[ledger.Side]struct {
		key  ed25519.PrivateKey
		resp *dispute.Responder
	}{
		ledger.SideWorker:     {worker, &dispute.Responder{Party: dispute.A, Tree: lie.Tree(), Value: lie.LeafValue}},
		ledger.SideChallenger: {chall, &dispute.Responder{Party: dispute.B, Tree: honest.Tree(), Value: honest.LeafValue}},
	}
	N := lay.Leaves()
	wantParts := audit.AttentionPasses * ((T + 1 + size - 1) / size)
	maxRounds := bits.Len(uint(N-1)) + 1 + wantParts
	var d ledger.Dispute
	parts, rounds := 0, 0
	for step := 0; ; step++ {
		if step > 2*maxRounds {
			t.Fatal("dispute does not end")
		}
		ch.query("dispute/"+did.String(), &d)
		if d.Status != ledger.DisputeOpen {
			break
		}
		if rounds, err = game.Rounds(d.Game); err != nil {
			t.Fatal(err)
		}
		q, ok, err := game.Outstanding(d.Game)
		if err != nil || !ok {
			t.Fatalf("open dispute without a query: %v", err)
		}
		var txs [][]byte
		for _, side := range []ledger.Side{ledger.SideChallenger, ledger.SideWorker} {
			if q.Kind == dispute.OpenLeaves && side == ledger.SideWorker {
				continue // the challenger opens the inputs alone
			}
			a, err := players[side].resp.Answer(q)
			if err != nil {
				t.Fatal(err)
			}
			b, err := a.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			txs = append(txs, ch.tx(players[side].key, &ledger.MsgDisputeMove{DisputeID: did, Message: b}))
		}
		if q.Kind == dispute.OpenLeaves {
			parts++
		}
		ch.ok(txs...)
	}
	var rcp ledger.ReceiptRecord
	ch.query("receipt/"+ledger.Hash(cp.ID()).String(), &rcp)
	if d.Status != ledger.DisputeWorkerLost || d.WorkerFault != dispute.FaultStateMismatch || rcp.Status != ledger.StatusSlashed {
		t.Fatalf("dispute %s (worker fault %q), receipt %s", d.Status, d.WorkerFault, rcp.Status)
	}
	if parts != wantParts || rounds > maxRounds {
		t.Fatalf("%d parts (want %d), %d rounds (limit %d)", parts, wantParts, rounds, maxRounds)
	}
	// Each replay of the transcript builds a referee: none recomputes
	// more than one leaf, and the game was decided by one.
	finished := 0
	for _, ref := range rl.refs {
		if ref.Calls > 1 {
			t.Fatalf("a referee recomputed %d leaves", ref.Calls)
		}
		finished += ref.Calls
	}
	if finished == 0 {
		t.Fatal("no referee finished the leaf")
	}
	t.Logf("%d positions, %d leaves: worker lost at A(%d, 1, %d) in %d rounds, %d of them parts of %d inputs; transcript %d bytes; %s",
		T, N, lay.Layers-1, T-1, rounds, parts, size, len(d.Game), d.WorkerFault)
}
