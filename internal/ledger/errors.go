package ledger

import "errors"

// Transaction failure classes. Every error DeliverTx or CheckTx returns wraps
// exactly one of them; Code maps it to the ABCI result code.
var (
	ErrDecode       = errors.New("malformed transaction")
	ErrSignature    = errors.New("bad signature")
	ErrChainID      = errors.New("wrong chain id")
	ErrNonce        = errors.New("wrong nonce")
	ErrFunds        = errors.New("insufficient funds")
	ErrFee          = errors.New("fee too low")
	ErrNotFound     = errors.New("not found")
	ErrUnauthorized = errors.New("unauthorized")
	ErrInvalid      = errors.New("invalid")
	ErrExists       = errors.New("already exists")
	ErrDeadline     = errors.New("deadline passed")
	ErrWrongState   = errors.New("wrong state")
	ErrStake        = errors.New("insufficient stake")
	ErrCheck        = errors.New("check failed")
	// ErrModelInactive: the model is registered but validators holding
	// Params.ModelQuorumBps of the voting power have not yet attested to
	// holding it, so the chain does not run it (code 15). Retrying once
	// the model is active succeeds.
	ErrModelInactive = errors.New("model not active")
	// ErrPending: CheckTx refuses a transaction that would take its
	// sender's transactions waiting in the mempool past
	// Params.MaxPendingBytes (code 16); retry once some are in a block.
	ErrPending = errors.New("too many pending transaction bytes from this sender")
	// ErrNameTaken: registerModel names a model with a name another model
	// id holds (code 17). Names are unique, first come first served, so
	// that a name a caller asks for (the OpenAI API's "model") designates
	// one model; register the model under another name.
	ErrNameTaken = errors.New("model name taken")
	// ErrPendingModels: attestModel would leave its model pending
	// (inactive with an attester) while the signer attests
	// maxPendingPerAttester pending models, or add one more to
	// maxPendingModels (code 18). Retry once some of them are active: an
	// attestation that activates its model is always taken.
	ErrPendingModels = errors.New("too many pending models")
)

// ErrModelUnavailable is wrapped by a hook's error when this node cannot
// evaluate a check because it does not hold the model it needs. It is no
// transaction's result: FinalizeBlock fails with it (see Ledger.FinalizeBlock)
// and CheckTx refuses the transaction with ErrCheck.
var ErrModelUnavailable = errors.New("model not held by this node")

var codes = []error{nil, ErrDecode, ErrSignature, ErrChainID, ErrNonce, ErrFunds, ErrFee,
	ErrNotFound, ErrUnauthorized, ErrInvalid, ErrExists, ErrDeadline, ErrWrongState, ErrStake, ErrCheck, ErrModelInactive, ErrPending, ErrNameTaken, ErrPendingModels}

// Code returns the ABCI code of err: 0 for nil, the index of its class
// otherwise, and 255 for an error of no known class.
func Code(err error) uint32 {
	if err == nil {
		return 0
	}
	for i, c := range codes[1:] {
		if errors.Is(err, c) {
			return uint32(i + 1)
		}
	}
	return 255
}
