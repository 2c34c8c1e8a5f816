package audit

import (
	"context"
	"errors"
	"math/bits"
	"slices"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/sampler"
)

// TestDisputeSetup builds games from a real stories260K receipt and
// commitments: an honest challenger against a worker whose receipt commits
// to a trace forged at one leaf (the worker loses), and a challenger whose
// commitment is forged (the challenger loses), with the leaf count and
// roots DisputeSetup derives; and rejects setups that cannot be played.
func TestDisputeSetup(t *testing.T) {
	f := loadFixture(t, "stories260K.gguf", 2)
	r := f.generateReceipt(t, storyPrompt, sampler.Params{Temperature: 0.8, Seed: 4}, 20)
	honest, err := Regenerate(context.Background(), f.e, r)
	if err != nil {
		t.Fatal(err)
	}
	N := honest.lay.Leaves()
	forge := func(i int) *Trace {
		v, _ := honest.LeafValue(i)
		v = append([]byte(nil), v...)
		v[len(v)/2] ^= 0x10
		ft, err := honest.WithLeaf(i, v)
		if err != nil {
			t.Fatal(err)
		}
		return ft
	}
	for _, c := range []struct {
		name      string
		leaf      int
		workerLie bool
	}{{"worker forges the first leaf", 0, true}, {"worker forges a middle leaf", N / 2, true}, {"challenger forges the last leaf", N - 1, false}, {"challenger forges an attention leaf", honest.lay.ALeaf(1, 1, 3), false}} {
		t.Run(c.name, func(t *testing.T) {
			wt, ct := honest, forge(c.leaf)
			rr := r
			if c.workerLie {
				wt, ct = forge(c.leaf), honest
				cp := *r
				cp.TraceRoot = wt.Tree().Root()
				if err := cp.Sign(f.key.Private); err != nil {
					t.Fatal(err)
				}
				rr = &cp
			}
			rb, err := rr.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			root := ct.Tree().Root()
			cfg, ref, err := DisputeSetup(f.m, f.id, rb, root[:])
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Cells != N || cfg.Roots != [2]merkle.Hash{wt.Tree().Root(), root} {
				t.Fatalf("config %d cells, roots %v", cfg.Cells, cfg.Roots)
			}
			cfg.Timeout = 3
			m, qs, err := dispute.New(cfg, ref, 0)
			if err != nil {
				t.Fatal(err)
			}
			resp := [2]*dispute.Responder{{Party: dispute.A, Tree: wt.Tree(), Value: wt.LeafValue}, {Party: dispute.B, Tree: ct.Tree(), Value: ct.LeafValue}}
			for len(qs) == 1 {
				q := qs[0]
				qs = nil
				for _, p := range resp {
					a, err := p.Answer(q)
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
			o := m.Outcome()
			liar := dispute.B
			if c.workerLie {
				liar = dispute.A
			}
			if !o.Done || o.Err != nil || !o.Lost[liar] || o.Lost[1-liar] || o.Cell != c.leaf {
				t.Fatalf("outcome %+v, want %s to lose at leaf %d", o, liar, c.leaf)
			}
			if max := bits.Len(uint(N-1)) + 3; m.Rounds() > max || ref.Calls != 1 {
				t.Fatalf("%d rounds (limit %d), %d recomputations", m.Rounds(), max, ref.Calls)
			}
		})
	}

	rb, _ := r.Marshal()
	other := forge(5).Tree().Root()
	for _, c := range []struct {
		name       string
		rb, commit []byte
		id         merkle.Hash
		want       string
	}{
		{"not a receipt", []byte("{}"), other[:], f.id, "dispute setup"},
		{"short commitment", rb, other[:31], f.id, "commitment of 31 bytes"},
		{"commitment is the worker's root", rb, r.TraceRoot[:], f.id, "nothing to dispute"},
		{"other model", rb, other[:], merkle.Hash{1}, "names model"},
	} {
		if _, _, err := DisputeSetup(f.m, c.id, c.rb, c.commit); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
}

// TestDisputeSetupForfeit: a signed receipt that no run of the model can
// produce (a token outside the vocabulary) is disputable: the worker loses
// at once, with no query. (More positions than an engine holds would be
// too, but no receipt parses with steps beyond receipt.MaxTokens; one
// longer than the context its verifier's file states is disputed as any
// other: TestContextNotCommitted.)
func TestDisputeSetupForfeit(t *testing.T) {
	f := loadFixture(t, "stories260K.gguf", 1)
	r := f.generateReceipt(t, storyPrompt, sampler.Params{Temperature: 0.8, Seed: 4}, 12)
	other := merkle.Hash{7}
	for _, c := range []struct {
		name string
		edit func(cp *receipt.Receipt)
		want string
	}{
		{"token outside the vocabulary", func(cp *receipt.Receipt) { cp.Output[0] = f.m.Config.Vocab }, "outside the vocabulary"},
	} {
		cp := *r
		cp.Prompt = append([]int(nil), r.Prompt...)
		cp.Output = append([]int(nil), r.Output...)
		c.edit(&cp)
		if err := cp.Sign(f.key.Private); err != nil {
			t.Fatal(err)
		}
		rb, err := cp.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		cfg, ref, err := DisputeSetup(f.m, f.id, rb, other[:])
		if err != nil || ref != nil || cfg.Forfeit[0].Fault != dispute.FaultImpossibleReceipt || !strings.Contains(cfg.Forfeit[0].Why, c.want) || cfg.Forfeit[1] != (dispute.Loss{}) {
			t.Fatalf("%s: config %+v, referee %v, error %v", c.name, cfg, ref, err)
		}
		cfg.Timeout = 3
		m, qs, err := dispute.New(cfg, nil, 5)
		if o := m.Outcome(); err != nil || len(qs) != 0 || !o.Done || !o.Lost[dispute.A] || o.Lost[dispute.B] || o.Fault != [2]dispute.Fault{dispute.FaultImpossibleReceipt, ""} {
			t.Fatalf("%s: outcome %+v, %d queries, error %v", c.name, o, len(qs), err)
		}
	}
}

// TestMaxAnswerBytes: the bound covers the real answer opening the inputs
// of every attention leaf at the last position, and is not loose by more
// than double.
func TestMaxAnswerBytes(t *testing.T) {
	f := loadFixture(t, "stories260K.gguf", 2)
	r := f.generateReceipt(t, storyPrompt, sampler.Params{Temperature: 0.8, Seed: 4}, 60)
	honest, err := Regenerate(context.Background(), f.e, r)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := NewReferee(f.m, r)
	if err != nil {
		t.Fatal(err)
	}
	lay := honest.lay
	bound := ref.MaxAnswerBytes()
	resp := &dispute.Responder{Party: dispute.B, Tree: honest.Tree(), Value: honest.LeafValue}
	for l := 0; l < lay.Layers; l++ {
		d := lay.ALeaf(l, l%lay.KVHeads, lay.Positions()-1)
		a, err := resp.Answer(dispute.Message{Kind: dispute.OpenLeaves, Round: 1000, Start: d, End: d + 1, Leaves: ref.Inputs(d), Deadline: 1 << 40})
		if err != nil {
			t.Fatal(err)
		}
		b, err := a.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > bound || 2*len(b) < bound {
			t.Fatalf("layer %d: answer of %d bytes, bound %d", l, len(b), bound)
		}
	}
}

// FuzzDisputeSetup feeds mutated receipts and commitments to
// DisputeSetup: it must never panic, and a setup it accepts must be
// playable (as many leaves as the referee's layout, distinct roots, inputs
// before each leaf).
func FuzzDisputeSetup(f *testing.F) {
	fx := loadFixture(f, "stories260K.gguf", 1)
	r := fx.generateReceipt(f, storyPrompt, sampler.Params{Temperature: 0.9, Seed: 1}, 12)
	rb, err := r.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	other := merkle.Hash{1, 2, 3}
	f.Add(rb, other[:])
	f.Add(rb, r.TraceRoot[:])
	f.Add([]byte(strings.Replace(string(rb), `"prompt":[1,`, `"prompt":[100000,`, 1)), other[:])
	f.Add([]byte(`{}`), []byte{})
	f.Fuzz(func(t *testing.T, rb, commitment []byte) {
		cfg, ref, err := DisputeSetup(fx.m, fx.id, rb, commitment)
		if err != nil {
			return
		}
		if ref == nil {
			if cfg.Forfeit[0].Fault != dispute.FaultImpossibleReceipt || cfg.Forfeit[0].Why == "" || cfg.Forfeit[1] != (dispute.Loss{}) {
				t.Fatalf("no referee, forfeits %+v", cfg.Forfeit)
			}
			return
		}
		if cfg.Cells != ref.Cells() || cfg.Roots[0] == cfg.Roots[1] {
			t.Fatalf("accepted setup %+v", cfg)
		}
		for _, d := range []int{0, cfg.Cells / 2, cfg.Cells - 1} {
			for _, i := range ref.Inputs(d) {
				if i >= d {
					t.Fatalf("leaf %d reads leaf %d", d, i)
				}
			}
		}
	})
}

// TestAttackStopRuleNotDisputable: a worker signs a receipt whose output
// breaks the rules it states (more tokens than its steps allow, which an
// "upto" escrow pays by the token; tokens after a stop token; sampling
// parameters the sampler refuses) over the exact trace of those tokens.
// Every replay and audit rejects it, but its trace root is what an honest
// challenger's retrace gives: the setup refused that commitment ("nothing
// to dispute"), and with any other root the challenger lost the game. The
// worker must forfeit whatever the commitment.
func TestAttackStopRuleNotDisputable(t *testing.T) {
	f := loadFixture(t, "stories260K.gguf", 1)
	r := f.generateReceipt(t, storyPrompt, sampler.Params{Temperature: 0.8, Seed: 4}, 20)
	if len(r.Output) < 4 {
		t.Fatalf("output of %d tokens", len(r.Output))
	}
	for _, c := range []struct {
		name string
		edit func(cp *receipt.Receipt)
		want string
	}{
		{"more tokens than the steps allow", func(cp *receipt.Receipt) {
			cp.Sampling.Steps = len(cp.Prompt) + len(cp.Output) - 3
		}, "steps allow"},
		{"tokens after a stop token", func(cp *receipt.Receipt) { cp.Sampling.Stop = []int{cp.Output[1]} }, "is not the last output token"},
		{"temperature out of range", func(cp *receipt.Receipt) { cp.Sampling.Temperature = 1000 }, "temperature"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cp := *r
			cp.Sampling.Stop = append([]int(nil), r.Sampling.Stop...)
			c.edit(&cp)
			if err := cp.Sign(f.key.Private); err != nil {
				t.Fatal(err)
			}
			rb, err := cp.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			// Every check of the receipt refuses it...
			if err := Replay(context.Background(), f.e, &cp, f.id); err == nil {
				t.Fatal("the receipt replays")
			}
			// ...yet the trace of its tokens is exact: an honest
			// challenger's retrace has the receipt's root.
			tr, err := RetraceLeaves(context.Background(), f.e, &cp, []int{})
			if err != nil {
				t.Fatal(err)
			}
			if tr.Tree().Root() != cp.TraceRoot {
				t.Fatal("the forged receipt's trace is not exact")
			}
			other := merkle.Hash{7}
			for _, commit := range [][]byte{cp.TraceRoot[:], other[:]} {
				cfg, ref, err := DisputeSetup(f.m, f.id, rb, commit)
				if err != nil || ref != nil || cfg.Forfeit[0].Fault != dispute.FaultImpossibleReceipt || !strings.Contains(cfg.Forfeit[0].Why, c.want) || cfg.Forfeit[1] != (dispute.Loss{}) {
					t.Fatalf("commitment %x: config %+v, referee %v, error %v; want the worker to forfeit", commit[:4], cfg.Forfeit, ref != nil, err)
				}
			}
		})
	}
	// The honest receipt is no forfeit: the same commitment is refused.
	rb, _ := r.Marshal()
	if _, _, err := DisputeSetup(f.m, f.id, rb, r.TraceRoot[:]); err == nil || !strings.Contains(err.Error(), "nothing to dispute") {
		t.Fatalf("honest receipt, its own root: %v", err)
	}
}

// TestAttackSamplingNotDisputable: a worker runs the model honestly but
// signs another output token than the one it samples (here the last, which
// no position reads, so that the trace and logits roots stay exact):
// whatever text it likes, sampled or not. The trace of the tokens is
// exact, so an honest challenger's root is the worker's: the setup refused
// it ("nothing to dispute"), any other root lost the bisection, and only an
// audit that happened to select that token's logits cell could catch it.
// A sampling-fault commitment (the token, the worker's own final state at
// its position and that state's proof against the receipt's trace root)
// now makes the worker forfeit; one over a token that is the sampled one,
// or with a bad proof, is refused.
func TestAttackSamplingNotDisputable(t *testing.T) {
	f := loadFixture(t, "stories260K.gguf", 1)
	r := f.generateReceipt(t, storyPrompt, sampler.Params{Temperature: 0.8, Seed: 4}, 20)
	ctx := context.Background()
	cp := *r
	cp.Output = append([]int(nil), r.Output...)
	O := len(cp.Output)
	cp.Sampling.Steps = len(cp.Prompt) + O - 1 // no stop token needed at the end
	forged := (cp.Output[O-1] + 1) % f.m.Config.Vocab
	for slices.Contains(cp.Sampling.Stop, forged) || forged == r.Output[O-1] {
		forged = (forged + 1) % f.m.Config.Vocab
	}
	cp.Output[O-1] = forged
	if err := cp.Sign(f.key.Private); err != nil {
		t.Fatal(err)
	}
	rb, err := cp.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var mm *Mismatch
	if err := Replay(ctx, f.e, &cp, f.id); !errors.As(err, &mm) || mm.What != "token" {
		t.Fatalf("replay: %v, want a token mismatch", err)
	}
	if err := Impossible(f.m, &cp); err != nil {
		t.Fatalf("the forged receipt is impossible on its face: %v", err)
	}
	// The honest challenger's trace has the receipt's root.
	tr, err := RetraceLeaves(ctx, f.e, &cp, FinalStates(f.m, &cp))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Tree().Root() != cp.TraceRoot {
		t.Fatal("the forged receipt's trace is not exact")
	}
	if _, _, err := DisputeSetup(f.m, f.id, rb, cp.TraceRoot[:]); err == nil || !strings.Contains(err.Error(), "nothing to dispute") {
		t.Fatalf("its own root: %v", err)
	}
	commit, err := tr.SamplingFault(f.m)
	if err != nil {
		t.Fatal(err)
	}
	cfg, ref, err := DisputeSetup(f.m, f.id, rb, commit)
	if err != nil || ref != nil || cfg.Forfeit[0].Fault != dispute.FaultImpossibleReceipt || !strings.Contains(cfg.Forfeit[0].Why, "samples token") || cfg.Forfeit[1] != (dispute.Loss{}) {
		t.Fatalf("sampling fault: config %+v, referee %v, error %v; want the worker to forfeit", cfg.Forfeit, ref != nil, err)
	}
	m, qs, err := dispute.New(cfg, nil, 5)
	if o := m.Outcome(); err != nil || len(qs) != 0 || !o.Done || !o.Lost[dispute.A] || o.Lost[dispute.B] {
		t.Fatalf("outcome %+v, %d queries, error %v", o, len(qs), err)
	}

	// Refused: the same commitment over the honest receipt (its token is
	// the sampled one), a state that is not the worker's, a short proof,
	// an output token out of range.
	hb, _ := r.Marshal()
	tag := len(samplingTag)
	bad := func(edit func(b []byte) []byte) []byte { return edit(append([]byte(nil), commit...)) }
	for _, c := range []struct {
		name   string
		rb, cm []byte
		want   string
	}{
		{"honest receipt", hb, commit, "samples the receipt's token"},
		{"another state", rb, bad(func(b []byte) []byte { b[tag+8] ^= 1; return b }), "is not the worker's"},
		{"short proof", rb, bad(func(b []byte) []byte { return b[:len(b)-merkle.HashSize] }), "is not the worker's"},
		{"ragged proof", rb, bad(func(b []byte) []byte { return b[:len(b)-1] }), "whole hashes"},
		{"token out of range", rb, bad(func(b []byte) []byte { b[tag] = byte(O); return b }), "names output token"},
	} {
		if _, _, err := DisputeSetup(f.m, f.id, c.rb, c.cm); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	// An honest receipt has no sampling fault to open.
	ht, err := RetraceLeaves(ctx, f.e, r, FinalStates(f.m, r))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ht.SamplingFault(f.m); err == nil {
		t.Fatal("a sampling fault in an honest receipt")
	}
}
