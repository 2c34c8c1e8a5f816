package gguf

import (
	"bytes"
	"github.com/verdictnet/verdict/internal/testutil"
	"os"
	"path/filepath"
	"testing"
)

// TestRewriteSharedFiles rewrites GGUF files produced by llama.cpp's own
// writer and expects the same bytes: an independent check of the layout
// Write produces (header, metadata encoding, alignment and padding).
func TestRewriteSharedFiles(t *testing.T) {
	dir := testutil.Shared(t, "models")
	for _, name := range []string{"stories260K.gguf", "stories260K-F16.gguf", "stories260K-Q8_0.gguf", "stories260K-Q4_0.gguf", "llama-2-tiny-random.gguf", "ggml-vocab-llama-spm.gguf"} {
		t.Run(name, func(t *testing.T) {
			orig, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			f, err := Parse(orig)
			if err != nil {
				t.Fatal(err)
			}
			var ts []TensorData
			for _, ti := range f.Tensors {
				tt, err := f.Tensor(ti.Name)
				if err != nil {
					t.Fatal(err)
				}
				ts = append(ts, TensorData{Name: tt.Name, Type: tt.Type, Dims: tt.Dims, Data: tt.Data})
			}
			var buf bytes.Buffer
			if err := Write(&buf, f.KV, ts); err != nil {
				t.Fatal(err)
			}
			got := buf.Bytes()
			if !bytes.Equal(got, orig) {
				n := 0
				for n < len(got) && n < len(orig) && got[n] == orig[n] {
					n++
				}
				t.Errorf("rewritten file differs from the original at byte %d (lengths %d and %d)", n, len(got), len(orig))
			}
		})
	}
}
