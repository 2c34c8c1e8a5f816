package engine

import (
	"math/rand/v2"
	"testing"

	"github.com/verdictnet/verdict/internal/kernels"
)

// TestKVSpare: a released sequence's pages go to the engine's free list up
// to the floats of the largest sequence released or of the sequences live
// together, come back zeroed, the
// smallest that fits first, and a sequence built on them reads back what
// it stored.
func TestKVSpare(t *testing.T) {
	p := &kvSpare{}
	mk := func(sizes ...int) [][]kvPage {
		var ps []kvPage
		for _, n := range sizes {
			b := make([]float32, n)
			for i := range b {
				b[i] = 7
			}
			ps = append(ps, kvPage{buf: b, n: 1})
		}
		return [][]kvPage{ps}
	}
	p.put(mk(100, 50))
	if p.kept != 150 || p.limit != 150 {
		t.Fatalf("after one sequence: %d floats kept, limit %d; want 150, 150", p.kept, p.limit)
	}
	p.put(mk(40, 40)) // 80 more would pass the limit of 150: none kept
	if p.kept != 150 || len(p.bufs) != 2 {
		t.Fatalf("after a smaller sequence: %d floats in %d buffers kept, want 150 in 2", p.kept, len(p.bufs))
	}
	b := p.get(45)
	if cap(b) != 50 || len(b) != 45 || p.kept != 100 {
		t.Fatalf("get(45): capacity %d, length %d, %d floats left; want the 50-float buffer, 100 left", cap(b), len(b), p.kept)
	}
	for i, v := range b {
		if v != 0 {
			t.Fatalf("reused buffer not zeroed at %d: %v", i, v)
		}
	}
	if b := p.get(200); cap(b) != 200 || p.kept != 100 {
		t.Fatalf("get(200): capacity %d, %d floats left; want a new buffer, 100 left", cap(b), p.kept)
	}
	// Sequences live together are kept together: three of 60 floats
	// handed out, then released, all come back for the next three.
	q := &kvSpare{}
	var held [][][]kvPage
	for range 3 {
		held = append(held, [][]kvPage{{{buf: q.get(60), n: 1}}})
	}
	for _, h := range held {
		q.put(h)
	}
	if q.kept != 180 || q.limit != 180 || q.live != 0 {
		t.Fatalf("three live sequences released: %d floats kept, limit %d, %d live; want 180, 180, 0", q.kept, q.limit, q.live)
	}
	for range 3 {
		q.get(60)
	}
	if q.kept != 0 || q.allocated.Load() != 180 || q.reused.Load() != 180 {
		t.Fatalf("three more: %d kept, %d allocated, %d reused; want 0, 180, 180", q.kept, q.allocated.Load(), q.reused.Load())
	}
	var nilSpare *kvSpare
	if b := nilSpare.get(3); len(b) != 3 {
		t.Fatalf("nil spare: %d floats", len(b))
	}
	nilSpare.put(mk(10)) // kept nowhere, no panic

	// A sequence of 3 heads of 5 (binary16: 6, an even head size as
	// every model's), pages of 4 positions, cap 10 (the last page 2
	// positions): every position's vectors read back (binary16: rounded,
	// once).
	rng := rand.New(rand.NewPCG(3, 4))
	for _, f16 := range []bool{false, true} {
		hd, words := 5, 2
		if f16 {
			hd, words = 6, 1
		}
		kvd := 3 * hd
		s := &Sequence{cap: 10, heads: 3, hd: hd, page: 4, pages: make([][]kvPage, 2), spare: p, f16: f16}
		s.reserve(10)
		if len(s.pages[1]) != 3 || s.pages[1][2].n != 2 || len(s.pages[1][2].buf) != words*3*2*hd {
			t.Fatalf("f16 %v: pages of layer 1: %d, the last of %d positions and %d words", f16, len(s.pages[1]), s.pages[1][2].n, len(s.pages[1][2].buf))
		}
		want := make([][2][]float32, 10)
		for pos := range want {
			k, v := make([]float32, kvd), make([]float32, kvd)
			for i := range k {
				k[i], v[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
			}
			s.store(1, pos, k, v)
			if f16 {
				kernels.RoundF16(k)
				kernels.RoundF16(v)
			}
			want[pos] = [2][]float32{k, v}
		}
		for pos, kv := range want {
			k, v := s.KV(1, pos)
			for i := range k {
				if k[i] != kv[0][i] || v[i] != kv[1][i] {
					t.Fatalf("f16 %v: position %d element %d: %v %v, stored %v %v", f16, pos, i, k[i], v[i], kv[0][i], kv[1][i])
				}
			}
		}
		// Head 1's keys and values at positions 4..7 are one run of page 1.
		c := s.cache(1)
		var got, gotV []float32
		if f16 {
			c.runs16(1, 10, func(t0, t1 int, keys, values []uint16) {
				if t0 == 4 {
					got, gotV = make([]float32, len(keys)), make([]float32, len(values))
					kernels.F16sToF32(got, keys)
					kernels.F16sToF32(gotV, values)
				}
			})
		} else {
			c.runs(1, 10, func(t0, t1 int, keys, values []float32) {
				if t0 == 4 {
					got, gotV = keys, values
				}
			})
		}
		if len(got) != 4*hd || got[0] != want[4][0][hd] || got[4*hd-1] != want[7][0][2*hd-1] || gotV[0] != want[4][1][hd] {
			t.Fatalf("f16 %v: run of positions 4..7: %d floats, %v", f16, len(got), got)
		}
	}
}
