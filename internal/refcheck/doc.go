// Package refcheck checks that Verdict's engine computes what llama.cpp
// computes on the same GGUF file: llama.cpp defines what a GGUF means.
//
// RunLlama runs llama.cpp through the npm package node-llama-cpp (its
// prebuilt CPU binaries) on a text that llama.cpp tokenizes itself, teacher-
// forced: the full next-token distribution at every position of one batch,
// then a greedy generation from the text's first tokens. TeacherForced and
// Greedy run Verdict's engine on the same tokens (one prefill batch with the
// logits of every position; token-by-token decode). Compare and
// GreedyReport.Check say whether the two agree:
//
//   - the most probable token is the same at >= Criteria.MinTopAgree of the
//     positions (99%);
//   - every position where it is not is a near-tie in llama.cpp's own
//     distribution: ln p(llama.cpp's top) - ln p(Verdict's top) <=
//     Criteria.NearTie;
//   - the probabilities differ by at most Criteria.MaxAbs (max over
//     positions and tokens of |p_Verdict - p_llama.cpp|) and, on average over
//     positions, by at most Criteria.MeanAbs;
//   - the greedy generations are the same up to the first step where they
//     differ, and that step is a near-tie in llama.cpp's distribution.
//
// llama.cpp runs with flash attention off, an F32 KV cache (keys and values;
// node-llama-cpp's experimentalKvCache*Type, checked in llama.cpp's own log),
// the whole text in one batch and micro-batch, and the thread count of the
// request; its matrix products quantise activations (to F16 for F16 weights,
// Q8_0 / Q8_K for quantised ones) and fuse multiply-adds, so it is not
// bit-equal to Verdict and the bounds are measured, per weight type; the
// package's tests state them (see agree_test.go and the README).
//
// The tests need node and e2e/node_modules (npm ci in e2e/); outside CI they
// skip without them, in CI they fail.
package refcheck
