package engine

import "github.com/verdictnet/verdict/internal/kernels"

// attendBlock is the largest number of cache positions AttendGroup takes
// as one run: one block of a key/value head (256 positions of head size
// 64: 64 KiB of keys) stays in the core's cache while every query head of
// the group reads it. A run also ends where a cache page ends. A variable
// so that tests can make blocks small.
var attendBlock = 256

// scoreChunk is how many keys of a run every query head of a group scores
// before the next keys: 64 keys of head size 64 (16 KiB) stay in the L1
// cache for the group's heads.
const scoreChunk = 64

// groupScratch is AttendGroup's working memory, reused between calls.
type groupScratch struct {
	scores []float32 // group * n
}

// kvCache is the view of one layer of a sequence's cache that attention
// reads.
type kvCache struct {
	pages []kvPage
	heads int // key/value heads
	hd    int
	page  int // positions of a full page
	f16   bool
}

// cache returns the view of layer l of the sequence's cache.
func (s *Sequence) cache(l int) kvCache {
	return kvCache{pages: s.pages[l], heads: s.heads, hd: s.hd, page: s.page, f16: s.f16}
}

// runs calls fn on the runs of key/value head g's first n positions of a
// float32 cache in order: positions [t0, t1) of one page and one
// attendBlock, their keys and values ((t1-t0)*hd floats each, contiguous).
func (c kvCache) runs(g, n int, fn func(t0, t1 int, keys, values []float32)) {
	hd := c.hd
	c.spans(g, n, func(p *kvPage, j, t0, t1 int) {
		m := t1 - t0
		fn(t0, t1, p.keys(g, hd)[j*hd:(j+m)*hd], p.values(g, c.heads, hd)[j*hd:(j+m)*hd])
	})
}

// runs16 is runs for a binary16 cache: the runs' keys and values as
// binary16 values.
func (c kvCache) runs16(g, n int, fn func(t0, t1 int, keys, values []uint16)) {
	hd := c.hd
	c.spans(g, n, func(p *kvPage, j, t0, t1 int) {
		m := t1 - t0
		fn(t0, t1, p.keys16(g, hd)[j*hd:(j+m)*hd], p.values16(g, c.heads, hd)[j*hd:(j+m)*hd])
	})
}

// spans calls fn on the runs of runs and runs16: page p's positions [j,
// j+t1-t0), which are positions [t0, t1) of the sequence.
func (c kvCache) spans(g, n int, fn func(p *kvPage, j, t0, t1 int)) {
	for t0 := 0; t0 < n; {
		i := t0 / c.page
		p := &c.pages[i]
		j := t0 - i*c.page
		t1 := min(n, i*c.page+p.n, (t0/attendBlock+1)*attendBlock)
		fn(p, j, t0, t1)
		t0 = t1
	}
}

// prefetch asks for the keys and values of key/value head g's first n
// positions to be brought into the L2 cache: the next head's runs arrive
// while this one is attended (short runs of a decode step end before the
// hardware prefetcher gets going).
func (c kvCache) prefetch(g, n int) {
	c.spans(g, n, func(p *kvPage, j, t0, t1 int) {
		hd, m := c.hd, t1-t0
		if c.f16 {
			// Whole words: a head's run starts on one (hd is even).
			kernels.PrefetchL2(p.raw16(g, c.heads, hd, false)[j*hd/2 : (j+m)*hd/2])
			kernels.PrefetchL2(p.raw16(g, c.heads, hd, true)[j*hd/2 : (j+m)*hd/2])
			return
		}
		kernels.PrefetchL2(p.keys(g, hd)[j*hd : (j+m)*hd])
		kernels.PrefetchL2(p.values(g, c.heads, hd)[j*hd : (j+m)*hd])
	})
}

// AttendGroup computes what Attend computes for each of the group query
// heads in qs (group consecutive heads of size hd) that share key/value
// head g of a sequence's cache, over its first n positions, writing the
// heads' outputs to out (group * hd): the same bits, reading each run of
// the cache from memory once for the whole group instead of once per head
// (grouped-query attention: 4 query heads per key/value head on Llama 3.x,
// a 4x smaller cache read at long context).
//
// Every score is the same Dot (kernels.DotMany over a run of contiguous
// keys, scoreChunk keys for every head before the next); the softmax is
// per head over all n. The value sum of a head is the same single pass
// over t = 0, 1, ..., n-1: out starts at +0 and every run continues it
// (kernels.WeightedSumGroup, the group's heads together).
func AttendGroup(qs []float32, group int, c kvCache, g, n int, scale float32, out []float32, sc *groupScratch) {
	hd := c.hd
	sc.scores = growF(sc.scores, group*n)
	scores := sc.scores
	if c.f16 {
		c.runs16(g, n, func(t0, t1 int, keys, _ []uint16) {
			for u0 := t0; u0 < t1; u0 += scoreChunk {
				u1 := min(u0+scoreChunk, t1)
				k := keys[(u0-t0)*hd : (u1-t0)*hd]
				for h := 0; h < group; h++ {
					kernels.DotManyF16(scores[h*n+u0:h*n+u1], qs[h*hd:(h+1)*hd], k)
				}
			}
		})
	} else {
		c.runs(g, n, func(t0, t1 int, keys, _ []float32) {
			for u0 := t0; u0 < t1; u0 += scoreChunk {
				u1 := min(u0+scoreChunk, t1)
				k := keys[(u0-t0)*hd : (u1-t0)*hd]
				for h := 0; h < group; h++ {
					kernels.DotMany(scores[h*n+u0:h*n+u1], qs[h*hd:(h+1)*hd], k, hd, 0)
				}
			}
		})
	}
	for h := 0; h < group; h++ {
		s := scores[h*n : (h+1)*n]
		for t := range s {
			s[t] = s[t] / scale
		}
		kernels.Softmax(s)
	}
	out = out[:group*hd]
	clear(out)
	if c.f16 {
		c.runs16(g, n, func(t0, t1 int, _, values []uint16) {
			kernels.WeightedSumGroupF16(out, group, scores[t0:], n, t1-t0, values, hd)
		})
		return
	}
	c.runs(g, n, func(t0, t1 int, _, values []float32) {
		kernels.WeightedSumGroup(out, group, scores[t0:], n, t1-t0, values, hd)
	})
}

// growF returns s resized to n, reallocating only when it is too small.
func growF(s []float32, n int) []float32 {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]float32, n)
}
