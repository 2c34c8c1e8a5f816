// Package proofhooks connects the ledger to the proofs layer: receipts are
// checked by internal/receipt (ledger.Receipts) and audit openings by
// internal/audit against the models this node holds.
//
// Every validator must hold every model whose receipts it audits: a node
// without the model rejects openings that others accept, and its app hash
// diverges. Nodes that lack a model must not validate.
package proofhooks
