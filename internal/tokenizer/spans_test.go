package tokenizer_test

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/verdictnet/verdict/internal/tokenizer"
)

// TestEncodeSpans checks the span rule on a hand-built SentencePiece
// vocabulary ("<s>" and "</s>" control, "<tag>" user-defined).
func TestEncodeSpans(t *testing.T) {
	v := spmVocab()
	v.Scores[id(v, "▁h")] = 1
	v.Scores[id(v, "hi")] = 2
	v.Scores[id(v, "▁hi")] = 0.5
	tok := mustNew(t, v)
	S := func(text string) tokenizer.Span { return tokenizer.Span{Text: text, Special: true} }
	P := func(text string) tokenizer.Span { return tokenizer.Span{Text: text} }
	tests := []struct {
		name  string
		spans []tokenizer.Span
		want  []int
	}{
		{"empty", nil, nil},
		{"control in special span", []tokenizer.Span{P("hi"), S("<s>"), P("hi")}, []int{9, 1, 9}},
		// "<" and "s" are no pieces and have no byte tokens: UNK each.
		{"control in plain span is text", []tokenizer.Span{P("<s>")}, []int{4, 0, 0, 0}},
		{"user-defined in plain span is text", []tokenizer.Span{P("<tag>")}, []int{4, 0, 0, 0, 0, 0}},
		{"user-defined in special span", []tokenizer.Span{S("<tag>")}, []int{10}},
		// One fragment across spans: "hi" merges although its halves
		// come from two spans; tokenized apart they would be "▁h" "▁" "i".
		{"fragment crosses spans", []tokenizer.Span{S("h"), P("i")}, []int{9}},
		{"special split across special spans", []tokenizer.Span{S("<"), S("s>"), P("hi")}, []int{1, 9}},
		{"special split across a plain span", []tokenizer.Span{S("<"), P("s"), S(">")}, []int{4, 0, 0, 0}},
		{"dummy prefix after special token", []tokenizer.Span{S("</s>"), P("hi")}, []int{2, 9}},
		{"empty spans ignored", []tokenizer.Span{P(""), S(""), P("hi")}, []int{9}},
	}
	for _, tt := range tests {
		got, err := tok.EncodeSpans(tt.spans, false)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("%s: EncodeSpans = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
	// Encode recognises user-defined tokens only, EncodeSpecial all.
	for _, c := range []struct {
		text           string
		plain, special []int
	}{
		{"hi<s>hi", []int{9, 0, 0, 0, 8}, []int{9, 1, 9}},
		{"hi<tag>hi", []int{9, 10, 9}, []int{9, 10, 9}},
		{"<unk>", []int{4, 0, 0, 0, 0, 0}, []int{0}},
	} {
		if got, err := tok.Encode(c.text, false); err != nil || !slices.Equal(got, c.plain) {
			t.Errorf("Encode(%q) = %v, %v; want %v", c.text, got, err, c.plain)
		}
		if got, err := tok.EncodeSpecial(c.text, false); err != nil || !slices.Equal(got, c.special) {
			t.Errorf("EncodeSpecial(%q) = %v, %v; want %v", c.text, got, err, c.special)
		}
		if got, err := tok.EncodeSpans([]tokenizer.Span{S(c.text)}, false); err != nil || !slices.Equal(got, c.special) {
			t.Errorf("EncodeSpans(special %q) = %v, %v; want %v", c.text, got, err, c.special)
		}
	}
	if got, err := tok.EncodeSpans([]tokenizer.Span{S("<s>")}, true); err != nil || !slices.Equal(got, []int{1, 1}) {
		t.Errorf("EncodeSpans with BOS = %v, %v", got, err)
	}
}

// TestEncodeSpansMatchesWholeText: with the Llama 2 vocabulary, a prompt
// cut into spans anywhere, whose plain spans hold no special-token text,
// encodes as EncodeSpecial of the whole text.
func TestEncodeSpansMatchesWholeText(t *testing.T) {
	tok := load(t, "models/ggml-vocab-llama-spm.gguf")
	text := "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHello there, 世界 🦙 [/INST] Hi!</s><s>[INST] again  [/INST]"
	want, err := tok.EncodeSpecial(text, false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(want, 1) || !slices.Contains(want, 2) {
		t.Fatalf("EncodeSpecial did not parse <s> and </s>: %v", want)
	}
	for step := 1; step <= 9; step++ {
		var spans []tokenizer.Span
		for i := 0; i < len(text); i += step {
			chunk := text[i:min(i+step, len(text))]
			special := strings.ContainsAny(chunk, "<>/s")
			spans = append(spans, tokenizer.Span{Text: chunk, Special: special})
		}
		got, err := tok.EncodeSpans(spans, false)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("step %d: EncodeSpans = %v, %v\nwant %v", step, got, err, want)
		}
	}
}

// TestDecodeBPE: byte-level pieces decode to their bytes, a space after
// BOS is kept (there is no dummy prefix to drop), control tokens are
// empty, and decoding undoes encoding, also through a StreamDecoder fed
// one token at a time.
func TestDecodeBPE(t *testing.T) {
	tok := load(t, "tokenizers/derived/ggml-vocab-smollm2.derived.gguf")
	ids, err := tok.EncodeSpecial("<|im_start|> shale 🦙 ½ café\n", true)
	if err != nil {
		t.Fatal(err)
	}
	if ids[0] != tok.Vocab().BOS || ids[1] != tok.Vocab().BOS {
		t.Fatalf("ids %v: want BOS, then <|im_start|> (which is BOS here)", ids)
	}
	text, err := tok.Decode(ids)
	if err != nil || text != " shale 🦙 ½ café\n" {
		t.Fatalf("Decode = %q, %v", text, err)
	}
	d := tok.NewStreamDecoder()
	var streamed []byte
	for _, id := range ids {
		chunk, err := d.Next(id)
		if err != nil {
			t.Fatal(err)
		}
		if !utf8.Valid(chunk) {
			t.Fatalf("chunk %q is not valid UTF-8", chunk)
		}
		streamed = append(streamed, chunk...)
	}
	if streamed = append(streamed, d.Flush()...); string(streamed) != text {
		t.Fatalf("streamed %q, want %q", streamed, text)
	}
}
