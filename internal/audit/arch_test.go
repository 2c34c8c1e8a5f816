package audit

import (
	"context"
	"encoding/binary"
	"errors"
	"math/bits"
	"path/filepath"
	"testing"

	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/sampler"
	"github.com/verdictnet/verdict/internal/synth"
	"github.com/verdictnet/verdict/internal/tensor"
)

// synthFixture writes a small synthetic model of the named preset (with the
// built-in vocabulary) and loads it.
func synthFixture(t *testing.T, preset, typ string, threads int) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), preset+".gguf")
	if err := synth.WriteFile(path, synth.Options{Preset: preset, Seed: 5, Type: typ}); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(path, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return newFixture(t, m, threads)
}

// bumpElement returns a copy of m with element i of the F32 tensor *pick(m)
// changed by one ulp.
func bumpElement(m *model.Model, i int, pick func(*model.Model) **tensor.Tensor) *model.Model {
	m = cloneModel(m)
	p := pick(m)
	w := copyTensor(*p)
	binary.LittleEndian.PutUint32(w.Data[4*i:], binary.LittleEndian.Uint32(w.Data[4*i:])+1)
	*p = w
	return m
}

// TestProofsNewArchitectures runs the whole proof pipeline on small models
// of the new architectures: a signed receipt, exact replay (on another
// thread count too), honest openings that pass audits, openings of a worker
// whose Q/K/V bias, Q/K norm or RoPE frequency factor differs by one ulp
// that fail them, and a dispute against that worker that the referee
// settles at the first leaf the change alters (a key/value or attention
// leaf, whose recomputation runs the bias, the norm or the factors).
func TestProofsNewArchitectures(t *testing.T) {
	for _, tc := range []struct {
		preset, typ string
		// where the dispute must end: the first leaf the change alters
		kind       byte
		layer, pos int
		// changed is the weight the dishonest worker changes.
		changed func(*model.Model) **tensor.Tensor
	}{
		{"tiny-qwen2", "q8_0", 'k', 1, 0, func(m *model.Model) **tensor.Tensor { return &m.Layers[1].Bk }},
		{"tiny-qwen3", "f32", 'k', 2, 0, func(m *model.Model) **tensor.Tensor { return &m.Layers[2].KNorm }},
		// A query changes no key or value, and position 0 attends to
		// itself alone (its output is its value whatever the query).
		{"tiny-qwen3", "q8_0", 'a', 1, 1, func(m *model.Model) **tensor.Tensor { return &m.Layers[1].QNorm }},
		// RoPE at position 0 is the identity, and a one-ulp change of the
		// frequency of pair 3 (0.0073 rad per position) first changes a
		// rounded sine or cosine, hence a key, at position 6.
		{"tiny-llama3", "f16", 'k', 0, 6, func(m *model.Model) **tensor.Tensor { return &m.RopeFreqs }},
	} {
		t.Run(tc.preset+"-"+tc.typ, func(t *testing.T) {
			f := synthFixture(t, tc.preset, tc.typ, 2)
			prompt := []int{1, 300, 301, 302, 303, 304}
			r := f.generateReceipt(t, prompt, sampler.Params{Temperature: 0.9, TopP: 0.95, Seed: 11}, 28)
			ctx := context.Background()
			if err := Replay(ctx, f.e, r, f.id); err != nil {
				t.Fatalf("honest receipt rejected: %v", err)
			}
			g := newFixture(t, f.m, 3)
			if err := Replay(ctx, g.e, r, g.id); err != nil {
				t.Fatalf("3 threads: %v", err)
			}
			lay := NewLayout(f.m.Config, len(r.Prompt), len(r.Output))
			for seed := uint64(0); seed < 6; seed++ {
				k := []int{1, 5, lay.Cells()}[seed%3]
				o, err := Open(ctx, f.e, r, seed, k)
				if err != nil {
					t.Fatal(err)
				}
				parsed, err := ParseOpenings(o.Marshal())
				if err != nil {
					t.Fatal(err)
				}
				if err := Check(f.m, f.id, r, seed, k, parsed); err != nil {
					t.Fatalf("seed %d k %d: honest openings rejected: %v", seed, k, err)
				}
			}

			// A worker that ran a model whose changed weight differs by
			// one ulp, signing the honest model's id.
			bad := newFixture(t, bumpElement(f.m, 3, tc.changed), 2)
			badTrace, err := regenerate(context.Background(), bad.e, r)
			if err != nil {
				t.Fatal(err)
			}
			o, err := badTrace.Open(0, lay.Cells())
			if err != nil {
				t.Fatal(err)
			}
			if err := Check(f.m, f.id, r, 0, lay.Cells(), o); err == nil {
				t.Fatal("an audit of every cell accepted the openings of the changed model")
			} else {
				t.Logf("audit of the changed model: %v", err)
			}

			honest, err := Regenerate(context.Background(), f.e, r)
			if err != nil {
				t.Fatal(err)
			}
			if honest.Tree().Root() == badTrace.Tree().Root() {
				t.Fatal("the changed weight does not change the trace")
			}
			ref, err := NewReferee(f.m, r)
			if err != nil {
				t.Fatal(err)
			}
			N := lay.Leaves()
			roots := [2]merkle.Hash{honest.Tree().Root(), badTrace.Tree().Root()}
			resp := [2]*dispute.Responder{
				{Party: dispute.A, Tree: honest.Tree(), Value: honest.LeafValue},
				{Party: dispute.B, Tree: badTrace.Tree(), Value: badTrace.LeafValue},
			}
			m, qs, err := dispute.New(dispute.Config{Cells: N, Roots: roots, Timeout: 5}, ref, 0)
			if err != nil {
				t.Fatal(err)
			}
			for steps := 0; !m.Outcome().Done; steps++ {
				if steps > 100 || len(qs) != 1 {
					t.Fatalf("game stuck (%d queries)", len(qs))
				}
				q := qs[0]
				qs = nil
				for _, p := range []dispute.Party{dispute.B, dispute.A} {
					a, err := resp[p].Answer(q)
					if err != nil {
						t.Fatal(err)
					}
					out, err := m.Step(a)
					if err != nil && !errors.Is(err, dispute.ErrIgnored) {
						t.Fatal(err)
					}
					qs = append(qs, out...)
				}
			}
			out := m.Outcome()
			if out.Err != nil || out.Lost[dispute.A] || !out.Lost[dispute.B] {
				t.Fatalf("outcome %+v", out)
			}
			if max := bits.Len(uint(N-1)) + 3; m.Rounds() > max {
				t.Fatalf("%d rounds, limit %d", m.Rounds(), max)
			}
			kind, l, h, p := lay.Leaf(out.Cell)
			t.Logf("caught at leaf %d (%c layer %d head %d position %d) in %d rounds", out.Cell, kind, l, h, p, m.Rounds())
			if kind != tc.kind || l != tc.layer || p != tc.pos {
				t.Fatalf("caught at a %c leaf of layer %d position %d, want a %c leaf of layer %d position %d", kind, l, p, tc.kind, tc.layer, tc.pos)
			}
		})
	}
}
