package chat_test

import (
	"encoding/json"
	"testing"

	"github.com/verdictnet/verdict/internal/chat"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/testutil"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

// BenchmarkQwen3 renders and tokenizes the tool-call round trip of the
// conversation corpus with the Qwen3 GGUF's template and vocabulary.
func BenchmarkQwen3(b *testing.B) {
	path := testutil.Shared(b, "tokenizers/derived/ggml-vocab-qwen2.derived-from-qwen3.gguf")
	v, err := model.LoadVocab(path)
	if err != nil {
		b.Fatal(err)
	}
	tok, err := tokenizer.New(v)
	if err != nil {
		b.Fatal(err)
	}
	src, _, _ := ggufTemplate(b, path)
	tp, err := chat.ForVocab(src, v)
	if err != nil {
		b.Fatal(err)
	}
	var req chat.Request
	for _, c := range conversations(b) {
		if c.Name == "tool-call-round-trip" {
			if err := json.Unmarshal(c.Request, &req); err != nil {
				b.Fatal(err)
			}
		}
	}
	req.AddGenerationPrompt = true
	b.Run("parse", func(b *testing.B) {
		for b.Loop() {
			if _, err := chat.ForVocab(src, v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("render", func(b *testing.B) {
		for b.Loop() {
			if _, err := tp.Render(&req); err != nil {
				b.Fatal(err)
			}
		}
	})
	p, err := tp.Render(&req)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(int64(len(p.Text())))
		for b.Loop() {
			if _, err := p.Encode(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
