package engine

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/testutil"
)

// TestBigEndianRefused: the engine reads float32 tensors in place as
// little-endian, so on a big-endian CPU (s390x, ppc64) every F32 weight,
// norm and RoPE factor would have other values; New refuses to run there.
// Run under qemu-s390x-static to see the refusal (elsewhere it checks that
// a little-endian CPU is taken).
func TestBigEndianRefused(t *testing.T) {
	m, err := model.Load(filepath.Join(testutil.Shared(t, "models"), "stories260K.gguf"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	e, err := New(m, Options{Threads: 1})
	if littleEndian {
		if err != nil {
			t.Fatal(err)
		}
		e.Close()
		return
	}
	if !errors.Is(err, errBigEndian) {
		t.Fatalf("New on a big-endian CPU: %v", err)
	}
}
