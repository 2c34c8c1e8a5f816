// Package gateway serves the OpenAI-compatible HTTP API of Verdict:
//
//	POST /v1/chat/completions   chat, streamed over SSE when "stream": true
//	POST /v1/completions        plain text completion
//	GET  /v1/models             the served models (and /v1/models/{model})
//	GET  /v1/receipts/{id}      a signed receipt and its status
//	GET  /healthz               liveness
//	GET  /metrics               Prometheus metrics, only with ServeMetrics
//	                            (else serve MetricsHandler on its own address)
//	/mcp                        the MCP server, when Options.MCP is set
//	/x402/supported, /x402/verify, /x402/settle
//	                            x402 facilitator, when Options.X402 is set
//	GET  /.well-known/agent-registration.json
//	                            the ERC-8004 registration file, when
//	                            Options.Registration is set (no API key)
//	/explorer/                  the web explorer, when Options.Explorer is
//	                            set (no API key; package explorer)
//
// API keys (Options.Auth) guard every endpoint but /healthz, /mcp included;
// New refuses to build a server without Auth unless NoAuth says so. Keys
// are compared in constant time; a key is sent as "Authorization: Bearer
// KEY" (the scheme in any case; Basic and other schemes are refused by
// name). The MCP endpoint hands the account to the tools as the session's
// token info, so a session opened with one key cannot be used with another
// (403). MCP request bodies are bounded by MaxBodyBytes, as the other
// POSTs, and generate's stop strings as the API's (MaxStops, MaxStopLen).
//
// Billing: every generation, from the API or from an MCP tool, goes through
// Server.Generate. Once the worker has tokenized the prompt (and before the
// generation takes a slot) the Meter reserves the most the request can
// cost, price x (prompt tokens + the most completion tokens: max_tokens, or
// what the context leaves), against the account; a refusal is 429
// insufficient_quota with Retry-After (a tool error over MCP). A completed
// generation is charged for the tokens it delivered and the rest is
// released; a failed one releases everything. A generation cut short after
// its first token (the client hung up mid-stream or before a non-streamed
// answer was sent, an MCP client cancelled its call) is charged for the
// tokens generated, as OpenAI bills them: the worker signs and stores a
// receipt for exactly that prefix (inference.PartialError: its steps lowered
// as for a stop string, so that it replays to those tokens), the receipt
// goes to the ledger like any other and stays readable by the payer, who
// can read there every token it paid for (at most the few in flight when
// it hung up were not delivered), and the rest of the reservation is
// released. Cancelled before the first token, nothing is charged; the
// prompt positions the worker computed for it (inference.AbandonedError)
// count against the caller (its account, or without one its client
// address), and a caller over Options.AbandonedPrefill of them a minute (a
// bucket that drains) is refused with 429 rate_limit_exceeded and
// Retry-After (a tool error over MCP) until it is back under (prefill.go).
//
// MCP verify_receipt with replay (Server.Verify) re-runs a whole
// generation, so it is billed like one of the receipt's size: a
// ReplayMeter holds price x (prompt + output tokens) before the replay and
// charges it once the replay ran, whatever it found (LedgerMeter: a ledger
// send from the caller's account to the worker, PayReplay); a receipt not
// replayed (bad signature, model not served) is not charged, and the
// signature check alone (replay false) is free. A Meter that cannot bill
// replays refuses them (ErrReplayNotBilled); without a Meter they are
// free, as generations are. LedgerMeter
// counts, against the balance, what running requests hold and the fees of
// charged receipts still in the worker's outbox, so that concurrent
// requests cannot overdraw an account.
//
// Receipts (GET /v1/receipts/{id}, MCP get_receipt and verify_receipt by
// id) are readable only by the account that paid for them (Options.Owners
// records it; FileOwners keeps it across restarts); another account gets
// 404, as for an unknown id. Options.PublicReceipts, or a server without
// Auth, lets everyone read every receipt. (Once published, a receipt is on
// the ledger, which anyone can read: this guards the gateway's copy.) A
// receipt's ledger status comes from Options.Status ("published" until
// the ledger provides more).
//
// Requests follow OpenAI's shapes. POST bodies must be sent as
// Content-Type: application/json (415 otherwise: a cross-site page cannot
// send JSON without a CORS preflight, which the gateway does not answer). A
// known path with another method is 405 with an Allow header. Fields the
// gateway does not know are ignored; the fields it knows are checked for
// their type and range, and a violation is a 400 whose param names the
// field (messages[i].content for a missing or null content). top_k (an
// extension, as llama.cpp's) keeps the k most likely tokens, k >= 0;
// response_format other than {"type":"text"} is refused; user, metadata
// and store are accepted and unused. Every completion carries the id of its signed receipt in the
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
// receipt, 405 for a wrong method, 413 for a body over the size limit, 415
// for a body that is not application/json, 422 for an Idempotency-Key
// reused with a different body, 429 with Retry-After when the worker is
// saturated (rate_limit_exceeded, 1 s: its batch and queue are full, or a
// request of an account with fewer waiting took this one's place in the
// queue; each request carries its account, inference.Request.Account, and
// the queue takes turns between accounts) or the account cannot pay
// (insufficient_quota, 10 s) and 500 for failures of the server. Once a stream has started, an error
// arrives as a final `data: {"error":...}` event.
//
// frequency_penalty, presence_penalty and logit_bias are refused unless zero
// or empty (they are not part of the verifiable sampling rule); n, best_of
// must be 1; echo and suffix are refused.
//
// A request with an Idempotency-Key header is run once: a retry with the same
// key and the same body, from the same account, gets the stored response
// (same receipt) without a new generation; keys of different accounts never
// meet. Stored responses are bounded in bytes (IdempotencyBytes, default 64
// MiB, and an eighth of it per account; the oldest go first, those of the
// account holding the most when the total is over); a request still running
// is never evicted, and a response larger than an account's share is not
// stored; nor are server errors, 429s and 402s (a quote or a refused x402
// payment: anyone provokes those without an API key).
//
// x402 (Options.X402, x402.go; beside API keys, which it requires for the
// routes it does not cover): a POST to /v1/chat/completions or
// /v1/completions without an Authorization header and without
// PAYMENT-SIGNATURE is tokenized but not generated, and answered 402 with
// PAYMENT-REQUIRED: base64 (standard, padded) of the JSON
// {x402Version: 2, error: "payment_required", resource: {url, description,
// mimeType}, accepts: [{scheme: "exact", network: "cosmos:CHAIN-ID",
// asset: "verdict", amount: price x (prompt tokens + the most completion
// tokens) as a decimal string, payTo: the worker's address,
// maxTimeoutSeconds, extra: {requestHash, nonce, deadline, modelId,
// chainId}}, the same with scheme "upto" and extra.pricePerToken (the
// price, decimal)]}: one quote (one nonce), payable once, under either
// scheme. nonce (base64) is the receipt nonce the gateway chose:
// deadline (8 bytes big-endian unix s) || 16 random bytes || the first 16
// bytes of HMAC-SHA256(secret, "verdict/x402/nonce/v1" || the first 24);
// requestHash is the RequestHash (docs/ledger.md) of this request with that
// nonce. The payer signs, with its own ledger key, an openEscrow
// transaction {worker: payTo, modelId, fee: amount, request: requestHash}
// with its next nonce (the ledger's transaction format; under upto also
// pricePerToken: the price, which makes fee a maximum) and sends the same
// request again with PAYMENT-SIGNATURE: base64 of {x402Version: 2,
// accepted: the requirements it chose, payload: {transaction: base64 of the
// signed transaction}}. The gateway checks the header (at most
// MaxPaymentHeaderBytes), the signature, scheme and network (chain id of
// the transaction too), the nonce's MAC and deadline, the escrow's worker,
// model, fee (at least the amount), pricePerToken (none for exact, the
// price for upto) and request (recomputed from the body
// sent now: a changed prompt or max_tokens does not match), the payer's
// ledger nonce and balance, and that the quote was not paid before; then
// it submits the transaction (broadcast_tx_commit), generates with that
// receipt nonce and queues the receipt for publication against the
// payer's escrow. The response carries PAYMENT-RESPONSE: base64 of
// {success, payer, transaction (the escrow transaction's hash), network,
// amount, extra: {escrowId, height, receiptId}} (a stream sends its
// headers before the receipt exists: its PAYMENT-RESPONSE header lacks
// receiptId, and the complete one follows as an HTTP trailer of the same
// name, beside X-Verdict-Receipt). Under upto, amount is what the receipt
// costs, price x (prompt + generated tokens), at most the escrow's fee,
// and extra.maxAmount the fee (a stream's header, sent first, has the fee
// as amount; its trailer what the receipt costs); the ledger returns
// the difference to the payer when the worker publishes the receipt
// (docs/ledger.md, publishReceipt). A receipt whose generation ended
// early (a stop string, or a payer who hung up after the first token: it
// is charged as under an API key) has its steps lowered; it is published
// with requestSteps, the steps its escrow's request asked for. So does a
// generation still running when the chain comes within EscrowMargin
// blocks of its escrow's expiry (X402.EscrowTimeout: an escrow with no
// receipt by then is refunded and the answer would go unpaid): it is cut
// short and answered as one that reached its length (finish_reason
// "length"). A
// refused payment is 402 with PAYMENT-REQUIRED {x402Version: 2, error:
// REASON, accepts: []} and the OpenAI error code REASON (X402Reason:
// invalid_payload, unsupported_scheme, invalid_network, invalid_signature,
// payment_expired, payment_replayed, insufficient_funds, request_mismatch,
// amount_too_low, settlement_failed); nothing is submitted, so nothing is
// charged. The escrow may carry the payer's auditCommit (the payer then
// reveals its secret itself, docs/ledger.md "Audit selection"; without one
// the receipt is always audited) and name the
// worker's agentId (for the ledger's feedback when the receipt is final).
// A generation that fails after the escrow was submitted is
// refunded by the ledger when the escrow expires (escrowTimeout blocks).
//
// x402 over MCP (with Options.X402): a request to /mcp without an
// Authorization header opens an anonymous MCP session (its own session
// store: it cannot use a session opened with a key, nor the other way
// round) in which generate is paid with x402 as the x402 MCP transport
// (specs/transports-v2/mcp.md of x402) describes: a call without payment,
// or with a refused one, is a tool error whose content[0].text is
// {"x402/error": {"code": 402, "message", "data": PaymentRequired}} and
// whose structuredContent is the PaymentRequired object (the same quote
// as over HTTP, resource url MCPResource); the client pays by sending the
// PaymentPayload (JSON, not base64) in the call's _meta["x402/payment"],
// or base64 in the PAYMENT-SIGNATURE header of the HTTP request carrying
// the call, and the result carries the SettleResponse in
// _meta["x402/payment-response"] (Server.PayGenerate: the same checks,
// escrow, receipt and refusal reasons as over HTTP). An anonymous session
// reads no receipt (the generate result holds the signed receipt) and
// replays none (verify_receipt with replay false is free); with an API
// key, MCP is billed to the key's account as before.
//
// Facilitator (with Options.X402, no API key): GET /x402/supported answers
// {kinds: [{x402Version: 2, scheme: "exact", network}, the same for
// "upto"], extensions: [],
// signers: {}} (the payer signs; the facilitator only submits); POST
// /x402/verify and /x402/settle take {x402Version, paymentPayload,
// paymentRequirements} (paymentPayload as JSON, not base64) and check the
// payload's openEscrow against the requirements (scheme, the same in the
// payload; payTo, extra.modelId, extra.requestHash, amount,
// extra.deadline when set; pricePerToken: none for exact,
// extra.pricePerToken for upto) and the payer's
// nonce and funds; verify answers {isValid, invalidReason,
// invalidMessage, payer} and charges nothing, settle submits the
// transaction and answers the SettleResponse above ({success: false,
// errorReason} when refused). Another x402 resource server points its
// HTTPFacilitatorClient at BASE/x402 to take Verdict escrows.
//
// HTTPServer gives the server's timeouts: 10 s for the headers, 60 s for
// the whole request, 120 s idle, and no write timeout, so that streams and
// long generations are not cut off.
package gateway
