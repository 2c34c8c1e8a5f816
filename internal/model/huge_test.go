package model_test

import (
	"bytes"
	"math"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/testutil"
)

// TestCopyToHugePages: the copied weights are the file's bytes, side by
// side in one block (a tied output the embedding's copy), a second call
// copies nothing, and the engine computes the same logits from them as
// from the mapped file; under the floor nothing is copied.
func TestCopyToHugePages(t *testing.T) {
	dir := testutil.Shared(t, "models")
	for _, name := range []string{"stories260K.gguf", "stories260K-Q8_0.gguf", "stories260K.bin"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			tok := ""
			if filepath.Ext(name) == ".bin" {
				tok = filepath.Join(dir, "tok512.bin")
			}
			ref, err := model.Load(path, tok)
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()
			m, err := model.Load(path, tok)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if n := m.CopyToHugePages(); n != 0 {
				t.Fatalf("a model of %d bytes copied under the floor", n)
			}
			defer func(v int) { *model.MinHugeCopy = v }(*model.MinHugeCopy)
			*model.MinHugeCopy = 0
			n := m.CopyToHugePages()
			if n == 0 {
				t.Fatal("nothing copied")
			}
			want, got := ref.Entries(), m.Entries()
			lo := uintptr(unsafe.Pointer(unsafe.SliceData(got[0].Tensor.Data)))
			for i, e := range got {
				if !bytes.Equal(e.Tensor.Data, want[i].Tensor.Data) {
					t.Fatalf("%s: copied bytes differ", e.Name)
				}
				if a := uintptr(unsafe.Pointer(unsafe.SliceData(e.Tensor.Data))); a < lo || a+uintptr(len(e.Tensor.Data)) > lo+uintptr(n) || a%64 != 0 {
					t.Fatalf("%s: at %#x, outside the block [%#x, +%d) or off a cache line", e.Name, a, lo, n)
				}
			}
			if (ref.Output == ref.TokenEmbd) != (m.Output == m.TokenEmbd) {
				t.Fatal("the tied output is no longer the embedding")
			}
			if again := m.CopyToHugePages(); again != 0 {
				t.Fatalf("a second call copied %d bytes", again)
			}
			logits := func(m *model.Model) []float32 {
				e, err := engine.New(m, engine.Options{Threads: 2})
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				seq, err := e.NewSequence(0)
				if err != nil {
					t.Fatal(err)
				}
				it := &engine.Item{Seq: seq, Tokens: []int{1, 400, 300, 200, 100}, Logits: engine.LogitsAll}
				if err := e.Forward(it); err != nil {
					t.Fatal(err)
				}
				var all []float32
				for _, o := range it.Out {
					all = append(all, o...)
				}
				return all
			}
			a, b := logits(ref), logits(m)
			for i := range a {
				if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
					t.Fatalf("logit %d: %v from the mapped file, %v from the copy", i, a[i], b[i])
				}
			}
		})
	}
}
