package engine

import "github.com/verdictnet/verdict/internal/kernels"

// attendBlock is the largest number of cache positions AttendGroup takes
// as one run: one block of a key/value head (256 positions of head size
// 64: 64 KiB of keys) stays in the core's cache while every query head of
// the group reads it. A run also ends where a cache page ends. A variable
// so that tests can make blocks small.
var attendBlock = 256

// attendPiece is how many positions of a run AttendGroup reads at a time:
// every query head of a group scores a piece's keys (16 keys of head size
// 64: 4 KiB, in the L1 cache for the group's heads) before the next, and
// the value sums take a piece at a time; before each piece the unit's
// kvAhead asks for as many words further on.
const attendPiece = 16

// attendAhead is how far ahead of what attention reads its kvAhead
// prefetches: 2048 words, 8 KiB.
const attendAhead = 2048

// groupScratch is AttendGroup's working memory, reused between calls.
type groupScratch struct {
	scores []float32 // group * n
	ahead  kvAhead
}

// kvAhead prefetches into the L2 cache the cache runs a thread's attention
// units will read, a fixed distance (attendAhead) ahead of what they read,
// a piece at a time as they read it: to it the short runs of a decode
// step's units (a sequence's key/value head, 12.5 KiB of keys and as much
// of values at position 50 of the 110m shape) are one stream, across the
// units. Where the whole next unit was asked for at once before each unit,
// most of those prefetches waited for the core's miss buffers, and the
// step's attention took as long as with no prefetch at all; with the cache
// in huge pages (kvSpare.newPageLocked) and this stream, 20-25% less
// (docs/benchmarks.md, session 20). A prefetch is a hint: nothing read
// changes.
type kvAhead struct {
	spans [][]float32 // the stream's runs, in the order read: spans[i] from off on are next
	i     int
	off   int
	// more adds the next unit's runs (kvCache.streams) to the stream;
	// false when no unit is left.
	more func(add func([]float32)) bool
}

// prefetchL2 is kernels.PrefetchL2; tests record what is asked for.
var prefetchL2 = kernels.PrefetchL2

// start begins a thread's units (more adds each one's runs in turn) and
// asks for the first attendAhead words.
func (a *kvAhead) start(more func(add func([]float32)) bool) {
	a.spans, a.i, a.off, a.more = a.spans[:0], 0, 0, more
	a.advance(attendAhead)
}

// stop ends the thread's units: later advances ask for nothing.
func (a *kvAhead) stop() {
	clear(a.spans)
	a.spans, a.i, a.off, a.more = a.spans[:0], 0, 0, nil
}

func (a *kvAhead) add(s []float32) {
	if len(s) > 0 {
		a.spans = append(a.spans, s)
	}
}

// advance asks for the next n words of the stream (none without start).
func (a *kvAhead) advance(n int) {
	for n > 0 {
		if a.i == len(a.spans) {
			clear(a.spans)
			a.spans, a.i = a.spans[:0], 0
			if a.more == nil || !a.more(a.add) {
				a.more = nil
				return
			}
			continue
		}
		s := a.spans[a.i]
		m := min(n, len(s)-a.off)
		prefetchL2(s[a.off : a.off+m])
		a.off += m
		n -= m
		if a.off == len(s) {
			a.i++
			a.off = 0
		}
	}
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

// streams adds to add the words attention reads of key/value head g's
// first n positions, in the order AttendGroup reads them: the keys' runs,
// then the values' (a binary16 cache's as the float32 words that hold
// them: a head's run of n*hd halves is n*hd/2 whole words, hd even).
func (c kvCache) streams(g, n int, add func([]float32)) {
	hd := c.hd
	for _, values := range []bool{false, true} {
		c.spans(g, n, func(p *kvPage, j, t0, t1 int) {
			m := t1 - t0
			switch {
			case c.f16:
				add(p.raw16(g, c.heads, hd, values)[j*hd/2 : (j+m)*hd/2])
			case values:
				add(p.values(g, c.heads, hd)[j*hd : (j+m)*hd])
			default:
				add(p.keys(g, hd)[j*hd : (j+m)*hd])
			}
		})
	}
}

// AttendGroup computes what Attend computes for each of the group query
// heads in qs (group consecutive heads of size hd) that share key/value
// head g of a sequence's cache, over its first n positions, writing the
// heads' outputs to out (group * hd): the same bits, reading each run of
// the cache from memory once for the whole group instead of once per head
// (grouped-query attention: 4 query heads per key/value head on Llama 3.x,
// a 4x smaller cache read at long context).
//
// Every score is the same Dot (kernels.DotMany over a piece of contiguous
// keys, attendPiece keys for every head before the next); the softmax is
// per head over all n. The value sum of a head is the same single pass
// over t = 0, 1, ..., n-1: out starts at +0 and every piece continues it
// (kernels.WeightedSumGroup, the group's heads together). With sc.ahead
// started (layerAttend), what the units read next is prefetched as it
// reads.
func AttendGroup(qs []float32, group int, c kvCache, g, n int, scale float32, out []float32, sc *groupScratch) {
	hd := c.hd
	sc.scores = growF(sc.scores, group*n)
	scores := sc.scores
	if c.f16 {
		c.runs16(g, n, func(t0, t1 int, keys, _ []uint16) {
			for u0 := t0; u0 < t1; u0 += attendPiece {
				u1 := min(u0+attendPiece, t1)
				sc.ahead.advance((u1 - u0) * hd / 2)
				k := keys[(u0-t0)*hd : (u1-t0)*hd]
				for h := 0; h < group; h++ {
					kernels.DotManyF16(scores[h*n+u0:h*n+u1], qs[h*hd:(h+1)*hd], k)
				}
			}
		})
	} else {
		c.runs(g, n, func(t0, t1 int, keys, _ []float32) {
			for u0 := t0; u0 < t1; u0 += attendPiece {
				u1 := min(u0+attendPiece, t1)
				sc.ahead.advance((u1 - u0) * hd)
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
			for u0 := t0; u0 < t1; u0 += attendPiece {
				u1 := min(u0+attendPiece, t1)
				sc.ahead.advance((u1 - u0) * hd / 2)
				kernels.WeightedSumGroupF16(out, group, scores[u0:], n, u1-u0, values[(u0-t0)*hd:(u1-t0)*hd], hd)
			}
		})
		return
	}
	c.runs(g, n, func(t0, t1 int, _, values []float32) {
		for u0 := t0; u0 < t1; u0 += attendPiece {
			u1 := min(u0+attendPiece, t1)
			sc.ahead.advance((u1 - u0) * hd)
			kernels.WeightedSumGroup(out, group, scores[u0:], n, u1-u0, values[(u0-t0)*hd:(u1-t0)*hd], hd)
		}
	})
}

// growF returns s resized to n, reallocating only when it is too small.
func growF(s []float32, n int) []float32 {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]float32, n)
}
