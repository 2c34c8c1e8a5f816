package engine

import (
	"runtime"
	"sync"
)

// pool is a fixed set of worker goroutines that run index ranges of one job
// at a time. Which worker computes which range never affects a result: every
// job writes disjoint outputs with a fixed per-element order.
type pool struct {
	n    int
	jobs chan poolJob
	wg   sync.WaitGroup
}

type poolJob struct {
	fn     func(lo, hi int)
	lo, hi int
	done   *sync.WaitGroup
}

func newPool(threads int) *pool {
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	p := &pool{n: threads, jobs: make(chan poolJob, threads)}
	for i := 1; i < threads; i++ {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for j := range p.jobs {
				j.fn(j.lo, j.hi)
				j.done.Done()
			}
		}()
	}
	return p
}

// run calls fn on a partition of [0, n) into at most p.n contiguous ranges,
// each at least grain long, and returns when all have finished. The calling
// goroutine works on the first range.
func (p *pool) run(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if grain < 1 {
		grain = 1
	}
	parts := p.n
	if max := (n + grain - 1) / grain; parts > max {
		parts = max
	}
	if parts <= 1 {
		fn(0, n)
		return
	}
	var done sync.WaitGroup
	done.Add(parts - 1)
	for i := 1; i < parts; i++ {
		p.jobs <- poolJob{fn: fn, lo: n * i / parts, hi: n * (i + 1) / parts, done: &done}
	}
	fn(0, n/parts)
	done.Wait()
}

func (p *pool) close() {
	close(p.jobs)
	p.wg.Wait()
}
