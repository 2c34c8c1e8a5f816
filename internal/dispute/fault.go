package dispute

// Fault is the code of why a game ended as it did: for a party that lost,
// what it did (a party fault); for a game that ended with no loser, why
// (a void fault). Codes are consensus data: the ledger stores them in the
// dispute record, which is part of the app hash, so an implementation
// writes exactly these strings (docs/ledger.md, "dispute/ID"). The words
// of a loss (Outcome.Reason, Outcome.Err) are for people only: logs and
// events, never state.
type Fault string

// Party faults: why a party lost.
const (
	// FaultStateMismatch: the party's committed state after the disputed
	// leaf differs from the referee's recomputation of it.
	FaultStateMismatch Fault = "state_mismatch"
	// FaultBadChildren: the party opened the children of a node with
	// hashes that do not hash to the node it committed to.
	FaultBadChildren Fault = "bad_children"
	// FaultBadLeafProof: the party opened the inputs of the disputed leaf
	// with an invalid inclusion proof.
	FaultBadLeafProof Fault = "bad_leaf_proof"
	// FaultBadPartProof: the party opened a part of the disputed leaf's
	// inputs (read in parts, Folder) with an invalid inclusion proof.
	FaultBadPartProof Fault = "bad_part_proof"
	// FaultEquivocated: the party gave two different answers to one
	// query.
	FaultEquivocated Fault = "equivocated"
	// FaultTimeout: the party did not answer the outstanding query by its
	// deadline.
	FaultTimeout Fault = "timeout"
	// FaultImpossibleReceipt (a forfeit, Config.Forfeit): the worker
	// signed a receipt no run of the model can produce (more positions
	// than an engine holds, no prompt or no output, a token outside the
	// vocabulary).
	FaultImpossibleReceipt Fault = "impossible_receipt"
	// FaultSpecMismatch (a forfeit): the worker signed a receipt whose
	// spec is not the spec its model id is of.
	FaultSpecMismatch Fault = "spec_mismatch"
)

// Void faults: why a game ended with no loser.
const (
	// FaultRefereeFailed: the referee could not recompute the disputed
	// leaf, or read a part of its inputs (Outcome.Err says how).
	FaultRefereeFailed Fault = "referee_failed"
	// FaultGameStalled: the ledger could not take the game past its
	// deadline (its timeout failed, or left it undecided: a full
	// transcript) and settled it void.
	FaultGameStalled Fault = "game_stalled"
)

// Faults lists every fault code: the party faults, then the void faults,
// each in the order above.
func Faults() []Fault {
	return []Fault{FaultStateMismatch, FaultBadChildren, FaultBadLeafProof, FaultBadPartProof, FaultEquivocated, FaultTimeout,
		FaultImpossibleReceipt, FaultSpecMismatch, FaultRefereeFailed, FaultGameStalled}
}

// IsParty reports whether f is a party fault (a code for a loser).
func (f Fault) IsParty() bool {
	switch f {
	case FaultStateMismatch, FaultBadChildren, FaultBadLeafProof, FaultBadPartProof, FaultEquivocated, FaultTimeout,
		FaultImpossibleReceipt, FaultSpecMismatch:
		return true
	}
	return false
}

// IsVoid reports whether f is a void fault (why nobody lost).
func (f Fault) IsVoid() bool {
	return f == FaultRefereeFailed || f == FaultGameStalled
}

// Describe words f for people, in a fixed text per code (the words of one
// game, with its rounds and heights, are Outcome.Reason's).
func (f Fault) Describe() string {
	switch f {
	case FaultStateMismatch:
		return "committed a state the referee's recomputation contradicts"
	case FaultBadChildren:
		return "opened children that do not hash to its committed node"
	case FaultBadLeafProof:
		return "opened the disputed leaf's inputs with an invalid proof"
	case FaultBadPartProof:
		return "opened a part of the disputed leaf's inputs with an invalid proof"
	case FaultEquivocated:
		return "gave two different answers to one query"
	case FaultTimeout:
		return "did not answer in time"
	case FaultImpossibleReceipt:
		return "signed a receipt no run of the model can produce"
	case FaultSpecMismatch:
		return "signed a receipt whose spec is not its model id's"
	case FaultRefereeFailed:
		return "the referee could not recompute the disputed cell"
	case FaultGameStalled:
		return "the game could not go on past its deadline"
	case "":
		return ""
	}
	return "unknown fault " + string(f)
}

// Loss is a party's loss decided before any query (Config.Forfeit): its
// fault code, and the same in words for people.
type Loss struct {
	Fault Fault
	Why   string
}
