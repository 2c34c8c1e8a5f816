// Package client talks to a Verdict ledger node over CometBFT's RPC: it
// reads the chain id and account nonces, signs and broadcasts transactions,
// and runs ledger queries. The CLI's `verdict tx` and `verdict query` use it.
package client
