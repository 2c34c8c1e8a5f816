package tokenizer

import (
	"iter"
	"strings"
)

// TokenType classifies a vocabulary entry, numbered as GGUF's
// tokenizer.ggml.token_type (llama.cpp's llama_token_type).
type TokenType int32

// Token types.
const (
	Undefined   TokenType = 0
	Normal      TokenType = 1
	Unknown     TokenType = 2
	Control     TokenType = 3
	UserDefined TokenType = 4
	Unused      TokenType = 5
	Byte        TokenType = 6
)

// Flavor names the encoding rules a vocabulary follows.
type Flavor string

const (
	// Llama2C is llama2.c's run.c encoder: its vocabulary stores plain
	// spaces, and the encoder adds one dummy-prefix space.
	Llama2C Flavor = "llama2c"
	// SPM is llama.cpp's SentencePiece ("llama") encoder: spaces are
	// stored as U+2581, byte fallback through <0xXX> tokens.
	SPM Flavor = "spm"
	// BPE is llama.cpp's byte-level BPE ("gpt2") encoder: a
	// pre-tokenizer named by Pre splits the text into words, each word's
	// bytes are mapped to GPT-2's printable characters, and the pairs of
	// Merges are applied by rank.
	BPE Flavor = "bpe"
)

// Vocab is the tokenizer data carried by a model file, independent of the
// file format it came from.
type Vocab struct {
	Flavor Flavor
	Tokens []string
	Scores []float32
	Types  []TokenType // may be nil: all Normal
	BOS    int
	EOS    int
	UNK    int // -1 when there is none
	AddBOS bool
	// AddEOS asks for EOS at the end of a prompt (GGUF
	// tokenizer.ggml.add_eos_token); Encode never adds it by itself.
	AddEOS bool
	// EOG lists further end-of-generation tokens that the file names
	// (GGUF tokenizer.ggml.eot_token_id and eom_token_id). The Tokenizer
	// adds EOS and the tokens llama.cpp recognises by their text; see
	// Tokenizer.EOG.
	EOG []int
	// Merges are the BPE merge rules, best first, each two pieces
	// separated by one space (GGUF tokenizer.ggml.merges). BPE only. New
	// reads them once; a vocabulary read from a GGUF file leaves them in
	// the file (gguf.StringArray), StringSlice holds them in memory.
	Merges Strings
	// Pre names the BPE pre-tokenizer (GGUF tokenizer.ggml.pre; "" means
	// "default"). BPE only; see PreTokenizers.
	Pre string
	// MaxTokenLen is llama2.c's max_token_length header (0 when unknown).
	MaxTokenLen int
	// NoDummyPrefix turns off the SPM dummy-prefix space (GGUF
	// tokenizer.ggml.add_space_prefix = false). The zero value follows
	// llama.cpp's default for SPM vocabularies: add it. Llama2C ignores it.
	NoDummyPrefix bool
	// RStripSpecial makes special tokens swallow the whitespace after
	// them, as llama.cpp does for models named Phi-3 (general.name): all
	// control, user-defined and unknown tokens and "</s>", except "<unk>",
	// "<s>" and "<|endoftext|>".
	RStripSpecial bool
}

// CanonicalPiece returns token id's piece in SentencePiece form, as a GGUF
// file of the same model stores it ("" for an id outside the vocabulary).
// llama2.c tokenizer files store U+2581 as a plain space and wrap the BOS
// and EOS pieces in newlines ("\n<s>\n", "\n</s>\n"); for a Llama2C
// vocabulary both are undone ("<s>", "</s>", as llama.cpp's converter and
// Hugging Face have them). The vocabulary itself keeps the file's pieces,
// which run.c's encoder and decoder use.
func (v *Vocab) CanonicalPiece(id int) string {
	if id < 0 || id >= len(v.Tokens) {
		return ""
	}
	t := v.Tokens[id]
	if v.Flavor != Llama2C {
		return t
	}
	if (id == v.BOS || id == v.EOS) && len(t) >= 2 && t[0] == '\n' && t[len(t)-1] == '\n' {
		t = t[1 : len(t)-1]
	}
	return strings.ReplaceAll(t, " ", spaceEscape)
}

// Strings is a read-only list of strings, read in order.
type Strings interface {
	Len() int
	// All yields each index and string, Len of them; the bytes must not
	// be modified and are valid only until the loop body returns.
	All() iter.Seq2[int, []byte]
}

// StringSlice is a []string as Strings.
type StringSlice []string

// Len is the number of strings.
func (s StringSlice) Len() int { return len(s) }

// All yields each index and string, through one buffer.
func (s StringSlice) All() iter.Seq2[int, []byte] {
	return func(yield func(int, []byte) bool) {
		var buf []byte
		for i, x := range s {
			buf = append(buf[:0], x...)
			if !yield(i, buf) {
				return
			}
		}
	}
}
