package mmapfile

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/verdictnet/verdict/internal/testutil"
)

// TestRelease: the released pages leave the mapping's resident memory
// (/proc/self/smaps) and read back the file's bytes; a slice outside the
// mapping is left alone.
func TestRelease(t *testing.T) {
	want := make([]byte, 64<<10*16) // 1 MiB
	for i := range want {
		want[i] = byte(i * 7)
	}
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, want, 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, b := range m.Data { // all resident
		sink += int(b)
	}
	a := uintptr(unsafe.Pointer(unsafe.SliceData(m.Data)))
	before := testutil.SmapsKB(t, a, "Rss")
	m.Release(m.Data[100 : len(m.Data)-100])
	after := testutil.SmapsKB(t, a, "Rss")
	if before < 1000 || after > 16 {
		t.Fatalf("resident %d KiB before the release, %d after; want about 1024 and at most 2 pages", before, after)
	}
	if !bytes.Equal(m.Data, want) {
		t.Fatal("released pages read back other bytes")
	}
	heap := append([]byte(nil), want...)
	m.Release(heap) // not in the mapping: nothing happens
	if !bytes.Equal(heap, want) {
		t.Fatal("a slice outside the mapping was released")
	}
}

var sink int
