//go:build !unix

package mmapfile

import (
	"io"
	"os"
)

func mapFile(f *os.File, size int) ([]byte, bool, error) {
	data := make([]byte, size)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, false, err
	}
	return data, false, nil
}

func unmap([]byte) error { return nil }

func unmapTail(b []byte, keep int) ([]byte, error) { return b[:keep:keep], nil }

func dropPages([]byte) {}
