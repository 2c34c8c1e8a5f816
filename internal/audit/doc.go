// Package audit checks inference receipts against the model: the trace
// commitment a worker signs (Recorder, Builder), exact replay of a whole
// receipt (Replay), spot audits, in which a challenge seed selects a few
// cells (one layer at one position, or one logit vector) that the worker
// opens with Merkle proofs (Open) and a verifier recomputes alone (Check),
// and the referee that recomputes one trace leaf at the end of a dispute
// (Referee, for package dispute).
//
// The trace tree is in computation order, one block per layer: the hidden
// state entering the layer at every position, the key/value vectors of
// every key/value head at every position, the attention outputs at every
// position; then the final hidden states. A layer cell is checked densely
// from its states and attention output, and its attention for one
// challenge-chosen key/value head from that head's key/value leaves, so an
// opening stays small. docs/protocol.md specifies the layout.
package audit
