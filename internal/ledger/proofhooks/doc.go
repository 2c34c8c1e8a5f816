// Package proofhooks connects the ledger to the proofs layer: receipts are
// checked by internal/receipt (ledger.Receipts), audit openings by
// internal/audit, and disputes are refereed by the bisection game of
// internal/ledger/disputegame set up by audit.DisputeSetup, whose referee
// recomputes one trace leaf with the deterministic engine — all against
// the models this node holds (Models, given to `verdict node start` with
// --model).
//
// Every node must hold every model whose receipts it checks. When a check
// needs a model the node does not hold, the hooks return an error wrapping
// ledger.ErrModelUnavailable, and the ledger fails the block (the node
// stops) instead of deciding differently from the nodes that hold it; a
// node whose committed state has live receipts of a model it lacks refuses
// to start (ledger.Ledger.MissingModels). See docs/ledger.md.
package proofhooks
