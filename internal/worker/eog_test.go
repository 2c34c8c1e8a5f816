package worker

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/verdictnet/verdict/internal/synth"
	"github.com/verdictnet/verdict/internal/tensor"
	"github.com/verdictnet/verdict/internal/testutil"
)

// TestStopsAtEndOfGeneration: a model with a ChatML vocabulary (SmolLM2)
// stops at "<|im_end|>" and "<|endoftext|>", which llama.cpp recognises
// as end of generation by their text, besides BOS and EOS.
func TestStopsAtEndOfGeneration(t *testing.T) {
	vocab := testutil.Shared(t, "tokenizers/derived/ggml-vocab-smollm2.derived.gguf")
	path := filepath.Join(t.TempDir(), "m.gguf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := synth.Generate("tiny", vocab, 1, tensor.Q8_0, f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	w, err := Open(Config{ModelPath: path, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, text := range []string{"<|im_end|>", "<|endoftext|>"} {
		id, ok := w.tok.TokenID(text)
		if !ok || !slices.Contains(w.stops, id) {
			t.Errorf("%s (id %d, found %v) is not among the stop tokens %v", text, id, ok, w.stops)
		}
	}
	if v := w.m.Vocab; !slices.Contains(w.stops, v.BOS) || !slices.Contains(w.stops, v.EOS) {
		t.Errorf("stops %v lack BOS %d or EOS %d", w.stops, v.BOS, v.EOS)
	}
}
