//go:build unix

package mmapfile

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The mapping is made and released with the pointer forms of mmap and
// munmap (not syscall.Mmap, whose table of mappings refuses to unmap part
// of one).
func mapFile(f *os.File, size int) ([]byte, bool, error) {
	p, err := unix.MmapPtr(int(f.Fd()), 0, nil, uintptr(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, false, fmt.Errorf("mmap: %w", err)
	}
	return unsafe.Slice((*byte)(p), size), true, nil
}

func unmap(b []byte) error {
	return unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(b)), uintptr(len(b)))
}

// unmapTail unmaps b except its first keep bytes rounded up to whole pages,
// and returns what stays mapped.
func unmapTail(b []byte, keep int) ([]byte, error) {
	page := os.Getpagesize()
	keep = (keep + page - 1) / page * page
	if keep >= len(b) {
		return b, nil
	}
	if err := unmap(b[keep:]); err != nil {
		return nil, err
	}
	return b[:keep:keep], nil
}

// dropPages tells the system the whole pages of b (mapped from the file)
// are not needed: they leave the process's resident memory, and a later
// read maps them again from the file.
func dropPages(b []byte) {
	page := uintptr(os.Getpagesize())
	a := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	lo := (a + page - 1) &^ (page - 1)
	hi := (a + uintptr(len(b))) &^ (page - 1)
	if lo < hi {
		_ = unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), lo-a)), hi-lo), unix.MADV_DONTNEED)
	}
}
