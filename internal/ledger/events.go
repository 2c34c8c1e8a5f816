package ledger

import (
	"fmt"
	"strconv"

	"github.com/verdictnet/verdict/internal/dispute"
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
// final status (DisputeWorkerLost, DisputeChallengerLost...);
// WorkerFault, ChallengerFault and VoidFault the codes its record keeps
// (why each loser lost, why a void game had none), which is what a
// consumer acts on; Reason the game's words, for people only.
type DisputeSettled struct {
	DisputeID       Hash
	Status          string
	WorkerFault     dispute.Fault
	ChallengerFault dispute.Fault
	VoidFault       dispute.Fault
	Reason          string
}

// DecodeDisputeSettled reads a dispute_settled event.
func DecodeDisputeSettled(ev Event) (DisputeSettled, error) {
	r := readAttrs(ev, EventDisputeSettled)
	d := DisputeSettled{DisputeID: r.hash(AttrDisputeID), Status: r.str(AttrStatus),
		WorkerFault: dispute.Fault(r.str(AttrWorkerFault)), ChallengerFault: dispute.Fault(r.str(AttrChallengerFault)),
		VoidFault: dispute.Fault(r.str(AttrVoidFault)), Reason: r.str(AttrReason)}
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

// URIUpdated is ERC-8004's URIUpdated event: agent AgentID's agentURI is
// now AgentURI, set by UpdatedBy (its owner).
type URIUpdated struct {
	AgentID   uint64
	AgentURI  string
	UpdatedBy Address
}

// DecodeURIUpdated reads a URIUpdated event.
func DecodeURIUpdated(ev Event) (URIUpdated, error) {
	r := readAttrs(ev, EventURIUpdated)
	u := URIUpdated{AgentID: r.uint(AttrAgentID, 64), AgentURI: r.str(AttrAgentURI), UpdatedBy: r.addr(AttrUpdatedBy)}
	return u, r.err
}

// MetadataSet is ERC-8004's MetadataSet event: agent AgentID's metadata
// entry MetadataKey was set. The event does not carry the value (up to
// 4096 bytes): it is read with the query agent/{id}/metadata/{key}.
type MetadataSet struct {
	AgentID     uint64
	MetadataKey string
}

// DecodeMetadataSet reads a MetadataSet event.
func DecodeMetadataSet(ev Event) (MetadataSet, error) {
	r := readAttrs(ev, EventMetadataSet)
	m := MetadataSet{AgentID: r.uint(AttrAgentID, 64), MetadataKey: r.str(AttrMetadataKey)}
	return m, r.err
}

// AgentWalletSet is an AgentWalletSet event: agent AgentID's wallet is
// now AgentWallet (the zero address: cleared, as a transfer does).
type AgentWalletSet struct {
	AgentID     uint64
	AgentWallet Address
}

// DecodeAgentWalletSet reads an AgentWalletSet event.
func DecodeAgentWalletSet(ev Event) (AgentWalletSet, error) {
	r := readAttrs(ev, EventAgentWalletSet)
	w := AgentWalletSet{AgentID: r.uint(AttrAgentID, 64), AgentWallet: r.addr(AttrAgentWallet)}
	return w, r.err
}

// AgentTransferred is the Identity registry's ERC-721 Transfer event:
// agent AgentID (the event's tokenId) went from owner From to To.
type AgentTransferred struct {
	From, To Address
	AgentID  uint64
}

// DecodeAgentTransfer reads a Transfer event (the agent's, not the
// token transfer event, which DecodeTransfer reads).
func DecodeAgentTransfer(ev Event) (AgentTransferred, error) {
	r := readAttrs(ev, EventAgentTransfer)
	t := AgentTransferred{From: r.addr(AttrFrom), To: r.addr(AttrTo), AgentID: r.uint(AttrTokenID, 64)}
	return t, r.err
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

// TxPaid is a tx event: a transaction paid its fee (whether it succeeded
// or failed; a failed one emits nothing else).
type TxPaid struct {
	Kind   string // the message kind (Msg.Kind)
	Signer Address
	Nonce  uint64
	Fee    uint64
}

// DecodeTxEvent reads a tx event.
func DecodeTxEvent(ev Event) (TxPaid, error) {
	r := readAttrs(ev, EventTx)
	p := TxPaid{Kind: r.str(AttrKind), Signer: r.addr(AttrSigner), Nonce: r.uint(AttrNonce, 64), Fee: r.uint(AttrFee, 64)}
	return p, r.err
}

// Transferred is a transfer event: tokens moved between accounts.
type Transferred struct {
	From, To Address
	Amount   uint64
}

// DecodeTransfer reads a transfer event.
func DecodeTransfer(ev Event) (Transferred, error) {
	r := readAttrs(ev, EventTransfer)
	t := Transferred{From: r.addr(AttrFrom), To: r.addr(AttrTo), Amount: r.uint(AttrAmount, 64)}
	return t, r.err
}

// EscrowOpened is an escrow_opened event: Requester moved Fee into escrow
// EscrowID for Worker, until height Expires.
type EscrowOpened struct {
	EscrowID  Hash
	Requester Address
	Worker    Address
	ModelID   Hash
	Fee       uint64
	Expires   uint64
}

// DecodeEscrowOpened reads an escrow_opened event.
func DecodeEscrowOpened(ev Event) (EscrowOpened, error) {
	r := readAttrs(ev, EventEscrowOpened)
	o := EscrowOpened{EscrowID: r.hash(AttrEscrowID), Requester: r.addr(AttrRequester), Worker: r.addr(AttrWorker),
		ModelID: r.hash(AttrModelID), Fee: r.uint(AttrFee, 64), Expires: r.uint(AttrExpires, 64)}
	return o, r.err
}

// EscrowRefunded is an escrow_refunded event: Fee went back to Requester.
type EscrowRefunded struct {
	EscrowID  Hash
	Requester Address
	Fee       uint64
	Reason    string
}

// DecodeEscrowRefunded reads an escrow_refunded event.
func DecodeEscrowRefunded(ev Event) (EscrowRefunded, error) {
	r := readAttrs(ev, EventEscrowRefunded)
	f := EscrowRefunded{EscrowID: r.hash(AttrEscrowID), Requester: r.addr(AttrRequester), Fee: r.uint(AttrFee, 64), Reason: r.str(AttrReason)}
	return f, r.err
}

// EscrowSettled is an escrow_settled event: the receipt published against
// an upto escrow (one with a pricePerToken) cost Fee, and Refund, the rest
// of the fee escrowed, went back to Requester.
type EscrowSettled struct {
	EscrowID  Hash
	Requester Address
	Fee       uint64
	Refund    uint64
}

// DecodeEscrowSettled reads an escrow_settled event.
func DecodeEscrowSettled(ev Event) (EscrowSettled, error) {
	r := readAttrs(ev, EventEscrowSettled)
	f := EscrowSettled{EscrowID: r.hash(AttrEscrowID), Requester: r.addr(AttrRequester), Fee: r.uint(AttrFee, 64), Refund: r.uint(AttrRefund, 64)}
	return f, r.err
}

// RewardPaid is a reward event: Kind "work" (a worker's share of the
// reward pool) or "fees" (a block's transaction fees to its proposer).
type RewardPaid struct {
	Account Address
	Amount  uint64
	Kind    string
}

// DecodeReward reads a reward event.
func DecodeReward(ev Event) (RewardPaid, error) {
	r := readAttrs(ev, EventReward)
	p := RewardPaid{Account: r.addr(AttrAccount), Amount: r.uint(AttrAmount, 64), Kind: r.str(AttrKind)}
	return p, r.err
}

// Bonded is a bond event: Amount moved from the balance into stake, which
// is now Bonded.
type Bonded struct {
	Account Address
	Amount  uint64
	Bonded  uint64
}

// DecodeBond reads a bond event.
func DecodeBond(ev Event) (Bonded, error) {
	r := readAttrs(ev, EventBond)
	b := Bonded{Account: r.addr(AttrAccount), Amount: r.uint(AttrAmount, 64), Bonded: r.uint(AttrBonded, 64)}
	return b, r.err
}

// UnbondCompleted is an unbond_complete event: Amount went back from stake
// to the balance.
type UnbondCompleted struct {
	Account Address
	Amount  uint64
}

// DecodeUnbondComplete reads an unbond_complete event.
func DecodeUnbondComplete(ev Event) (UnbondCompleted, error) {
	r := readAttrs(ev, EventUnbondComplete)
	u := UnbondCompleted{Account: r.addr(AttrAccount), Amount: r.uint(AttrAmount, 64)}
	return u, r.err
}

// Slashed is a slash event.
type Slashed struct {
	Account     Address
	Amount      uint64
	Reason      string
	JailedUntil uint64
}

// DecodeSlash reads a slash event.
func DecodeSlash(ev Event) (Slashed, error) {
	r := readAttrs(ev, EventSlash)
	s := Slashed{Account: r.addr(AttrAccount), Amount: r.uint(AttrAmount, 64), Reason: r.str(AttrReason), JailedUntil: r.uint(AttrJailedUntil, 64)}
	return s, r.err
}

// DisputeMoved is a dispute_move event: From sent the dispute's Move-th
// message.
type DisputeMoved struct {
	DisputeID Hash
	From      Side
	Move      uint64
}

// DecodeDisputeMove reads a dispute_move event.
func DecodeDisputeMove(ev Event) (DisputeMoved, error) {
	r := readAttrs(ev, EventDisputeMove)
	m := DisputeMoved{DisputeID: r.hash(AttrDisputeID), Move: r.uint(AttrMove, 64)}
	switch from := r.str(AttrFrom); {
	case r.err != nil:
	case from == SideWorker.String():
		m.From = SideWorker
	case from == SideChallenger.String():
		m.From = SideChallenger
	default:
		r.err = fmt.Errorf("event %s: attribute %s: no side %q", ev.Type, AttrFrom, from)
	}
	return m, r.err
}

// AuditOutcome is an audit_passed, audit_failed or audit_missed event:
// how ReceiptID's audit ended (Type says which; Error is why the openings
// failed, for audit_failed).
type AuditOutcome struct {
	Type      EventType
	ReceiptID Hash
	Error     string
}

// DecodeAuditOutcome reads an audit_passed, audit_failed or audit_missed
// event.
func DecodeAuditOutcome(ev Event) (AuditOutcome, error) {
	switch ev.Type {
	case EventAuditPassed, EventAuditFailed, EventAuditMissed:
	default:
		return AuditOutcome{}, fmt.Errorf("event %q is not %q, %q or %q", ev.Type, EventAuditPassed, EventAuditFailed, EventAuditMissed)
	}
	r := readAttrs(ev, ev.Type)
	o := AuditOutcome{Type: ev.Type, ReceiptID: r.hash(AttrReceiptID)}
	if ev.Type == EventAuditFailed {
		o.Error = r.str(AttrError)
	}
	return o, r.err
}
