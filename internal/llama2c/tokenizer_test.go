package llama2c

import (
	"encoding/binary"
	"github.com/verdictnet/verdict/internal/testutil"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/gguf"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

// tokFile builds a tokenizer file.
func tokFile(maxLen int32, toks []string, scores []float32) []byte {
	w := &writer{}
	w.i32(maxLen)
	for i, s := range toks {
		binary.Write(w, binary.LittleEndian, scores[i])
		w.i32(int32(len(s)))
		w.WriteString(s)
	}
	return w.Bytes()
}

func TestParseTokenizer(t *testing.T) {
	toks := []string{"<unk>", "\n<s>\n", "\n</s>\n", "", " a", "é"}
	scores := []float32{0, 0, 0, -1, -2.5, float32(math.Inf(-1))}
	data := tokFile(6, toks, scores)
	for _, n := range []int{0, len(toks)} {
		v, err := ParseTokenizer(data, n)
		if err != nil {
			t.Fatal(err)
		}
		if v.Flavor != tokenizer.Llama2C || v.BOS != 1 || v.EOS != 2 || v.UNK != 0 || !v.AddBOS || v.MaxTokenLen != 6 {
			t.Errorf("vocab facts %+v", v)
		}
		if len(v.Tokens) != len(toks) || len(v.Scores) != len(toks) {
			t.Fatalf("%d tokens, %d scores", len(v.Tokens), len(v.Scores))
		}
		for i := range toks {
			if v.Tokens[i] != toks[i] || v.Scores[i] != scores[i] {
				t.Errorf("token %d = %q %v, want %q %v", i, v.Tokens[i], v.Scores[i], toks[i], scores[i])
			}
		}
	}
}

func TestParseTokenizerErrors(t *testing.T) {
	toks := []string{"<unk>", "<s>", "</s>", "ab"}
	sc := []float32{0, 0, 0, 1}
	good := tokFile(5, toks, sc)
	patch := func(off int, v int32) []byte {
		d := append([]byte(nil), good...)
		binary.LittleEndian.PutUint32(d[off:], uint32(v))
		return d
	}
	tests := []struct {
		name  string
		data  []byte
		count int
		want  string
	}{
		{"empty", nil, 0, "truncated: tokenizer header"},
		{"zero max len", patch(0, 0), 0, "max_token_length 0"},
		{"huge max len", patch(0, 1<<30), 0, "max_token_length"},
		{"truncated token header", good[:len(good)-7], 0, "truncated"},
		{"truncated token bytes", good[:len(good)-1], 0, "claims 2 bytes, 1 remain"},
		{"negative length", patch(8, -1), 0, "length -1"},
		{"length over max", patch(8, 6), 0, "max_token_length 5"},
		{"huge length", func() []byte {
			d := tokFile(100, toks, sc)
			binary.LittleEndian.PutUint32(d[8:], 90)
			return d
		}(), 0, "claims 90 bytes"},
		{"count too large", good, 5, "truncated"},
		{"count huge", good, 1 << 30, "truncated"},
		{"count too small", good, 3, "unexpected bytes after token 2"},
		{"too few tokens", tokFile(5, toks[:2], sc[:2]), 0, "only 2 tokens"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTokenizer(tc.data, tc.count)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %v, want one line mentioning %q", err, tc.want)
			}
		})
	}
	p := filepath.Join(t.TempDir(), "bad.bin")
	os.WriteFile(p, good[:len(good)-1], 0o644)
	if _, err := ReadTokenizer(p, 0); err == nil || !strings.HasPrefix(err.Error(), p+": ") {
		t.Errorf("ReadTokenizer error %v does not start with the path", err)
	}
}

// TestTok512 reads ../shared/models/tok512.bin and compares it with the
// same vocabulary as llama.cpp's converter stored it in stories260K.gguf
// (spaces as U+2581 there; the special tokens are spelled differently).
func TestTok512(t *testing.T) {
	dir := testutil.Shared(t, "models")
	v, err := ReadTokenizer(filepath.Join(dir, "tok512.bin"), 512)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Tokens) != 512 || v.MaxTokenLen != 7 {
		t.Errorf("%d tokens, max length %d", len(v.Tokens), v.MaxTokenLen)
	}
	f, err := gguf.Open(filepath.Join(dir, "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	toks, _ := f.Strings("tokenizer.ggml.tokens")
	scores, _ := f.Float32s("tokenizer.ggml.scores")
	for i := 3; i < 512; i++ {
		if got := strings.ReplaceAll(v.Tokens[i], " ", "\u2581"); got != toks[i] || v.Scores[i] != scores[i] {
			t.Errorf("token %d: %q %v in tok512.bin, %q %v in the GGUF", i, v.Tokens[i], v.Scores[i], toks[i], scores[i])
		}
	}
	for i, want := range []string{"<unk>", "\n<s>\n", "\n</s>\n"} {
		if v.Tokens[i] != want {
			t.Errorf("token %d = %q, want %q", i, v.Tokens[i], want)
		}
	}
	all, err := ReadTokenizer(filepath.Join(dir, "tok512.bin"), 0)
	if err != nil || len(all.Tokens) != 512 {
		t.Errorf("reading to EOF: %d tokens, %v", len(all.Tokens), err)
	}
}

func FuzzTokenizerFile(f *testing.F) {
	f.Add(tokFile(5, []string{"<unk>", "<s>", "</s>", "ab"}, []float32{0, 0, 0, 1}), 0)
	f.Add(tokFile(5, []string{"<unk>", "<s>", "</s>", "ab"}, []float32{0, 0, 0, 1}), 4)
	if b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "models", "tok512.bin")); err == nil {
		f.Add(b, 512)
	}
	f.Fuzz(func(t *testing.T, data []byte, count int) {
		v, err := ParseTokenizer(data, count)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error %q", err)
			}
			return
		}
		if count > 0 && len(v.Tokens) != count {
			t.Fatalf("%d tokens, asked for %d", len(v.Tokens), count)
		}
		if len(v.Tokens) != len(v.Scores) || len(v.Tokens) < 3 {
			t.Fatalf("%d tokens, %d scores", len(v.Tokens), len(v.Scores))
		}
		for i, s := range v.Tokens {
			if len(s) > v.MaxTokenLen {
				t.Fatalf("token %d longer than max_token_length", i)
			}
		}
	})
}
