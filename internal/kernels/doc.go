// Package kernels implements the numeric kernels of the Verdict determinism
// specification (docs/determinism.md): the canonical 16-lane dot product and
// sums, matrix-vector and matrix-matrix products over F32, F16, BF16, Q8_0
// and Q4_0 weights, RMSNorm, softmax, RoPE and SwiGLU.
//
// The functions in this package define the bits. A fast path (assembly or
// SIMD) may replace the body of a kernel only if it produces the same bits
// for every input; the reference implementations here are the oracle its
// tests compare against.
package kernels
