// Package mcpserver exposes Verdict's verifiable inference as Model Context
// Protocol tools (with the official github.com/modelcontextprotocol/go-sdk),
// so that AI agents can call it without a bespoke client:
//
//	generate        run a generation; returns the text, the receipt id and
//	                the signed receipt (canonical JSON text)
//	get_receipt     fetch a receipt by id, with its ledger status
//	verify_receipt  check a receipt's signature and, when its model is served
//	                here, replay the generation and compare every token and
//	                both Merkle roots
//	list_models     the served models with their model ids
//
// The same server runs over stdio (`verdict mcp`, the operator's own
// process: no accounts) and over streamable HTTP (mounted by the gateway at
// /mcp, behind its API keys). Over HTTP the tools go through Options.Gate
// with the caller's account: generate is reserved, charged and sent to the
// ledger like a /v1 completion (a refusal is a tool error), verify_receipt
// with replay is billed like a generation of the receipt's prompt and
// output tokens (its signature check alone, replay false, is free), and
// get_receipt and verify_receipt by id read only the caller's receipts.
// Over HTTP a session left idle for SessionIdle (10 min) is closed, and a
// server keeps at most MaxSessions (4096) open: a request that would open
// another is refused (503, Retry-After) until one closes; one caller (an
// account, or a client address without an API key) opens at most
// MaxSessionsPerCaller (64) of them (429, Retry-After).
// A caller without an API key (no token info: the gateway lets such calls
// through only when it takes x402 payments) pays generate with x402 when
// the Gate is a Payer: the payment in the call's _meta["x402/payment"] (or
// the PAYMENT-SIGNATURE header of its HTTP request), the settlement in the
// result's _meta["x402/payment-response"], and a payment required or
// refused as a tool error carrying x402's PaymentRequired in content[0].text
// (the x402/error wrapper) and structuredContent (x402's MCP transport).
// Sampling defaults are the gateway's: temperature 1, top_p 1, seed 0.
//
// A server with no model of its own (the gateway in front of many
// workers, internal/multigw) sets Options.Forward: the tools check their
// arguments here and the Forwarder runs them (generate on a worker it
// chooses and pays, the result naming that worker in agent_id and
// worker), with the call's account (token info) and x402 payment
// (_meta or header) as a Caller; a payment required or refused is the
// same x402 tool error as above.
package mcpserver
