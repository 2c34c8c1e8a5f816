package ledger

import (
	"crypto/sha256"
	"math"
	"math/big"
	"strings"
	"testing"
)

func (h *harness) model(id Hash) Model {
	h.t.Helper()
	var m Model
	h.query("model/"+id.String(), &m)
	return m
}

func countEvents(evs []Event, typ EventType) int {
	n := 0
	for _, e := range evs {
		if e.Type == typ {
			n++
		}
	}
	return n
}

func attest(h *harness, name string, id Hash) []byte {
	return h.tx(name, &MsgAttestModel{ModelID: id})
}

// TestAttestModelRefusals: only a validator with voting power attests, only
// a registered model, only once.
func TestAttestModelRefusals(t *testing.T) {
	unknown := Hash{0xee}
	cases := []struct {
		name string
		run  func(h *harness) []byte
		want error
	}{
		{"non-validator", func(h *harness) []byte { return attest(h, "alice", testModel) }, ErrUnauthorized},
		{"unknown model", func(h *harness) []byte { return attest(h, testValidator, unknown) }, ErrNotFound},
		{"twice", func(h *harness) []byte {
			h.ok(attest(h, testValidator, testModel))
			return attest(h, testValidator, testModel)
		}, ErrExists},
		{"validator without power", func(h *harness) []byte {
			// "low" leaves the set: its power is 0 from the end of that block.
			h.ok(h.tx("low", &MsgSetValidator{Active: false}))
			return attest(h, "low", testModel)
		}, ErrUnauthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarnessValidators(t, testParams(), testHooks, []testVal{{testValidator, 10}, {"low", 1}})
			h.ok(h.tx("bob", &MsgRegisterModel{ModelID: testModel, Name: "m", SpecVersion: 1}))
			raw := c.run(h)
			before := h.model(testModel)
			h.fails(raw, c.want)
			if got := h.model(testModel); len(got.Attesters) != len(before.Attesters) || got.Active != before.Active {
				t.Fatalf("a refused attestation changed the model: %+v -> %+v", before, got)
			}
		})
	}
	// A zero model id is malformed.
	h := newHarness(t, testParams())
	if _, err := DecodeTx(attest(h, testValidator, Hash{})); Code(err) != Code(ErrDecode) {
		t.Fatalf("zero model id: %v", err)
	}
}

// TestModelQuorum: with voting powers 5, 3 and 2 (total 10) and the
// default quorum of 6667 bps, a model is active once its attesters hold at
// least 6667/10000 of the power: 5+3 = 8000 bps is enough, 5 alone or 3+2
// (5000) is not. The expected outcomes are worked out by hand.
func TestModelQuorum(t *testing.T) {
	vals := []testVal{{"v5", 5}, {"v3", 3}, {"v2", 2}}
	cases := []struct {
		name      string
		bps       uint32
		attesters []string
		active    []bool // after each attestation
	}{
		{"5 alone", 6667, []string{"v5"}, []bool{false}},
		{"5+3", 6667, []string{"v5", "v3"}, []bool{false, true}},
		{"3+5", 6667, []string{"v3", "v5"}, []bool{false, true}},
		{"3+2", 6667, []string{"v3", "v2"}, []bool{false, false}},
		{"5+2", 6667, []string{"v2", "v5"}, []bool{false, true}},
		{"all three", 6667, []string{"v2", "v3", "v5"}, []bool{false, false, true}},
		{"attested while active", 6667, []string{"v5", "v3", "v2"}, []bool{false, true, true}},
		{"exactly half at 5000", 5000, []string{"v5"}, []bool{true}},
		{"just under at 5001", 5001, []string{"v5", "v2"}, []bool{false, true}},
		{"everyone at 10000", 10000, []string{"v5", "v3", "v2"}, []bool{false, false, true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := testParams()
			p.ModelQuorumBps = c.bps
			h := newHarnessValidators(t, p, testHooks, vals)
			res := h.block(h.tx("bob", &MsgRegisterModel{ModelID: testModel, Name: "m", SpecVersion: 1}))
			if m := h.model(testModel); m.Active || countEvents(res.TxResults[0].Events, "model_active") != 0 {
				t.Fatalf("active at registration: %+v", m)
			}
			activations := 0
			for i, a := range c.attesters {
				r := h.ok(attest(h, a, testModel))
				activations += countEvents(r.Events, "model_active")
				m := h.model(testModel)
				if m.Active != c.active[i] {
					t.Fatalf("after %v: active %v, want %v", c.attesters[:i+1], m.Active, c.active[i])
				}
				if len(m.Attesters) != i+1 {
					t.Fatalf("attesters %v", m.Attesters)
				}
				for j := 1; j < len(m.Attesters); j++ {
					if string(m.Attesters[j-1][:]) >= string(m.Attesters[j][:]) {
						t.Fatalf("attesters not sorted: %v", m.Attesters)
					}
				}
			}
			if want := 0; c.active[len(c.active)-1] {
				want = 1
				if activations != want {
					t.Fatalf("%d model_active events, want 1", activations)
				}
			} else if activations != want {
				t.Fatalf("%d model_active events, want 0", activations)
			}
			_, pending := h.l.Store().Get(keyPendingModels)
			if pending == c.active[len(c.active)-1] {
				t.Fatalf("pending list present %v with the model active %v", pending, c.active[len(c.active)-1])
			}
		})
	}
}

// TestEscrowAndReceiptNeedActiveModel: before its activation a model gets
// no escrow (code 15); after, escrows and receipts go through.
func TestEscrowAndReceiptNeedActiveModel(t *testing.T) {
	h := newHarness(t, testParams())
	h.ok(h.tx("bob", &MsgRegisterModel{ModelID: testModel, Name: "m", SpecVersion: 1}))
	h.ok(h.tx("carol", &MsgBond{Amount: 10_000}))
	esc := h.tx("alice", &MsgOpenEscrow{Worker: testAddr("carol"), ModelID: testModel, Fee: 5, Request: testRequest(1)})
	if r := NewChecker(h.l).Check(esc); r.Code != Code(ErrModelInactive) || Code(ErrModelInactive) != 15 {
		t.Fatalf("CheckTx of an escrow for an inactive model: code %d %s", r.Code, r.Log)
	}
	bal := h.balance("alice")
	h.fails(esc, ErrModelInactive)
	if got := h.balance("alice"); got != bal-1 {
		t.Fatalf("balance %d, want %d (only the fee)", got, bal-1)
	}
	r := h.ok(attest(h, testValidator, testModel))
	if countEvents(r.Events, "model_active") != 1 {
		t.Fatalf("events %+v", r.Events)
	}
	var a Account
	h.query("account/"+testAddr("alice").String(), &a)
	h.ok(h.tx("alice", &MsgOpenEscrow{Worker: testAddr("carol"), ModelID: testModel, Fee: 5, Request: testRequest(1)}))
	escID := EscrowID(testAddr("alice"), a.Nonce)

	// publishReceipt checks the model too (an escrow can only exist for an
	// active model, since activation is permanent; the check is a second
	// line): with the record forced back to inactive it is refused.
	m := h.model(testModel)
	m.Active = false
	put(h.l.Store(), keyModel(testModel), m)
	rcpt, id := signedReceipt(t, "carol", testModel, 1)
	pub := func() []byte {
		return h.tx("carol", &MsgPublishReceipt{EscrowID: escID, Receipt: rcpt})
	}
	h.fails(pub(), ErrModelInactive)
	m.Active = true
	put(h.l.Store(), keyModel(testModel), m)
	h.ok(pub())
	if got := h.receiptRecord(id); got.Status != StatusPublished {
		t.Fatalf("receipt %+v", got)
	}
}

// TestModelQuorumOff: with modelQuorumBps 0 a model is active at
// registration and usable in the same block (the rule is off).
func TestModelQuorumOff(t *testing.T) {
	p := testParams()
	p.ModelQuorumBps = 0
	h := newHarness(t, p)
	res := h.block(h.tx("bob", &MsgRegisterModel{ModelID: testModel, Name: "m", SpecVersion: 1}),
		h.tx("alice", &MsgOpenEscrow{Worker: testAddr("carol"), ModelID: testModel, Fee: 5, Request: testRequest(1)}))
	for i, r := range res.TxResults {
		if r.Code != 0 {
			t.Fatalf("tx %d: %s", i, r.Log)
		}
	}
	if m := h.model(testModel); !m.Active || len(m.Attesters) != 0 {
		t.Fatalf("model %+v", m)
	}
	// A model registered on a chain whose state predates the rule (no
	// active flag) is usable when the rule is off.
	old := Hash{5}
	put(h.l.Store(), keyModel(old), Model{ModelID: old, Name: "old"})
	h.ok(h.tx("alice", &MsgOpenEscrow{Worker: testAddr("carol"), ModelID: old, Fee: 5, Request: testRequest(1)}))
}

// TestModelActivatedByPowerChange: a pending model whose attesters reach
// the quorum because the voting powers changed becomes active at the end
// of that block.
func TestModelActivatedByPowerChange(t *testing.T) {
	h := newHarnessValidators(t, testParams(), testHooks, []testVal{{"v5", 5}, {"v3", 3}, {"v2", 2}})
	h.ok(h.tx("bob", &MsgRegisterModel{ModelID: testModel, Name: "m", SpecVersion: 1}))
	h.ok(attest(h, "v3", testModel))
	h.ok(attest(h, "v2", testModel)) // 5 of 10: pending
	if m := h.model(testModel); m.Active {
		t.Fatal("active at 5000 bps")
	}
	// v3 bonds 2000 more (power 5): 7 of 12 = 5833 bps, still pending.
	res := h.block(h.tx("v3", &MsgBond{Amount: 2000}))
	if m := h.model(testModel); m.Active || countEvents(res.Events, "model_active") != 0 {
		t.Fatalf("active at 7/12: %+v", m)
	}
	// v5 leaves: 7 of 7.
	res = h.block(h.tx("v5", &MsgSetValidator{Active: false}))
	if len(res.ValidatorUpdates) != 1 || res.ValidatorUpdates[0].Power != 0 {
		t.Fatalf("updates %+v", res.ValidatorUpdates)
	}
	if m := h.model(testModel); !m.Active || countEvents(res.Events, "model_active") != 1 {
		t.Fatalf("not activated by the power change: %+v, events %+v", m, res.Events)
	}
	if _, ok := h.l.Store().Get(keyPendingModels); ok {
		t.Fatal("activated model still pending")
	}
	// Activation is permanent: v5 coming back does not undo it.
	h.block(h.tx("v5", &MsgSetValidator{Active: true}))
	if m := h.model(testModel); !m.Active {
		t.Fatal("model deactivated")
	}
}

// TestQuorumMet compares quorumMet with big-integer arithmetic, including
// values whose products overflow 64 bits.
func TestQuorumMet(t *testing.T) {
	const mx = math.MaxUint64
	cases := []struct {
		att, total uint64
		bps        uint32
	}{
		{0, 0, 6667}, {0, 10, 0}, {0, 10, 6667}, {8, 10, 6667}, {5, 10, 6667}, {6667, 10000, 6667}, {6666, 10000, 6667},
		{MaxPower * 1000, MaxPower * 1000, 10000}, {MaxPower*1000 - 1, MaxPower * 1000, 10000},
		{mx, mx, 10000}, {mx - 1, mx, 10000}, {mx / 3 * 2, mx, 6667}, {mx / 3 * 2, mx, 6666}, {mx, mx, 6667}, {1 << 63, mx, 5000}, {1<<63 - 1, mx, 5000},
	}
	for _, c := range cases {
		l := new(big.Int).Mul(new(big.Int).SetUint64(c.att), big.NewInt(10000))
		r := new(big.Int).Mul(new(big.Int).SetUint64(c.total), big.NewInt(int64(c.bps)))
		if got, want := quorumMet(c.att, c.total, c.bps), l.Cmp(r) >= 0; got != want {
			t.Errorf("quorumMet(%d, %d, %d) = %v, want %v", c.att, c.total, c.bps, got, want)
		}
	}
}

func TestParamsRejectQuorumAbove10000(t *testing.T) {
	p := DefaultParams()
	if p.ModelQuorumBps != 6667 {
		t.Fatalf("default quorum %d", p.ModelQuorumBps)
	}
	p.ModelQuorumBps = 10001
	if err := p.Validate(); err == nil {
		t.Fatal("quorum 10001 accepted")
	}
}

func TestParamsRejectAuditCellsAbove64(t *testing.T) {
	p := DefaultParams()
	p.AuditCells = MaxAuditCells
	if err := p.Validate(); err != nil {
		t.Fatalf("auditCells %d: %v", MaxAuditCells, err)
	}
	p.AuditCells = MaxAuditCells + 1
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "auditCells 65 exceeds 64") {
		t.Fatalf("auditCells 65: %v", err)
	}
}

// TestAttackModelNameSquatting: a model's name is what a caller of the
// OpenAI API asks for, and a gateway routes it to the workers serving the
// model registered under it. An attacker registering another model (its
// own weights, or the same weights under another spec) under a name
// already taken, or under a name that spells a registered model's id,
// would have requests for that model routed to its workers. Names are
// unique, first come first served, and a name is never an id; a refused
// registration claims nothing.
func TestAttackModelNameSquatting(t *testing.T) {
	h := newHarness(t, testParams())
	real, junk := Hash(sha256.Sum256([]byte("real"))), Hash(sha256.Sum256([]byte("junk")))
	h.registerModel("bob", real, "llama-3.2-1b")

	// The same name for another id: refused, the model not registered.
	r := h.fails(h.tx("carol", &MsgRegisterModel{ModelID: junk, Name: "llama-3.2-1b", SpecVersion: 1}), ErrNameTaken)
	if !strings.Contains(r.Log, real.String()) {
		t.Errorf("refusal %q does not name the model holding the name", r.Log)
	}
	if _, err := h.l.Query("model/"+junk.String(), nil); err == nil {
		t.Fatal("a registration refused for its name registered the model")
	}
	// A name spelling an id, in either case: malformed.
	for _, name := range []string{real.String(), strings.ToUpper(real.String()), junk.String()} {
		if _, err := DecodeTx(h.tx("carol", &MsgRegisterModel{ModelID: junk, Name: name, SpecVersion: 1})); Code(err) != Code(ErrDecode) {
			t.Fatalf("name %s: %v, want malformed", name, err)
		}
		h.nonces[testAddr("carol")]-- // never sent
	}
	// An id registered again under a new name: refused for the id, and
	// the new name stays free.
	h.fails(h.tx("carol", &MsgRegisterModel{ModelID: real, Name: "free", SpecVersion: 1}), ErrExists)
	h.ok(h.tx("carol", &MsgRegisterModel{ModelID: junk, Name: "free", SpecVersion: 1}))
	if m := h.model(real); m.Name != "llama-3.2-1b" {
		t.Fatalf("the first model's name changed: %+v", m)
	}
	// Names are exact: another spelling is another name.
	h.ok(h.tx("carol", &MsgRegisterModel{ModelID: Hash(sha256.Sum256([]byte("other"))), Name: "Llama-3.2-1B", SpecVersion: 1}))
}
