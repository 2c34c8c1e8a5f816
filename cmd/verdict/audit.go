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
	register(&command{Name: "audit", Summary: "check a worker's openings of challenged cells", Run: runAudit})
}

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("audit", stderr)
	modelPath := fs.String("model", "", "model file the receipt names")
	tok := fs.String("tokenizer", "", "tokenizer file (llama2.c checkpoints)")
	seed := fs.Uint64("challenge", 0, "challenge seed")
	cells := fs.Int("cells", 16, "number of cells the challenge selects")
	if err := parseFlags(fs, reorderFlags(args)); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return errors.New("audit: usage: verdict audit RECEIPT OPENINGS --model PATH --challenge SEED --cells K")
	}
	if *cells < 1 {
		return fmt.Errorf("audit: --cells %d: want at least 1", *cells)
	}
	r, err := readReceipt(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	st, err := os.Stat(fs.Arg(1))
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if st.Size() > audit.MaxOpenings {
		return fmt.Errorf("audit: %s: %d bytes is too large", fs.Arg(1), st.Size())
	}
	b, err := os.ReadFile(fs.Arg(1))
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	o, err := audit.ParseOpenings(b)
	if err != nil {
		return fmt.Errorf("audit: %s: %w", fs.Arg(1), err)
	}
	pm, err := openProofModel(*modelPath, *tok, r.Spec, 1, false)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer pm.Close()
	if err := audit.Check(pm.m, pm.id, r, *seed, *cells, o); err != nil {
		return fmt.Errorf("audit: %s: %w", fs.Arg(0), err)
	}
	fmt.Fprintf(stdout, "ok: %d cells of receipt %x recomputed and proven\n", len(o.Cells), o.Receipt)
	return nil
}
