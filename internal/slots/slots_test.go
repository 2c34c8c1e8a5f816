package slots

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor waits until n goroutines wait in s: the tests order their
// waiters' arrivals by it, not by sleeping.
func waitFor(t *testing.T, s *Scheduler, n int) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); s.Waiting() != n; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%d waiting, want %d", s.Waiting(), n)
		}
	}
}

// TestEarliestDeadlineFirst: the waiters for a full scheduler's slot get
// it by deadline, ties in the order they came, whatever that order.
func TestEarliestDeadlineFirst(t *testing.T) {
	s := New(1)
	hold, err := s.Acquire(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	type arrival struct {
		name     string
		deadline uint64
	}
	arrivals := []arrival{{"a", 50}, {"b", 20}, {"c", 90}, {"d", 20}, {"e", 5}, {"f", 50}, {"g", 20}}
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	for i, a := range arrivals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, err := s.Acquire(context.Background(), a.deadline)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, a.name)
			mu.Unlock()
			release()
		}()
		waitFor(t, s, i+1)
	}
	hold()
	wg.Wait()
	if want := []string{"e", "b", "d", "g", "a", "f", "c"}; !slices.Equal(order, want) {
		t.Errorf("slots granted in the order %v, want %v (earliest deadline first, ties by arrival)", order, want)
	}
}

// TestCancelledWaiter: a waiter whose context ends leaves the queue with
// the context's error and is never granted a slot; the slot it waited for
// goes to the next waiter; a context ended before Acquire takes no slot,
// even a free one.
func TestCancelledWaiter(t *testing.T) {
	s := New(1)
	hold, err := s.Acquire(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	urgent := make(chan error, 1)
	go func() {
		release, err := s.Acquire(ctx, 1) // the most urgent: it would be served first
		if release != nil {
			release()
		}
		urgent <- err
	}()
	waitFor(t, s, 1)
	later := make(chan func(), 1)
	go func() {
		release, err := s.Acquire(context.Background(), 100)
		if err != nil {
			t.Error(err)
		}
		later <- release
	}()
	waitFor(t, s, 2)
	cancel()
	if err := <-urgent; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v, want context.Canceled", err)
	}
	waitFor(t, s, 1)
	hold()
	release := <-later
	if release == nil {
		t.Fatal("the waiter behind the cancelled one got no slot")
	}
	release()
	if _, err := s.Acquire(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire with an ended context and a free slot: %v, want context.Canceled", err)
	}
	checkFree(t, s, 1)
}

// TestGrantedAsCancelled: a waiter granted a slot in the same moment as
// its context ends (both ready when it wakes) gives the slot on to the
// next waiter and returns the context's error.
func TestGrantedAsCancelled(t *testing.T) {
	s := New(1)
	if _, err := s.Acquire(context.Background(), 0); err != nil { // held for good
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		release, err := s.Acquire(ctx, 1)
		if release != nil {
			release()
		}
		first <- err
	}()
	waitFor(t, s, 1)
	next := make(chan func(), 1)
	go func() {
		release, err := s.Acquire(context.Background(), 2)
		if err != nil {
			t.Error(err)
		}
		next <- release
	}()
	waitFor(t, s, 2)
	// What release does, and the cancellation, under one hold of the lock:
	// the waiter wakes to both.
	s.mu.Lock()
	cancel()
	close(heap.Pop(&s.queue).(*waiter).granted)
	s.mu.Unlock()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("granted as cancelled: %v, want context.Canceled", err)
	}
	release := <-next
	if release == nil {
		t.Fatal("the slot the cancelled waiter was granted did not go on")
	}
	release()
	checkFree(t, s, 1)
}

// TestReleaseTwice: a slot released twice is given back once.
func TestReleaseTwice(t *testing.T) {
	s := New(1)
	release, err := s.Acquire(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	release()
	release()
	checkFree(t, s, 1)
}

// TestNoLeak: many goroutines acquire, hold and release slots, a third
// of them cancelled while they wait, under -race: no more than n hold at
// once, and at the end every slot is free and no one waits.
func TestNoLeak(t *testing.T) {
	const n, goroutines = 3, 200
	s := New(n)
	var holding, most atomic.Int32
	var wg sync.WaitGroup
	for i := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if i%3 == 0 {
				go func() {
					time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
					cancel()
				}()
			}
			release, err := s.Acquire(ctx, uint64(rand.IntN(10)))
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					t.Error(err)
				}
				return
			}
			h := holding.Add(1)
			for m := most.Load(); h > m && !most.CompareAndSwap(m, h); m = most.Load() {
			}
			time.Sleep(time.Duration(rand.IntN(50)) * time.Microsecond)
			holding.Add(-1)
			release()
		}()
	}
	wg.Wait()
	if m := most.Load(); m > n {
		t.Errorf("%d held slots at once, of %d", m, n)
	}
	checkFree(t, s, n)
}

// checkFree checks that n slots are free and no one waits.
func checkFree(t *testing.T, s *Scheduler, n int) {
	t.Helper()
	s.mu.Lock()
	free, waiting := s.free, s.queue.Len()
	s.mu.Unlock()
	if free != n || waiting != 0 {
		t.Errorf("%d slots free and %d waiting, want %d and 0", free, waiting, n)
	}
}

// ExampleScheduler: the work due first gets the slot freed first, though
// it came last.
func ExampleScheduler() {
	s := New(1)
	hold, _ := s.Acquire(context.Background(), 0)
	done := make(chan string)
	work := []struct {
		name     string
		deadline uint64
	}{{"dispute move due at height 140", 140}, {"audit due at height 120", 120}}
	for i, w := range work {
		go func() {
			release, err := s.Acquire(context.Background(), w.deadline)
			if err != nil {
				return
			}
			done <- w.name
			release()
		}()
		for s.Waiting() != i+1 { // in this order
			time.Sleep(time.Millisecond)
		}
	}
	hold()
	fmt.Println(<-done)
	fmt.Println(<-done)
	// Output:
	// audit due at height 120
	// dispute move due at height 140
}
