package audit

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"

	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/sampler"
)

// CommitmentSize is the length of a challenger's dispute commitment: the
// 32-byte root of its own trace tree of the receipt's tokens.
const CommitmentSize = 32

// DisputeSetup builds the bisection game over a published receipt (its
// canonical bytes) between the receipt's worker, party A, whose root is
// the receipt's trace root, and a challenger, party B, whose commitment is
// the root of its own trace of the same tokens in the same layout
// (docs/protocol.md, "Disputes"): the number of leaves, both roots, and
// the referee that recomputes the one disputed leaf with the
// deterministic engine on m, whose model id must be the receipt's.
// Config.Timeout is left for the caller to set.
//
// It checks only what the referee needs to run safely: the model id and
// spec version, and a commitment of 32 bytes that differs from the
// worker's root. A receipt no run of m can produce (Impossible: more
// positions than an engine holds, a token outside the vocabulary, no
// prompt or output, sampling parameters out of range, an output that
// breaks the stopping rule) is decided at once against the worker
// (Config.Forfeit, with a nil referee), whatever the commitment. The
// receipt's signature is the caller's to check.
func DisputeSetup(m *model.Model, modelID merkle.Hash, receiptBytes, commitment []byte) (dispute.Config, *Referee, error) {
	r, err := receipt.Parse(receiptBytes)
	if err != nil {
		return dispute.Config{}, nil, fmt.Errorf("dispute setup: %w", err)
	}
	if r.Model != modelID {
		return dispute.Config{}, nil, fmt.Errorf("dispute setup: receipt names model %s, the referee holds %s", r.Model, modelID)
	}
	if _, err := engine.KVTypeOf(r.Spec); err != nil {
		return dispute.Config{}, nil, fmt.Errorf("dispute setup: receipt was made under %q: %w", r.Spec, err)
	}
	sampling := len(commitment) > CommitmentSize && bytes.HasPrefix(commitment, []byte(samplingTag))
	if len(commitment) != CommitmentSize && !sampling {
		return dispute.Config{}, nil, fmt.Errorf("dispute setup: commitment of %d bytes, want the %d-byte root of the challenger's trace or a sampling fault", len(commitment), CommitmentSize)
	}
	var root merkle.Hash
	copy(root[:], commitment)
	if err := Impossible(m, r); err != nil {
		// The worker signed a receipt no run of the model can produce:
		// it loses the dispute at once (the ledger accepted the receipt
		// by its signature; no receipt it accepts escapes a dispute),
		// whatever the commitment, even the receipt's own trace root: the
		// trace of an output that breaks the stopping rule may well
		// replay exactly, and a challenger whose trace agrees has no
		// other root to commit to.
		return dispute.Config{Forfeit: [2]dispute.Loss{{Fault: dispute.FaultImpossibleReceipt, Why: fmt.Sprintf("signed a receipt no run of the model can produce: %v", err)}}}, nil, nil
	}
	if sampling {
		why, err := samplingFault(m, r, commitment[len(samplingTag):])
		if err != nil {
			return dispute.Config{}, nil, fmt.Errorf("dispute setup: %w", err)
		}
		return dispute.Config{Forfeit: [2]dispute.Loss{{Fault: dispute.FaultImpossibleReceipt, Why: "signed a receipt no run of the model can produce: " + why}}}, nil, nil
	}
	if root == r.TraceRoot {
		return dispute.Config{}, nil, fmt.Errorf("dispute setup: the commitment is the receipt's own trace root %s; nothing to dispute", root)
	}
	ref, err := NewReferee(m, r)
	if err != nil {
		return dispute.Config{}, nil, fmt.Errorf("dispute setup: %w", err)
	}
	return dispute.Config{Cells: ref.Cells(), Roots: [2]merkle.Hash{r.TraceRoot, root}}, ref, nil
}

// Impossible reports why r cannot be a run of m, computing nothing: more
// positions than an engine holds (never the context length m's file
// states, which its model id does not commit: CheckHeader), no prompt or
// no output, a token outside its vocabulary, sampling parameters the
// sampler refuses, or an output that breaks the stopping rule (more tokens
// than its steps allow, a stop token before the last, too few without
// one): what CheckHeader checks beyond the signature, the spec and the
// model id. A worker that signed such a receipt forfeits its disputes
// (DisputeSetup); a challenger may open one whatever its own trace.
func Impossible(m *model.Model, r *receipt.Receipt) error {
	if len(r.Output) > 0 {
		if n := len(r.Prompt) + len(r.Output) - 1; n > engine.MaxPositions {
			return fmt.Errorf("%d positions, more than the %d an engine holds", n, engine.MaxPositions)
		}
	}
	if len(r.Prompt) < 1 || len(r.Output) < 1 {
		return fmt.Errorf("a receipt needs a prompt and an output")
	}
	if mm := checkStatement(r, m.Config.Vocab); mm != nil {
		return mm
	}
	return nil
}

// WithLeaf returns a copy of t whose trace leaf i holds value instead (the
// tree is rebuilt): a forged trace for fault-injection tests, whose root
// is no honest run's.
func (t *Trace) WithLeaf(i int, value []byte) (*Trace, error) {
	if i < 0 || i >= t.lay.Leaves() {
		return nil, fmt.Errorf("leaf %d out of range", i)
	}
	kind, l, h, p := t.lay.Leaf(i)
	rec := *t.rec
	rec.got = maps.Clone(t.rec.got)
	rec.got[leafKey{kind: kind, p: p, l: l, h: h}] = append([]byte(nil), value...)
	hs := make([]merkle.Hash, t.trace.Len())
	for j := range hs {
		hs[j] = t.trace.Leaf(j)
	}
	hs[i] = merkle.LeafHash(value)
	out := *t
	out.rec, out.trace = &rec, merkle.NewTree(hs)
	return &out, nil
}

// MaxAnswerBytes bounds the size of the largest answer a party may have
// to send in a dispute over this referee's receipt: the canonical JSON of
// a leaf_values message opening the inputs of one leaf, or one part of
// them (Parts), with their multi-proof. The largest are those of an
// attention leaf (a state leaf and the key/value leaves of one head at
// every position up to the leaf's, in parts of at most the part bound
// when they take more) or of a state leaf (a state and the attention
// leaves of every head). Reading in parts keeps the bound near
// DisputePartBytes (base64-encoded) however long the receipt. A ledger
// that carries answers in transactions refuses disputes whose answers
// could not fit.
func (r *Referee) MaxAnswerBytes() int { return MaxAnswerBytes(r.lay, r.parts()) }

// MaxAnswerBytes is Referee.MaxAnswerBytes for a receipt of layout lay and
// answers of at most partBytes bytes of values (DisputePartBytes on a
// ledger).
func MaxAnswerBytes(lay Layout, partBytes int) int {
	T := lay.Positions()
	b64 := func(raw int) int { return 4*((raw+2)/3) + 3 } // quoted, with a comma
	state := b64(4 * lay.Dim)
	kvLeaves := T // key/value leaves in one answer
	if 4*lay.Dim+T*8*lay.HeadDim > partBytes {
		kvLeaves = min(T, partSize(lay, partBytes)) // a part (the first has the state too)
	}
	attnIns := state + kvLeaves*b64(4*2*lay.HeadDim)    // X(l, p) and KV(l, h, t) of a part
	stateIns := state + lay.KVHeads*b64(4*lay.AWidth()) // X(l-1, p) and A(l-1, h, p) for every h
	n := max(1+kvLeaves, 1+lay.KVHeads)                 // leaves read
	size := 256                                         // kind, from, round, start, end, brackets
	size += n * (len(fmt.Sprint(lay.Leaves())) + 1)     // leaf indices
	size += max(attnIns, stateIns)                      // values
	// proof: a multi-proof needs at most one hash per level for a lone
	// leaf and two for a contiguous range (the key/value leaves)
	size += max(3, 1+lay.KVHeads) * (bitsLen(lay.Leaves()) + 1) * (2*merkle.HashSize + 3)
	return size
}

func bitsLen(n int) int {
	b := 0
	for ; n > 0; n >>= 1 {
		b++
	}
	return b
}

// samplingTag starts a sampling-fault commitment (docs/protocol.md 8.2).
const samplingTag = "verdict/sampling-fault/v1\x00"

// samplingFault checks a sampling-fault commitment's body against r: j
// (8 bytes, little-endian) names output token j, x is the final state
// X(L, p) at its position p = len(prompt) - 1 + j (4*dim bytes), then the
// inclusion proof of that leaf in the worker's own trace tree (the rest,
// 32 bytes a hash). It returns why the worker forfeits when x, proven
// against the receipt's trace root, samples another token than output[j],
// and an error when the commitment is malformed, its proof fails, or the
// token is the one sampled (no fault).
func samplingFault(m *model.Model, r *receipt.Receipt, b []byte) (string, error) {
	lay := NewLayout(m.Config, len(r.Prompt), len(r.Output))
	if err := lay.check(); err != nil {
		return "", err
	}
	D := lay.Dim
	if len(b) < 8+4*D || (len(b)-8-4*D)%merkle.HashSize != 0 || (len(b)-8-4*D)/merkle.HashSize > merkle.MaxProofLen {
		return "", fmt.Errorf("sampling fault of %d bytes: want 8, %d for the state and whole hashes of a proof", len(b), 4*D)
	}
	j64 := binary.LittleEndian.Uint64(b)
	if j64 >= uint64(len(r.Output)) {
		return "", fmt.Errorf("sampling fault names output token %d of %d", j64, len(r.Output))
	}
	j := int(j64)
	xb := b[8 : 8+4*D]
	proof := make([]merkle.Hash, (len(b)-8-4*D)/merkle.HashSize)
	for i := range proof {
		copy(proof[i][:], b[8+4*D+i*merkle.HashSize:])
	}
	p := len(r.Prompt) - 1 + j
	leaf := lay.XLeaf(lay.Layers, p)
	if err := merkle.Verify(r.TraceRoot, merkle.LeafHash(xb), uint64(leaf), uint64(lay.Leaves()), proof); err != nil {
		return "", fmt.Errorf("sampling fault: the final state at position %d is not the worker's: %w", p, err)
	}
	x, _ := floats(xb, D)
	c, err := newCalc(m, r.Spec, 1)
	if err != nil {
		return "", err
	}
	defer c.close()
	lgs, err := c.e.LogitsRows([][]float32{x})
	if err != nil {
		return "", fmt.Errorf("sampling fault: %w", err)
	}
	if got := sampler.Sample(lgs[0], SamplerParams(r), p+1); got != r.Output[j] {
		return fmt.Sprintf("its own final state at position %d samples token %d, the receipt says %d", p, got, r.Output[j]), nil
	}
	return "", fmt.Errorf("sampling fault: the worker's final state at position %d samples the receipt's token %d", p, r.Output[j])
}

// FinalStates lists the trace leaves a sampling fault opens: the final
// state X(L, p) of every position an output token is sampled at, for
// RetraceLeaves (Trace.SamplingFault).
func FinalStates(m *model.Model, r *receipt.Receipt) []int {
	lay := NewLayout(m.Config, len(r.Prompt), len(r.Output))
	out := make([]int, len(r.Output))
	for j := range out {
		out[j] = lay.XLeaf(lay.Layers, len(r.Prompt)-1+j)
	}
	return out
}

// SamplingFault returns the sampling-fault commitment of the first output
// token of t's receipt that t's own final states do not sample, and an
// error when every token is the one sampled (or the states were not kept:
// RetraceLeaves with FinalStates). A challenger whose trace has the
// receipt's root opens a dispute with it (docs/protocol.md 8.2): the
// worker forfeits at the setup, since its own committed state samples
// another token.
func (t *Trace) SamplingFault(m *model.Model) ([]byte, error) {
	r, lay := t.r, t.lay
	c, err := newCalc(m, r.Spec, 1)
	if err != nil {
		return nil, err
	}
	defer c.close()
	params := SamplerParams(r)
	for j := range r.Output {
		p := len(r.Prompt) - 1 + j
		i := lay.XLeaf(lay.Layers, p)
		xb, err := t.LeafValue(i)
		if err != nil {
			return nil, err
		}
		x, ok := floats(xb, lay.Dim)
		if !ok {
			return nil, fmt.Errorf("final state at position %d has %d bytes", p, len(xb))
		}
		lgs, err := c.e.LogitsRows([][]float32{x})
		if err != nil {
			return nil, err
		}
		if sampler.Sample(lgs[0], params, p+1) == r.Output[j] {
			continue
		}
		proof, err := t.trace.Proof(i)
		if err != nil {
			return nil, err
		}
		b := binary.LittleEndian.AppendUint64([]byte(samplingTag), uint64(j))
		b = append(b, xb...)
		for _, h := range proof {
			b = append(b, h[:]...)
		}
		return b, nil
	}
	return nil, fmt.Errorf("every output token is the one sampled")
}
