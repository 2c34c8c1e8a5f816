// Package devnet runs a whole Verdict network in one process: a
// single-validator ledger (CometBFT in-process, state under a data
// directory, fresh or resumed), a worker that registers, bonds, serves and
// publishes receipts, a verifier that re-runs receipts and disputes bad
// ones, and the OpenAI-compatible gateway with MCP at /mcp. `verdict
// devnet` is its command line.
//
// The default model is built in (internal/synth's built-in vocabulary and
// random weights, written under the data directory at start, the same
// bytes and model id every time); any GGUF or llama2.c model can be served
// instead.
package devnet
