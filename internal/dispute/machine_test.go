package dispute

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/verdictnet/verdict/internal/merkle"
)

// cell is the toy computation: the state after cell i from the state
// before it.
func cell(i int, in []byte) []byte {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(i))
	h := sha256.Sum256(append(append([]byte{}, in...), b[:]...))
	return h[:16]
}

// toyReferee recomputes cell i from leaf i-1 (the agreed input for i = 0).
type toyReferee struct{ calls, cell int }

func (r *toyReferee) Inputs(i int) []int {
	if i == 0 {
		return nil
	}
	return []int{i - 1}
}

func (r *toyReferee) Recompute(i int, ins [][]byte) ([]byte, error) {
	r.calls++
	r.cell = i
	in := input
	if i > 0 {
		if len(ins) != 1 || len(ins[0]) != 16 {
			return nil, errors.New("input is not a state")
		}
		in = ins[0]
	}
	return cell(i, in), nil
}

var input = []byte("agreed input....")

func honestTrace(n int) [][]byte {
	s := make([][]byte, n)
	prev := input
	for i := range s {
		s[i] = cell(i, prev)
		prev = s[i]
	}
	return s
}

// liarTrace deviates at cell d; "consistent" liars then compute on from
// their wrong state, "rejoin" liars copy the honest states after d (so
// their final output is right).
func liarTrace(honest [][]byte, d int, style string, rng *rand.Rand) [][]byte {
	s := make([][]byte, len(honest))
	copy(s, honest[:d])
	wrong := append([]byte{}, honest[d]...)
	wrong[rng.IntN(16)] ^= byte(1 + rng.IntN(255))
	s[d] = wrong
	for i := d + 1; i < len(s); i++ {
		switch style {
		case "rejoin":
			s[i] = honest[i]
		default:
			s[i] = cell(i, s[i-1])
		}
	}
	return s
}

func treeOf(states [][]byte) *merkle.Tree { return merkle.NewTreeFromData(states) }

type player func(q Message) []Message

func responder(p Party, states [][]byte) (*merkle.Tree, player) {
	tree := treeOf(states)
	r := &Responder{Party: p, Tree: tree, Value: func(i int) ([]byte, error) { return states[i], nil }}
	return tree, func(q Message) []Message {
		a, err := r.Answer(q)
		if err != nil {
			panic(err)
		}
		return []Message{a}
	}
}

// play runs a game to the end, delivering answers in a random order and
// encoding every message on the way, and returns the machine.
func play(t *testing.T, n int, roots [2]merkle.Hash, players [2]player, rng *rand.Rand) (*Machine, *toyReferee) {
	t.Helper()
	ref := &toyReferee{cell: -1}
	height := uint64(100)
	m, qs, err := New(Config{Cells: n, Roots: roots, Timeout: 10}, ref, height)
	if err != nil {
		t.Fatal(err)
	}
	for steps := 0; !m.Outcome().Done; steps++ {
		if steps > 200 {
			t.Fatal("game does not end")
		}
		if len(qs) != 1 {
			t.Fatalf("%d queries outstanding", len(qs))
		}
		q := roundTrip(t, qs[0])
		var msgs []Message
		for _, p := range []Party{A, B} {
			msgs = append(msgs, players[p](q)...)
		}
		rng.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
		qs = nil
		for _, msg := range msgs {
			out, err := m.Step(roundTrip(t, msg))
			if err != nil && !errors.Is(err, ErrIgnored) {
				t.Fatal(err)
			}
			qs = append(qs, out...)
		}
		if !m.Outcome().Done && len(qs) == 0 {
			// Someone is silent: time passes.
			height = q.Deadline
			m.Tick(height)
			if m.Outcome().Done {
				t.Fatal("timeout fired at the deadline itself")
			}
			height++
			m.Tick(height)
		}
	}
	return m, ref
}

func roundTrip(t *testing.T, msg Message) Message {
	t.Helper()
	b, err := msg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseMessage(b)
	if err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return *p
}

func maxRounds(n int) int { return bits.Len(uint(n-1)) + 3 } // ceil(log2 n) + 3

func TestHonestAgainstLiar(t *testing.T) {
	lossReasons := map[string]int{}
	defer func() {
		keys := make([]string, 0, len(lossReasons))
		for k := range lossReasons {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			t.Logf("%-40s %d", k, lossReasons[k])
		}
	}()
	behaviours := []string{"consistent", "rejoin", "badnode", "badleaf", "equivocate", "silent", "silentleaf"}
	// The faults a liar of each style may lose by: its misbehaviour's, or
	// the recomputation's when it did not misbehave before the leaf (or
	// the honest party's answer to the leaf's inputs came first).
	faults := map[string][]Fault{
		"consistent": {FaultStateMismatch},
		"rejoin":     {FaultStateMismatch},
		"badnode":    {FaultBadChildren, FaultStateMismatch},
		"badleaf":    {FaultBadLeafProof, FaultStateMismatch},
		"equivocate": {FaultEquivocated, FaultBadChildren, FaultBadLeafProof, FaultStateMismatch}, // the altered copy may come first
		"silent":     {FaultTimeout, FaultStateMismatch},
		"silentleaf": {FaultStateMismatch},
	}
	for seed := uint64(0); seed < 400; seed++ {
		rng := rand.New(rand.NewPCG(seed, 99))
		n := 1 + rng.IntN(300)
		if seed%50 == 0 {
			n = 1 + rng.IntN(5000)
		}
		d := rng.IntN(n)
		style := behaviours[int(seed)%len(behaviours)]
		honest := honestTrace(n)
		lies := liarTrace(honest, d, style, rng)
		liar, honestParty := Party(rng.IntN(2)), A
		if liar == A {
			honestParty = B
		}
		var players [2]player
		var roots [2]merkle.Hash
		ht, hp := responder(honestParty, honest)
		lt, lp := responder(liar, lies)
		roots[honestParty], players[honestParty] = ht.Root(), hp
		roots[liar] = lt.Root()
		misbehaveAt := 1 + rng.IntN(bits.Len(uint(n))+1)
		players[liar] = func(q Message) []Message {
			a := lp(q)
			if q.Round < misbehaveAt && style != "silentleaf" && style != "badleaf" {
				return a
			}
			switch style {
			case "badnode":
				if q.Kind == OpenNode {
					a[0].Left[0] ^= 1
				}
			case "badleaf":
				if q.Kind == OpenLeaves {
					v := append([]byte{}, a[0].Values[0]...)
					v[0] ^= 1
					a[0].Values = [][]byte{v}
				}
			case "equivocate":
				b := a[0]
				if q.Kind == OpenLeaves {
					b.Values = [][]byte{[]byte("something else")}
				} else {
					b.Right[3] ^= 4
				}
				a = append(a, b)
			case "silent":
				return nil
			case "silentleaf":
				if q.Kind == OpenLeaves {
					return nil
				}
			}
			return a
		}
		m, ref := play(t, n, roots, players, rng)
		out := m.Outcome()
		if out.Lost[honestParty] {
			t.Fatalf("seed %d (%s, n=%d, d=%d): honest party %s lost: %s", seed, style, n, d, honestParty, out.Reason[honestParty])
		}
		if !out.Lost[liar] {
			t.Fatalf("seed %d (%s, n=%d, d=%d): liar did not lose: %+v", seed, style, n, d, out)
		}
		if !slices.Contains(faults[style], out.Fault[liar]) || out.Reason[liar] == "" || out.Fault[honestParty] != "" || out.Void != "" {
			t.Fatalf("seed %d (%s): liar lost by %q (%s), want one of %q", seed, style, out.Fault[liar], out.Reason[liar], faults[style])
		}
		lossReasons[style+": "+string(out.Fault[liar])]++
		if out.Err != nil {
			t.Fatalf("seed %d: referee error %v", seed, out.Err)
		}
		if r := m.Rounds(); r > maxRounds(n) {
			t.Fatalf("seed %d (%s, n=%d): %d rounds, limit %d", seed, style, n, r, maxRounds(n))
		}
		if ref.calls > 1 {
			t.Fatalf("referee recomputed %d cells", ref.calls)
		}
		if ref.calls == 1 && ref.cell != d {
			t.Fatalf("seed %d: referee recomputed cell %d, first deviation is %d", seed, ref.cell, d)
		}
		if (style == "consistent" || style == "rejoin") && (ref.calls != 1 || out.Cell != d || m.Rounds() > bits.Len(uint(n-1))+1) {
			t.Fatalf("seed %d (%s n=%d d=%d): calls %d cell %d rounds %d", seed, style, n, d, ref.calls, out.Cell, m.Rounds())
		}
	}
}

// TestBothWrong: two liars who deviate at the same cell differently both
// lose at the recomputation.
func TestBothWrong(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	honest := honestTrace(37)
	a := liarTrace(honest, 20, "consistent", rng)
	b := liarTrace(honest, 20, "consistent", rng)
	ta, pa := responder(A, a)
	tb, pb := responder(B, b)
	m, _ := play(t, 37, [2]merkle.Hash{ta.Root(), tb.Root()}, [2]player{pa, pb}, rng)
	if out := m.Outcome(); !out.Lost[A] || !out.Lost[B] || out.Cell != 20 || out.Fault != [2]Fault{FaultStateMismatch, FaultStateMismatch} {
		t.Fatalf("outcome %+v", out)
	}
}

func TestBothSilent(t *testing.T) {
	honest := honestTrace(9)
	ta := treeOf(honest)
	tb := treeOf(liarTrace(honest, 3, "consistent", rand.New(rand.NewPCG(3, 4))))
	m, qs, err := New(Config{Cells: 9, Roots: [2]merkle.Hash{ta.Root(), tb.Root()}, Timeout: 5}, &toyReferee{}, 10)
	if err != nil || len(qs) != 1 || qs[0].Deadline != 15 {
		t.Fatalf("New: %v %+v", err, qs)
	}
	m.Tick(15)
	if m.Outcome().Done {
		t.Fatal("lost at the deadline")
	}
	m.Tick(16)
	if out := m.Outcome(); !out.Lost[A] || !out.Lost[B] || out.Fault != [2]Fault{FaultTimeout, FaultTimeout} {
		t.Fatalf("outcome %+v", out)
	}
}

func TestIgnoredMessages(t *testing.T) {
	honest := honestTrace(9)
	ta, pa := responder(A, honest)
	tb, _ := responder(B, liarTrace(honest, 3, "consistent", rand.New(rand.NewPCG(3, 4))))
	m, qs, _ := New(Config{Cells: 9, Roots: [2]merkle.Hash{ta.Root(), tb.Root()}, Timeout: 5}, &toyReferee{}, 10)
	a := pa(qs[0])[0]
	wrongRound := a
	wrongRound.Round = 7
	wrongRange := a
	wrongRange.End = 8
	query := qs[0]
	for _, msg := range []Message{wrongRound, wrongRange, query, {Kind: "bogus"}} {
		if _, err := m.Step(msg); !errors.Is(err, ErrIgnored) {
			t.Errorf("Step(%+v) = %v, want ErrIgnored", msg, err)
		}
	}
	if _, err := m.Step(a); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Step(a); !errors.Is(err, ErrIgnored) {
		t.Fatalf("duplicate: %v", err)
	}
	if m.Outcome().Done {
		t.Fatal("ignored messages changed the outcome")
	}
}

func TestNewRejects(t *testing.T) {
	r := &toyReferee{}
	h := merkle.LeafHash(nil)
	for _, c := range []Config{
		{Cells: 0, Roots: [2]merkle.Hash{h, {}}, Timeout: 1},
		{Cells: 4, Roots: [2]merkle.Hash{h, h}, Timeout: 1},
		{Cells: 4, Roots: [2]merkle.Hash{h, {}}, Timeout: 0},
	} {
		if _, _, err := New(c, r, 0); err == nil {
			t.Errorf("New(%+v) succeeded", c)
		}
	}
}
