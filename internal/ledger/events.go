package ledger

import (
	"fmt"
	"strconv"
)

// Attr returns the value of the event's attribute k and whether it has
// one.
func (e Event) Attr(k AttrKey) (string, bool) {
	for _, a := range e.Attrs {
		if a.Key == k {
			return a.Value, true
		}
	}
	return "", false
}

// attrReader reads typed attributes of one event and keeps the first
// error.
type attrReader struct {
	ev  Event
	err error
}

func readAttrs(ev Event, want EventType) *attrReader {
	r := &attrReader{ev: ev}
	if ev.Type != want {
		r.err = fmt.Errorf("event %q is not %q", ev.Type, want)
	}
	return r
}

func (r *attrReader) str(k AttrKey) string {
	if r.err != nil {
		return ""
	}
	v, ok := r.ev.Attr(k)
	if !ok {
		r.err = fmt.Errorf("event %s: no attribute %s", r.ev.Type, k)
	}
	return v
}

func (r *attrReader) hash(k AttrKey) Hash {
	s := r.str(k)
	if r.err != nil {
		return Hash{}
	}
	h, err := ParseHash(s)
	if err != nil {
		r.err = fmt.Errorf("event %s: attribute %s: %w", r.ev.Type, k, err)
	}
	return h
}

func (r *attrReader) addr(k AttrKey) Address {
	s := r.str(k)
	if r.err != nil {
		return Address{}
	}
	a, err := ParseAddress(s)
	if err != nil {
		r.err = fmt.Errorf("event %s: attribute %s: %w", r.ev.Type, k, err)
	}
	return a
}

func (r *attrReader) uint(k AttrKey, bits int) uint64 {
	s := r.str(k)
	if r.err != nil {
		return 0
	}
	v, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		r.err = fmt.Errorf("event %s: attribute %s: %w", r.ev.Type, k, err)
	}
	return v
}

// AuditSelected is an audit_selected event: a receipt's audit, with the
// seed and the number of cells its openings must cover, and the last
// height at which they count.
type AuditSelected struct {
	ReceiptID Hash
	Seed      Hash
	Cells     uint32
	Deadline  uint64
	Worker    Address
}

// DecodeAuditSelected reads an audit_selected event.
func DecodeAuditSelected(ev Event) (AuditSelected, error) {
	r := readAttrs(ev, EventAuditSelected)
	a := AuditSelected{ReceiptID: r.hash(AttrReceiptID), Seed: r.hash(AttrSeed), Cells: uint32(r.uint(AttrCells, 32)),
		Deadline: r.uint(AttrDeadline, 64), Worker: r.addr(AttrWorker)}
	return a, r.err
}

// ReceiptPublished is a receipt_published event.
type ReceiptPublished struct {
	ReceiptID Hash
	EscrowID  Hash
	Worker    Address
	ModelID   Hash
	WindowEnd uint64 // the last height of its audit and dispute window
}

// DecodeReceiptPublished reads a receipt_published event.
func DecodeReceiptPublished(ev Event) (ReceiptPublished, error) {
	r := readAttrs(ev, EventReceiptPublished)
	p := ReceiptPublished{ReceiptID: r.hash(AttrReceiptID), EscrowID: r.hash(AttrEscrowID), Worker: r.addr(AttrWorker),
		ModelID: r.hash(AttrModelID), WindowEnd: r.uint(AttrWindowEnd, 64)}
	return p, r.err
}

// ReceiptFinal is a receipt_final event: the receipt's fee went to its
// worker, less the protocol fee.
type ReceiptFinal struct {
	ReceiptID   Hash
	Worker      Address
	Fee         uint64
	ProtocolFee uint64
}

// DecodeReceiptFinal reads a receipt_final event.
func DecodeReceiptFinal(ev Event) (ReceiptFinal, error) {
	r := readAttrs(ev, EventReceiptFinal)
	f := ReceiptFinal{ReceiptID: r.hash(AttrReceiptID), Worker: r.addr(AttrWorker), Fee: r.uint(AttrFee, 64), ProtocolFee: r.uint(AttrProtocolFee, 64)}
	return f, r.err
}

// DisputeOpened is a dispute_opened event.
type DisputeOpened struct {
	DisputeID  Hash
	ReceiptID  Hash
	Challenger Address
	Worker     Address
}

// DecodeDisputeOpened reads a dispute_opened event.
func DecodeDisputeOpened(ev Event) (DisputeOpened, error) {
	r := readAttrs(ev, EventDisputeOpened)
	d := DisputeOpened{DisputeID: r.hash(AttrDisputeID), ReceiptID: r.hash(AttrReceiptID), Challenger: r.addr(AttrChallenger), Worker: r.addr(AttrWorker)}
	return d, r.err
}

// DisputeSettled is a dispute_settled event: Status is the dispute's
// final status (DisputeWorkerLost, DisputeChallengerLost...), Reason the
// game's.
type DisputeSettled struct {
	DisputeID Hash
	Status    string
	Reason    string
}

// DecodeDisputeSettled reads a dispute_settled event.
func DecodeDisputeSettled(ev Event) (DisputeSettled, error) {
	r := readAttrs(ev, EventDisputeSettled)
	d := DisputeSettled{DisputeID: r.hash(AttrDisputeID), Status: r.str(AttrStatus), Reason: r.str(AttrReason)}
	return d, r.err
}

// Registered is ERC-8004's Registered event: a new agent.
type Registered struct {
	AgentID  uint64
	AgentURI string
	Owner    Address
}

// DecodeRegistered reads a Registered event.
func DecodeRegistered(ev Event) (Registered, error) {
	r := readAttrs(ev, EventRegistered)
	g := Registered{AgentID: r.uint(AttrAgentID, 64), AgentURI: r.str(AttrAgentURI), Owner: r.addr(AttrOwner)}
	return g, r.err
}

// ValidationRequested is ERC-8004's ValidationRequest event: an agent
// asks a validator to validate the work at RequestURI.
type ValidationRequested struct {
	ValidatorAddress Address
	AgentID          uint64
	RequestURI       string
	RequestHash      Hash
}

// DecodeValidationRequest reads a ValidationRequest event.
func DecodeValidationRequest(ev Event) (ValidationRequested, error) {
	r := readAttrs(ev, EventValidationRequest)
	v := ValidationRequested{ValidatorAddress: r.addr(AttrValidatorAddress), AgentID: r.uint(AttrAgentID, 64),
		RequestURI: r.str(AttrRequestURI), RequestHash: r.hash(AttrRequestHash)}
	return v, r.err
}
