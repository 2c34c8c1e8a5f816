package durable

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// WriteFile writes data to path atomically and durably: a temporary file
// in path's directory, synced, renamed to path, then the directory synced
// (SyncDir). On an error path is unchanged and no temporary file is left.
func WriteFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := WriteTemp(dir, data)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		if tmp != "" {
			os.Remove(tmp)
		}
		return fmt.Errorf("writing %s: %w", path, err)
	}
	SyncDir(dir)
	return nil
}

// WriteTemp writes data to a new synced temporary file in dir (named
// .tmp-*) and returns its path; the caller renames or removes it.
func WriteTemp(dir string, data []byte) (string, error) {
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// SyncDir makes durable every change to dir's entries (creations, renames,
// removals) made before it is called: it returns once a sync of dir that
// began after the call has ended, and shares that sync with the other
// callers waiting for one. Its error is the sync's; callers that wrote
// their file already may ignore it, as file systems that cannot sync a
// directory (EINVAL) make durable otherwise.
func SyncDir(dir string) error {
	return groupOf(dir).sync(dir)
}

// syncPath syncs a directory; tests replace it.
var syncPath = func(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// group is the syncs of one directory: started and done number them.
type group struct {
	mu      sync.Mutex
	cond    sync.Cond
	started uint64 // syncs begun
	done    uint64 // the number of the last sync ended
	running bool
	waiting int   // callers waiting for a sync to end
	err     error // of sync number done
}

// groups holds a group per directory path (as given, cleaned).
var groups sync.Map

func groupOf(dir string) *group {
	dir = filepath.Clean(dir)
	if g, ok := groups.Load(dir); ok {
		return g.(*group)
	}
	g := &group{}
	g.cond.L = &g.mu
	actual, _ := groups.LoadOrStore(dir, g)
	return actual.(*group)
}

// sync waits for a sync that begins after the call: the next to start.
// When none is running the caller runs it; otherwise the caller waits for
// the running one to end, then one of the waiters runs the next.
func (g *group) sync(dir string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	// Sync number started is running, or has ended: the next to begin
	// is the first that is surely after the call.
	want := g.started + 1
	for g.done < want {
		if g.running {
			g.waiting++
			g.cond.Wait()
			g.waiting--
			continue
		}
		g.running = true
		g.started++
		n := g.started
		g.mu.Unlock()
		err := syncPath(dir)
		g.mu.Lock()
		g.running = false
		g.done, g.err = n, err
		g.cond.Broadcast()
	}
	return g.err
}
