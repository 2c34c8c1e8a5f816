// Package explorer is Verdict's web explorer: server-rendered pages over a
// ledger node, served by the gateway at /explorer/ and by `verdict
// explorer` on their own.
//
//	GET /explorer/                    overview: height, block time, validators,
//	                                  receipts per second, audits, open disputes
//	GET /explorer/models[?page=N]     models in the order registered, 100 a
//	                                  page, and the voting power attesting them
//	GET /explorer/workers[?page=N]    workers by stake, 100 a page: agent, stake,
//	                                  reputation, receipts, audits answered,
//	                                  disputes won and lost, jail
//	GET /explorer/receipt/{id}        a receipt: status timeline, prompt and output
//	                                  (decoded when the explorer holds the model),
//	                                  roots, audited cells, dispute rounds, the
//	                                  `verdict verify` command
//	GET /explorer/receipt/{id}/json   the receipt's bytes, to download
//	GET /explorer/account/{addr}      an account: balance, stake, agents (the
//	                                  first 100), receipts
//	GET /explorer/search?q=ID         a receipt or account by id
//	GET /explorer/events              server-sent events, one per block
//
// An Index follows the chain block by block (client.Follower) and keeps
// what the ledger cannot list: the receipts, agents, models and disputes
// that exist, each receipt's timeline, each worker's counts, and each
// agent's owner, wallet and URI (from the identity events); the rest is
// read from the ledger through its typed queries when a page is drawn.
// Pages refresh themselves on every block (a little JavaScript swaps in the
// new content); without JavaScript they are complete but static.
//
// The node the explorer reads is, on `verdict worker`, the one the worker
// needs for its audits and disputes, and registering an agent costs about
// a fee unit: no page asks it a question per agent. An account's agents
// are looked up in the index; the workers page is drawn from the index,
// and the records it shows that change only with events the index sees
// (a stake, an agent's name and summaries; a model's record for the
// models page) are read again only after such an event: its first
// drawing reads every row's stake once, a later one the height and what
// changed. The models page is drawn from the index a page at a time
// (registering a model costs a fee, cheaply) and reads the validators and
// its page's models that changed. The statuses of the receipts an
// account page (50) and the overview (20) list are kept in the index
// until an event of the receipt. A page is drawn once per block however
// often it is asked for (every open browser asks at each block), at most
// Options.MaxBuilds pages at once (beyond, 503 with Retry-After), and at
// most Options.ClientRate a second for each client (a token bucket of
// Options.ClientBurst per IP address, IPv6 /64, behind
// Options.TrustedProxies the address their X-Forwarded-For names; beyond,
// 429 with Retry-After: a page already drawn in the block is free, and
// searches and receipt downloads count); at most Options.MaxStreams event
// streams are open (beyond, 503; the script then polls).
//
// Everything shown that came from the ledger (prompts, outputs, model
// names, agent URIs) is text escaped by html/template, and every page
// carries a Content-Security-Policy that runs only the explorer's own
// script. An unknown or malformed id is a 404 page, a node that does not
// answer a 502 page.
package explorer
