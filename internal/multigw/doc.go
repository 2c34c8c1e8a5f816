// Package multigw is the gateway in front of many workers (`verdict gateway
// --node RPC`): it discovers from the ledger the workers serving each
// model, routes every request to one of them by its score, pays the chosen
// worker from the caller's own ledger account with an x402 "upto" escrow,
// and fails over to the next worker when one dies before answering.
//
// Discovery (Discovery.Discover, every Refresh): the agents whose
// metadata "verdict.role" is "worker" and which advertise, in their
// metadata, the model they serve ("verdict.model": the model id in hex)
// and their price per token ("verdict.price": decimal); `verdict worker`
// sets all three. Each round reads MaxAgents (4096) agents from the
// ledger, going on from where the last round stopped and wrapping round
// past the last agent, so that every agent is read again every
// ceil(agents / MaxAgents) rounds, and the workers read in earlier rounds
// stay in the pool meanwhile (reading agents 1 to 4096 only, every round,
// let 4096 empty agents hide every later worker: TestAttackHiddenWorker);
// an agent (or a worker's stake) the node does not answer for is skipped
// with a log line, an agent keeping its last listing, instead of ending
// the round. For each,
// the gateway reads its bonded stake and record (stake/ADDR: final
// receipts, times slashed, jailed until) and fetches the ERC-8004
// registration file at the agentURI it registered, where NetPolicy allows
// (see "Outbound connections" below; ParseRegistration: at
// most MaxRegistrationBytes, http or https only, the file naming this agent
// id in the chain's identity registry, an "OpenAI" service whose endpoint
// is an absolute http(s) URL, no HTML in the name). A worker whose file is
// missing, malformed, hostile or unreachable is skipped with a log line
// (once per change of reason). The pool is then ranked as gateway.Rank
// does: jailed workers and workers under the chain's minimum stake are left
// out, the rest scored by gateway.Candidate.Score (stake x record / price).
//
// Outbound connections (NetPolicy). Every agentURI and endpoint is
// chosen by whoever registered the agent, so by default the gateway
// connects to public addresses only: not to loopback (127/8, ::1),
// unspecified (0/8, ::), private (10/8, 172.16/12, 192.168/16, fc00::/7,
// fec0::/10), link-local (169.254/16, the cloud metadata service
// 169.254.169.254 among them, fe80::/10), carrier-grade NAT (100.64/10),
// multicast, documentation, benchmarking and other reserved blocks, nor to
// the IPv4-mapped, 6to4 or NAT64 forms of these (ClassifyAddr lists
// them). The check is made in the dialer's Control hook on the address
// each connection is actually made to, after the name was resolved, so a
// name that resolves, or rebinds between two fetches, to a non-public
// address is refused like the address itself; a redirect to a URL whose
// host is such an address is refused before it is followed, and a worker
// whose endpoint's host is one is left out at discovery. A
// registration file is fetched within RegistrationTimeout (5 s, redirects
// and body included; DiscoverFetches, 16, at once, so that agents whose
// files answer slowly or never cannot hold up the discovery of the
// others; an agent whose file could not be had is not fetched again for
// FetchBackoff, 2 s, doubling with each failure in a row up to
// MaxFetchBackoff, a minute; one discovery's fetches end within
// DiscoverWithin, 15 s, those still running cut and counted as failed,
// and go in the order: workers whose file was accepted last time, agents
// never fetched, agents that failed, so that such agents, however many,
// can neither keep a gateway from starting nor push a known worker out of
// its pool; an accepted file is kept for RegistrationKeep, 5 minutes,
// unless the agent's agentURI changes, so that agents whose files are
// accepted but slow cannot fill every round ahead of a new worker) through at most MaxRegistrationRedirects (3)
// redirects, each to an http(s) URL without credentials, query or
// fragment and checked again; its body is read up to MaxRegistrationBytes
// (64 KiB) and its headers up to as much. A worker's API (quotes, paid
// requests, receipts) is never followed through a redirect: the attempt
// fails as one to a worker that does not answer (a quote's goes to the
// next worker; a paid one as "No double charge" says). Connections time out after
// DialTimeout (5 s), TLS handshakes after TLSHandshakeTimeout (10 s), and
// the default clients use no HTTP proxy. The refusal names the address and
// its class ("127.0.0.1 is a loopback address: ...", ErrNonPublic, an
// *AddrError), in the skip's log line or in the worker failure the caller
// gets. NetPolicy.AllowPrivate (`verdict gateway --allow-private-workers`)
// allows every address, for a testnet on one machine or a LAN;
// NetPolicy.Allow (`--allow-worker-net CIDR,...`) allows chosen non-public
// networks, such as the private network the workers are on. Clients given
// in Options.HTTP or Options.HTTPRegistration are used as they are.
//
// The requested model (the request's "model") is one model id: the id
// itself (hex, either case), else the model registered under that name —
// the ledger holds a name for one id, and should two models the workers
// serve bear one name (a chain from before that rule), the first
// registered (resolve) — so that a caller asking for a name never gets
// some answers of another model or of the same weights under the other
// spec. /v1/models and list_models list each model under what reaches it:
// its name, or its id where the name reaches another.
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
// 5xx) and could not have been paid for the request (see "No double
// charge" below), the request goes to the other eligible workers, best
// ranked first; the failed worker is marked down for DownFor (default
// 15 s) either way: it is skipped until then and retried after.
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
// PAYMENT-SIGNATURE. An answer to the quote request other than a 402 is
// never relayed as the answer: a 2xx (a worker run with --no-auth, or one
// serving text of its own making, backed by no escrow and no receipt,
// audited by no one) is the worker's failure, marked down, and the
// request goes to the next worker; a 401 too; a 429 (the worker busy)
// likewise, the worker not marked down but left out of every request for
// its Retry-After (at least a second, at most DownFor), and when every
// worker is so busy the gateway answers 429 rate_limit_exceeded itself,
// with the Retry-After of the first to be free, asking none (asked again
// by every request, busy workers made one caller's requests, as fast as
// it sent them, as many times more as there are workers:
// TestAttackAnonymousRateFanout); another 4xx passes the request on as
// well, and is relayed only when every worker refused it (a bad
// request, refused alike by all), a worker that refused a request
// another then quoted being marked down (TestAttackUnpaidAnswer). The worker submits the
// escrow, generates and publishes its receipt against it; the ledger
// charges the tokens the receipt holds and returns the rest to the caller.
// The gateway never holds a worker's key and a worker cannot charge without
// the caller's signature on an escrow bound to that one request; each
// escrow pays for one receipt only (the ledger's rule), and an escrow
// nobody published a receipt for returns to the caller at its deadline
// (the chain's escrowTimeout). One caller's escrows are signed one at a
// time, each once the previous one is in a block or its request has
// ended: the ledger takes an account's transactions in nonce order and a
// worker checks the payer's next nonce.
//
// No double charge: a caller never pays two workers for one request.
// The escrows signed for one request, on whichever workers it is tried,
// take the payer's ledger nonces in turn, and each but the last has its
// nonce used before the next is signed: the ledger opens at most one of
// them, and a worker whose escrow is refused cannot publish a receipt for
// it. The payer's lock is held from the first signature until the request
// ends or its escrow lands, so no other request of the payer takes those
// nonces meanwhile. A paid request goes on to the next worker only while
// the escrow is not on the ledger: after the worker refused the payment
// (402), or failed (unreachable, reset, a 5xx, no response headers
// within HeaderTimeout) and the payer's ledger nonce had still not passed
// the escrow's PendingWait (3 s) later (at once when the request never
// left the gateway: its headers were not written, and the escrow is
// signed again at the same nonce). A worker that had the signed escrow
// may land it yet, after the gateway moved on: before it does, the
// gateway uses that nonce with a send of 1 from the payer to itself
// (nothing changes but the fee the payer pays for it), committed, and
// signs the next worker's escrow at the nonce after, so the copy the
// worker kept is refused by the ledger (a worker that held it back and
// landed it just before the next worker's got paid for a request it never
// answered while the next worker was blamed: TestAttackEscrowLandedLate).
// Once the nonce has passed, or that send finds it used (the worker's
// escrow landed first), or the send fails otherwise (the escrow may still
// land), the worker that failed holds the escrow and may still publish a
// receipt for it (a slow worker publishes a partial receipt for the
// tokens it generated before it saw the hang-up): the request goes
// nowhere else, the caller gets a 504 (code worker_timeout, after a
// timeout) or a 502 (worker_failed) naming the worker
// (X-Verdict-Agent-Id) and the escrow, and pays at most that receipt; the
// escrow returns at its deadline if none comes, and the worker is marked
// down. TestServerStallNoDoubleCharge is the attack of a worker that
// stalls past HeaderTimeout, then publishes.
//
// Callers without an API key pay with x402 themselves: a request without
// Authorization and without PAYMENT-SIGNATURE goes, unchanged, to the
// worker the router picks, whose 402 quote names that worker (payTo;
// other answers are judged and failed over as for a quote above); the
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
// Limits. A worker that took the escrow and then died or stalled costs the
// caller that request (a 502 or 504, not a failover): the gateway cannot
// tell a dead worker from one that will still publish. The payer's nonce
// passing is taken as the escrow landing, so a payer that signs elsewhere
// with the same account meanwhile can end a request that could have
// failed over. The quote's amount
// is the worker's (price x the prompt and max_tokens): an escrow above what
// the answer costs is returned when the receipt is published, but a worker
// that publishes nothing holds it until the escrow's deadline. A quote
// above the worker's price times requestTokens (max_tokens, two tokens a
// byte of the body, TemplateTokens and TemplateTokensPerMessage) is
// refused as the worker's failure; without max_tokens only MaxFee bounds
// it. The quote's request hash cannot be checked here (no tokenizer): a
// staked worker can bill, within that bound, a receipt for a request of
// its choosing. Registration files are fetched again once kept for
// RegistrationKeep (or, failing, after each backoff): each agent can make
// the gateway send one GET per RegistrationKeep, or per MaxFetchBackoff,
// to a public address of its choosing (and, with AllowPrivate or Allow, to the addresses these
// allow: run such a gateway where they reach nothing that trusts it). A
// public server that itself relays requests into a private network (a
// proxy, unlike a redirect, which is checked) is beyond what the gateway
// can see. A worker's
// non-streamed answer is read up to MaxResponseBytes (8 MiB: a longer
// answer, with many logprobs, is to be streamed), a receipt it serves up
// to MaxReceiptAnswerBytes (receipt.MaxSize and 4 KiB), each within
// BodyTimeout (a minute, `verdict gateway --body-timeout`) of its
// headers, and each line of its stream up
// to MaxEventBytes (4 MiB), a stream that sends nothing for HeaderTimeout
// being cut; the gateway asks workers for no encoding (Go's transparent
// gzip inflated 64 KiB a worker sent into 64 MiB) and refuses an answer
// that has one. Past any of these the caller gets the worker_failed
// error, saying which, and the worker is marked down
// (TestAttackWorkerAnswerSize). The worker's name is spliced into its
// answer, which is not decoded and encoded again (that cost nine times
// the answer: TestAttackAnswerNamingCost). The gateway holds at most
// MaxWorkerInFlightBytes (32 MiB) of one worker's answers and receipts at
// once, all requests together, so that a worker answering anonymous
// requests naming it, or GETs of receipt ids it named, with all it may
// cannot exhaust the gateway's memory: an answer is read once as much as
// it may hold (its Content-Length, else the bound above) is free, a
// weighted semaphore's, waiting in turn meanwhile; a caller that hangs up
// stops waiting, and an answer that waited BodyTimeout is not read: the
// caller gets a 503 (worker_busy) with Retry-After, and the worker is not
// marked down (TestWorkerInFlightWait). An answer or receipt holds its
// room until written to its caller, each MiB (CallerPieceBytes) within
// gateway.StreamWriteTimeout (30 s), as each line of a stream: a caller
// that reads nothing has its answer cut and its room given back
// (TestAttackStalledReader, TestAttackStalledCaller).
//
// MCP: the gateway serves the MCP tools of package mcpserver (generate,
// get_receipt, verify_receipt, list_models) over streamable HTTP at
// /mcp, through mcpserver.Forwarder (mcpTools). A session opened with an
// API key (Authorization: Bearer, checked as for /v1) pays from that key's
// account: generate becomes the OpenAI request it describes (chat
// completions for messages, completions for a prompt, the model by id),
// routed, paid and failed over exactly as over HTTP, and its result names
// the serving worker (agent_id, worker); its receipt's text is read from
// the ledger once the worker published it, or from the worker while it
// serves it without credentials, waiting up to ReceiptWait (5 s; else it
// is empty and get_receipt reads it later). A session without an
// Authorization header pays with x402 over MCP (x402's MCP transport):
// generate without _meta["x402/payment"] fails with the quote of the
// worker the router picks (x402's PaymentRequired as structuredContent,
// naming that worker in payTo); with it, the call goes to the worker the
// payment pays and the result carries _meta["x402/payment-response"].
// With NoAuth every session is free. get_receipt reads the ledger, else
// the worker that served the receipt (as GET /v1/receipts/{id}: public).
// verify_receipt checks the signature; the gateway holds no model, so it
// replays nothing: with replay (the default) the result is replayed
// false, its problem saying so; replay a receipt with `verdict verify` or
// on a worker's own /mcp, where its model is. list_models gives each
// model's name and id only (the spec, fingerprint and context length are
// the workers').
//
// Every completion served names its worker: the response's "verdict" object
// gains "agent_id" and "worker" (its address), in the last chunks of a
// stream as for the receipt id, and the response carries the headers
// X-Verdict-Agent-Id and X-Verdict-Worker.
package multigw
