// Package worker is the inference service: it loads a model, runs
// generations on the deterministic engine, signs a receipt for each one and
// keeps the receipts it produced in a Store (in memory, or FileStore: one
// canonical JSON file per receipt id).
//
// A Local worker is what the gateway and the MCP server call. Chain puts
// it on the ledger: it registers the model and the worker's ERC-8004
// identity, bonds stake, keeps every receipt promised to a client in a
// durable outbox until the ledger holds it (opening the caller's escrow
// first, retrying with backoff, idempotent by receipt id), answers the
// audits the ledger selects with openings before their deadline, and plays
// the disputes opened against it (internal/ledger/disputeplay's Player,
// over the ledger's own trace bisection game). Openings and dispute
// traces, each a forward pass over a receipt, take one of a few slots,
// granted to the work due first on the ledger (internal/slots).
// The outbox's decisions are internal/outbox's state machine; Chain is its
// driver: it feeds it events (submissions, the clock and the height, the
// ledger's answers, the follower's escrow-opened and receipt-published
// events) and carries out its actions, writing each record before the
// action it implies, asking the ledger and sending in JSON-RPC batches
// (several transactions of an account per block, consecutive nonces). The
// outbox records each escrow transaction before it sends it and the
// follower its progress (follow.json), so a restart loses no answered
// receipt and misses no audit or dispute (docs/ledger.md). Sending and
// following blocks are internal/ledger/client's (Sender, Follower), the
// request and result types internal/inference's, the dispute player
// internal/ledger/disputeplay's; the names here are aliases.
//
// Every generation is fully determined by its receipt: the prompt tokens, the
// sampling parameters (seed included), the step count and the stop tokens.
// When a stop string ends a generation early, the receipt's step count is
// lowered to the positions actually fed, so that replaying the receipt yields
// exactly the tokens returned; a generation cut short (its caller hung up or
// cancelled) after its first token gets such a receipt too, for the tokens
// generated (PartialError), so that the worker can be paid for them. One
// cut short before its first token has no receipt; its error
// (AbandonedError) gives the prompt positions computed for it, which the
// gateway bounds per caller.
//
// A Local worker runs its generations as one continuous batch
// (internal/scheduler: requests join and leave at every step, within a
// bounded batch, KV cache budget and queue); every answer and receipt is
// bit-identical to the same request run alone.
package worker
