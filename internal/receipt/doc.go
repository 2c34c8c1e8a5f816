// Package receipt defines the signed record of one inference: which model
// (by model id), under which determinism specification, on which prompt
// tokens and sampling parameters, produced which output tokens, with Merkle
// roots over every generated logit vector and over the execution trace, and
// the worker's ed25519 signature over all of it.
//
// A receipt is canonical JSON: fixed field order, no insignificant white
// space, shortest round-trip numbers, token lists packed as base64. The same
// receipt always encodes to the same bytes and Parse rejects every other
// encoding of it, so the receipt id (SHA-256 of the signed canonical bytes)
// is unique. docs/protocol.md specifies the format.
package receipt
