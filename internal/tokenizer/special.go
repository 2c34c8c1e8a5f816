package tokenizer

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Span is one piece of a text to encode. Special says whether the text may
// contain special tokens written out (control, user-defined and unknown
// tokens such as "<|im_start|>"): set it for text that a chat template
// wrote, never for text a user sent. See EncodeSpans.
type Span struct {
	Text    string
	Special bool
}

// level says which special tokens a stretch of text may contain.
type level uint8

const (
	levelNone level = iota // plain data: no special token is recognised
	levelUser              // user-defined tokens (llama.cpp's parse_special = false)
	levelAll               // control, unknown and user-defined tokens (parse_special = true)
)

// attr holds llama.cpp's token attributes that encoding depends on.
type attr uint8

const (
	attrControl attr = 1 << iota
	attrUserDefined
	attrUnknown
	attrUnused
	attrLStrip // whitespace before the token is dropped
	attrRStrip // whitespace after the token is dropped
)

// eogTexts are the token texts that llama.cpp (llama-vocab.cpp, load)
// treats as end of generation, whatever their type; it also makes each of
// them a control token.
var eogTexts = []string{
	"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
	"<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
	"<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
	"<｜end▁of▁sentence｜>", "[e~[",
}

// controlTexts are further token texts that llama.cpp recognises by text
// (end-of-turn, end-of-message and fill-in-the-middle tokens) and makes
// control tokens.
var controlTexts = []string{
	"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>", "<|prefix|>",
	"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>", "<|suffix|>",
	"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>", "<|middle|>",
	"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]",
	"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>",
	"<|file_sep|>",
}

// buildSpecial fills attrs and the special-token cache for SPM and BPE
// vocabularies, as llama.cpp's vocabulary loader does.
func (t *Tokenizer) buildSpecial() {
	t.attrs = make([]attr, t.n)
	for i := range t.n {
		switch t.typ(i) {
		case Control:
			t.attrs[i] = attrControl
		case UserDefined:
			t.attrs[i] = attrUserDefined
		case Unknown:
			t.attrs[i] = attrUnknown
		case Unused:
			t.attrs[i] = attrUnused
		}
	}
	for _, s := range controlTexts {
		if id, ok := t.lookup.get(s); ok {
			t.attrs[id] |= attrControl
		}
	}
	for _, s := range eogTexts {
		if id, ok := t.lookup.get(s); ok {
			t.attrs[id] |= attrControl
		}
	}
	t.buildEOG()
	// Control tokens whose text says "unused" are unused.
	for i, p := range t.v.Tokens {
		if t.attrs[i]&attrControl != 0 && strings.Contains(p, "unused") {
			t.attrs[i] |= attrUnused
		}
	}
	for i, p := range t.v.Tokens {
		if p != "" && t.attrs[i]&(attrControl|attrUserDefined|attrUnknown) != 0 {
			t.special = append(t.special, int32(i))
		}
	}
	// Longer texts first; llama.cpp's sort is not stable, ties keep id order
	// here (tokens of equal length can only both match where one text is
	// the other, i.e. never for distinct pieces).
	slices.SortStableFunc(t.special, func(a, b int32) int {
		return cmp.Compare(len(t.v.Tokens[b]), len(t.v.Tokens[a]))
	})
	if t.v.RStripSpecial {
		for _, id := range t.special {
			t.attrs[id] |= attrRStrip
		}
		if id, ok := t.lookup.get("</s>"); ok {
			t.attrs[id] |= attrRStrip
		}
		for _, s := range []string{"<unk>", "<s>", "<|endoftext|>"} {
			if id, ok := t.lookup.get(s); ok {
				t.attrs[id] &^= attrRStrip
			}
		}
	}
}

// buildEOG collects the end-of-generation tokens as llama.cpp does: EOS,
// the file's EOT and EOM, the first fill-in-the-middle pad, repo and
// separator tokens found by text, and every token whose text is in
// eogTexts. Like llama.cpp, a vocabulary with "<|return|>" and "<|call|>"
// (or "<|calls|>" and "<|flush|>") does not end generation at "<|end|>",
// and one with "<|tool_response>" not at "</s>".
func (t *Tokenizer) buildEOG() {
	set := map[int]bool{}
	if t.v.EOS >= 0 {
		set[t.v.EOS] = true
	}
	for _, id := range t.v.EOG {
		set[id] = true
	}
	for _, group := range [][]string{
		{"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"},
		{"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"},
		{"<|file_sep|>"},
	} {
		for _, s := range group {
			if id, ok := t.lookup.get(s); ok {
				set[int(id)] = true
				break
			}
		}
	}
	for _, s := range eogTexts {
		if id, ok := t.lookup.get(s); ok {
			set[int(id)] = true
		}
	}
	has := func(s string) (int, bool) {
		id, ok := t.lookup.get(s)
		return int(id), ok && set[int(id)]
	}
	_, ret := has("<|return|>")
	_, call := has("<|call|>")
	_, calls := has("<|calls|>")
	_, flush := has("<|flush|>")
	if end, ok := has("<|end|>"); ok && (ret && (call || calls) || (call || calls) && flush) {
		delete(set, end)
		t.attrs[end] = attrUserDefined
	}
	if _, ok := has("<|tool_response>"); ok {
		if s, ok := has("</s>"); ok {
			delete(set, s)
			t.attrs[s] = 0
		}
	}
	for id := range set {
		t.eog = append(t.eog, id)
	}
	slices.Sort(t.eog)
}

// IsEOG reports whether generation ends at token id: EOS, the file's
// end-of-turn and end-of-message tokens, and the tokens llama.cpp
// recognises by their text ("<|eot_id|>", "<|im_end|>", "<|end|>",
// "<end_of_turn>", "<|endoftext|>", ...). For llama2.c vocabularies it is
// EOS only.
func (t *Tokenizer) IsEOG(id int) bool {
	if t.v.Flavor == Llama2C {
		return id == t.v.EOS && id >= 0
	}
	_, ok := slices.BinarySearch(t.eog, id)
	return ok
}

// EOG returns the end-of-generation tokens (see IsEOG), sorted.
func (t *Tokenizer) EOG() []int {
	if t.v.Flavor == Llama2C {
		if t.v.EOS >= 0 {
			return []int{t.v.EOS}
		}
		return nil
	}
	return slices.Clone(t.eog)
}

// fragment is a token (tok >= 0) or the raw text text[start:end] in which
// special tokens up to lvl may still be found.
type fragment struct {
	tok        int32
	start, end int
	lvl        level
}

// tokenLevel is the least level at which special token id is recognised.
func (t *Tokenizer) tokenLevel(id int32) level {
	if t.attrs[id]&(attrControl|attrUnknown) != 0 {
		return levelAll
	}
	return levelUser
}

// partition splits raw fragments of text at the special tokens they may
// hold, as llama.cpp's tokenizer_st_partition does: longest token text
// first, each fragment from left to right. Adjacent raw fragments are then
// joined into one (the text between two special tokens is one fragment,
// whichever spans it came from) and the whitespace that an lstrip or rstrip
// token swallows is dropped.
func (t *Tokenizer) partition(text string, frags []fragment) []fragment {
	for _, id := range t.special {
		piece := t.v.Tokens[id]
		need := t.tokenLevel(id)
		var next []fragment
		for i, f := range frags {
			if f.tok >= 0 || f.lvl < need || !strings.Contains(text[f.start:f.end], piece) {
				if next != nil {
					next = append(next, f)
				}
				continue
			}
			if next == nil {
				next = append(make([]fragment, 0, len(frags)+4), frags[:i]...)
			}
			for f.start < f.end {
				k := strings.Index(text[f.start:f.end], piece)
				if k < 0 {
					next = append(next, f)
					break
				}
				if k > 0 {
					next = append(next, fragment{tok: -1, start: f.start, end: f.start + k, lvl: f.lvl})
				}
				next = append(next, fragment{tok: id})
				f.start += k + len(piece)
			}
		}
		if next != nil {
			frags = next
		}
	}
	// Join adjacent raw fragments (they are contiguous: nothing was dropped
	// yet).
	out := frags[:0]
	for _, f := range frags {
		if n := len(out); f.tok < 0 && n > 0 && out[n-1].tok < 0 {
			out[n-1].end = f.end
			continue
		}
		out = append(out, f)
	}
	// lstrip / rstrip swallow C-locale whitespace next to the token.
	for i, f := range out {
		if f.tok < 0 {
			continue
		}
		a := t.attrs[f.tok]
		if a&attrLStrip != 0 && i > 0 && out[i-1].tok < 0 {
			p := &out[i-1]
			for p.end > p.start && isCSpace(text[p.end-1]) {
				p.end--
			}
		}
		if a&attrRStrip != 0 && i+1 < len(out) && out[i+1].tok < 0 {
			p := &out[i+1]
			for p.start < p.end && isCSpace(text[p.start]) {
				p.start++
			}
		}
	}
	return slices.DeleteFunc(out, func(f fragment) bool { return f.tok < 0 && f.start == f.end })
}

// isCSpace is C's isspace in the "C" locale.
func isCSpace(c byte) bool {
	return c == ' ' || (c >= '\t' && c <= '\r')
}

// Encode turns text into token ids, with the vocabulary's BOS first when
// addBOS is true. It is llama.cpp's llama_tokenize with parse_special =
// false: user-defined tokens written out in text are recognised (as
// llama.cpp and Hugging Face do), control tokens are not. Llama2C
// vocabularies follow llama2.c run.c's encode. All flavors run in
// O(n log n) time for n bytes of text.
//
// addBOS adds the BOS token whatever Vocab.AddBOS says; llama.cpp's
// add_special = true is addBOS = Vocab.AddBOS plus Vocab.EOS at the end
// when Vocab.AddEOS.
func (t *Tokenizer) Encode(text string, addBOS bool) ([]int, error) {
	return t.encode([]Span{{Text: text}}, levelUser, addBOS)
}

// EncodeSpecial is Encode with special tokens parsed in the whole text
// (llama.cpp's parse_special = true): "<|im_start|>" in text becomes that
// control token. Use it only for text that no untrusted party wrote.
func (t *Tokenizer) EncodeSpecial(text string, addBOS bool) ([]int, error) {
	return t.encode([]Span{{Text: text, Special: true}}, levelUser, addBOS)
}

// EncodeSpans encodes the concatenation of the spans' texts. Control,
// unknown and user-defined tokens written out in the text are recognised
// only inside spans with Special set; the text of other spans is always
// tokenized as plain text, so that a user who sends "<|im_start|>" cannot
// forge a turn. The text between two recognised special tokens is
// tokenized as one fragment even where it crosses span boundaries: when no
// plain span contains the text of a special token, the result is exactly
// EncodeSpecial of the concatenated text (llama.cpp's tokenize with
// parse_special = true of the whole rendered prompt).
func (t *Tokenizer) EncodeSpans(spans []Span, addBOS bool) ([]int, error) {
	return t.encode(spans, levelNone, addBOS)
}

// encode concatenates spans (plain spans may hold special tokens up to
// plain) and encodes the result.
func (t *Tokenizer) encode(spans []Span, plain level, addBOS bool) ([]int, error) {
	total := 0
	for _, s := range spans {
		total += len(s.Text)
	}
	if total > MaxTextLen {
		return nil, fmt.Errorf("encode: text of %d bytes is longer than the limit of %d", total, MaxTextLen)
	}
	var text string
	var frags []fragment
	if len(spans) == 1 {
		text = spans[0].Text
	}
	var sb strings.Builder
	if len(spans) > 1 {
		sb.Grow(total)
	}
	pos := 0
	for _, s := range spans {
		if s.Text == "" {
			continue
		}
		lvl := plain
		if s.Special {
			lvl = levelAll
		}
		if n := len(frags); n > 0 && frags[n-1].lvl == lvl {
			frags[n-1].end += len(s.Text)
		} else {
			frags = append(frags, fragment{tok: -1, start: pos, end: pos + len(s.Text), lvl: lvl})
		}
		pos += len(s.Text)
		if len(spans) > 1 {
			sb.WriteString(s.Text)
		}
	}
	if len(spans) > 1 {
		text = sb.String()
	}
	out := make([]int, 0, len(text)/3+2)
	if addBOS {
		if t.v.BOS < 0 {
			return nil, fmt.Errorf("encode: vocabulary has no BOS token")
		}
		out = append(out, t.v.BOS)
	}
	var err error
	switch t.v.Flavor {
	case Llama2C:
		out, err = t.encodeLlama2C(out, text)
	default:
		if text != "" {
			frags = t.partition(text, frags)
			if t.v.Flavor == BPE {
				out, err = t.encodeBPEFragments(out, text, frags)
			} else {
				out, err = t.encodeFragments(out, text, frags)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return out, nil
}

// encodeBPEFragments encodes partitioned text with a BPE vocabulary:
// special tokens as they are, each raw fragment on its own.
func (t *Tokenizer) encodeBPEFragments(out []int, text string, frags []fragment) ([]int, error) {
	st := t.bpe.pool.Get().(*bpeState)
	defer t.bpe.pool.Put(st)
	clear(st.cache)
	var err error
	for _, f := range frags {
		if f.tok >= 0 {
			out = append(out, int(f.tok))
			continue
		}
		if out, err = t.bpeFragment(out, st, text[f.start:f.end]); err != nil {
			return nil, err
		}
	}
	return out, nil
}
