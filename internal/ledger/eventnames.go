package ledger

// Event types and attribute keys: what the ledger emits (docs/ledger.md,
// "Events") and its clients read. Consumers name them by these constants
// and read the events they act on with the typed decoders (events.go's
// Decode functions); no other package spells an event or attribute name
// as a string (TestNoEventLiterals).

// EventType names a ledger event.
type EventType string

// The events, with the attributes each carries in order (eventAttrs).
const (
	EventTx                      EventType = "tx"                        // a transaction paid its fee (failed or not)
	EventTransfer                EventType = "transfer"                  // tokens moved between accounts
	EventRegistered              EventType = "Registered"                // an ERC-8004 agent was registered
	EventMetadataSet             EventType = "MetadataSet"               // an agent's metadata entry was set (the value is read with the agent query)
	EventURIUpdated              EventType = "URIUpdated"                // an agent's agentURI changed
	EventAgentWalletSet          EventType = "AgentWalletSet"            // an agent's wallet was set (the zero address: cleared)
	EventAgentTransfer           EventType = "Transfer"                  // ERC-721's Transfer: an agent changed owner (transferFrom)
	EventNewFeedback             EventType = "NewFeedback"               // ERC-8004 feedback was given
	EventFeedbackRevoked         EventType = "FeedbackRevoked"           // feedback was revoked
	EventResponseAppended        EventType = "ResponseAppended"          // a response was appended to feedback
	EventValidationRequest       EventType = "ValidationRequest"         // an ERC-8004 validation was requested of a validator
	EventValidationResponse      EventType = "ValidationResponse"        // a validator answered a validation request
	EventBond                    EventType = "bond"                      // stake was bonded
	EventUnbond                  EventType = "unbond"                    // stake started unbonding
	EventUnjail                  EventType = "unjail"                    // a jailed account was released
	EventSlash                   EventType = "slash"                     // stake was slashed
	EventBurn                    EventType = "burn"                      // tokens were burned
	EventEscrowOpened            EventType = "escrow_opened"             // a requester escrowed a fee for a worker
	EventReceiptPublished        EventType = "receipt_published"         // a worker published a receipt against an escrow
	EventEscrowSettled           EventType = "escrow_settled"            // an upto escrow's receipt cost less than its fee: the rest went back to the requester
	EventAuditFailed             EventType = "audit_failed"              // posted openings failed their audit
	EventAuditPassed             EventType = "audit_passed"              // posted openings passed their audit
	EventAuditRevealed           EventType = "audit_revealed"            // a requester revealed its audit secret
	EventUnbondHeld              EventType = "unbond_held"               // an unbonding was held back by live receipts or disputes
	EventUnbondComplete          EventType = "unbond_complete"           // unbonded stake returned to its account
	EventEscrowRefunded          EventType = "escrow_refunded"           // an escrow went back to its requester
	EventDisputeOpened           EventType = "dispute_opened"            // a challenger opened a dispute over a receipt
	EventDisputeMove             EventType = "dispute_move"              // a party moved in a dispute
	EventDisputeSettled          EventType = "dispute_settled"           // a dispute ended
	EventEvidenceIgnored         EventType = "evidence_ignored"          // misbehaviour evidence too old to act on, or from a later height
	EventAuditUnrevealed         EventType = "audit_unrevealed"          // the requester did not reveal its audit secret in time (the receipt is audited)
	EventAuditSelected           EventType = "audit_selected"            // a receipt was selected for audit (block event)
	EventAuditMissed             EventType = "audit_missed"              // a worker did not answer its audit by the deadline
	EventDisputeError            EventType = "dispute_error"             // the dispute game could not be stepped
	EventDisputeTimeout          EventType = "dispute_timeout"           // a dispute party ran out of time
	EventReceiptFinal            EventType = "receipt_final"             // a receipt became final and its fee was paid
	EventReward                  EventType = "reward"                    // a reward was paid (kind work or fees)
	EventSetValidator            EventType = "set_validator"             // an account asked to join or leave the validator set
	EventValidatorEvicted        EventType = "validator_evicted"         // a validator was evicted by a larger bond
	EventValidatorUpdatesRefused EventType = "validator_updates_refused" // validator updates were refused
	EventValidatorUpdate         EventType = "validator_update"          // a validator's voting power changed
	EventValidatorRemoved        EventType = "validator_removed"         // a validator left the set
	EventModelActive             EventType = "model_active"              // enough validators attested to a model to run it
	EventModelRegistered         EventType = "model_registered"          // a model was registered
	EventModelAttested           EventType = "model_attested"            // a validator attested to holding a model
)

// AttrKey names an event attribute.
type AttrKey string

// The attribute keys.
const (
	AttrKind             AttrKey = "kind"
	AttrSigner           AttrKey = "signer"
	AttrNonce            AttrKey = "nonce"
	AttrFee              AttrKey = "fee"
	AttrFrom             AttrKey = "from"
	AttrTo               AttrKey = "to"
	AttrAmount           AttrKey = "amount"
	AttrAgentID          AttrKey = "agentId"
	AttrAgentURI         AttrKey = "agentURI"
	AttrOwner            AttrKey = "owner"
	AttrMetadataKey      AttrKey = "metadataKey"
	AttrUpdatedBy        AttrKey = "updatedBy"
	AttrAgentWallet      AttrKey = "agentWallet"
	AttrTokenID          AttrKey = "tokenId"
	AttrClientAddress    AttrKey = "clientAddress"
	AttrFeedbackIndex    AttrKey = "feedbackIndex"
	AttrValue            AttrKey = "value"
	AttrValueDecimals    AttrKey = "valueDecimals"
	AttrTag1             AttrKey = "tag1"
	AttrTag2             AttrKey = "tag2"
	AttrEndpoint         AttrKey = "endpoint"
	AttrFeedbackURI      AttrKey = "feedbackURI"
	AttrFeedbackHash     AttrKey = "feedbackHash"
	AttrResponder        AttrKey = "responder"
	AttrResponseURI      AttrKey = "responseURI"
	AttrResponseHash     AttrKey = "responseHash"
	AttrValidatorAddress AttrKey = "validatorAddress"
	AttrRequestURI       AttrKey = "requestURI"
	AttrRequestHash      AttrKey = "requestHash"
	AttrResponse         AttrKey = "response"
	AttrTag              AttrKey = "tag"
	AttrAccount          AttrKey = "account"
	AttrBonded           AttrKey = "bonded"
	AttrCompletes        AttrKey = "completes"
	AttrReason           AttrKey = "reason"
	AttrJailedUntil      AttrKey = "jailedUntil"
	AttrEscrowID         AttrKey = "escrowId"
	AttrRequester        AttrKey = "requester"
	AttrWorker           AttrKey = "worker"
	AttrModelID          AttrKey = "modelId"
	AttrExpires          AttrKey = "expires"
	AttrReceiptID        AttrKey = "receiptId"
	AttrWindowEnd        AttrKey = "windowEnd"
	AttrError            AttrKey = "error"
	AttrLive             AttrKey = "live"
	AttrDisputes         AttrKey = "disputes"
	AttrDisputeID        AttrKey = "disputeId"
	AttrChallenger       AttrKey = "challenger"
	AttrMove             AttrKey = "move"
	AttrStatus           AttrKey = "status"
	AttrHeight           AttrKey = "height"
	AttrSeed             AttrKey = "seed"
	AttrCells            AttrKey = "cells"
	AttrDeadline         AttrKey = "deadline"
	AttrProtocolFee      AttrKey = "protocolFee"
	AttrActive           AttrKey = "active"
	AttrBy               AttrKey = "by"
	AttrPower            AttrKey = "power"
	AttrAttestedPower    AttrKey = "attestedPower"
	AttrTotalPower       AttrKey = "totalPower"
	AttrAttesters        AttrKey = "attesters"
	AttrName             AttrKey = "name"
	AttrSpecVersion      AttrKey = "specVersion"
	AttrRegistrant       AttrKey = "registrant"
	AttrValidator        AttrKey = "validator"
	AttrRefund           AttrKey = "refund"
	AttrWorkerFault      AttrKey = "workerFault"
	AttrChallengerFault  AttrKey = "challengerFault"
	AttrVoidFault        AttrKey = "voidFault"
)

// The reasons an evidence_ignored event gives.
const (
	ReasonEvidenceTooOld = "older than evidenceMaxAgeBlocks"
	ReasonEvidenceFuture = "height not reached yet"
)

// eventAttrs lists every event the ledger emits with its attributes in
// order; TestEventsAsListed checks each emitted event against it.
var eventAttrs = []struct {
	Type  EventType
	Attrs []AttrKey
}{
	{EventTx, []AttrKey{AttrKind, AttrSigner, AttrNonce, AttrFee}},
	{EventTransfer, []AttrKey{AttrFrom, AttrTo, AttrAmount}},
	{EventRegistered, []AttrKey{AttrAgentID, AttrAgentURI, AttrOwner}},
	{EventMetadataSet, []AttrKey{AttrAgentID, AttrMetadataKey}},
	{EventURIUpdated, []AttrKey{AttrAgentID, AttrAgentURI, AttrUpdatedBy}},
	{EventAgentWalletSet, []AttrKey{AttrAgentID, AttrAgentWallet}},
	{EventAgentTransfer, []AttrKey{AttrFrom, AttrTo, AttrTokenID}},
	{EventNewFeedback, []AttrKey{AttrAgentID, AttrClientAddress, AttrFeedbackIndex, AttrValue, AttrValueDecimals, AttrTag1, AttrTag2, AttrEndpoint, AttrFeedbackURI, AttrFeedbackHash}},
	{EventFeedbackRevoked, []AttrKey{AttrAgentID, AttrClientAddress, AttrFeedbackIndex}},
	{EventResponseAppended, []AttrKey{AttrAgentID, AttrClientAddress, AttrFeedbackIndex, AttrResponder, AttrResponseURI, AttrResponseHash}},
	{EventValidationRequest, []AttrKey{AttrValidatorAddress, AttrAgentID, AttrRequestURI, AttrRequestHash}},
	{EventValidationResponse, []AttrKey{AttrValidatorAddress, AttrAgentID, AttrRequestHash, AttrResponse, AttrResponseURI, AttrResponseHash, AttrTag}},
	{EventBond, []AttrKey{AttrAccount, AttrAmount, AttrBonded}},
	{EventUnbond, []AttrKey{AttrAccount, AttrAmount, AttrCompletes}},
	{EventUnjail, []AttrKey{AttrAccount}},
	{EventSlash, []AttrKey{AttrAccount, AttrAmount, AttrReason, AttrJailedUntil}},
	{EventBurn, []AttrKey{AttrAmount, AttrReason}},
	{EventEscrowOpened, []AttrKey{AttrEscrowID, AttrRequester, AttrWorker, AttrModelID, AttrFee, AttrExpires}},
	{EventReceiptPublished, []AttrKey{AttrReceiptID, AttrEscrowID, AttrWorker, AttrModelID, AttrWindowEnd}},
	{EventEscrowSettled, []AttrKey{AttrEscrowID, AttrRequester, AttrFee, AttrRefund}},
	{EventAuditFailed, []AttrKey{AttrReceiptID, AttrError}},
	{EventAuditPassed, []AttrKey{AttrReceiptID}},
	{EventAuditRevealed, []AttrKey{AttrReceiptID}},
	{EventUnbondHeld, []AttrKey{AttrAccount, AttrLive, AttrDisputes}},
	{EventUnbondComplete, []AttrKey{AttrAccount, AttrAmount}},
	{EventEscrowRefunded, []AttrKey{AttrEscrowID, AttrRequester, AttrFee, AttrReason}},
	{EventDisputeOpened, []AttrKey{AttrDisputeID, AttrReceiptID, AttrChallenger, AttrWorker}},
	{EventDisputeMove, []AttrKey{AttrDisputeID, AttrFrom, AttrMove}},
	{EventDisputeSettled, []AttrKey{AttrDisputeID, AttrStatus, AttrWorkerFault, AttrChallengerFault, AttrVoidFault, AttrReason}},
	{EventEvidenceIgnored, []AttrKey{AttrAccount, AttrHeight, AttrReason}},
	{EventAuditUnrevealed, []AttrKey{AttrReceiptID}},
	{EventAuditSelected, []AttrKey{AttrReceiptID, AttrSeed, AttrCells, AttrDeadline, AttrWorker}},
	{EventAuditMissed, []AttrKey{AttrReceiptID}},
	{EventDisputeError, []AttrKey{AttrDisputeID, AttrError}},
	{EventDisputeTimeout, []AttrKey{AttrDisputeID}},
	{EventReceiptFinal, []AttrKey{AttrReceiptID, AttrWorker, AttrFee, AttrProtocolFee}},
	{EventReward, []AttrKey{AttrAccount, AttrAmount, AttrKind}},
	{EventSetValidator, []AttrKey{AttrAccount, AttrActive}},
	{EventValidatorEvicted, []AttrKey{AttrAccount, AttrBonded, AttrBy}},
	{EventValidatorUpdatesRefused, []AttrKey{AttrReason}},
	{EventValidatorUpdate, []AttrKey{AttrAccount, AttrPower}},
	{EventValidatorRemoved, []AttrKey{AttrAccount}},
	{EventModelActive, []AttrKey{AttrModelID, AttrAttestedPower, AttrTotalPower, AttrAttesters}},
	{EventModelRegistered, []AttrKey{AttrModelID, AttrName, AttrSpecVersion, AttrRegistrant}},
	{EventModelAttested, []AttrKey{AttrModelID, AttrValidator}},
}
