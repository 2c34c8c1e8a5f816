package worker

import (
	"math"

	"github.com/verdictnet/verdict/internal/detmath"
	"github.com/verdictnet/verdict/internal/inference"
	"github.com/verdictnet/verdict/internal/kernels"
)

// MaxTopLogprobs is the most alternatives reported per token (OpenAI's
// limit): inference.MaxTopLogprobs.
const MaxTopLogprobs = inference.MaxTopLogprobs

// MinLogprob stands for the log-probability of a token whose probability
// underflows to zero: inference.MinLogprob.
const MinLogprob = inference.MinLogprob

// logprobs holds the log-probabilities of one logit vector. They are
// reporting, not part of the receipt, but still deterministic: the canonical
// softmax of docs/determinism.md (temperature 1), then detmath.Log64 of each
// probability, rounded to 6 decimals.
type logprobs struct {
	p []float32
}

func (l *logprobs) set(logits []float32) {
	l.p = append(l.p[:0], logits...)
	kernels.Softmax(l.p)
}

func logOf(p float32) float64 {
	if !(p > 0) {
		return MinLogprob
	}
	v := math.Round(detmath.Log64(float64(p))*1e6) / 1e6
	if v < MinLogprob {
		return MinLogprob
	}
	return v
}

func (l *logprobs) of(tok int) float64 {
	if tok < 0 || tok >= len(l.p) {
		return MinLogprob
	}
	return logOf(l.p[tok])
}

// top returns the k most likely token ids, by probability descending and id
// ascending on ties.
func (l *logprobs) top(k int) []int {
	k = min(k, len(l.p), MaxTopLogprobs)
	if k <= 0 {
		return nil
	}
	// NaN ranks below every number.
	key := func(i int) float32 {
		if p := l.p[i]; p == p {
			return p
		}
		return -1
	}
	ids := make([]int, 0, k+1)
	for i := range l.p {
		p := key(i)
		if len(ids) == k && !(p > key(ids[k-1])) {
			continue
		}
		// Insert after every id with a higher or equal probability (those
		// have lower ids on ties, since ids come in ascending order).
		j := len(ids)
		for j > 0 && p > key(ids[j-1]) {
			j--
		}
		ids = append(ids, 0)
		copy(ids[j+1:], ids[j:])
		ids[j] = i
		if len(ids) > k {
			ids = ids[:k]
		}
	}
	return ids
}
