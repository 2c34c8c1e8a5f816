// Package engine runs the forward pass of llama, qwen2 and qwen3 models
// (norm or NEOX RoPE, RoPE frequency factors, Q/K/V biases, per-head Q/K
// norms) under the Verdict determinism
// specification (docs/determinism.md): the logits it returns are the same
// bits whatever the thread count, the batch shape (prefill of many positions
// or decode of one, one sequence or many) and the CPU.
//
// Work is split across threads only by output element: matrix rows,
// (position, head) pairs of attention, rows of a norm. No sum is ever split.
//
// The key/value cache is float32 (SpecVersion) or, with Options.KV =
// KVF16, binary16 (SpecKV16: keys and values rounded where they are
// computed, half the cache's memory and attention's reads); an engine
// implements one spec (Engine.Spec), which receipts and model ids name.
// Its pages are carved from slabs of memory in huge pages
// (internal/hugepage), and attention reads them as one prefetch stream
// (kvAhead); neither enters a result.
package engine
