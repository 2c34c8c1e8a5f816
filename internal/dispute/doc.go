// Package dispute is the refereed bisection game of Verde (refereed
// delegation): two parties who committed Merkle roots over the same ordered
// cells of one computation, and agree on the input before cell 0, are led to
// the first cell where their traces differ; a referee recomputes that one
// cell from the agreed state before it and names the party (or parties)
// whose committed state disagrees.
//
// The referee is a pure, message-driven state machine in the style of
// etcd's raft: it does no I/O and reads no clock. The caller delivers party
// messages with Step and the passage of time (block heights) with Tick, and
// sends the messages those calls return. The game walks down the RFC 6962
// tree of the two roots: each round both parties open the two children of
// the node where they differ, which the referee checks against the node
// hash they committed to one level up. At a leaf d, one more round opens the
// agreed leaf d-1 with an inclusion proof, and the referee recomputes cell
// d. A party loses when it opens children that do not hash to its node, a
// leaf value without a valid proof, two different answers to the same query
// (equivocation), or nothing before the deadline; each loss is recorded as a
// Fault code (the ledger's consensus data) beside its words (for people),
// as is a game that ends with no loser. The game takes at most
// ceil(log2 N) + 1 rounds for N cells. A referee whose cell reads more
// inputs than one answer can carry (Folder: an attention leaf reads the
// keys and values of every position before it) asks for them in parts, one
// round each, and folds each part into a small state: the game then takes
// one more round per part, and stays within a fixed answer size however
// long the computation.
package dispute
