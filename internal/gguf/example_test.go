package gguf_test

import (
	"bytes"
	"fmt"

	"github.com/verdictnet/verdict/internal/gguf"
	"github.com/verdictnet/verdict/internal/tensor"
)

func ExampleWrite() {
	var buf bytes.Buffer
	err := gguf.Write(&buf,
		[]gguf.KV{
			{Key: "general.architecture", Value: gguf.String("llama")},
			{Key: "llama.block_count", Value: gguf.Uint32(2)},
			{Key: "tokenizer.ggml.tokens", Value: gguf.Array([]string{"<unk>", "<s>", "</s>"})},
		},
		[]gguf.TensorData{{Name: "w", Type: tensor.F32, Dims: []int{2, 1}, Data: make([]byte, 8)}})
	if err != nil {
		panic(err)
	}
	f, err := gguf.Parse(buf.Bytes())
	if err != nil {
		panic(err)
	}
	layers, _ := f.Int("llama.block_count")
	toks, _ := f.Strings("tokenizer.ggml.tokens")
	w, _ := f.Tensor("w")
	fmt.Println(len(buf.Bytes()), f.Version, layers, toks, w.Type, w.Dims)
	// Output: 256 3 2 [<unk> <s> </s>] F32 [2 1]
}
