package fifomap

// Map maps keys to values, holding at most the Max keys put last. The zero
// value is not ready: make one with New. It is not safe for concurrent
// use.
type Map[K comparable, V any] struct {
	max   int
	m     map[K]V
	order []K // ring of the keys of m, the oldest at next once full
	next  int
}

// New returns an empty map that holds at most n keys (at least one).
func New[K comparable, V any](n int) *Map[K, V] {
	return &Map[K, V]{max: max(n, 1), m: map[K]V{}}
}

// Get returns the value of k and whether the map holds k.
func (m *Map[K, V]) Get(k K) (V, bool) {
	v, ok := m.m[k]
	return v, ok
}

// Put sets the value of k. A key the map holds keeps its place; a new one
// is the newest, and in a full map the oldest key goes.
func (m *Map[K, V]) Put(k K, v V) {
	if _, ok := m.m[k]; ok {
		m.m[k] = v
		return
	}
	if len(m.order) < m.max {
		m.order = append(m.order, k)
	} else {
		delete(m.m, m.order[m.next])
		m.order[m.next] = k
		m.next = (m.next + 1) % m.max
	}
	m.m[k] = v
}

// Len returns how many keys the map holds.
func (m *Map[K, V]) Len() int { return len(m.m) }
