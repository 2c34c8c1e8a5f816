// Package verifier follows the Verdict ledger and checks the work of
// workers: it re-runs a sampled share of published receipts in full
// (audit.Replay), checks every audit opening posted on the ledger
// (audit.Check), answers ERC-8004 validation requests addressed to it with
// validation responses, and opens a dispute (the trace bisection game of
// internal/dispute) against a receipt whose replay disagrees, playing it to
// the end.
package verifier
