package ledger

import "github.com/verdictnet/verdict/internal/dispute"

// Records stored in state, each as canonical JSON under its key (see keys.go).

// Account is a balance and the next nonce.
type Account struct {
	Balance uint64 `json:"balance"`
	Nonce   uint64 `json:"nonce"`
}

// Model is a registered model. It is Active (escrows and receipts for it
// are accepted) once validators holding Params.ModelQuorumBps of the
// voting power have attested to holding it (attestModel), or at
// registration when that parameter is 0; it stays active.
type Model struct {
	ModelID     Hash    `json:"modelId"`
	Name        string  `json:"name"`
	SpecVersion uint32  `json:"specVersion"`
	Registrant  Address `json:"registrant"`
	Height      uint64  `json:"height"`
	Active      bool    `json:"active"`
	// Attesters are the validators that attested to holding the model,
	// sorted, without duplicates.
	Attesters []Address `json:"attesters"`
}

// Agent is an ERC-8004 identity. Metadata is stored under its own keys.
type Agent struct {
	AgentID     uint64  `json:"agentId"`
	Owner       Address `json:"owner"`
	AgentURI    string  `json:"agentURI"`
	AgentWallet Address `json:"agentWallet"`
}

// Feedback is one ERC-8004 feedback entry.
type Feedback struct {
	AgentID       uint64  `json:"agentId"`
	ClientAddress Address `json:"clientAddress"`
	FeedbackIndex uint64  `json:"feedbackIndex"`
	Value         Int128  `json:"value"`
	ValueDecimals uint8   `json:"valueDecimals"`
	Tag1          string  `json:"tag1"`
	Tag2          string  `json:"tag2"`
	Endpoint      string  `json:"endpoint"`
	FeedbackURI   string  `json:"feedbackURI"`
	FeedbackHash  Hash    `json:"feedbackHash"`
	IsRevoked     bool    `json:"isRevoked"`
}

// Validation is an ERC-8004 validation request and its latest response.
type Validation struct {
	ValidatorAddress Address `json:"validatorAddress"`
	AgentID          uint64  `json:"agentId"`
	RequestURI       string  `json:"requestURI"`
	RequestHash      Hash    `json:"requestHash"`
	Response         uint8   `json:"response"`
	ResponseURI      string  `json:"responseURI"`
	ResponseHash     Hash    `json:"responseHash"`
	Tag              string  `json:"tag"`
	HasResponse      bool    `json:"hasResponse"`
	LastUpdate       uint64  `json:"lastUpdate"` // block height
}

// Stake is an account's bonded stake, its pending unbondings and its record.
type Stake struct {
	Bonded      uint64      `json:"bonded"`
	Unbonding   []Unbonding `json:"unbonding,omitempty"`
	JailedUntil uint64      `json:"jailedUntil,omitempty"` // jailed while height < JailedUntil
	Final       uint64      `json:"final"`                 // receipts paid out
	Slashed     uint64      `json:"slashed"`               // times slashed
	// Live counts the account's receipts not yet settled (published or
	// challenged) and Disputes the open disputes it is a party to. While
	// either is positive, matured unbondings stay slashable and are not
	// returned (released when both reach zero).
	Live     uint64 `json:"live,omitempty"`
	Disputes uint64 `json:"disputes,omitempty"`
}

// liable reports whether the stake must stay slashable: the account has a
// receipt in its window or under dispute, or is a party to an open dispute.
func (s Stake) liable() bool { return s.Live > 0 || s.Disputes > 0 }

// Unbonding is stake on its way back to the balance at Height.
type Unbonding struct {
	Amount uint64 `json:"amount"`
	Height uint64 `json:"height"`
}

// Escrow is a requester's fee locked for one receipt.
type Escrow struct {
	EscrowID  Hash    `json:"escrowId"`
	Requester Address `json:"requester"`
	Worker    Address `json:"worker"`
	ModelID   Hash    `json:"modelId"`
	Fee       uint64  `json:"fee"`
	Request   Hash    `json:"request"` // the request a receipt must answer (RequestHash)
	// AuditCommit: SHA-256 of the requester's audit secret (zero: none).
	AuditCommit Hash   `json:"auditCommit,omitzero"`
	AgentID     uint64 `json:"agentId,omitempty"`
	// PricePerToken: Fee is a maximum (MsgOpenEscrow.PricePerToken);
	// once a receipt is published, Fee is what it costs.
	PricePerToken uint64 `json:"pricePerToken,omitempty"`
	Expires       uint64 `json:"expires"`
	ReceiptID     Hash   `json:"receiptId"` // zero until a receipt is published
}

// Receipt statuses. What a client shows (docs/ledger.md, "Receipt
// statuses"): challenged, final and slashed as they are; published with
// Audit == AuditPassed as "audited"; published otherwise as "published".
const (
	StatusPublished  = "published"
	StatusChallenged = "challenged"
	StatusFinal      = "final"
	StatusSlashed    = "slashed"
)

// ReceiptRecord is the ledger's view of a published receipt; the receipt's
// bytes are stored under their own key.
type ReceiptRecord struct {
	ReceiptID Hash    `json:"receiptId"`
	EscrowID  Hash    `json:"escrowId"`
	Worker    Address `json:"worker"`
	ModelID   Hash    `json:"modelId"`
	Height    uint64  `json:"height"`
	WindowEnd uint64  `json:"windowEnd"`
	Status    string  `json:"status"`
	Audited   bool    `json:"audited"`            // selected for an audit
	Audit     string  `json:"audit,omitempty"`    // that audit's status (AuditPending, ...)
	DisputeID Hash    `json:"disputeId,omitzero"` // the last dispute opened
	Disputes  uint32  `json:"disputes,omitempty"` // disputes open now (status challenged while positive)
}

// Client-facing receipt statuses (what the gateway shows).
const (
	ShownPublished  = "published"
	ShownAudited    = "audited"
	ShownChallenged = "challenged"
	ShownFinal      = "final"
	ShownSlashed    = "slashed"
)

// Shown maps the record onto the five statuses a client shows: published
// (in its challenge window, not audited or its audit still pending),
// audited (in its window, its audit passed), challenged (a dispute is
// open), final (paid out) and slashed (a failed or missed audit, or a
// dispute the worker lost).
func (r ReceiptRecord) Shown() string {
	if r.Status == StatusPublished && r.Audit == AuditPassed {
		return ShownAudited
	}
	return r.Status
}

// Audit statuses.
const (
	AuditPending = "pending"
	AuditPassed  = "passed"
	AuditFailed  = "failed"
	AuditMissed  = "missed"
)

// Audit is a spot check of one receipt.
type Audit struct {
	ReceiptID Hash   `json:"receiptId"`
	Seed      Hash   `json:"seed"`
	Cells     uint32 `json:"cells"`
	Deadline  uint64 `json:"deadline"` // openings must land at a height <= Deadline
	Status    string `json:"status"`
}

// Side is a party to a dispute.
type Side uint8

// Dispute sides.
const (
	SideNone Side = iota
	SideWorker
	SideChallenger
)

func (s Side) String() string {
	switch s {
	case SideWorker:
		return "worker"
	case SideChallenger:
		return "challenger"
	}
	return "none"
}

// Dispute statuses.
const (
	DisputeOpen = "open"
	// DisputeWorkerLost, DisputeChallengerLost and DisputeBothLost name
	// the losers; DisputeVoid is a game that ended with no loser (the
	// referee could not recompute the cell).
	DisputeWorkerLost     = "worker_lost"
	DisputeChallengerLost = "challenger_lost"
	DisputeBothLost       = "both_lost"
	DisputeVoid           = "void"
)

// Dispute is a bisection game over one receipt.
type Dispute struct {
	DisputeID  Hash    `json:"disputeId"`
	ReceiptID  Hash    `json:"receiptId"`
	Worker     Address `json:"worker"`
	Challenger Address `json:"challenger"`
	Game       []byte  `json:"game"`     // the dispute game's opaque state
	Deadline   uint64  `json:"deadline"` // answers count up to this height
	Moves      uint64  `json:"moves"`
	Status     string  `json:"status"`
	// WorkerFault and ChallengerFault are why the worker and the
	// challenger lost (absent for a side that did not), VoidFault why a
	// void dispute ended with no loser: codes (dispute.Faults), never
	// words, so that the state does not depend on how an error is worded.
	WorkerFault     dispute.Fault `json:"workerFault,omitempty"`
	ChallengerFault dispute.Fault `json:"challengerFault,omitempty"`
	VoidFault       dispute.Fault `json:"voidFault,omitempty"`
}

// Totals tracks the money supply: every base unit minted is in a balance,
// a stake, an escrow, the reward pool or burned.
type Totals struct {
	Minted uint64 `json:"minted"`
	Burned uint64 `json:"burned"`
	Pool   uint64 `json:"pool"` // reward pool paid to finalized receipts
	Fees   uint64 `json:"fees"` // fees of the current block, paid at its end
}

// ChainInfo is the last block the state has applied.
type ChainInfo struct {
	ChainID   string `json:"chainId"`
	Height    uint64 `json:"height"`
	Time      int64  `json:"time"`
	NextAgent uint64 `json:"nextAgent"`
}
