package worker

import (
	"errors"
	"sync"
)

// ErrNotFound is returned by a Store for an unknown receipt id.
var ErrNotFound = errors.New("receipt not found")

// Store keeps signed receipts by id (the hex SHA-256 of the canonical
// encoding). An on-disk store comes later; the in-memory one serves tests
// and the devnet.
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
