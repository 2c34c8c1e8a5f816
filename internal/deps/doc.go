// Package deps holds no code: its test pins which internal packages may
// depend on which (in the spirit of go/build's deps_test.go), so that the
// layers stay apart: the deterministic engine knows nothing of the ledger
// or the services, the ledger's state machine nothing of its clients, the
// ledger client and the dispute player nothing of the worker, the worker
// nothing of the validator-side proof hooks or of the services built on
// it, and the gateway, the verifier and the MCP server nothing of the
// worker (they share internal/inference's types; the devnet and the CLI
// wire them together).
package deps
