package model_test

import (
	"fmt"

	"github.com/verdictnet/verdict/internal/model"
)

// Load a llama2.c checkpoint with its tokenizer, or a GGUF file that
// carries its own (pass "" as the tokenizer path).
func ExampleLoad() {
	m, err := model.Load("../shared/models/stories260K.bin", "../shared/models/tok512.bin")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	fmt.Println(m.Format, m.Config.Dim, m.Config.Layers, len(m.Vocab.Tokens))
}
