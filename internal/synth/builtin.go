package synth

import (
	"fmt"
	"io"
	"strings"

	"github.com/verdictnet/verdict/internal/gguf"
	"github.com/verdictnet/verdict/internal/tensor"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

// builtinWords are the words whose pieces (with the SentencePiece space
// marker) the built-in vocabulary holds besides single characters and
// bytes. The list is fixed: changing it changes the built-in model's id.
var builtinWords = strings.Fields(`the and a to of was he she it in is with for on that they her his
said day big little girl boy cat dog play happy once upon time there Lily Tom Ben friend friends tree
ball sun went had saw very wanted mom dad one not but so you I we be at have this from all up can like
good go what do see look run jump red blue park home fun love help toy make find new sky bird fish
water house car book cake smile sad together loved played asked named Once One The She He Verdict verify receipt model`)

// builtinChars are the single characters of the built-in vocabulary.
const builtinChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-:;()"

// BuiltinVocab returns the built-in SentencePiece-style vocabulary: <unk>,
// <s>, </s>, the 256 byte tokens <0x00>..<0xFF>, the space marker and
// single characters, then every prefix of at least two characters of
// "▁word" for the built-in words, scored so that longer pieces merge later
// (the SPM rule: a higher score merges first). It needs no file, and is the
// same on every machine.
func BuiltinVocab() (tokens []string, scores []float32, types []int32) {
	add := func(t string, s float32, ty tokenizer.TokenType) {
		tokens = append(tokens, t)
		scores = append(scores, s)
		types = append(types, int32(ty))
	}
	add("<unk>", 0, tokenizer.Unknown)
	add("<s>", 0, tokenizer.Control)
	add("</s>", 0, tokenizer.Control)
	for b := 0; b < 256; b++ {
		add(fmt.Sprintf("<0x%02X>", b), 0, tokenizer.Byte)
	}
	seen := map[string]bool{}
	var pieces []string
	piece := func(s string) {
		if !seen[s] {
			seen[s] = true
			pieces = append(pieces, s)
		}
	}
	piece("▁")
	for _, c := range builtinChars {
		piece(string(c))
	}
	for _, w := range builtinWords {
		r := []rune("▁" + w)
		for k := 2; k <= len(r); k++ {
			piece(string(r[:k]))
		}
	}
	for i, p := range pieces {
		// Shorter pieces first; within a length, list order.
		add(p, -float32(i)-float32(float32(len([]rune(p)))*1000), tokenizer.Normal)
	}
	return tokens, scores, types
}

// BuiltinName is the model name of the built-in default model.
const BuiltinName = "verdict-tiny"

// BuiltinSeed is the weight seed of the built-in default model.
const BuiltinSeed = 8004

// GenerateBuiltin writes a model of the named preset with random weights
// and the built-in vocabulary (BuiltinVocab): a complete model that needs
// no file. The same preset, seed and type give the same bytes, hence the
// same model id.
func GenerateBuiltin(preset string, seed uint64, typ tensor.Type, w io.Writer) error {
	p, err := LookupPreset(preset)
	if err != nil {
		return err
	}
	ft, err := fileType(typ)
	if err != nil {
		return err
	}
	tok, n := builtinKVs()
	return writeModel(p, ft, tok, n, seed, uniformTypes(typ), w)
}

// builtinKVs is the tokenizer metadata of BuiltinVocab and its size.
func builtinKVs() ([]gguf.KV, int) {
	tokens, scores, types := BuiltinVocab()
	return []gguf.KV{
		{Key: "tokenizer.ggml.model", Value: gguf.String("llama")},
		{Key: "tokenizer.ggml.tokens", Value: gguf.Array(tokens)},
		{Key: "tokenizer.ggml.scores", Value: gguf.Array(scores)},
		{Key: "tokenizer.ggml.token_type", Value: gguf.Array(types)},
		{Key: "tokenizer.ggml.bos_token_id", Value: gguf.Uint32(1)},
		{Key: "tokenizer.ggml.eos_token_id", Value: gguf.Uint32(2)},
		{Key: "tokenizer.ggml.unknown_token_id", Value: gguf.Uint32(0)},
		{Key: "tokenizer.ggml.add_bos_token", Value: gguf.Bool(true)},
	}, len(tokens)
}
