package audit

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/sampler"
)

// TestRegenerateCancelled: a trace regeneration (Regenerate,
// RegenerateLeaves, Retrace, RetraceLeaves, and Open, which regenerates)
// whose context has ended runs no pass and returns the context's error,
// wrapped with where it stopped; one cancelled in the middle stops within
// one pass of the engine (replayChunk positions), not at the receipt's
// end; one whose context stays live gives the receipt's roots as before.
func TestRegenerateCancelled(t *testing.T) {
	f := binFixture(t)
	r := f.generateReceipt(t, storyPrompt, sampler.Params{Temperature: 0.8, Seed: 42}, 60)
	positions := len(r.Prompt) + len(r.Output) - 1
	defer func(c int) { replayChunk = c }(replayChunk)
	replayChunk = 4
	if positions < 8*replayChunk {
		t.Fatalf("a receipt of %d positions spans too few passes", positions)
	}

	done, cancel := context.WithCancel(context.Background())
	cancel()
	for name, regen := range map[string]func(context.Context) (*Trace, error){
		"Regenerate":       func(ctx context.Context) (*Trace, error) { return Regenerate(ctx, f.e, r) },
		"RegenerateLeaves": func(ctx context.Context) (*Trace, error) { return RegenerateLeaves(ctx, f.e, r, []int{0}) },
		"Retrace":          func(ctx context.Context) (*Trace, error) { return Retrace(ctx, f.e, r) },
		"RetraceLeaves":    func(ctx context.Context) (*Trace, error) { return RetraceLeaves(ctx, f.e, r, []int{}) },
	} {
		tr, err := regen(done)
		if !errors.Is(err, context.Canceled) || tr != nil {
			t.Errorf("%s, context cancelled: %v, %v; want context.Canceled and no trace", name, tr, err)
		} else if !strings.Contains(err.Error(), "stopped before position 0 ") {
			t.Errorf("%s, context cancelled: %q does not say where it stopped", name, err)
		}
		live, stop := context.WithCancel(context.Background())
		tr, err = regen(live)
		stop()
		if err != nil {
			t.Fatalf("%s, context live: %v", name, err)
		}
		if got := tr.Tree().Root(); got != r.TraceRoot {
			t.Errorf("%s, context live: trace root %s, the receipt's %s", name, got, r.TraceRoot)
		}
	}
	if _, err := Open(done, f.e, r, 1, 4); !errors.Is(err, context.Canceled) {
		t.Errorf("Open, context cancelled: %v, want context.Canceled", err)
	}

	// Cancelled during the second pass that has logits: the third is never
	// run.
	mid, cancelMid := context.WithCancel(context.Background())
	defer cancelMid()
	passes := 0
	_, err := forward(mid, f.e, r, true, f.e.Threads(), nil, func(_ *Recorder, pos int, logits [][]float32) error {
		if passes++; passes == 2 {
			cancelMid()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled between passes: %v, want context.Canceled", err)
	}
	if passes != 2 {
		t.Errorf("cancelled in the second pass with logits, %d such passes ran", passes)
	}
}
