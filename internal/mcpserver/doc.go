// Package mcpserver exposes Verdict's verifiable inference as Model Context
// Protocol tools (with the official github.com/modelcontextprotocol/go-sdk),
// so that AI agents can call it without an account or a bespoke client:
//
//	generate        run a generation; returns the text, the receipt id and
//	                the signed receipt (canonical JSON text)
//	get_receipt     fetch a receipt by id, with its ledger status
//	verify_receipt  check a receipt's signature and, when its model is served
//	                here, replay the generation and compare every token and
//	                both Merkle roots
//	list_models     the served models with their model ids
//
// The same server runs over stdio (`verdict mcp`) and over streamable HTTP
// (mounted by the gateway at /mcp). Sampling defaults are the gateway's:
// temperature 1, top_p 1, seed 0.
package mcpserver
