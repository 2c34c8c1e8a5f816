package tokenizer_test

import (
	"slices"
	"testing"

	"github.com/verdictnet/verdict/internal/tokenizer"
)

// TestPreSplit shows how the pre-tokenizer families cut a few texts into
// words; expectations are worked out by hand from llama.cpp's definitions
// (the differential test checks the same against llama.cpp at scale).
func TestPreSplit(t *testing.T) {
	base := "tokenizers/derived/ggml-vocab-llama-bpe.derived.gguf"
	tests := []struct {
		vocab, pre, text string
		want             []string
	}{
		{base, "", "camelCaseWord HELLOWorld's 12345", []string{"camelCaseWord", " HELLOWorld", "'s", " ", "123", "45"}},
		{base, "tekken", "camelCaseWord HELLOWorld's 12345", []string{"camel", "Case", "Word", " HELLOWorld", "'s", " ", "1", "2", "3", "4", "5"}},
		{base, "gpt-4o", "camelCaseWord HELLOWorld's 12345", []string{"camel", "Case", "Word", " HELLOWorld's", " ", "123", "45"}},
		{base, "gpt-4o", "ABC  \n\n x", []string{"ABC", "  \n\n", " x"}},
		{"tokenizers/llama.cpp/ggml-vocab-gpt-2.gguf", "", "Hello  world!!\n\n  ", []string{"Hello", " ", " world", "!!", "\n\n  "}},
		{"tokenizers/llama.cpp/ggml-vocab-starcoder.gguf", "", "x 42 ½", []string{"x", " ", "4", "2", " ", "½"}},
		{"tokenizers/llama.cpp/ggml-vocab-deepseek-coder.gguf", "", "a\nb 中文", []string{"a", "\n", "b", " ", "中文"}},
	}
	for _, tt := range tests {
		tok := load(t, tt.vocab)
		if tt.pre != "" {
			v := *tok.Vocab()
			v.Pre = tt.pre
			var err error
			if tok, err = tokenizer.New(&v); err != nil {
				t.Fatal(err)
			}
		}
		if got := tokenizer.PreSplit(tok, tt.text); !slices.Equal(got, tt.want) {
			t.Errorf("%s %q: %q, want %q", tt.pre, tt.text, got, tt.want)
		}
	}
}
