package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

func init() {
	register(&command{Name: "tokenize", Summary: "print the token ids of a text as a JSON array", Run: runTokenize})
}

const tokenizeUsage = "usage: verdict tokenize --model FILE [--no-bos] [--special] --text TEXT"

// runTokenize prints the ids llama.cpp's llama_tokenize gives TEXT:
// add_special unless --no-bos (the vocabulary's BOS when it asks for one,
// and its EOS at the end when it asks for one), parse_special with
// --special.
func runTokenize(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tokenize", stderr)
	path := fs.String("model", "", "GGUF file with a tokenizer (vocabulary-only files too) or a llama2.c tokenizer file")
	noBOS := fs.Bool("no-bos", false, "add no BOS or EOS token (llama.cpp's add_special = false)")
	special := fs.Bool("special", false, "recognise control tokens such as <|im_start|> written in TEXT (llama.cpp's parse_special)")
	var text *string
	fs.Func("text", "the text to tokenize", func(s string) error { text = &s; return nil })
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" || text == nil || fs.NArg() != 0 {
		return fmt.Errorf("tokenize: %s", tokenizeUsage)
	}
	v, err := model.LoadVocab(*path)
	if err != nil {
		return fmt.Errorf("tokenize: %w", err)
	}
	tok, err := tokenizer.New(v)
	if err != nil {
		return fmt.Errorf("tokenize: %s: %w", *path, err)
	}
	addBOS := v.AddBOS && !*noBOS
	var ids []int
	if *special {
		ids, err = tok.EncodeSpecial(*text, addBOS)
	} else {
		ids, err = tok.Encode(*text, addBOS)
	}
	if err != nil {
		return fmt.Errorf("tokenize: %w", err)
	}
	if v.AddEOS && !*noBOS {
		ids = append(ids, v.EOS)
	}
	if ids == nil {
		ids = []int{}
	}
	out, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", out)
	return err
}
