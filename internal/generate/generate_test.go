package generate_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/generate"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/sampler"
	"github.com/verdictnet/verdict/internal/testutil"
)

func newEngine(t *testing.T) *engine.Engine {
	m, err := model.Load(testutil.Shared(t, "models/stories260K.gguf"), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	e, err := engine.New(m, engine.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func TestStepsSemantics(t *testing.T) {
	e := newEngine(t)
	prompt := []int{1, 403, 407, 261, 378} // BOS "Once upon a time"
	for _, steps := range []int{5, 6, 20} {
		var positions []int
		res, err := generate.Run(context.Background(), e, generate.Request{
			Prompt: prompt, Steps: steps,
			OnLogits: func(pos int, _ []float32) error { positions = append(positions, pos); return nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := steps - len(prompt) + 1; len(res.Output) != want {
			t.Errorf("steps %d: %d tokens generated, want %d", steps, len(res.Output), want)
		}
		if len(positions) != steps {
			t.Errorf("steps %d: %d logit vectors, want one per fed position", steps, len(positions))
		}
		for i, p := range positions {
			if p != i {
				t.Fatalf("steps %d: logits reported for positions %v", steps, positions)
			}
		}
	}
}

func TestStopToken(t *testing.T) {
	e := newEngine(t)
	prompt := []int{1, 403, 407, 261, 378}
	full, err := generate.Run(context.Background(), e, generate.Request{Prompt: prompt, Steps: 40})
	if err != nil {
		t.Fatal(err)
	}
	stop := full.Output[3]
	res, err := generate.Run(context.Background(), e, generate.Request{Prompt: prompt, Steps: 40, StopTokens: []int{stop}})
	if err != nil {
		t.Fatal(err)
	}
	first := 0
	for full.Output[first] != stop {
		first++
	}
	if !res.Stopped || len(res.Output) != first+1 || fmt.Sprint(res.Output) != fmt.Sprint(full.Output[:first+1]) {
		t.Fatalf("stop at token %d: got %v (stopped %v), want prefix %v", stop, res.Output, res.Stopped, full.Output[:first+1])
	}
}

func TestErrors(t *testing.T) {
	e := newEngine(t)
	ctxLen := e.Model().Config.ContextLen
	long := make([]int, ctxLen+1)
	for i := range long {
		long[i] = 1
	}
	cases := []struct {
		name string
		req  generate.Request
	}{
		{"empty prompt", generate.Request{}},
		{"prompt over context", generate.Request{Prompt: long}},
		{"prompt over steps", generate.Request{Prompt: []int{1, 2, 3}, Steps: 2}},
		{"bad token", generate.Request{Prompt: []int{1, 99999}, Steps: 4}},
		{"bad sampler", generate.Request{Prompt: []int{1}, Steps: 4, Sampler: sampler.Params{TopP: 3}}},
	}
	for _, c := range cases {
		if _, err := generate.Run(context.Background(), e, c.req); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	if _, err := generate.Run(context.Background(), e, generate.Request{Prompt: long}); !errors.Is(err, generate.ErrPromptTooLong) {
		t.Errorf("over-long prompt: %v, want ErrPromptTooLong", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := generate.Run(ctx, e, generate.Request{Prompt: []int{1}, Steps: 10}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

// TestOutputLogitsOnly: limiting logits to the positions output tokens are
// sampled from reports exactly those positions, with the bits of a full
// run, and the same output, in one prefill and token by token.
func TestOutputLogitsOnly(t *testing.T) {
	e := newEngine(t)
	prompt := []int{1, 403, 407, 261, 378}
	params := sampler.Params{Temperature: 0.9, Seed: 3}
	all := map[int][]float32{}
	full, err := generate.Run(context.Background(), e, generate.Request{Prompt: prompt, Steps: 24, Sampler: params,
		OnLogits: func(pos int, l []float32) error { all[pos] = append([]float32(nil), l...); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	for _, byToken := range []bool{false, true} {
		var positions []int
		res, err := generate.Run(context.Background(), e, generate.Request{Prompt: prompt, Steps: 24, Sampler: params,
			TokenByToken: byToken, OutputLogitsOnly: true,
			OnLogits: func(pos int, l []float32) error {
				positions = append(positions, pos)
				for i := range l {
					if l[i] != all[pos][i] {
						return fmt.Errorf("logits of position %d differ", pos)
					}
				}
				return nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(res.Output) != fmt.Sprint(full.Output) {
			t.Fatalf("token by token %v: output %v, want %v", byToken, res.Output, full.Output)
		}
		if len(positions) != len(res.Output) || positions[0] != len(prompt)-1 {
			t.Fatalf("token by token %v: logits for positions %v, want %d..", byToken, positions, len(prompt)-1)
		}
	}
}
