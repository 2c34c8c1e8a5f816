package tokenizer

import (
	"fmt"
	"slices"
	"sort"
)

// preFamily is one of llama.cpp's pre-tokenizer definitions (a list of
// regular expressions applied one after the other, llama-vocab.cpp).
type preFamily uint8

const (
	preDefault preFamily = iota
	preGPT2
	preLlama3
	preQwen2
	preStarcoder
	preFalcon
	preDeepseekLLM
	preDeepseekCoder
	preTekken
	preGPT4o
	preQwen35
	preDeepseekV3
	preBloom
	preViking
)

// preSpec is what a tokenizer.ggml.pre name means to llama.cpp.
type preSpec struct {
	family       preFamily
	ignoreMerges bool // a word that is a token is emitted whole
	addBOS       bool // add_bos_token default
	noBOS        bool // no default BOS id
}

// preNames maps GGUF tokenizer.ggml.pre names to their definitions, as
// llama.cpp's llama_vocab::impl::load does.
var preNames = map[string]preSpec{
	"default": {family: preDefault},

	"gpt-2": {family: preGPT2}, "phi-2": {family: preGPT2}, "jina-es": {family: preGPT2},
	"jina-de": {family: preGPT2}, "gigachat": {family: preGPT2}, "jina-v2-es": {family: preGPT2},
	"jina-v2-de": {family: preGPT2}, "a.x-4.0": {family: preGPT2}, "mellum": {family: preGPT2},
	"modern-bert": {family: preGPT2}, "exaone4": {family: preGPT2}, "mpt": {family: preGPT2},
	"olmo": {family: preGPT2}, "jais": {family: preGPT2}, "trillion": {family: preGPT2},
	"granite-docling": {family: preGPT2}, "jina-v1-en": {family: preGPT2}, "jina-v2-code": {family: preGPT2},
	"roberta-bpe": {family: preGPT2},

	"llama3": {family: preLlama3, ignoreMerges: true, addBOS: true}, "llama-v3": {family: preLlama3, ignoreMerges: true, addBOS: true}, "llama-bpe": {family: preLlama3, ignoreMerges: true, addBOS: true},
	"falcon3": {family: preLlama3, ignoreMerges: true, addBOS: true}, "falcon-h1": {family: preLlama3, ignoreMerges: true, addBOS: true}, "pixtral": {family: preLlama3, ignoreMerges: true, addBOS: true},
	"midm-2.0": {family: preLlama3, ignoreMerges: true, addBOS: true}, "lfm2": {family: preLlama3, ignoreMerges: true, addBOS: true}, "jina-v5-nano": {family: preLlama3, ignoreMerges: true, addBOS: true},
	"dbrx": {family: preLlama3}, "smaug-bpe": {family: preLlama3},
	"glm4": {family: preLlama3, noBOS: true}, "chatglm-bpe": {family: preLlama3, noBOS: true},

	"qwen35": {family: preQwen35},

	"deepseek-v3": {family: preDeepseekV3}, "hunyuan-dense": {family: preDeepseekV3}, "joyai-llm": {family: preDeepseekV3},

	"bloom": {family: preBloom}, "poro-chat": {family: preBloom}, "gpt3-finnish": {family: preBloom},
	"viking": {family: preViking},

	"qwen2": {family: preQwen2}, "deepseek-r1-qwen": {family: preQwen2}, "kormo": {family: preQwen2},
	"f2llmv2": {family: preQwen2}, "megrez": {family: preQwen2}, "stablelm2": {family: preQwen2},
	"hunyuan": {family: preQwen2}, "solar-open": {family: preQwen2}, "grok-2": {family: preQwen2},

	"starcoder": {family: preStarcoder}, "refact": {family: preStarcoder}, "command-r": {family: preStarcoder},
	"smollm": {family: preStarcoder}, "codeshell": {family: preStarcoder}, "exaone": {family: preStarcoder},
	"minerva-7b": {family: preStarcoder}, "mellum2": {family: preStarcoder},

	"tekken": {family: preTekken, ignoreMerges: true, addBOS: true},

	"gpt-4o": {family: preGPT4o}, "llama4": {family: preGPT4o}, "kanana2": {family: preGPT4o},
	"talkie": {family: preGPT4o}, "minimax-m2": {family: preGPT4o},

	"falcon":         {family: preFalcon},
	"deepseek-llm":   {family: preDeepseekLLM},
	"deepseek-coder": {family: preDeepseekCoder},
}

// PreTokenizers lists the tokenizer.ggml.pre names a BPE vocabulary may
// carry, sorted.
func PreTokenizers() []string {
	names := make([]string, 0, len(preNames))
	for n := range preNames {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// lookupPre resolves a tokenizer.ggml.pre name ("" is "default").
func lookupPre(name string) (preSpec, error) {
	if name == "" {
		name = "default"
	}
	s, ok := preNames[name]
	if !ok {
		return preSpec{}, fmt.Errorf("BPE pre-tokenizer %q is not supported", name)
	}
	return s, nil
}

// PreClearsBOS reports whether llama.cpp has no default BOS id for a BPE
// vocabulary with this pre-tokenizer (ChatGLM's); the GGUF key, when
// present, still sets one.
func PreClearsBOS(pre string) bool {
	s, _ := lookupPre(pre)
	return s.noBOS
}

// PreAddsBOS reports llama.cpp's default for add_bos_token with a BPE
// vocabulary whose pre-tokenizer is named pre (the GGUF key, when
// present, overrides it), or an error for an unknown pre-tokenizer.
func PreAddsBOS(pre string) (bool, error) {
	s, err := lookupPre(pre)
	return s.addBOS, err
}

// splitter holds one text being pre-tokenized: its code points, their
// flags, and the current segmentation as end offsets (in code points).
type splitter struct {
	cps   []rune
	flags []cpFlags
	ends  []int32
	next  []int32
}

// reset prepares the splitter for the code points of one raw fragment.
func (s *splitter) reset(cps []rune) {
	s.cps = cps
	s.flags = s.flags[:0]
	for _, c := range cps {
		s.flags = append(s.flags, cpFlagsOf(c))
	}
	s.ends = append(s.ends[:0], int32(len(cps)))
}

// run applies the pre-tokenizer family; afterwards s.ends ends the words.
func (s *splitter) run(f preFamily) {
	switch f {
	case preGPT2:
		s.custom(splitGPT2)
	case preLlama3:
		s.custom(splitLlama3)
	case preQwen2:
		s.custom(splitQwen2)
	case preQwen35:
		s.custom(splitQwen35)
	case preDeepseekV3:
		s.regex(matchRunMax(isNumber, 3))
		s.regex(matchRun(inDeepseekV3CJK))
		s.regex(matchDeepseekV3)
	case preBloom:
		s.regex(matchBloom)
	case preViking:
		s.regex(matchBloom)
		s.regex(matchOne(isNumber))
	case preStarcoder:
		s.regex(matchOne(isNumber))
		s.custom(splitGPT2)
	case preFalcon:
		s.regex(matchRun(isFalconPunct))
		s.custom(splitGPT2)
		s.regex(matchThreeDigits)
	case preDeepseekLLM:
		s.regex(matchOne(isCRLF))
		s.regex(matchSpaceThenRun(inDeepseekLetters))
		s.regex(matchSpaceThenRun(inDeepseekPunct))
		s.regex(matchTrailingSpace)
		s.regex(matchRun(inDeepseekCJK))
		s.regex(matchRun(isNumber))
	case preDeepseekCoder:
		s.regex(matchOne(isCRLF))
		s.regex(matchSpaceThenRun(isLetter))
		s.regex(matchSpaceThenRun(isPunct))
		s.regex(matchRun(inDeepseekCJK))
		s.regex(matchOne(isNumber))
	case preTekken:
		s.regex(func(g *seg, pos int) int { return matchCaseSplit(g, pos, false, 1) })
	case preGPT4o:
		s.regex(func(g *seg, pos int) int { return matchCaseSplit(g, pos, true, 3) })
	default:
		s.regex(matchRun(isDefaultPunct))
		s.custom(splitGPT2)
		s.regex(matchRun(isNumber))
		s.regex(matchThreeDigits)
	}
}

// seg is one segment [ini, end) of the text with accessors that read past
// its end as llama.cpp's splitters do: code point -1 and zero flags.
type seg struct {
	s        *splitter
	ini, end int
	prev     int // end of the last word emitted
}

func (g *seg) cpt(pos int) rune {
	if pos >= g.ini && pos < g.end {
		return g.s.cps[pos]
	}
	return -1
}

func (g *seg) fl(pos int) cpFlags {
	if pos >= g.ini && pos < g.end {
		return g.s.flags[pos]
	}
	return 0
}

// add ends a word at end (nothing when it would be empty) and returns its
// length.
func (g *seg) add(end int) int {
	n := end - g.prev
	if n > 0 {
		g.s.next = append(g.s.next, int32(end))
	}
	g.prev = end
	return n
}

// custom splits every segment with one of llama.cpp's hand-written
// splitters.
func (s *splitter) custom(split func(g *seg)) {
	s.next = s.next[:0]
	ini := 0
	for _, e := range s.ends {
		g := seg{s: s, ini: ini, end: int(e), prev: ini}
		split(&g)
		ini = int(e)
	}
	s.ends, s.next = s.next, s.ends
}

// regex splits every segment at the leftmost-first matches of one of
// the simple regular expressions below, keeping the text between matches
// as segments too (llama.cpp's unicode_regex_split_stl with std::regex's
// ECMAScript semantics). match returns the length of the match at pos, 0
// for none; none of these expressions matches the empty string.
func (s *splitter) regex(match func(g *seg, pos int) int) {
	s.next = s.next[:0]
	ini := 0
	for _, e := range s.ends {
		g := seg{s: s, ini: ini, end: int(e), prev: ini}
		for pos := ini; pos < g.end; {
			n := match(&g, pos)
			if n == 0 {
				pos++
				continue
			}
			g.add(pos)
			pos += n
			g.add(pos)
		}
		g.add(g.end)
		ini = int(e)
	}
	s.ends, s.next = s.next, s.ends
}

// Character classes. With llama.cpp's "collapsed" text (every non-ASCII
// code point replaced by one byte standing for its category, non-ASCII
// White_Space by \v), \p{L}, \p{N}, \p{P} and \s of std::regex mean the
// Unicode classes for every code point.
func isLetter(g *seg, pos int) bool { return g.fl(pos)&fLetter != 0 }
func isNumber(g *seg, pos int) bool { return g.fl(pos)&fNumber != 0 }
func isPunct(g *seg, pos int) bool  { return g.fl(pos)&fPunct != 0 }
func isSpace(g *seg, pos int) bool  { return g.fl(pos)&fSpace != 0 }
func isCRLF(g *seg, pos int) bool   { c := g.cpt(pos); return c == '\r' || c == '\n' }

// isFalconPunct is [\p{P}\$\+<=>\^~\|`].
func isFalconPunct(g *seg, pos int) bool {
	switch g.cpt(pos) {
	case '$', '+', '<', '=', '>', '^', '~', '|', '`':
		return true
	}
	return isPunct(g, pos)
}

// isDefaultPunct is [\p{P}\$\+<=>\^~\|].
func isDefaultPunct(g *seg, pos int) bool {
	return g.cpt(pos) != '`' && isFalconPunct(g, pos)
}

// wchar is the code point std::wregex sees: llama.cpp replaces non-ASCII
// White_Space by \v.
func wchar(g *seg, pos int) rune {
	c := g.cpt(pos)
	if c > 0x7F && g.fl(pos)&fSpace != 0 {
		return 0x0B
	}
	return c
}

// deepseekLetters is the character class of DeepSeek LLM's letter
// pattern, as llama.cpp writes it (llama-vocab.cpp), in pairs of first
// and last code point. The classes are spelled with escapes: their exact
// code points matter (U+212A KELVIN SIGN is not K), and editors normalise.
var deepseekLetters = parseRanges("A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df\U0001e900-\U0001e943")

// deepseekPunct is DeepSeek LLM's punctuation class.
var deepseekPunct = parseRanges("!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002")

// deepseekCJK is DeepSeek's CJK class (LLM and Coder).
var deepseekCJK = parseRanges("\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff")

// parseRanges reads a regular-expression character class body made of
// single characters and a-b ranges, into sorted, disjoint ranges.
func parseRanges(class string) [][2]rune {
	r := []rune(class)
	var out [][2]rune
	for i := 0; i < len(r); i++ {
		if i+2 < len(r) && r[i+1] == '-' {
			out = append(out, [2]rune{r[i], r[i+2]})
			i += 2
			continue
		}
		out = append(out, [2]rune{r[i], r[i]})
	}
	// Sort and join overlapping ranges, for inRanges.
	slices.SortFunc(out, func(a, b [2]rune) int { return int(a[0] - b[0]) })
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 && r[0] <= merged[n-1][1]+1 {
			merged[n-1][1] = max(merged[n-1][1], r[1])
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

// inRanges reports whether c is in the sorted, disjoint ranges rs.
func inRanges(rs [][2]rune, c rune) bool {
	k, _ := slices.BinarySearchFunc(rs, c, func(r [2]rune, c rune) int {
		if r[0] <= c {
			return -1
		}
		return 1
	})
	return k > 0 && c <= rs[k-1][1]
}

func inDeepseekLetters(g *seg, pos int) bool { return inRanges(deepseekLetters, wchar(g, pos)) }
func inDeepseekPunct(g *seg, pos int) bool   { return inRanges(deepseekPunct, wchar(g, pos)) }
func inDeepseekCJK(g *seg, pos int) bool     { return inRanges(deepseekCJK, wchar(g, pos)) }

// wspace is \s of std::wregex on llama.cpp's wide text.
func wspace(g *seg, pos int) bool {
	switch wchar(g, pos) {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}

// matchOne is a one-character class.
func matchOne(in func(*seg, int) bool) func(*seg, int) int {
	return func(g *seg, pos int) int {
		if in(g, pos) {
			return 1
		}
		return 0
	}
}

// matchRun is class+.
func matchRun(in func(*seg, int) bool) func(*seg, int) int {
	return func(g *seg, pos int) int {
		n := 0
		for in(g, pos+n) {
			n++
		}
		return n
	}
}

// matchSpaceThenRun is \s?class+ (greedy, backtracking the optional space
// when the class does not follow it).
func matchSpaceThenRun(in func(*seg, int) bool) func(*seg, int) int {
	run := matchRun(in)
	return func(g *seg, pos int) int {
		if isSpace(g, pos) {
			if n := run(g, pos+1); n > 0 {
				return n + 1
			}
		}
		return run(g, pos)
	}
}

// matchRunMax is class{1,most}.
func matchRunMax(in func(*seg, int) bool, most int) func(*seg, int) int {
	return func(g *seg, pos int) int {
		n := 0
		for n < most && in(g, pos+n) {
			n++
		}
		return n
	}
}

// deepseekV3CJK is DeepSeek V3's CJK and kana class.
var deepseekV3CJK = parseRanges("\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff")

func inDeepseekV3CJK(g *seg, pos int) bool { return inRanges(deepseekV3CJK, wchar(g, pos)) }

// matchDeepseekV3 is DeepSeek V3's third expression, on the collapsed text:
//
//	[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
//	 ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
func matchDeepseekV3(g *seg, pos int) int {
	run := func(p int, in func(int) bool) int {
		n := 0
		for in(p + n) {
			n++
		}
		return n
	}
	asciiLetter := func(p int) bool { c := g.cpt(p); return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }
	ps := func(p int) bool { return g.fl(p)&(fPunct|fSymbol) != 0 }
	lm := func(p int) bool { return g.fl(p)&(fLetter|fMark) != 0 }
	if c := g.cpt(pos); c >= 0 && c < 0x80 && ps(pos) && asciiLetter(pos+1) {
		return 1 + run(pos+1, asciiLetter)
	}
	c, f := g.cpt(pos), g.fl(pos)
	if f != 0 && c != '\r' && c != '\n' && f&(fLetter|fPunct|fSymbol) == 0 {
		if n := run(pos+1, lm); n > 0 {
			return 1 + n
		}
	}
	if n := run(pos, lm); n > 0 {
		return n
	}
	crlf := func(p int) bool { c := g.cpt(p); return c == '\r' || c == '\n' }
	for _, s := range []int{pos + 1, pos} {
		if s == pos+1 && c != ' ' {
			continue
		}
		if n := run(s, ps); n > 0 {
			end := s + n
			return end + run(end, crlf) - pos
		}
	}
	return matchSpaces(g, pos)
}

// matchSpaces is \s*[\r\n]+|\s+(?!\S)|\s+ at pos, or 0.
func matchSpaces(g *seg, pos int) int {
	n := 0
	for g.fl(pos+n)&fSpace != 0 {
		n++
	}
	for i := pos + n - 1; i >= pos; i-- { // \s*[\r\n]+
		if c := g.cpt(i); c == '\r' || c == '\n' {
			return i + 1 - pos
		}
	}
	switch {
	case n > 0 && pos+n == g.end: // \s+(?!\S) at the end
		return n
	case n > 1: // \s+(?!\S), giving one back
		return n - 1
	}
	return n // \s+, or no match
}

// bloomStop is the negated class of BLOOM's expression ?[^(\s|.,!?…。，、।۔،)]+
// without \s.
var bloomStop = parseRanges("(|.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c)")

// matchBloom is BLOOM's (and Poro's, GPT-3 Finnish's, Viking's first)
// expression, on the code points: ?[^(\s|.,!?…。，、।۔،)]+
func matchBloom(g *seg, pos int) int {
	in := func(p int) bool { return g.fl(p) != 0 && !wspace(g, p) && !inRanges(bloomStop, wchar(g, p)) }
	run := func(p int) int {
		n := 0
		for in(p + n) {
			n++
		}
		return n
	}
	if g.cpt(pos) == ' ' {
		if n := run(pos + 1); n > 0 {
			return n + 1
		}
	}
	return run(pos)
}

// matchTrailingSpace is \s+$: a run of white space that ends the segment.
func matchTrailingSpace(g *seg, pos int) int {
	n := 0
	for wspace(g, pos+n) {
		n++
	}
	if n > 0 && pos+n == g.end {
		return n
	}
	return 0
}

// matchThreeDigits is [0-9][0-9][0-9].
func matchThreeDigits(g *seg, pos int) int {
	for k := range 3 {
		if c := g.cpt(pos + k); c < '0' || c > '9' {
			return 0
		}
	}
	return 3
}

// isContraction reports the length (2 or 3) of one of 's 't 're 've 'm
// 'll 'd at pos, case-insensitively when fold is set, or 0.
func isContraction(g *seg, pos int, fold bool) int {
	if g.cpt(pos) != '\'' || pos+1 >= g.end {
		return 0
	}
	lower := func(c rune) rune {
		if fold && c >= 'A' && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	c1 := lower(g.cpt(pos + 1))
	switch c1 {
	case 's', 't', 'm', 'd':
		return 2
	}
	if pos+2 < g.end {
		c2 := lower(g.cpt(pos + 2))
		if (c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l') {
			return 3
		}
	}
	return 0
}

// splitGPT2 is llama.cpp's unicode_regex_split_custom_gpt2, its reading
// of 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
func splitGPT2(g *seg) {
	notWLN := func(f cpFlags) bool { return f&(fSpace|fLetter|fNumber) == 0 && f != 0 }
	for pos := g.ini; pos < g.end; {
		cpt, f := g.cpt(pos), g.fl(pos)
		if n := isContraction(g, pos, false); n > 0 {
			pos += g.add(pos + n)
			continue
		}
		f2 := f
		if cpt == ' ' {
			f2 = g.fl(pos + 1)
		}
		if f2&fLetter != 0 || f2&fNumber != 0 || notWLN(f2) {
			class := f2 & (fLetter | fNumber)
			in := func(f cpFlags) bool {
				if class != 0 {
					return f&class != 0
				}
				return notWLN(f)
			}
			if cpt == ' ' {
				pos++
			}
			for in(g.fl(pos)) {
				pos++
			}
			g.add(pos)
			continue
		}
		pos = g.spaces(pos, false)
	}
}

// spaces handles the white-space alternatives at pos shared by the
// splitters: \s*[\r\n]+ (when crlf), \s+(?!\S), \s+, else a single
// code point. It returns the new position.
func (g *seg) spaces(pos int, crlf bool) int {
	n, lastRN := 0, 0
	for g.fl(pos+n)&fSpace != 0 {
		if c := g.cpt(pos + n); c == '\r' || c == '\n' {
			lastRN = pos + n + 1
		}
		n++
	}
	switch {
	case crlf && lastRN > 0:
		pos = lastRN
	case n > 1 && pos+n < g.end:
		pos += n - 1
	case n > 0:
		pos += n
	default:
		pos++
	}
	g.add(pos)
	return pos
}

// splitLlama3 is llama.cpp's unicode_regex_split_custom_llama3 (digits
// by three) and unicode_regex_split_custom_qwen2 (digits one by one), its
// reading of (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
func splitLlama3(g *seg) { splitLlama3Digits(g, 3, 0) }
func splitQwen2(g *seg)  { splitLlama3Digits(g, 1, 0) }

// splitQwen35 is llama.cpp's unicode_regex_split_custom_qwen35: Qwen 2's
// splitter where words take combining marks too ([\p{L}\p{M}]+).
func splitQwen35(g *seg) { splitLlama3Digits(g, 1, fMark) }

func splitLlama3Digits(g *seg, digits int, marks cpFlags) {
	word := fLetter | marks
	for pos := g.ini; pos < g.end; {
		cpt, f := g.cpt(pos), g.fl(pos)
		if n := isContraction(g, pos, true); n > 0 {
			pos += g.add(pos + n)
			continue
		}
		if !(cpt == '\r' || cpt == '\n' || f&fNumber != 0) && (f&word != 0 || g.fl(pos+1)&word != 0) {
			pos++
			for g.fl(pos)&word != 0 {
				pos++
			}
			g.add(pos)
			continue
		}
		if f&fNumber != 0 {
			ini := pos
			for g.fl(pos)&fNumber != 0 {
				pos++
				if pos-ini >= digits {
					g.add(pos)
					ini = pos
				}
			}
			g.add(pos)
			continue
		}
		f2 := f
		if cpt == ' ' {
			f2 = g.fl(pos + 1)
		}
		if f2&(fSpace|word|fNumber) == 0 && f != 0 {
			if cpt == ' ' {
				pos++
			}
			for f2&(fSpace|word|fNumber) == 0 && f2 != 0 {
				pos++
				f2 = g.fl(pos)
			}
			for c := g.cpt(pos); c == '\r' || c == '\n'; c = g.cpt(pos) {
				pos++
			}
			g.add(pos)
			continue
		}
		pos = g.spaces(pos, true)
	}
}

// matchCaseSplit is the match at pos of the Tekken (Mistral Nemo) and
// GPT-4o (Llama 4) expression, which llama.cpp runs with std::regex on the
// collapsed text:
//
//	[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+C?|
//	[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*C?|
//	\p{N}{1,digits}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// where C is (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]) for
// GPT-4o and absent for Tekken. ECMAScript takes the first alternative
// that matches, and greedy quantifiers give back one character at a time.
// "Upper" letters are letters other than a-z (every non-ASCII letter is
// one), "lower" letters those other than A-Z (every non-ASCII letter too).
func matchCaseSplit(g *seg, pos int, contractions bool, digits int) int {
	letter := func(p int) bool { return g.fl(p)&fLetter != 0 }
	upper := func(p int) bool { c := g.cpt(p); return letter(p) && !(c >= 'a' && c <= 'z') }
	lower := func(p int) bool { c := g.cpt(p); return letter(p) && !(c >= 'A' && c <= 'Z') }
	prefix := func(p int) bool { // [^\r\n\p{L}\p{N}]
		c, f := g.cpt(p), g.fl(p)
		return f != 0 && c != '\r' && c != '\n' && f&(fLetter|fNumber) == 0
	}
	run := func(p int, in func(int) bool) int {
		n := 0
		for in(p + n) {
			n++
		}
		return n
	}
	suffix := func(p int) int {
		if contractions {
			return isContraction(g, p, true)
		}
		return 0
	}
	// upper* lower+ C? from s, or 0.
	alt1 := func(s int) int {
		for k := run(s, upper); k >= 0; k-- {
			if lower(s + k) {
				end := s + k + run(s+k, lower)
				return end + suffix(end) - s
			}
		}
		return 0
	}
	// upper+ lower* C? from s, or 0.
	alt2 := func(s int) int {
		u := run(s, upper)
		if u == 0 {
			return 0
		}
		end := s + u + run(s+u, lower)
		return end + suffix(end) - s
	}
	for _, alt := range []func(int) int{alt1, alt2} {
		if prefix(pos) {
			if n := alt(pos + 1); n > 0 {
				return n + 1
			}
		}
		if n := alt(pos); n > 0 {
			return n
		}
	}
	if g.fl(pos)&fNumber != 0 {
		return min(run(pos, func(p int) bool { return g.fl(p)&fNumber != 0 }), digits)
	}
	other := func(p int) bool { f := g.fl(p); return f != 0 && f&(fSpace|fLetter|fNumber) == 0 }
	crlfSlash := func(p int) bool { c := g.cpt(p); return c == '\r' || c == '\n' || c == '/' }
	for _, s := range []int{pos + 1, pos} {
		if s == pos+1 && g.cpt(pos) != ' ' {
			continue
		}
		if n := run(s, other); n > 0 {
			end := s + n
			return end + run(end, crlfSlash) - pos
		}
	}
	return matchSpaces(g, pos)
}
