package tokenizer_test

import (
	"bufio"
	"fmt"
	"github.com/verdictnet/verdict/internal/testutil"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

// loaded caches the tokenizers the tests build (they are immutable).
var loaded sync.Map // rel path -> *tokenizer.Tokenizer

// load builds a tokenizer from a file under ../shared, once per test
// binary.
func load(tb testing.TB, rel string) *tokenizer.Tokenizer {
	tb.Helper()
	if tok, ok := loaded.Load(rel); ok {
		return tok.(*tokenizer.Tokenizer)
	}
	tok := loadPath(tb, filepath.Join(testutil.Shared(tb, "."), rel))
	loaded.Store(rel, tok)
	return tok
}

// loadPath builds a tokenizer from a file.
func loadPath(tb testing.TB, path string) *tokenizer.Tokenizer {
	tb.Helper()
	v, err := model.LoadVocab(path)
	if err != nil {
		tb.Fatalf("LoadVocab: %v", err)
	}
	tok, err := tokenizer.New(v)
	if err != nil {
		tb.Fatalf("New(%s): %v", path, err)
	}
	return tok
}

// readCases splits a llama.cpp vocab test input the way test-tokenizer-0
// does: every string is followed by "\n__ggml_vocab_test__\n".
func readCases(tb testing.TB, path string) []string {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	const sep = "\n__ggml_vocab_test__\n"
	parts := strings.Split(string(data), sep)
	if parts[len(parts)-1] != "" {
		tb.Fatalf("%s does not end with the separator", path)
	}
	return parts[:len(parts)-1]
}

// readIDs reads one line of space-separated ids per case.
func readIDs(tb testing.TB, path string) [][]int {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out [][]int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		ids := []int{}
		for _, w := range strings.Fields(sc.Text()) {
			id, err := strconv.Atoi(w)
			if err != nil {
				tb.Fatalf("%s: %v", path, err)
			}
			ids = append(ids, id)
		}
		out = append(out, ids)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

func checkOracle(t *testing.T, tok *tokenizer.Tokenizer, inp, outp string, addBOS bool) {
	t.Helper()
	checkOracleExcept(t, tok, inp, outp, addBOS, nil)
}

// checkOracleExcept is checkOracle with the expected ids of some cases
// replaced.
func checkOracleExcept(t *testing.T, tok *tokenizer.Tokenizer, inp, outp string, addBOS bool, except map[int][]int) {
	t.Helper()
	cases := readCases(t, inp)
	want := readIDs(t, outp)
	for i, ids := range except {
		want[i] = ids
	}
	if len(cases) != len(want) || len(cases) < 40 {
		t.Fatalf("%d input strings but %d expected lines", len(cases), len(want))
	}
	for i, s := range cases {
		got, err := tok.Encode(s, addBOS)
		if err != nil {
			t.Errorf("case %d %q: %v", i, s, err)
			continue
		}
		if !slices.Equal(got, want[i]) {
			t.Errorf("case %d %q:\n got %v\nwant %v", i, s, got, want[i])
		}
	}
}

// TestLlama2COracle: run.c's encoder with tok512.bin, on llama.cpp's test
// strings (BOS added).
func TestLlama2COracle(t *testing.T) {
	dir := testutil.Shared(t, ".")
	tok := load(t, "models/tok512.bin")
	if tok.Vocab().Flavor != tokenizer.Llama2C {
		t.Fatalf("flavor %q", tok.Vocab().Flavor)
	}
	checkOracle(t, tok, filepath.Join(dir, "reference/tokenizer/tok512_encode.inp"),
		filepath.Join(dir, "reference/tokenizer/tok512_encode.out"), true)
}

// TestSPMOracle: llama.cpp's SPM tokenizer on its own test vocabulary and
// strings (no BOS). llama-2-tiny-random.gguf carries the same Llama 2
// vocabulary, so it must give the same ids.
func TestSPMOracle(t *testing.T) {
	dir := testutil.Shared(t, ".")
	for _, f := range []string{"models/ggml-vocab-llama-spm.gguf", "models/llama-2-tiny-random.gguf"} {
		t.Run(filepath.Base(f), func(t *testing.T) {
			tok := load(t, f)
			if tok.Vocab().Flavor != tokenizer.SPM || tok.Len() != 32000 {
				t.Fatalf("flavor %q, %d tokens", tok.Vocab().Flavor, tok.Len())
			}
			checkOracle(t, tok, filepath.Join(dir, "models/ggml-vocab-llama-spm.gguf.inp"),
				filepath.Join(dir, "models/ggml-vocab-llama-spm.gguf.out"), false)
		})
	}
}

// TestPromptTokens: the prompts of the reference traces encode to run.c's
// PROMPT_TOKENS with tok512.bin and with the tokenizer inside every
// stories260K GGUF.
func TestPromptTokens(t *testing.T) {
	dir := testutil.Shared(t, ".")
	prompts := map[string]string{
		"p1": "Once upon a time",
		"p2": "Lily and Tom went to the park",
		"p3": "The little dog",
	}
	files := []string{"models/tok512.bin", "models/stories260K.gguf", "models/stories260K-F16.gguf",
		"models/stories260K-Q8_0.gguf", "models/stories260K-Q4_0.gguf"}
	for _, f := range files {
		tok := load(t, f)
		for _, p := range []string{"p1", "p2", "p3"} {
			want := promptTokens(t, filepath.Join(dir, "reference/traces", p+".txt"))
			got, err := tok.Encode(prompts[p], true)
			if err != nil {
				t.Fatalf("%s %s: %v", f, p, err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s %s: got %v, want %v", f, p, got, want)
			}
			// Decoding gives the prompt back, as run.c prints it.
			text, err := tok.Decode(got)
			if err != nil || text != prompts[p] {
				t.Errorf("%s %s: Decode = %q, %v", f, p, text, err)
			}
		}
	}
}

func promptTokens(t *testing.T, path string) []int {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	rest, ok := strings.CutPrefix(line, "PROMPT_TOKENS: ")
	if !ok {
		t.Fatalf("%s: first line %q", path, line)
	}
	var ids []int
	for _, w := range strings.Fields(rest) {
		id, err := strconv.Atoi(w)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// TestGreedyTextDecodes: the traces record every token run.c fed at
// positions 0..63, and the greedy texts are what run.c printed: the pieces
// of the fed tokens after BOS, the piece of the token generated at the last
// position (never fed), then a newline. So the decoded fed tokens plus one
// piece of the vocabulary must give the text exactly.
func TestGreedyTextDecodes(t *testing.T) {
	dir := testutil.Shared(t, ".")
	for _, f := range []string{"models/tok512.bin", "models/stories260K.gguf"} {
		tok := load(t, f)
		for _, p := range []string{"p1", "p2", "p3"} {
			fed := fedTokens(t, filepath.Join(dir, "reference/traces", p+".txt"))
			data, err := os.ReadFile(filepath.Join(dir, "reference/greedy", p+".txt"))
			if err != nil {
				t.Fatal(err)
			}
			want, ok := strings.CutSuffix(string(data), "\n")
			if !ok {
				t.Fatalf("%s: no final newline", p)
			}
			text, err := tok.Decode(fed)
			if err != nil {
				t.Fatal(err)
			}
			rest, ok := strings.CutPrefix(want, text)
			if !ok {
				t.Fatalf("%s %s: decoded %q is not a prefix of %q", f, p, text, want)
			}
			found := false
			for id := 0; id < tok.Len() && !found; id++ {
				piece, err := tok.Piece(fed[len(fed)-1], id)
				found = err == nil && string(piece) == rest
			}
			if !found {
				t.Errorf("%s %s: no token's piece is the remaining %q", f, p, rest)
			}
		}
	}
}

func fedTokens(t *testing.T, path string) []int {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	for _, line := range strings.Split(string(data), "\n") {
		var pos, id int
		if _, err := fmt.Sscanf(line, "POS %d IN %d", &pos, &id); err == nil {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		t.Fatalf("%s: no POS lines", path)
	}
	return ids
}

// TestConcurrentUse: one Tokenizer serves many goroutines (run with -race),
// with SentencePiece and with byte-level BPE (whose scratch state is
// pooled).
func TestConcurrentUse(t *testing.T) {
	for _, f := range []string{"models/ggml-vocab-llama-spm.gguf", "tokenizers/derived/ggml-vocab-qwen2.derived-from-qwen3.gguf"} {
		t.Run(filepath.Base(f), func(t *testing.T) { concurrentUse(t, load(t, f)) })
	}
}

func concurrentUse(t *testing.T, tok *tokenizer.Tokenizer) {
	texts := []string{"Lily and Tom went to the park", "中文 🦙 don't stop", "x = f(42) // 12345", "Once upon a time"}
	want := make([][]int, len(texts))
	for i, s := range texts {
		var err error
		if want[i], err = tok.Encode(s, true); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			for k := range 50 {
				i := (g + k) % len(texts)
				got, err := tok.Encode(texts[i], true)
				if err == nil && !slices.Equal(got, want[i]) {
					err = fmt.Errorf("%q: got %v, want %v", texts[i], got, want[i])
				}
				if err == nil {
					_, err = tok.Decode(got)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// vectorVocabs are the vocabularies with llama.cpp's own test vectors
// (test-tokenizer-0: no BOS, special tokens not parsed), under ../shared.
var vectorVocabs = []struct {
	vocab, vectors string
	except         map[int][]int
}{
	{"tokenizers/llama.cpp/ggml-vocab-gpt-2.gguf", "", nil},
	{"tokenizers/llama.cpp/ggml-vocab-mpt.gguf", "", nil},
	{"tokenizers/llama.cpp/ggml-vocab-starcoder.gguf", "", nil},
	{"tokenizers/llama.cpp/ggml-vocab-refact.gguf", "", nil},
	{"tokenizers/llama.cpp/ggml-vocab-falcon.gguf", "", nil},
	{"tokenizers/llama.cpp/ggml-vocab-deepseek-llm.gguf", "", nil},
	{"tokenizers/llama.cpp/ggml-vocab-deepseek-coder.gguf", "", nil},
	{"tokenizers/llama.cpp/ggml-vocab-phi-3.gguf", "", nil},
	{"tokenizers/llama.cpp/ggml-vocab-llama-spm.gguf", "", nil},
	{"models/ggml-vocab-llama-spm.gguf", "", nil},
	{"tokenizers/derived/ggml-vocab-llama-bpe.derived.gguf", "", nil},
	{"tokenizers/derived/ggml-vocab-qwen2.derived-from-qwen3.gguf", "", nil},
	// These vectors come from Hugging Face's tokenizer, which keeps " ½"
	// together; llama.cpp's smollm pre-tokenizer splits every \p{N}
	// (and "½" is No) off first. The replacement ids are what
	// node-llama-cpp 3.21.1 gives.
	{"tokenizers/derived/ggml-vocab-smollm2.derived.gguf", "", map[int][]int{0: {885, 216, 36, 216, 16738, 2704}}},
	// llama.cpp's vectors for the vocabularies the derived files rebuild.
	{"tokenizers/derived/ggml-vocab-llama-bpe.derived.gguf", "tokenizers/llama.cpp/ggml-vocab-llama-bpe.gguf", nil},
	{"tokenizers/derived/ggml-vocab-qwen2.derived-from-qwen3.gguf", "tokenizers/llama.cpp/ggml-vocab-qwen2.gguf", nil},
	{"tokenizers/derived/ggml-vocab-qwen2.derived-from-qwen3.gguf", "tokenizers/llama.cpp/ggml-vocab-deepseek-r1-qwen.gguf", nil},
}

// TestVectors: every vocabulary passes llama.cpp's test vectors exactly.
func TestVectors(t *testing.T) {
	dir := testutil.Shared(t, ".")
	for _, c := range vectorVocabs {
		vec := c.vectors
		if vec == "" {
			vec = c.vocab
		}
		t.Run(filepath.Base(vec), func(t *testing.T) {
			tok := load(t, c.vocab)
			checkOracleExcept(t, tok, filepath.Join(dir, vec+".inp"), filepath.Join(dir, vec+".out"), false, c.except)
		})
	}
}
