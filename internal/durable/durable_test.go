package durable

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.json")
	for _, data := range [][]byte{[]byte(`{"a":1}`), nil, bytes.Repeat([]byte("x"), 1<<16)} {
		if err := WriteFile(path, data); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back %d bytes (%v), want %d", len(got), err, len(data))
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("%d entries, want the file alone (no temporary left)", len(ents))
	}
	// A missing directory fails, naming the path.
	bad := filepath.Join(dir, "missing", "b.json")
	if err := WriteFile(bad, []byte("x")); err == nil || !bytes.Contains([]byte(err.Error()), []byte(bad)) {
		t.Fatalf("into a missing directory: %v", err)
	}
}

// fakeSyncs replaces the directory sync for a test: each call blocks
// until release (when set) and is counted.
type fakeSyncs struct {
	calls   atomic.Int64
	started chan int64 // the number of each sync begun
	release chan struct{}
}

func fake(t *testing.T, block bool) *fakeSyncs {
	f := &fakeSyncs{started: make(chan int64, 1000)}
	if block {
		f.release = make(chan struct{})
	}
	old := syncPath
	syncPath = func(string) error {
		f.started <- f.calls.Add(1)
		if f.release != nil {
			<-f.release
		}
		return nil
	}
	t.Cleanup(func() { syncPath = old })
	return f
}

// next is the number of the next sync begun.
func (f *fakeSyncs) next(t *testing.T) int64 {
	t.Helper()
	select {
	case n := <-f.started:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no sync began")
		return 0
	}
}

// A caller that arrives while a sync runs does not return when that sync
// ends (it may have read the directory before the caller's rename), but
// after the next one, which serves every caller that arrived meanwhile.
func TestSyncWaitsForALaterSync(t *testing.T) {
	f := fake(t, true)
	dir := t.TempDir()
	first := make(chan error, 1)
	go func() { first <- SyncDir(dir) }()
	if n := f.next(t); n != 1 {
		t.Fatalf("sync %d began, want 1", n)
	}
	const late = 5
	var returned atomic.Int64
	var wg sync.WaitGroup
	for range late {
		wg.Add(1)
		go func() {
			defer wg.Done()
			SyncDir(dir)
			returned.Add(1)
		}()
	}
	g := groupOf(dir)
	for deadline := time.Now().Add(10 * time.Second); ; { // the late callers wait on sync 1
		g.mu.Lock()
		w := g.waiting
		g.mu.Unlock()
		if w == late {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d callers wait, want %d", w, late)
		}
		time.Sleep(time.Millisecond)
	}
	f.release <- struct{}{} // sync 1 ends
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if n := f.next(t); n != 2 {
		t.Fatalf("sync %d began, want 2", n)
	}
	time.Sleep(20 * time.Millisecond)
	if r := returned.Load(); r != 0 {
		t.Fatalf("%d late callers returned after the sync that began before them", r)
	}
	f.release <- struct{}{} // sync 2 ends
	wg.Wait()
	if c := f.calls.Load(); c != 2 {
		t.Fatalf("%d syncs for 1 + %d callers, want 2", c, late)
	}
}

// Many writers at once into one directory: every file is whole, and they
// share the directory's syncs.
func TestConcurrentWriters(t *testing.T) {
	f := fake(t, false)
	old := syncPath
	syncPath = func(dir string) error {
		time.Sleep(2 * time.Millisecond) // a sync takes a while
		return old(dir)
	}
	dir := t.TempDir()
	const n = 64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := WriteFile(filepath.Join(dir, fmt.Sprint(i)), []byte(fmt.Sprint("record ", i))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i := range n {
		if b, err := os.ReadFile(filepath.Join(dir, fmt.Sprint(i))); err != nil || string(b) != fmt.Sprint("record ", i) {
			t.Fatalf("file %d: %q %v", i, b, err)
		}
	}
	if c := f.calls.Load(); c >= n {
		t.Fatalf("%d directory syncs for %d writers: none shared", c, n)
	} else {
		t.Logf("%d directory syncs for %d writers", c, n)
	}
}

// The sync's error reaches its callers.
func TestSyncError(t *testing.T) {
	boom := errors.New("boom")
	old := syncPath
	syncPath = func(string) error { return boom }
	t.Cleanup(func() { syncPath = old })
	if err := SyncDir(t.TempDir()); !errors.Is(err, boom) {
		t.Fatalf("error %v, want %v", err, boom)
	}
	if err := SyncDir(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, boom) {
		t.Fatalf("error %v", err)
	}
}

// The real sync of a missing directory fails.
func TestSyncMissing(t *testing.T) {
	if err := SyncDir(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("error %v, want not exist", err)
	}
}
