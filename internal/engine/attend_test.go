package engine

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/testutil"
)

// pagedCache returns the paged cache (pages of page positions) of a flat
// one: n positions of heads key/value heads of hd, rows of heads*hd.
func pagedCache(keys, values []float32, heads, hd, n, page int) kvCache {
	s := &Sequence{cap: n, heads: heads, hd: hd, page: page, pages: make([][]kvPage, 1)}
	s.reserveLayer(0, n)
	kv := heads * hd
	for t := 0; t < n; t++ {
		s.store(0, t, keys[t*kv:(t+1)*kv], values[t*kv:(t+1)*kv])
	}
	return s.cache(0)
}

// TestAttendGroupEqualsAttend: the grouped attention over a paged cache
// gives every head the bits of Attend over the flat cache, for pages of 1,
// 5, 16 and 256 positions and blocks of 1, 3, 7 and 256 against caches of
// 1 to 300 positions (blocks and pages that do not divide them, one
// block, many).
func TestAttendGroupEqualsAttend(t *testing.T) {
	defer func(b int) { attendBlock = b }(attendBlock)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct{ group, kvHeads, hd int }{{4, 2, 16}, {2, 3, 8}, {1, 1, 64}, {7, 1, 4}, {8, 2, 17}} {
		stride := c.kvHeads * c.hd
		for _, page := range []int{1, 5, 16, 256} {
			for _, block := range []int{1, 3, 7, 256} {
				attendBlock = block
				var sc groupScratch
				for _, n := range []int{1, 2, 7, 8, 22, 300} {
					keys, values := make([]float32, n*stride), make([]float32, n*stride)
					for i := range keys {
						keys[i], values[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64()*3)
					}
					qs := make([]float32, c.group*c.hd)
					for i := range qs {
						qs[i] = float32(rng.NormFloat64() * 2)
					}
					cache := pagedCache(keys, values, c.kvHeads, c.hd, n, page)
					for g := 0; g < c.kvHeads; g++ {
						got := make([]float32, c.group*c.hd)
						AttendGroup(qs, c.group, cache, g, n, 8, got, &sc)
						for h := 0; h < c.group; h++ {
							want := make([]float32, c.hd)
							Attend(qs[h*c.hd:(h+1)*c.hd], keys, values, stride, g*c.hd, n, 8, want, make([]float32, n))
							for i := range want {
								if math.Float32bits(got[h*c.hd+i]) != math.Float32bits(want[i]) {
									t.Fatalf("group %d, head size %d, page %d, block %d, %d positions, kv head %d, head %d, element %d: %v, Attend %v",
										c.group, c.hd, page, block, n, g, h, i, got[h*c.hd+i], want[i])
								}
							}
						}
					}
				}
			}
		}
	}
}

// BenchmarkAttendDepth is one decode step's attention over 8192 cached
// positions in the Llama 3.2 1B shape (32 query heads, 8 key/value heads of
// 64), cycling over 4 layers' caches (128 MiB: from memory, as in a real
// step): per query head (Attend over a flat cache, the reference), per
// head over the paged cache (AttendGroup of one head) and per group
// (AttendGroup).
func BenchmarkAttendDepth(b *testing.B) {
	const n, heads, kvHeads, hd, layers = 8192, 32, 8, 64, 4
	group, stride := heads/kvHeads, kvHeads*hd
	rng := rand.New(rand.NewPCG(1, 2))
	var keys, values [layers][]float32
	var caches [layers]kvCache
	for l := range keys {
		keys[l], values[l] = make([]float32, n*stride), make([]float32, n*stride)
		for i := range keys[l] {
			keys[l][i], values[l][i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		}
		caches[l] = pagedCache(keys[l], values[l], kvHeads, hd, n, kvPagePositions)
	}
	q, out, scores := make([]float32, heads*hd), make([]float32, heads*hd), make([]float32, n)
	for i := range q {
		q[i] = float32(rng.NormFloat64())
	}
	b.Run("flat-per-head", func(b *testing.B) {
		defer cpuMetric(b)()
		l := 0
		for b.Loop() {
			for h := 0; h < heads; h++ {
				Attend(q[h*hd:(h+1)*hd], keys[l], values[l], stride, (h/group)*hd, n, 8, out[h*hd:(h+1)*hd], scores)
			}
			l = (l + 1) % layers
		}
	})
	b.Run("per-head", func(b *testing.B) {
		var sc groupScratch
		defer cpuMetric(b)()
		l := 0
		for b.Loop() {
			for h := 0; h < heads; h++ {
				AttendGroup(q[h*hd:(h+1)*hd], 1, caches[l], h/group, n, 8, out[h*hd:(h+1)*hd], &sc)
			}
			l = (l + 1) % layers
		}
	})
	b.Run("grouped", func(b *testing.B) {
		var sc groupScratch
		defer cpuMetric(b)()
		l := 0
		for b.Loop() {
			for g := 0; g < kvHeads; g++ {
				AttendGroup(q[g*group*hd:(g+1)*group*hd], group, caches[l], g, n, 8, out[g*group*hd:(g+1)*group*hd], &sc)
			}
			l = (l + 1) % layers
		}
	})
}

// cpuMetric locks the benchmark to its thread and, when the returned
// function runs, reports the thread's CPU time per iteration (on a loaded
// machine the wall clock also counts the time other work held the core).
func cpuMetric(b *testing.B) func() {
	runtime.LockOSThread()
	t0 := threadCPU()
	return func() {
		b.ReportMetric(float64(threadCPU()-t0)/1e6/float64(b.N), "cpu-ms/op")
		runtime.UnlockOSThread()
	}
}

func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1, &ru); err != nil { // RUSAGE_THREAD
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestKVAheadStream: the units' prefetch stream asks for every word the
// units read, once, in the order they read it, attendAhead words ahead:
// when a unit starts, exactly the words up to attendAhead past its first
// have been asked for (AttendGroup advances by what it reads, binary16
// runs counted in whole words); after stop, nothing.
func TestKVAheadStream(t *testing.T) {
	var got []uintptr // the words asked for, by address
	defer func(f func([]float32)) { prefetchL2 = f }(prefetchL2)
	prefetchL2 = func(x []float32) {
		for i := range x {
			got = append(got, uintptr(unsafe.Pointer(&x[i])))
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	const heads, hd, page = 2, 64, 100
	for _, f16 := range []bool{false, true} {
		s := &Sequence{cap: 300, heads: heads, hd: hd, page: page, pages: make([][]kvPage, 1), f16: f16}
		s.reserveLayer(0, 300)
		for pos := 0; pos < 300; pos++ {
			k, v := make([]float32, heads*hd), make([]float32, heads*hd)
			for i := range k {
				k[i], v[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
			}
			s.store(0, pos, k, v)
		}
		c := s.cache(0)
		units := []struct{ g, n int }{{0, 300}, {1, 37}, {1, 150}, {0, 1}, {0, 256}}
		var want []uintptr
		var starts []int
		// What AttendGroup reads, as its runs give it: every key, then
		// every value (binary16: the words holding them).
		for _, u := range units {
			starts = append(starts, len(want))
			for _, values := range []bool{false, true} {
				if f16 {
					c.runs16(u.g, u.n, func(_, _ int, keys, vals []uint16) {
						x := keys
						if values {
							x = vals
						}
						for i := 0; i < len(x); i += 2 {
							want = append(want, uintptr(unsafe.Pointer(&x[i])))
						}
					})
					continue
				}
				c.runs(u.g, u.n, func(_, _ int, keys, vals []float32) {
					x := keys
					if values {
						x = vals
					}
					for i := range x {
						want = append(want, uintptr(unsafe.Pointer(&x[i])))
					}
				})
			}
		}
		got = got[:0]
		var sc groupScratch
		next := 0
		sc.ahead.start(func(add func([]float32)) bool {
			if next == len(units) {
				return false
			}
			c.streams(units[next].g, units[next].n, add)
			next++
			return true
		})
		q, out := make([]float32, hd), make([]float32, hd)
		for i, u := range units {
			if w := min(starts[i]+attendAhead, len(want)); len(got) != w {
				t.Fatalf("f16 %v: unit %d starts with %d words asked for, want %d", f16, i, len(got), w)
			}
			AttendGroup(q, 1, c, u.g, u.n, 8, out, &sc)
		}
		sc.ahead.stop()
		sc.ahead.advance(100)
		if !slices.Equal(got, want) {
			t.Fatalf("f16 %v: %d words asked for, want the %d read, in order", f16, len(got), len(want))
		}
		// Stopped before its units are done: nothing more.
		next = 0
		sc.ahead.start(func(add func([]float32)) bool {
			next++
			c.streams(0, 300, add)
			return true
		})
		sc.ahead.stop()
		n := len(got)
		sc.ahead.advance(100)
		AttendGroup(q, 1, c, 0, 300, 8, out, &sc)
		if len(got) != n {
			t.Fatalf("f16 %v: %d words asked for after stop", f16, len(got)-n)
		}
	}
}

// TestLayerAttendStream: in a decode step, the units' prefetch streams
// ask for exactly the words attention reads, each once, with units of
// key/value heads (one thread) and of query heads (four threads, one row),
// on a model of two query heads per key/value head.
func TestLayerAttendStream(t *testing.T) {
	m, err := model.Load(filepath.Join(testutil.Shared(t, "models"), "stories260K.gguf"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var mu sync.Mutex
	var got []uintptr
	defer func(f func([]float32)) { prefetchL2 = f }(prefetchL2)
	prefetchL2 = func(x []float32) {
		mu.Lock()
		defer mu.Unlock()
		for i := range x {
			got = append(got, uintptr(unsafe.Pointer(&x[i])))
		}
	}
	for _, c := range []struct{ threads, rows int }{{1, 3}, {4, 1}} {
		e, err := New(m, Options{Threads: c.threads})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		var items []*Item
		for r := 0; r < c.rows; r++ {
			s, err := e.NewSequence(0)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Forward(&Item{Seq: s, Tokens: []int{1, 20 + r, 30, 40 + r}}); err != nil {
				t.Fatal(err)
			}
			items = append(items, &Item{Seq: s, Tokens: []int{7 + r}})
		}
		byKV := c.threads == 1
		st := &state{n: c.rows}
		if e.attendByKVHead(st) != byKV {
			t.Fatalf("threads %d, rows %d: units of key/value heads %v, want %v", c.threads, c.rows, !byKV, byKV)
		}
		mu.Lock()
		got = got[:0]
		mu.Unlock()
		if err := e.Forward(items...); err != nil {
			t.Fatal(err)
		}
		// What the step's attention read: every layer, every row, every
		// key/value head (once per query head of its group, for units of
		// query heads), its cache at the new position's depth.
		var want []uintptr
		group := m.Config.Heads / m.Config.KVHeads
		for l := 0; l < m.Config.Layers; l++ {
			for _, it := range items {
				for h := 0; h < m.Config.Heads; h++ {
					if byKV && h%group != 0 {
						continue
					}
					it.Seq.cache(l).streams(h/group, it.Seq.Pos, func(x []float32) {
						for i := range x {
							want = append(want, uintptr(unsafe.Pointer(&x[i])))
						}
					})
				}
			}
		}
		mu.Lock()
		slices.Sort(got)
		slices.Sort(want)
		ok := slices.Equal(got, want)
		n := len(got)
		mu.Unlock()
		if !ok {
			t.Fatalf("threads %d, rows %d: %d words asked for, want the %d read, each once", c.threads, c.rows, n, len(want))
		}
	}
}
