package worker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/verdictnet/verdict/internal/inference"
)

// ErrNotFound is returned by a Store for an unknown receipt id
// (inference.ErrNotFound).
var ErrNotFound = inference.ErrNotFound

// Store keeps signed receipts by id (the hex SHA-256 of the canonical
// encoding): in memory (MemStore) or on disk (FileStore).
type Store interface {
	Put(id string, data []byte) error
	Get(id string) ([]byte, error)
}

// MemStore is a Store in memory holding at most a fixed number of receipts;
// the oldest are forgotten first.
type MemStore struct {
	mu    sync.Mutex
	max   int
	m     map[string][]byte
	order []string
}

// NewMemStore returns a store keeping at most max receipts (max <= 0: 100000).
func NewMemStore(max int) *MemStore {
	if max <= 0 {
		max = 100000
	}
	return &MemStore{max: max, m: make(map[string][]byte)}
}

// Put stores a receipt; storing the same id again keeps the first copy.
func (s *MemStore) Put(id string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[id]; ok {
		return nil
	}
	for len(s.order) >= s.max {
		delete(s.m, s.order[0])
		s.order = s.order[1:]
	}
	s.m[id] = append([]byte(nil), data...)
	s.order = append(s.order, id)
	return nil
}

// Get returns a stored receipt or ErrNotFound.
func (s *MemStore) Get(id string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.m[id]
	if !ok {
		return nil, ErrNotFound
	}
	return append([]byte(nil), d...), nil
}

// FileStore is a Store on disk: one file per receipt, named by its id,
// holding its canonical bytes. Put writes a temporary file, syncs it and
// renames it, so a receipt once stored survives a crash.
type FileStore struct {
	dir string
}

// NewFileStore returns the store in dir, creating it.
func NewFileStore(dir string) (*FileStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("receipt store: %w", err)
	}
	return &FileStore{dir: dir}, nil
}

func validID(id string) bool {
	return len(id) == 64 && strings.Trim(id, "0123456789abcdef") == ""
}

// Put stores a receipt; storing the same id again keeps the first copy.
func (s *FileStore) Put(id string, data []byte) error {
	if !validID(id) {
		return fmt.Errorf("receipt store: bad id %q", id)
	}
	path := filepath.Join(s.dir, id+".json")
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	return writeFileSync(path, data)
}

// Get returns a stored receipt or ErrNotFound.
func (s *FileStore) Get(id string) ([]byte, error) {
	if !validID(id) {
		return nil, ErrNotFound
	}
	b, err := os.ReadFile(filepath.Join(s.dir, id+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("receipt store: %w", err)
	}
	return b, nil
}

// writeFileSync writes path atomically and durably.
func writeFileSync(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
