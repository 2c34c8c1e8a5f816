// Package ledger is the Verdict ledger's state machine: accounts, the model
// registry, the ERC-8004 agent registries (Identity, Reputation, Validation),
// staking, receipts with escrowed fees and challenge windows, spot audits,
// disputes and rewards.
//
// It is pure and deterministic: it imports nothing from CometBFT, reads no
// clock and never iterates a map into a result. The block height, time and
// hash are passed in through BlockContext. State is a key/value map whose
// sorted contents are committed to by an RFC 6962-style Merkle root (the app
// hash). The ABCI application in internal/ledger/abciapp drives it.
//
// A transaction (Tx) carries one message: Msg is a sealed interface
// implemented by one type per message kind (*MsgSend, *MsgOpenEscrow, ...),
// each with its own stateless validation and its handler, so a Tx holds
// exactly one message by construction. Its canonical encoding
// (docs/ledger.md, "Transaction format") writes the message as
// {"<kind>": {...}}; DecodeTx accepts only that encoding.
package ledger
