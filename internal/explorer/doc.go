// Package explorer is Verdict's web explorer: server-rendered pages over a
// ledger node, served by the gateway at /explorer/ and by `verdict
// explorer` on their own.
//
//	GET /explorer/                    overview: height, block time, validators,
//	                                  receipts per second, audits, open disputes
//	GET /explorer/models              models and the voting power attesting them
//	GET /explorer/workers             workers: agent, stake, reputation, receipts,
//	                                  audits answered, disputes won and lost, jail
//	GET /explorer/receipt/{id}        a receipt: status timeline, prompt and output
//	                                  (decoded when the explorer holds the model),
//	                                  roots, audited cells, dispute rounds, the
//	                                  `verdict verify` command
//	GET /explorer/receipt/{id}/json   the receipt's bytes, to download
//	GET /explorer/account/{addr}      an account: balance, stake, agents, receipts
//	GET /explorer/search?q=ID         a receipt or account by id
//	GET /explorer/events              server-sent events, one per block
//
// An Index follows the chain block by block (client.Follower) and keeps
// what the ledger cannot list: the receipts, agents, models and disputes
// that exist, each receipt's timeline and each worker's counts; the rest is
// read from the ledger through its typed queries when a page is drawn.
// Pages refresh themselves on every block (a little JavaScript swaps in the
// new content); without JavaScript they are complete but static.
//
// Everything shown that came from the ledger (prompts, outputs, model
// names, agent URIs) is text escaped by html/template, and every page
// carries a Content-Security-Policy that runs only the explorer's own
// script. An unknown or malformed id is a 404 page, a node that does not
// answer a 502 page.
package explorer
