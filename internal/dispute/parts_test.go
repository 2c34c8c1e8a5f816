package dispute

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/verdictnet/verdict/internal/merkle"
)

// chainReferee is a toy computation whose leaf i reads every leaf before
// it, like an attention leaf reads every key and value before it: leaf i
// is cell(i, c) where c chains SHA-256 over leaves 0..i-1 twice (two
// passes). It reads the inputs of a leaf with more than size of them in
// parts of size (Folder).
type chainReferee struct {
	size                 int
	recomputes, finishes int
	folds                int
}

func (r *chainReferee) Inputs(i int) []int {
	ins := make([]int, i)
	for j := range ins {
		ins[j] = j
	}
	return ins
}

func chainStep(state, v []byte, pass int) []byte {
	h := sha256.New()
	h.Write(state)
	h.Write([]byte{byte(pass)})
	h.Write(v)
	return h.Sum(nil)
}

func chainAll(ins [][]byte) []byte {
	var s []byte
	for pass := 0; pass < 2; pass++ {
		for _, v := range ins {
			s = chainStep(s, v, pass)
		}
	}
	return s
}

func (r *chainReferee) Recompute(i int, ins [][]byte) ([]byte, error) {
	r.recomputes++
	if len(ins) != i {
		return nil, fmt.Errorf("leaf %d: %d inputs", i, len(ins))
	}
	return cell(i, chainAll(ins)), nil
}

func (r *chainReferee) Parts(d int) (passes, size int) { return 2, r.size }

func (r *chainReferee) Fold(d, pass, part int, values [][]byte, state []byte) ([]byte, error) {
	r.folds++
	if want := min(r.size, d-part*r.size); len(values) != want {
		return nil, fmt.Errorf("part %d of leaf %d: %d values, want %d", part, d, len(values), want)
	}
	for _, v := range values {
		state = chainStep(state, v, pass)
	}
	return state, nil
}

func (r *chainReferee) Finish(d int, state []byte) ([]byte, error) {
	r.finishes++
	return cell(d, state), nil
}

func chainTrace(n int) [][]byte {
	s := make([][]byte, n)
	for i := range s {
		s[i] = cell(i, chainAll(s[:i]))
	}
	return s
}

// TestPartsAgainstLiar: leaves whose inputs are read in parts over several
// rounds. The honest party never loses; a liar loses by its wrong leaf,
// by a part with a bad proof, or by silence (only when the honest party
// is silent too does the game end by the deadline with both losing); the
// game takes at most ceil(log2 N) + 1 rounds plus one per part.
func TestPartsAgainstLiar(t *testing.T) {
	behaviours := []string{"consistent", "badpart", "silentparts", "onlyliar"}
	for seed := uint64(0); seed < 120; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		n := 2 + rng.IntN(90)
		size := 1 + rng.IntN(9)
		d := rng.IntN(n)
		style := behaviours[int(seed)%len(behaviours)]
		honest := chainTrace(n)
		lies := append([][]byte(nil), honest...)
		lies[d] = append([]byte{}, honest[d]...)
		lies[d][rng.IntN(16)] ^= 1
		liar := Party(rng.IntN(2))
		honestParty := 1 - liar
		states := [2][][]byte{}
		states[honestParty], states[liar] = honest, lies
		var trees [2]*merkle.Tree
		var resp [2]*Responder
		for p := range trees {
			trees[p] = treeOf(states[p])
			resp[p] = &Responder{Party: Party(p), Tree: trees[p], Value: func(i int) ([]byte, error) { return states[p][i], nil }}
		}
		ref := &chainReferee{size: size}
		m, qs, err := New(Config{Cells: n, Roots: [2]merkle.Hash{trees[A].Root(), trees[B].Root()}, Timeout: 5}, ref, 10)
		if err != nil {
			t.Fatal(err)
		}
		height := uint64(10)
		parts := 0
		for steps := 0; !m.Outcome().Done; steps++ {
			if steps > 1000 {
				t.Fatalf("seed %d: the game does not end", seed)
			}
			q := roundTrip(t, qs[0])
			inParts := m.InParts()
			if inParts {
				parts++
			}
			var msgs []Message
			for _, p := range []Party{liar, honestParty} {
				if inParts && p == honestParty && style == "onlyliar" {
					continue // the liar must open the parts itself
				}
				a, err := resp[p].Answer(q)
				if err != nil {
					t.Fatal(err)
				}
				if p == liar && inParts {
					switch style {
					case "badpart":
						a.Values[rng.IntN(len(a.Values))] = []byte("forged")
					case "silentparts":
						continue
					}
				}
				msgs = append(msgs, roundTrip(t, a))
			}
			qs = nil
			for _, a := range msgs {
				out, err := m.Step(a)
				if err != nil && !errors.Is(err, ErrIgnored) {
					t.Fatal(err)
				}
				qs = append(qs, out...)
			}
			if !m.Outcome().Done && len(qs) == 0 {
				height = q.Deadline + 1
				m.Tick(height)
			}
			if len(qs) > 1 {
				t.Fatalf("seed %d: %d queries", seed, len(qs))
			}
		}
		out := m.Outcome()
		if out.Err != nil || out.Lost[honestParty] || !out.Lost[liar] {
			t.Fatalf("seed %d (%s, n %d, d %d, size %d): outcome %+v", seed, style, n, d, size, out)
		}
		// A forged part (the liar answers first) loses by its proof;
		// every other liar, and a forger whose leaf was read at once, is
		// contradicted by the recomputation.
		want := FaultStateMismatch
		if style == "badpart" && parts > 0 {
			want = FaultBadPartProof
		}
		if out.Fault[liar] != want || out.Fault[honestParty] != "" {
			t.Fatalf("seed %d (%s, %d parts): the liar lost by %q (%s), want %q", seed, style, parts, out.Fault[liar], out.Reason[liar], want)
		}
		if style != "badpart" && out.Cell != d {
			t.Fatalf("seed %d: cell %d, want %d", seed, out.Cell, d)
		}
		wantParts := 0
		if d > size {
			wantParts = 2 * ((d + size - 1) / size)
		}
		if style == "consistent" || style == "onlyliar" {
			if parts != wantParts {
				t.Fatalf("seed %d: %d part rounds, want %d", seed, parts, wantParts)
			}
			if max := bits.Len(uint(n-1)) + 1 + wantParts; m.Rounds() > max {
				t.Fatalf("seed %d: %d rounds, at most %d", seed, m.Rounds(), max)
			}
			if d > size && (ref.recomputes != 0 || ref.finishes != 1 || ref.folds != wantParts) {
				t.Fatalf("seed %d: %d recomputes, %d finishes, %d folds", seed, ref.recomputes, ref.finishes, ref.folds)
			}
		}
	}
}

// TestPartsBothSilent: nobody opens a part by its deadline: both lose.
func TestPartsBothSilent(t *testing.T) {
	honest := chainTrace(40)
	lies := append([][]byte(nil), honest...)
	lies[39] = []byte("wrong")
	ta, tb := treeOf(honest), treeOf(lies)
	ra := &Responder{Party: A, Tree: ta, Value: func(i int) ([]byte, error) { return honest[i], nil }}
	rb := &Responder{Party: B, Tree: tb, Value: func(i int) ([]byte, error) { return lies[i], nil }}
	m, qs, err := New(Config{Cells: 40, Roots: [2]merkle.Hash{ta.Root(), tb.Root()}, Timeout: 5}, &chainReferee{size: 8}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for !m.InParts() {
		var next []Message
		for _, r := range []*Responder{ra, rb} {
			a, _ := r.Answer(qs[0])
			out, _ := m.Step(a)
			next = append(next, out...)
		}
		qs = next
	}
	// Two parts are opened, then nobody answers.
	for i := 0; i < 2; i++ {
		a, _ := rb.Answer(qs[0])
		if qs, err = m.Step(a); err != nil || len(qs) != 1 {
			t.Fatalf("part %d: %v", i, err)
		}
	}
	if st := m.PartState(); len(st) != sha256.Size {
		t.Fatalf("state of %d bytes", len(st))
	}
	m.Tick(qs[0].Deadline)
	if m.Outcome().Done {
		t.Fatal("lost at the deadline itself")
	}
	m.Tick(qs[0].Deadline + 1)
	if o := m.Outcome(); !o.Done || !o.Lost[A] || !o.Lost[B] || o.Fault != [2]Fault{FaultTimeout, FaultTimeout} {
		t.Fatalf("outcome %+v", o)
	}
}

// TestSkipPart: a game replayed from the states its parts left (without
// their values) ends as the game that read them.
func TestSkipPart(t *testing.T) {
	honest := chainTrace(50)
	lies := append([][]byte(nil), honest...)
	lies[45] = []byte("wrong")
	ta, tb := treeOf(honest), treeOf(lies)
	ra := &Responder{Party: A, Tree: ta, Value: func(i int) ([]byte, error) { return honest[i], nil }}
	rb := &Responder{Party: B, Tree: tb, Value: func(i int) ([]byte, error) { return lies[i], nil }}
	cfg := Config{Cells: 50, Roots: [2]merkle.Hash{ta.Root(), tb.Root()}, Timeout: 5}
	live, qs, _ := New(cfg, &chainReferee{size: 7}, 0)
	replay, _, _ := New(cfg, &chainReferee{size: 7}, 0)
	for !live.Outcome().Done {
		q := qs[0]
		qs = nil
		for _, r := range []*Responder{ra, rb} {
			if len(qs) > 0 || live.Outcome().Done {
				break
			}
			a, _ := r.Answer(q)
			inParts := live.InParts()
			out, err := live.Step(a)
			if err != nil {
				t.Fatal(err)
			}
			qs = append(qs, out...)
			if inParts {
				if _, err := replay.SkipPart(a.From, a.Round, live.PartState()); err != nil {
					t.Fatal(err)
				}
			} else if _, err := replay.Step(a); err != nil && !errors.Is(err, ErrIgnored) {
				t.Fatal(err)
			}
		}
	}
	if _, err := replay.SkipPart(A, replay.Rounds(), nil); !errors.Is(err, ErrIgnored) {
		t.Fatalf("a part skipped after the game: %v", err)
	}
	lo, ro := live.Outcome(), replay.Outcome()
	if !lo.Lost[B] || lo.Lost[A] || lo.Lost != ro.Lost || lo.Cell != ro.Cell || lo.Cell != 45 || live.Rounds() != replay.Rounds() {
		t.Fatalf("live %+v (%d rounds), replayed %+v (%d rounds)", lo, live.Rounds(), ro, replay.Rounds())
	}
}

// FuzzStepParts feeds arbitrary messages from B into a game whose
// disputed leaf's inputs are read in parts, against an honest A that
// opens every part: A must never lose and nothing may panic.
func FuzzStepParts(f *testing.F) {
	f.Add([]byte(`{"kind":"leaf_values","from":1,"round":6,"start":20,"end":21,"leaves":[0,1,2,3],"values":["","","",""]}`), uint8(20), uint8(2))
	f.Add([]byte("{}\n{}"), uint8(5), uint8(4))
	f.Fuzz(func(t *testing.T, data []byte, d, size uint8) {
		n := 24
		honest := chainTrace(n)
		lies := append([][]byte(nil), honest...)
		di := int(d) % n
		lies[di] = append([]byte("x"), honest[di]...)
		ta, tb := treeOf(honest), treeOf(lies)
		ra := &Responder{Party: A, Tree: ta, Value: func(i int) ([]byte, error) { return honest[i], nil }}
		m, qs, err := New(Config{Cells: n, Roots: [2]merkle.Hash{ta.Root(), tb.Root()}, Timeout: 3}, &chainReferee{size: 1 + int(size)%6}, 0)
		if err != nil {
			t.Fatal(err)
		}
		height := uint64(0)
		lines := bytes.Split(data, []byte("\n"))
		for i := 0; i < 80 && !m.Outcome().Done; i++ {
			if i < len(lines) {
				if msg, err := ParseMessage(lines[i]); err == nil {
					msg.From = B
					if out, err := m.Step(*msg); err == nil && len(out) > 0 {
						qs = out
					}
				}
			}
			if len(qs) > 0 && !m.Outcome().Done {
				a, err := ra.Answer(qs[0])
				if err != nil {
					t.Fatal(err)
				}
				if out, err := m.Step(a); err == nil {
					qs = out
				} else if !errors.Is(err, ErrIgnored) {
					t.Fatal(err)
				}
			}
			height++
			m.Tick(height)
		}
		if m.Outcome().Lost[A] {
			t.Fatalf("honest A lost: %s", m.Outcome().Reason[A])
		}
	})
}
