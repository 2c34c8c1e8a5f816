package tokenizer_test

import (
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/tokenizer"
)

// checkMinTokens fails t when an encoding of s (plain, with special
// tokens, or as spans) gives fewer tokens than MinTokens(s).
func checkMinTokens(t *testing.T, tok *tokenizer.Tokenizer, s string) {
	t.Helper()
	min := tok.MinTokens(s)
	for _, enc := range []struct {
		name string
		fn   func() ([]int, error)
	}{
		{"Encode", func() ([]int, error) { return tok.Encode(s, false) }},
		{"EncodeSpecial", func() ([]int, error) { return tok.EncodeSpecial(s, false) }},
		{"EncodeSpans", func() ([]int, error) {
			return tok.EncodeSpans([]tokenizer.Span{{Text: s[:len(s)/2], Special: true}, {Text: s[len(s)/2:]}}, false)
		}},
	} {
		ids, err := enc.fn()
		if err == nil && len(ids) < min {
			t.Fatalf("%s of %.40q (%d bytes): %d tokens, MinTokens says at least %d", enc.name, s, len(s), len(ids), min)
		}
	}
}

// MinTokens bounds the tokens of texts built to need few: the longest
// piece repeated, long runs of one character, overlong UTF-8 forms (which
// llama.cpp re-encodes short), stray bytes, special-token text, bytes a
// vocabulary has no token for; on every shared vocabulary.
func TestMinTokens(t *testing.T) {
	vocabs := append([]string{"models/tok512.bin", "models/ggml-vocab-llama-spm.gguf",
		"tokenizers/llama.cpp/ggml-vocab-phi-3.gguf", "tokenizers/llama.cpp/ggml-vocab-mpt.gguf",
		"tokenizers/llama.cpp/ggml-vocab-refact.gguf", "tokenizers/llama.cpp/ggml-vocab-baichuan.gguf"}, bpeFuzzVocabs...)
	for _, rel := range vocabs {
		t.Run(rel, func(t *testing.T) {
			tok := load(t, rel)
			v := tok.Vocab()
			longest, longestID := "", 0
			for i, p := range v.Tokens {
				if len(p) > len(longest) {
					longest, longestID = p, i
				}
			}
			// The longest piece's text with every ASCII byte in the
			// four-byte overlong form, which llama.cpp decodes to the
			// byte: a BPE vocabulary's one token from four times the
			// bytes.
			var overlong []byte
			if text, err := tok.Decode([]int{longestID}); err == nil {
				for _, b := range []byte(text) {
					if b < 0x80 {
						overlong = append(overlong, 0xF0, 0x80, 0x80|b>>6, 0x80|b&0x3F)
					} else {
						overlong = append(overlong, b)
					}
				}
			}
			texts := []string{"", "a", longest, strings.Repeat(longest, 50),
				strings.Repeat(" ", 5000), strings.Repeat("\n", 3000), strings.Repeat("\t", 999), strings.Repeat("a", 4096),
				strings.Repeat("\xc0\x80", 1000), strings.Repeat("\xf0\x80\x80\x80", 1000), strings.Repeat("\xff", 1000),
				strings.Repeat("\xe4\xb8", 500), strings.Repeat("中", 2000), strings.Repeat("🦙", 700),
				strings.Repeat("\x00\x01\x02\x7f", 300), strings.Repeat("▁", 1000),
				string(overlong), strings.Repeat(string(overlong), 20)}
			for _, id := range []int{v.BOS, v.EOS, v.UNK} {
				if id >= 0 {
					texts = append(texts, strings.Repeat(v.Tokens[id], 100))
				}
			}
			for b := range 256 {
				texts = append(texts, strings.Repeat(string([]byte{byte(b)}), 64))
			}
			for _, s := range texts {
				checkMinTokens(t, tok, s)
			}
			// The bound is not empty: a text of n bytes is at least one
			// token, and longer than a few pieces more than one.
			if tok.MinTokens("a") != 1 || tok.MinTokens(strings.Repeat("a", 4*len(longest)+1)) < 2 {
				t.Errorf("MinTokens: %d for one byte, %d for %d", tok.MinTokens("a"), tok.MinTokens(strings.Repeat("a", 4*len(longest)+1)), 4*len(longest)+1)
			}
		})
	}
}
