package model

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/verdictnet/verdict/internal/gguf"
	"github.com/verdictnet/verdict/internal/llama2c"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

// LoadVocab reads a tokenizer from a GGUF file (its tokenizer.ggml.*
// metadata) or from a llama2.c tokenizer file, told apart by the GGUF magic.
// A llama2.c tokenizer file is read to its end. Errors start with the path.
func LoadVocab(path string) (*tokenizer.Vocab, error) {
	isGGUF, err := hasMagic(path, gguf.Magic)
	if err != nil {
		return nil, err
	}
	if !isGGUF {
		return llama2c.ReadTokenizer(path, 0)
	}
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	v, err := VocabFromGGUF(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// hasMagic reports whether the file starts with magic.
func hasMagic(path, magic string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	buf := make([]byte, len(magic))
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	return bytes.Equal(buf[:n], []byte(magic)), nil
}

// VocabFromGGUF builds a vocabulary from a GGUF file's tokenizer metadata.
// Only the SentencePiece "llama" tokenizer model is supported.
func VocabFromGGUF(f *gguf.File) (*tokenizer.Vocab, error) {
	tm, err := f.String("tokenizer.ggml.model")
	if err != nil {
		return nil, fmt.Errorf("no tokenizer: %w", err)
	}
	if tm != "llama" {
		return nil, fmt.Errorf("tokenizer model %q is not supported (only \"llama\")", tm)
	}
	v := &tokenizer.Vocab{Flavor: tokenizer.SPM}
	if v.Tokens, err = f.Strings("tokenizer.ggml.tokens"); err != nil {
		return nil, err
	}
	n := len(v.Tokens)
	if n == 0 {
		return nil, fmt.Errorf("tokenizer.ggml.tokens is empty")
	}
	if f.Has("tokenizer.ggml.scores") {
		if v.Scores, err = f.Float32s("tokenizer.ggml.scores"); err != nil {
			return nil, err
		}
		if len(v.Scores) != n {
			return nil, fmt.Errorf("tokenizer.ggml.scores has %d entries for %d tokens", len(v.Scores), n)
		}
	} else {
		v.Scores = make([]float32, n)
	}
	if f.Has("tokenizer.ggml.token_type") {
		ts, err := f.Int32s("tokenizer.ggml.token_type")
		if err != nil {
			return nil, err
		}
		if len(ts) != n {
			return nil, fmt.Errorf("tokenizer.ggml.token_type has %d entries for %d tokens", len(ts), n)
		}
		v.Types = make([]tokenizer.TokenType, n)
		for i, t := range ts {
			if t < int32(tokenizer.Undefined) || t > int32(tokenizer.Byte) {
				return nil, fmt.Errorf("tokenizer.ggml.token_type: token %d has unknown type %d", i, t)
			}
			v.Types[i] = tokenizer.TokenType(t)
		}
	}
	for _, id := range []struct {
		key      string
		dst      *int
		def      int
		optional bool
	}{
		{"tokenizer.ggml.bos_token_id", &v.BOS, 1, false},
		{"tokenizer.ggml.eos_token_id", &v.EOS, 2, false},
		{"tokenizer.ggml.unknown_token_id", &v.UNK, 0, true},
	} {
		*id.dst = id.def
		if !f.Has(id.key) {
			if id.def >= n {
				return nil, fmt.Errorf("%s is absent and the default %d is not below the vocabulary size %d", id.key, id.def, n)
			}
			continue
		}
		x, err := f.Int64(id.key)
		if err != nil {
			return nil, err
		}
		switch {
		case x >= 0 && x < int64(n):
			*id.dst = int(x)
		case id.optional && (x == -1 || x == 0xFFFFFFFF):
			*id.dst = -1
		default:
			return nil, fmt.Errorf("%s %d is outside the vocabulary of %d tokens", id.key, x, n)
		}
	}
	v.AddBOS = true
	if f.Has("tokenizer.ggml.add_bos_token") {
		if v.AddBOS, err = f.Bool("tokenizer.ggml.add_bos_token"); err != nil {
			return nil, err
		}
	}
	if f.Has("tokenizer.ggml.add_space_prefix") {
		add, err := f.Bool("tokenizer.ggml.add_space_prefix")
		if err != nil {
			return nil, err
		}
		v.NoDummyPrefix = !add
	}
	return v, nil
}
