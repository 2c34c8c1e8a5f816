package mmapfile

import (
	"fmt"
	"os"
	"unsafe"
)

// File is a read-only view of a whole file.
type File struct {
	// Data is the file's contents. It must not be written to, and must not
	// be used after Close.
	Data   []byte
	mapped bool
}

// maxSize caps the files Open will map (1 TiB), so that a length can always
// be held in an int.
const maxSize = 1 << 40

// Open maps the named file read-only. Errors name the file.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // *PathError names the file
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	size := st.Size()
	if size < 0 || size > maxSize || int64(int(size)) != size {
		return nil, fmt.Errorf("%s: file size %d is out of range", path, size)
	}
	if size == 0 {
		return &File{Data: []byte{}}, nil
	}
	data, mapped, err := mapFile(f, int(size))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &File{Data: data, mapped: mapped}, nil
}

// Close releases the mapping. It is safe to call more than once.
func (m *File) Close() error {
	if m == nil || m.Data == nil {
		return nil
	}
	var err error
	if m.mapped {
		err = unmap(m.Data)
	}
	m.Data = nil
	m.mapped = false
	return err
}

// Release tells the system that the whole pages of b, a part of the mapped
// file, are no longer needed (their contents were copied elsewhere): they
// leave the process's resident memory, and stay readable (a read maps them
// again from the file). For a file that was read, not mapped, and for b
// outside Data, it does nothing.
func (m *File) Release(b []byte) {
	if m == nil || !m.mapped || len(b) == 0 || len(m.Data) == 0 {
		return
	}
	lo, hi := uintptr(unsafe.Pointer(unsafe.SliceData(m.Data))), uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if hi < lo || hi-lo > uintptr(len(m.Data)) || uintptr(len(m.Data))-(hi-lo) < uintptr(len(b)) {
		return
	}
	dropPages(b)
}

// CloseExceptHead releases the mapping except its first n bytes (rounded
// up to whole pages), which stay mapped until the returned function
// releases them: a parsed header whose values alias the file can outlive
// the rest of it. The File is closed as by Close. For a file that was
// read, not mapped, the function does nothing (the head is heap memory).
func (m *File) CloseExceptHead(n int) (release func() error, err error) {
	if m == nil || m.Data == nil {
		return func() error { return nil }, nil
	}
	if n <= 0 {
		return func() error { return nil }, m.Close()
	}
	data, mapped := m.Data, m.mapped
	m.Data, m.mapped = nil, false
	if !mapped {
		return func() error { return nil }, nil
	}
	head, err := unmapTail(data, min(n, len(data)))
	if err != nil { // all of it stays mapped
		return func() error { return unmap(data) }, err
	}
	return func() error { return unmap(head) }, nil
}
