package engine

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPoolCoversEveryIndexOnce checks that run hands every index of [0, n)
// to exactly one call, in contiguous ranges of at least grain (except when
// n itself is smaller) that start at multiples of grain, for several
// thread counts, and from several goroutines at once.
func TestPoolCoversEveryIndexOnce(t *testing.T) {
	for _, threads := range []int{1, 2, 3, 8} {
		p := newPool(threads)
		for _, tc := range []struct{ n, grain int }{{0, 1}, {1, 1}, {2, 1}, {7, 3}, {16, 16}, {100, 1}, {1000, 16}, {4097, 64}, {32000, 16}, {2048, 16}, {151936, 16}} {
			t.Run(fmt.Sprintf("threads=%d/n=%d/grain=%d", threads, tc.n, tc.grain), func(t *testing.T) {
				var wg sync.WaitGroup
				for g := 0; g < 3; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						hits := make([]atomic.Int32, tc.n)
						var short, unaligned atomic.Int32
						p.run(tc.n, tc.grain, func(lo, hi int) {
							if hi-lo < tc.grain && hi-lo < tc.n {
								short.Add(1)
							}
							if lo%tc.grain != 0 {
								unaligned.Add(1)
							}
							for i := lo; i < hi; i++ {
								hits[i].Add(1)
							}
						})
						for i := range hits {
							if h := hits[i].Load(); h != 1 {
								t.Errorf("index %d run %d times", i, h)
								return
							}
						}
						if short.Load() != 0 {
							t.Errorf("%d ranges shorter than the grain", short.Load())
						}
						if unaligned.Load() != 0 {
							t.Errorf("%d ranges start off a multiple of the grain", unaligned.Load())
						}
					}()
				}
				wg.Wait()
			})
		}
		p.close()
	}
}

// TestPoolSegments checks that runSegs hands every index of every
// segment to exactly one call of that segment's function, in ranges of at
// least its grain (except where n is smaller), segments of no indices
// among them, for several thread counts and from several goroutines at
// once; and that the ranges are those run makes for the segment alone.
func TestPoolSegments(t *testing.T) {
	type shape struct{ n, grain int }
	for _, threads := range []int{1, 2, 3, 8} {
		p := newPool(threads)
		for ci, shapes := range [][]shape{{{0, 1}}, {{0, 1}, {0, 4}}, {{5, 1}, {0, 1}, {1000, 16}}, {{1, 1}, {1, 1}, {1, 1}}, {{768, 16}, {768, 16}, {768, 16}}, {{2048, 16}, {16, 1}}, {{4097, 64}, {7, 3}, {0, 2}, {100, 1}}} {
			t.Run(fmt.Sprintf("threads=%d/case=%d", threads, ci), func(t *testing.T) {
				var wg sync.WaitGroup
				for g := 0; g < 3; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						hits := make([][]atomic.Int32, len(shapes))
						ranges := make([][][2]int, len(shapes))
						var mu sync.Mutex
						segs := make([]seg, len(shapes))
						for i, sh := range shapes {
							hits[i] = make([]atomic.Int32, sh.n)
							segs[i] = seg{n: sh.n, grain: sh.grain, fn: func(lo, hi int) {
								mu.Lock()
								ranges[i] = append(ranges[i], [2]int{lo, hi})
								mu.Unlock()
								for j := lo; j < hi; j++ {
									hits[i][j].Add(1)
								}
							}}
						}
						p.runSegs(segs...)
						for i, sh := range shapes {
							for j := range hits[i] {
								if h := hits[i][j].Load(); h != 1 {
									t.Errorf("segment %d index %d run %d times", i, j, h)
									return
								}
							}
							var alone [][2]int
							p.run(sh.n, sh.grain, func(lo, hi int) {
								mu.Lock()
								alone = append(alone, [2]int{lo, hi})
								mu.Unlock()
							})
							slices.SortFunc(ranges[i], func(a, b [2]int) int { return a[0] - b[0] })
							slices.SortFunc(alone, func(a, b [2]int) int { return a[0] - b[0] })
							if !slices.Equal(ranges[i], alone) {
								t.Errorf("segment %d (n %d grain %d): ranges %v, alone %v", i, sh.n, sh.grain, ranges[i], alone)
							}
							for _, r := range ranges[i] {
								if r[1]-r[0] < sh.grain && r[1]-r[0] < sh.n {
									t.Errorf("segment %d: range %v shorter than the grain %d", i, r, sh.grain)
								}
							}
						}
					}()
				}
				wg.Wait()
			})
		}
		p.close()
	}
}

// TestPoolSlowPartAndPark checks that run returns only once every part is
// done when a part outlasts the caller's polling (the caller then sleeps
// until the last part wakes it), and that jobs after park (workers asleep
// at once) still cover every index.
func TestPoolSlowPartAndPark(t *testing.T) {
	for _, threads := range []int{2, 3} {
		p := newPool(threads)
		for round := range 20 {
			var done atomic.Int32
			p.run(8, 1, func(lo, hi int) {
				if lo == 0 {
					time.Sleep(time.Duration(round%4) * waitSpin)
				}
				done.Add(int32(hi - lo))
			})
			if d := done.Load(); d != 8 {
				t.Fatalf("threads %d round %d: run returned with %d of 8 indices done", threads, round, d)
			}
			if round%2 == 0 {
				p.park()
			}
			var sum atomic.Int64
			p.run(1000, 1, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					sum.Add(int64(i))
				}
			})
			if s := sum.Load(); s != 999*1000/2 {
				t.Fatalf("threads %d round %d: sum %d after park", threads, round, s)
			}
		}
		p.close()
	}
}

// TestPoolHold checks that idle workers poll instead of sleeping while a
// pass holds the pool, however long the wait between its jobs, go to
// sleep once it is released, poll while warm until park or the warm time
// is up, and that the pool runs every job and closes.
func TestPoolHold(t *testing.T) {
	p := newPool(3)
	defer p.close()
	asleep := func(want int32) bool {
		// Workers fall asleep spinFor after their last job, and wake
		// some time after a job's broadcast; allow for a loaded
		// machine.
		for range 2000 {
			if p.sleepers.Load() == want {
				return true
			}
			time.Sleep(time.Millisecond)
		}
		return false
	}
	var sum atomic.Int64
	job := func() {
		p.run(100, 1, func(lo, hi int) { sum.Add(int64(hi - lo)) })
	}
	job()
	if !asleep(2) {
		t.Fatalf("%d of 2 idle workers asleep after a job", p.sleepers.Load())
	}
	release := p.hold()
	job() // wakes them; they stay awake
	if !asleep(0) {
		t.Fatalf("%d workers still asleep after a job", p.sleepers.Load())
	}
	for range 10 {
		time.Sleep(5 * spinFor)
		if n := p.sleepers.Load(); n != 0 {
			t.Fatalf("%d workers asleep while the pool is held", n)
		}
		job()
	}
	release()
	if !asleep(2) {
		t.Fatalf("%d of 2 idle workers asleep after the release", p.sleepers.Load())
	}
	job()
	// warm: polling until its time is up (the job wakes the sleepers
	// first), or until park.
	p.warm(time.Hour)
	job()
	if !asleep(0) {
		t.Fatalf("%d workers still asleep after a job", p.sleepers.Load())
	}
	time.Sleep(10 * spinFor)
	if n := p.sleepers.Load(); n != 0 {
		t.Fatalf("%d workers asleep while the pool is warm", n)
	}
	p.park()
	if !asleep(2) {
		t.Fatalf("%d of 2 idle workers asleep after park", p.sleepers.Load())
	}
	job()
	p.warm(5 * spinFor)
	if !asleep(2) {
		t.Fatalf("%d of 2 idle workers asleep after the warm time", p.sleepers.Load())
	}
	job()
	if s := sum.Load(); s != 16*100 {
		t.Fatalf("%d indices done, want %d", s, 16*100)
	}
}

func BenchmarkPoolDispatch(b *testing.B) {
	p := newPool(2)
	defer p.close()
	var sink atomic.Int64
	for b.Loop() {
		p.run(768, 16, func(lo, hi int) { sink.Add(int64(hi - lo)) })
	}
}

// TestPoolRunsInOrder checks the order in which a thread claims a job's
// parts: its own run first, front to back, then the other threads' runs
// from their ends. Thread 0 here works alone.
func TestPoolRunsInOrder(t *testing.T) {
	for _, tc := range []struct {
		threads int
		parts   int64
		want    []int64
	}{
		{1, 5, []int64{0, 1, 2, 3, 4}},
		{2, 8, []int64{0, 1, 2, 3, 7, 6, 5, 4}},
		{2, 1, []int64{0}},
		{3, 7, []int64{0, 1, 3, 2, 6, 5, 4}},
	} {
		var got []int64
		j := &poolJob{parts: tc.parts, segs: []seg{{n: int(tc.parts), grain: 1, parts: tc.parts, fn: func(lo, hi int) {
			got = append(got, int64(lo))
		}}}}
		j.runs = make([]partRun, tc.threads)
		for r := range j.runs {
			n := int64(tc.threads)
			j.runs[r].set(int64(r)*tc.parts/n, int64(r+1)*tc.parts/n)
		}
		j.work(0)
		if !slices.Equal(got, tc.want) {
			t.Errorf("threads %d, parts %d: thread 0 alone ran %v, want %v", tc.threads, tc.parts, got, tc.want)
		}
		if d := j.done.Load(); d != tc.parts {
			t.Errorf("threads %d, parts %d: done %d", tc.threads, tc.parts, d)
		}
	}
}

// TestPartRunClaims has an owner claim a run from the front while two
// others claim it from the end: every part goes to exactly one of them.
func TestPartRunClaims(t *testing.T) {
	const n = 20000
	var r partRun
	r.set(3, n)
	hits := make([]atomic.Int32, n)
	var wg sync.WaitGroup
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := r.claim(g != 0)
				if i < 0 {
					return
				}
				hits[i].Add(1)
			}
		}()
	}
	wg.Wait()
	for i := range hits {
		want := int32(1)
		if i < 3 {
			want = 0
		}
		if h := hits[i].Load(); h != want {
			t.Fatalf("part %d claimed %d times, want %d", i, h, want)
		}
	}
}
