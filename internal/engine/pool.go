package engine

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// pool is a fixed set of worker goroutines that run index ranges of one job
// at a time. Which worker computes which range never affects a result: every
// job writes disjoint outputs with a fixed per-element order.
//
// Dispatch is built for the many small jobs of a decode step (a dozen per
// layer): the job is published through an atomic generation counter that
// idle workers spin on for a short while (spinFor), or through the whole
// forward pass (hold) or until the pass expected next (warm), before they
// sleep on a condition variable, so a job usually starts without waking
// an OS thread.
// A job is cut into more parts than threads, claimed one at a time, so that
// a thread the OS pre-empts does not hold the others up. Each thread owns a
// contiguous run of the parts and claims them in order, from the front;
// one whose run is empty takes the others' parts from their ends (runs).
type pool struct {
	n int

	runMu sync.Mutex // one job at a time (Engine is safe for concurrent use)
	job   atomic.Pointer[poolJob]
	gen   atomic.Uint64

	mu       sync.Mutex
	cond     *sync.Cond
	sleepers atomic.Int32
	closed   atomic.Bool
	// hot counts the passes under way (hold): while it is not zero, idle
	// workers poll for the next job however long it takes instead of
	// sleeping after spinFor.
	hot atomic.Int32
	// warmUntil (Unix nanoseconds): until then idle workers poll too
	// (warm).
	warmUntil atomic.Int64
	wg        sync.WaitGroup
}

type poolJob struct {
	segs  []seg
	parts int64
	// runs[t] is the parts thread t owns: [t*parts/n, (t+1)*parts/n) of
	// the job's parts numbered through its segments, n the pool's threads.
	runs   []partRun
	inline [2]partRun // runs of a pool of at most two threads
	done   atomic.Int64
	// The caller, once it has polled for waitSpin, sets waiting and
	// sleeps on finished; the worker that finishes the last part then
	// wakes it.
	waiting  atomic.Bool
	finished chan struct{}
}

// spinFor is how long an idle worker polls for the next job before it
// sleeps: long enough for the gaps between the jobs of one forward pass,
// short enough not to take the CPU from other work between passes (on the
// shared 2-core machine at load 14, 200 µs of polling cost 15-25% of the
// tokens per CPU second of a serving run: see docs/benchmarks.md).
const spinFor = 20 * time.Microsecond

// waitSpin is how long the caller of run polls for the parts other
// threads still compute before it sleeps: a thread the OS has pre-empted
// (a loaded machine) may hold a part for milliseconds, and polling all
// that time would take the CPU from it.
const waitSpin = 20 * time.Microsecond

// partsPerThread is how many parts a job is cut into per thread, at most.
const partsPerThread = 4

func newPool(threads int) *pool {
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	p := &pool{n: threads}
	p.cond = sync.NewCond(&p.mu)
	for i := 1; i < threads; i++ {
		p.wg.Add(1)
		go p.worker(i)
	}
	return p
}

// worker is thread id of the pool (the caller of run is thread 0).
func (p *pool) worker(id int) {
	defer p.wg.Done()
	var seen uint64
	spin := true
	for {
		g, ok := p.wait(seen, spin)
		if !ok {
			return
		}
		seen = g
		// A generation without a job is park's: sleep until the next.
		j := p.job.Load()
		spin = j != nil
		if j != nil {
			j.work(id)
		}
	}
}

// wait returns the first generation after seen, or false once the pool is
// closed; it polls for a while first when spin is set.
func (p *pool) wait(seen uint64, spin bool) (uint64, bool) {
	var deadline time.Time
	for i := 0; spin; i++ {
		if g := p.gen.Load(); g != seen {
			return g, true
		}
		if p.closed.Load() {
			return 0, false
		}
		if i&255 == 255 {
			runtime.Gosched() // lets other goroutines run where threads exceed GOMAXPROCS
			now := time.Now()
			if deadline.IsZero() {
				deadline = now.Add(spinFor)
			} else if now.After(deadline) && p.hot.Load() == 0 && now.UnixNano() >= p.warmUntil.Load() {
				break
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sleepers.Add(1)
	defer p.sleepers.Add(-1)
	for {
		if g := p.gen.Load(); g != seen {
			return g, true
		}
		if p.closed.Load() {
			return 0, false
		}
		p.cond.Wait()
	}
}

// seg is one piece of work of a job: fn on a partition of [0, n) into
// parts contiguous ranges, each starting at a multiple of grain (bound).
type seg struct {
	n, grain int
	fn       func(lo, hi int)
	parts    int64
}

// bound is where part i of the segment starts (part parts: n): n*i/parts
// rounded down to a multiple of the grain, so that every part but the last
// is a whole number of grains (a matrix product's parts then hold whole
// tiles of 16 weight rows: kernels.MatMul runs the rows past the last
// multiple of 16 of a range with a tile call of its own). Each part is at
// least a grain long: n*(i+1)/parts - n*i/parts >= grain before the
// rounding, which keeps that.
func (s *seg) bound(i int64) int {
	if i >= s.parts {
		return s.n
	}
	b := int(int64(s.n) * i / s.parts)
	return b - b%s.grain
}

// partRun is a contiguous run of a job's parts, [next, end) in one word:
// its owner claims from the front, other threads from the end.
type partRun struct {
	span atomic.Uint64 // next in the low 32 bits, end in the high 32
	_    [56]byte      // a cache line of its own
}

func (r *partRun) set(lo, hi int64) { r.span.Store(uint64(lo) | uint64(hi)<<32) }

// claim takes the run's first part, or its last where last is set, or
// returns -1 where the run is empty.
func (r *partRun) claim(last bool) int64 {
	for {
		s := r.span.Load()
		lo, hi := s&(1<<32-1), s>>32
		if lo >= hi {
			return -1
		}
		i, next := lo, lo+1|hi<<32
		if last {
			i, next = hi-1, lo|(hi-1)<<32
		}
		if r.span.CompareAndSwap(s, next) {
			return int64(i)
		}
	}
}

// work claims and runs parts until none is left, for thread id: its own
// run's in order, then the other runs' from their ends. A thread's parts
// are thus, as far as the others keep up, one contiguous stretch of the
// job (the parts of the first segment, then those of the next; a segment
// of no parts, n = 0, is passed over): a matrix product's weight rows
// stream in order through each thread, and the tiles' prefetch of the
// rows after a part is of the part the same thread runs next. (Claimed
// one at a time by all threads in turn, as before, a thread began every
// other part with weights it had not asked for: the 110m Q8_0 16-row
// decode step 15.4 ms against 12.9, four alternated rounds.)
func (j *poolJob) work(id int) {
	n := len(j.runs)
	for {
		i := j.runs[id%n].claim(false)
		for k := 1; i < 0 && k < n; k++ {
			i = j.runs[(id+k)%n].claim(true)
		}
		if i < 0 {
			return
		}
		s := &j.segs[0]
		for k := 1; i >= s.parts; k++ {
			i -= s.parts
			s = &j.segs[k]
		}
		s.fn(s.bound(i), s.bound(i+1))
		if j.done.Add(1) == j.parts && j.waiting.Load() {
			j.finished <- struct{}{}
		}
	}
}

// run calls fn on a partition of [0, n) into contiguous ranges, each at
// least grain long, and returns when all have finished. The calling
// goroutine works too.
func (p *pool) run(n, grain int, fn func(lo, hi int)) {
	p.runSegs(seg{n: n, grain: grain, fn: fn})
}

// runSegs runs independent pieces of work as one job: each segment's fn
// on a partition of its [0, n) into ranges of at least its grain (the
// partition run would make), the threads taking the parts of one segment
// after another, and returns when all have finished. One job instead of
// one run per segment spares the threads a wait for the slowest part at
// the end of each: a thread that has no part left of one segment goes on
// with the next. The segments must not write what another reads.
func (p *pool) runSegs(segs ...seg) {
	total := 0
	for i := range segs {
		s := &segs[i]
		s.parts = 0
		if s.n <= 0 {
			continue
		}
		s.grain = max(s.grain, 1)
		s.parts = int64(min(p.n*partsPerThread, s.n/s.grain))
		if p.n <= 1 || s.parts < 1 {
			s.parts = 1
		}
		total += int(s.parts)
	}
	if total == 0 {
		return
	}
	if p.n <= 1 || total == 1 {
		for _, s := range segs {
			if s.n > 0 {
				s.fn(0, s.n)
			}
		}
		return
	}
	j := &poolJob{segs: segs, parts: int64(total)}
	if p.n <= len(j.inline) {
		j.runs = j.inline[:p.n]
	} else {
		j.runs = make([]partRun, p.n)
	}
	for t := range j.runs {
		n := int64(len(j.runs))
		j.runs[t].set(int64(t)*j.parts/n, int64(t+1)*j.parts/n)
	}
	p.runMu.Lock()
	defer p.runMu.Unlock()
	p.job.Store(j)
	p.gen.Add(1)
	if p.sleepers.Load() > 0 {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	}
	j.work(0)
	var deadline time.Time
	for i := 0; j.done.Load() < j.parts; i++ {
		if i&63 != 63 {
			continue
		}
		runtime.Gosched()
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(waitSpin)
			continue
		}
		if now.Before(deadline) {
			continue
		}
		// Sleep until the last part is done. The worker finishing it
		// sees waiting (and wakes us), or we see its done count: the
		// atomics are sequentially consistent. waiting is set with a
		// read-modify-write, not a plain store: qemu-user runs arm64's
		// store-release and the load-acquire after it as plain x86 moves,
		// which lets the load pass the store, and both sides then missed
		// each other (the arm64 tests under qemu hung here once); a swap
		// is a locked instruction there and a full barrier everywhere.
		j.finished = make(chan struct{}, 1)
		j.waiting.Swap(true)
		if j.done.Load() < j.parts {
			<-j.finished
		}
		return
	}
}

// hold keeps the idle workers polling between the jobs of a forward pass
// until the release it returns is called. The jobs of a pass follow each
// other within microseconds, but a worker that finishes its last part of a
// job early (the others still on theirs) may wait longer than spinFor for
// the next; asleep, it is woken through the OS, which on a virtual machine
// took a median 120 µs and a tenth of the time over 0.6 ms (a decode step
// of 16 sequences woke a worker 13 times, and ran on one thread for 18% of
// its time).
func (p *pool) hold() (release func()) {
	p.hot.Add(1)
	return func() { p.hot.Add(-1) }
}

// warm has the idle workers that poll go on polling for up to d instead
// of sleeping after spinFor: for a caller that expects the next pass
// within d, so that it does not begin by waking them through the OS (see
// hold). Workers already asleep (park) stay asleep; park ends it.
func (p *pool) warm(d time.Duration) {
	p.warmUntil.Store(time.Now().Add(d).UnixNano())
}

// park sends the idle workers to sleep at once instead of polling for
// spinFor: for a caller that knows no job follows soon (a batch of
// sequences waits for its callers to sample their next tokens), so that
// polling does not take CPU time from the goroutines that have work. The
// next run wakes them.
func (p *pool) park() {
	if p.n <= 1 {
		return
	}
	p.runMu.Lock()
	p.warmUntil.Store(0)
	p.job.Store(nil)
	p.gen.Add(1)
	p.runMu.Unlock()
}

func (p *pool) close() {
	p.closed.Store(true)
	p.mu.Lock()
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}
