package tokenizer_test

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/tokenizer"
)

// llama2cVocab is a run.c-shaped vocabulary: <unk>, BOS, EOS, the 256 byte
// tokens at ids 3..258, then extra pieces with their scores.
func llama2cVocab(extra ...any) *tokenizer.Vocab {
	v := &tokenizer.Vocab{Flavor: tokenizer.Llama2C, BOS: 1, EOS: 2, UNK: 0, AddBOS: true}
	add := func(p string, s float32) {
		v.Tokens = append(v.Tokens, p)
		v.Scores = append(v.Scores, s)
	}
	add("<unk>", 0)
	add("\n<s>\n", 0)
	add("\n</s>\n", 0)
	for b := 0; b < 256; b++ {
		add(fmt.Sprintf("<0x%02X>", b), 0)
	}
	for i := 0; i < len(extra); i += 2 {
		add(extra[i].(string), float32(extra[i+1].(float64)))
	}
	return v
}

// id finds a piece's id in a test vocabulary.
func id(v *tokenizer.Vocab, piece string) int {
	return slices.Index(v.Tokens, piece)
}

func mustNew(t *testing.T, v *tokenizer.Vocab) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.New(v)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestNewRejects(t *testing.T) {
	good := func() *tokenizer.Vocab { return llama2cVocab(" ", 0.0) }
	spm := func() *tokenizer.Vocab {
		return &tokenizer.Vocab{Flavor: tokenizer.SPM, Tokens: []string{"<unk>", "<s>", "</s>", "<0x41>"},
			Scores: make([]float32, 4), Types: []tokenizer.TokenType{2, 3, 3, 6}, BOS: 1, EOS: 2, UNK: 0}
	}
	tests := []struct {
		name   string
		mutate func() *tokenizer.Vocab
		want   string
	}{
		{"nil", func() *tokenizer.Vocab { return nil }, "nil vocabulary"},
		{"empty", func() *tokenizer.Vocab { return &tokenizer.Vocab{Flavor: tokenizer.SPM} }, "empty vocabulary"},
		{"scores", func() *tokenizer.Vocab { v := good(); v.Scores = v.Scores[1:]; return v }, "scores"},
		{"types", func() *tokenizer.Vocab { v := spm(); v.Types = v.Types[1:]; return v }, "token types"},
		{"flavor", func() *tokenizer.Vocab { v := good(); v.Flavor = "gpt2"; return v }, "unknown flavor"},
		{"bos", func() *tokenizer.Vocab { v := good(); v.BOS = len(v.Tokens); return v }, "BOS id"},
		{"eos", func() *tokenizer.Vocab { v := good(); v.EOS = -2; return v }, "EOS id"},
		{"unk", func() *tokenizer.Vocab { v := good(); v.UNK = 1 << 40; return v }, "UNK id"},
		{"nan", func() *tokenizer.Vocab { v := good(); v.Scores[7] = float32(math.NaN()); return v }, "NaN score"},
		{"type", func() *tokenizer.Vocab { v := spm(); v.Types[3] = 7; return v }, "unknown type 7"},
		{"dup", func() *tokenizer.Vocab { v := good(); v.Tokens[10] = v.Tokens[9]; return v }, "are both"},
		{"nul", func() *tokenizer.Vocab { v := good(); v.Tokens[9] = "a\x00b"; return v }, "NUL"},
		{"byte", func() *tokenizer.Vocab { v := spm(); v.Tokens[3] = "<0xG1>"; return v }, "not <0xXX>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tokenizer.New(tt.mutate())
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("New: error %v, want one line containing %q", err, tt.want)
			}
		})
	}
	if _, err := tokenizer.New(good()); err != nil {
		t.Fatalf("good Llama2C vocabulary: %v", err)
	}
	if _, err := tokenizer.New(spm()); err != nil {
		t.Fatalf("good SPM vocabulary: %v", err)
	}
}

// TestLlama2CRules checks run.c's encode on hand-built vocabularies; each
// expectation is worked out by hand from run.c's source.
func TestLlama2CRules(t *testing.T) {
	llama := "\xF0\x9F\xA6\x99"
	four := "\x80\x80\x80\x80"
	v := llama2cVocab(" ", 0.0, "a", 0.0, "b", 0.0, " a", 1.0, "ab", 5.0, "ba", 5.0,
		"bb", -1e10, "c", 0.0, "cc", -9.9e9, llama, 0.0, four, 0.0)
	tok := mustNew(t, v)
	sp, a, b, c, ab, cc := id(v, " "), id(v, "a"), id(v, "b"), id(v, "c"), id(v, "ab"), id(v, "cc")
	tests := []struct {
		name string
		text string
		bos  bool
		want []int
	}{
		{"empty", "", true, []int{1}},
		{"empty no BOS", "", false, []int{}},
		{"dummy prefix", "b", false, []int{sp, b}},
		// " ", a, b, a: "ab" and "ba" tie at 5; run.c takes the first.
		{"tie first occurrence", "aba", true, []int{1, sp, ab, a}},
		// "bb" scores exactly -1e10: never above best_score's start.
		{"score floor", "bb", true, []int{1, sp, b, b}},
		{"above floor", "cc", true, []int{1, sp, cc}},
		// é = C3 A9 is no piece: ids byte+3.
		{"byte fallback", "é", true, []int{1, sp, 0xC3 + 3, 0xA9 + 3}},
		{"four-byte piece", llama, true, []int{1, sp, id(v, llama)}},
		// A chunk is a byte and at most three continuation bytes.
		{"chunk limit", four + "\x80", true, []int{1, sp, id(v, four), 0x80 + 3}},
		{"nul byte", "c\x00", true, []int{1, sp, c, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tok.Encode(tt.text, tt.bos)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("Encode(%q) = %v, %v; want %v", tt.text, got, err, tt.want)
			}
		})
	}

	// run.c lets BOS merge like any token.
	v2 := llama2cVocab(" ", 0.0, "a", 0.0, "\n<s>\n ", 3.0)
	got, err := mustNew(t, v2).Encode("a", true)
	if want := []int{id(v2, "\n<s>\n "), id(v2, "a")}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("BOS merge: got %v, %v; want %v", got, err, want)
	}

	// Errors: no " " for the dummy prefix; byte fallback beyond the vocabulary.
	v3 := llama2cVocab("a", 0.0)
	if _, err := mustNew(t, v3).Encode("a", true); err == nil || !strings.Contains(err.Error(), "dummy prefix") {
		t.Fatalf("no space token: %v", err)
	}
	small := &tokenizer.Vocab{Flavor: tokenizer.Llama2C, Tokens: []string{"<unk>", "<s>", "</s>", " "},
		Scores: make([]float32, 4), BOS: 1, EOS: 2}
	if _, err := mustNew(t, small).Encode("z", true); err == nil || !strings.Contains(err.Error(), "byte fallback") {
		t.Fatalf("short vocabulary: %v", err)
	}
}

// spmVocab is a small SentencePiece vocabulary; Scores are set per test.
func spmVocab() *tokenizer.Vocab {
	const N, C, U, B, D = tokenizer.Normal, tokenizer.Control, tokenizer.Unknown, tokenizer.Byte, tokenizer.UserDefined
	pieces := []struct {
		p string
		t tokenizer.TokenType
	}{
		{"<unk>", U}, {"<s>", C}, {"</s>", C}, {"<0x41>", B}, {"▁", N}, {"h", N}, {"i", N},
		{"▁h", N}, {"hi", N}, {"▁hi", N}, {"<tag>", D}, {"<0x20>", B}, {"<0xC3>", B},
	}
	v := &tokenizer.Vocab{Flavor: tokenizer.SPM, BOS: 1, EOS: 2, UNK: 0, AddBOS: true}
	for _, p := range pieces {
		v.Tokens = append(v.Tokens, p.p)
		v.Types = append(v.Types, p.t)
		v.Scores = append(v.Scores, 0)
	}
	return v
}

// TestSPMRules checks llama.cpp's SPM rules on a hand-built vocabulary;
// expectations are worked out by hand from llama.cpp's source.
func TestSPMRules(t *testing.T) {
	v := spmVocab()
	set := func(p string, s float32) { v.Scores[id(v, p)] = s }
	set("▁h", 1)
	set("hi", 2)
	set("▁hi", 0.5)
	tok := mustNew(t, v)
	tests := []struct {
		text string
		want []int
	}{
		{"", nil},
		{"hi", []int{9}},
		// Escaped "▁A": A is no piece, <0x41> is its byte token.
		{"A", []int{4, 3}},
		// "B" has neither <0x42> nor a one-byte piece: UNK.
		{"B", []int{4, 0}},
		// A user-defined token splits the text, and the next fragment gets
		// the dummy prefix again.
		{"hi<tag>hi", []int{9, 10, 9}},
		{"<tag>", []int{10}},
		{"h i", []int{7, 4, 6}},
	}
	for _, tt := range tests {
		got, err := tok.Encode(tt.text, false)
		if err != nil || !slices.Equal(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
			t.Errorf("Encode(%q) = %v, %v; want %v", tt.text, got, err, tt.want)
		}
	}

	// Ties go to the leftmost pair: "▁h" (left 0) before "hi" (left 1).
	v = spmVocab()
	v.Tokens[id(v, "▁hi")] = "unused-piece"
	set("▁h", 2)
	set("hi", 2)
	if got, _ := mustNew(t, v).Encode("hi", false); !slices.Equal(got, []int{7, 6}) {
		t.Errorf("tie: got %v, want [7 6]", got)
	}
	set("hi", 2.5)
	if got, _ := mustNew(t, v).Encode("hi", false); !slices.Equal(got, []int{4, 8}) {
		t.Errorf("higher score: got %v, want [4 8]", got)
	}

	// No dummy prefix when the vocabulary says so.
	v = spmVocab()
	v.NoDummyPrefix = true
	v.Scores[id(v, "hi")] = 1
	if got, _ := mustNew(t, v).Encode("hi", true); !slices.Equal(got, []int{1, 8}) {
		t.Errorf("NoDummyPrefix: got %v, want [1 8]", got)
	}

	// Without UNK, a byte with no token is an error.
	v = spmVocab()
	v.UNK = -1
	if _, err := mustNew(t, v).Encode("B", false); err == nil || !strings.Contains(err.Error(), "0x42") {
		t.Errorf("no UNK: %v", err)
	}

	// Duplicate pieces: the highest id wins, as in llama.cpp.
	v = spmVocab()
	v.Tokens = append(v.Tokens, "h")
	v.Scores = append(v.Scores, 0)
	v.Types = append(v.Types, tokenizer.Normal)
	tok = mustNew(t, v)
	if got, ok := tok.TokenID("h"); !ok || got != len(v.Tokens)-1 {
		t.Errorf("TokenID(h) = %d, %v", got, ok)
	}
	if got, _ := tok.Encode("hh", false); !slices.Equal(got, []int{7, len(v.Tokens) - 1}) {
		t.Errorf("duplicate: got %v", got)
	}
}

func TestDecode(t *testing.T) {
	spm := mustNew(t, spmVocab())
	l2c := llama2cVocab(" ", 0.0, " a", 0.0, "a", 0.0)
	ltok := mustNew(t, l2c)
	tests := []struct {
		name string
		tok  *tokenizer.Tokenizer
		ids  []int
		want string
	}{
		{"spm after BOS", spm, []int{1, 9, 9}, "hi hi"},
		{"spm no BOS", spm, []int{9}, " hi"},
		{"spm control unknown", spm, []int{0, 1, 2, 8}, "hi"},
		{"spm user-defined", spm, []int{10}, "<tag>"},
		{"spm byte space kept", spm, []int{1, 11, 3}, " A"},
		{"llama2c after BOS", ltok, []int{1, id(l2c, " a"), id(l2c, " a")}, "a a"},
		{"llama2c byte", ltok, []int{1, 0x20 + 3, 0x41 + 3}, " A"},
		{"llama2c EOS", ltok, []int{id(l2c, "a"), 2}, "a\n</s>\n"},
		{"llama2c unk", ltok, []int{0}, "<unk>"},
	}
	for _, tt := range tests {
		got, err := tt.tok.Decode(tt.ids)
		if err != nil || got != tt.want {
			t.Errorf("%s: Decode(%v) = %q, %v; want %q", tt.name, tt.ids, got, err, tt.want)
		}
	}
	for _, bad := range []int{-1, spm.Len(), math.MaxInt} {
		if _, err := spm.Decode([]int{1, bad}); err == nil {
			t.Errorf("Decode accepted id %d", bad)
		}
		if _, err := spm.Piece(1, bad); err == nil {
			t.Errorf("Piece accepted id %d", bad)
		}
	}
}

func TestStreamDecoder(t *testing.T) {
	v := llama2cVocab(" ", 0.0)
	tok := mustNew(t, v)
	d := tok.NewStreamDecoder()
	steps := []struct {
		tok  int
		want string
	}{
		{1, ""},
		{0xC3 + 3, ""},     // first half of é is held
		{0xA9 + 3, "é"},    // completed
		{0xF0 + 3, ""},     // 4-byte sequence, 1 of 4
		{0x9F + 3, ""},     // 2 of 4
		{0xA6 + 3, ""},     // 3 of 4
		{0x99 + 3, "🦙"},    // done
		{0xFF + 3, "\xff"}, // never valid: passed on at once
		{0xE2 + 3, ""},
		{'x' + 3, "\xe2x"}, // broken sequence: passed on, nothing lost
		{0xE2 + 3, ""},
	}
	for i, s := range steps {
		got, err := d.Next(s.tok)
		if err != nil || string(got) != s.want {
			t.Fatalf("step %d: Next(%d) = %q, %v; want %q", i, s.tok, got, err, s.want)
		}
	}
	if got := d.Flush(); string(got) != "\xe2" {
		t.Fatalf("Flush = %q", got)
	}
	if _, err := d.Next(-5); err == nil {
		t.Fatal("Next accepted -5")
	}
}

func TestLlama2CPrintable(t *testing.T) {
	tests := []struct {
		piece string
		want  bool
	}{
		{"", false}, {"a", true}, {" ", true}, {"\n", true}, {"\t", true}, {"\x7f", false},
		{"\x01", false}, {"\xc3", false}, {"\xc3\xa9", true}, {"ab", true},
	}
	for _, tt := range tests {
		if got := tokenizer.Llama2CPrintable([]byte(tt.piece)); got != tt.want {
			t.Errorf("Llama2CPrintable(%q) = %v", tt.piece, got)
		}
	}
}

// longStrings claims fewer strings than it yields.
type longStrings struct{ tokenizer.StringSlice }

func (s longStrings) Len() int { return len(s.StringSlice) - 1 }

// TestMergeSources checks that merges given as a StringSlice, or as any
// Strings, give the same encoding, and that a Strings yielding more than
// its length is refused.
func TestMergeSources(t *testing.T) {
	bpe := func(m tokenizer.Strings) *tokenizer.Vocab {
		return &tokenizer.Vocab{Flavor: tokenizer.BPE, Tokens: []string{"h", "i", "hi", "Ġ", "Ġhi"},
			Scores: make([]float32, 5), BOS: -1, EOS: -1, UNK: -1, Merges: m}
	}
	merges := tokenizer.StringSlice{"h i", "Ġ hi"}
	want := []int{2, 4}
	for _, m := range []tokenizer.Strings{merges, struct{ tokenizer.StringSlice }{merges}} {
		got, err := mustNew(t, bpe(m)).Encode("hi hi", false)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%T: Encode = %v, %v; want %v", m, got, err, want)
		}
	}
	if got, err := mustNew(t, bpe(nil)).Encode("hi", false); err != nil || !slices.Equal(got, []int{0, 1}) {
		t.Errorf("no merges: Encode = %v, %v; want [0 1]", got, err)
	}
	_, err := tokenizer.New(bpe(longStrings{merges}))
	if err == nil || !strings.Contains(err.Error(), "more than their length") {
		t.Errorf("merges longer than their Len: %v", err)
	}
}

// TestCanonicalPiece: a llama2.c vocabulary's pieces in the GGUF's form
// (BOS and EOS unwrapped from their newlines, spaces as U+2581); other
// vocabularies' as stored.
func TestCanonicalPiece(t *testing.T) {
	l2c := &tokenizer.Vocab{Flavor: tokenizer.Llama2C, Tokens: []string{"<unk>", "\n<s>\n", "\n</s>\n", " the", "\nx\n", "\n"}, BOS: 1, EOS: 2}
	spm := &tokenizer.Vocab{Flavor: tokenizer.SPM, Tokens: []string{"<unk>", "\n<s>\n", "</s>", " a"}, BOS: 1, EOS: 2}
	for _, tc := range []struct {
		v    *tokenizer.Vocab
		id   int
		want string
	}{
		{l2c, 1, "<s>"},
		{l2c, 2, "</s>"},
		{l2c, 3, "\u2581the"},
		{l2c, 4, "\nx\n"}, // not BOS or EOS: kept
		{l2c, 5, "\n"},
		{l2c, -1, ""},
		{l2c, 6, ""},
		{spm, 1, "\n<s>\n"},
		{spm, 3, " a"},
	} {
		if got := tc.v.CanonicalPiece(tc.id); got != tc.want {
			t.Errorf("%s %d: %q, want %q", tc.v.Flavor, tc.id, got, tc.want)
		}
	}
}
