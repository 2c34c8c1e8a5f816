package tokenizer_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"github.com/verdictnet/verdict/internal/testutil"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/verdictnet/verdict/internal/tokenizer"
)

// naiveLlama2C is a literal, quadratic transcription of llama2.c run.c's
// encode (BOS included), the oracle for the priority-queue version.
func naiveLlama2C(v *tokenizer.Vocab, text string) ([]int, error) {
	ids := make(map[string]int, len(v.Tokens))
	for i, p := range v.Tokens {
		ids[p] = i // pieces are unique in a Llama2C vocabulary
	}
	lookup := func(s string) int {
		if id, ok := ids[s]; ok {
			return id
		}
		return -1
	}
	tokens := []int{1}
	if text != "" {
		tokens = append(tokens, lookup(" "))
	}
	var buf []byte
	for c := 0; c < len(text); c++ {
		if text[c]&0xC0 != 0x80 {
			buf = buf[:0]
		}
		buf = append(buf, text[c])
		if c+1 < len(text) && text[c+1]&0xC0 == 0x80 && len(buf) < 4 {
			continue
		}
		if id := lookup(string(buf)); id != -1 {
			tokens = append(tokens, id)
		} else {
			for _, b := range buf {
				tokens = append(tokens, int(b)+3)
			}
		}
		buf = buf[:0]
	}
	for {
		best, bestID, bestIdx := float32(-1e10), -1, -1
		for i := 0; i < len(tokens)-1; i++ {
			id := lookup(v.Tokens[tokens[i]] + v.Tokens[tokens[i+1]])
			if id != -1 && v.Scores[id] > best {
				best, bestID, bestIdx = v.Scores[id], id, i
			}
		}
		if bestIdx == -1 {
			break
		}
		tokens[bestIdx] = bestID
		tokens = slices.Delete(tokens, bestIdx+1, bestIdx+2)
	}
	return tokens, nil
}

// naiveSPM is a quadratic version of llama.cpp's SPM session for vocabularies
// without user-defined tokens: escape, split into UTF-8 sequences (by lead
// byte), merge the best-scoring, leftmost pair until none is a piece, then
// emit each symbol as its piece or as <0xXX> byte tokens.
func naiveSPM(v *tokenizer.Vocab, ids map[string]int, text string) ([]int, error) {
	if text == "" {
		return nil, nil
	}
	text = strings.ReplaceAll(" "+text, " ", "\u2581")
	var syms []string
	for i := 0; i < len(text); {
		n := 1
		switch b := text[i]; {
		case b >= 0xF0:
			n = 4
		case b >= 0xE0:
			n = 3
		case b >= 0xC0:
			n = 2
		}
		n = min(n, len(text)-i)
		syms = append(syms, text[i:i+n])
		i += n
	}
	for {
		bestIdx := -1
		var best float32
		for i := 0; i+1 < len(syms); i++ {
			if id, ok := ids[syms[i]+syms[i+1]]; ok && (bestIdx < 0 || v.Scores[id] > best) {
				best, bestIdx = v.Scores[id], i
			}
		}
		if bestIdx < 0 {
			break
		}
		syms[bestIdx] += syms[bestIdx+1]
		syms = slices.Delete(syms, bestIdx+1, bestIdx+2)
	}
	var out []int
	for _, s := range syms {
		if id, ok := ids[s]; ok {
			out = append(out, id)
			continue
		}
		for i := 0; i < len(s); i++ {
			id, ok := ids["<0x"+hex2(s[i])+">"]
			if !ok {
				return nil, errors.New("no byte token")
			}
			out = append(out, id)
		}
	}
	return out, nil
}

func hex2(b byte) string {
	const d = "0123456789ABCDEF"
	return string([]byte{d[b>>4], d[b&15]})
}

type fuzzVocabs struct {
	l2c, spm *tokenizer.Tokenizer
	spmIDs   map[string]int
}

var (
	fuzzOnce sync.Once
	fuzzV    fuzzVocabs
	fuzzErr  error
)

func loadFuzzVocabs(t testing.TB) fuzzVocabs {
	testutil.Shared(t, ".")
	fuzzOnce.Do(func() {
		defer func() {
			if fuzzV.spm == nil && fuzzErr == nil {
				fuzzErr = errors.New("vocabularies did not load")
			}
		}()
		fuzzV.l2c = load(t, "models/tok512.bin")
		fuzzV.spm = load(t, "models/ggml-vocab-llama-spm.gguf")
		fuzzV.spmIDs = map[string]int{}
		for i, p := range fuzzV.spm.Vocab().Tokens {
			fuzzV.spmIDs[p] = i // last wins, like llama.cpp
		}
	})
	if fuzzErr != nil {
		t.Fatal(fuzzErr)
	}
	return fuzzV
}

func seedStrings(f *testing.F) {
	for _, s := range []string{"", " ", "  ", "\t\n", "Hello world", " Hello, world!", "Once upon a time",
		"\u2581Hello", "a\xe2 b", "\xff\xfe", "\xe2\x82", "emoji 🦙 and ½ and 中文", "<0x41>", "<s></s><unk>",
		"\x00nul", strings.Repeat("ab ", 50)} {
		f.Add(s)
	}
}

// FuzzEncode checks, for any string, that encoding never fails or panics
// with either shared vocabulary, agrees with the naive transcriptions of
// run.c and llama.cpp, and round-trips:
//   - Llama2C (tok512.bin): Decode(Encode(s, true)) == s for every byte
//     string, since every byte has a fallback token and the dummy-prefix
//     space is dropped after BOS;
//   - SPM (Llama 2 vocabulary): for valid UTF-8 s, Decode(Encode(s, true))
//     equals s with each U+2581 turned into a space (the escape is not
//     reversible), unless the merges formed a control or unknown token such
//     as "<s>", which decodes to nothing. Invalid UTF-8 can break the
//     round trip: a stray lead byte swallows the first bytes of an escaped
//     space, which then come back as raw bytes.
func FuzzEncode(f *testing.F) {
	seedStrings(f)
	f.Fuzz(func(t *testing.T, s string) {
		fv := loadFuzzVocabs(t)
		got, err := fv.l2c.Encode(s, true)
		if err != nil {
			t.Fatalf("llama2c Encode(%q): %v", s, err)
		}
		for _, tok := range []*tokenizer.Tokenizer{fv.l2c, fv.spm} {
			checkMinTokens(t, tok, s)
		}
		if len(s) <= 200 {
			want, _ := naiveLlama2C(fv.l2c.Vocab(), s)
			if !slices.Equal(got, want) {
				t.Fatalf("llama2c Encode(%q) = %v, naive run.c gives %v", s, got, want)
			}
		}
		back, err := fv.l2c.Decode(got)
		if err != nil || back != s {
			t.Fatalf("llama2c Decode(Encode(%q)) = %q, %v", s, back, err)
		}

		got, err = fv.spm.Encode(s, true)
		if err != nil {
			t.Fatalf("spm Encode(%q): %v", s, err)
		}
		// Merging word by word gives what merging the whole text gives.
		if !tokenizer.SPMWords(fv.spm) {
			t.Fatal("the Llama 2 vocabulary should merge word by word")
		}
		if whole, err := tokenizer.WithoutSPMWords(fv.spm).Encode(s, true); err != nil || !slices.Equal(whole, got) {
			t.Fatalf("spm Encode(%q) = %v word by word, %v, %v whole", s, got, whole, err)
		}
		if len(s) <= 200 {
			want, err := naiveSPM(fv.spm.Vocab(), fv.spmIDs, s)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got[1:], want) {
				t.Fatalf("spm Encode(%q) = %v, naive llama.cpp gives %v", s, got[1:], want)
			}
		}
		if !utf8.ValidString(s) {
			return
		}
		types := fv.spm.Vocab().Types
		for _, id := range got[1:] {
			if types[id] != tokenizer.Normal && types[id] != tokenizer.Byte {
				return
			}
		}
		back, err = fv.spm.Decode(got)
		if want := strings.ReplaceAll(s, "\u2581", " "); err != nil || back != want {
			t.Fatalf("spm Decode(Encode(%q)) = %q, %v; want %q", s, back, err, want)
		}
	})
}

// FuzzDecode feeds arbitrary ids (little-endian int16 pairs, so some are
// negative or beyond the vocabulary) to Decode and to a StreamDecoder:
// Decode fails exactly when some id is out of range, and otherwise the
// stream's chunks plus its flush equal Decode's text, each chunk being
// valid UTF-8 when the whole text is.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{1, 0, 0x90, 1})
	f.Add([]byte{0xE5, 0, 0x99, 0, 0x85, 0}) // <0xE2><0x96><0x81> in tok512
	f.Add([]byte{0xff, 0xff, 0, 0x7d})       // -1, 32000
	f.Add([]byte{1, 0, 0xE5, 0, 0xE5, 0, 7}) // odd length
	f.Fuzz(func(t *testing.T, data []byte) {
		fv := loadFuzzVocabs(t)
		ids := make([]int, len(data)/2)
		for i := range ids {
			ids[i] = int(int16(binary.LittleEndian.Uint16(data[2*i:])))
		}
		for _, tok := range []*tokenizer.Tokenizer{fv.l2c, fv.spm} {
			inRange := true
			for _, id := range ids {
				inRange = inRange && id >= 0 && id < tok.Len()
			}
			text, err := tok.Decode(ids)
			if (err == nil) != inRange {
				t.Fatalf("Decode(%v) error %v, all in range %v", ids, err, inRange)
			}
			if err != nil {
				continue
			}
			d := tok.NewStreamDecoder()
			var all []byte
			var chunks [][]byte
			for _, id := range ids {
				c, err := d.Next(id)
				if err != nil {
					t.Fatal(err)
				}
				chunks = append(chunks, c)
				all = append(all, c...)
			}
			all = append(all, d.Flush()...)
			if !bytes.Equal(all, []byte(text)) {
				t.Fatalf("stream %q != Decode %q", all, text)
			}
			if utf8.ValidString(text) {
				for _, c := range chunks {
					if !utf8.Valid(c) {
						t.Fatalf("chunk %q of valid text %q is not valid UTF-8", c, text)
					}
				}
			}
		}
	})
}

// bpeFuzzVocabs cover every family of pre-tokenizer splitters.
var bpeFuzzVocabs = []string{
	"tokenizers/llama.cpp/ggml-vocab-gpt-2.gguf",
	"tokenizers/llama.cpp/ggml-vocab-starcoder.gguf",
	"tokenizers/llama.cpp/ggml-vocab-falcon.gguf",
	"tokenizers/llama.cpp/ggml-vocab-deepseek-llm.gguf",
	"tokenizers/llama.cpp/ggml-vocab-deepseek-coder.gguf",
	"tokenizers/llama.cpp/ggml-vocab-gpt-neox.gguf",
	"tokenizers/derived/ggml-vocab-llama-bpe.derived.gguf",
	"tokenizers/derived/ggml-vocab-qwen2.derived-from-qwen3.gguf",
}

// FuzzEncodeBPE checks, for any byte string and every pre-tokenizer
// family, that Encode does not panic, fails only on a UTF-8 sequence
// llama.cpp cannot take (beyond U+10FFFF), round-trips valid UTF-8
// (Decode(Encode(s)) == s, unless s holds a byte the vocabulary has no
// token for, which llama.cpp drops: Falcon lacks some control bytes), that
// special spans cut anywhere give EncodeSpecial's ids, and that
// EncodeSpans of s cut into plain spans equals Encode(s) when s holds no
// special-token text.
func FuzzEncodeBPE(f *testing.F) {
	seedStrings(f)
	for _, s := range []string{"<|im_start|>user\nhi<|im_end|>", "<|endoftext|>", "\xf7\xbf\xbf\xbf", "\xed\xa0\x80",
		"don't 'S 12345 ½ 中文 🦙\u200d x\r\n\r\n  \t", "\u3000\u00a0a", "_'^ '", "\xc0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		testutil.Shared(t, ".")
		for _, rel := range bpeFuzzVocabs {
			tok := load(t, rel)
			checkMinTokens(t, tok, s)
			got, err := tok.Encode(s, false)
			if err != nil {
				if _, ok := tokenizer.LlamaCppText(s); ok && !strings.Contains(err.Error(), "beyond U+10FFFF") || utf8.ValidString(s) {
					t.Fatalf("%s: Encode(%q): %v", rel, s, err)
				}
				continue
			}
			dropped := slices.ContainsFunc(tokenizer.MissingBytes(tok), func(b byte) bool { return strings.IndexByte(s, b) >= 0 })
			if utf8.ValidString(s) && !dropped {
				back, err := tok.Decode(got)
				if err != nil || back != s {
					t.Fatalf("%s: Decode(Encode(%q)) = %q, %v", rel, s, back, err)
				}
			}
			// Special spans cut anywhere join up again: EncodeSpecial.
			var all []tokenizer.Span
			for i := 0; i < len(s); i += 2 {
				all = append(all, tokenizer.Span{Text: s[i:min(i+2, len(s))], Special: true})
			}
			whole, err1 := tok.EncodeSpecial(s, false)
			viaSpecial, err2 := tok.EncodeSpans(all, false)
			if (err1 == nil) != (err2 == nil) || !slices.Equal(whole, viaSpecial) {
				t.Fatalf("%s: EncodeSpans(%q in special pieces) = %v, %v; EncodeSpecial gives %v, %v", rel, s, viaSpecial, err2, whole, err1)
			}
			special := false
			for _, p := range specialTexts(tok) {
				special = special || strings.Contains(s, p)
			}
			if special {
				continue
			}
			var spans []tokenizer.Span
			for i := 0; i < len(s); i += 3 {
				spans = append(spans, tokenizer.Span{Text: s[i:min(i+3, len(s))]})
			}
			viaSpans, err := tok.EncodeSpans(spans, false)
			if err != nil || !slices.Equal(viaSpans, got) {
				t.Fatalf("%s: EncodeSpans(%q in pieces) = %v, %v; Encode gives %v", rel, s, viaSpans, err, got)
			}
		}
	})
}

// FuzzNewBPE builds byte-level BPE vocabularies from arbitrary tokens,
// types and merges: New either fails with one line or gives a tokenizer
// that encodes and decodes any text without panicking.
func FuzzNewBPE(f *testing.F) {
	f.Add("a\nb\nab\nĠ\nĠa\n<|x|>", "a b\nĠ a\n\n \na \n b", []byte{1, 1, 1, 1, 1, 3}, "gpt-2", "a ab<|x|> Ġa\xff")
	f.Add("h\ni\nhi", "h i", []byte{1, 4, 9}, "llama-bpe", "hi hi")
	f.Add("", "", []byte{}, "nope", "")
	f.Fuzz(func(t *testing.T, tokens, merges string, types []byte, pre, text string) {
		v := &tokenizer.Vocab{Flavor: tokenizer.BPE, Tokens: strings.Split(tokens, "\n"), Merges: tokenizer.StringSlice(strings.Split(merges, "\n")),
			Pre: pre, BOS: 0, EOS: 0, UNK: -1}
		v.Scores = make([]float32, len(v.Tokens))
		if len(types) > 0 {
			v.Types = make([]tokenizer.TokenType, len(v.Tokens))
			for i := range v.Types {
				v.Types[i] = tokenizer.TokenType(types[i%len(types)])
			}
		}
		tok, err := tokenizer.New(v)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("New: multi-line error %q", err)
			}
			return
		}
		for _, enc := range []func(string, bool) ([]int, error){tok.Encode, tok.EncodeSpecial} {
			ids, err := enc(text, true)
			if err != nil {
				continue
			}
			if _, err := tok.Decode(ids); err != nil {
				t.Fatalf("Decode(%v): %v", ids, err)
			}
		}
	})
}
