package hugepage

import "golang.org/x/sys/unix"

// advise asks Linux to back b (whole huge pages) with huge pages:
// MADV_HUGEPAGE for the pages not yet touched, which a first touch then
// faults in as huge pages even where transparent huge pages are enabled
// only on request (the "madvise" setting, the default of most
// distributions); MADV_COLLAPSE (Linux 6.1) for memory the Go heap reused
// (already backed, by 4 KiB pages), which it copies into huge pages at
// once. Both are hints: an error (an older kernel, huge pages disabled,
// untouched memory for MADV_COLLAPSE) leaves the memory as it was.
func advise(b []byte) {
	if unix.Madvise(b, unix.MADV_HUGEPAGE) == nil {
		_ = unix.Madvise(b, unix.MADV_COLLAPSE)
	}
}
