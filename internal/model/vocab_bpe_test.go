package model

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/gguf"
	"github.com/verdictnet/verdict/internal/testutil"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

// bpeVocabFile writes a copy of the GPT-2 vocabulary-only GGUF with its
// metadata edited.
func bpeVocabFile(t *testing.T, edits ...func([]gguf.KV) []gguf.KV) string {
	t.Helper()
	f, err := gguf.Open(testutil.Shared(t, "tokenizers/llama.cpp/ggml-vocab-gpt-2.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kvs := slices.Clone(f.KV)
	for _, e := range edits {
		kvs = e(kvs)
	}
	path := filepath.Join(t.TempDir(), "vocab.gguf")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := gguf.Write(out, kvs, nil); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLoadBPEVocab checks llama.cpp's defaults and the keys of byte-level
// BPE vocabularies.
func TestLoadBPEVocab(t *testing.T) {
	tests := []struct {
		name           string
		edits          []func([]gguf.KV) []gguf.KV
		pre            string
		bos, eos       int
		addBOS, addEOS bool
		eog            []int
		err            string
	}{
		{name: "as shipped", pre: "gpt-2", bos: 50256, eos: 50256},
		{name: "no pre key", edits: []func([]gguf.KV) []gguf.KV{dropKV("tokenizer.ggml.pre")}, pre: "", bos: 50256, eos: 50256},
		{name: "default ids", edits: []func([]gguf.KV) []gguf.KV{dropKV("tokenizer.ggml.bos_token_id"), dropKV("tokenizer.ggml.eos_token_id")},
			pre: "gpt-2", bos: 11, eos: 11},
		{name: "llama3 adds BOS", edits: []func([]gguf.KV) []gguf.KV{setKV("tokenizer.ggml.pre", gguf.String("llama-bpe"))},
			pre: "llama-bpe", bos: 50256, eos: 50256, addBOS: true},
		{name: "key overrides", edits: []func([]gguf.KV) []gguf.KV{setKV("tokenizer.ggml.pre", gguf.String("llama-bpe")),
			setKV("tokenizer.ggml.add_bos_token", gguf.Bool(false)), setKV("tokenizer.ggml.add_eos_token", gguf.Bool(true))},
			pre: "llama-bpe", bos: 50256, eos: 50256, addEOS: true},
		{name: "glm4 has no default BOS", edits: []func([]gguf.KV) []gguf.KV{setKV("tokenizer.ggml.pre", gguf.String("glm4")),
			dropKV("tokenizer.ggml.bos_token_id")}, pre: "glm4", bos: -1, eos: 50256},
		{name: "eot and eom", edits: []func([]gguf.KV) []gguf.KV{setKV("tokenizer.ggml.eot_token_id", gguf.Uint32(13)),
			setKV("tokenizer.ggml.eom_token_id", gguf.Uint32(14))}, pre: "gpt-2", bos: 50256, eos: 50256, eog: []int{13, 14}},
		{name: "unknown pre", edits: []func([]gguf.KV) []gguf.KV{setKV("tokenizer.ggml.pre", gguf.String("no-such-pre"))},
			err: `BPE pre-tokenizer "no-such-pre" is not supported`},
		{name: "eot out of range", edits: []func([]gguf.KV) []gguf.KV{setKV("tokenizer.ggml.eot_token_id", gguf.Uint32(60000))},
			err: "tokenizer.ggml.eot_token_id 60000 is outside the vocabulary"},
		{name: "add_bos without BOS", edits: []func([]gguf.KV) []gguf.KV{setKV("tokenizer.ggml.pre", gguf.String("glm4")),
			dropKV("tokenizer.ggml.bos_token_id"), setKV("tokenizer.ggml.add_bos_token", gguf.Bool(true))},
			err: "add_bos_token is set but the vocabulary has no BOS token"},
		{name: "no merges", edits: []func([]gguf.KV) []gguf.KV{dropKV("tokenizer.ggml.merges")}, err: "BPE vocabulary without merges"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := LoadVocab(bpeVocabFile(t, tt.edits...))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %v, want one line with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Flavor != tokenizer.BPE || v.Pre != tt.pre || v.BOS != tt.bos || v.EOS != tt.eos || v.UNK != -1 ||
				v.AddBOS != tt.addBOS || v.AddEOS != tt.addEOS || !slices.Equal(v.EOG, tt.eog) || v.Merges.Len() != 50000 {
				t.Fatalf("got flavor %s pre %q bos %d eos %d unk %d addBOS %v addEOS %v eog %v merges %d",
					v.Flavor, v.Pre, v.BOS, v.EOS, v.UNK, v.AddBOS, v.AddEOS, v.EOG, v.Merges.Len())
			}
			if _, err := tokenizer.New(v); err != nil {
				t.Fatal(err)
			}
		})
	}
}
