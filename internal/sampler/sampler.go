package sampler

import (
	"fmt"
	"math"

	"github.com/verdictnet/verdict/internal/kernels"
)

// Params select a sampling rule. The zero value is greedy decoding.
type Params struct {
	Temperature float32 // 0 means greedy
	TopK        int     // 0 means no top-k cut
	TopP        float32 // 0 or >= 1 means no top-p cut
	Seed        uint64
}

// Validate checks the ranges of the parameters.
func (p Params) Validate() error {
	switch {
	case !(p.Temperature >= 0) || p.Temperature > 100:
		return fmt.Errorf("temperature %v out of range [0, 100]", p.Temperature)
	case p.TopK < 0:
		return fmt.Errorf("top-k %d is negative", p.TopK)
	case !(p.TopP >= 0) || p.TopP > 1:
		return fmt.Errorf("top-p %v out of range [0, 1]", p.TopP)
	}
	return nil
}

// Greedy reports whether the parameters select argmax decoding.
func (p Params) Greedy() bool { return p.Temperature == 0 }

// Uniform returns the random number in [0, 1) for the token at position
// pos: z = seed + (pos+1) * 0x9E3779B97F4A7C15 (mod 2^64), mixed with the
// SplitMix64 finaliser; the top 24 bits of z, divided by 2^24.
func Uniform(seed uint64, pos int) float32 {
	z := seed + uint64(pos+1)*0x9E3779B97F4A7C15
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	z ^= z >> 31
	return float32(z>>40) / (1 << 24)
}

// Argmax returns the index of the largest logit, the lowest index on ties.
// NaN never wins.
func Argmax(logits []float32) int {
	best := 0
	for i, v := range logits {
		if v > logits[best] || (logits[best] != logits[best] && v == v) {
			best = i
		}
	}
	return best
}

// Sample picks the token at position pos from logits (which it does not
// modify), following docs/determinism.md, "Sampling":
//
//  1. temperature 0: Argmax.
//  2. p_i = Softmax(logit_i / T) (float32 division, canonical softmax).
//  3. sort ids by p descending, ties by id ascending.
//  4. top-k: keep the first k.
//  5. top-p: keep the shortest prefix whose running float32 sum, added in
//     sorted order, exceeds P (all of them if it never does).
//  6. total = float32 running sum of the kept p; r = float32(u * total) with
//     u = Uniform(seed, pos); return the first kept id whose running sum
//     exceeds r, or the last kept id.
func Sample(logits []float32, p Params, pos int) int {
	if p.Greedy() {
		return Argmax(logits)
	}
	probs := make([]float32, len(logits))
	for i, v := range logits {
		probs[i] = v / p.Temperature
	}
	kernels.Softmax(probs)
	ids := sortedIDs(probs)
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

// sortedIDs returns the token ids ordered by probability descending, ties by
// id ascending. Probabilities are non-negative floats, whose bit patterns
// order like their values, so the complemented bits are an ascending key; a
// stable least-significant-digit radix sort over them (three 11-bit digits)
// keeps ids of equal probability in ascending order.
func sortedIDs(probs []float32) []int {
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
