package worker

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/verdictnet/verdict/internal/audit"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/sampler"
)

// A generation cut short (the caller's context cancelled, or its stream
// unwritable) still yields a signed, stored receipt for exactly the tokens
// generated: a prefix of the full generation, whose replay gives the same
// tokens. (Before, it returned only the error: the worker had computed the
// tokens for nothing, and nothing could be published or audited.)
func TestPartialReceiptReplays(t *testing.T) {
	w := testWorker(t)
	ctx := context.Background()
	base := textReq("Once upon a time", 60)
	base.Sampler = sampler.Params{Temperature: 0.8, Seed: 7}
	full, err := w.Generate(ctx, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	fr, err := receipt.Parse(full.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	if len(fr.Output) < 10 {
		t.Fatalf("the full generation has %d tokens, too few to cut", len(fr.Output))
	}
	hangUp := errors.New("client went away")
	for _, tc := range []struct {
		name  string
		after int // deltas seen before the cut
		how   string
	}{
		{"delta fails at 1", 1, "delta"},
		{"delta fails at 5", 5, "delta"},
		{"context cancelled at 3", 3, "cancel"},
		{"context cancelled at 8", 8, "cancel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			seen := 0
			_, err := w.Generate(cctx, base, func(d Delta) error {
				seen++
				if seen == tc.after {
					if tc.how == "delta" {
						return hangUp
					}
					cancel()
				}
				return nil
			})
			var pe *PartialError
			if !errors.As(err, &pe) {
				t.Fatalf("cut short: %v, want a PartialError", err)
			}
			want := hangUp
			if tc.how == "cancel" {
				want = context.Canceled
			}
			if !errors.Is(err, want) {
				t.Errorf("error %v does not wrap %v", err, want)
			}
			res := pe.Result
			r, err := receipt.Parse(res.Receipt)
			if err != nil {
				t.Fatal(err)
			}
			n := len(r.Output)
			if n == 0 || n >= len(fr.Output) || n != res.CompletionTokens || !slices.Equal(r.Output, fr.Output[:n]) {
				t.Errorf("partial output %v, want a proper prefix of %v", r.Output, fr.Output)
			}
			if r.Sampling.Steps != len(r.Prompt)+n-1 || res.RequestSteps != fr.Sampling.Steps || res.FinishReason != FinishCancelled {
				t.Errorf("steps %d for %d+%d tokens (requested %d, want %d), finish %q", r.Sampling.Steps, len(r.Prompt), n, res.RequestSteps, fr.Sampling.Steps, res.FinishReason)
			}
			if stored, err := w.Receipt(ctx, res.ReceiptID); err != nil || string(stored) != string(res.Receipt) {
				t.Errorf("stored receipt %q, %v", stored, err)
			}
			v, err := w.Verify(ctx, res.Receipt, true)
			if err != nil {
				t.Fatal(err)
			}
			if !v.Signature || !v.Replayed || !v.Match {
				t.Errorf("verification %+v", v)
			}
			// Audited, the worker's openings pass the ledger's check.
			o, err := w.Open(ctx, r, 0x5eed, 4)
			if err != nil {
				t.Fatal(err)
			}
			if err := audit.Check(w.Model(), w.ModelID(), r, 0x5eed, 4, o); err != nil {
				t.Errorf("openings of the partial receipt: %v", err)
			}
		})
	}
	// Cancelled before the first token: nothing generated, no receipt.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = w.Generate(cctx, base, nil)
	var pe *PartialError
	if err == nil || errors.As(err, &pe) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled before it started: %v", err)
	}
}
