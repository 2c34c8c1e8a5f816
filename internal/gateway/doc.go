// Package gateway serves the OpenAI-compatible HTTP API of Verdict:
//
//	POST /v1/chat/completions   chat, streamed over SSE when "stream": true
//	POST /v1/completions        plain text completion
//	GET  /v1/models             the served models (and /v1/models/{model})
//	GET  /v1/receipts/{id}      a signed receipt and its status
//	GET  /healthz               liveness
//	GET  /metrics               Prometheus metrics
//	/mcp                        the MCP server, when Options.MCP is set
//
// API keys (Options.Auth) guard every endpoint but /healthz and /metrics,
// /mcp included. An optional Meter checks an account before a generation and
// charges it once per completed generation (the seam for payment per token
// from a ledger escrow); a receipt's ledger status comes from Options.Status
// ("published" until the ledger provides more).
//
// Requests follow OpenAI's shapes; fields the gateway does not know are
// ignored. Every completion carries the id of its signed receipt in the
// "verdict" object of the response and in the X-Verdict-Receipt header (for
// streams: in the last chunks and as an HTTP trailer).
//
// Sampling defaults: temperature 1 (as OpenAI) and top_p 1 when absent, and
// seed 0 when the request has no seed, so that the receipt, which records the
// seed, always determines the output: the same request gives the same text on
// every honest worker. A negative seed s is used as uint64(s). Temperature 0 is greedy decoding. max_tokens (or
// max_completion_tokens) absent means up to the model's context length; a
// larger value is capped by the context. The model stops on its BOS and EOS
// tokens and on the request's stop strings (at most 4).
//
// Errors are OpenAI-shaped: {"error":{"message","type","param","code"}}, with
// 400 for invalid requests (code "context_length_exceeded" for prompts that
// do not fit), 401 for a missing or bad API key, 404 for an unknown model or
// receipt, 413 for a body over the size limit, 422 for an Idempotency-Key
// reused with a different body, 429 when the worker is saturated
// (rate_limit_exceeded) or the account cannot pay (insufficient_quota) and
// 500 for failures of the server. Once a stream has started, an error
// arrives as a final `data: {"error":...}` event.
//
// frequency_penalty, presence_penalty and logit_bias are refused unless zero
// or empty (they are not part of the verifiable sampling rule); n, best_of
// must be 1; echo and suffix are refused.
//
// A request with an Idempotency-Key header is run once: a retry with the same
// key and the same body gets the stored response (same receipt) without a new
// generation.
package gateway
