package scheduler

import "slices"

// The n-grams draft looks up, longest first.
const (
	draftNgramMax = 3
	draftNgramMin = 2
)

// draft proposes up to k tokens to follow prompt and then output (prompt
// lookup decoding): those that followed the latest earlier occurrence of
// the sequence's last n tokens, for the longest n from draftNgramMax down
// to draftNgramMin that occurred before; none when none did. The result
// is a fresh slice.
func draft(prompt, output []int, k int) []int {
	if k <= 0 {
		return nil
	}
	h := append(slices.Clip(prompt), output...)
	for n := min(draftNgramMax, len(h)-1); n >= draftNgramMin; n-- {
		tail := h[len(h)-n:]
		for j := len(h) - n - 1; j >= 0; j-- {
			if slices.Equal(h[j:j+n], tail) {
				return slices.Clone(h[j+n : min(j+n+k, len(h))])
			}
		}
	}
	return nil
}
