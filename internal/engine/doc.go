// Package engine runs the LLaMA forward pass under the Verdict determinism
// specification (docs/determinism.md): the logits it returns are the same
// bits whatever the thread count, the batch shape (prefill of many positions
// or decode of one, one sequence or many) and the CPU.
//
// Work is split across threads only by output element: matrix rows,
// (position, head) pairs of attention, rows of a norm. No sum is ever split.
package engine
