// Package generate runs the text-generation loop: prefill of the prompt,
// then decode with the sampler until the step budget, an end token or a
// stop condition. It reports every logit vector it computes, in position
// order, so that callers can hash or commit to them.
package generate
