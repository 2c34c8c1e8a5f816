package synth

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/verdictnet/verdict/internal/gguf"
	"github.com/verdictnet/verdict/internal/tensor"
)

// Options say what Write writes.
type Options struct {
	Preset string // a name of Presets
	// Vocab is the GGUF whose tokenizer.* metadata (vocabulary, merges,
	// chat template) is copied; "" uses BuiltinVocab.
	Vocab string
	Seed  uint64
	// Type is a name of Types: one weight type for every matrix, or a
	// llama.cpp mix such as q4_k_m. "" is f32.
	Type string
}

// weightType is one --type choice: a file type (general.file_type, llama.cpp's
// llama_ftype) and the rule choosing each matrix's tensor type.
type weightType struct {
	name   string
	ftype  uint32
	typeOf typeFunc
}

// weightTypes are the choices of Options.Type.
var weightTypes = []weightType{
	{"f32", 0, uniformTypes(tensor.F32)},
	{"f16", 1, uniformTypes(tensor.F16)},
	{"bf16", 32, uniformTypes(tensor.BF16)},
	{"q8_0", 7, uniformTypes(tensor.Q8_0)},
	{"q4_0", 2, uniformTypes(tensor.Q4_0)},
	{"q4_1", 3, uniformTypes(tensor.Q4_1)},
	{"q5_0", 8, uniformTypes(tensor.Q5_0)},
	{"q5_1", 9, uniformTypes(tensor.Q5_1)},
	{"q4_k", 14, uniformTypes(tensor.Q4_K)},
	{"q5_k", 16, uniformTypes(tensor.Q5_K)},
	{"q6_k", 18, uniformTypes(tensor.Q6_K)},
	{"q4_k_m", 15, kMix(tensor.Q4_K)}, // LLAMA_FTYPE_MOSTLY_Q4_K_M
	{"q5_k_m", 17, kMix(tensor.Q5_K)}, // LLAMA_FTYPE_MOSTLY_Q5_K_M
}

// Types lists the names Options.Type accepts.
func Types() []string {
	names := make([]string, len(weightTypes))
	for i, t := range weightTypes {
		names[i] = t.name
	}
	return names
}

func lookupType(name string) (weightType, error) {
	if name == "" {
		name = "f32"
	}
	for _, t := range weightTypes {
		if strings.EqualFold(t.name, name) {
			return t, nil
		}
	}
	return weightType{}, fmt.Errorf("unknown weight type %q (known: %s)", name, strings.Join(Types(), ", "))
}

// Write writes the model o describes to w as a GGUF, streaming: memory use
// does not grow with the model (a row of a matrix at a time), so the
// 8B-parameter presets can be written on a small machine.
func Write(w io.Writer, o Options) error {
	p, err := LookupPreset(o.Preset)
	if err != nil {
		return err
	}
	wt, err := lookupType(o.Type)
	if err != nil {
		return err
	}
	var tok []gguf.KV
	var n int
	if o.Vocab == "" {
		tok, n = builtinKVs()
		if p.Vocab != 0 && p.Vocab != n {
			return fmt.Errorf("preset %s needs a vocabulary of %d tokens (--vocab); the built-in one has %d", p.Name, p.Vocab, n)
		}
	} else if tok, n, err = vocabKVs(o.Vocab, p.Vocab); err != nil {
		return err
	}
	return writeModel(p, wt.ftype, tok, n, o.Seed, wt.typeOf, w)
}

// WriteFile writes the model o describes to path (through a temporary file
// in the same directory, renamed when complete, so that path never holds a
// partial model). It overwrites an existing file.
func WriteFile(path string, o Options) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".synth-*.gguf")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := Write(bw, o); err != nil {
		tmp.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
