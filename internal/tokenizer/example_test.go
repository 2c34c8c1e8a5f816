package tokenizer_test

import (
	"fmt"

	"github.com/verdictnet/verdict/internal/tokenizer"
)

func Example() {
	// A tiny SentencePiece vocabulary: spaces are stored as U+2581.
	v := &tokenizer.Vocab{
		Flavor: tokenizer.SPM,
		Tokens: []string{"<unk>", "<s>", "</s>", "▁", "h", "i", "▁h", "hi", "▁hi", "<0x21>"},
		Scores: []float32{0, 0, 0, 0, 0, 0, 1, 2, 3, 0},
		Types:  []tokenizer.TokenType{2, 3, 3, 1, 1, 1, 1, 1, 1, 6},
		BOS:    1, EOS: 2, UNK: 0,
	}
	tok, err := tokenizer.New(v)
	if err != nil {
		panic(err)
	}
	ids, err := tok.Encode("hi hi!", true)
	if err != nil {
		panic(err)
	}
	fmt.Println(ids)
	text, _ := tok.Decode(ids)
	fmt.Printf("%q\n", text)
	// Output:
	// [1 8 8 9]
	// "hi hi!"
}

func ExampleTokenizer_EncodeSpans() {
	v := &tokenizer.Vocab{
		Flavor: tokenizer.SPM,
		Tokens: []string{"<unk>", "<s>", "</s>", "▁", "h", "i", "▁h", "hi", "▁hi", "<", ">", "s", "/"},
		Scores: []float32{0, 0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 0, 0},
		Types:  []tokenizer.TokenType{2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
		BOS:    1, EOS: 2, UNK: 0,
	}
	tok, err := tokenizer.New(v)
	if err != nil {
		panic(err)
	}
	// The template's "</s>" is a control token; the same text sent by a
	// user is plain text.
	ids, err := tok.EncodeSpans([]tokenizer.Span{
		{Text: "hi"}, {Text: "</s>", Special: true}, {Text: "hi</s>"},
	}, true)
	if err != nil {
		panic(err)
	}
	fmt.Println(ids)
	// Output:
	// [1 8 2 8 9 12 11 10]
}

func Example_bpe() {
	// A tiny byte-level BPE vocabulary: "Ġ" is GPT-2's character for the
	// space byte.
	v := &tokenizer.Vocab{
		Flavor: tokenizer.BPE,
		Pre:    "gpt-2",
		Tokens: []string{"h", "i", "hi", "Ġ", "Ġhi", "<|end|>"},
		Scores: make([]float32, 6),
		Types:  []tokenizer.TokenType{1, 1, 1, 1, 1, 3},
		Merges: tokenizer.StringSlice{"h i", "Ġ hi"},
		BOS:    -1, EOS: 5, UNK: -1,
	}
	tok, err := tokenizer.New(v)
	if err != nil {
		panic(err)
	}
	ids, _ := tok.Encode("hi hi<|end|>", false)
	special, _ := tok.EncodeSpecial("hi hi<|end|>", false)
	text, _ := tok.Decode(special)
	fmt.Println(ids[:2], special, tok.IsEOG(5))
	fmt.Printf("%q\n", text)
	// Output:
	// [2 4] [2 4 5] true
	// "hi hi"
}
