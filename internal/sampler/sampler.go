package sampler

import (
	"fmt"
	"math"
	"math/bits"
	"sync"

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
// NaN never wins. (kernels.Argmax: vectorised where the CPU allows, the
// same index as the scalar rule.)
func Argmax(logits []float32) int { return kernels.Argmax(logits) }

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
//
// An empty logit vector gives 0; vectors of 2^32 or more are not supported
// (ids are packed in 32 bits; model vocabularies are capped far below).
// Sample allocates nothing once warm (its buffers come from a pool) and is
// safe for concurrent use.
//
// It returns what the steps above return, computed with less work:
//
//   - Dividing by a power of two is multiplying by its exact reciprocal
//     (both are the correctly rounded value of the same real number).
//   - Only the probabilities of at least 2^-25 are sorted. Every other one
//     sorts after all of them, and adding it to a running sum s leaves s
//     unchanged whenever s ⊕ m = s for m the largest of them (rounding is
//     monotonic): Sample checks that, and when it holds the unsorted tail
//     cannot change a running sum, a top-p cut or the draw. When it does not
//     hold, or the draw falls on the last kept id inside the tail, or a
//     probability is NaN or negative, Sample sorts everything.
func Sample(logits []float32, p Params, pos int) int {
	if p.Greedy() {
		return Argmax(logits)
	}
	n := len(logits)
	if n == 0 {
		return 0
	}
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	s.grow(n)
	probs := s.probs
	if inv, ok := exactReciprocal(p.Temperature); ok {
		for i, v := range logits {
			probs[i] = v * inv
		}
	} else {
		for i, v := range logits {
			probs[i] = v / p.Temperature
		}
	}
	kernels.Softmax(probs)
	return s.pick(probs, p, pos)
}

// pick applies steps 3-6 of Sample to probs (of length at least 1), using
// the scratch's buffers.
func (s *scratch) pick(probs []float32, p Params, pos int) int {
	n := len(probs)
	// Sort the probabilities that can matter; note the largest of the rest.
	items := s.items[:n]
	c := 0
	var maxNeg uint32 // bits of the largest probability below 2^-25
	bmin, bmax := uint32(infBits), uint32(negligibleBits)
	odd := false
	for i, q := range probs {
		b := math.Float32bits(q)
		switch {
		case b < negligibleBits: // +0, subnormal or below 2^-25
			maxNeg = max(maxNeg, b) // non-negative floats order like their bits
		case b <= infBits:
			items[c] = uint64(^b)<<32 | uint64(i)
			c++
			bmin, bmax = min(bmin, b), max(bmax, b)
		default: // NaN, or a negative sign
			odd = true
		}
	}
	if !odd {
		sorted := sortItems(items[:c], s.tmp[:c], &s.count, ^bmax, ^bmin)
		if id, ok := chooseSorted(sorted, s.pre[:c], n, math.Float32frombits(maxNeg), p, pos); ok {
			return id
		}
	}
	klo, khi := ^uint32(0), uint32(0)
	for i, q := range probs {
		k := sortKey(q)
		items[i] = uint64(k)<<32 | uint64(i)
		klo, khi = min(klo, k), max(khi, k)
	}
	return choose(probs, sortItems(items, s.tmp[:n], &s.count, klo, khi), p, pos)
}

// chooseSorted applies steps 4-6 of Sample to the start of the sorted
// order of non-negative, non-NaN probabilities, packed as key<<32 | id
// where the key is the complement of the probability's bits; the
// n - len(sorted) ids after it each have a probability in [0, maxNeg].
// pre (as long as sorted) receives the running sums. ok is false when the
// answer depends on the order of the ids after sorted.
//
// Adding non-negative values, the running sums never decrease (rounding is
// monotonic), so the draw is a binary search over them; and when the kept
// ids run into the tail, total ⊕ maxNeg = total means that every running
// sum there equals total, so that neither the top-p cut nor the draw can
// end inside it.
func chooseSorted(sorted []uint64, pre []float32, n int, maxNeg float32, p Params, pos int) (id int, ok bool) {
	c := len(sorted)
	k := n
	if p.TopK > 0 && p.TopK < n {
		k = p.TopK
	}
	m := min(k, c)
	topP := p.TopP > 0 && p.TopP < 1
	var total float32
	for i, it := range sorted[:m] {
		total = total + math.Float32frombits(^uint32(it>>32))
		pre[i] = total
		if topP && total > p.TopP {
			k, m = i+1, i+1
			break
		}
	}
	if k > c && float32(total+maxNeg) != total {
		return 0, false
	}
	r := float32(Uniform(p.Seed, pos) * total)
	lo, hi := 0, m // the first i < m with pre[i] > r lies in [lo, hi]
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if pre[mid] > r {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	switch {
	case lo < m:
		return int(uint32(sorted[lo])), true
	case k > c:
		return 0, false // the last kept id lies in the unsorted tail
	}
	return int(uint32(sorted[k-1])), true
}

// choose applies steps 4-6 of Sample, literally, to the whole sorted
// order (packed as key<<32 | id) of any probabilities.
func choose(probs []float32, sorted []uint64, p Params, pos int) int {
	n := len(sorted)
	if p.TopK > 0 && p.TopK < n {
		n = p.TopK
	}
	if p.TopP > 0 && p.TopP < 1 {
		var cum float32
		for i, it := range sorted[:n] {
			cum = cum + probs[uint32(it)]
			if cum > p.TopP {
				n = i + 1
				break
			}
		}
	}
	var total float32
	for _, it := range sorted[:n] {
		total = total + probs[uint32(it)]
	}
	r := float32(Uniform(p.Seed, pos) * total)
	var cum float32
	for _, it := range sorted[:n] {
		cum = cum + probs[uint32(it)]
		if cum > r {
			return int(uint32(it))
		}
	}
	return int(uint32(sorted[n-1]))
}

const (
	negligibleBits = 0x33000000 // float32 bits of 2^-25
	infBits        = 0x7F800000 // float32 bits of +Inf
)

// exactReciprocal returns 1/t when it is exact, that is when t is a power
// of two whose reciprocal is a normal float32; then x/t == x*(1/t) for
// every x.
func exactReciprocal(t float32) (float32, bool) {
	b := math.Float32bits(t) &^ (1 << 31)
	exp := b >> 23
	if b&(1<<23-1) != 0 || exp < 1 || exp > 253 {
		return 0, false
	}
	return 1 / t, true
}

// sortKey is the ascending sort key of a probability: its complemented
// bits (non-negative floats order like their bits), NaN last.
func sortKey(q float32) uint32 {
	if q != q {
		return ^uint32(0)
	}
	return ^math.Float32bits(q)
}

// sortItems sorts items (key<<32 | id, distinct, ids ascending) in
// ascending order, that is by key, ties by id, using tmp (of the same
// length) and count as scratch, and returns the sorted slice (items or
// tmp). klo and khi are the smallest and largest key (unused below 33
// items). Short inputs are sorted by insertion; longer ones by a stable
// least-significant-digit radix sort of key - klo, with as few digits of
// at most maxDigitBits bits as that span needs (two for the probabilities
// a softmax gives over a 32000-token vocabulary), so ids of equal keys
// keep their ascending order.
func sortItems(items, tmp []uint64, count *[1 << maxDigitBits]uint32, klo, khi uint32) []uint64 {
	n := len(items)
	if n <= 32 {
		insertionSort(items)
		return items
	}
	span := khi - klo
	width := uint(bits.Len32(span))
	if width == 0 {
		return items // one key: already in id order
	}
	widest := min(maxDigitBits, max(4, uint(bits.Len(uint(n))))) // counts no longer than the input
	passes := (width + widest - 1) / widest
	digit := (width + passes - 1) / passes
	mask := uint32(1)<<digit - 1
	src, dst := items, tmp
	for shift := uint(0); shift < width; shift += digit {
		cnt := count[:mask+1]
		clear(cnt)
		for _, it := range src {
			cnt[(uint32(it>>32)-klo)>>shift&mask]++
		}
		var sum uint32
		for d, c := range cnt {
			cnt[d] = sum
			sum += c
		}
		for _, it := range src {
			d := (uint32(it>>32) - klo) >> shift & mask
			dst[cnt[d]] = it
			cnt[d]++
		}
		src, dst = dst, src
	}
	return src
}

// maxDigitBits is the widest radix digit: its counts fill 64 KiB.
const maxDigitBits = 14

// insertionSort sorts a short slice in ascending order.
func insertionSort(a []uint64) {
	for i := 1; i < len(a); i++ {
		v := a[i]
		j := i
		for ; j > 0 && a[j-1] > v; j-- {
			a[j] = a[j-1]
		}
		a[j] = v
	}
}

// scratch holds the buffers of one Sample call.
type scratch struct {
	probs      []float32
	items, tmp []uint64
	pre        []float32 // running sums
	count      [1 << maxDigitBits]uint32
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// grow sizes the buffers for n logits.
func (s *scratch) grow(n int) {
	if cap(s.probs) < n || cap(s.items) < n || cap(s.tmp) < n || cap(s.pre) < n {
		s.probs, s.pre = make([]float32, n), make([]float32, n)
		s.items, s.tmp = make([]uint64, n), make([]uint64, n)
	}
	s.probs, s.pre, s.items, s.tmp = s.probs[:n], s.pre[:n], s.items[:n], s.tmp[:n]
}
