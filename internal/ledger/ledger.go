package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/verdictnet/verdict/internal/dispute"
)

// BlockContext is what the consensus engine tells the state machine about
// the block being applied.
type BlockContext struct {
	Height   uint64  // height of this block (first block: 1)
	Time     int64   // block time, unix seconds
	Hash     Hash    // hash of this block: the chain's randomness for audits
	Proposer Address // account of the proposing validator; zero if unknown
	// Misbehaving lists the evidence of consensus misbehaviour (double
	// signing) in this block.
	Misbehaving []Misbehaviour
}

// Misbehaviour is evidence that a validator account misbehaved at Height.
// Evidence older than Params.EvidenceMaxAgeBlocks is ignored; unbonding
// lasts longer than that, so evidence the ledger honours always finds the
// stake the validator had when it misbehaved.
type Misbehaviour struct {
	Validator Address
	Height    uint64
}

// Event is an indexable record of something a transaction or block did.
type Event struct {
	Type  EventType `json:"type"`
	Attrs []Attr    `json:"attrs"`
}

// Attr is one event attribute.
type Attr struct {
	Key   AttrKey `json:"key"`
	Value string  `json:"value"`
}

// Result is the outcome of one transaction.
type Result struct {
	Code   uint32  // 0: success; see Code
	Log    string  // the error, when Code != 0
	Events []Event // the "tx" event once the fee is paid, then the message's events if it succeeded
	// RequiredFee is the fee the transaction needs (Params.RequiredFee of
	// its size and, once its message ran, the state it grows); a
	// transaction that paid less fails with ErrFee.
	RequiredFee uint64
	growth      uint64 // the state growth of its message, once it ran
}

// ReceiptInfo is what the ledger needs from a verified receipt.
type ReceiptInfo struct {
	ID      Hash    // receipt id: hash of its canonical encoding
	Worker  Address // the signing worker
	ModelID Hash
	Request Hash // RequestHash of the receipt: what an escrow commits to
	// Tokens is the receipt's prompt and output token count (what an
	// escrow's PricePerToken is paid for) and Steps its step count.
	Tokens, Steps uint64
	// RequestAt, if set, is the receipt's RequestHash with another step
	// count (MsgPublishReceipt.RequestSteps); nil: not supported.
	RequestAt func(steps uint64) Hash
}

// ReceiptVerifier parses a receipt's canonical bytes and checks its
// signature. The proofs layer (internal/receipt) implements it.
type ReceiptVerifier interface {
	VerifyReceipt(receipt []byte) (ReceiptInfo, error)
}

// OpeningChecker checks a worker's openings of the cells an audit selected
// (seed and cell count) against the receipt's commitments. An error
// wrapping ErrModelUnavailable means this node cannot check them (it lacks
// the model); the block then fails instead of judging the openings.
type OpeningChecker interface {
	CheckOpenings(receipt []byte, seed Hash, cells uint32, openings []byte) error
}

// DisputeGame is the bisection game with its referee (internal/dispute),
// run by the ledger one transaction at a time. Its state is opaque to the
// ledger and stored in the dispute record; every call is pure.
//
// Start begins a game between the receipt's worker and a challenger who
// committed to commitment, at height, each answer being due moveWindow
// blocks after its query (the chain's parameter). Step delivers one
// party's message at height; an error rejects the transaction and leaves
// the game unchanged (a message the game judges a loss, such as a bad
// proof or equivocation, is not an error: it shows in the status). An
// error wrapping ErrModelUnavailable (from any method) means this node
// cannot evaluate the game (it lacks the model) and fails the block
// instead of deciding it. Tick tells the game the height so that a party
// that missed its deadline loses. Status reports whether the
// game is over, who lost, and the last height at which the outstanding
// answer counts.
type DisputeGame interface {
	Start(receipt, commitment []byte, height, moveWindow uint64) (state []byte, err error)
	Step(state []byte, from Side, msg []byte, height uint64) (next []byte, err error)
	Tick(state []byte, height uint64) (next []byte, err error)
	Status(state []byte) (DisputeStatus, error)
}

// DisputeStatus is where a dispute game stands.
type DisputeStatus struct {
	Done     bool
	Lost     [2]bool // indexed by Side-1: [worker, challenger]
	Deadline uint64  // while not done: answers count up to this height
	// Faults are the codes of why the losers lost (indexed as Lost; ""
	// for a side that did not lose), Void why a game that ended with no
	// loser did. They are what the dispute record keeps (consensus data).
	Faults [2]dispute.Fault
	Void   dispute.Fault
	// Reason says the same in words, for people: the dispute_settled
	// event carries it, the state never does.
	Reason string
}

// Hooks connect the ledger to the proofs layer. A nil hook makes the
// transactions that need it fail.
type Hooks struct {
	Receipts ReceiptVerifier
	Openings OpeningChecker
	Disputes DisputeGame
	// Models, when set, says which models this node holds, for the start
	// check of MissingModels.
	Models ModelHolder
}

// ModelHolder reports whether a node holds a model (by model id).
type ModelHolder interface {
	Holds(id Hash) bool
}

// MissingModels returns the registered models that have receipts in their
// challenge window (published or challenged) in the committed state and
// that holds does not hold, in model id order. A node that lacks one of
// them cannot check the audit openings or referee the disputes those
// receipts may still get, so it must not start as a validator (see
// docs/ledger.md, "Joining as a validator").
func (l *Ledger) MissingModels(holds func(Hash) bool) []Model {
	st := l.store.Committed()
	keys := l.store.Keys()
	need := map[Hash]bool{}
	for _, k := range keys {
		if !strings.HasPrefix(k, "receipt/") {
			continue
		}
		var r ReceiptRecord
		if !get(st, k, &r) || (r.Status != StatusPublished && r.Status != StatusChallenged) {
			continue
		}
		if _, seen := need[r.ModelID]; !seen {
			need[r.ModelID] = !holds(r.ModelID)
		}
	}
	var out []Model
	for _, k := range keys {
		var m Model
		if strings.HasPrefix(k, "model/") && get(st, k, &m) && need[m.ModelID] {
			out = append(out, m)
		}
	}
	return out
}

// Ledger applies blocks of transactions to a state.
type Ledger struct {
	store *MemStore
	hooks Hooks
	// fatal is the first ErrModelUnavailable a hook returned while
	// applying the current block (or checking the current transaction).
	fatal error
	seen  memo // transactions whose signature verified (CheckTx, then the block)
	rcpts memo // receipts that verified, with what they said
	// params caches the decoded parameters with their stored bytes (they
	// are fixed at genesis; every unit of work reads them).
	params atomic.Pointer[cachedParams]
}

type cachedParams struct {
	raw []byte
	p   Params
}

// readParams decodes the parameters stored in st, from the cache when
// their bytes are the ones it holds.
func (l *Ledger) readParams(st Store) Params {
	raw, ok := st.Get(keyParams)
	if !ok {
		return Params{}
	}
	if c := l.params.Load(); c != nil && bytes.Equal(c.raw, raw) {
		return c.p
	}
	var p Params
	get(st, keyParams, &p)
	l.params.Store(&cachedParams{raw: append([]byte{}, raw...), p: p})
	return p
}

// memo remembers results of pure checks by the SHA-256 of their input, so
// a transaction checked in CheckTx is not verified again in its block. It
// only saves time: a miss recomputes the same answer.
type memo struct {
	mu sync.Mutex
	m  map[Hash]any
}

const memoMax = 1 << 16

func (m *memo) get(k Hash) (any, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.m[k]
	return v, ok
}

func (m *memo) put(k Hash, v any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil || len(m.m) >= memoMax {
		m.m = map[Hash]any{}
	}
	m.m[k] = v
}

// New returns a ledger over st (empty for a new chain, or a persisted state).
func New(st *MemStore, hooks Hooks) *Ledger { return &Ledger{store: st, hooks: hooks} }

// decode is DecodeTx with the signature check memoized.
func (l *Ledger) decode(raw []byte) (*Tx, error) {
	k := Hash(sha256.Sum256(raw))
	if _, ok := l.seen.get(k); ok {
		return decodeTx(raw, false)
	}
	tx, err := decodeTx(raw, true)
	if err == nil {
		l.seen.put(k, true)
	}
	return tx, err
}

// verifyReceipt is hooks.Receipts.VerifyReceipt, memoized.
func (l *Ledger) verifyReceipt(b []byte) (ReceiptInfo, error) {
	k := Hash(sha256.Sum256(b))
	if v, ok := l.rcpts.get(k); ok {
		return v.(ReceiptInfo), nil
	}
	info, err := l.hooks.Receipts.VerifyReceipt(b)
	if err == nil {
		l.rcpts.put(k, info)
	}
	return info, err
}

// Store returns the committed store.
func (l *Ledger) Store() *MemStore { return l.store }

// InitGenesis writes the genesis state.
func (l *Ledger) InitGenesis(g Genesis) error {
	if _, ok := l.store.Get(keyChain); ok {
		return errors.New("genesis: state is not empty")
	}
	if g.ChainID == "" || len(g.ChainID) > 64 {
		return errors.New("genesis: chainId must be 1..64 bytes")
	}
	if err := g.Params.Validate(); err != nil {
		return fmt.Errorf("genesis: %w", err)
	}
	c := newCache(l.store)
	var t Totals
	seen := map[Address]bool{}
	for i, a := range g.Accounts {
		if seen[a.Address] {
			return fmt.Errorf("genesis: account %d (%s) listed twice", i, a.Address)
		}
		seen[a.Address] = true
		sum, carry := bits.Add64(a.Balance, a.Bonded, 0)
		m, carry2 := bits.Add64(t.Minted, sum, 0)
		if carry != 0 || carry2 != 0 {
			return fmt.Errorf("genesis: account %d: allocation overflows uint64", i)
		}
		t.Minted = m
		put(c, keyAccount(a.Address), Account{Balance: a.Balance})
		if a.Bonded > 0 {
			put(c, keyStake(a.Address), Stake{Bonded: a.Bonded})
		}
	}
	put(c, keyTotals, t)
	put(c, keyParams, g.Params)
	put(c, keyChain, ChainInfo{ChainID: g.ChainID, NextAgent: 1})
	c.Write()
	return nil
}

// Info returns the chain id, last applied height and time.
func (l *Ledger) Info() ChainInfo {
	var ci ChainInfo
	get(l.store, keyChain, &ci)
	return ci
}

// Params returns the chain parameters.
func (l *Ledger) Params() Params { return l.readParams(l.store) }

// AppHash returns the Merkle root over the state.
func (l *Ledger) AppHash() Hash { return l.store.Root() }

// BlockResult is the outcome of FinalizeBlock.
type BlockResult struct {
	TxResults        []Result
	Events           []Event // block events (audits selected, payouts, slashes, ...)
	ValidatorUpdates []ValidatorUpdate
	AppHash          Hash
}

// FinalizeBlock applies a block: block-start work (audit selection), every
// transaction in order, block-end work (deadlines, payouts, rewards), and
// returns the new app hash. It changes the in-memory state only; the caller
// persists it.
//
// When a hook reports ErrModelUnavailable (the block needs a model this
// node does not hold), FinalizeBlock returns an error wrapping it and
// leaves the state as it was: a node that cannot compute a block's result
// stops rather than commit a result that differs from the other nodes'.
func (l *Ledger) FinalizeBlock(ctx BlockContext, txs [][]byte) (BlockResult, error) {
	ci := l.Info()
	if ci.ChainID == "" {
		return BlockResult{}, errors.New("finalize block: no genesis")
	}
	if ctx.Height != ci.Height+1 {
		return BlockResult{}, fmt.Errorf("finalize block: height %d, want %d", ctx.Height, ci.Height+1)
	}
	l.fatal = nil
	blk := newCache(l.store)
	var res BlockResult
	e := l.exec(blk, ctx)
	e.beginBlock()
	res.Events = append(res.Events, e.events...)
	for _, raw := range txs {
		res.TxResults = append(res.TxResults, l.deliver(blk, ctx, raw))
	}
	e = l.exec(blk, ctx)
	e.endBlock()
	res.ValidatorUpdates = e.validatorUpdates()
	res.Events = append(res.Events, e.events...)
	if err := l.fatal; err != nil {
		l.fatal = nil
		return BlockResult{}, fmt.Errorf("finalize block %d: this node cannot apply it: %w", ctx.Height, err)
	}
	get(blk, keyChain, &ci)
	ci.Height, ci.Time = ctx.Height, ctx.Time
	put(blk, keyChain, ci)
	blk.Write()
	res.AppHash = l.store.Root()
	return res, nil
}

// DeliverTx applies one transaction outside FinalizeBlock (for tests and
// tools); FinalizeBlock is the normal entry point.
func (l *Ledger) DeliverTx(ctx BlockContext, raw []byte) Result {
	l.fatal = nil
	return l.deliver(l.store, ctx, raw)
}

func (l *Ledger) deliver(st Store, ctx BlockContext, raw []byte) Result {
	tx, err := l.decode(raw)
	if err != nil {
		return fail(err)
	}
	return l.apply(st, ctx, tx, uint64(len(raw)), false, false)
}

// apply runs tx, of size encoded bytes, against st. A tx that passes the
// envelope checks pays its fee and uses its nonce even if its message
// fails, or grows the state by more than its fee pays for. With estimate
// (fee estimation on a scratch store) the fee is neither checked nor
// charged, so that the message runs and its state growth is measured.
// With check (the mempool's CheckTx, its rechecks and fee estimates) the
// proofs a block checks anyway and that decide nothing but the sender's
// own standing are left to the block (postOpenings).
func (l *Ledger) apply(st Store, ctx BlockContext, tx *Tx, size uint64, estimate, check bool) Result {
	envelope := newCache(st)
	e := l.exec(envelope, ctx)
	if tx.ChainID != e.chain.ChainID {
		return fail(fmt.Errorf("%w: transaction is for %q, this chain is %q", ErrChainID, tx.ChainID, e.chain.ChainID))
	}
	fee := tx.Fee
	if estimate {
		fee = 0
	} else if need := e.params.RequiredFee(size, 0); tx.Fee < need {
		r := fail(fmt.Errorf("%w: fee %d below %d for %d transaction bytes", ErrFee, tx.Fee, need, size))
		r.RequiredFee = need
		return r
	}
	acct, _ := e.account(tx.Signer)
	// An estimate runs the message whatever its nonce: a client estimates
	// a batch before it knows each one's (client.EstimateFees signs them
	// with the largest), and a nonce refused here measured no state
	// growth, so that the estimate was the bytes' fee alone and a
	// publishReceipt of more than a fee unit of receipt was refused.
	if tx.Nonce != acct.Nonce && !estimate {
		return fail(fmt.Errorf("%w: signer %s sent nonce %d, expected %d", ErrNonce, tx.Signer, tx.Nonce, acct.Nonce))
	}
	if acct.Balance < fee {
		return fail(fmt.Errorf("%w: signer %s has %d, fee is %d", ErrFunds, tx.Signer, acct.Balance, fee))
	}
	acct.Balance -= fee
	acct.Nonce = tx.Nonce + 1
	put(envelope, keyAccount(tx.Signer), acct)
	e.totals.Fees += fee // cannot overflow: bounded by the supply
	e.saveTotals()

	msg := newCache(envelope)
	m := l.exec(msg, ctx)
	m.signer, m.tx, m.check = tx.Signer, tx, check
	err := m.handle()
	need, growth := e.params.RequiredFee(size, 0), uint64(0)
	if err == nil {
		growth = msg.growth()
		if need = e.params.RequiredFee(size, growth); tx.Fee < need && !estimate {
			err = fmt.Errorf("%w: fee %d below %d for %d transaction bytes and %d bytes of state growth", ErrFee, tx.Fee, need, size, growth)
		}
	}
	if err == nil {
		msg.Write()
	}
	envelope.Write()
	ev := Event{Type: EventTx, Attrs: []Attr{{AttrKind, tx.Msg.Kind()}, {AttrSigner, tx.Signer.String()}, {AttrNonce, u64(tx.Nonce)}, {AttrFee, u64(tx.Fee)}}}
	if err != nil {
		r := fail(fmt.Errorf("%s: %w", tx.Msg.Kind(), err))
		r.Events = []Event{ev} // the fee was paid
		r.RequiredFee, r.growth = need, growth
		return r
	}
	return Result{Events: append([]Event{ev}, m.events...), RequiredFee: need, growth: growth}
}

func fail(err error) Result { return Result{Code: Code(err), Log: err.Error()} }

// Checker validates transactions for the mempool. It keeps a check state:
// the committed state plus the effects of the transactions it has accepted
// since the last Reset, so that a transaction may depend on one still in
// the mempool (the next nonce, a model registered just before). The
// committed state is never changed.
//
// It also limits each sender to Params.MaxPendingBytes of transactions
// accepted since the last Reset (the mempool's content once CometBFT has
// rechecked it), so that one account cannot fill the mempool.
type Checker struct {
	l       *Ledger
	st      *cache
	pending map[Address]uint64 // bytes accepted per sender since Reset
}

// NewChecker returns a checker over l.
func NewChecker(l *Ledger) *Checker {
	return &Checker{l: l, st: newCache(l.store), pending: map[Address]uint64{}}
}

// Reset drops the check state (after a commit, before rechecking the
// mempool).
func (c *Checker) Reset() { c.st, c.pending = newCache(c.l.store), map[Address]uint64{} }

// Check decodes raw and executes it against the check state as if it were
// in the next block; it is kept there only when it succeeds.
func (c *Checker) Check(raw []byte) Result {
	tx, err := c.l.decode(raw)
	if err != nil {
		return fail(err)
	}
	p := c.l.readParams(c.st)
	if c.pending[tx.Signer]+uint64(len(raw)) > p.MaxPendingBytes {
		return fail(fmt.Errorf("%w: %s has %d bytes waiting, limit %d", ErrPending, tx.Signer, c.pending[tx.Signer], p.MaxPendingBytes))
	}
	tmp := newCache(c.st)
	r := c.run(tmp, tx, raw, false)
	if r.Code == 0 {
		tmp.Write()
		c.pending[tx.Signer] += uint64(len(raw))
	}
	return r
}

func (c *Checker) run(st Store, tx *Tx, raw []byte, estimate bool) Result {
	ci := c.l.Info()
	ctx := BlockContext{Height: ci.Height + 1, Time: ci.Time}
	c.l.fatal = nil
	r := c.l.apply(st, ctx, tx, uint64(len(raw)), estimate, true)
	c.l.fatal = nil // the transaction failed with ErrCheck; nothing to halt
	return r
}

// FeeEstimate is what EstimateFee says of a transaction.
type FeeEstimate struct {
	// RequiredFee is the fee it needs once re-signed with that fee (its
	// size plus FeeMargin bytes, and the state its message grows).
	RequiredFee uint64 `json:"requiredFee"`
	Code        uint32 `json:"code"` // what CheckTx would answer now
	Log         string `json:"log,omitempty"`
}

// FeeMargin is the growth in size EstimateFee allows for a transaction
// re-signed with a larger fee (more digits).
const FeeMargin = 32

// EstimateFee runs raw against the check state as Check does, but
// without checking or charging its fee, keeping nothing, and returns the
// fee it needs (and what its message would answer: Code, Log): a client
// signs with a guess, asks, and re-signs with the answer.
func (c *Checker) EstimateFee(raw []byte) FeeEstimate {
	tx, err := c.l.decode(raw)
	if err != nil {
		r := fail(err)
		return FeeEstimate{Code: r.Code, Log: r.Log}
	}
	r := c.run(newCache(c.st), tx, raw, true)
	p := c.l.readParams(c.st)
	need := p.RequiredFee(uint64(len(raw))+FeeMargin, r.growth)
	return FeeEstimate{RequiredFee: need, Code: r.Code, Log: r.Log}
}

// exec is one unit of work against a store.
type exec struct {
	l      *Ledger
	st     Store
	ctx    BlockContext
	chain  ChainInfo
	params Params
	totals Totals
	signer Address
	tx     *Tx
	events []Event
	check  bool // for the mempool, not a block: see apply
}

func (l *Ledger) exec(st Store, ctx BlockContext) *exec {
	e := &exec{l: l, st: st, ctx: ctx, params: l.readParams(st)}
	get(st, keyChain, &e.chain)
	get(st, keyTotals, &e.totals)
	return e
}

func (e *exec) saveTotals() { put(e.st, keyTotals, e.totals) }

// unavailable reports whether a hook's error says this node lacks what it
// needs to decide (ErrModelUnavailable), and records the first such error
// so that FinalizeBlock fails instead of deciding.
func (e *exec) unavailable(err error) bool {
	if !errors.Is(err, ErrModelUnavailable) {
		return false
	}
	if e.l.fatal == nil {
		e.l.fatal = err
	}
	return true
}

func (e *exec) emit(typ EventType, attrs ...Attr) {
	e.events = append(e.events, Event{Type: typ, Attrs: attrs})
}

func (e *exec) account(a Address) (Account, bool) {
	var acct Account
	ok := get(e.st, keyAccount(a), &acct)
	return acct, ok
}

func (e *exec) credit(a Address, amt uint64) error {
	acct, _ := e.account(a)
	b, carry := bits.Add64(acct.Balance, amt, 0)
	if carry != 0 {
		return fmt.Errorf("%w: balance of %s would overflow", ErrInvalid, a)
	}
	acct.Balance = b
	put(e.st, keyAccount(a), acct)
	return nil
}

func (e *exec) debit(a Address, amt uint64) error {
	acct, _ := e.account(a)
	if acct.Balance < amt {
		return fmt.Errorf("%w: %s has %d, needs %d", ErrFunds, a, acct.Balance, amt)
	}
	acct.Balance -= amt
	put(e.st, keyAccount(a), acct)
	return nil
}

// A queue of ids due at height h is a count under keyQueue(kind, h) and
// one key per item, so that pushing costs O(1).
func (e *exec) queuePush(kind string, h uint64, id [32]byte) {
	var n uint64
	get(e.st, keyQueue(kind, h), &n)
	e.st.Set(keyQueueItem(kind, h, n), append([]byte{}, id[:]...))
	put(e.st, keyQueue(kind, h), n+1)
}

// queueTake returns and deletes the ids queued for h, in push order.
func (e *exec) queueTake(kind string, h uint64) []Hash {
	var n uint64
	if !get(e.st, keyQueue(kind, h), &n) {
		return nil
	}
	ids := make([]Hash, 0, n)
	for i := uint64(0); i < n; i++ {
		k := keyQueueItem(kind, h, i)
		if b, ok := e.st.Get(k); ok && len(b) == 32 {
			ids = append(ids, Hash(b))
		}
		e.st.Delete(k)
	}
	e.st.Delete(keyQueue(kind, h))
	return ids
}

// put stores v as JSON under key.
func put(st Store, key string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic("ledger: encoding state record " + key + ": " + err.Error())
	}
	st.Set(key, b)
}

// get decodes the JSON under key into v and reports whether it was there.
// State is written only by put, so a record that does not decode is a
// corrupt store, which is fatal.
func get(st Store, key string, v any) bool {
	b, ok := st.Get(key)
	if !ok {
		return false
	}
	if err := json.Unmarshal(b, v); err != nil {
		panic("ledger: corrupt state record " + key + ": " + err.Error())
	}
	return true
}

func u64(v uint64) string { return fmt.Sprint(v) }

// mulBps returns v*bps/10000 without overflow.
func mulBps(v uint64, bps uint32) uint64 {
	hi, lo := bits.Mul64(v, uint64(bps))
	q, _ := bits.Div64(hi, lo, 10000)
	return q
}

// derive hashes a domain tag and parts into an id.
func derive(tag string, parts ...[]byte) Hash {
	h := sha256.New()
	h.Write([]byte(tag))
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	var out Hash
	h.Sum(out[:0])
	return out
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
