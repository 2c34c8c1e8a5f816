package tokenizer

// LlamaCppText is text as llama.cpp's tokenizers see it after decoding it
// to code points: each byte that starts no complete sequence becomes
// U+FFFD. ok is false when the text holds a sequence llama.cpp cannot
// re-encode (a surrogate or a value beyond U+10FFFF).
func LlamaCppText(text string) (string, bool) {
	var out []byte
	for _, c := range decodeCodepoints(nil, text) {
		if c > 0x10FFFF || c >= 0xD800 && c <= 0xDFFF {
			return "", false
		}
		out = appendCodepoint(out, c)
	}
	return string(out), true
}

// PreSplit returns the words the pre-tokenizer of a BPE tokenizer cuts
// text into.
func PreSplit(t *Tokenizer, text string) []string {
	var sp splitter
	cps := decodeCodepoints(nil, text)
	sp.reset(cps)
	sp.run(t.bpe.pre.family)
	var out []string
	start := 0
	for _, e := range sp.ends {
		out = append(out, string(cps[start:e]))
		start = int(e)
	}
	return out
}

// MissingBytes lists the bytes a BPE vocabulary has no token for (their
// GPT-2 character is no piece): llama.cpp drops them when encoding.
func MissingBytes(t *Tokenizer) []byte {
	var out []byte
	for b := range 256 {
		if t.bpe.byteTok[b] < 0 {
			out = append(out, byte(b))
		}
	}
	return out
}

// SPMWords reports whether an SPM tokenizer merges word by word.
func SPMWords(t *Tokenizer) bool { return t.spmWords }

// WithoutSPMWords returns a copy of an SPM tokenizer that merges each
// fragment whole.
func WithoutSPMWords(t *Tokenizer) *Tokenizer {
	c := *t
	c.spmWords = false
	return &c
}
