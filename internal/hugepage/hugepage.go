package hugepage

import "unsafe"

// Size is the size of a huge page.
const Size = 2 << 20

// Floats returns n zeroed float32 values (len and cap n), the whole huge
// pages inside them (Size bytes on a Size boundary: all but at most Size
// bytes of the slice) advised to be backed by huge pages (advise); the
// parts before the first and after the last are ordinary pages. Memory is
// Go heap memory, freed by the garbage collector once nothing refers to
// any part of it.
func Floats(n int) []float32 {
	if n <= 0 {
		return nil
	}
	b := make([]float32, n)
	a := uintptr(unsafe.Pointer(&b[0]))
	lo := (a + Size - 1) &^ (Size - 1)
	hi := (a + 4*uintptr(n)) &^ (Size - 1)
	if lo < hi {
		advise(unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(&b[0]), lo-a)), hi-lo))
	}
	return b
}
