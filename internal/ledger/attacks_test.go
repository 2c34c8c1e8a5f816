package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/receipt"
)

// The tests in this file perform the attacks of docs/ledger.md's attack
// table with the ledger's test helpers and check that each now fails.

// disputeID returns the disputeId attribute of a result's dispute_opened event.
func disputeID(t testing.TB, r Result) Hash {
	t.Helper()
	for _, e := range r.Events {
		for _, a := range e.Attrs {
			if e.Type == "dispute_opened" && a.Key == "disputeId" {
				id, err := ParseHash(a.Value)
				if err != nil {
					t.Fatal(err)
				}
				return id
			}
		}
	}
	t.Fatalf("no dispute_opened event in %+v", r.Events)
	return Hash{}
}

func (h *harness) dispute(id Hash) Dispute {
	var d Dispute
	h.query("dispute/"+id.String(), &d)
	return d
}

func (h *harness) move(who string, did Hash, msg string) []byte {
	return h.tx(who, &MsgDisputeMove{DisputeID: did, Message: []byte(msg)})
}

// stallAll plays several fake games against carol's receipts, each side
// answering each query in the last block its deadline allows, until the
// last applied height is at least until. challengers maps each dispute to
// its challenger ("" for one that has fallen silent).
func (h *harness) stallAll(until uint64, challengers map[Hash]string) {
	h.t.Helper()
	for h.height < until {
		var txs [][]byte
		ids := slices.SortedFunc(maps.Keys(challengers), func(a, b Hash) int { return bytes.Compare(a[:], b[:]) })
		for _, did := range ids {
			ch := challengers[did]
			d := h.dispute(did)
			if d.Status != DisputeOpen || d.Deadline != h.height+1 {
				continue
			}
			who := "carol"
			if d.Moves%2 == 1 {
				who = ch
			}
			if who == "" {
				continue // a silent challenger
			}
			txs = append(txs, h.move(who, did, "bisect"))
		}
		for i, r := range h.block(txs...).TxResults {
			if r.Code != 0 {
				h.t.Fatalf("height %d: move %d: %s", h.height, i, r.Log)
			}
		}
	}
}

// stallUntilSettled runs stallAll's games, block by block, until dispute
// did is decided.
func (h *harness) stallUntilSettled(did Hash, challengers map[Hash]string) {
	h.t.Helper()
	for h.dispute(did).Status == DisputeOpen {
		h.stallAll(h.height+1, challengers)
	}
}

// stall plays the fake game with both parties answering each query at its
// deadline, until the last applied height is at least until.
func (h *harness) stall(did Hash, until uint64) {
	h.t.Helper()
	turn := []string{"carol", "dave"}
	for i := 0; h.height < until; i++ {
		h.blocksUntil(h.dispute(did).Deadline - 1)
		h.ok(h.move(turn[i%2], did, "bisect"))
	}
}

// Attack 1: a worker publishes, unbonds its whole stake at once and drags
// the dispute out past unbondingBlocks by answering each round at its
// deadline; before, the stake came back at p+unbondingBlocks and the lost
// dispute slashed nothing. Now matured unbondings stay slashable while the
// worker has a receipt in its window or an open dispute.
func TestAttackUnbondingEscape(t *testing.T) {
	p := testParams()
	h := newHarness(t, p)
	setupMarket(t, h, 300)
	id := h.publish(1)
	const stake = 10_000
	h.ok(h.tx("carol", &MsgUnbond{Amount: stake}))
	matures := h.height + p.UnbondingBlocks
	did := disputeID(t, h.ok(h.tx("dave", &MsgOpenDispute{ReceiptID: id, Commitment: []byte("commit")})))
	carol := h.balance("carol")
	h.stall(did, matures+5) // the game outlasts unbonding
	if b, s := h.balance("carol"), h.stakeOf("carol"); b > carol || len(s.Unbonding) != 1 || s.Unbonding[0].Amount != stake || s.Disputes != 1 || s.Live != 1 {
		t.Fatalf("matured unbonding released during the dispute: balance %d -> %d, stake %+v", carol, b, s)
	}
	dave := h.balance("dave")
	d := h.dispute(did)
	if d.Moves%2 == 0 { // the worker's turn: it falls silent and loses
		h.blocksUntil(d.Deadline + 1)
	} else {
		h.ok(h.move("dave", did, "referee:challenger"))
	}
	if got := h.dispute(did).Status; got != DisputeWorkerLost {
		t.Fatalf("dispute %s", got)
	}
	slashed := mulBps(stake, p.SlashDisputeBps)
	s := h.stakeOf("carol")
	if s.Slashed != 1 || len(s.Unbonding) != 0 || s.Live != 0 || s.Disputes != 0 {
		t.Fatalf("stake after the lost dispute %+v", s)
	}
	// The slash came out of the unbonding stake; the rest went back at
	// settlement (nothing keeps it any more).
	if got := h.balance("carol"); got < carol+stake-slashed-uint64(d.Moves) || got > carol+stake-slashed {
		t.Fatalf("worker balance %d, want about %d + %d - %d", got, carol, stake, slashed)
	}
	if got := h.balance("dave"); got < dave+mulBps(slashed, p.WinnerShareBps)-1 {
		t.Fatalf("challenger balance %d, want %d + its share", got, dave)
	}

	t.Run("challenger", func(t *testing.T) {
		// The same escape by a challenger that expects to lose.
		h := newHarness(t, p)
		setupMarket(t, h, 300)
		id := h.publish(1)
		did := disputeID(t, h.ok(h.tx("dave", &MsgOpenDispute{ReceiptID: id, Commitment: []byte("commit")})))
		h.ok(h.tx("dave", &MsgUnbond{Amount: stake}))
		h.stall(did, h.height+p.UnbondingBlocks+5)
		if s := h.stakeOf("dave"); len(s.Unbonding) != 1 || s.Unbonding[0].Amount != stake {
			t.Fatalf("challenger's unbonding released during its dispute: %+v", s)
		}
		d := h.dispute(did)
		if d.Moves%2 == 1 { // the challenger's turn: silent
			h.blocksUntil(d.Deadline + 1)
		} else {
			h.ok(h.move("carol", did, "referee:worker"))
		}
		if got := h.dispute(did).Status; got != DisputeChallengerLost {
			t.Fatalf("dispute %s", got)
		}
		if s := h.stakeOf("dave"); s.Slashed != 1 || len(s.Unbonding) != 0 {
			t.Fatalf("losing challenger %+v", s)
		}
	})
	t.Run("receipt in its window", func(t *testing.T) {
		// A receipt in its window holds matured unbondings until it is
		// final, even without a dispute (an audit may still slash it).
		q := p
		q.UnbondingBlocks = 5
		q.EvidenceMaxAgeBlocks = 4
		h := newHarness(t, q)
		setupMarket(t, h, 300)
		id := h.publish(1)
		h.ok(h.tx("carol", &MsgUnbond{Amount: 4000}))
		h.blocksUntil(h.height + q.UnbondingBlocks + 1)
		if s := h.stakeOf("carol"); len(s.Unbonding) != 1 {
			t.Fatalf("unbonding released with a receipt in its window: %+v", s)
		}
		before := h.balance("carol")
		h.blocksUntil(h.receiptRecord(id).WindowEnd)
		if s := h.stakeOf("carol"); len(s.Unbonding) != 0 || h.balance("carol") < before+4000 {
			t.Fatalf("unbonding not released once the receipt was final: %+v", s)
		}
	})
}

// Attack 1 (evidence): a validator double-signs, unbonds at once and
// waits; evidence arrives later. Evidence the ledger honours
// (evidenceMaxAgeBlocks) is younger than unbonding, so the stake is still
// there; parameters where it is not are refused.
func TestAttackEvidenceAfterUnbonding(t *testing.T) {
	p := testParams()
	h := newHarness(t, p)
	h.ok(h.tx("erin", &MsgBond{Amount: 10_000}))
	offence := h.height
	h.ok(h.tx("erin", &MsgUnbond{Amount: 10_000}))
	h.blocksUntil(offence + p.EvidenceMaxAgeBlocks - 1)
	h.height++
	ctx := BlockContext{Height: h.height, Time: 1_700_000_000, Misbehaving: []Misbehaviour{{Validator: testAddr("erin"), Height: offence}}}
	if _, err := h.l.FinalizeBlock(ctx, nil); err != nil {
		t.Fatal(err)
	}
	h.checkSupply()
	if s := h.stakeOf("erin"); len(s.Unbonding) != 1 || s.Unbonding[0].Amount != 10_000-mulBps(10_000, p.SlashEvidenceBps) || s.JailedUntil == 0 {
		t.Fatalf("evidence did not reach the unbonding stake: %+v", s)
	}
	// Older evidence is ignored (the ledger cannot promise the stake is there).
	h.height++
	ctx = BlockContext{Height: h.height, Time: 1_700_000_000, Misbehaving: []Misbehaviour{{Validator: testAddr("erin"), Height: h.height - p.EvidenceMaxAgeBlocks - 1}}}
	before := h.stakeOf("erin")
	res, err := h.l.FinalizeBlock(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := h.stakeOf("erin"); s.Slashed != before.Slashed {
		t.Fatalf("expired evidence slashed: %+v", s)
	}
	wantIgnored(t, res, ReasonEvidenceTooOld)
	// So is evidence from a height the chain has not reached.
	h.height++
	ctx = BlockContext{Height: h.height, Time: 1_700_000_000, Misbehaving: []Misbehaviour{{Validator: testAddr("erin"), Height: h.height + 1}}}
	if res, err = h.l.FinalizeBlock(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if s := h.stakeOf("erin"); s.Slashed != before.Slashed {
		t.Fatalf("evidence from a later height slashed: %+v", s)
	}
	wantIgnored(t, res, ReasonEvidenceFuture)
	bad := p
	bad.EvidenceMaxAgeBlocks = bad.UnbondingBlocks
	if bad.Validate() == nil {
		t.Fatal("unbonding that does not outlast the evidence age accepted")
	}
}

// wantIgnored checks that a block's one event is evidence_ignored with the
// reason given.
func wantIgnored(t *testing.T, res BlockResult, reason string) {
	t.Helper()
	if len(res.Events) != 1 || res.Events[0].Type != EventEvidenceIgnored || res.Events[0].Attrs[2] != (Attr{AttrReason, reason}) {
		t.Fatalf("block events %+v, want one %s with reason %q", res.Events, EventEvidenceIgnored, reason)
	}
}

// Attack 5: alice escrows a fee for her request; the worker claims it with
// a cheap receipt of another prompt on the same model. The escrow commits
// to the request (RequestHash) and publication checks it.
func TestAttackEscrowNotBound(t *testing.T) {
	h := newHarness(t, testParams())
	esc := setupMarket(t, h, 50_000) // for the request of signedReceipt(..., 1)
	cheap := testReceipt(testModel, 1)
	cheap.Prompt, cheap.Sampling.Steps, cheap.Output = []int{9}, 2, []int{1}
	if err := cheap.Sign(testKey("carol")); err != nil {
		t.Fatal(err)
	}
	b, err := cheap.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	r := h.fails(h.tx("carol", &MsgPublishReceipt{EscrowID: esc, Receipt: b}), ErrInvalid)
	if !strings.Contains(r.Log, "request") {
		t.Fatalf("refused for another reason: %s", r.Log)
	}
	// Another nonce (a second request with the same prompt) is refused too.
	other, _ := signedReceipt(t, "carol", testModel, 2)
	h.fails(h.tx("carol", &MsgPublishReceipt{EscrowID: esc, Receipt: other}), ErrInvalid)
	// The receipt of alice's request claims it.
	rcpt, _ := signedReceipt(t, "carol", testModel, 1)
	h.ok(h.tx("carol", &MsgPublishReceipt{EscrowID: esc, Receipt: rcpt}))
	// An escrow must name a request.
	h.fails(h.tx("alice", &MsgOpenEscrow{Worker: testAddr("carol"), ModelID: testModel, Fee: 5}), ErrDecode)
}

// TestRequestHashVector pins RequestHash to the byte layout docs/ledger.md
// specifies, built here by hand.
func TestRequestHashVector(t *testing.T) {
	r := testReceipt(testModel, 7)
	r.Sampling = receipt.Sampling{Temperature: 0.7, TopK: 40, TopP: 0.95, Seed: 42, Steps: 64, Stop: []int{2}}
	r.Prompt = []int{1, 70000}
	var buf []byte
	buf = append(buf, "verdict/request/v1"...)
	for _, part := range [][]byte{testModel[:], {7}, []byte("temperature=0.7;top_k=40;top_p=0.95;seed=42;steps=64"), {2, 0, 0}, {1, 0, 0, 0x70, 0x11, 0x01}} {
		buf = binary.BigEndian.AppendUint64(buf, uint64(len(part)))
		buf = append(buf, part...)
	}
	if got, want := RequestHash(r), Hash(sha256.Sum256(buf)); got != want {
		t.Fatalf("RequestHash %s, want %s", got, want)
	}
	b, _ := signedReceipt(t, "carol", testModel, 3)
	if got, err := ReceiptRequest(b); err != nil || got != testRequest(3) {
		t.Fatalf("ReceiptRequest %s %v", got, err)
	}
}

// Attack 2: the worker's sybil (dave) disputes the worker's receipt at
// once, to lock out honest challengers, stalls past the window and loses,
// half of its slash going back to the worker. Now an open dispute locks
// nobody out, the receipt is paid only once every dispute of it is
// settled, and a losing challenger's slash is burned whole.
func TestAttackSybilShield(t *testing.T) {
	p := testParams()
	h := newHarness(t, p)
	setupMarket(t, h, 300)
	h.ok(h.tx("bob", &MsgBond{Amount: 10_000})) // the honest challenger
	id := h.publish(1)
	sybil := disputeID(t, h.ok(h.tx("dave", &MsgOpenDispute{ReceiptID: id, Commitment: []byte("commit")})))
	h.ok(h.move("carol", sybil, "bisect"))
	// The honest challenger is not locked out.
	honest := disputeID(t, h.ok(h.tx("bob", &MsgOpenDispute{ReceiptID: id, Commitment: []byte("commit")})))
	if r := h.receiptRecord(id); r.Status != StatusChallenged || r.Disputes != 2 {
		t.Fatalf("receipt %+v", r)
	}
	// Both games run past the window, every answer at its deadline; then
	// the sybil falls silent and loses.
	h.stallAll(h.receiptRecord(id).WindowEnd+1, map[Hash]string{sybil: "dave", honest: "bob"})
	carol, carolNonce, daveStake, burned := h.balance("carol"), h.nonces[testAddr("carol")], h.stakeOf("dave").Bonded, h.totals().Burned
	h.stallUntilSettled(sybil, map[Hash]string{sybil: "", honest: "bob"})
	if got := h.dispute(sybil).Status; got != DisputeChallengerLost {
		t.Fatalf("sybil dispute %s", got)
	}
	if r := h.receiptRecord(id); r.Status != StatusChallenged || r.Disputes != 1 {
		t.Fatalf("receipt paid out with a dispute still open: %+v", r)
	}
	slashed := mulBps(daveStake, p.SlashDisputeBps)
	if got, fees := h.balance("carol"), h.nonces[testAddr("carol")]-carolNonce; got != carol-fees {
		t.Fatalf("worker got %d from its sybil's loss", int64(got)-int64(carol-fees))
	}
	if got := h.totals().Burned; got != burned+slashed {
		t.Fatalf("burned %d, want %d + the sybil's whole slash %d", got, burned, slashed)
	}
	if d := h.dispute(honest); d.Moves%2 == 0 {
		h.ok(h.move("carol", honest, "bisect"))
	}
	// The honest challenger wins: the receipt is slashed and refunded.
	h.ok(h.move("bob", honest, "referee:challenger"))
	if r := h.receiptRecord(id); r.Status != StatusSlashed || r.Disputes != 0 {
		t.Fatalf("receipt %+v", r)
	}
	t.Run("stake per dispute", func(t *testing.T) {
		// One bond cannot back disputes without bound.
		h := newHarness(t, p)
		setupMarket(t, h, 300)
		a, b := h.publish(1), h.publish(2)
		h.ok(h.tx("dave", &MsgUnbond{Amount: 10_000 - 2*p.MinVerifierStake + 1}))
		h.ok(h.tx("dave", &MsgOpenDispute{ReceiptID: a, Commitment: []byte("commit")}))
		h.fails(h.tx("dave", &MsgOpenDispute{ReceiptID: b, Commitment: []byte("commit")}), ErrStake)
	})
}

func (h *harness) totals() Totals {
	var t Totals
	h.query("totals", &t)
	return t
}

// holdings is what an account owns: balance and stake.
func (h *harness) holdings(names ...string) uint64 {
	var sum uint64
	for _, n := range names {
		s := h.stakeOf(n)
		sum += h.balance(n) + s.Bonded
		for _, u := range s.Unbonding {
			sum += u.Amount
		}
	}
	return sum
}

// Attack 4: after idle blocks fill the reward pool, a worker self-escrows
// cheap receipts, and a sybil requester pays it, to capture the subsidy
// (before: 5 self-escrowed receipts costing 10 in fees earned 34,990) and
// to farm reputation. Now a receipt's reward is weighted by its fee and
// capped at half the protocol fee it burned, so the pair only loses; and
// feedback needs an escrow of at least minFeedbackFee.
func TestAttackSubsidyCapture(t *testing.T) {
	p := testParams()
	p.InitialSubsidy, p.HalvingInterval = 50_000, 210_000
	market := func(t *testing.T) *harness {
		h := newHarness(t, p)
		setupMarket(t, h, 300)
		h.blocksUntil(h.height + 30) // an idle pool
		if pool := h.totals().Pool; pool < 1_000_000 {
			t.Fatalf("pool %d", pool)
		}
		return h
	}
	// Zero-fee escrows are refused.
	h := market(t)
	h.fails(h.tx("carol", &MsgOpenEscrow{Worker: testAddr("carol"), ModelID: testModel, Fee: 0, Request: testRequest(9)}), ErrFee)
	for _, c := range []struct {
		name      string
		requester string
		fee       uint64
	}{{"self-escrow", "carol", 1}, {"sybil requester", "alice", 1000}, {"sybil requester below the feedback fee", "alice", 99}} {
		t.Run(c.name, func(t *testing.T) {
			h := market(t)
			pair := []string{"carol"}
			if c.requester != "carol" {
				pair = append(pair, c.requester)
			}
			sent := func() (n uint64) {
				for _, a := range pair {
					n += h.nonces[testAddr(a)]
				}
				return n
			}
			before, nonces := h.holdings(pair...), sent()
			var fb uint64
			h.query("lastIndex/1/"+testAddr(c.requester).String(), &fb)
			var last Hash
			for i := byte(0); i < 5; i++ {
				n := 100 + i
				esc := h.openEscrow(c.requester, "carol", c.fee, n)
				rcpt, id := signedReceipt(t, "carol", testModel, n)
				h.ok(h.tx("carol", &MsgPublishReceipt{EscrowID: esc, Receipt: rcpt}))
				last = id
			}
			h.blocksUntil(h.receiptRecord(last).WindowEnd)
			txFees := sent() - nonces
			burnt := 5 * mulBps(c.fee, p.ProtocolFeeBps)
			maxReward := 5 * mulBps(mulBps(c.fee, p.ProtocolFeeBps), p.RewardCapBps)
			after := h.holdings(pair...)
			if after > before-txFees-burnt+maxReward || after >= before {
				t.Fatalf("the pair went from %d to %d (tx fees %d, protocol fees %d, reward cap %d)", before, after, txFees, burnt, maxReward)
			}
			var fb2 uint64
			h.query("lastIndex/1/"+testAddr(c.requester).String(), &fb2)
			wantFeedback := uint64(0)
			if c.requester != "carol" && c.fee >= p.MinFeedbackFee {
				wantFeedback = 5
			}
			if fb2-fb != wantFeedback {
				t.Fatalf("%d feedback entries, want %d", fb2-fb, wantFeedback)
			}
		})
	}
}

// Attack 7: zero-stake accounts fill the validator set (setValidator
// {active:true} costs a fee) so that bonded accounts are refused, and
// entries are never removed. Now a candidate needs minValidatorStake
// bonded, a richer candidate evicts the poorest, and entries that left
// are removed once evidence against them can no longer arrive.
func TestAttackValidatorSetFilling(t *testing.T) {
	p := testParams()
	p.MaxValidators = 3
	h := newHarness(t, p) // "val" is the genesis validator (10 units)
	join := func(name string) []byte { return h.tx(name, &MsgSetValidator{Active: true}) }
	// Without stake: refused.
	h.fails(join("alice"), ErrStake)
	// The attacker fills the set with the minimum self-stake.
	for _, n := range []string{"alice", "bob"} {
		h.ok(h.tx(n, &MsgBond{Amount: p.MinValidatorStake}))
		h.ok(join(n))
	}
	// A candidate no richer than the poorest is refused; a richer one
	// evicts the poorest (equal stakes: the greater address).
	h.ok(h.tx("carol", &MsgBond{Amount: p.MinValidatorStake}))
	h.fails(join("carol"), ErrWrongState)
	h.ok(h.tx("carol", &MsgBond{Amount: 4000}))
	res := h.block(join("carol"))
	if res.TxResults[0].Code != 0 {
		t.Fatal(res.TxResults[0].Log)
	}
	evicted, stays := "alice", "bob"
	if string(testAddr("bob").String()) > testAddr("alice").String() {
		evicted, stays = "bob", "alice"
	}
	got := map[Address]int64{}
	for _, u := range res.ValidatorUpdates {
		got[u.PubKey] = u.Power
	}
	if p, ok := got[testAddr(evicted)]; !ok || p != 0 || got[testAddr("carol")] != 5 {
		t.Fatalf("updates %+v, want %s removed and carol at 5", res.ValidatorUpdates, evicted)
	}
	var v Validator
	h.query("validator/"+testAddr(stays).String(), &v)
	if !v.Active || v.Power != 1 {
		t.Fatalf("%s: %+v", stays, v)
	}
	// The evicted entry leaves the list once evidence can no longer
	// arrive; a withdrawn one likewise.
	h.ok(h.tx(stays, &MsgSetValidator{Active: false}))
	var list []Address
	h.query("validators", &list)
	if len(list) != 4 {
		t.Fatalf("list %d entries, want 4 (two leaving)", len(list))
	}
	h.blocksUntil(h.height + p.EvidenceMaxAgeBlocks + 2)
	h.query("validators", &list)
	if len(list) != 2 || !slices.Contains(list, testAddr("carol")) || !slices.Contains(list, testAddr(testValidator)) {
		t.Fatalf("list after the evidence age %v", list)
	}
	// Stake below the minimum gives no power.
	h.ok(h.tx("carol", &MsgUnbond{Amount: 4500}))
	h.query("validator/"+testAddr("carol").String(), &v)
	if v.Power != 0 {
		t.Fatalf("carol with %d bonded has power %d", h.stakeOf("carol").Bonded, v.Power)
	}
}

// bigAgent is a register message with the most metadata a transaction may
// carry (32 values of 4096 bytes: about 134 KB of state).
func bigAgent(tag byte) Msg {
	var md []MetadataEntry
	for i := 0; i < maxMetaN; i++ {
		md = append(md, MetadataEntry{MetadataKey: fmt.Sprintf("k%02d", i), MetadataValue: bytes.Repeat([]byte{tag}, maxMetaVal)})
	}
	return &MsgRegisterAgent{AgentURI: "ipfs://spam", Metadata: md}
}

// txFee builds a signed transaction from name with the next nonce and fee.
func (h *harness) txFee(name string, fee uint64, m Msg) []byte {
	a := testAddr(name)
	tx := &Tx{ChainID: testChain, Nonce: h.nonces[a], Fee: fee, Msg: m}
	h.nonces[a]++
	tx.Sign(testKey(name))
	return tx.Encode()
}

// Attack 3 (fees): every transaction paid minFee whatever its size or the
// state it wrote: one register added ~134 KB for 1, and validationRequest
// rewrote a list per validator that grew with every request (quadratic).
// Now the fee is minFee per started feeUnitBytes of transaction bytes and
// state growth, and lists grow one key per item.
func TestAttackFlatFee(t *testing.T) {
	p := testParams()
	h := newHarness(t, p)
	// A fee below what its bytes need: refused, no effect.
	bal := h.balance("alice")
	r := h.fails(h.txFee("alice", 1, bigAgent('x')), ErrFee)
	if h.balance("alice") != bal || r.RequiredFee < 40 {
		t.Fatalf("register paying 1: balance %d -> %d, required fee %d", bal, h.balance("alice"), r.RequiredFee)
	}
	// A fee for its bytes but not for the state it writes: the message
	// fails, the fee is paid.
	bytesFee := r.RequiredFee
	r = h.fails(h.txFee("alice", bytesFee, bigAgent('x')), ErrFee)
	if h.balance("alice") != bal-bytesFee || r.RequiredFee <= bytesFee {
		t.Fatalf("register paying %d for its bytes: balance %d -> %d, required fee %d", bytesFee, bal, h.balance("alice"), r.RequiredFee)
	}
	if _, err := h.l.Query("agent/1", nil); err == nil {
		t.Fatal("the underpaid register wrote state")
	}
	// A client signs with a guess, asks, and re-signs with the answer.
	c := NewChecker(h.l)
	guess := &Tx{ChainID: testChain, Nonce: h.nonces[testAddr("alice")], Fee: 1, Msg: bigAgent('y')}
	guess.Sign(testKey("alice"))
	est := c.EstimateFee(guess.Encode())
	if est.Code != 0 || est.RequiredFee < r.RequiredFee {
		t.Fatalf("estimate %+v", est)
	}
	// Signed with a nonce it does not know yet (a batch's estimates: the
	// client signs each with the largest nonce), the same estimate: the
	// message's state growth counted.
	far := *guess
	far.Nonce = math.MaxUint64
	far.Sign(testKey("alice"))
	if e := c.EstimateFee(far.Encode()); e.Code != 0 || e.RequiredFee != est.RequiredFee {
		t.Fatalf("estimate with nonce MaxUint64 %+v, want the fee %d of the right nonce", e, est.RequiredFee)
	}
	guess.Fee = est.RequiredFee
	guess.Sign(testKey("alice"))
	h.nonces[testAddr("alice")]++
	h.ok(guess.Encode())
	var size uint64
	for _, k := range h.l.Store().Keys() {
		if strings.HasPrefix(k, "agentmeta/") {
			v, _ := h.l.Store().Get(k)
			size += uint64(len(k) + len(v))
		}
	}
	if size < maxMetaN*maxMetaVal || est.RequiredFee*p.FeeUnitBytes < size {
		t.Fatalf("%d bytes of metadata for a fee of %d", size, est.RequiredFee)
	}

	// Validation requests for one validator: the fee and the largest
	// value written stay flat however many there are.
	h.ok(h.tx("bob", &MsgRegisterAgent{AgentURI: "ipfs://bob"}))
	var growth []uint64
	const n = 300
	for i := 0; i < n; i++ {
		var txs [][]byte
		for j := 0; j < 10; j++ {
			txs = append(txs, h.tx("bob", &MsgValidationRequest{ValidatorAddress: testAddr("dave"), AgentID: 2, RequestHash: Hash{byte(i), byte(i >> 8), byte(j), 1}}))
		}
		for _, r := range h.block(txs...).TxResults {
			if r.Code != 0 {
				t.Fatal(r.Log)
			}
			growth = append(growth, r.growth)
		}
		i += 9
	}
	// (The first request creates the two list counters; a counter gains a
	// digit now and then.)
	if second, last := growth[1], growth[len(growth)-1]; last > second+2 {
		t.Fatalf("state growth of a validation request went from %d to %d bytes", second, last)
	}
	for _, k := range []string{keyValidatorRequests(testAddr("dave")), keyAgentValidations(2)} {
		if v, _ := h.l.Store().Get(k); len(v) > 20 {
			t.Fatalf("%s holds %d bytes", k, len(v))
		}
	}
	var page []Hash
	if b, err := h.l.Query("validatorRequests/"+testAddr("dave").String(), []byte(`{"offset":25,"limit":5}`)); err != nil || json.Unmarshal(b, &page) != nil || len(page) != 5 || page[0] != (Hash{20, 0, 5, 1}) {
		t.Fatalf("page %v %v", page, err)
	}
}

// Attack 3 (mempool): spammers fill the mempool (first in, first out) with
// large transactions ahead of a worker's audit opening and dispute
// answer, to push them past their deadlines. Now CheckTx caps each
// sender's pending bytes, and the proposal takes deadline transactions
// first (ledger.Propose).
func TestAttackMempoolFlood(t *testing.T) {
	p := auditParams()
	p.MaxPendingBytes = MaxTxBytes
	h := newHarness(t, p)
	setupMarket(t, h, 300)
	id := h.publish(1)
	did := disputeID(t, h.ok(h.tx("dave", &MsgOpenDispute{ReceiptID: id, Commitment: []byte("commit")})))
	a := h.audit(id)
	if a.Status != AuditPending {
		t.Fatalf("audit %+v", a)
	}
	c := NewChecker(h.l)
	var mempool [][]byte
	for _, spammer := range []string{"alice", "bob", "erin"} {
		refused := false
		for i := 0; i < 60 && !refused; i++ {
			raw := h.txFee(spammer, p.RequiredFee(200_000, 200_000), bigAgent(byte(i)))
			switch r := c.Check(raw); r.Code {
			case 0:
				mempool = append(mempool, raw)
			case Code(ErrPending):
				refused = true
			default:
				t.Fatal(r.Log)
			}
		}
		if !refused {
			t.Fatalf("%s was never refused", spammer)
		}
	}
	var spam int
	for _, raw := range mempool {
		spam += len(raw)
	}
	if spam > 3*int(p.MaxPendingBytes) {
		t.Fatalf("%d bytes of spam from three senders", spam)
	}
	// The worker's deadline transactions arrive last.
	opening := h.tx("carol", &MsgPostOpenings{ReceiptID: id, Openings: goodOpenings(a.Seed, a.Cells)})
	move := h.move("carol", did, "bisect")
	for _, raw := range [][]byte{opening, move} {
		if r := c.Check(raw); r.Code != 0 {
			t.Fatal(r.Log)
		}
		mempool = append(mempool, raw)
	}
	// A block holds far less than the flood: first in, first out would
	// leave the worker's transactions out; Propose takes them first.
	const maxBytes = 1 << 20
	var fifo int
	for n := 0; fifo < len(mempool) && n+len(mempool[fifo]) <= maxBytes; fifo++ {
		n += len(mempool[fifo])
	}
	if fifo >= len(mempool)-2 {
		t.Fatalf("the flood (%d transactions) fits in one block", len(mempool))
	}
	prop := Propose(mempool, maxBytes)
	if len(prop) < 2 || !bytes.Equal(prop[0], opening) || !bytes.Equal(prop[1], move) {
		t.Fatalf("proposal of %d transactions does not start with the deadline ones", len(prop))
	}
	for i, r := range h.block(prop...).TxResults {
		if r.Code != 0 {
			t.Fatalf("proposal tx %d: %s", i, r.Log)
		}
	}
	if h.audit(id).Status != AuditPassed || h.dispute(did).Moves != 1 {
		t.Fatalf("audit %s, dispute moves %d", h.audit(id).Status, h.dispute(did).Moves)
	}
}

// TestProposeKeepsSenderOrder: a deadline transaction brings its sender's
// earlier transactions with it, and a sender whose transaction does not
// fit loses its later ones (their nonces would fail).
func TestProposeKeepsSenderOrder(t *testing.T) {
	h := newHarness(t, testParams())
	a1 := h.tx("alice", &MsgSend{To: testAddr("bob"), Amount: 1})
	b1 := h.tx("bob", bigAgent(1))
	a2 := h.tx("alice", &MsgDisputeMove{DisputeID: Hash{1}, Message: []byte("m")})
	b2 := h.tx("bob", &MsgSend{To: testAddr("alice"), Amount: 1})
	c1 := h.tx("carol", &MsgSend{To: testAddr("alice"), Amount: 1})
	got := Propose([][]byte{a1, b1, a2, b2, c1}, int64(len(a1)+len(a2)+len(b2)+len(c1)+10))
	want := [][]byte{a1, a2, c1} // b1 does not fit, so b2 is left out too
	if len(got) != len(want) {
		t.Fatalf("%d transactions, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("transaction %d differs", i)
		}
	}
}

// blockWithHash applies the next block with a chosen block hash, as a
// grinding proposer would.
func (h *harness) blockWithHash(hash Hash, txs ...[]byte) BlockResult {
	h.t.Helper()
	h.height++
	ctx := BlockContext{Height: h.height, Time: 1_700_000_000 + int64(h.height)*5, Hash: hash, Proposer: testAddr("carol")}
	res, err := h.l.FinalizeBlock(ctx, txs)
	if err != nil {
		h.t.Fatal(err)
	}
	h.checkSupply()
	for i, r := range res.TxResults {
		if r.Code != 0 {
			h.t.Fatalf("height %d: tx %d: %s", h.height, i, r.Log)
		}
	}
	return res
}

// Attack 6: the audit seed was the hash of the block after publication,
// which its proposer shapes (choice and order of transactions): a worker
// that proposes that block tries hashes until its receipt is not audited.
// Now a receipt whose escrow commits to no secret is always audited (while
// audits are on): no seed decides whether. One whose requester committed
// to a secret is decided by the secret and the hash of the block after
// publication (revealed after that block): the proposer of that block
// does not know the secret, and the requester fixed it before the hash
// existed, so neither alone picks the outcome; a secret not revealed in
// time means an audit.
func TestAttackAuditGrinding(t *testing.T) {
	p := testParams()
	p.AuditRateBps = 5000
	// run publishes receipt 1 (with or without a commitment to secret),
	// applies the next block with the proposer's chosen hash, has the
	// requester reveal (when it committed), and reports whether the
	// receipt is audited.
	run := func(secret []byte, hash Hash) bool {
		h := newHarness(t, p)
		setupMarket(t, h, 300)
		var a Account
		h.query("account/"+testAddr("alice").String(), &a)
		m := &MsgOpenEscrow{Worker: testAddr("carol"), ModelID: testModel, Fee: 500, Request: testRequest(2)}
		if secret != nil {
			m.AuditCommit = Hash(sha256.Sum256(secret))
		}
		h.ok(h.tx("alice", m))
		rcpt, id := signedReceipt(t, "carol", testModel, 2)
		h.ok(h.tx("carol", &MsgPublishReceipt{EscrowID: EscrowID(testAddr("alice"), a.Nonce), Receipt: rcpt}))
		h.blockWithHash(hash)
		if secret != nil {
			h.blockWithHash(Hash{hash[0], 1}, h.tx("alice", &MsgRevealAudit{ReceiptID: id, Secret: secret}))
		}
		return h.receiptRecord(id).Audited
	}
	// Without a commitment no block hash exempts the receipt.
	for i := byte(0); i < 16; i++ {
		if !run(nil, Hash{i}) {
			t.Fatalf("block hash %d exempted a receipt whose escrow committed to no secret", i)
		}
	}
	// With one, the proposer, who does not know the secret, cannot choose:
	// for one block hash, both outcomes occur over secrets...
	bySecret := map[bool]int{}
	for i := byte(0); i < 16; i++ {
		bySecret[run(bytes.Repeat([]byte{i}, 32), Hash{3})]++
	}
	// ...and the requester, who fixed the secret before the block hash
	// existed, cannot either: for one secret, both occur over block hashes.
	byHash := map[bool]int{}
	for i := byte(0); i < 16; i++ {
		byHash[run(bytes.Repeat([]byte{7}, 32), Hash{i})]++
	}
	if bySecret[true] == 0 || bySecret[false] == 0 || byHash[true] == 0 || byHash[false] == 0 {
		t.Fatalf("outcomes over secrets %v, over block hashes %v: one party alone decides", bySecret, byHash)
	}
	secret := bytes.Repeat([]byte{7}, 32)
	commit := Hash(sha256.Sum256(secret))
	t.Run("too early", func(t *testing.T) {
		h := newHarness(t, p)
		setupMarket(t, h, 300)
		var a Account
		h.query("account/"+testAddr("alice").String(), &a)
		h.ok(h.tx("alice", &MsgOpenEscrow{Worker: testAddr("carol"), ModelID: testModel, Fee: 500, Request: testRequest(2), AuditCommit: commit}))
		rcpt, id := signedReceipt(t, "carol", testModel, 2)
		res := h.block(h.tx("carol", &MsgPublishReceipt{EscrowID: EscrowID(testAddr("alice"), a.Nonce), Receipt: rcpt}),
			h.tx("alice", &MsgRevealAudit{ReceiptID: id, Secret: secret}))
		if res.TxResults[0].Code != 0 || res.TxResults[1].Code != Code(ErrWrongState) {
			t.Fatalf("publication %d, reveal in the same block %d (%s)", res.TxResults[0].Code, res.TxResults[1].Code, res.TxResults[1].Log)
		}
	})
	// published returns a market under p with carol's receipt published
	// for alice's escrow, which commits to secret.
	published := func(t *testing.T, p Params) (*harness, Hash) {
		h := newHarness(t, p)
		setupMarket(t, h, 300)
		var a Account
		h.query("account/"+testAddr("alice").String(), &a)
		h.ok(h.tx("alice", &MsgOpenEscrow{Worker: testAddr("carol"), ModelID: testModel, Fee: 500, Request: testRequest(2), AuditCommit: commit}))
		rcpt, id := signedReceipt(t, "carol", testModel, 2)
		h.ok(h.tx("carol", &MsgPublishReceipt{EscrowID: EscrowID(testAddr("alice"), a.Nonce), Receipt: rcpt}))
		return h, id
	}
	t.Run("unrevealed", func(t *testing.T) {
		h, id := published(t, p)
		pub := h.height
		h.fails(h.tx("bob", &MsgRevealAudit{ReceiptID: id, Secret: bytes.Repeat([]byte{8}, 32)}), ErrInvalid)
		h.fails(h.tx("alice", &MsgRevealAudit{ReceiptID: id, Secret: bytes.Repeat([]byte{8}, 32)}), ErrInvalid)
		h.blocksUntil(pub + 1 + p.RevealWindow)
		h.fails(h.tx("alice", &MsgRevealAudit{ReceiptID: id, Secret: secret}), ErrDeadline)
		if r := h.receiptRecord(id); !r.Audited || h.audit(id).Deadline >= r.WindowEnd {
			t.Fatalf("unrevealed secret: receipt %+v, audit %+v", r, h.audit(id))
		}
	})
	// With audits off (auditRateBps 0, auditCells 0: valid parameters) an
	// unrevealed secret audited the receipt all the same, asking the
	// worker for openings of 0 cells on pain of a slash: a requester
	// could make any worker that did not answer such an audit lose stake.
	t.Run("unrevealed, audits off", func(t *testing.T) {
		q := p
		q.AuditRateBps, q.AuditCells = 0, 0
		if err := q.Validate(); err != nil {
			t.Fatal(err)
		}
		h, id := published(t, q)
		stake := h.stakeOf("carol")
		h.blocksUntil(h.receiptRecord(id).WindowEnd)
		if r := h.receiptRecord(id); r.Audited || r.Status != StatusFinal {
			t.Fatalf("audits off, unrevealed secret: receipt %+v", r)
		}
		if s := h.stakeOf("carol"); s.Slashed != stake.Slashed {
			t.Fatalf("worker slashed: %+v", s)
		}
	})
}

// TestAttackAuditEscapeByDispute (attack 11): a receipt challenged in the
// block that published it was skipped by the next block's audit selection
// (it was no longer "published"), so a worker whose sybil opened a dispute
// on each receipt in its own block escaped every audit, and the
// requester's secret could never be revealed (no beacon).
func TestAttackAuditEscapeByDispute(t *testing.T) {
	p := auditParams()
	for _, commit := range []bool{false, true} {
		h := newHarness(t, p)
		setupMarket(t, h, 1)
		var a Account
		h.query("account/"+testAddr("alice").String(), &a)
		secret := Hash{7}
		m := &MsgOpenEscrow{Worker: testAddr("carol"), ModelID: testModel, Fee: 500, Request: testRequest(1), AgentID: 1}
		if commit {
			m.AuditCommit = sha256.Sum256(secret[:])
		}
		h.ok(h.tx("alice", m))
		rcpt, id := signedReceipt(t, "carol", testModel, 1)
		res := h.block(h.tx("carol", &MsgPublishReceipt{EscrowID: EscrowID(testAddr("alice"), a.Nonce), Receipt: rcpt}),
			h.tx("dave", &MsgOpenDispute{ReceiptID: id, Commitment: []byte("commit")}))
		for i, r := range res.TxResults {
			if r.Code != 0 {
				t.Fatalf("commit %v: tx %d: %s", commit, i, r.Log)
			}
		}
		if h.receiptRecord(id).Status != StatusChallenged {
			t.Fatal("not challenged")
		}
		h.block()
		if commit { // at a rate of 10000, revealed means audited
			h.ok(h.tx("alice", &MsgRevealAudit{ReceiptID: id, Secret: secret[:]}))
		}
		if a := h.audit(id); a.Status != AuditPending {
			t.Fatalf("commit %v: audit %+v", commit, a)
		}
	}
}

// TestAttackLongDisputeAnswer (attack 12): the dispute game's largest
// answer at a whole context is about 2.9 MB of JSON (docs/ledger.md);
// moves were limited to 1 MiB, so the party that had to send one could
// not, and lost the game on time however right it was.
func TestAttackLongDisputeAnswer(t *testing.T) {
	p := testParams()
	h := newHarness(t, p)
	setupMarket(t, h, 300)
	id := h.publish(1)
	did := disputeID(t, h.ok(h.tx("dave", &MsgOpenDispute{ReceiptID: id, Commitment: []byte("commit")})))
	msg := append([]byte("bisect "), bytes.Repeat([]byte{'x'}, 2_900_000)...)
	h.ok(h.txFee("carol", p.RequiredFee(MaxTxBytes, 0), &MsgDisputeMove{DisputeID: did, Message: msg}))
	if d := h.dispute(did); d.Moves != 1 || d.Status != DisputeOpen {
		t.Fatalf("after the long answer: %d moves, %s", d.Moves, d.Status)
	}
	h.ok(h.move("dave", did, "bisect")) // the turn passed
}

// TestAttackUnbondFlood: every unbond appended an entry to the stake and
// queued its release, and every later one of the account decoded and
// wrote them all again: 2000 unbonds of 1 in one block, at the least fee
// each, cost every validator work quadratic in their number (10,000:
// about 25 s). Unbonds maturing at one height now make one entry (one
// release), and an account holds at most maxUnbondings.
func TestAttackUnbondFlood(t *testing.T) {
	p := testParams()
	p.UnbondingBlocks = 2 * maxUnbondings // longer than the cap in blocks
	h := newHarness(t, p)
	h.ok(h.tx("alice", &MsgBond{Amount: 5000}))
	bal := h.balance("alice")
	const n = 2000
	txs := make([][]byte, n)
	for i := range txs {
		txs[i] = h.tx("alice", &MsgUnbond{Amount: 1})
	}
	for i, r := range h.block(txs...).TxResults {
		if r.Code != 0 {
			t.Fatalf("unbond %d: %s", i, r.Log)
		}
	}
	st := h.stakeOf("alice")
	if len(st.Unbonding) != 1 || st.Unbonding[0].Amount != n {
		t.Fatalf("%d unbonds in one block: entries %+v, want one of %d", n, st.Unbonding, n)
	}
	h.blocksUntil(st.Unbonding[0].Height)
	if got := h.balance("alice"); got != bal-n+n {
		t.Fatalf("balance %d after the unbondings matured, want %d (fees %d paid before)", got, bal, n)
	}
	// One unbond a block: at most maxUnbondings entries pending.
	for i := range maxUnbondings {
		if r := h.block(h.tx("alice", &MsgUnbond{Amount: 1})).TxResults[0]; r.Code != 0 {
			t.Fatalf("unbond %d: %s", i, r.Log)
		}
	}
	h.fails(h.tx("alice", &MsgUnbond{Amount: 1}), ErrStake)
	if k := len(h.stakeOf("alice").Unbonding); k != maxUnbondings {
		t.Fatalf("%d entries, want %d", k, maxUnbondings)
	}
}

// Matured entries held back fold into one at the latest of their heights,
// keeping their sum and the order slash takes them in.
func TestFoldMatured(t *testing.T) {
	u := func(a, h uint64) Unbonding { return Unbonding{Amount: a, Height: h} }
	for _, c := range []struct {
		in   []Unbonding
		h    uint64
		want []Unbonding
	}{
		{nil, 10, nil},
		{[]Unbonding{u(1, 5)}, 10, []Unbonding{u(1, 5)}},
		{[]Unbonding{u(1, 5), u(2, 7), u(3, 12)}, 10, []Unbonding{u(3, 7), u(3, 12)}},
		{[]Unbonding{u(1, 5), u(2, 10)}, 10, []Unbonding{u(3, 10)}},
		{[]Unbonding{u(1, 11), u(2, 12)}, 10, []Unbonding{u(1, 11), u(2, 12)}},
	} {
		if got := foldMatured(slices.Clone(c.in), c.h); !slices.Equal(got, c.want) {
			t.Errorf("foldMatured(%v, %d) = %v, want %v", c.in, c.h, got, c.want)
		}
	}
}

// countingStore counts the reads of a store.
type countingStore struct {
	Store
	reads int
}

func (s *countingStore) Get(k string) ([]byte, bool) {
	s.reads++
	return s.Store.Get(k)
}

// TestAttackPendingModelFlood: one validator registers models no other
// validator holds and attests each. Every such model stayed pending, so
// the pending list grew without bound: rewritten whole at each
// attestation, and read, with every listed model and its attesters'
// powers, at every change of voting power. Now one validator attests at
// most maxPendingPerAttester pending models (so it cannot hold back the
// others' new models by itself) and the list holds at most
// maxPendingModels: the attestation past either bound is refused (code 18)
// and leaves nothing behind, while another validator's attestation under
// its quota, and attestations that add nothing (one that activates its
// model), are taken; a power change reads a bounded number of keys.
func TestAttackPendingModelFlood(t *testing.T) {
	// Eight flooders of power 1 (1 of 23 each: their models stay pending),
	// two honest validators.
	vals := []testVal{{"v12", 12}, {"v3", 3}}
	for i := range 8 {
		vals = append(vals, testVal{fmt.Sprintf("f%d", i), 1})
	}
	h := newHarnessValidators(t, testParams(), testHooks, vals)
	flood := func(i int) Hash { return sha256.Sum256(fmt.Appendf(nil, "flood model %d", i)) }
	pending := func() []Hash {
		var list []Hash
		get(h.l.Store(), keyPendingModels, &list)
		return list
	}
	register := func(i int) []byte {
		return h.tx("bob", &MsgRegisterModel{ModelID: flood(i), Name: fmt.Sprintf("flood-%d", i), SpecVersion: 1})
	}
	// floodBy: validator f registers and attests models [from, to).
	floodBy := func(f string, from, to int) {
		t.Helper()
		var txs [][]byte
		for i := from; i < to; i++ {
			txs = append(txs, register(i), attest(h, f, flood(i)))
		}
		for i, r := range h.block(txs...).TxResults {
			if r.Code != 0 {
				t.Fatalf("%s: tx %d: %s", f, i, r.Log)
			}
		}
	}
	next := 0
	floodBy("f0", next, next+maxPendingPerAttester)
	next += maxPendingPerAttester
	// f0's next one is refused (its quota), and changes nothing.
	h.ok(register(next))
	r := h.fails(attest(h, "f0", flood(next)), ErrPendingModels)
	if !strings.Contains(r.Log, "attests") || len(h.model(flood(next)).Attesters) != 0 || len(pending()) != maxPendingPerAttester {
		t.Fatalf("refused attestation: log %q, model %+v, %d pending", r.Log, h.model(flood(next)), len(pending()))
	}
	if Code(ErrPendingModels) != 18 {
		t.Fatalf("ErrPendingModels is code %d, docs/ledger.md says 18", Code(ErrPendingModels))
	}
	// Another validator's new model is not held back by f0's.
	h.ok(attest(h, "v3", flood(next)))
	next++
	// Seven more flooders fill the list to maxPendingModels.
	for f := 1; f < 8; f++ {
		n := min(maxPendingPerAttester, maxPendingModels-len(pending()))
		floodBy(fmt.Sprintf("f%d", f), next, next+n)
		next += n
	}
	if n := len(pending()); n != maxPendingModels {
		t.Fatalf("%d models pending, want %d", n, maxPendingModels)
	}
	// f7, under its quota, is refused by the full list.
	extra := flood(next)
	h.ok(register(next))
	r = h.fails(attest(h, "f7", extra), ErrPendingModels)
	if !strings.Contains(r.Log, "models are pending") || len(h.model(extra).Attesters) != 0 || len(pending()) != maxPendingModels {
		t.Fatalf("refused attestation: log %q, model %+v, %d pending", r.Log, h.model(extra), len(pending()))
	}
	// An attestation that activates a pending model adds nothing and is
	// taken (v12 and v3 on f1's first model: 16 of 23, above 2/3), which
	// frees its place for the extra model.
	h.ok(attest(h, "v12", flood(maxPendingPerAttester+1)))
	h.ok(attest(h, "v3", flood(maxPendingPerAttester+1)))
	if !h.model(flood(maxPendingPerAttester+1)).Active || len(pending()) != maxPendingModels-1 {
		t.Fatalf("model %+v, %d pending", h.model(flood(maxPendingPerAttester+1)), len(pending()))
	}
	h.ok(attest(h, "f7", extra))
	if n := len(pending()); n != maxPendingModels {
		t.Fatalf("%d pending after the extra model's attestation, want %d", n, maxPendingModels)
	}
	// A power change re-evaluates the list: the list, the validators'
	// powers, and each pending model with its attesters' powers (one
	// attester each here but v3's model, which has two), nothing more.
	cs := &countingStore{Store: h.l.Store()}
	e := h.l.exec(cs, BlockContext{Height: h.height + 1})
	cs.reads = 0 // the block's parameters, chain and totals
	e.reevaluateModels()
	if limit := 2 + len(vals) + maxPendingModels*(1+1) + 1; cs.reads > limit {
		t.Fatalf("a power change read %d keys, limit %d", cs.reads, limit)
	}
	res := h.block(h.tx("v3", &MsgBond{Amount: 2000}))
	if len(res.ValidatorUpdates) != 1 || len(pending()) != maxPendingModels {
		t.Fatalf("power change: updates %+v, %d pending", res.ValidatorUpdates, len(pending()))
	}
}
