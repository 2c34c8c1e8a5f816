package ledger

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/receipt"
)

const testChain = "verdict-test"

func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("ledger test key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func testAddr(name string) Address {
	var a Address
	copy(a[:], testKey(name).Public().(ed25519.PublicKey))
	return a
}

// fakeOpenings accepts openings equal to goodOpenings(seed, cells).
type fakeOpenings struct{}

func goodOpenings(seed Hash, cells uint32) []byte {
	return fmt.Appendf(nil, "open:%s:%d", seed, cells)
}

func (fakeOpenings) CheckOpenings(rcpt []byte, seed Hash, cells uint32, openings []byte) error {
	if len(rcpt) == 0 {
		return errors.New("no receipt")
	}
	if string(openings) != string(goodOpenings(seed, cells)) {
		return errors.New("opening does not match the commitment")
	}
	return nil
}

// fakeGame: the commitment must be "commit"; the worker answers first; a
// message "bisect" (or "bisect " and any bytes: a long answer) from the
// side whose turn it is passes the turn,
// "referee:worker", "referee:challenger" and "referee:void" end the game
// (naming the winner, or nobody); "stall" passes the turn and makes every
// timeout leave the game as it is, "stall:error" makes it fail; anything
// else is rejected. The side to
// answer has fakeTimeout blocks.
type fakeGame struct{}

const fakeTimeout = 10

type fakeState struct {
	Turn     Side
	Deadline uint64
	Status   DisputeStatus
	// Stalled (the message "stall"): timeouts leave the game as it is, as
	// disputegame's do for a full transcript, or fail ("stall:error").
	Stalled string `json:",omitempty"`
}

func (fakeGame) Start(rcpt, commitment []byte, h, _ uint64) ([]byte, error) {
	if string(commitment) != "commit" {
		return nil, errors.New("bad commitment")
	}
	return json.Marshal(fakeState{Turn: SideWorker, Status: DisputeStatus{Deadline: h + fakeTimeout}})
}

func (fakeGame) Step(state []byte, from Side, msg []byte, h uint64) ([]byte, error) {
	var s fakeState
	if err := json.Unmarshal(state, &s); err != nil {
		return nil, err
	}
	if s.Status.Done || from != s.Turn {
		return nil, errors.New("not your turn")
	}
	if bytes.HasPrefix(msg, []byte("bisect ")) {
		msg = msg[:len("bisect")]
	}
	switch string(msg) {
	case "bisect":
		s.Turn = 3 - s.Turn
		s.Status.Deadline = h + fakeTimeout
	case "referee:worker":
		s.Status = DisputeStatus{Done: true, Lost: [2]bool{false, true}, Faults: [2]dispute.Fault{"", dispute.FaultStateMismatch}, Reason: "referee"}
	case "referee:challenger":
		s.Status = DisputeStatus{Done: true, Lost: [2]bool{true, false}, Faults: [2]dispute.Fault{dispute.FaultStateMismatch, ""}, Reason: "referee"}
	case "referee:void":
		s.Status = DisputeStatus{Done: true, Void: dispute.FaultRefereeFailed, Reason: "referee failed"}
	case "stall", "stall:error":
		s.Stalled = string(msg)
		s.Turn = 3 - s.Turn
		s.Status.Deadline = h + fakeTimeout
	default:
		return nil, errors.New("unparseable message")
	}
	return json.Marshal(s)
}

func (fakeGame) Tick(state []byte, h uint64) ([]byte, error) {
	var s fakeState
	if err := json.Unmarshal(state, &s); err != nil {
		return nil, err
	}
	switch s.Stalled {
	case "stall":
		return state, nil
	case "stall:error":
		return nil, errors.New("the game cannot tick")
	}
	if !s.Status.Done && h > s.Status.Deadline {
		s.Status.Done = true
		s.Status.Lost[s.Turn-1] = true
		s.Status.Faults[s.Turn-1] = dispute.FaultTimeout
		s.Status.Reason = "timeout"
	}
	return json.Marshal(s)
}

func (fakeGame) Status(state []byte) (DisputeStatus, error) {
	var s fakeState
	err := json.Unmarshal(state, &s)
	return s.Status, err
}

// fakeReceipts accepts "receipt:WORKER:MODEL:N" (hex address and model) so
// that the golden app hashes do not depend on the receipt encoding.
type fakeReceipts struct{}

func fakeReceipt(worker string, model Hash, n int) ([]byte, Hash) {
	b := fmt.Appendf(nil, "receipt:%s:%s:%d", testAddr(worker), model, n)
	return b, sha256.Sum256(b)
}

func (fakeReceipts) VerifyReceipt(b []byte) (ReceiptInfo, error) {
	parts := strings.Split(string(b), ":")
	if len(parts) != 4 || parts[0] != "receipt" {
		return ReceiptInfo{}, errors.New("not a fake receipt")
	}
	w, err1 := ParseAddress(parts[1])
	m, err2 := ParseHash(parts[2])
	if err := errors.Join(err1, err2); err != nil {
		return ReceiptInfo{}, err
	}
	n, err := strconv.Atoi(parts[3])
	if err != nil {
		return ReceiptInfo{}, err
	}
	return ReceiptInfo{ID: sha256.Sum256(b), Worker: w, ModelID: m, Request: fakeRequest(m, n)}, nil
}

// fakeRequest is the request of fakeReceipt(_, model, n).
func fakeRequest(model Hash, n int) Hash {
	return derive("fake request", model[:], be64(uint64(n)))
}

var testHooks = Hooks{Receipts: Receipts{}, Openings: fakeOpenings{}, Disputes: fakeGame{}}

// harness feeds blocks to a ledger and checks invariants after each.
type harness struct {
	t      testing.TB
	l      *Ledger
	height uint64
	nonces map[Address]uint64
	// events: every event of every block applied, each checked against
	// eventAttrs (checkEvent).
	events []Event
}

const testBalance = 1_000_000

func testParams() Params {
	p := DefaultParams()
	p.AuditRateBps = 0 // tests that want audits turn them on
	p.InitialSubsidy = 1000
	p.HalvingInterval = 5
	return p
}

func newHarness(t testing.TB, p Params) *harness { return newHarnessHooks(t, p, testHooks) }

func newHarnessHooks(t testing.TB, p Params, hooks Hooks) *harness {
	return newHarnessValidators(t, p, hooks, []testVal{{testValidator, testValidatorPower}})
}

// testVal is a genesis validator of the harness: an account (by test key
// name) whose bond is Power*PowerUnit, so that no block changes its power.
type testVal struct {
	Name  string
	Power int64
}

func newHarnessValidators(t testing.TB, p Params, hooks Hooks, vals []testVal) *harness {
	g := Genesis{ChainID: testChain, Params: p}
	for _, n := range []string{"alice", "bob", "carol", "dave", "erin"} {
		g.Accounts = append(g.Accounts, GenesisAccount{Address: testAddr(n), Balance: testBalance})
	}
	var gv []GenesisValidator
	for _, v := range vals {
		g.Accounts = append(g.Accounts, GenesisAccount{Address: testAddr(v.Name), Balance: testBalance, Bonded: uint64(v.Power) * p.PowerUnit})
		gv = append(gv, GenesisValidator{PubKey: testAddr(v.Name), Power: v.Power})
	}
	l := New(NewMemStore(), hooks)
	if err := l.InitGenesis(g); err != nil {
		t.Fatal(err)
	}
	if err := l.SetValidators(gv); err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, l: l, nonces: map[Address]uint64{}}
}

// The harness's genesis validator ("val"), whose attestation activates
// models (registerModel).
const (
	testValidator      = "val"
	testValidatorPower = 10
)

// registerModel registers model id (signed by registrant) and has the
// genesis validator attest to holding it, in one block, so that the model
// is active for what follows.
func (h *harness) registerModel(registrant string, id Hash, name string) {
	h.t.Helper()
	res := h.block(h.tx(registrant, &MsgRegisterModel{ModelID: id, Name: name, SpecVersion: 1}),
		h.tx(testValidator, &MsgAttestModel{ModelID: id}))
	for i, r := range res.TxResults {
		if r.Code != 0 {
			h.t.Fatalf("height %d: registering model %s: tx %d: %s", h.height, id, i, r.Log)
		}
	}
	var m Model
	h.query("model/"+id.String(), &m)
	if !m.Active {
		h.t.Fatalf("model %s not active after its attestation: %+v", id, m)
	}
}

// tx builds a signed transaction from name with the next nonce and fee 1.
func (h *harness) tx(name string, m Msg) []byte { return h.txFee(name, 1, m) }

func blockHash(height uint64) Hash { return sha256.Sum256(fmt.Appendf(nil, "block %d", height)) }

// block applies the next block and checks the supply invariant.
func (h *harness) block(txs ...[]byte) BlockResult {
	h.t.Helper()
	h.height++
	ctx := BlockContext{Height: h.height, Time: 1_700_000_000 + int64(h.height)*5, Hash: blockHash(h.height), Proposer: testAddr("erin")}
	res, err := h.l.FinalizeBlock(ctx, txs)
	if err != nil {
		h.t.Fatal(err)
	}
	h.checkSupply()
	for _, r := range res.TxResults {
		for _, ev := range r.Events {
			h.checkEvent(ev)
		}
	}
	for _, ev := range res.Events {
		h.checkEvent(ev)
	}
	for a := range h.nonces { // resync: rejected transactions use no nonce
		var acct Account
		get(h.l.Store(), keyAccount(a), &acct)
		h.nonces[a] = acct.Nonce
	}
	return res
}

// blocksUntil applies empty blocks until the last applied height is target.
func (h *harness) blocksUntil(target uint64) {
	for h.height < target {
		h.block()
	}
}

// ok applies one transaction in its own block and requires success.
func (h *harness) ok(raw []byte) Result {
	h.t.Helper()
	r := h.block(raw).TxResults[0]
	if r.Code != 0 {
		h.t.Fatalf("height %d: tx failed: %s", h.height, r.Log)
	}
	return r
}

// fails applies one transaction and requires it to fail with class want.
func (h *harness) fails(raw []byte, want error) Result {
	h.t.Helper()
	r := h.block(raw).TxResults[0]
	if r.Code != Code(want) {
		h.t.Fatalf("height %d: got code %d (%s), want %d (%v)", h.height, r.Code, r.Log, Code(want), want)
	}
	return r
}

func (h *harness) query(path string, v any) {
	h.t.Helper()
	b, err := h.l.Query(path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) balance(name string) uint64 {
	var a Account
	h.query("account/"+testAddr(name).String(), &a)
	return a.Balance
}

func (h *harness) stakeOf(name string) Stake {
	var s Stake
	h.query("stake/"+testAddr(name).String(), &s)
	return s
}

// checkSupply verifies that every unit minted and not burned is in exactly
// one place: balances, stakes, escrows, the reward pool or pending fees.
func (h *harness) checkSupply() {
	h.t.Helper()
	st := h.l.Store()
	var sum uint64
	for _, k := range st.Keys() {
		v, _ := st.Get(k)
		switch {
		case strings.HasPrefix(k, "acct/"):
			var a Account
			mustJSON(h.t, v, &a)
			sum += a.Balance
		case strings.HasPrefix(k, "stake/"):
			var s Stake
			mustJSON(h.t, v, &s)
			sum += s.Bonded
			for _, u := range s.Unbonding {
				sum += u.Amount
			}
		case strings.HasPrefix(k, "escrow/"):
			var e Escrow
			mustJSON(h.t, v, &e)
			sum += e.Fee
		}
	}
	var t Totals
	h.query("totals", &t)
	sum += t.Pool + t.Fees
	if sum != t.Minted-t.Burned {
		h.t.Fatalf("height %d: supply broken: held %d, minted %d - burned %d = %d", h.height, sum, t.Minted, t.Burned, t.Minted-t.Burned)
	}
}

func mustJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

var testModel = Hash(merkle.LeafHash([]byte("stories260K")))

// testReceipt is the unsigned receipt of signedReceipt.
func testReceipt(model Hash, nonce byte) *receipt.Receipt {
	return &receipt.Receipt{Version: receipt.Version, Spec: receipt.DefaultSpec, Model: merkle.Hash(model),
		Nonce: []byte{nonce}, Sampling: receipt.Sampling{TopP: 1, Steps: 4}, Prompt: []int{1, 2, 3}, Output: []int{4, 5},
		LogitsRoot: merkle.LeafHash([]byte("logits")), TraceRoot: merkle.LeafHash([]byte("trace"))}
}

// testRequest is the request hash of signedReceipt(_, _, testModel, nonce).
func testRequest(nonce byte) Hash { return RequestHash(testReceipt(testModel, nonce)) }

// signedReceipt returns a real receipt (internal/receipt) by worker for model.
func signedReceipt(t testing.TB, worker string, model Hash, nonce byte) ([]byte, Hash) {
	r := testReceipt(model, nonce)
	if err := r.Sign(testKey(worker)); err != nil {
		t.Fatal(err)
	}
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b, r.ID()
}
