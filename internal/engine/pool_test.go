package engine

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPoolCoversEveryIndexOnce checks that run hands every index of [0, n)
// to exactly one call, in contiguous ranges of at least grain (except when
// n itself is smaller), for several thread counts, and from several
// goroutines at once.
func TestPoolCoversEveryIndexOnce(t *testing.T) {
	for _, threads := range []int{1, 2, 3, 8} {
		p := newPool(threads)
		for _, tc := range []struct{ n, grain int }{{0, 1}, {1, 1}, {2, 1}, {7, 3}, {16, 16}, {100, 1}, {1000, 16}, {4097, 64}} {
			t.Run(fmt.Sprintf("threads=%d/n=%d/grain=%d", threads, tc.n, tc.grain), func(t *testing.T) {
				var wg sync.WaitGroup
				for g := 0; g < 3; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						hits := make([]atomic.Int32, tc.n)
						var short atomic.Int32
						p.run(tc.n, tc.grain, func(lo, hi int) {
							if hi-lo < tc.grain && hi-lo < tc.n {
								short.Add(1)
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

func BenchmarkPoolDispatch(b *testing.B) {
	p := newPool(2)
	defer p.close()
	var sink atomic.Int64
	for b.Loop() {
		p.run(768, 16, func(lo, hi int) { sink.Add(int64(hi - lo)) })
	}
}
