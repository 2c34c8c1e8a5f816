package audit

import (
	"bytes"
	"context"
	"errors"
	"math/bits"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/sampler"
	"github.com/verdictnet/verdict/internal/synth"
)

// fullContextReceipt is a receipt of f's model that fills its whole
// context: a prompt of ContextLen-1 tokens and two output tokens, so that
// the trace has ContextLen positions.
func fullContextReceipt(t *testing.T, f *fixture, seed uint64) *receipt.Receipt {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 3))
	prompt := make([]int, f.m.Config.ContextLen-1)
	for i := range prompt {
		prompt[i] = 3 + rng.IntN(f.m.Config.Vocab-3)
	}
	r := f.generateReceipt(t, prompt, sampler.Params{Temperature: 0}, len(prompt)+2)
	if n := len(r.Prompt) + len(r.Output) - 1; n != f.m.Config.ContextLen {
		t.Fatalf("receipt of %d positions, want the context of %d", n, f.m.Config.ContextLen)
	}
	return r
}

// readInParts folds every part of every pass of leaf d's inputs (values
// from tr) through ref and returns the finished leaf.
func readInParts(t *testing.T, ref *Referee, tr *Trace, d int) ([]byte, int) {
	t.Helper()
	passes, size := ref.Parts(d)
	ins := ref.Inputs(d)
	if passes != AttentionPasses || size >= len(ins) {
		t.Fatalf("leaf %d: %d passes of %d inputs of %d", d, passes, size, len(ins))
	}
	var state []byte
	parts := 0
	for pass := 0; pass < passes; pass++ {
		for k := 0; k*size < len(ins); k++ {
			var vals [][]byte
			for _, i := range ins[k*size : min((k+1)*size, len(ins))] {
				v, err := tr.LeafValue(i)
				if err != nil {
					t.Fatal(err)
				}
				vals = append(vals, v)
			}
			var err error
			if state, err = ref.Fold(d, pass, k, vals, state); err != nil {
				t.Fatal(err)
			}
			parts++
		}
	}
	out, err := ref.Finish(d, state)
	if err != nil {
		t.Fatal(err)
	}
	return out, parts
}

// TestFoldMatchesRecompute: an attention leaf recomputed from its inputs
// read in parts (three passes) has the bits of the leaf recomputed at once
// and of the honest trace, for models with grouped queries, Q/K norms and
// a head size other than dim/heads, at every layer and head, at the last
// position of a receipt filling the whole context and at random positions,
// with random part sizes.
func TestFoldMatchesRecompute(t *testing.T) {
	for _, preset := range []string{"tiny-qwen3", "tiny-llama3"} {
		f := synthFixture(t, preset, "f32", 2)
		r := fullContextReceipt(t, f, 1)
		honest, err := Regenerate(context.Background(), f.e, r)
		if err != nil {
			t.Fatal(err)
		}
		lay := honest.lay
		T := lay.Positions()
		rng := rand.New(rand.NewPCG(2, 2))
		for l := 0; l < lay.Layers; l++ {
			for h := 0; h < lay.KVHeads; h++ {
				for _, p := range []int{T - 1, 1 + rng.IntN(T-1)} {
					d := lay.ALeaf(l, h, p)
					size := 2 + rng.IntN(min(p, 80))
					base, err := NewReferee(f.m, r)
					if err != nil {
						t.Fatal(err)
					}
					whole, err := base.Recompute(d, leafValues(t, honest, base.Inputs(d)))
					if err != nil {
						t.Fatal(err)
					}
					ref, _ := NewReferee(f.m, r)
					ref.WithPartBytes(4*lay.Dim + (size-1)*8*lay.HeadDim)
					got, parts := readInParts(t, ref, honest, d)
					want, _ := honest.LeafValue(d)
					if !bytes.Equal(got, want) || !bytes.Equal(whole, want) {
						t.Fatalf("%s: A(%d, %d, %d) read in parts of %d differs from the trace", preset, l, h, p, size)
					}
					if wantParts := AttentionPasses * ((p + 2 + size - 1) / size); parts != wantParts {
						t.Fatalf("%d parts, want %d", parts, wantParts)
					}
				}
			}
		}
	}
}

func leafValues(t *testing.T, tr *Trace, ins []int) [][]byte {
	t.Helper()
	vals := make([][]byte, len(ins))
	for i, l := range ins {
		v, err := tr.LeafValue(l)
		if err != nil {
			t.Fatal(err)
		}
		vals[i] = v
	}
	return vals
}

// TestFoldRejects: parts of the wrong size, out of order or with a bad
// state are referee errors, never panics.
func TestFoldRejects(t *testing.T) {
	f := synthFixture(t, "tiny-llama3", "f32", 1)
	r := f.generateReceipt(t, storyPrompt, sampler.Params{Temperature: 0}, 40)
	ref, err := NewReferee(f.m, r)
	if err != nil {
		t.Fatal(err)
	}
	lay := ref.lay
	ref.WithPartBytes(4*lay.Dim + 3*8*lay.HeadDim) // parts of 4 inputs
	d := lay.ALeaf(1, 1, lay.Positions()-1)
	x := make([]byte, 4*lay.Dim)
	kv := make([]byte, 8*lay.HeadDim)
	for _, c := range []struct {
		name       string
		pass, part int
		values     [][]byte
		state      []byte
	}{
		{"short part", 0, 0, [][]byte{x, kv}, nil},
		{"no state later", 1, 0, [][]byte{x, kv, kv, kv}, nil},
		{"bad state", 0, 1, [][]byte{kv, kv, kv, kv}, []byte{1, 2, 3}},
		{"pass out of range", 3, 0, [][]byte{x, kv, kv, kv}, nil},
		{"part out of range", 0, 1000, [][]byte{kv}, nil},
		{"short state leaf", 0, 0, [][]byte{x[:8], kv, kv, kv}, nil},
		{"short key/value", 0, 0, [][]byte{x, kv[:4], kv, kv}, nil},
	} {
		if _, err := ref.Fold(d, c.pass, c.part, c.values, c.state); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	if _, err := ref.Fold(lay.XLeaf(1, 3), 0, 0, [][]byte{x}, nil); err == nil {
		t.Error("a state leaf folded")
	}
	if _, err := ref.Finish(d, []byte{1}); err == nil {
		t.Error("finished from a bad state")
	}
}

// TestDisputeInPartsFullContext plays the bisection game over receipts
// that fill the whole context of small models of the new architectures,
// against liars that alter one attention leaf at the last position (whose
// inputs are the keys and values of every position) or at a random one,
// with answers limited to a few key/value leaves so that the referee reads
// the inputs in parts over many rounds: the liar always loses, the honest
// party never, every answer is within MaxAnswerBytes, and the referee
// finishes one leaf.
func TestDisputeInPartsFullContext(t *testing.T) {
	for _, preset := range []string{"tiny-qwen3", "tiny-llama3"} {
		f := synthFixture(t, preset, "f32", 2)
		r := fullContextReceipt(t, f, 5)
		honest, err := Regenerate(context.Background(), f.e, r)
		if err != nil {
			t.Fatal(err)
		}
		lay := honest.lay
		N, T := lay.Leaves(), lay.Positions()
		rng := rand.New(rand.NewPCG(7, 8))
		for i := 0; i < 4; i++ {
			p := T - 1
			if i%2 == 1 {
				p = rng.IntN(T)
			}
			d := lay.ALeaf(rng.IntN(lay.Layers), rng.IntN(lay.KVHeads), p)
			forged, err := honest.WithLeaf(d, flipBit(t, honest, d, rng))
			if err != nil {
				t.Fatal(err)
			}
			size := 16 + rng.IntN(48)
			partBytes := 4*lay.Dim + (size-1)*8*lay.HeadDim
			ref, err := NewReferee(f.m, r)
			if err != nil {
				t.Fatal(err)
			}
			ref.WithPartBytes(partBytes)
			honestParty := dispute.Party(i % 2)
			liarParty := 1 - honestParty
			var roots [2]merkle.Hash
			var resp [2]*dispute.Responder
			roots[honestParty], roots[liarParty] = honest.Tree().Root(), forged.Tree().Root()
			resp[honestParty] = &dispute.Responder{Party: honestParty, Tree: honest.Tree(), Value: honest.LeafValue}
			resp[liarParty] = &dispute.Responder{Party: liarParty, Tree: forged.Tree(), Value: forged.LeafValue}
			m, qs, err := dispute.New(dispute.Config{Cells: N, Roots: roots, Timeout: 5}, ref, 0)
			if err != nil {
				t.Fatal(err)
			}
			parts, largest := 0, 0
			for steps := 0; !m.Outcome().Done; steps++ {
				if steps > 1000 || len(qs) != 1 {
					t.Fatalf("game stuck (%d queries)", len(qs))
				}
				q := qs[0]
				qs = nil
				if m.InParts() {
					parts++
				}
				order := []dispute.Party{dispute.A, dispute.B}
				rng.Shuffle(2, func(a, b int) { order[a], order[b] = order[b], order[a] })
				for _, pt := range order {
					if len(qs) > 0 {
						break // a part was answered: the next one is asked
					}
					a, err := resp[pt].Answer(q)
					if err != nil {
						t.Fatal(err)
					}
					enc, err := a.Marshal()
					if err != nil {
						t.Fatal(err)
					}
					largest = max(largest, len(enc))
					out, err := m.Step(a)
					if err != nil && !errors.Is(err, dispute.ErrIgnored) {
						t.Fatal(err)
					}
					qs = append(qs, out...)
				}
			}
			out := m.Outcome()
			if out.Err != nil || out.Lost[honestParty] || !out.Lost[liarParty] || out.Cell != d {
				t.Fatalf("%s leaf %d: outcome %+v", preset, d, out)
			}
			wantParts := AttentionPasses * ((p + 2 + size - 1) / size)
			if p+1 < size {
				wantParts = 0
			}
			if parts != wantParts || m.Rounds() > bits.Len(uint(N-1))+1+wantParts {
				t.Fatalf("%d parts (want %d), %d rounds", parts, wantParts, m.Rounds())
			}
			if ref.Calls != 1 || largest > ref.MaxAnswerBytes() {
				t.Fatalf("referee finished %d leaves; largest answer %d bytes, bound %d", ref.Calls, largest, ref.MaxAnswerBytes())
			}
			t.Logf("%s: A(p=%d) of %d positions read in %d parts of %d inputs; %d rounds; largest answer %d bytes (bound %d)",
				preset, p, T, parts, size, m.Rounds(), largest, ref.MaxAnswerBytes())
		}
	}
}

func flipBit(t *testing.T, tr *Trace, d int, rng *rand.Rand) []byte {
	t.Helper()
	v, err := tr.LeafValue(d)
	if err != nil {
		t.Fatal(err)
	}
	v = append([]byte(nil), v...)
	v[rng.IntN(len(v))] ^= byte(1 + rng.IntN(255))
	return v
}

// TestMaxAnswerBytesWholeContexts: at the whole context of every model
// shape the project has (the real ones up to 131072 positions), one
// dispute answer is at most about DisputePartBytes base64-encoded, inside
// the ledger's 6 MiB transactions (docs/ledger.md).
func TestMaxAnswerBytesWholeContexts(t *testing.T) {
	const maxTx, txOverhead = 6 << 20, 1024 // ledger.MaxTxBytes, proofhooks' envelope
	for _, name := range synth.Presets() {
		p, err := synth.LookupPreset(name)
		if err != nil {
			t.Fatal(err)
		}
		hd := p.HeadDim
		if hd == 0 {
			hd = p.Dim / p.Heads
		}
		lay := Layout{Layers: p.Layers, Dim: p.Dim, KVHeads: p.KVHeads, HeadDim: hd, Heads: p.Heads, Prompt: p.ContextLen, Output: 1}
		n := MaxAnswerBytes(lay, DisputePartBytes)
		tx := 4*((n+2)/3) + txOverhead
		if tx > maxTx {
			t.Errorf("%s at %d positions: an answer of %d bytes takes a transaction of %d", name, lay.Positions(), n, tx)
		}
		if n > 4*DisputePartBytes/3+1<<20 {
			t.Errorf("%s: bound %d is far above the part bound", name, n)
		}
		t.Logf("%-14s %7d positions: largest answer %8d bytes, transaction %8d", name, lay.Positions(), n, tx)
	}
}

// TestRegenerateLeaves: a trace regenerated keeping the inputs of one
// disputed leaf has the whole tree and exactly those values.
func TestRegenerateLeaves(t *testing.T) {
	f := synthFixture(t, "tiny-qwen3", "f32", 2)
	r := fullContextReceipt(t, f, 9)
	whole, err := Regenerate(context.Background(), f.e, r)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := NewReferee(f.m, r)
	if err != nil {
		t.Fatal(err)
	}
	lay := whole.lay
	d := lay.ALeaf(2, 1, lay.Positions()-1)
	ins := ref.Inputs(d)
	part, err := RegenerateLeaves(context.Background(), f.e, r, ins)
	if err != nil {
		t.Fatal(err)
	}
	if part.Tree().Root() != whole.Tree().Root() || len(part.rec.got) != len(ins) {
		t.Fatalf("root %s (want %s), %d values kept for %d inputs", part.Tree().Root(), whole.Tree().Root(), len(part.rec.got), len(ins))
	}
	for _, i := range ins {
		a, err := part.LeafValue(i)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := whole.LeafValue(i); !bytes.Equal(a, b) {
			t.Fatalf("leaf %d differs", i)
		}
	}
	if _, err := part.LeafValue(d); err == nil {
		t.Fatal("a leaf not asked for was kept")
	}
	if _, err := RegenerateLeaves(context.Background(), f.e, r, []int{lay.Leaves()}); err == nil {
		t.Fatal("kept a leaf out of range")
	}
}

// BenchmarkFoldPart measures the referee's work on one part of an
// attention leaf's inputs (a pass-2 part, the costliest: scores,
// exponentials and the weighted sum) on tiny256-qwen3 (head size 128, two
// query heads per key/value head), in parts of 256 key/value leaves, and
// reports it per key/value leaf.
func BenchmarkFoldPart(b *testing.B) {
	m, err := synthModel(b, "tiny256-qwen3")
	if err != nil {
		b.Fatal(err)
	}
	f := newFixture(b, m, 1)
	rng := rand.New(rand.NewPCG(1, 1))
	prompt := make([]int, m.Config.ContextLen-1)
	for i := range prompt {
		prompt[i] = 3 + rng.IntN(m.Config.Vocab-3)
	}
	r := f.generateReceipt(b, prompt, sampler.Params{Temperature: 0}, len(prompt)+2)
	tr, err := Regenerate(context.Background(), f.e, r)
	if err != nil {
		b.Fatal(err)
	}
	ref, err := NewReferee(m, r)
	if err != nil {
		b.Fatal(err)
	}
	lay := tr.lay
	const size = 256
	ref.WithPartBytes(4*lay.Dim + (size-1)*8*lay.HeadDim)
	d := lay.ALeaf(lay.Layers-1, 0, lay.Positions()-1)
	ins := ref.Inputs(d)
	var state []byte
	for pass := 0; pass < 2; pass++ {
		for k := 0; k*size < len(ins); k++ {
			if state, err = ref.Fold(d, pass, k, leafValuesB(b, tr, ins[k*size:min((k+1)*size, len(ins))]), state); err != nil {
				b.Fatal(err)
			}
		}
	}
	part := leafValuesB(b, tr, ins[size:2*size])
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ref.Fold(d, 2, 1, part, state); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/size, "ns/kv-leaf")
}

func leafValuesB(b *testing.B, tr *Trace, ins []int) [][]byte {
	b.Helper()
	vals := make([][]byte, len(ins))
	for i, l := range ins {
		v, err := tr.LeafValue(l)
		if err != nil {
			b.Fatal(err)
		}
		vals[i] = v
	}
	return vals
}

func synthModel(b *testing.B, preset string) (*model.Model, error) {
	path := filepath.Join(b.TempDir(), preset+".gguf")
	if err := synth.WriteFile(path, synth.Options{Preset: preset, Seed: 5, Type: "f32"}); err != nil {
		return nil, err
	}
	m, err := model.Load(path, "")
	if err != nil {
		return nil, err
	}
	b.Cleanup(func() { m.Close() })
	return m, nil
}
