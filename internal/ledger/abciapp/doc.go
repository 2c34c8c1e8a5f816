// Package abciapp runs the Verdict ledger (internal/ledger) as a CometBFT
// v0.38 ABCI application: it decodes blocks, persists the state at Commit in
// a cometbft-db database, and answers Info, CheckTx and Query.
//
// Crash recovery follows CometBFT's rules: FinalizeBlock changes only memory,
// Commit writes every changed key together with the height and app hash in one
// synced batch, and Info reports the last committed height and app hash, so a
// node killed between the two replays the block.
package abciapp
