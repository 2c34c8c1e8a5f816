// Package outbox is a worker's receipts on their way to the ledger, as a
// state machine in the style of etcd's raft: Machine takes events in
// (Submit, Restore, Tick, the answers to its questions: ReceiptState,
// EscrowState, EscrowSigned, Sent, Refused, Failed, and Published from
// the follower) and returns actions out (Persist, QueryReceipt,
// QueryEscrow, OpenEscrow, Broadcast, Publish, Remove, GiveUp). It does no
// I/O, reads no clock (Tick carries the time and the ledger's height) and
// runs no goroutine; a driver (internal/worker's Chain) carries the
// actions out, in order, writing each Persist before anything after it.
//
// Store is the outbox on disk: one Record per receipt (outbox/ID.json),
// written before the action it implies. The signed escrow transaction is
// recorded before it is broadcast, so that a restart (Restore) resumes
// exactly: the transaction is found committed (its escrow adopted), sent
// again (its same bytes) or, once its nonce went to another transaction,
// replaced; a receipt never gets a second escrow while its first may
// still commit, and its attempts survive the restart (docs/ledger.md, the
// worker's ledger side).
package outbox
