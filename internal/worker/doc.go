// Package worker is the in-process inference service: it loads a model, runs
// generations on the deterministic engine, signs a receipt for each one and
// keeps the receipts it produced in a Store.
//
// A Local worker is what the gateway and the MCP server call in phase 1;
// later phases put remote workers, chosen by stake and reputation, behind the
// same methods.
//
// Every generation is fully determined by its receipt: the prompt tokens, the
// sampling parameters (seed included), the step count and the stop tokens.
// When a stop string ends a generation early, the receipt's step count is
// lowered to the positions actually fed, so that replaying the receipt yields
// exactly the tokens returned.
package worker
