package sampler

import (
	"math"

	"github.com/verdictnet/verdict/internal/kernels"
)

// sampleRef is the straightforward implementation Sample replaced: the
// whole vocabulary sorted, every step of docs/determinism.md, "Sampling",
// done literally. Tests compare Sample with it.
func sampleRef(logits []float32, p Params, pos int) int {
	if p.Greedy() {
		return Argmax(logits)
	}
	probs := make([]float32, len(logits))
	for i, v := range logits {
		probs[i] = v / p.Temperature
	}
	kernels.Softmax(probs)
	return pickRef(probs, p, pos)
}

// pickRef is steps 3-6 of sampleRef.
func pickRef(probs []float32, p Params, pos int) int {
	ids := sortedIDsRef(probs)
	n := len(ids)
	if p.TopK > 0 && p.TopK < n {
		n = p.TopK
	}
	if p.TopP > 0 && p.TopP < 1 {
		var cum float32
		for i := 0; i < n; i++ {
			cum = cum + probs[ids[i]]
			if cum > p.TopP {
				n = i + 1
				break
			}
		}
	}
	var total float32
	for _, id := range ids[:n] {
		total = total + probs[id]
	}
	r := float32(Uniform(p.Seed, pos) * total)
	var cum float32
	for _, id := range ids[:n] {
		cum = cum + probs[id]
		if cum > r {
			return id
		}
	}
	return ids[n-1]
}

// sortedIDsRef orders ids by probability descending, ties by id ascending,
// NaN last, with a stable radix sort over the complemented bits.
func sortedIDsRef(probs []float32) []int {
	n := len(probs)
	keys, ids := make([]uint32, n), make([]int32, n)
	for i, p := range probs {
		bits := math.Float32bits(p)
		if p != p {
			bits = 0 // NaN sorts last
		}
		keys[i], ids[i] = ^bits, int32(i)
	}
	tk, ti := make([]uint32, n), make([]int32, n)
	for shift := uint(0); shift < 32; shift += 11 {
		var count [1 << 11]int
		for _, k := range keys {
			count[k>>shift&(1<<11-1)]++
		}
		sum := 0
		for d, c := range count {
			count[d] = sum
			sum += c
		}
		for i, k := range keys {
			d := k >> shift & (1<<11 - 1)
			tk[count[d]], ti[count[d]] = k, ids[i]
			count[d]++
		}
		keys, tk, ids, ti = tk, keys, ti, ids
	}
	out := make([]int, n)
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}
