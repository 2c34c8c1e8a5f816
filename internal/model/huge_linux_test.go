package model_test

import (
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/testutil"
)

// TestCopyToHugePagesReleases: once copied, the weights' pages leave the
// file mapping's resident memory (the process holds one copy, not two).
func TestCopyToHugePagesReleases(t *testing.T) {
	dir := testutil.Shared(t, "models")
	for _, name := range []string{"stories260K.gguf", "stories260K.bin"} {
		tok := ""
		if filepath.Ext(name) == ".bin" {
			tok = filepath.Join(dir, "tok512.bin")
		}
		m, err := model.Load(filepath.Join(dir, name), tok)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		a := uintptr(unsafe.Pointer(unsafe.SliceData(m.TokenEmbd.Data)))
		sum := 0
		for _, e := range m.Entries() { // every weight page resident
			for _, b := range e.Tensor.Data {
				sum += int(b)
			}
		}
		before := testutil.SmapsKB(t, a, "Rss")
		defer func(v int) { *model.MinHugeCopy = v }(*model.MinHugeCopy)
		*model.MinHugeCopy = 0
		n := m.CopyToHugePages()
		after := testutil.SmapsKB(t, a, "Rss")
		if drop := before - after; drop < int(n)/1024/2 {
			t.Fatalf("%s: the mapping's resident memory went from %d to %d KiB after copying %d bytes (sum %d)", name, before, after, n, sum)
		}
	}
}
