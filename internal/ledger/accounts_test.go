package ledger

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestEnvelopeFailures(t *testing.T) {
	send := &MsgSend{To: testAddr("bob"), Amount: 10}
	signed := func(mut func(*Tx)) []byte {
		tx := &Tx{ChainID: testChain, Nonce: 0, Fee: 1, Msg: send}
		mut(tx)
		tx.Sign(testKey("alice"))
		return tx.Encode()
	}
	badSig := func() []byte {
		tx := &Tx{ChainID: testChain, Fee: 1, Msg: send}
		tx.Sign(testKey("alice"))
		tx.Msg.(*MsgSend).Amount = 11 // after signing
		defer func() { tx.Msg.(*MsgSend).Amount = 10 }()
		return tx.Encode()
	}()
	wrongSigner := func() []byte {
		tx := &Tx{ChainID: testChain, Fee: 1, Msg: &MsgSend{To: testAddr("bob"), Amount: 10}}
		tx.Sign(testKey("alice"))
		tx.Signer = testAddr("carol")
		return tx.Encode()
	}()
	cases := []struct {
		name string
		raw  []byte
		want error
	}{
		{"bad signature", badSig, ErrSignature},
		{"signer swapped", wrongSigner, ErrSignature},
		{"wrong chain id", signed(func(tx *Tx) { tx.ChainID = "other-chain" }), ErrChainID},
		{"future nonce", signed(func(tx *Tx) { tx.Nonce = 1 }), ErrNonce},
		{"fee below minimum", signed(func(tx *Tx) { tx.Fee = 0 }), ErrFee},
		{"fee above balance", signed(func(tx *Tx) { tx.Fee = testBalance + 1 }), ErrFunds},
		{"not json", []byte("send 10 to bob"), ErrDecode},
		{"no message", signed(func(tx *Tx) { tx.Msg = nil }), ErrDecode},
		// A Tx cannot hold two messages; its wire form can.
		{"two messages", bytes.Replace(signed(func(*Tx) {}), []byte(`}},"sig":`), []byte(`},"bond":{"amount":1}},"sig":`), 1), ErrDecode},
		{"zero amount", signed(func(tx *Tx) { tx.Msg = &MsgSend{To: testAddr("bob")} }), ErrDecode},
		{"non-canonical spacing", append([]byte(" "), signed(func(*Tx) {})...), ErrDecode},
		{"unknown field", bytes.Replace(signed(func(*Tx) {}), []byte(`{"chainId"`), []byte(`{"extra":1,"chainId"`), 1), ErrDecode},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, testParams())
			before := h.l.Store().Root()
			r := h.l.DeliverTx(BlockContext{Height: 1}, c.raw)
			if r.Code != Code(c.want) {
				t.Fatalf("code %d (%s), want %d (%v)", r.Code, r.Log, Code(c.want), c.want)
			}
			if h.l.Store().Root() != before {
				t.Fatal("a transaction rejected at the envelope changed the state")
			}
		})
	}
}

func TestSendReplayAndFunds(t *testing.T) {
	h := newHarness(t, testParams())
	raw := h.tx("alice", &MsgSend{To: testAddr("bob"), Amount: 1000})
	h.ok(raw)
	if got := h.balance("alice"); got != testBalance-1000-1 {
		t.Fatalf("alice has %d", got)
	}
	if got := h.balance("bob"); got != testBalance+1000 {
		t.Fatalf("bob has %d", got)
	}
	h.fails(raw, ErrNonce) // replay of the same bytes
	// Insufficient balance: the message fails but the fee and nonce are taken.
	r := h.fails(h.tx("alice", &MsgSend{To: testAddr("bob"), Amount: testBalance}), ErrFunds)
	if len(r.Events) != 1 || r.Events[0].Type != "tx" {
		t.Fatalf("failed tx: want only the tx event, got %v", r.Events)
	}
	if got := h.balance("alice"); got != testBalance-1000-2 {
		t.Fatalf("alice has %d after a failed send", got)
	}
	h.ok(h.tx("alice", &MsgSend{To: testAddr("bob"), Amount: 1})) // nonce 2 is next
	// Fees went to the proposer (erin), who also sees no other change.
	if got := h.balance("erin"); got != testBalance+3 {
		t.Fatalf("proposer has %d, want %d", got, testBalance+3)
	}
}

func TestSeveralTxsFromOneSignerInABlock(t *testing.T) {
	h := newHarness(t, testParams())
	var txs [][]byte
	for i := 0; i < 5; i++ {
		txs = append(txs, h.tx("alice", &MsgSend{To: testAddr("bob"), Amount: 1}))
	}
	res := h.block(txs...)
	for i, r := range res.TxResults {
		if r.Code != 0 {
			t.Fatalf("tx %d: %s", i, r.Log)
		}
	}
	if got := h.balance("bob"); got != testBalance+5 {
		t.Fatalf("bob has %d", got)
	}
}

func TestCheckerPendingNonces(t *testing.T) {
	h := newHarness(t, testParams())
	c := NewChecker(h.l)
	before := h.l.Store().Root()
	a := h.tx("alice", &MsgSend{To: testAddr("bob"), Amount: 1})
	b := h.tx("alice", &MsgSend{To: testAddr("bob"), Amount: 1})
	if r := c.Check(b); r.Code != Code(ErrNonce) {
		t.Fatalf("nonce 1 before nonce 0: code %d %s", r.Code, r.Log)
	}
	if r := c.Check(a); r.Code != 0 {
		t.Fatal(r.Log)
	}
	if r := c.Check(a); r.Code != Code(ErrNonce) {
		t.Fatalf("duplicate in mempool accepted: %d", r.Code)
	}
	if r := c.Check(b); r.Code != 0 {
		t.Fatal(r.Log)
	}
	if h.l.Store().Root() != before {
		t.Fatal("CheckTx changed the state")
	}
	if r := c.Check(h.tx("carol", &MsgSend{To: testAddr("bob"), Amount: testBalance})); r.Code != Code(ErrFunds) {
		t.Fatalf("overspend passed CheckTx: %d %s", r.Code, r.Log)
	}
}

func TestModelRegistry(t *testing.T) {
	h := newHarness(t, testParams())
	reg := &MsgRegisterModel{ModelID: testModel, Name: "stories260K", SpecVersion: 1}
	h.ok(h.tx("alice", reg))
	var m Model
	h.query("model/"+testModel.String(), &m)
	if m.Name != "stories260K" || m.Registrant != testAddr("alice") || m.Height != 1 {
		t.Fatalf("model record %+v", m)
	}
	h.fails(h.tx("bob", reg), ErrExists)
	other := testModel
	other[0] ^= 1
	h.fails(h.tx("alice", &MsgOpenEscrow{Worker: testAddr("carol"), ModelID: other, Fee: 10, Request: testRequest(1)}), ErrNotFound)
}

func TestStaking(t *testing.T) {
	p := testParams()
	h := newHarness(t, p)
	h.ok(h.tx("carol", &MsgBond{Amount: 5000}))
	if s := h.stakeOf("carol"); s.Bonded != 5000 {
		t.Fatalf("bonded %d", s.Bonded)
	}
	h.fails(h.tx("carol", &MsgBond{Amount: testBalance}), ErrFunds)
	h.ok(h.tx("carol", &MsgUnbond{Amount: 3000}))
	unbondAt := h.height
	h.fails(h.tx("carol", &MsgUnbond{Amount: 3000}), ErrStake) // double unbond
	s := h.stakeOf("carol")
	if s.Bonded != 2000 || len(s.Unbonding) != 1 || s.Unbonding[0].Height != unbondAt+p.UnbondingBlocks {
		t.Fatalf("stake %+v", s)
	}
	bal := h.balance("carol")
	h.blocksUntil(unbondAt + p.UnbondingBlocks - 1)
	if h.balance("carol") != bal {
		t.Fatal("unbonding returned early")
	}
	h.block()
	if got := h.balance("carol"); got != bal+3000 {
		t.Fatalf("after unbonding: %d, want %d", got, bal+3000)
	}
	if s := h.stakeOf("carol"); len(s.Unbonding) != 0 || s.Bonded != 2000 {
		t.Fatalf("stake after unbonding %+v", s)
	}
	h.fails(h.tx("carol", &MsgUnjail{}), ErrWrongState)
}

func TestSubsidyHalving(t *testing.T) {
	p := Params{InitialSubsidy: 1000, HalvingInterval: 10}
	for _, c := range []struct{ h, want uint64 }{{0, 0}, {1, 1000}, {10, 1000}, {11, 500}, {20, 500}, {21, 250}, {640, 1000 >> 63}, {641, 0}, {1 << 62, 0}} {
		if got := p.Subsidy(c.h); got != c.want {
			t.Errorf("Subsidy(%d) = %d, want %d", c.h, got, c.want)
		}
	}
	// The pool fills with the subsidy when nothing is finalized.
	h := newHarness(t, testParams())
	h.blocksUntil(6) // heights 1-5: 1000 each; 6: 500
	var tot Totals
	h.query("totals", &tot)
	if tot.Pool != 5500 {
		t.Fatalf("pool %d, want 5500", tot.Pool)
	}
}

func TestGenesisRejects(t *testing.T) {
	bad := testParams()
	bad.ChallengeWindow = bad.OpeningWindow
	cases := map[string]Genesis{
		"no chain id":     {Params: testParams()},
		"bad params":      {ChainID: "x", Params: bad},
		"duplicate":       {ChainID: "x", Params: testParams(), Accounts: []GenesisAccount{{Address: testAddr("a"), Balance: 1}, {Address: testAddr("a"), Balance: 1}}},
		"supply overflow": {ChainID: "x", Params: testParams(), Accounts: []GenesisAccount{{Address: testAddr("a"), Balance: 1 << 63}, {Address: testAddr("b"), Balance: 1 << 63}}},
	}
	for name, g := range cases {
		if err := New(NewMemStore(), Hooks{}).InitGenesis(g); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestCheckerDependentTxs(t *testing.T) {
	h := newHarness(t, testParams())
	c := NewChecker(h.l)
	before := h.l.AppHash()
	reg := h.tx("bob", &MsgRegisterModel{ModelID: testModel, Name: "m", SpecVersion: 1})
	esc := h.tx("alice", &MsgOpenEscrow{Worker: testAddr("carol"), ModelID: testModel, Fee: 5, Request: testRequest(1)})
	if r := c.Check(esc); r.Code != Code(ErrNotFound) {
		t.Fatalf("escrow before its model: %d %s", r.Code, r.Log)
	}
	if r := c.Check(reg); r.Code != 0 {
		t.Fatal(r.Log)
	}
	if r := c.Check(esc); r.Code != Code(ErrModelInactive) {
		t.Fatalf("escrow for a model no validator attested: %d %s", r.Code, r.Log)
	}
	if r := c.Check(h.tx(testValidator, &MsgAttestModel{ModelID: testModel})); r.Code != 0 {
		t.Fatal(r.Log)
	}
	if r := c.Check(esc); r.Code != 0 {
		t.Fatalf("escrow after its model and its attestation in the mempool: %s", r.Log)
	}
	if h.l.AppHash() != before {
		t.Fatal("CheckTx changed the committed state")
	}
	c.Reset()
	if r := c.Check(esc); r.Code != Code(ErrNotFound) {
		t.Fatalf("check state survived Reset: %d", r.Code)
	}
}

func TestValidatorUpdates(t *testing.T) {
	p := testParams()
	p.PowerUnit = 1000
	h := newHarness(t, p)
	if err := h.l.SetValidators([]GenesisValidator{{PubKey: testAddr("erin"), Power: 1}}); err != nil {
		t.Fatal(err)
	}
	ups := func(res BlockResult) map[string]int64 {
		m := map[string]int64{}
		for _, u := range res.ValidatorUpdates {
			m[u.PubKey.String()] = u.Power
		}
		return m
	}
	erin, carol := testAddr("erin").String(), testAddr("carol").String()
	// erin has no stake: setting the only validator to 0 is refused.
	if u := ups(h.block()); len(u) != 0 {
		t.Fatalf("updates %v", u)
	}
	if u := ups(h.block(h.tx("erin", &MsgBond{Amount: 5500}))); len(u) != 1 || u[erin] != 5 {
		t.Fatalf("after bond: %v", u)
	}
	h.fails(h.tx("carol", &MsgSetValidator{Active: false}), ErrWrongState)
	u := ups(h.block(h.tx("carol", &MsgBond{Amount: 3000}), h.tx("carol", &MsgSetValidator{Active: true})))
	if len(u) != 1 || u[carol] != 3 {
		t.Fatalf("after carol joins: %v", u)
	}
	if u := ups(h.block(h.tx("carol", &MsgUnbond{Amount: 2000}))); len(u) != 1 || u[carol] != 1 {
		t.Fatalf("after unbond: %v", u)
	}
	if u := ups(h.block(h.tx("carol", &MsgSetValidator{Active: false}))); len(u) != 1 || u[carol] != 0 {
		t.Fatalf("after carol leaves: %v", u)
	}
	if u := ups(h.block(h.tx("erin", &MsgSetValidator{Active: false}))); len(u) != 0 {
		t.Fatalf("the last validator left: %v", u)
	}
	if got := h.l.ProposerAccount(func() []byte { s := sha256.Sum256(testAddr("erin").PublicKey()); return s[:20] }()); got != testAddr("erin") {
		t.Fatal("proposer address not mapped to its account")
	}
}

func TestMisbehaviourSlashes(t *testing.T) {
	p := testParams()
	h := newHarness(t, p)
	h.ok(h.tx("erin", &MsgBond{Amount: 10_000}))
	h.height++
	ctx := BlockContext{Height: h.height, Time: 1_700_000_000, Misbehaving: []Misbehaviour{{Validator: testAddr("erin"), Height: h.height - 1}}}
	res, err := h.l.FinalizeBlock(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.checkSupply()
	s := h.stakeOf("erin")
	if s.Bonded != 10_000-mulBps(10_000, p.SlashEvidenceBps) || s.JailedUntil == 0 {
		t.Fatalf("stake after evidence %+v (events %v)", s, res.Events)
	}
}

// TestSlashedUnbondingReleased: an unbonding a slash took whole (amount 0)
// is dropped from the stake when it matures. A release that returned
// nothing used to leave it there for good.
func TestSlashedUnbondingReleased(t *testing.T) {
	p := testParams()
	p.SlashEvidenceBps = 10000
	h := newHarness(t, p)
	h.ok(h.tx("erin", &MsgBond{Amount: 10_000}))
	h.ok(h.tx("erin", &MsgUnbond{Amount: 10_000}))
	at := h.stakeOf("erin").Unbonding[0].Height
	h.height++
	ctx := BlockContext{Height: h.height, Time: 1_700_000_000, Misbehaving: []Misbehaviour{{Validator: testAddr("erin"), Height: h.height - 1}}}
	if _, err := h.l.FinalizeBlock(ctx, nil); err != nil {
		t.Fatal(err)
	}
	h.checkSupply()
	if s := h.stakeOf("erin"); len(s.Unbonding) != 1 || s.Unbonding[0].Amount != 0 {
		t.Fatalf("stake after the slash: %+v", s)
	}
	before := h.balance("erin")
	h.blocksUntil(at)
	if s := h.stakeOf("erin"); len(s.Unbonding) != 0 {
		t.Fatalf("an emptied unbonding stayed after it matured: %+v", s)
	}
	if h.balance("erin") != before {
		t.Fatal("balance changed")
	}
}

// TestCommittedView: after random writes and deletes on top of a
// "committed" store (TakeDirty), Committed reads and ProveCommitted
// proofs give the committed values against the root computed at commit.
func TestCommittedView(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 20; trial++ {
		s := NewMemStore()
		key := func() string { return fmt.Sprintf("k%03d", rng.IntN(60)) }
		for i := 0; i < 40; i++ {
			s.Set(key(), fmt.Append(nil, "v", i))
		}
		s.TakeDirty()
		root := s.Root()
		want := map[string][]byte{}
		for _, k := range s.Keys() {
			want[k], _ = s.Get(k)
		}
		for i := 0; i < rng.IntN(30); i++ {
			if rng.IntN(3) == 0 {
				s.Delete(key())
			} else {
				s.Set(key(), fmt.Append(nil, "w", i))
			}
		}
		if trial%2 == 0 {
			s.Root() // the current root cache is refreshed, or not
		}
		for i := 0; i < 60; i++ {
			k := fmt.Sprintf("k%03d", i)
			v, ok := s.Committed().Get(k)
			w, wok := want[k]
			if ok != wok || string(v) != string(w) {
				t.Fatalf("trial %d: committed %s = %q %v, want %q %v", trial, k, v, ok, w, wok)
			}
			p, err := s.ProveCommitted(k)
			if !wok {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("proof of absent %s: %v", k, err)
				}
				continue
			}
			if err != nil || string(p.Value) != string(w) {
				t.Fatalf("proof of %s: %v", k, err)
			}
			if err := p.Verify(root); err != nil {
				t.Fatalf("trial %d: proof of %s against the committed root: %v", trial, k, err)
			}
		}
	}
}
