// Package multigw is the gateway in front of many workers (`verdict gateway
// --node RPC`): it discovers from the ledger the workers serving each
// model, routes every request to one of them by its score, pays the chosen
// worker from the caller's own ledger account with an x402 "upto" escrow,
// and fails over to the next worker when one dies before answering.
//
// Discovery (Discovery.Discover, every Refresh): agents 1 to the ledger's
// next agent id (at most MaxAgents) whose metadata "verdict.role" is
// "worker" and which advertise, in their metadata, the model they serve
// ("verdict.model": the model id in hex) and their price per token
// ("verdict.price": decimal); `verdict worker` sets all three. For each,
// the gateway reads its bonded stake and record (stake/ADDR: final
// receipts, times slashed, jailed until) and fetches the ERC-8004
// registration file at the agentURI it registered (ParseRegistration: at
// most MaxRegistrationBytes, http or https only, the file naming this agent
// id in the chain's identity registry, an "OpenAI" service whose endpoint
// is an absolute http(s) URL, no HTML in the name). A worker whose file is
// missing, malformed, hostile or unreachable is skipped with a log line
// (once per change of reason). The pool is then ranked as gateway.Rank
// does: jailed workers and workers under the chain's minimum stake are left
// out, the rest scored by gateway.Candidate.Score (stake x record / price).
//
// Routing (Router): smooth weighted round-robin over the eligible workers
// of the requested model, each weighted by its score: for each request
// every eligible worker's counter grows by its score, the worker with the
// largest counter (ties: the better ranked) is chosen and its counter falls
// by the sum of the scores. Over any run of requests in which the scores
// stay the same, each worker's count stays close to its share (requests x
// score / sum of scores): TestRouterShares holds it within the number of
// workers, and over 3000 random pools of one to six workers and 500
// requests each it was never more than 1.1 off. It is deterministic and
// needs no random numbers. A worker leaving the eligible set loses its
// counter. When the chosen worker fails before the first byte of its answer
// (connection refused or reset, a timeout before the response headers, a
// 5xx), the request goes to the other eligible workers, best ranked first,
// and the failed worker is marked down for DownFor (default 15 s): it is
// skipped until then and retried after.
//
// Payment: the gateway holds callers' API keys, each mapped to the key file
// of the ledger account that pays (as `verdict worker --accounts`). For a
// request it asks the chosen worker for a quote (the request without
// credentials: 402 with PAYMENT-REQUIRED), checks that the quote's payTo is
// the worker's address on the ledger, its price the price the worker
// advertises there, its chain this chain and its model the requested one,
// signs with the caller's key an openEscrow transaction under the "upto"
// scheme (fee: the quoted maximum, pricePerToken: the price, request: the
// quote's request hash) and sends the request again with it in
// PAYMENT-SIGNATURE (a worker run with --no-auth answers the first request
// itself, unpaid, and that answer is relayed). The worker submits the
// escrow, generates and publishes its receipt against it; the ledger
// charges the tokens the receipt holds and returns the rest to the caller.
// The gateway never holds a worker's key and a worker cannot charge without
// the caller's signature on an escrow bound to that one request; each
// escrow pays for one receipt only (the ledger's rule), so a request
// retried on another worker after a failure is a new escrow for a new
// request hash, and an escrow nobody published a receipt for returns to the
// caller at its deadline (the chain's escrowTimeout). One caller's escrows
// are signed one at a time, each once the previous one is in a block or its
// worker has answered: the ledger takes an account's transactions in nonce
// order and a worker checks the payer's next nonce.
//
// Callers without an API key pay with x402 themselves: a request without
// Authorization and without PAYMENT-SIGNATURE goes, unchanged, to the
// worker the router picks, whose 402 quote names that worker (payTo); the
// same request sent again with PAYMENT-SIGNATURE goes to the worker whose
// address is the payload's accepted.payTo (no failover: the payment is
// bound to that worker). With NoAuth the gateway forwards every request
// without payment, for workers run with --no-auth.
//
// A worker that dies after its response started: a non-streamed answer is
// read whole before anything is sent, so the caller gets a 502
// (worker_failed); a stream ends with a final `data: {"error":...}` event
// and no [DONE]. Nothing is spliced from another worker, and the caller
// pays at most once: for the receipt the worker published (a partial
// receipt when it cut the generation short), or nothing when its escrow
// returns at its deadline.
//
// Limits. A worker that is alive but slower than HeaderTimeout to start its
// answer is abandoned and the request goes on: the worker sees the hang-up
// and may still publish a receipt for the tokens it generated until then,
// which the caller pays too (a partial receipt, against its own escrow). A
// worker that dies holding the caller's escrow may have broadcast it: the
// caller's next escrow waits up to PendingWait (3 s) for the payer's ledger
// nonce to pass it, and is signed with the same nonce after that; if the
// first transaction lands later, the second is refused (402, nothing
// charged) and the request goes on to the next worker. The quote's amount
// is the worker's (price x the prompt and max_tokens): an escrow above what
// the answer costs is returned when the receipt is published, but a worker
// that publishes nothing holds it until the escrow's deadline; MaxFee
// bounds it. Registration files are fetched again at every refresh, from
// wherever their agentURI points (an operator behind a firewall should run
// the gateway where a hostile agentURI reaches nothing private). A worker's
// non-streamed answer is read up to MaxResponseBytes (64 MiB) and each line
// of its stream up to MaxEventBytes (4 MiB); past either the caller gets
// the worker_failed error.
//
// Every completion served names its worker: the response's "verdict" object
// gains "agent_id" and "worker" (its address), in the last chunks of a
// stream as for the receipt id, and the response carries the headers
// X-Verdict-Agent-Id and X-Verdict-Worker.
package multigw
