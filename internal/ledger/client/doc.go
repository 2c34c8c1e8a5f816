// Package client talks to a Verdict ledger node over CometBFT's RPC: it
// reads the chain id and account nonces, signs and broadcasts transactions,
// and runs ledger queries, raw (Query, QueryJSON) or typed (Params, Chain,
// Model, Agent, Stake, Receipt, ReceiptData, Escrow, Audit, Dispute;
// HasReceipts asks for many receipts in one JSON-RPC batch). Sender keeps
// one account's transactions in nonce order (SendRecorded hands each signed
// transaction to the caller before it is broadcast, so that it can be kept
// and, after a crash, found committed or sent again; SendBatch signs,
// records and broadcasts many at once, with consecutive nonces, their
// fees asked in one batch by EstimateFees; single transactions go ahead
// of waiting batches); Follower reads the ledger block by block (each
// Event is the ledger's, with its height and transaction: consumers
// switch on its ledger.EventType and read it with the ledger's typed
// decoders). Rejections carry their ledger.Code (RejectedError,
// FailedError, ErrorCode). The node is not trusted with fees or the chain:
// no transaction is signed with a fee above Options.MaxFee (a node's
// inflated estimate is a FeeTooHighError), and a client pinned to
// Options.ChainID refuses a node on another chain (WrongChainError). The CLI's `verdict tx` and `verdict query`, the
// worker, the verifier and the gateway use it.
package client
