package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/verdictnet/verdict/internal/audit"
)

func init() {
	register(&command{Name: "open", Summary: "open the trace cells a challenge selects", Run: runOpen})
}

func runOpen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("open", stderr)
	modelPath := fs.String("model", "", "model file the receipt names")
	tok := fs.String("tokenizer", "", "tokenizer file (llama2.c checkpoints)")
	threads := fs.Int("threads", 0, "threads (0: one per CPU)")
	seed := fs.Uint64("challenge", 0, "challenge seed")
	cells := fs.Int("cells", 16, "number of cells to open")
	out := fs.String("out", "", "openings file to write")
	if err := parseFlags(fs, reorderFlags(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 || *out == "" {
		return errors.New("open: usage: verdict open RECEIPT --model PATH --challenge SEED --cells K --out OPENINGS")
	}
	if *cells < 1 {
		return fmt.Errorf("open: --cells %d: want at least 1", *cells)
	}
	r, err := readReceipt(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	pm, err := openProofModel(*modelPath, *tok, r.Spec, *threads, true)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer pm.Close()
	if r.Model != pm.id {
		return fmt.Errorf("open: receipt names model %s, %s is %s", r.Model, *modelPath, pm.id)
	}
	o, err := audit.Open(ctx, pm.e, r, *seed, *cells)
	if err != nil {
		return fmt.Errorf("open: %s: %w", fs.Arg(0), err)
	}
	b := o.Marshal()
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		return fmt.Errorf("open: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s: %d cells, %d bytes\n", *out, len(o.Cells), len(b))
	return nil
}
