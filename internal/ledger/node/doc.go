// Package node runs a Verdict ledger node: CometBFT v0.38 in the same
// process as the ledger application (internal/ledger/abciapp). Init writes a
// node's home directory (or several, for a local testnet): keys, genesis and
// configuration; Start runs it until its context ends. A validator node
// whose hooks list the models it holds (ModelLister) attests to holding
// each registered, inactive one (the ledger's attestModel), so that models
// become active once validators holding the chain's quorum hold them.
package node
