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
