// Package sampler turns a logit vector into the next token: greedy, or
// sampled with temperature, top-k and top-p. The random draw for position p
// is a pure function of (seed, p) — a counter-based generator — so a sampled
// text is exactly as reproducible as a greedy one and can be replayed from
// any position.
package sampler
