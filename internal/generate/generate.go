package generate

import (
	"context"
	"errors"
	"fmt"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/sampler"
)

// Request describes one generation.
type Request struct {
	// Prompt holds the prompt token ids, BOS included when wanted. It must
	// not be empty.
	Prompt []int
	// Steps is the total number of positions fed, prompt included, as
	// llama2.c's -n: positions 0..Steps-1 are fed, and the token chosen
	// after the last of them is emitted too, so at most
	// Steps-len(Prompt)+1 tokens are generated. It is capped by the
	// model's context length.
	Steps   int
	Sampler sampler.Params
	// StopTokens end the generation when sampled (the token is kept in
	// the output). llama2.c stops on BOS (1).
	StopTokens []int
	// TokenByToken feeds the prompt one position at a time instead of in
	// one prefill pass; the results are identical, only slower.
	TokenByToken bool
	// OnLogits, if set, sees every logit vector computed, by position. The
	// slice is only valid during the call.
	OnLogits func(pos int, logits []float32) error
	// OutputLogitsOnly limits the logits computed (and passed to OnLogits)
	// to those output tokens are sampled from: positions len(Prompt)-1 on.
	// The classifier is skipped at the other prompt positions, which for a
	// long prompt is most of a prefill's classifier work. Without OnLogits
	// they are always skipped.
	OutputLogitsOnly bool
	// OnToken, if set, sees each generated token as it is chosen.
	OnToken func(pos, token int) error
	// Trace, if set, observes the forward passes.
	Trace engine.Tracer
	// Account is the caller's account, for a scheduler (generate.Run
	// ignores it): a request takes cached prefixes only from generations
	// of the same account, so that callers of one cannot learn from their
	// time to first token what those of another sent, and the requests
	// waiting for room are admitted taking turns between accounts.
	Account string
}

// Result is the outcome of a generation.
type Result struct {
	Output  []int // generated tokens, in order
	Stopped bool  // ended on a stop token
	// CachedPrompt is the prompt tokens taken from a scheduler's prefix
	// cache instead of computed (generate.Run computes them all).
	CachedPrompt int
	// PromptComputed is the prompt positions a scheduler fed through the
	// engine for the request (neither CachedPrompt nor positions fed again
	// after a preemption), counted as they are handed to a step: set
	// whatever the outcome, so that the work of a request abandoned
	// before its first token is known (generate.Run leaves it 0).
	PromptComputed int
}

// ErrPromptTooLong is returned when the prompt does not fit in the context.
var ErrPromptTooLong = errors.New("prompt too long")

// Run performs the generation described by req on e.
func Run(ctx context.Context, e *engine.Engine, req Request) (Result, error) {
	var res Result
	if len(req.Prompt) == 0 {
		return res, errors.New("generate: empty prompt")
	}
	if err := req.Sampler.Validate(); err != nil {
		return res, fmt.Errorf("generate: %w", err)
	}
	ctxLen := e.Model().Config.ContextLen
	steps := req.Steps
	if steps <= 0 || steps > ctxLen {
		steps = ctxLen
	}
	if len(req.Prompt) > steps {
		if len(req.Prompt) > ctxLen {
			return res, fmt.Errorf("generate: %w: %d tokens, the context length is %d", ErrPromptTooLong, len(req.Prompt), ctxLen)
		}
		return res, fmt.Errorf("generate: %w: %d tokens, more than the %d steps asked for", ErrPromptTooLong, len(req.Prompt), steps)
	}
	seq, err := e.NewSequence(steps)
	if err != nil {
		return res, fmt.Errorf("generate: %w", err)
	}
	defer seq.Release() // the engine's next sequence reuses the cache
	report := func(it *engine.Item) error {
		if req.OnLogits == nil {
			return nil
		}
		for i, l := range it.Out {
			pos := seq.Pos - len(it.Out) + i
			if err := req.OnLogits(pos, l); err != nil {
				return err
			}
		}
		return nil
	}
	// Prefill: every prompt position, with every logit vector someone
	// reads (from the first position reported on).
	first := 0
	if req.OnLogits == nil || req.OutputLogitsOnly {
		first = len(req.Prompt) - 1
	}
	var last []float32
	if req.TokenByToken {
		for i, t := range req.Prompt {
			mode := engine.LogitsAll
			if i < first {
				mode = engine.LogitsNone
			}
			it := &engine.Item{Seq: seq, Tokens: []int{t}, Logits: mode, Trace: req.Trace}
			if err := e.Forward(it); err != nil {
				return res, fmt.Errorf("generate: %w", err)
			}
			if err := report(it); err != nil {
				return res, err
			}
			if mode == engine.LogitsAll {
				last = it.Out[0]
			}
		}
	} else {
		it := &engine.Item{Seq: seq, Tokens: req.Prompt, Logits: engine.LogitsAll, LogitsFrom: first, Trace: req.Trace}
		if err := e.Forward(it); err != nil {
			return res, fmt.Errorf("generate: %w", err)
		}
		if err := report(it); err != nil {
			return res, err
		}
		last = it.Out[len(it.Out)-1]
	}
	// Decode: the token for position seq.Pos is chosen from the logits of
	// position seq.Pos-1. Positions 0..steps-1 are fed; the token chosen
	// for position steps is the last one and is not fed.
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		next := sampler.Sample(last, req.Sampler, seq.Pos)
		res.Output = append(res.Output, next)
		if req.OnToken != nil {
			if err := req.OnToken(seq.Pos, next); err != nil {
				return res, err
			}
		}
		if isStop(next, req.StopTokens) {
			res.Stopped = true
			break
		}
		if seq.Pos >= steps {
			break
		}
		it := &engine.Item{Seq: seq, Tokens: []int{next}, Logits: engine.LogitsAll, Trace: req.Trace}
		if err := e.Forward(it); err != nil {
			return res, fmt.Errorf("generate: %w", err)
		}
		if err := report(it); err != nil {
			return res, err
		}
		last = it.Out[0]
	}
	return res, nil
}

func isStop(t int, stops []int) bool {
	for _, s := range stops {
		if t == s {
			return true
		}
	}
	return false
}
