// Package synth writes LLaMA GGUF files with deterministic random weights in
// the shapes of real models (llama2.c's stories15M and stories110M), for
// benchmarks and tests that need a full-size vocabulary and realistic
// matrix sizes but no trained weights.
//
// Weights are a pure function of the seed and the tensor name (a
// counter-based splitmix64 generator), so the same seed always gives the
// same file, whatever the machine. The quantizers follow llama.cpp's
// reference implementations (quantize_row_q8_0_ref, quantize_row_q4_0_ref)
// bit for bit, so llama.cpp reads the files as it would its own.
package synth
