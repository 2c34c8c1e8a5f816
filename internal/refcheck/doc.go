// Package refcheck checks that Verdict's engine computes what llama.cpp
// computes on the same GGUF file: llama.cpp defines what a GGUF means.
//
// RunLlama runs llama.cpp through the npm package node-llama-cpp (its
// prebuilt CPU binaries) on a text that llama.cpp tokenizes itself, teacher-
// forced: llama.cpp's 64 most probable next tokens at every position of one
// batch, then a greedy generation from the text's first tokens. TeacherForced
// and Greedy run Verdict's engine on the same tokens (one prefill batch with
// the logits of every position; token-by-token decode). Compare and
// GreedyReport.Check say whether the two agree:
//
//   - the most probable token (Verdict's over the whole vocabulary) is the
//     same at >= Criteria.MinTopAgree of the positions (99%);
//   - every position where it is not is a near-tie in llama.cpp's own
//     distribution: ln p(llama.cpp's top) - ln p(Verdict's top) <=
//     Criteria.NearTie (or, see below, a probability gap within the noise
//     floor);
//   - the probabilities, both engines' renormalised over llama.cpp's 64
//     most probable tokens (a softmax restricted to a set of tokens depends
//     only on the logits of that set), differ by at most Criteria.MaxAbs,
//     and on average over positions by at most Criteria.MeanAbs;
//   - the greedy generations are the same up to the first step where they
//     differ, and that step is a near-tie in llama.cpp's distribution.
//
// Floor measures the noise floor of such a comparison: Verdict against
// Verdict on the same weights computed without quantised activations
// (Exact: every quantised matrix converted to F32 with exactly its
// dequantised values). In models whose activations are quantised for the
// matrix products (Q8_0, Q4_0, the K types and their fallbacks) that is far
// more than rounding: now and then a rounding difference moves an
// activation across a boundary of its 8-bit quantisation, the jump of a
// whole quantum moves the next products' activations across theirs, and
// two engines whose arithmetic differs in any ulp (llama.cpp fuses
// multiply-adds and sums in other orders) end up about as far apart as
// either is from exact activations. The tests of such models bound the
// difference by twice that floor where it is larger than the stated
// bounds; TestAgreeIsolated checks each quantised product alone (one layer,
// the other matrices in F32), where the two engines must agree to rounding
// and at most a few quanta.
//
// llama.cpp against itself: Request.Self runs llama.cpp's teacher-forced
// evaluation again under Variants that change only its rounding (token by
// token against one batch, which swaps its matrix-matrix kernels for
// matrix-vector ones; other batch sizes; other thread counts), and
// CompareTops compares two such answers as Compare compares Verdict with
// llama.cpp. On the quantised presets in real shapes llama.cpp's token-by-
// token run disagrees with its one-batch run about as often, and as far, as
// Verdict does (see the README): the tests hold Verdict to twice that
// distance too, besides the floor.
//
// llama.cpp runs with flash attention off, an F32 KV cache (keys and values;
// node-llama-cpp's experimentalKvCache*Type, checked in llama.cpp's own log),
// the whole text in one batch and micro-batch, and two threads; its matrix
// products quantise the activations (to F16 for F16 weights, Q8_0 / Q8_K for
// quantised ones, where Verdict multiplies F16 weights by f32 activations),
// so it is not bit-equal to Verdict and the bounds are measured, per model
// and weight type (see agree_test.go and the README).
//
// The tests need node and node-llama-cpp in e2e/node_modules (npm ci in
// e2e/); outside CI they skip without them, in CI they fail.
package refcheck
