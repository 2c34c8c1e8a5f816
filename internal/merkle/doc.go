// Package merkle implements the SHA-256 binary Merkle tree of RFC 6962
// (Certificate Transparency), used by every commitment in Verdict: model ids,
// logit roots, trace roots and dispute openings.
//
// Hashes are domain separated: a leaf is SHA-256(0x00 || data) and an
// interior node SHA-256(0x01 || left || right). A tree of n > 1 leaves splits
// at k, the largest power of two smaller than n; the empty tree's root is
// SHA-256 of the empty string. Builder computes a root while keeping only
// O(log n) hashes; Tree keeps every level of hashes (never the leaf data) and
// produces inclusion proofs, which Verify checks with the algorithm of
// RFC 9162 section 2.1.3.2.
package merkle
