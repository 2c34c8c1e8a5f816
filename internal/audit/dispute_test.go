package audit

import (
	"context"
	"errors"
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/sampler"
)

// TestLayoutLeaf checks Leaf against the index functions.
func TestLayoutLeaf(t *testing.T) {
	lay := Layout{Layers: 3, Dim: 8, KVHeads: 2, HeadDim: 4, Prompt: 4, Output: 3}
	seen := make([]bool, lay.Leaves())
	T := lay.Positions()
	mark := func(i int, kind byte, l, h, p int) {
		if seen[i] {
			t.Fatalf("leaf %d twice", i)
		}
		seen[i] = true
		k, ll, hh, pp := lay.Leaf(i)
		if k != kind || ll != l || hh != h || pp != p {
			t.Fatalf("Leaf(%d) = %c %d %d %d, want %c %d %d %d", i, k, ll, hh, pp, kind, l, h, p)
		}
	}
	for p := 0; p < T; p++ {
		for l := 0; l <= lay.Layers; l++ {
			mark(lay.XLeaf(l, p), 'x', l, 0, p)
			if l < lay.Layers {
				for h := 0; h < lay.KVHeads; h++ {
					mark(lay.KVLeaf(l, h, p), 'k', l, h, p)
					mark(lay.ALeaf(l, h, p), 'a', l, h, p)
				}
			}
		}
	}
	for i, s := range seen {
		if !s {
			t.Fatalf("leaf %d unused", i)
		}
	}
}

// liarTrace is a trace whose leaf values come from value, committed as a tree.
type liar struct {
	tree  *merkle.Tree
	value func(i int) ([]byte, error)
}

// TestDisputeRealModel plays the bisection game between an honest trace of
// stories260K and liars: a worker running a model with one weight changed,
// one skipping a layer, and ones that alter a single random leaf; with
// random answer orders. The honest party never loses, the liar always
// does, within ceil(log2 N) + 3 rounds, and the referee recomputes one leaf
// reading only its committed inputs.
func TestDisputeRealModel(t *testing.T) {
	f := loadFixture(t, "stories260K.gguf", 2)
	r := f.generateReceipt(t, storyPrompt, sampler.Params{Temperature: 0.8, Seed: 9}, 40)
	honest, err := Regenerate(context.Background(), f.e, r)
	if err != nil {
		t.Fatal(err)
	}
	lay := honest.lay
	N := lay.Leaves()
	var liars []liar
	for _, fm := range []*model.Model{ulpModel(f.m), skipLayerModel(f.m)} {
		ft, err := regenerate(context.Background(), newFixture(t, fm, 2).e, r)
		if err != nil {
			t.Fatal(err)
		}
		liars = append(liars, liar{ft.Tree(), ft.LeafValue})
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 40; i++ {
		d := rng.IntN(N)
		bad, _ := honest.LeafValue(d)
		bad = append([]byte(nil), bad...)
		bad[rng.IntN(len(bad))] ^= byte(1 + rng.IntN(255))
		hs := make([]merkle.Hash, N)
		for j := range hs {
			hs[j] = honest.Tree().Leaf(j)
		}
		hs[d] = merkle.LeafHash(bad)
		liars = append(liars, liar{merkle.NewTree(hs), func(j int) ([]byte, error) {
			if j == d {
				return bad, nil
			}
			return honest.LeafValue(j)
		}})
	}
	maxRounds := bits.Len(uint(N-1)) + 3
	for i, l := range liars {
		ref, err := NewReferee(f.m, r)
		if err != nil {
			t.Fatal(err)
		}
		honestParty := dispute.Party(i % 2)
		liarParty := 1 - honestParty
		var roots [2]merkle.Hash
		var resp [2]*dispute.Responder
		roots[honestParty] = honest.Tree().Root()
		roots[liarParty] = l.tree.Root()
		resp[honestParty] = &dispute.Responder{Party: honestParty, Tree: honest.Tree(), Value: honest.LeafValue}
		resp[liarParty] = &dispute.Responder{Party: liarParty, Tree: l.tree, Value: l.value}
		m, qs, err := dispute.New(dispute.Config{Cells: N, Roots: roots, Timeout: 5}, ref, 0)
		if err != nil {
			t.Fatal(err)
		}
		for steps := 0; !m.Outcome().Done; steps++ {
			if steps > 100 || len(qs) != 1 {
				t.Fatalf("liar %d: game stuck (%d queries)", i, len(qs))
			}
			q := qs[0]
			qs = nil
			order := []dispute.Party{dispute.A, dispute.B}
			rng.Shuffle(2, func(a, b int) { order[a], order[b] = order[b], order[a] })
			for _, p := range order {
				a, err := resp[p].Answer(q)
				if err != nil {
					t.Fatal(err)
				}
				enc, err := a.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				msg, err := dispute.ParseMessage(enc)
				if err != nil {
					t.Fatal(err)
				}
				out, err := m.Step(*msg)
				if err != nil && !errors.Is(err, dispute.ErrIgnored) {
					t.Fatal(err)
				}
				qs = append(qs, out...)
			}
		}
		out := m.Outcome()
		if out.Err != nil {
			t.Fatalf("liar %d: %v", i, out.Err)
		}
		if out.Lost[honestParty] || !out.Lost[liarParty] {
			t.Fatalf("liar %d: outcome %+v", i, out)
		}
		if m.Rounds() > maxRounds {
			t.Fatalf("liar %d: %d rounds, limit %d", i, m.Rounds(), maxRounds)
		}
		if ref.Calls != 1 {
			t.Fatalf("liar %d: referee recomputed %d leaves", i, ref.Calls)
		}
		if max := 1 + lay.KVHeads*lay.Positions(); ref.LeavesRead > max {
			t.Fatalf("referee read %d leaves, more than one layer's attention inputs (%d)", ref.LeavesRead, max)
		}
		if i < 2 || i%10 == 0 {
			kind, l, h, p := lay.Leaf(out.Cell)
			t.Logf("liar %d: caught at leaf %d (%c layer %d head %d position %d) in %d rounds of %d allowed; referee read %d leaves, %d bytes",
				i, out.Cell, kind, l, h, p, m.Rounds(), maxRounds, ref.LeavesRead, ref.BytesRead)
		}
	}
}
