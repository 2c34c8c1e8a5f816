package tokenizer_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/verdictnet/verdict/internal/gguf"
	"github.com/verdictnet/verdict/internal/testutil"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

// llamaScript tokenizes batches of texts with llama.cpp through
// node-llama-cpp. Input (a file named by the last argument): [{"model":
// PATH, "special": BOOL, "texts": [...]}, ...]; output: one array of
// token-id arrays per job. A job with "eog" set and "n" tokens answers
// one array: the ids llama.cpp ends generation at; one with "detok" set
// answers the text of each id sequence of "ids" (llama_detokenize without
// special tokens).
const llamaScript = `
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const [pkg, jobsFile] = process.argv.slice(2);
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(pkg).href);
const jobs = JSON.parse(readFileSync(jobsFile, "utf8"));
const llama = await getLlama({gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true,
    progressLogs: false, logLevel: LlamaLogLevel.error});
const models = new Map();
const out = [];
for (const job of jobs) {
    let model = models.get(job.model);
    if (!model) {
        model = await llama.loadModel({modelPath: job.model, vocabOnly: true});
        models.set(job.model, model);
    }
    if (job.detok) {
        out.push(job.ids.map(ids => model.detokenize(ids, false)));
        continue;
    }
    if (job.eog) {
        const ids = [];
        for (let t = 0; t < job.n; t++) if (model.isEogToken(t)) ids.push(t);
        out.push([ids]);
        continue;
    }
    out.push(job.texts.map(t => Array.from(model.tokenize(t, job.special))));
}
process.stdout.write(JSON.stringify(out));
`

type llamaJob struct {
	Model   string   `json:"model"`
	Special bool     `json:"special"`
	Texts   []string `json:"texts"`
	EOG     bool     `json:"eog,omitempty"`
	N       int      `json:"n,omitempty"`
	Detok   bool     `json:"detok,omitempty"`
	IDs     [][]int  `json:"ids,omitempty"`
}

// runLlama runs the jobs through one node process.
func runLlama(t *testing.T, jobs []llamaJob) [][]json.RawMessage {
	t.Helper()
	var out [][]json.RawMessage
	testutil.RunLlamaScript(t, llamaScript, jobs, &out)
	if len(out) != len(jobs) {
		t.Fatalf("node-llama-cpp answered %d jobs of %d", len(out), len(jobs))
	}
	return out
}

// diffVocabs are the vocabularies the differential test covers. An entry
// with pre set is the vocabulary with its tokenizer.ggml.pre replaced: the
// words llama.cpp's pre-tokenizer cuts depend on the pre-tokenizer alone,
// so a borrowed vocabulary checks a pre-tokenizer that no file here has
// (Mistral Nemo's tekken, Llama 4's gpt-4o, Qwen 3.5, DeepSeek V3, GLM 4,
// BLOOM, Viking).
var diffVocabs = []struct{ rel, pre string }{
	{"tokenizers/llama.cpp/ggml-vocab-gpt-2.gguf", ""},
	{"tokenizers/llama.cpp/ggml-vocab-mpt.gguf", ""},
	{"tokenizers/llama.cpp/ggml-vocab-gpt-neox.gguf", ""},
	{"tokenizers/llama.cpp/ggml-vocab-starcoder.gguf", ""},
	{"tokenizers/llama.cpp/ggml-vocab-refact.gguf", ""},
	{"tokenizers/llama.cpp/ggml-vocab-falcon.gguf", ""},
	{"tokenizers/llama.cpp/ggml-vocab-deepseek-llm.gguf", ""},
	{"tokenizers/llama.cpp/ggml-vocab-deepseek-coder.gguf", ""},
	{"tokenizers/derived/ggml-vocab-llama-bpe.derived.gguf", ""},
	{"tokenizers/derived/ggml-vocab-qwen2.derived-from-qwen3.gguf", ""},
	{"tokenizers/derived/ggml-vocab-smollm2.derived.gguf", ""},
	{"tokenizers/llama.cpp/ggml-vocab-phi-3.gguf", ""},
	{"tokenizers/llama.cpp/ggml-vocab-baichuan.gguf", ""},
	{"models/ggml-vocab-llama-spm.gguf", ""},
	{"tokenizers/derived/ggml-vocab-llama-bpe.derived.gguf", "tekken"},
	{"tokenizers/derived/ggml-vocab-llama-bpe.derived.gguf", "gpt-4o"},
	{"tokenizers/derived/ggml-vocab-qwen2.derived-from-qwen3.gguf", "qwen35"},
	{"tokenizers/llama.cpp/ggml-vocab-deepseek-llm.gguf", "deepseek-v3"},
	{"tokenizers/derived/ggml-vocab-llama-bpe.derived.gguf", "glm4"},
	{"tokenizers/llama.cpp/ggml-vocab-gpt-2.gguf", "bloom"},
	{"tokenizers/llama.cpp/ggml-vocab-gpt-2.gguf", "viking"},
}

// withPre writes a copy of a vocabulary-only GGUF with tokenizer.ggml.pre
// set to pre and returns its path.
func withPre(t *testing.T, src, pre string) string {
	t.Helper()
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if len(f.Tensors) != 0 {
		t.Fatalf("%s has tensors", src)
	}
	kvs := slices.Clone(f.KV)
	for i := range kvs {
		if kvs[i].Key == "tokenizer.ggml.pre" {
			kvs[i].Value = gguf.String(pre)
		}
	}
	dst := filepath.Join(t.TempDir(), pre+"-"+filepath.Base(src))
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := gguf.Write(out, kvs, nil); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// diffCase is one generated text: what Verdict encodes and what llama.cpp
// is given (the same, except that invalid UTF-8, which a JavaScript string
// cannot carry, is sent as llama.cpp decodes it).
type diffCase struct{ text, sent string }

// TestLlamaCppDifferential: thousands of generated texts per vocabulary
// encode to exactly the ids llama.cpp gives, without special-token parsing
// (Encode) and with it (EncodeSpecial, and EncodeSpans with the special
// tokens in special spans); and the end-of-generation tokens are
// llama.cpp's.
func TestLlamaCppDifferential(t *testing.T) {
	dir := testutil.Shared(t, ".")
	n, nSpecial := 2500, 400
	if testing.Short() {
		n, nSpecial = 300, 60
	}
	type vocabJobs struct {
		name        string
		tok         *tokenizer.Tokenizer
		plain, spec []diffCase
	}
	var vs []vocabJobs
	var jobs []llamaJob
	for i, dv := range diffVocabs {
		path := filepath.Join(dir, dv.rel)
		name := filepath.Base(dv.rel)
		var tok *tokenizer.Tokenizer
		if dv.pre == "" {
			tok = load(t, dv.rel)
		} else {
			path = withPre(t, path, dv.pre)
			name = dv.pre + " (on " + name + ")"
			tok = loadPath(t, path)
		}
		g := newTextGen(uint64(i+1), tok)
		v := vocabJobs{name: name, tok: tok}
		for range n {
			v.plain = append(v.plain, g.text(tok.Vocab().Flavor == tokenizer.BPE, false))
		}
		for range nSpecial {
			v.spec = append(v.spec, g.text(false, true))
		}
		jobs = append(jobs, llamaJob{Model: path, Texts: sent(v.plain)}, llamaJob{Model: path, Special: true, Texts: sent(v.spec)},
			llamaJob{Model: path, EOG: true, N: tok.Len()})
		vs = append(vs, v)
	}
	// Decoding: random id sequences for the BPE vocabularies whose
	// llama_detokenize is plain concatenation of pieces (no
	// clean_up_tokenization_spaces, no leading-space removal).
	detok := map[string][][]int{}
	for i, rel := range []string{"tokenizers/derived/ggml-vocab-qwen2.derived-from-qwen3.gguf",
		"tokenizers/derived/ggml-vocab-smollm2.derived.gguf", "tokenizers/llama.cpp/ggml-vocab-deepseek-llm.gguf",
		"tokenizers/llama.cpp/ggml-vocab-deepseek-coder.gguf"} {
		tok := load(t, rel)
		r := rand.New(rand.NewPCG(uint64(i+100), 7))
		specials := specialIDs(tok)
		var seqs [][]int
		for range n / 5 {
			seq := make([]int, 1+r.IntN(12))
			for k := range seq {
				seq[k] = r.IntN(tok.Len())
				if r.IntN(4) == 0 && len(specials) > 0 {
					seq[k] = specials[r.IntN(len(specials))]
				}
			}
			seqs = append(seqs, seq)
		}
		detok[rel] = seqs
		jobs = append(jobs, llamaJob{Model: filepath.Join(dir, rel), Detok: true, IDs: seqs})
	}
	res := runLlama(t, jobs)
	k := 3 * len(vs)
	for _, rel := range []string{"tokenizers/derived/ggml-vocab-qwen2.derived-from-qwen3.gguf",
		"tokenizers/derived/ggml-vocab-smollm2.derived.gguf", "tokenizers/llama.cpp/ggml-vocab-deepseek-llm.gguf",
		"tokenizers/llama.cpp/ggml-vocab-deepseek-coder.gguf"} {
		tok, texts := load(t, rel), res[k]
		k++
		diffs, compared := 0, 0
		for i, seq := range detok[rel] {
			got, err := tok.Decode(seq)
			if err != nil {
				t.Fatal(err)
			}
			if !utf8.ValidString(got) {
				continue // a JavaScript string cannot carry it
			}
			compared++
			var want string
			if err := json.Unmarshal(texts[i], &want); err != nil {
				t.Fatal(err)
			}
			if got != want {
				if diffs++; diffs <= 5 {
					t.Errorf("%s: Decode(%v) = %q, llama.cpp %q", filepath.Base(rel), seq, got, want)
				}
			}
		}
		t.Logf("%s decode: %d id sequences (%d with valid UTF-8 compared), %d differences", filepath.Base(rel), len(detok[rel]), compared, diffs)
	}
	for i, v := range vs {
		check := func(mode string, cases []diffCase, res []json.RawMessage, enc func(string) ([]int, error)) {
			diffs := 0
			for k, c := range cases {
				got, err := enc(c.text)
				if want := idsOf(t, res[k]); err != nil || !slices.Equal(got, want) {
					if diffs++; diffs <= 5 {
						t.Errorf("%s %s: %q:\n got %v, %v\nwant %v", v.name, mode, c.text, got, err, want)
					}
				}
			}
			t.Logf("%s %s: %d texts, %d differences", v.name, mode, len(cases), diffs)
		}
		if eog := idsOf(t, res[3*i+2][0]); !slices.Equal(v.tok.EOG(), eog) {
			t.Errorf("%s: EOG %v, llama.cpp %v", v.name, v.tok.EOG(), eog)
		} else {
			t.Logf("%s: end of generation at %v", v.name, eog)
		}
		check("plain", v.plain, res[3*i], func(s string) ([]int, error) { return v.tok.Encode(s, false) })
		check("special", v.spec, res[3*i+1], func(s string) ([]int, error) { return v.tok.EncodeSpecial(s, false) })
		check("spans", v.spec, res[3*i+1], func(s string) ([]int, error) {
			return v.tok.EncodeSpans(splitSpecial(v.tok, s), false)
		})
	}
}

// idsOf reads one id array of node's answer.
func idsOf(t *testing.T, raw json.RawMessage) []int {
	t.Helper()
	var ids []int
	if err := json.Unmarshal(raw, &ids); err != nil {
		t.Fatalf("node answer %s: %v", raw, err)
	}
	return ids
}

// specialIDs are a vocabulary's control, user-defined, unknown, unused
// and byte tokens.
func specialIDs(tok *tokenizer.Tokenizer) []int {
	v := tok.Vocab()
	var out []int
	for i := range v.Tokens {
		if v.Types != nil && v.Types[i] != tokenizer.Normal {
			out = append(out, i)
		}
	}
	return out
}

func sent(cs []diffCase) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.sent
	}
	return out
}

// splitSpecial cuts text into spans at the special-token texts it holds
// (special spans) and cuts the plain text between them at random-ish
// places (plain spans), the way a template renderer would emit it.
func splitSpecial(tok *tokenizer.Tokenizer, text string) []tokenizer.Span {
	specials := specialTexts(tok)
	var spans []tokenizer.Span
	plain := func(s string) {
		for len(s) > 7 {
			spans = append(spans, tokenizer.Span{Text: s[:7]})
			s = s[7:]
		}
		if s != "" {
			spans = append(spans, tokenizer.Span{Text: s})
		}
	}
	for text != "" {
		best, at := "", len(text)
		for _, s := range specials {
			if k := strings.Index(text, s); k >= 0 && (k < at || k == at && len(s) > len(best)) {
				best, at = s, k
			}
		}
		plain(text[:at])
		if best == "" {
			break
		}
		spans = append(spans, tokenizer.Span{Text: best, Special: true})
		text = text[at+len(best):]
	}
	return spans
}

// specialTexts are the texts of a vocabulary's control and user-defined
// tokens, longest first.
func specialTexts(tok *tokenizer.Tokenizer) []string {
	v := tok.Vocab()
	var out []string
	for i, p := range v.Tokens {
		if v.Types != nil && p != "" && (v.Types[i] == tokenizer.Control || v.Types[i] == tokenizer.UserDefined) {
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return len(out[a]) > len(out[b]) })
	return out
}

// textGen generates test texts deterministically from a seed.
type textGen struct {
	r        *rand.Rand
	specials []string
	cats     []*unicode.RangeTable
}

func newTextGen(seed uint64, tok *tokenizer.Tokenizer) *textGen {
	g := &textGen{r: rand.New(rand.NewPCG(seed, 0x5eed)), specials: specialTexts(tok)}
	names := make([]string, 0, len(unicode.Categories))
	for n := range unicode.Categories {
		if len(n) == 2 && n != "Cs" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		g.cats = append(g.cats, unicode.Categories[n])
	}
	return g
}

func (g *textGen) pick(list ...string) string { return list[g.r.IntN(len(list))] }

// runeIn picks a code point of a range table.
func (g *textGen) runeIn(t *unicode.RangeTable) rune {
	for {
		if len(t.R32) > 0 && (len(t.R16) == 0 || g.r.IntN(4) == 0) {
			r := t.R32[g.r.IntN(len(t.R32))]
			return rune(r.Lo + uint32(g.r.IntN(int(r.Hi-r.Lo)/int(r.Stride)+1))*r.Stride)
		}
		if len(t.R16) > 0 {
			r := t.R16[g.r.IntN(len(t.R16))]
			return rune(r.Lo + uint16(g.r.IntN(int(r.Hi-r.Lo)/int(r.Stride)+1))*r.Stride)
		}
	}
}

func (g *textGen) runes(lo, hi rune, n int) string {
	var sb strings.Builder
	for range n {
		sb.WriteRune(lo + rune(g.r.IntN(int(hi-lo+1))))
	}
	return sb.String()
}

var codeSnippets = []string{
	"func main() {\n\tfmt.Println(\"hi\")\n}\n",
	"def f(x):\n    return x**2  # square\n",
	"for (let i = 0; i < n; i++) { s += a[i]; }",
	"<div class=\"x\">&nbsp;</div>\n<!-- c -->",
	"{\"key\": [1, 2.5e-3, null, true], \"k2\": \"v\\n\"}",
	"#include <stdio.h>\nint main(void){return 0;}",
	"SELECT * FROM t WHERE a >= 10 AND b <> 'x';",
	"    if x:\n\t\tpass\r\n",
	"$ ls -la | grep '^d' && echo \"done\" >> log.txt",
	"a+=b; c-=d; e*=f; g/=h; i%=j; k^=l; m|=n; o&=p; ~q; `r`",
}

var words = []string{"the", "The", "Hello", "world", "don't", "I'M", "we'Ve", "they're", "it's", "'s", "'T",
	"'ll", "'D", "'re", "ca'nt", "naïve", "café", "Ωmega", "Straße", "ÉCOLE", "İstanbul", "ǅemal", "x", "A"}

// piece returns one random fragment of text.
func (g *textGen) piece(invalid, special bool) string {
	switch k := g.r.IntN(16); k {
	case 0: // words and punctuation
		var sb strings.Builder
		for range 1 + g.r.IntN(8) {
			sb.WriteString(g.pick(" ", "", "  ", "\t", "\n"))
			sb.WriteString(g.pick(words...))
			sb.WriteString(g.pick("", "", ",", ".", "!", "?", "...", ";", ":", "'", "\"", "-", "—", "…", "(", ")"))
		}
		return sb.String()
	case 1: // white-space runs
		var sb strings.Builder
		n := 1 + g.r.IntN(12)
		if g.r.IntN(8) == 0 {
			n = 50 + g.r.IntN(300)
		}
		for range n {
			sb.WriteString(g.pick(" ", " ", " ", "\t", "\n", "\r", "\r\n", "\u00a0", "\u2009", "\u3000", "\u0085", "\v", "\f", "\u2028"))
		}
		return sb.String()
	case 2: // digits
		var sb strings.Builder
		for range 1 + g.r.IntN(4) {
			sb.WriteString(g.runes('0', '9', 1+g.r.IntN(14)))
			sb.WriteString(g.pick("", ",", ".", " ", "٫", "e", "-", "/"))
		}
		sb.WriteString(g.pick("", "٠١٢٣", "０１２", "½", "²³", "Ⅻ", "۴۵", "१२३", "𝟘𝟙"))
		return sb.String()
	case 3: // code
		s := g.pick(codeSnippets...)
		a := g.r.IntN(len(s))
		return s[a:] + s[:a]
	case 4: // CJK, kana, Hangul
		return g.pick(g.runes(0x4E00, 0x9FFF, 1+g.r.IntN(10)), g.runes(0x3040, 0x30FF, 1+g.r.IntN(8)),
			g.runes(0xAC00, 0xD7A3, 1+g.r.IntN(6)), g.runes(0x3000, 0x303F, 1+g.r.IntN(3)),
			g.runes(0xFF01, 0xFF5E, 1+g.r.IntN(5)), g.runes(0x20000, 0x2A6DF, 1+g.r.IntN(3)),
			g.runes(0x2EBF0, 0x2EE5D, 1+g.r.IntN(2)), "中文 日本語、한국어。")
	case 5: // emoji: skin tones, joiners, flags, keycaps, variation selectors
		var sb strings.Builder
		for range 1 + g.r.IntN(4) {
			sb.WriteString(g.pick(
				g.runes(0x1F300, 0x1FAFF, 1),
				g.runes(0x1F44A, 0x1F450, 1)+g.runes(0x1F3FB, 0x1F3FF, 1),
				"👨\u200d👩\u200d👧\u200d👦", "🧑🏽\u200d💻", "🏳️\u200d🌈", "❤️", "1️⃣", "#️⃣",
				g.runes(0x1F1E6, 0x1F1FF, 2), "🦙", "☺︎", "\u200d", "\ufe0f"))
			sb.WriteString(g.pick("", "", " "))
		}
		return sb.String()
	case 6: // right-to-left scripts and bidi controls
		return g.pick(g.runes(0x0621, 0x064A, 1+g.r.IntN(8)), g.runes(0x05D0, 0x05EA, 1+g.r.IntN(8)),
			"مَرْحَبًا بِالْعَالَم", "שָׁלוֹם עוֹלָם", "\u200fعربي\u200e abc", "\u202eevil\u202c", "\u2067x\u2069", "ٱلسَّلَامُ")
	case 7, 8: // any Unicode category
		var sb strings.Builder
		for range 1 + g.r.IntN(6) {
			sb.WriteRune(g.runeIn(g.cats[g.r.IntN(len(g.cats))]))
		}
		return sb.String()
	case 9: // unassigned and unusual code points
		return g.pick("\u0378", "\uffff", "\U000E0001", "\U0010FFFD", "\ufffd", "\x00", "\x7f", "\u00ad", "\u2fff", "\u31ef",
			"\U00031350", "\U0001F7E0", "\x1c\x1d\x1e\x1f")
	case 10: // scripts with combining marks
		return g.pick("e\u0301", "a\u0308\u0304", "नमस्ते", "ภาษาไทย", "Ελληνικά", "Кириллица", "ꙮ", "ᾅ", "ﬁ", "Ａ", "ǈ",
			"z\u0335\u0337\u0338", "한\u1100\u1161", "𐐷", "𑢠")
	case 11: // contractions and case
		return g.pick("'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'ve", "'VE", "'m", "'M", "'ll", "'LL", "'d", "'D",
			"'x", "''", "' s", "'", "’s") + g.pick("", " ", "a", "1")
	case 12: // special-token texts
		if len(g.specials) > 0 && (special || g.r.IntN(3) == 0) {
			s := g.specials[g.r.IntN(len(g.specials))]
			if g.r.IntN(5) == 0 {
				return s[:g.r.IntN(len(s))] // a prefix only
			}
			return s
		}
		return g.pick("<s>", "</s>", "<|endoftext|>", "<|im_start|>", "<unk>", "[INST]")
	case 13: // invalid UTF-8
		if !invalid {
			return "\ufffd"
		}
		return g.pick("\x80", "\xbf", "\xf8", "\xff", "\xfe", "\xc3", "\xe4\xb8", "\xf0\x9f\x98", "\xc3a", "\xe4a\xb8",
			"\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xed\x9f\xbf", "a\xc2", "\xf4\x8f\xbf\xbf")
	case 14: // repeated characters
		return strings.Repeat(g.pick("a", "ab", "=", "-", "1", "🦙", "中", " a", "\n\n", "..."), 1+g.r.IntN(40))
	default: // Latin text with mixed case
		var sb strings.Builder
		for range 1 + g.r.IntN(5) {
			sb.WriteString(g.runes('a', 'z', 1+g.r.IntN(8)))
			sb.WriteString(g.pick(" ", "", "_", "A", "Z"))
		}
		return sb.String()
	}
}

// text generates one test text.
func (g *textGen) text(invalid, special bool) diffCase {
	var sb strings.Builder
	for range 1 + g.r.IntN(7) {
		sb.WriteString(g.piece(invalid, special))
	}
	s := sb.String()
	if utf8.ValidString(s) {
		return diffCase{s, s}
	}
	sentText, ok := tokenizer.LlamaCppText(s)
	if !ok {
		panic(fmt.Sprintf("generated %q, which llama.cpp cannot take", s))
	}
	return diffCase{s, sentText}
}
