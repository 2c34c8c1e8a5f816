package dispute

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/merkle"
)

// TestFaultList: every code is a party fault or a void fault, never both,
// with its own description; a code outside the list is neither.
func TestFaultList(t *testing.T) {
	seen := map[Fault]bool{}
	for _, f := range Faults() {
		if seen[f] || f == "" {
			t.Errorf("fault %q listed twice or empty", f)
		}
		seen[f] = true
		if f.IsParty() == f.IsVoid() {
			t.Errorf("fault %q: party %v, void %v", f, f.IsParty(), f.IsVoid())
		}
		if d := f.Describe(); d == "" || strings.HasPrefix(d, "unknown") {
			t.Errorf("fault %q described %q", f, d)
		}
	}
	for _, f := range []Fault{"", "Timeout", "did not answer round 4 by height 120"} {
		if f.IsParty() || f.IsVoid() {
			t.Errorf("%q is a fault", f)
		}
	}
}

// failRef is a referee that cannot recompute any cell.
type failRef struct{ toyReferee }

func (*failRef) Recompute(int, [][]byte) ([]byte, error) {
	return nil, errors.New("engine: unsupported tensor type")
}

// TestOutcomeFaults: each way a game ends records its code beside its
// words: a forfeit its given fault, a referee failure no loser and
// referee_failed; a forfeit that is no party fault is refused.
func TestOutcomeFaults(t *testing.T) {
	honest := honestTrace(9)
	ta, pa := responder(A, honest)
	tb, pb := responder(B, liarTrace(honest, 3, "consistent", rand.New(rand.NewPCG(3, 4))))
	roots := [2]merkle.Hash{ta.Root(), tb.Root()}

	m, qs, err := New(Config{Forfeit: [2]Loss{{Fault: FaultSpecMismatch, Why: "spec verdict-det/2+kv16, model id of verdict-det/2"}}}, nil, 5)
	if o := m.Outcome(); err != nil || len(qs) != 0 || !o.Done || o.Lost != [2]bool{true, false} ||
		o.Fault != [2]Fault{FaultSpecMismatch, ""} || !strings.Contains(o.Reason[A], "kv16") || o.Void != "" {
		t.Fatalf("forfeit: outcome %+v, %d queries, error %v", o, len(qs), err)
	}
	for _, bad := range []Loss{{Fault: FaultRefereeFailed, Why: "x"}, {Why: "a reason without a code"}, {Fault: "cheated"}} {
		if _, _, err := New(Config{Cells: 9, Roots: roots, Timeout: 5, Forfeit: [2]Loss{{}, bad}}, &toyReferee{}, 5); err == nil {
			t.Errorf("forfeit %+v accepted", bad)
		}
	}

	m, qs, err = New(Config{Cells: 9, Roots: roots, Timeout: 5}, &failRef{}, 5)
	if err != nil {
		t.Fatal(err)
	}
	for len(qs) > 0 {
		q := qs[0]
		qs = nil
		for _, p := range []player{pa, pb} {
			for _, a := range p(q) {
				next, _ := m.Step(a)
				qs = append(qs, next...)
			}
		}
	}
	if o := m.Outcome(); !o.Done || o.Lost != [2]bool{} || o.Fault != [2]Fault{} || o.Void != FaultRefereeFailed ||
		o.Err == nil || !strings.Contains(o.Err.Error(), "unsupported tensor type") {
		t.Fatalf("referee failure: outcome %+v", o)
	}
}
