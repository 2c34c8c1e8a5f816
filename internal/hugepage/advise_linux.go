package hugepage

import "syscall"

// madvCollapse is MADV_COLLAPSE (Linux 6.1), which the syscall package
// does not name.
const madvCollapse = 25

// advise asks Linux to back b (whole huge pages) with huge pages:
// MADV_HUGEPAGE for the pages not yet touched, which a first touch then
// faults in as huge pages even where transparent huge pages are enabled
// only on request (the "madvise" setting, the default of most
// distributions); MADV_COLLAPSE for memory the Go heap reused (already
// backed, by 4 KiB pages), which it copies into huge pages at once. Both
// are hints: an error (an older kernel, huge pages disabled, untouched
// memory for MADV_COLLAPSE) leaves the memory as it was.
func advise(b []byte) {
	if syscall.Madvise(b, syscall.MADV_HUGEPAGE) == nil {
		_ = syscall.Madvise(b, madvCollapse)
	}
}
