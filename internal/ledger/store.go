package ledger

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/verdictnet/verdict/internal/merkle"
)

// Store is the key/value view the state machine reads and writes. Keys are
// printable ASCII; values are canonical JSON.
type Store interface {
	Get(key string) ([]byte, bool)
	Set(key string, value []byte)
	Delete(key string)
}

// MemStore is the state: every key in memory, with the set of keys
// changed since the last TakeDirty (the last commit) so a persistent store
// can write only those, and their values as of that commit, so that the
// committed state stays readable (Committed, ProveCommitted) while a
// finalized block waits for its commit.
type MemStore struct {
	m     map[string][]byte
	dirty map[string]prior // value before the first change since TakeDirty

	// The app hash cache: the keys as of the last Root in sorted order with
	// their leaf hashes, and the keys changed since.
	sorted  []string
	leaves  []merkle.Hash
	changed map[string]struct{}
}

// prior is a key's committed value (ok false: absent).
type prior struct {
	v  []byte
	ok bool
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore {
	return &MemStore{m: map[string][]byte{}, dirty: map[string]prior{}, changed: map[string]struct{}{}}
}

func (s *MemStore) touch(key string) {
	if _, ok := s.dirty[key]; !ok {
		v, had := s.m[key]
		s.dirty[key] = prior{v, had}
	}
	s.changed[key] = struct{}{}
}

// Get returns the value stored under key.
func (s *MemStore) Get(key string) ([]byte, bool) {
	v, ok := s.m[key]
	return v, ok
}

// Set stores value under key.
func (s *MemStore) Set(key string, value []byte) {
	s.touch(key)
	s.m[key] = value
}

// Delete removes key.
func (s *MemStore) Delete(key string) {
	s.touch(key)
	delete(s.m, key)
}

// Len returns the number of keys.
func (s *MemStore) Len() int { return len(s.m) }

// Load sets key without marking it dirty (used when reading a persisted store).
func (s *MemStore) Load(key string, value []byte) {
	s.m[key] = value
	s.changed[key] = struct{}{}
}

// Change is one key written (Value non-nil) or deleted (Value nil).
type Change struct {
	Key   string
	Value []byte
}

// TakeDirty returns the keys changed since the last call, sorted, with their
// current values (nil for deleted keys), and clears the dirty set.
func (s *MemStore) TakeDirty() []Change {
	keys := make([]string, 0, len(s.dirty))
	for k := range s.dirty {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]Change, len(keys))
	for i, k := range keys {
		out[i] = Change{Key: k, Value: s.m[k]}
	}
	s.dirty = map[string]prior{}
	return out
}

// Committed returns a read-only view of the state as of the last TakeDirty
// (for a node: the last commit), ignoring changes made since.
func (s *MemStore) Committed() Store { return committedView{s} }

type committedView struct{ s *MemStore }

func (c committedView) Get(key string) ([]byte, bool) {
	if p, ok := c.s.dirty[key]; ok {
		return p.v, p.ok
	}
	v, ok := c.s.m[key]
	return v, ok
}

func (committedView) Set(key string, _ []byte) { panic("ledger: write to the committed view: " + key) }
func (committedView) Delete(key string)        { panic("ledger: write to the committed view: " + key) }

// Keys returns every key in sorted order.
func (s *MemStore) Keys() []string {
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Root returns the app hash: the RFC 6962 Merkle root over the leaves
// LeafHash(key, value) of every key in sorted order. The empty state has the
// root SHA-256(""). Leaf hashes and the key order are cached, so a call
// hashes only the values changed since the previous one (plus the O(n)
// interior nodes).
func (s *MemStore) Root() Hash {
	s.refresh()
	var b merkle.Builder
	for _, h := range s.leaves {
		b.AddHash(h)
	}
	return Hash(b.Root())
}

// refresh brings the sorted keys and leaf hashes up to date.
func (s *MemStore) refresh() {
	if len(s.changed) == 0 {
		return
	}
	var added []string
	removed := false
	for k := range s.changed {
		v, live := s.m[k]
		i := sort.SearchStrings(s.sorted, k)
		known := i < len(s.sorted) && s.sorted[i] == k
		switch {
		case live && known:
			s.leaves[i] = merkle.Hash(LeafHash(k, v))
		case live:
			added = append(added, k)
		case known:
			removed = true
		}
	}
	s.changed = map[string]struct{}{}
	if len(added) == 0 && !removed {
		return
	}
	sort.Strings(added)
	keys := make([]string, 0, len(s.sorted)+len(added))
	leaves := make([]merkle.Hash, 0, len(s.sorted)+len(added))
	i, j := 0, 0
	for i < len(s.sorted) || j < len(added) {
		if j == len(added) || i < len(s.sorted) && s.sorted[i] < added[j] {
			if _, live := s.m[s.sorted[i]]; live {
				keys = append(keys, s.sorted[i])
				leaves = append(leaves, s.leaves[i])
			}
			i++
			continue
		}
		keys = append(keys, added[j])
		leaves = append(leaves, merkle.Hash(LeafHash(added[j], s.m[added[j]])))
		j++
	}
	s.sorted, s.leaves = keys, leaves
}

// LeafHash is merkle.LeafHash(uint32be(len(key)) || key || uint32be(len(value)) || value),
// that is SHA-256(0x00 || ...).
func LeafHash(key string, value []byte) Hash {
	return Hash(merkle.LeafHash(leafData(key, value)))
}

func leafData(key string, value []byte) []byte {
	b := make([]byte, 0, 8+len(key)+len(value))
	b = binary.BigEndian.AppendUint32(b, uint32(len(key)))
	b = append(b, key...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(value)))
	return append(b, value...)
}

// Proof is an inclusion proof of one key/value pair in the app hash.
type Proof struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
	Index uint64 `json:"index"`
	Size  uint64 `json:"size"`
	Path  []Hash `json:"path"`
}

// Prove returns the inclusion proof of key in the current state.
func (s *MemStore) Prove(key string) (Proof, error) {
	v, ok := s.m[key]
	if !ok {
		return Proof{}, fmt.Errorf("prove %q: %w", key, ErrNotFound)
	}
	s.refresh()
	keys := s.sorted
	i := sort.SearchStrings(keys, key)
	path, err := merkle.NewTree(s.leaves).Proof(i)
	if err != nil {
		return Proof{}, fmt.Errorf("prove %q: %w", key, err)
	}
	p := Proof{Key: key, Value: v, Index: uint64(i), Size: uint64(len(keys))}
	for _, h := range path {
		p.Path = append(p.Path, Hash(h))
	}
	return p, nil
}

// ProveCommitted returns the inclusion proof of key in the state as of
// the last TakeDirty, against that state's root.
func (s *MemStore) ProveCommitted(key string) (Proof, error) {
	if len(s.dirty) == 0 {
		return s.Prove(key)
	}
	v, ok := s.Committed().Get(key)
	if !ok {
		return Proof{}, fmt.Errorf("prove %q: %w", key, ErrNotFound)
	}
	s.refresh()
	// The committed leaves: the current ones without the changed keys,
	// merged with the changed keys' committed values.
	var back []string
	for k, p := range s.dirty {
		if p.ok {
			back = append(back, k)
		}
	}
	sort.Strings(back)
	keys := make([]string, 0, len(s.sorted)+len(back))
	leaves := make([]merkle.Hash, 0, len(s.sorted)+len(back))
	i, j := 0, 0
	for i < len(s.sorted) || j < len(back) {
		if j == len(back) || i < len(s.sorted) && s.sorted[i] < back[j] {
			if _, changed := s.dirty[s.sorted[i]]; !changed {
				keys = append(keys, s.sorted[i])
				leaves = append(leaves, s.leaves[i])
			}
			i++
			continue
		}
		if i < len(s.sorted) && s.sorted[i] == back[j] {
			i++ // replaced by its committed value
		}
		keys = append(keys, back[j])
		leaves = append(leaves, merkle.Hash(LeafHash(back[j], s.dirty[back[j]].v)))
		j++
	}
	idx := sort.SearchStrings(keys, key)
	path, err := merkle.NewTree(leaves).Proof(idx)
	if err != nil {
		return Proof{}, fmt.Errorf("prove %q: %w", key, err)
	}
	p := Proof{Key: key, Value: v, Index: uint64(idx), Size: uint64(len(keys))}
	for _, h := range path {
		p.Path = append(p.Path, Hash(h))
	}
	return p, nil
}

// Snapshot is the key order and leaf hashes of a committed state, copied
// at commit, from which proofs are made without the state (and without the
// consensus lock): the tree is built on the first proof and kept.
type Snapshot struct {
	keys   []string
	leaves []merkle.Hash
	once   sync.Once
	tree   *merkle.Tree
}

// Snapshot copies the key order and leaf hashes of the state. Call it
// right after TakeDirty (a commit), when the state is the committed one.
func (s *MemStore) Snapshot() *Snapshot {
	s.refresh()
	return &Snapshot{keys: slices.Clone(s.sorted), leaves: slices.Clone(s.leaves)}
}

// Root is the snapshot's app hash.
func (sn *Snapshot) Root() Hash {
	sn.build()
	return Hash(sn.tree.Root())
}

func (sn *Snapshot) build() { sn.once.Do(func() { sn.tree = merkle.NewTree(sn.leaves) }) }

// Prove returns the inclusion proof of key, whose committed value is value
// (read by the caller from the committed database), against the
// snapshot's root. A value that is not the committed one gives a proof
// that does not verify.
func (sn *Snapshot) Prove(key string, value []byte) (Proof, error) {
	i := sort.SearchStrings(sn.keys, key)
	if i == len(sn.keys) || sn.keys[i] != key {
		return Proof{}, fmt.Errorf("prove %q: %w", key, ErrNotFound)
	}
	sn.build()
	path, err := sn.tree.Proof(i)
	if err != nil {
		return Proof{}, fmt.Errorf("prove %q: %w", key, err)
	}
	p := Proof{Key: key, Value: value, Index: uint64(i), Size: uint64(len(sn.keys))}
	for _, h := range path {
		p.Path = append(p.Path, Hash(h))
	}
	return p, nil
}

// Verify checks p against an app hash.
func (p Proof) Verify(appHash Hash) error {
	path := make([]merkle.Hash, len(p.Path))
	for i, h := range p.Path {
		path[i] = merkle.Hash(h)
	}
	return merkle.Verify(merkle.Hash(appHash), merkle.Hash(LeafHash(p.Key, p.Value)), p.Index, p.Size, path)
}

// cache buffers writes over a parent store; Write applies them, dropping the
// cache discards them.
type cache struct {
	parent Store
	w      map[string][]byte // nil value: deleted
}

func newCache(parent Store) *cache { return &cache{parent: parent, w: map[string][]byte{}} }

func (c *cache) Get(key string) ([]byte, bool) {
	if v, ok := c.w[key]; ok {
		return v, v != nil
	}
	return c.parent.Get(key)
}

func (c *cache) Set(key string, value []byte) {
	if value == nil {
		value = []byte{}
	}
	c.w[key] = value
}

func (c *cache) Delete(key string) { c.w[key] = nil }

// growth is how many bytes the buffered writes add to the parent: the
// length of each key and value written less that of the key and value it
// replaces (a deleted key counts negative), summed, and not below zero.
func (c *cache) growth() uint64 {
	var n int64
	for k, v := range c.w { // a sum: the order does not matter
		if v != nil {
			n += int64(len(k) + len(v))
		}
		if old, ok := c.parent.Get(k); ok {
			n -= int64(len(k) + len(old))
		}
	}
	return uint64(max(n, 0))
}

// Write applies the buffered writes to the parent in sorted key order.
func (c *cache) Write() {
	keys := make([]string, 0, len(c.w))
	for k := range c.w {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if v := c.w[k]; v == nil {
			c.parent.Delete(k)
		} else {
			c.parent.Set(k, v)
		}
	}
	c.w = map[string][]byte{}
}
