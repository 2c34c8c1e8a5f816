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
