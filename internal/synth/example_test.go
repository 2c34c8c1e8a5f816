package synth_test

import (
	"bufio"
	"log"
	"os"

	"github.com/verdictnet/verdict/internal/synth"
	"github.com/verdictnet/verdict/internal/tensor"
)

// Write a stories15M-shaped model with Q8_0 weights and the Llama 2
// vocabulary.
func ExampleGenerate() {
	f, err := os.Create("synth-15m-q8_0.gguf")
	if err != nil {
		log.Fatal(err)
	}
	w := bufio.NewWriter(f)
	if err := synth.Generate("15m", "../shared/models/ggml-vocab-llama-spm.gguf", 42, tensor.Q8_0, w); err != nil {
		log.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}

// Write a model in the shape of Qwen3 0.6B, in llama.cpp's Q4_K_M mix, on
// the real Qwen vocabulary (its merges and chat template are copied too);
// then a small qwen3 with the built-in vocabulary, which needs no file.
func ExampleWriteFile() {
	err := synth.WriteFile("qwen3-0.6b-q4_k_m.gguf", synth.Options{
		Preset: "qwen3-0.6b",
		Vocab:  "../shared/tokenizers/derived/ggml-vocab-qwen2.derived-from-qwen3.gguf",
		Seed:   1,
		Type:   "q4_k_m",
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := synth.WriteFile("tiny-qwen3.gguf", synth.Options{Preset: "tiny-qwen3", Type: "f16"}); err != nil {
		log.Fatal(err)
	}
}
