package outbox

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/verdictnet/verdict/internal/ledger"
)

// Record is the durable state of one receipt in the outbox: what a
// restart resumes from. Its JSON is the file outbox/RECEIPT_ID.json
// (docs/ledger.md).
type Record struct {
	ReceiptID string `json:"receiptId"`
	Receipt   []byte `json:"receipt"`
	// Requester pays Fee into an escrow for the receipt (an account name
	// the driver's escrower understands). EscrowID is the escrow the
	// receipt is published against once it is open.
	Requester string      `json:"requester"`
	Fee       uint64      `json:"fee"`
	EscrowID  ledger.Hash `json:"escrowId,omitzero"`
	// RequestSteps, when not zero, is the step count of the request the
	// escrow (opened before the generation: x402) was bound to, for a
	// receipt that ended early (MsgPublishReceipt.RequestSteps).
	RequestSteps uint64 `json:"requestSteps,omitempty"`
	// EscrowTx is the signed transaction opening EscrowID, recorded
	// before it is broadcast and kept until the ledger shows the escrow
	// (or shows that the transaction can never commit).
	EscrowTx []byte `json:"escrowTx,omitempty"`
	// MaybeEscrow is an escrow that may have been opened, from outboxes
	// written before EscrowTx existed; it is adopted if the ledger has it.
	MaybeEscrow ledger.Hash `json:"maybeEscrow,omitzero"`
	// Attempts counts failed steps (durable: a restart does not reset the
	// give-up limit).
	Attempts int    `json:"attempts"`
	Failed   string `json:"failed,omitempty"`
}

// Config tunes a Machine. Zero fields take their defaults.
type Config struct {
	// Worker is the worker's account: an escrow is adopted only if it
	// names it.
	Worker ledger.Address
	// MaxAttempts failed steps give a receipt up (default 40).
	MaxAttempts int
	// WaitBlocks is how many blocks a sent transaction is given before
	// the receipt is looked at again (default 4: under load a transaction
	// may wait a few blocks in the mempool, and a look that finds the
	// receipt missing sends it again); Resend bounds the wait when blocks
	// stop (default 5 s).
	WaitBlocks int64
	Resend     time.Duration
	// ModelRetry is the wait of a receipt whose model is not active yet
	// (default 2 s; it does not count as an attempt). NonceRetry is the
	// wait after a transaction refused for its nonce or because its
	// sender has too many bytes in the mempool (default 250 ms;
	// MaxNonceRetries of them in a row count as one attempt, default 40).
	ModelRetry      time.Duration
	NonceRetry      time.Duration
	MaxNonceRetries int
	// MaxStarts bounds the receipts a Tick starts a step for (default
	// 1024): the size of one round of the driver's batches.
	MaxStarts int
}

func (c *Config) defaults() {
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 40
	}
	if c.WaitBlocks <= 0 {
		c.WaitBlocks = 4
	}
	if c.Resend <= 0 {
		c.Resend = 5 * time.Second
	}
	if c.ModelRetry <= 0 {
		c.ModelRetry = 2 * time.Second
	}
	if c.NonceRetry <= 0 {
		c.NonceRetry = 250 * time.Millisecond
	}
	if c.MaxNonceRetries <= 0 {
		c.MaxNonceRetries = 40
	}
	if c.MaxStarts <= 0 {
		c.MaxStarts = 1024
	}
}

// Machine is the outbox: the state of every receipt not yet on the ledger.
// It takes events (Step) and returns the actions they imply; it does no
// I/O, reads no clock (Tick carries the time and the height) and starts
// no goroutine. It is not safe for concurrent use: the driver serializes
// its calls.
//
// The driver's contract: it carries out the actions of one Step in order,
// and a Persist before anything after it (a failed Persist is reported as
// Failed, and the entry's later actions are dropped); every action that
// asks the ledger or sends gets exactly one answering event (ReceiptState,
// EscrowState, EscrowSigned then Sent, Sent, Refused or Failed), and no
// other action is started for that receipt meanwhile (the Machine starts
// none).
type Machine struct {
	cfg     Config
	entries map[string]*entry
	seq     uint64
	now     time.Time
	height  int64
}

// query is which question an entry's outstanding QueryEscrow asked.
type query int

const (
	askSettle query = iota + 1 // the recorded escrow transaction's fate
	askMaybe                   // an escrow from an old outbox: adopt it?
	askGone                    // a publish was refused for its escrow: is it gone?
)

// entry is a record with the volatile state a restart drops.
type entry struct {
	rec Record
	seq uint64 // submission order
	req ledger.Hash

	busy   bool  // an action is out; its answer is not in yet
	asked  query // the outstanding QueryEscrow's question
	signed bool  // EscrowSigned seen, the broadcast's Sent not yet
	// check: ask the ledger for the receipt before anything else (after
	// a restart, a submission and every send).
	check bool
	// awaiting: the escrow transaction was taken by the mempool in this
	// run; the receipt is published once its block is seen
	// (EscrowOpened), or looked at after WaitBlocks. inPool: the escrow
	// was seen opened at its id, so the receipt goes out without asking.
	awaiting, inPool bool
	// sending: an escrow broadcast's answer is out; opened: its block was
	// seen meanwhile.
	sending, opened bool

	due        time.Time // not stepped before
	sentAt     time.Time // waiting for a block since (zero: not waiting)
	sentHeight int64
	nonceTries int
}

// New returns an empty Machine.
func New(cfg Config) *Machine {
	cfg.defaults()
	return &Machine{cfg: cfg, entries: map[string]*entry{}}
}

// Len is the number of receipts in the outbox.
func (m *Machine) Len() int { return len(m.entries) }

// Has reports whether receipt id is in the outbox.
func (m *Machine) Has(id string) bool { return m.entries[id] != nil }

// Record returns a copy of receipt id's record.
func (m *Machine) Record(id string) (Record, bool) {
	e := m.entries[id]
	if e == nil {
		return Record{}, false
	}
	return e.rec, true
}

// Event is an input of Step.
type Event interface{ event() }

// Submit puts a receipt in the outbox (a second Submit of an id the outbox
// holds does nothing). Actions: Persist, answered Saved once it is done
// (and only then is the client answered; nothing is started for the
// receipt before), or Abandon when it failed; or GiveUp for a receipt that
// cannot be read.
type Submit struct{ Record Record }

// Saved answers the Persist of a Submit: the receipt is on disk.
type Saved struct{ ID string }

// EscrowOpened says a block opened escrow EscrowID for this worker (the
// follower saw its escrow_opened event): a receipt waiting for it is
// published at once. (The receipt goes out in a block after its escrow's:
// in the escrow's own block it could be ordered first, when the proposer
// takes the worker's transactions ahead for a deadline transaction of
// its, and fail.)
type EscrowOpened struct{ EscrowID ledger.Hash }

// Restore is a restart: the records read back from disk replace whatever
// the Machine held; every receipt is looked at again on the next Tick.
type Restore struct{ Records []Record }

// Tick is the passing of time: Now and the ledger's latest height (0 when
// unknown). Due receipts start their next step.
type Tick struct {
	Now    time.Time
	Height int64
}

// ReceiptState answers QueryReceipt: whether the ledger holds the receipt.
type ReceiptState struct {
	ID    string
	Found bool
}

// EscrowState answers QueryEscrow: the paying account's next nonce (read
// first, when the query named a Payer) and the escrow under the id (found
// false: no such escrow).
type EscrowState struct {
	ID           string
	AccountNonce uint64
	Found        bool
	Escrow       ledger.Escrow
}

// EscrowSigned answers OpenEscrow with the signed transaction, before it
// is broadcast. Action: Persist. The driver broadcasts Tx only once that
// Persist is done, and then answers with Sent (or Failed: not broadcast).
type EscrowSigned struct {
	ID string
	Tx *ledger.Tx
}

// Outcome is what a broadcast came to.
type Outcome int

const (
	// Accepted: the mempool took the transaction.
	Accepted Outcome = iota + 1
	// MaybeSent: the node did not answer; the transaction may be in its
	// mempool.
	MaybeSent
	// Rejected: CheckTx refused it, with Sent.Code.
	Rejected
)

// TxKind says which of a receipt's transactions a Sent is about.
type TxKind int

const (
	// EscrowTx opens the receipt's escrow.
	EscrowTx TxKind = iota + 1
	// PublishTx publishes the receipt.
	PublishTx
)

// Sent answers OpenEscrow (after EscrowSigned), Broadcast and Publish.
type Sent struct {
	ID      string
	Kind    TxKind
	Outcome Outcome
	Code    uint32 // ledger.Code of a rejection
	Log     string
}

// Refused answers OpenEscrow when no escrow can ever be opened for the
// receipt (no key for its requester, say): it is given up.
type Refused struct {
	ID     string
	Reason string
}

// Failed answers any action that could not be carried out (the ledger
// could not be asked, a write failed): the receipt backs off and counts
// an attempt.
type Failed struct {
	ID  string
	Err string
}

// Published says the ledger holds the receipt (the follower saw its
// receipt_published event).
type Published struct{ ID string }

// Cancelled answers an action the driver stopped (it is shutting down):
// the receipt is idle again, no attempt counted.
type Cancelled struct{ ID string }

// Abandon withdraws a submission whose Persist failed (the client is
// told so and pays nothing): the Machine forgets the receipt.
type Abandon struct{ ID string }

func (Submit) event()       {}
func (Restore) event()      {}
func (Tick) event()         {}
func (ReceiptState) event() {}
func (EscrowState) event()  {}
func (EscrowSigned) event() {}
func (Sent) event()         {}
func (Refused) event()      {}
func (Failed) event()       {}
func (Published) event()    {}
func (Saved) event()        {}
func (EscrowOpened) event() {}
func (Cancelled) event()    {}
func (Abandon) event()      {}

// Action is an output of Step, for the driver to carry out.
type Action interface{ action() }

// Persist writes the record durably (outbox/ID.json).
type Persist struct{ Record Record }

// QueryReceipt asks the ledger whether it holds receipt ID (answer:
// ReceiptState).
type QueryReceipt struct{ ID string }

// QueryEscrow asks the ledger for escrow Escrow and, when Payer is not
// zero, first for Payer's next nonce (answer: EscrowState).
type QueryEscrow struct {
	ID     string
	Escrow ledger.Hash
	Payer  ledger.Address
}

// OpenEscrow asks the driver to build the escrow message for Record (its
// escrower), sign it with the payer's next nonce and answer EscrowSigned;
// then, once the Persist it returns is done, to broadcast it and answer
// Sent.
type OpenEscrow struct{ Record Record }

// Broadcast sends the recorded escrow transaction again, the same bytes
// (answer: Sent).
type Broadcast struct {
	ID string
	Tx []byte
}

// Publish signs and broadcasts the worker's MsgPublishReceipt of Receipt
// against EscrowID, with RequestSteps (the record's; zero for a receipt
// that ran its request's steps) (answer: Sent).
type Publish struct {
	ID           string
	EscrowID     ledger.Hash
	Receipt      []byte
	RequestSteps uint64
}

// Remove: the ledger holds the receipt; the driver deletes its record.
type Remove struct{ Record Record }

// GiveUp: the receipt will not be published; the driver keeps Record
// (with its Failed reason) aside and deletes it from the outbox.
type GiveUp struct{ Record Record }

func (Persist) action()      {}
func (QueryReceipt) action() {}
func (QueryEscrow) action()  {}
func (OpenEscrow) action()   {}
func (Broadcast) action()    {}
func (Publish) action()      {}
func (Remove) action()       {}
func (GiveUp) action()       {}

// Step applies one event and returns the actions it implies, in the order
// the driver must carry them out. Events about receipts the outbox no
// longer holds return nothing.
func (m *Machine) Step(ev Event) []Action {
	switch ev := ev.(type) {
	case Submit:
		return m.submit(ev.Record)
	case Restore:
		m.entries = map[string]*entry{}
		recs := slices.Clone(ev.Records)
		slices.SortFunc(recs, func(a, b Record) int { return cmp.Compare(a.ReceiptID, b.ReceiptID) })
		var out []Action
		for _, r := range recs {
			out = append(out, m.submit(r)...)
			if e := m.entries[r.ReceiptID]; e != nil {
				e.busy = false // on disk already
			}
		}
		// Records come from disk: nothing to write again.
		return slices.DeleteFunc(out, func(a Action) bool { _, ok := a.(Persist); return ok })
	case Tick:
		return m.tick(ev)
	case EscrowOpened:
		return m.escrowOpened(ev.EscrowID)
	}
	id := eventID(ev)
	e := m.entries[id]
	if e == nil {
		return nil
	}
	switch ev.(type) {
	case Published:
		delete(m.entries, id)
		return []Action{Remove{e.rec}}
	case Abandon:
		delete(m.entries, id)
		return nil
	case Saved:
		e.busy = false
		return nil
	}
	e.busy = false
	switch ev := ev.(type) {
	case ReceiptState:
		if ev.Found {
			delete(m.entries, id)
			return []Action{Remove{e.rec}}
		}
		e.check = false
		return m.advance(e)
	case EscrowState:
		return m.escrowState(e, ev)
	case EscrowSigned:
		e.busy, e.signed, e.sending = true, true, true
		e.rec.EscrowTx = ev.Tx.Encode()
		e.rec.EscrowID = ledger.EscrowID(ev.Tx.Signer, ev.Tx.Nonce)
		return []Action{Persist{e.rec}}
	case Sent:
		return m.sent(e, ev)
	case Refused:
		return m.giveUp(e, ev.Reason)
	case Failed:
		m.unsign(e)
		return m.fail(e, ev.Err)
	case Cancelled:
		m.unsign(e)
		e.asked = 0
		return nil
	}
	return nil
}

// unsign drops a transaction signed (and recorded, or not) but never
// broadcast; a restart that finds it on disk settles it like any other.
func (m *Machine) unsign(e *entry) {
	e.sending, e.opened = false, false
	if e.signed {
		e.signed = false
		e.rec.EscrowTx, e.rec.EscrowID = nil, ledger.Hash{}
	}
}

func eventID(ev Event) string {
	switch ev := ev.(type) {
	case ReceiptState:
		return ev.ID
	case EscrowState:
		return ev.ID
	case EscrowSigned:
		return ev.ID
	case Sent:
		return ev.ID
	case Refused:
		return ev.ID
	case Failed:
		return ev.ID
	case Published:
		return ev.ID
	case Cancelled:
		return ev.ID
	case Abandon:
		return ev.ID
	case Saved:
		return ev.ID
	}
	return ""
}

func (m *Machine) submit(r Record) []Action {
	if m.entries[r.ReceiptID] != nil {
		return nil
	}
	m.seq++
	e := &entry{rec: r, seq: m.seq, check: true}
	m.entries[r.ReceiptID] = e
	if _, err := ledger.ParseHash(r.ReceiptID); err != nil {
		return m.giveUp(e, "bad receipt id: "+err.Error())
	}
	req, err := ledger.ReceiptRequest(r.Receipt)
	if err != nil {
		return m.giveUp(e, "unreadable receipt: "+err.Error())
	}
	e.req = req
	e.busy = true // until Saved
	return []Action{Persist{r}}
}

func (m *Machine) tick(t Tick) []Action {
	m.now = t.Now
	if t.Height > m.height {
		m.height = t.Height
	}
	var due []*entry
	for _, e := range m.entries {
		if e.busy || t.Now.Before(e.due) {
			continue
		}
		if !e.sentAt.IsZero() && t.Now.Sub(e.sentAt) < m.cfg.Resend && (e.awaiting || m.height < e.sentHeight+m.cfg.WaitBlocks) {
			// Sent: give it its block. An escrow awaited is waited for
			// Resend (the follower's EscrowOpened may lag the height).
			continue
		}
		due = append(due, e)
	}
	slices.SortFunc(due, func(a, b *entry) int { return cmp.Compare(a.seq, b.seq) })
	var out []Action
	for _, e := range due[:min(len(due), m.cfg.MaxStarts)] {
		e.sentAt, e.sentHeight = time.Time{}, 0
		out = append(out, m.advance(e)...)
	}
	return out
}

// advance starts an idle entry's next step.
func (m *Machine) advance(e *entry) []Action {
	r := &e.rec
	e.busy = true
	switch {
	case e.check:
		return []Action{QueryReceipt{r.ReceiptID}}
	case r.EscrowID.IsZero() && !r.MaybeEscrow.IsZero():
		e.asked = askMaybe
		return []Action{QueryEscrow{ID: r.ReceiptID, Escrow: r.MaybeEscrow}}
	case len(r.EscrowTx) > 0 && !e.inPool:
		tx, err := ledger.DecodeTx(r.EscrowTx)
		var escrow bool
		if err == nil {
			_, escrow = tx.Msg.(*ledger.MsgOpenEscrow)
		}
		if !escrow {
			// Unreadable: it was never ours to broadcast; open another.
			r.EscrowTx, r.EscrowID = nil, ledger.Hash{}
			return append([]Action{Persist{*r}}, m.advance(e)...)
		}
		e.asked = askSettle
		return []Action{QueryEscrow{ID: r.ReceiptID, Escrow: r.EscrowID, Payer: tx.Signer}}
	case r.EscrowID.IsZero():
		return []Action{OpenEscrow{*r}}
	default:
		return []Action{Publish{ID: r.ReceiptID, EscrowID: r.EscrowID, Receipt: r.Receipt, RequestSteps: r.RequestSteps}}
	}
}

// Fate is what a receipt's recorded escrow transaction came to.
type Fate int

const (
	// MayCommit: not on the ledger and its nonce still free: it may
	// commit (send it again and wait).
	MayCommit Fate = iota
	// Open: the escrow is on the ledger, for this worker and this
	// receipt's request.
	Open
	// Lost: the nonce was taken and the escrow is not this one: the
	// transaction can never open it.
	Lost
)

// Settle decides a recorded escrow transaction's fate from what the
// ledger holds under its escrow id (found, esc) and the paying account's
// next nonce, read before the escrow (so that a transaction committed
// between the two reads is never taken for a lost one).
func Settle(found bool, esc ledger.Escrow, accountNonce uint64, tx *ledger.Tx, worker ledger.Address, req ledger.Hash) Fate {
	if found {
		if esc.Worker == worker && esc.Request == req && esc.Requester == tx.Signer {
			return Open
		}
		return Lost // another transaction of the payer's holds the nonce
	}
	if accountNonce > tx.Nonce {
		return Lost
	}
	return MayCommit
}

func (m *Machine) escrowState(e *entry, ev EscrowState) []Action {
	r := &e.rec
	asked := e.asked
	e.asked = 0
	switch asked {
	case askMaybe:
		if ev.Found && ev.Escrow.Worker == m.cfg.Worker && ev.Escrow.ReceiptID.IsZero() && ev.Escrow.Request == e.req {
			r.EscrowID = r.MaybeEscrow
		}
		r.MaybeEscrow = ledger.Hash{}
		e.check = r.EscrowID.IsZero() // as for a lost escrow
		return append([]Action{Persist{*r}}, m.advance(e)...)
	case askSettle:
		tx, err := ledger.DecodeTx(r.EscrowTx)
		if err != nil {
			return m.advance(e) // advance drops it
		}
		switch Settle(ev.Found, ev.Escrow, ev.AccountNonce, tx, m.cfg.Worker, e.req) {
		case Open:
			r.EscrowTx = nil
			return append([]Action{Persist{*r}}, m.advance(e)...)
		case Lost:
			// Before a new escrow, the receipt is asked for again: its
			// escrow may have been opened, used and, once the receipt was
			// final, deleted between the reads.
			r.EscrowTx, r.EscrowID = nil, ledger.Hash{}
			e.check = true
			return append([]Action{Persist{*r}}, m.advance(e)...)
		}
		e.busy, e.sending = true, true
		return []Action{Broadcast{ID: r.ReceiptID, Tx: r.EscrowTx}}
	case askGone:
		if ev.Found {
			return m.fail(e, "publishing refused: escrow "+r.EscrowID.String()+" not found, yet the ledger has it")
		}
		// Refunded after escrowTimeout (or never opened, in an old
		// outbox), or used by this receipt, final and deleted: ask for
		// the receipt again, then open another.
		r.EscrowID = ledger.Hash{}
		e.check = true
		return append([]Action{Persist{*r}}, m.advance(e)...)
	}
	return nil
}

func (m *Machine) sent(e *entry, ev Sent) []Action {
	r := &e.rec
	fresh, opened := e.signed, e.opened
	e.signed, e.sending, e.opened = false, false, false
	wait := func() []Action {
		e.check, e.inPool, e.awaiting = true, false, false
		e.sentAt, e.sentHeight = m.now, m.height
		return nil
	}
	var code uint32
	if ev.Outcome == Rejected {
		code = ev.Code
	}
	why := func(what string) string { return fmt.Sprintf("%s: code %d: %s", what, code, ev.Log) }
	switch ev.Kind {
	case EscrowTx:
		switch ev.Outcome {
		case Accepted, MaybeSent:
			e.nonceTries = 0
			if opened {
				// Its block came before the answer.
				e.inPool, e.check = true, false
				return m.advance(e)
			}
			wait()
			e.awaiting = ev.Outcome == Accepted // for its block
			return nil
		}
		if !fresh {
			// Sent again and refused: its nonce is taken in the mempool
			// (by it, or by a rival), or it cannot pay now; settle it
			// after the next block.
			if code == ledger.Code(ledger.ErrNonce) {
				return wait()
			}
			out := m.fail(e, why("sending the escrow transaction again"))
			return out
		}
		// A fresh transaction the mempool refused took nothing: drop it.
		r.EscrowTx, r.EscrowID = nil, ledger.Hash{}
		out := []Action{Persist{*r}}
		switch code {
		case ledger.Code(ledger.ErrNonce), ledger.Code(ledger.ErrPending):
			return append(out, m.nonceRetry(e)...)
		case ledger.Code(ledger.ErrModelInactive):
			e.due = m.now.Add(m.cfg.ModelRetry)
			return out
		}
		return append(out, m.giveUp(e, why("opening the escrow"))...)
	case PublishTx:
		switch ev.Outcome {
		case Accepted, MaybeSent:
			e.nonceTries = 0
			return wait()
		}
		switch code {
		case ledger.Code(ledger.ErrExists):
			e.check = true // published meanwhile: the next look drops it
			return m.advance(e)
		case ledger.Code(ledger.ErrNonce), ledger.Code(ledger.ErrPending):
			return m.nonceRetry(e)
		case ledger.Code(ledger.ErrModelInactive):
			e.due = m.now.Add(m.cfg.ModelRetry)
			return nil
		case ledger.Code(ledger.ErrNotFound):
			if len(r.EscrowTx) == 0 {
				// The escrow was seen open (or came with the receipt, or
				// from an old outbox): is it gone?
				e.busy, e.asked = true, askGone
				return []Action{QueryEscrow{ID: r.ReceiptID, Escrow: r.EscrowID}}
			}
			e.check, e.inPool = true, false // settle the escrow first
		}
		return m.fail(e, why("publishing"))
	}
	return nil
}

func (m *Machine) escrowOpened(id ledger.Hash) []Action {
	var out []Action
	for _, e := range m.entries {
		if e.rec.EscrowID != id || len(e.rec.EscrowTx) == 0 {
			continue
		}
		if e.sending {
			e.opened = true // the broadcast's answer is still out
			continue
		}
		if !e.awaiting || e.busy {
			continue
		}
		// Its escrow id is open: publish against it without asking. The
		// record keeps the transaction: were the escrow another's (one of
		// the payer's transactions with the same nonce), the publication
		// fails and the next look settles the transaction.
		e.awaiting, e.inPool, e.check = false, true, false
		e.sentAt, e.sentHeight = time.Time{}, 0
		out = append(out, m.advance(e)...)
	}
	return out
}

func (m *Machine) nonceRetry(e *entry) []Action {
	e.nonceTries++
	e.due = m.now.Add(m.cfg.NonceRetry)
	if e.nonceTries >= m.cfg.MaxNonceRetries {
		e.nonceTries = 0
		return m.fail(e, "transactions refused for their nonce")
	}
	return nil
}

// fail counts an attempt: the entry backs off (its attempts written), or
// is given up past MaxAttempts.
func (m *Machine) fail(e *entry, why string) []Action {
	e.busy = false
	e.rec.Attempts++
	if e.rec.Attempts >= m.cfg.MaxAttempts {
		return m.giveUp(e, why)
	}
	e.due = m.now.Add(Backoff(e.rec.Attempts))
	return []Action{Persist{e.rec}}
}

// Backoff is the wait after a receipt's n-th failed attempt: 500 ms
// doubling up to 15 s.
func Backoff(n int) time.Duration {
	return min(time.Duration(1<<min(n, 6))*250*time.Millisecond, 15*time.Second)
}

func (m *Machine) giveUp(e *entry, why string) []Action {
	delete(m.entries, e.rec.ReceiptID)
	e.rec.Failed = why
	return []Action{GiveUp{e.rec}}
}
