package engine

import "github.com/verdictnet/verdict/internal/kernels"

// attendBlock is the number of cache positions AttendGroup takes at a time:
// one block of a key/value head (256 positions of head size 64: 64 KiB of
// keys) stays in the core's cache while every query head of the group reads
// it. A variable so that tests can make blocks small.
var attendBlock = 256

// groupScratch is AttendGroup's working memory, reused between calls.
type groupScratch struct {
	scores []float32 // group * n
	a      []float32 // 1 + attendBlock
	v      []float32 // (1 + attendBlock) * head size
}

// AttendGroup computes what Attend computes for each of the group query
// heads in qs (group consecutive heads of size hd) that share one key/value
// head at column off, writing the heads' outputs to out (group * hd): the
// same bits, reading each block of the cache from memory once for the
// whole group instead of once per head (grouped-query attention: 4 query
// heads per key/value head on Llama 3.x, a 4x smaller cache read at long
// context).
//
// Every score is the same Dot; the softmax is per head over all n. The
// value sum of a head is the same single pass over t = 0, 1, ..., n-1: a
// block after the first is summed by WeightedSum over a copy of its rows
// preceded by one row holding the head's sum so far with weight 1
// (0 + float32(1 * s) = s exactly: a running sum that starts at +0 is
// never -0), so that the sum continues where the last block left it.
func AttendGroup(qs []float32, group, hd int, keys, values []float32, stride, off, n int, scale float32, out []float32, sc *groupScratch) {
	B := attendBlock
	sc.scores = growF(sc.scores, group*n)
	for t0 := 0; t0 < n; t0 += B {
		t1 := min(t0+B, n)
		for h := 0; h < group; h++ {
			kernels.DotMany(sc.scores[h*n+t0:h*n+t1], qs[h*hd:(h+1)*hd], keys[t0*stride:], stride, off)
		}
	}
	for h := 0; h < group; h++ {
		s := sc.scores[h*n : (h+1)*n]
		for t := range s {
			s[t] = s[t] / scale
		}
		kernels.Softmax(s)
	}
	t1 := min(B, n)
	for h := 0; h < group; h++ {
		kernels.WeightedSum(out[h*hd:(h+1)*hd], sc.scores[h*n:h*n+t1], values, stride, off)
	}
	if t1 == n {
		return
	}
	sc.a = growF(sc.a, 1+B)
	sc.v = growF(sc.v, (1+B)*hd)
	for t0 := B; t0 < n; t0 += B {
		t1 := min(t0+B, n)
		m := t1 - t0
		for t := t0; t < t1; t++ {
			copy(sc.v[(1+t-t0)*hd:(2+t-t0)*hd], values[t*stride+off:t*stride+off+hd])
		}
		sc.a[0] = 1
		for h := 0; h < group; h++ {
			o := out[h*hd : (h+1)*hd]
			copy(sc.v[:hd], o)
			copy(sc.a[1:1+m], sc.scores[h*n+t0:h*n+t1])
			kernels.WeightedSum(o, sc.a[:1+m], sc.v[:(1+m)*hd], hd, 0)
		}
	}
}

// growF returns s resized to n, reallocating only when it is too small.
func growF(s []float32, n int) []float32 {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]float32, n)
}
