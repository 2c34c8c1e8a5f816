package slots

import (
	"container/heap"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// Scheduler grants a fixed number of slots, earliest deadline first. It
// is safe for concurrent use; make one with New.
type Scheduler struct {
	mu    sync.Mutex
	free  int       // slots no one holds; while positive, no one waits
	queue waitQueue // the waiters, earliest deadline (then arrival) first
	seq   uint64    // arrivals so far: the tie-break
}

// New returns a Scheduler of n slots (at least one).
func New(n int) *Scheduler {
	return &Scheduler{free: max(n, 1)}
}

// waiter is one goroutine waiting in Acquire.
type waiter struct {
	deadline uint64
	seq      uint64
	index    int           // in the queue; -1 once it left it
	granted  chan struct{} // closed when the waiter is given a slot
}

// Acquire waits for a slot for work due by deadline (a block height:
// lower is more urgent) and returns the function that gives it back.
// Calling release more than once gives the slot back once. When ctx ends
// first, Acquire returns its error, wrapped, and holds no slot: one
// granted at the same moment goes on to the next waiter.
func (s *Scheduler) Acquire(ctx context.Context, deadline uint64) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("waiting for a slot: %w", err)
	}
	s.mu.Lock()
	if s.free > 0 {
		s.free--
		s.mu.Unlock()
		return s.releaser(), nil
	}
	w := &waiter{deadline: deadline, seq: s.seq, granted: make(chan struct{})}
	s.seq++
	heap.Push(&s.queue, w)
	s.mu.Unlock()
	select {
	case <-w.granted:
	case <-ctx.Done():
	}
	if ctx.Err() == nil {
		return s.releaser(), nil
	}
	s.mu.Lock()
	select {
	case <-w.granted:
		// Granted as ctx ended: the slot goes on to the next waiter, not
		// to a caller that gave up (it would hold it for work no one
		// waits for).
		s.mu.Unlock()
		s.release()
	default:
		heap.Remove(&s.queue, w.index)
		s.mu.Unlock()
	}
	return nil, fmt.Errorf("waiting for a slot: %w", ctx.Err())
}

// Waiting returns how many goroutines wait for a slot.
func (s *Scheduler) Waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queue.Len()
}

// releaser returns the release function of one granted slot.
func (s *Scheduler) releaser() func() {
	var done atomic.Bool
	return func() {
		if done.CompareAndSwap(false, true) {
			s.release()
		}
	}
}

// release hands a slot to the most urgent waiter, or frees it.
func (s *Scheduler) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queue.Len() == 0 {
		s.free++
		return
	}
	w := heap.Pop(&s.queue).(*waiter)
	close(w.granted)
}

// waitQueue is a heap of waiters ordered by deadline, then arrival.
type waitQueue []*waiter

func (q waitQueue) Len() int { return len(q) }

func (q waitQueue) Less(i, j int) bool {
	if q[i].deadline != q[j].deadline {
		return q[i].deadline < q[j].deadline
	}
	return q[i].seq < q[j].seq
}

func (q waitQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}

func (q *waitQueue) Push(x any) {
	w := x.(*waiter)
	w.index = len(*q)
	*q = append(*q, w)
}

func (q *waitQueue) Pop() any {
	old := *q
	w := old[len(old)-1]
	old[len(old)-1] = nil
	w.index = -1
	*q = old[:len(old)-1]
	return w
}
