// Package synth writes GGUF files with deterministic random weights in the
// shapes of real models — llama2.c's stories15M and stories110M, SmolLM2
// 135M, Qwen2.5 0.5B, Qwen3 0.6B and 8B, Llama 3.2 1B, Llama 3.1 8B and
// Mistral 7B (architectures llama, qwen2 and qwen3, with their biases, Q/K
// norms and RoPE frequency factors) — and small models of every feature, for
// benchmarks and tests that need a full-size vocabulary and realistic
// matrix sizes but no trained weights. Write and WriteFile take the preset,
// a vocabulary GGUF (its tokenizer.* metadata, chat template included, is
// copied) and a weight type or llama.cpp mix (q4_k_m, q5_k_m).
//
// Weights are a pure function of the seed and the tensor name (a
// counter-based splitmix64 generator), so the same seed always gives the
// same file, whatever the machine. The presets in real shapes scale their
// output norm so that the random model is confident (a top-token
// probability above 0.3 at most positions). The quantizers follow
// llama.cpp's reference implementations (quantize_row_q8_0_ref,
// quantize_row_q4_0_ref, ...) bit for bit, so llama.cpp reads the files as
// it would its own. Writing streams: memory stays at a few blocks of rows.
package synth
