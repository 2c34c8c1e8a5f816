//go:build !linux

package hugepage

// advise does nothing here: huge pages are the system's own choice.
func advise(b []byte) {}
