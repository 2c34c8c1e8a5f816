// Package mmapfile maps a file read-only into memory, so that model weights
// are read straight from the page cache instead of being copied onto the Go
// heap. On systems without mmap it falls back to reading the whole file.
package mmapfile
