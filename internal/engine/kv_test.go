package engine

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/testutil"

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

// TestKVSlab: new pages of kvSlabMin bytes or more are carved from one
// slab (in huge pages: internal/hugepage's test), side by side on cache lines, each zeroed and capped
// at its own length (a write or an append to one cannot reach the next);
// smaller ones are allocated alone; reused pages still come back zeroed.
func TestKVSlab(t *testing.T) {
	p := &kvSpare{}
	n := kvSlabMin/4 + 3 // floats: not a whole number of cache lines
	var pages [][]float32
	for range 4 {
		b := p.get(n)
		if len(b) != n || cap(b) != n {
			t.Fatalf("get(%d): len %d cap %d", n, len(b), cap(b))
		}
		for i, v := range b {
			if v != 0 {
				t.Fatalf("new page not zeroed at %d: %v", i, v)
			}
		}
		for i := range b {
			b[i] = 9
		}
		pages = append(pages, b)
	}
	addr := func(b []float32) uintptr { return uintptr(unsafe.Pointer(&b[0])) }
	step := uintptr((n+15)&^15) * 4
	for i := 1; i < len(pages); i++ {
		if d := addr(pages[i]) - addr(pages[i-1]); d != step {
			t.Fatalf("page %d starts %d bytes after page %d, want %d (the next cache line)", i, d, i-1, step)
		}
	}
	pages[0] = append(pages[0], 1) // past its capacity: moves
	if pages[1][0] != 9 {
		t.Fatalf("an append to one page wrote the next")
	}
	left := len(p.rest)
	if small := p.get(kvSlabMin/4 - 1); len(small) != kvSlabMin/4-1 || len(p.rest) != left {
		t.Fatalf("a small page carved from the slab")
	}
	p.put([][]kvPage{{{buf: pages[2], n: 1}}})
	if b := p.get(n); addr(b) != addr(pages[2]) {
		t.Fatalf("a released page not reused")
	} else {
		for i, v := range b {
			if v != 0 {
				t.Fatalf("reused slab page not zeroed at %d: %v", i, v)
			}
		}
	}
}

// TestKVSlabFree: a released page carved from a slab is kept even past
// the limit (left to the collector it would free nothing while the slab's
// other pages live), and a slab is given up, its kept pages with it, once
// all its pages are back and the pages kept pass the limit; not while one
// is out, nor the slab pages are being carved from.
func TestKVSlabFree(t *testing.T) {
	p := &kvSpare{}
	n := kvSlabMin / 4
	seq := func(bufs ...[]float32) [][]kvPage {
		var ps []kvPage
		for _, b := range bufs {
			ps = append(ps, kvPage{buf: b, n: 1})
		}
		return [][]kvPage{ps}
	}
	a1, a2 := p.get(n), p.get(n) // slab A
	if len(p.slabs) != 1 || p.slabs[0].out != 2 {
		t.Fatalf("two pages carved: %d slabs, want 1 with 2 pages out", len(p.slabs))
	}
	big := p.get(kvSlabBytes / 4) // a page of a slab of its own: B, now carved from
	if len(p.slabs) != 2 || p.cur == p.slabOf(a1) {
		t.Fatalf("a page as large as a slab: %d slabs, want 2, carving from the new one", len(p.slabs))
	}
	// a1 comes back on its own: the limit is its size, a2 is out.
	p.put(seq(a1))
	if p.kept != n || len(p.slabs) != 2 {
		t.Fatalf("one page of A back: %d floats kept, %d slabs; want %d, 2", p.kept, len(p.slabs), n)
	}
	// big comes back: the limit rises to it (the pages live together);
	// B is carved from, so kept.
	p.put(seq(big))
	if p.kept != n+kvSlabBytes/4 || len(p.slabs) != 2 {
		t.Fatalf("B back: %d floats kept, %d slabs", p.kept, len(p.slabs))
	}
	// Another page of that size: a1, the smallest kept that fits, goes
	// out again.
	if b := p.get(n); p.slabOf(b) != p.slabOf(a2) || p.slabOf(a2).out != 2 {
		t.Fatalf("a page of A's size not taken back from A")
	} else {
		a1 = b
	}
	// Both A pages back: every page of A is kept. The limit (the most
	// live at once: a1, a2 and big) is not passed: A stays.
	p.put(seq(a1, a2))
	if len(p.slabs) != 2 || p.kept != 2*n+kvSlabBytes/4 {
		t.Fatalf("A all back under the limit: %d slabs, %d floats kept", len(p.slabs), p.kept)
	}
	// Past the limit (it only rises; lowered here by hand, as if the
	// pages live together had been fewer): not while a page of A is out;
	// then the release of that page gives A up, both its pages, but not
	// B, which pages are carved from.
	a1 = p.get(n)
	p.limit = n
	p.put(nil)
	if len(p.slabs) != 2 {
		t.Fatalf("past the limit with a page of A out: %d slabs, want 2", len(p.slabs))
	}
	p.put(seq(a1))
	if len(p.slabs) != 1 || p.slabs[0] != p.cur || p.kept != kvSlabBytes/4 {
		t.Fatalf("past the limit: %d slabs (want only B, carved from), %d floats kept (want B's page)", len(p.slabs), p.kept)
	}
	for _, b := range p.bufs {
		if p.slabOf(b) == nil {
			t.Fatalf("a kept page of a slab given up")
		}
	}
	// A slab's page comes back past the limit: kept all the same, where
	// an allocation of its own (y) would not be.
	q := &kvSpare{}
	x := q.get(n)
	q.put(seq(make([]float32, n))) // the limit: n, the most live at once
	q.put(seq(x))
	if q.kept != 2*n || len(q.bufs) != 2 {
		t.Fatalf("a slab's page past the limit: %d floats in %d pages kept, want %d in 2", q.kept, len(q.bufs), 2*n)
	}
	q.put(seq(make([]float32, n)))
	if q.kept != 2*n {
		t.Fatalf("a page of its own past the limit: %d floats kept, want %d", q.kept, 2*n)
	}
}

// TestKVSlabUnreleased: a sequence dropped without Release hands its slab
// pages back once collected, so that its slabs can be given up.
func TestKVSlabUnreleased(t *testing.T) {
	m, err := model.Load(filepath.Join(testutil.Shared(t, "models"), "stories260K.gguf"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	defer func(v int) { kvSlabMin = v }(kvSlabMin)
	kvSlabMin = 4 << 10 // its pages of 128 positions (32 KiB) from slabs
	e, err := New(m, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	out := func() int { return slabPagesOut(e) }
	func() {
		s, err := e.NewSequence(0)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Forward(&Item{Seq: s, Tokens: []int{1, 2, 3}}); err != nil {
			t.Fatal(err)
		}
	}()
	if n := out(); n != m.Config.Layers {
		t.Fatalf("%d slab pages out, want one a layer (%d)", n, m.Config.Layers)
	}
	for deadline := time.Now().Add(10 * time.Second); out() > 0 && time.Now().Before(deadline); {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n := out(); n != 0 {
		t.Fatalf("%d slab pages still out after the sequence was collected", n)
	}
	// A released one hands them back at once, and the collector's
	// cleanup then finds nothing to hand back twice.
	s, err := e.NewSequence(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Forward(&Item{Seq: s, Tokens: []int{1}}); err != nil {
		t.Fatal(err)
	}
	s.Release()
	kept := e.spare.kept
	s = nil
	runtime.GC()
	time.Sleep(50 * time.Millisecond)
	e.spare.mu.Lock()
	defer e.spare.mu.Unlock()
	if e.spare.kept != kept {
		t.Fatalf("pages kept went from %d to %d floats after the released sequence was collected", kept, e.spare.kept)
	}
}

// slabPagesOut counts the pages of e's slabs handed out and not back.
func slabPagesOut(e *Engine) int {
	e.spare.mu.Lock()
	defer e.spare.mu.Unlock()
	n := 0
	for _, sl := range e.spare.slabs {
		n += sl.out
	}
	return n
}

// TestKVSlabUnreleasedShared drops sequences that share cache pages
// (SharePrefix) without Release: each one's cleanup counts one holder
// fewer and the last hands the shared pages back, so that no slab stays
// pinned. (The cleanup handed back only a sequence's own pages: shared
// ones dropped by all their holders were never back.)
func TestKVSlabUnreleasedShared(t *testing.T) {
	m, err := model.Load(filepath.Join(testutil.Shared(t, "models"), "stories260K.gguf"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	defer func(v int) { kvSlabMin = v }(kvSlabMin)
	kvSlabMin = 4 << 10 // its pages of 32 positions (8 KiB) from slabs
	for _, releaseSrc := range []bool{false, true} {
		t.Run(fmt.Sprintf("release-source=%v", releaseSrc), func(t *testing.T) {
			e, err := New(m, Options{Threads: 1, PagePositions: 32})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			out := func() int { return slabPagesOut(e) }
			func() {
				src, err := e.NewSequence(0)
				if err != nil {
					t.Fatal(err)
				}
				toks := make([]int, e.page+2)
				for i := range toks {
					toks[i] = 1 + i%100
				}
				if err := e.Forward(&Item{Seq: src, Tokens: toks}); err != nil {
					t.Fatal(err)
				}
				var dst [2]*Sequence
				for i := range dst {
					if dst[i], err = e.NewSequence(0); err != nil {
						t.Fatal(err)
					}
					if n, err := dst[i].SharePrefix(src, e.page+1); err != nil || n == 0 {
						t.Fatalf("SharePrefix: %d bytes shared, %v", n, err)
					}
				}
				if releaseSrc {
					src.Release()
				}
				if n := out(); n == 0 {
					t.Fatal("no slab pages out")
				}
			}()
			for deadline := time.Now().Add(10 * time.Second); out() > 0 && time.Now().Before(deadline); {
				runtime.GC()
				time.Sleep(10 * time.Millisecond)
			}
			if n := out(); n != 0 {
				t.Fatalf("%d slab pages still out after the sequences sharing them were collected", n)
			}
		})
	}
}
