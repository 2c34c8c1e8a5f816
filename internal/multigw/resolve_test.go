package multigw

import (
	"slices"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/ledger"
)

// TestResolve: a request's model string names one model. A ledger holds
// each name for one model id; on one from before that rule, two models
// under one name resolve to the first registered, so that a caller asking
// for the name never gets some of each (the attack: register another
// model, or the same weights under the other spec, under a popular name).
// An id (either case) names its model even where a name spells it.
func TestResolve(t *testing.T) {
	a, b, c := ledger.Hash{0xa}, ledger.Hash{0xb}, ledger.Hash{0xc}
	ws := []Worker{
		{AgentID: 1, ModelID: b, ModelName: "llama", ModelHeight: 9},
		{AgentID: 2, ModelID: a, ModelName: "llama", ModelHeight: 7},
		{AgentID: 3, ModelID: a, ModelName: "llama", ModelHeight: 7},
		{AgentID: 4, ModelID: c, ModelName: a.String(), ModelHeight: 3}, // a name spelling a's id
		{AgentID: 5, ModelID: ledger.Hash{0xd}, ModelName: "tie", ModelHeight: 5},
		{AgentID: 6, ModelID: c, ModelName: "tie", ModelHeight: 5},
	}
	cases := []struct {
		model string
		want  ledger.Hash
		ok    bool
	}{
		{"llama", a, true}, // registered first
		{b.String(), b, true},
		{strings.ToUpper(b.String()), b, true},
		{a.String(), a, true}, // the id, not the model named so
		{"tie", c, true},      // same height: the lower id
		{"Llama", ledger.Hash{}, false},
		{"", ledger.Hash{}, false},
	}
	for _, tc := range cases {
		if got, ok := resolve(ws, tc.model); got != tc.want || ok != tc.ok {
			t.Errorf("resolve(%q) = %s, %v; want %s, %v", tc.model, got, ok, tc.want, tc.ok)
		}
	}
	// What /v1/models and list_models offer reaches each model.
	for _, w := range ws {
		if got, _ := resolve(ws, nameOf(ws, w)); got != w.ModelID {
			t.Errorf("agent %d: listed as %q, which reaches %s, not its model %s", w.AgentID, nameOf(ws, w), got, w.ModelID)
		}
	}
	// The workers a request for the name goes to: those of that model.
	for i := range ws {
		ws[i].Address, ws[i].Stake = ledger.Address{byte(i + 1)}, 100
	}
	s := &Server{workers: ws}
	id, ranked, ok := s.ranked("llama")
	ids := agentIDs(ranked)
	slices.Sort(ids)
	if !ok || id != a || !slices.Equal(ids, []uint64{2, 3}) {
		t.Fatalf("ranked(llama) = %s, agents %v, %v; want %s, agents [2 3]", id, ids, ok, a)
	}
}
