//go:build amd64 && !purego

package kernels

import "sync"

// scratch hands out the per-call scratch arrays of the tiles. The tiles are
// called through function tables, so the compiler cannot see that they keep
// no pointer and moves a local array to the heap on every call: hundreds of
// MB of garbage a second at two threads, and the collections that go with
// it. A pooled array is not zeroed; every user writes each element it reads
// (the tiles' scales before their use, the scattered results before the copy
// to out), so reuse changes no value.
type scratch[T any] struct{ p sync.Pool }

func (s *scratch[T]) get() *T {
	if v, ok := s.p.Get().(*T); ok {
		return v
	}
	return new(T)
}

func (s *scratch[T]) put(v *T) { s.p.Put(v) }

var (
	kwtScr   scratch[[kwtScratch]byte]
	kvnniBuf scratch[[kG * 16 * vnniBufLD]float32]
	vnniBuf  scratch[[vnniG * 16 * vnniBufLD]float32]
)
