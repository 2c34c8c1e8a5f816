package model

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

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

// VocabFromGGUF builds a vocabulary from a GGUF file's tokenizer metadata,
// with llama.cpp's defaults for absent keys. Supported tokenizer models:
// "llama" (SentencePiece) and "gpt2" (byte-level BPE with one of the
// pre-tokenizers of tokenizer.PreTokenizers).
func VocabFromGGUF(f *gguf.File) (*tokenizer.Vocab, error) {
	tm, err := f.String("tokenizer.ggml.model")
	if err != nil {
		return nil, fmt.Errorf("no tokenizer: %w", err)
	}
	v := &tokenizer.Vocab{}
	// llama.cpp's defaults per tokenizer model.
	bos, eos, unk := 1, 2, 0
	switch tm {
	case "llama":
		v.Flavor = tokenizer.SPM
		v.AddBOS = true
	case "gpt2":
		v.Flavor = tokenizer.BPE
		bos, eos, unk = 11, 11, -1
		if f.Has("tokenizer.ggml.pre") {
			if v.Pre, err = f.String("tokenizer.ggml.pre"); err != nil {
				return nil, err
			}
		}
		if v.AddBOS, err = tokenizer.PreAddsBOS(v.Pre); err != nil {
			return nil, err
		}
		if tokenizer.PreClearsBOS(v.Pre) {
			bos = -1
		}
		// Read in place: 280k merges of Llama 3 would be 7.8 MB of
		// heap as Go strings, and only tokenizer.New reads them.
		merges, err := f.StringArray("tokenizer.ggml.merges")
		if err != nil {
			return nil, fmt.Errorf("BPE vocabulary without merges: %w", err)
		}
		v.Merges = merges
	default:
		return nil, fmt.Errorf("tokenizer model %q is not supported (only \"llama\" and \"gpt2\")", tm)
	}
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
	// A default id outside the vocabulary means none (llama.cpp
	// disables it); an id given in the file must be inside it, except
	// that -1 (or its unsigned spelling) means none for the optional ones.
	var eot, eom int
	for _, id := range []struct {
		key      string
		dst      *int
		def      int
		optional bool
	}{
		{"tokenizer.ggml.bos_token_id", &v.BOS, bos, tm == "gpt2"},
		{"tokenizer.ggml.eos_token_id", &v.EOS, eos, tm == "gpt2"},
		{"tokenizer.ggml.unknown_token_id", &v.UNK, unk, true},
		{"tokenizer.ggml.eot_token_id", &eot, -1, true},
		{"tokenizer.ggml.eom_token_id", &eom, -1, true},
	} {
		*id.dst = id.def
		if !f.Has(id.key) {
			if id.def >= n {
				if !id.optional {
					return nil, fmt.Errorf("%s is absent and the default %d is not below the vocabulary size %d", id.key, id.def, n)
				}
				*id.dst = -1
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
	for _, id := range []int{eot, eom} {
		if id >= 0 {
			v.EOG = append(v.EOG, id)
		}
	}
	for _, b := range []struct {
		key string
		dst *bool
	}{{"tokenizer.ggml.add_bos_token", &v.AddBOS}, {"tokenizer.ggml.add_eos_token", &v.AddEOS}} {
		if f.Has(b.key) {
			if *b.dst, err = f.Bool(b.key); err != nil {
				return nil, err
			}
		}
	}
	if v.AddBOS && v.BOS < 0 {
		return nil, fmt.Errorf("tokenizer.ggml.add_bos_token is set but the vocabulary has no BOS token")
	}
	if v.AddEOS && v.EOS < 0 {
		return nil, fmt.Errorf("tokenizer.ggml.add_eos_token is set but the vocabulary has no EOS token")
	}
	if tm == "llama" && f.Has("tokenizer.ggml.add_space_prefix") {
		add, err := f.Bool("tokenizer.ggml.add_space_prefix")
		if err != nil {
			return nil, err
		}
		v.NoDummyPrefix = !add
	}
	// llama.cpp makes special tokens of models named Phi-3 swallow the
	// white space after them.
	if f.Has("general.name") {
		name, err := f.String("general.name")
		if err != nil {
			return nil, err
		}
		name = strings.ToLower(name)
		v.RStripSpecial = strings.Contains(name, "phi-3") || strings.Contains(name, "phi3")
	}
	return v, nil
}
