// Package modelid computes a model's id: the root of a Merkle tree
// (package merkle) that commits to everything that determines the logits and
// nothing else.
//
// Leaf 0 is the manifest, a short text that lists the determinism spec
// version, the hyper-parameters (context length excluded: it bounds how many
// positions may run but changes no logit of a position both files allow),
// the tokenizer's size and special ids, and every tensor's canonical name,
// type, shape and byte length in the canonical order of model.Tensors. Then
// come the tokenizer's bytes in its canonical (SentencePiece) form and every
// tensor's stored bytes, each cut into 64 KiB chunks, one leaf per chunk.
// The manifest alone determines where every chunk lies, so a slice of one
// tensor can be proven with two inclusion proofs: the manifest's and the
// chunk's. docs/protocol.md specifies the format.
package modelid
