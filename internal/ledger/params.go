package ledger

import (
	"errors"
	"fmt"
	"math/bits"
)

// Params are the chain's rules, fixed at genesis. Durations are in blocks,
// fractions in basis points (1/10000), amounts in base units.
type Params struct {
	MinFee           uint64 `json:"minFee"`           // fee per started feeUnitBytes of transaction and state bytes
	FeeUnitBytes     uint64 `json:"feeUnitBytes"`     // bytes (transaction plus net state growth) one minFee pays for
	MaxPendingBytes  uint64 `json:"maxPendingBytes"`  // most transaction bytes one sender may have in the mempool (CheckTx)
	MaxBlockBytes    uint64 `json:"maxBlockBytes"`    // most transaction bytes in one block (PrepareProposal, ProcessProposal)
	MinWorkerStake   uint64 `json:"minWorkerStake"`   // bond needed to publish receipts
	MinVerifierStake uint64 `json:"minVerifierStake"` // bond needed to open disputes
	UnbondingBlocks  uint64 `json:"unbondingBlocks"`  // blocks before unbonded stake is spendable (more while the account is liable)
	JailBlocks       uint64 `json:"jailBlocks"`       // blocks a slashed worker stays jailed
	EscrowTimeout    uint64 `json:"escrowTimeout"`    // blocks an escrow waits for its receipt
	ChallengeWindow  uint64 `json:"challengeWindow"`  // W: blocks from publication to payout
	AuditRateBps     uint32 `json:"auditRateBps"`     // share of receipts audited
	AuditCells       uint32 `json:"auditCells"`       // K: cells opened per audit
	OpeningWindow    uint64 `json:"openingWindow"`    // blocks to post openings after selection
	RevealWindow     uint64 `json:"revealWindow"`     // blocks after publication for a requester's audit secret
	MoveWindow       uint64 `json:"moveWindow"`       // blocks per dispute move
	SlashAuditBps    uint32 `json:"slashAuditBps"`    // slashed for missing or failed openings
	SlashDisputeBps  uint32 `json:"slashDisputeBps"`  // slashed from the loser of a dispute
	WinnerShareBps   uint32 `json:"winnerShareBps"`   // share of a dispute slash paid to the winner; the rest is burned
	MinEscrowFee     uint64 `json:"minEscrowFee"`     // smallest fee an escrow may lock
	ProtocolFeeBps   uint32 `json:"protocolFeeBps"`   // share of a paid-out escrow fee that is burned
	RewardCapBps     uint32 `json:"rewardCapBps"`     // a receipt's subsidy is at most this share of its burned protocol fee (<= 10000)
	MinFeedbackFee   uint64 `json:"minFeedbackFee"`   // smallest escrow fee whose final receipt gives the worker's agent feedback
	InitialSubsidy   uint64 `json:"initialSubsidy"`   // block subsidy at height 1
	HalvingInterval  uint64 `json:"halvingInterval"`  // H: the subsidy halves every H blocks
	PowerUnit        uint64 `json:"powerUnit"`        // bonded stake per unit of consensus voting power
	SlashEvidenceBps uint32 `json:"slashEvidenceBps"` // slashed from a validator with consensus misbehaviour evidence (double signing)
	// EvidenceMaxAgeBlocks is the oldest misbehaviour evidence (in blocks)
	// the ledger slashes for; it must be below UnbondingBlocks so that
	// stake unbonded after the misbehaviour is still there. Nodes give
	// CometBFT the same bound (evidence max_age_num_blocks).
	EvidenceMaxAgeBlocks uint64 `json:"evidenceMaxAgeBlocks"`
	MaxValidators        uint32 `json:"maxValidators"` // most validator candidates (active entries); a richer candidate evicts the poorest
	// MinValidatorStake is the self-bonded stake a validator candidate
	// needs (setValidator), and below which its power is 0.
	MinValidatorStake uint64 `json:"minValidatorStake"`
	// ModelQuorumBps is the share of the total validator voting power
	// whose validators must have attested (attestModel) to holding a model
	// before escrows and receipts for it are accepted: the model is active
	// once attested power * 10000 >= ModelQuorumBps * total power. 0
	// disables the rule (models are active at registration).
	ModelQuorumBps uint32 `json:"modelQuorumBps"`
}

// MaxAuditCells bounds Params.AuditCells.
const MaxAuditCells = 64

// DefaultParams returns the parameters of a development chain.
func DefaultParams() Params {
	return Params{
		MinFee:           1,
		FeeUnitBytes:     4096,
		MaxPendingBytes:  4 * MaxTxBytes,
		MaxBlockBytes:    4 * MaxTxBytes,
		MinWorkerStake:   1000,
		MinVerifierStake: 1000,
		UnbondingBlocks:  100,
		JailBlocks:       50,
		EscrowTimeout:    100,
		ChallengeWindow:  20,
		AuditRateBps:     1000,
		AuditCells:       4,
		OpeningWindow:    10,
		RevealWindow:     5,
		MoveWindow:       10,
		SlashAuditBps:    1000,
		SlashDisputeBps:  2000,
		WinnerShareBps:   5000,
		MinEscrowFee:     1,
		ProtocolFeeBps:   1000,
		RewardCapBps:     5000,
		MinFeedbackFee:   100,
		InitialSubsidy:   50_000,
		HalvingInterval:  210_000,
		PowerUnit:        1000,
		SlashEvidenceBps: 500,
		// Unbonding (100) outlasts it.
		EvidenceMaxAgeBlocks: 50,
		MaxValidators:        100,
		MinValidatorStake:    1000,
		// Strictly more than 2/3 of the power holds every active model, so
		// CometBFT keeps committing blocks while the others lack it.
		ModelQuorumBps: 6667,
	}
}

// Validate checks that the parameters are consistent.
func (p Params) Validate() error {
	for _, b := range []struct {
		n string
		v uint32
	}{{"auditRateBps", p.AuditRateBps}, {"slashAuditBps", p.SlashAuditBps}, {"slashDisputeBps", p.SlashDisputeBps}, {"winnerShareBps", p.WinnerShareBps}, {"slashEvidenceBps", p.SlashEvidenceBps}, {"modelQuorumBps", p.ModelQuorumBps}, {"protocolFeeBps", p.ProtocolFeeBps}, {"rewardCapBps", p.RewardCapBps}} {
		if b.v > 10000 {
			return fmt.Errorf("params: %s %d exceeds 10000", b.n, b.v)
		}
	}
	if p.MinFee == 0 || p.FeeUnitBytes == 0 || p.MaxPendingBytes < MaxTxBytes || p.MaxBlockBytes < MaxTxBytes || p.MaxBlockBytes > MaxBlockBytesLimit {
		return fmt.Errorf("params: minFee and feeUnitBytes must be positive, maxPendingBytes at least %d (one transaction), maxBlockBytes %d..%d", MaxTxBytes, MaxTxBytes, MaxBlockBytesLimit)
	}
	if p.OpeningWindow == 0 || p.MoveWindow == 0 || p.EscrowTimeout == 0 || p.UnbondingBlocks == 0 {
		return errors.New("params: openingWindow, moveWindow, escrowTimeout and unbondingBlocks must be positive")
	}
	// Audits are selected one block after publication and must resolve
	// before the window closes.
	if p.ChallengeWindow <= 1+p.OpeningWindow {
		return fmt.Errorf("params: challengeWindow %d must exceed 1+openingWindow (%d)", p.ChallengeWindow, 1+p.OpeningWindow)
	}
	// A receipt whose requester committed to an audit secret is audited,
	// at the latest, two blocks after its reveal deadline, and that audit
	// too must resolve inside the window.
	if p.RevealWindow == 0 || 3+p.RevealWindow+p.OpeningWindow > p.ChallengeWindow {
		return fmt.Errorf("params: revealWindow %d must be positive and 3+revealWindow+openingWindow at most challengeWindow %d", p.RevealWindow, p.ChallengeWindow)
	}
	if p.AuditRateBps > 0 && p.AuditCells == 0 {
		return errors.New("params: auditCells must be positive when audits are enabled")
	}
	// The K cells of an audit share one postOpenings transaction, so each
	// gets a K-th of its budget (audit.OpeningsBudget): past a few dozen,
	// the cells of all but the shortest receipts could not fit, and a
	// challenge would select few cells or none.
	if p.AuditCells > MaxAuditCells {
		return fmt.Errorf("params: auditCells %d exceeds %d (the cells of an audit share one postOpenings transaction)", p.AuditCells, MaxAuditCells)
	}
	// Evidence the ledger honours must find the stake: unbonding outlasts
	// it. (Receipts and disputes need no bound here: an account with a
	// receipt in its window or an open dispute keeps its matured
	// unbondings slashable until they settle.)
	if p.EvidenceMaxAgeBlocks == 0 || p.EvidenceMaxAgeBlocks >= p.UnbondingBlocks {
		return fmt.Errorf("params: evidenceMaxAgeBlocks %d must be 1..unbondingBlocks-1 (%d)", p.EvidenceMaxAgeBlocks, p.UnbondingBlocks)
	}
	if p.HalvingInterval == 0 {
		return errors.New("params: halvingInterval must be positive")
	}
	if p.PowerUnit == 0 || p.MaxValidators == 0 || p.MaxValidators > 1000 {
		return errors.New("params: powerUnit must be positive and maxValidators 1..1000")
	}
	if p.MinValidatorStake < p.PowerUnit {
		return fmt.Errorf("params: minValidatorStake %d must be at least powerUnit %d (one unit of voting power)", p.MinValidatorStake, p.PowerUnit)
	}
	return nil
}

// MaxBlockBytesLimit is the largest maxBlockBytes: CometBFT's block size
// limit (100 MiB) less room for the header, commit and evidence.
const MaxBlockBytesLimit = 90 << 20

// RequiredFee is the fee of a transaction of txBytes encoded bytes whose
// message grows the state by growth bytes (keys and values written less
// those they replace or delete, not below zero): minFee per started
// feeUnitBytes of their sum, at least minFee.
func (p Params) RequiredFee(txBytes, growth uint64) uint64 {
	n := txBytes + growth // both bounded by MaxTxBytes-sized work
	units := max(1, (n+p.FeeUnitBytes-1)/p.FeeUnitBytes)
	hi, lo := bits.Mul64(units, p.MinFee)
	if hi != 0 {
		return ^uint64(0)
	}
	return lo
}

// Subsidy returns the block subsidy at height h: InitialSubsidy halved
// every HalvingInterval blocks, reaching zero after 64 halvings.
func (p Params) Subsidy(h uint64) uint64 {
	if h == 0 || p.HalvingInterval == 0 {
		return 0
	}
	n := (h - 1) / p.HalvingInterval
	if n >= 64 {
		return 0
	}
	return p.InitialSubsidy >> n
}

// Genesis is the initial state of a chain.
type Genesis struct {
	ChainID  string           `json:"chainId"`
	Params   Params           `json:"params"`
	Accounts []GenesisAccount `json:"accounts"`
}

// GenesisAccount is one initial allocation.
type GenesisAccount struct {
	Address Address `json:"address"`
	Balance uint64  `json:"balance"`
	Bonded  uint64  `json:"bonded,omitempty"`
}
