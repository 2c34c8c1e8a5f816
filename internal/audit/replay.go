package audit

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/sampler"
)

// Mismatch is the first point where a receipt and its replay disagree.
type Mismatch struct {
	What     string // "signature", "model", "spec", "token", "stop", "logits", "trace", ...
	Position int    // -1 when not tied to a position
	Layer    int    // -1 when not known
	Detail   string
}

func (m *Mismatch) Error() string {
	s := "receipt rejected: " + m.What
	if m.Position >= 0 {
		s += fmt.Sprintf(" at position %d", m.Position)
	}
	if m.Layer >= 0 {
		s += fmt.Sprintf(" layer %d", m.Layer)
	}
	if m.Detail != "" {
		s += ": " + m.Detail
	}
	return s
}

func mismatch(what string, pos int, format string, args ...any) *Mismatch {
	return &Mismatch{What: what, Position: pos, Layer: -1, Detail: fmt.Sprintf(format, args...)}
}

// CheckHeader checks what needs no computation: the signature, the model
// id, that the engine implements the receipt's spec version, token ranges
// and the stopping rule. vocab comes from the verifier's model, modelID is
// its id under the receipt's spec (modelid.OfSpec).
//
// No check reads the context length the verifier's model file states: it
// is not part of the model id (two files of one model may state different
// lengths, as stories260K.bin and its GGUF conversion do), and validators
// holding either must agree on every receipt, whose openings they check
// inside the block. A receipt's positions are bounded by
// engine.MaxPositions alone; the verifier computes every position a
// receipt spans.
func CheckHeader(r *receipt.Receipt, modelID merkle.Hash, vocab int) error {
	if err := r.Verify(); err != nil {
		return &Mismatch{What: "signature", Position: -1, Layer: -1, Detail: err.Error()}
	}
	// The spec first: it selects the model's id (modelid.OfSpec).
	if _, err := engine.KVTypeOf(r.Spec); err != nil {
		return mismatch("spec", -1, "%v", err)
	}
	if r.Model != modelID {
		return mismatch("model", -1, "receipt names model %s, the given model is %s", r.Model, modelID)
	}
	if mm := checkStatement(r, vocab); mm != nil {
		return mm
	}
	return nil
}

// checkStatement checks what a receipt states, computing nothing: a
// non-empty output, every token below vocab, the sampling parameters, the
// steps and the stopping rule. A receipt that fails it is no run of the
// model under its own parameters, whatever its trace: its audits fail
// (CheckHeader) and its disputes are forfeited by the worker
// (DisputeSetup), for a trace that replays exactly cannot be disputed.
func checkStatement(r *receipt.Receipt, vocab int) *Mismatch {
	if len(r.Output) == 0 {
		return mismatch("output", -1, "empty output")
	}
	for i, t := range r.Prompt {
		if t < 0 || t >= vocab {
			return mismatch("token", i, "prompt token %d outside the vocabulary of %d", t, vocab)
		}
	}
	P := len(r.Prompt)
	for j, t := range r.Output {
		if t < 0 || t >= vocab {
			return mismatch("token", P+j, "output token %d outside the vocabulary of %d", t, vocab)
		}
	}
	if err := SamplerParams(r).Validate(); err != nil {
		return mismatch("sampling", -1, "%v", err)
	}
	s := r.Sampling
	if s.Steps > engine.MaxPositions {
		return mismatch("steps", -1, "receipt allows %d positions, more than the %d an engine holds", s.Steps, engine.MaxPositions)
	}
	isStop := func(t int) bool {
		for _, x := range s.Stop {
			if t == x {
				return true
			}
		}
		return false
	}
	maxOut := s.Steps - P + 1
	for j, t := range r.Output[:len(r.Output)-1] {
		if isStop(t) {
			return mismatch("stop", P+j, "stop token %d is not the last output token", t)
		}
	}
	if len(r.Output) > maxOut {
		return mismatch("stop", P+maxOut, "output has %d tokens, %d steps allow %d", len(r.Output), s.Steps, maxOut)
	}
	if last := r.Output[len(r.Output)-1]; !isStop(last) && len(r.Output) != maxOut {
		return mismatch("stop", P+len(r.Output), "output ends after %d tokens without a stop token; %d steps give %d", len(r.Output), s.Steps, maxOut)
	}
	return nil
}

// Replay re-runs a receipt as one teacher-forced prefill of the prompt and
// the output, and checks every sampling decision and both roots. It
// returns nil when everything agrees and a *Mismatch naming the first
// disagreement otherwise (other errors for failures of the replay itself).
//
// Work is spread over e.Threads() goroutines: the trace leaves are hashed
// beside the forward pass, each sampling worker hashes the logit vectors
// of the positions it re-samples, and the trace tree is built while they
// run.
func Replay(ctx context.Context, e *engine.Engine, r *receipt.Receipt, modelID merkle.Hash) error {
	m := e.Model()
	if err := CheckHeader(r, modelID, m.Config.Vocab); err != nil {
		return err
	}
	if r.Spec != e.Spec() {
		return mismatch("spec", -1, "receipt was made under %q, the replaying engine implements %q", r.Spec, e.Spec())
	}
	threads := e.Threads()
	n := len(r.Output)
	// Each chunk's logit vectors are re-sampled and hashed as the pass
	// computes them, then dropped: a replay holds replayChunk of them, not
	// one per output token (a long receipt's would be gigabytes).
	var leaves []merkle.Hash
	rec, err := forward(ctx, e, r, false, threads, nil, func(rec *Recorder, pos int, logits [][]float32) error {
		if leaves == nil {
			leaves = rec.logitLeaves(n)
		}
		j := pos - (len(r.Prompt) - 1)
		return sampleAndHash(ctx, r, j, logits, threads, leaves[j:j+len(logits)])
	})
	if err != nil {
		return err
	}
	t, err := rec.traceTree(n)
	if err != nil {
		return err
	}
	tr := t.Root()
	lt, err := rec.logitsTree(n)
	if err != nil {
		return err
	}
	if lr := lt.Root(); lr != r.LogitsRoot {
		return mismatch("logits", -1, "the logit vectors hash to %s, the receipt commits to %s", lr, r.LogitsRoot)
	}
	if tr != r.TraceRoot {
		return mismatch("trace", -1, "the trace hashes to %s, the receipt commits to %s", tr, r.TraceRoot)
	}
	return nil
}

// prefill runs prompt+output[:-1] as one batch, recording the trace and
// the logit vectors (keep: with every leaf's data, for openings). The
// logits are indexed by position, nil before the last prompt position.
func prefill(ctx context.Context, e *engine.Engine, r *receipt.Receipt, keep bool) (*Recorder, [][]float32, error) {
	return prefillKeeping(ctx, e, r, keep, nil)
}

// prefillKeeping is prefill keeping, when keep is set and only is not
// nil, the data of the leaves in only alone.
func prefillKeeping(ctx context.Context, e *engine.Engine, r *receipt.Receipt, keep bool, only map[leafKey]bool) (*Recorder, [][]float32, error) {
	var logits [][]float32 // indexed by position; nil before the last prompt position
	rec, err := forward(ctx, e, r, keep, e.Threads(), only, func(_ *Recorder, pos int, l [][]float32) error {
		if logits == nil {
			logits = make([][]float32, pos, len(r.Prompt)+len(r.Output)-1)
		}
		logits = append(logits, l...)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	rec.hashLogits(logits, e.Threads())
	return rec, logits, nil
}

// replayChunk is how many positions one forward pass of a replay
// computes; the engine gives the same bits however a sequence's positions
// are split into passes.
var replayChunk = 256 // a variable for tests

// forward is prefill without the logit leaves: the positions go through
// the engine replayChunk at a time, and each pass's logit vectors (from
// the last prompt position on) go to each, with the position of the first,
// before the next pass; an error from each ends the replay. Unless keeping
// the trace data, trace leaves are hashed on threads goroutines beside the
// passes. ctx is checked before every pass: a long receipt's whole pass
// takes minutes, which a worker or verifier shutting down must not wait
// for; a cancelled forward stops within one pass and returns ctx's error,
// wrapped.
func forward(ctx context.Context, e *engine.Engine, r *receipt.Receipt, keep bool, threads int, only map[leafKey]bool, each func(rec *Recorder, pos int, logits [][]float32) error) (*Recorder, error) {
	m := e.Model()
	if len(r.Prompt) == 0 || len(r.Output) == 0 {
		return nil, mismatch("tokens", -1, "a receipt needs a prompt and an output")
	}
	tokens := append(append([]int(nil), r.Prompt...), r.Output[:len(r.Output)-1]...)
	if len(tokens) > engine.MaxPositions {
		return nil, mismatch("steps", -1, "%d positions, more than the %d an engine holds", len(tokens), engine.MaxPositions)
	}
	seq, err := e.NewSequence(len(tokens))
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	defer seq.Release() // the engine's next replay reuses the cache
	rec := NewRecorder(m.Config, r.Prompt)
	if keep {
		rec.got = make(map[leafKey][]byte)
		rec.only = only
	} else {
		rec.hashAsync(len(tokens), threads)
	}
	defer rec.wait()
	// Only the positions from the last prompt token on have logits that
	// a receipt commits to; the classifier is skipped before them.
	first := len(r.Prompt) - 1
	for lo := 0; lo < len(tokens); lo += replayChunk {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("replay: stopped before position %d of %d: %w", lo, len(tokens), err)
		}
		hi := min(lo+replayChunk, len(tokens))
		it := &engine.Item{Seq: seq, Tokens: tokens[lo:hi], Logits: engine.LogitsNone, Trace: rec}
		if hi > first {
			it.Logits, it.LogitsFrom = engine.LogitsAll, max(first-lo, 0)
		}
		if err := e.Forward(it); err != nil {
			return nil, fmt.Errorf("replay: %w", err)
		}
		if it.Logits != engine.LogitsAll {
			continue
		}
		from := max(first, lo)
		if len(it.Out) != hi-from {
			return nil, errors.New("replay: engine returned too few logit vectors")
		}
		if err := each(rec, from, it.Out); err != nil {
			return nil, err
		}
	}
	rec.wait()
	return rec, nil
}

// checkSampling re-samples every output token, spreading positions over
// threads (each decision is independent), and reports the first position
// whose token differs; logits are indexed by position.
func checkSampling(ctx context.Context, r *receipt.Receipt, logits [][]float32, threads int) error {
	P := len(r.Prompt)
	if len(logits) < P+len(r.Output)-1 {
		return errors.New("replay: logit vectors do not match the receipt")
	}
	return sampleAndHash(ctx, r, 0, logits[P-1:P+len(r.Output)-1], threads, nil)
}

// sampleAndHash re-samples output tokens j0, j0+1, ... from logits (the
// vector each is sampled from: logits[i] for output token j0+i), spreading
// them over threads, and reports the first whose token differs; when
// leaves is not nil it also hashes logits[i] into leaves[i], each worker
// those of the (up to 16) positions it re-samples together.
func sampleAndHash(ctx context.Context, r *receipt.Receipt, j0 int, logits [][]float32, threads int, leaves []merkle.Hash) error {
	P := len(r.Prompt)
	params := SamplerParams(r)
	n := len(logits)
	if j0 < 0 || j0+n > len(r.Output) || (leaves != nil && len(leaves) != n) {
		return errors.New("replay: logit vectors do not match the receipt")
	}
	got := make([]int, n)
	var cancelled atomic.Bool
	parallel(n, hashChunk, threads, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if cancelled.Load() {
				return
			}
			if ctx.Err() != nil {
				cancelled.Store(true)
				return
			}
			got[i] = sampler.Sample(logits[i], params, P+j0+i)
		}
		if leaves != nil {
			leafHashesF32(leaves[lo:hi], logits[lo:hi])
		}
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, t := range got {
		if want := r.Output[j0+i]; t != want {
			return mismatch("token", P+j0+i, "the model samples token %d, the receipt says %d", t, want)
		}
	}
	return nil
}
