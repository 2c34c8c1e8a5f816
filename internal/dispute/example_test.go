package dispute_test

import (
	"fmt"

	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/merkle"
)

// double is a computation whose cell i doubles the state (one byte).
type double struct{}

func (double) Inputs(i int) []int {
	if i == 0 {
		return nil
	}
	return []int{i - 1}
}

func (double) Recompute(i int, ins [][]byte) ([]byte, error) {
	in := byte(1) // the agreed input
	if i > 0 {
		in = ins[0][0]
	}
	return []byte{2 * in}, nil
}

func ExampleNew() {
	honest := [][]byte{{2}, {4}, {8}, {16}, {32}}
	liar := [][]byte{{2}, {4}, {9}, {18}, {36}} // wrong from cell 2 on
	trees := [2]*merkle.Tree{merkle.NewTreeFromData(honest), merkle.NewTreeFromData(liar)}
	values := [2][][]byte{honest, liar}
	var players [2]*dispute.Responder
	for p := range players {
		p := p
		players[p] = &dispute.Responder{Party: dispute.Party(p), Tree: trees[p],
			Value: func(i int) ([]byte, error) { return values[p][i], nil }}
	}
	m, queries, _ := dispute.New(dispute.Config{Cells: 5, Roots: [2]merkle.Hash{trees[0].Root(), trees[1].Root()}, Timeout: 10}, double{}, 100)
	for len(queries) > 0 {
		q := queries[0]
		queries = nil
		for _, pl := range players {
			a, _ := pl.Answer(q)
			next, _ := m.Step(a)
			queries = append(queries, next...)
		}
	}
	out := m.Outcome()
	fmt.Println("first bad cell:", out.Cell, "A lost:", out.Lost[dispute.A], "B lost:", out.Lost[dispute.B], "rounds:", m.Rounds())
	// Output: first bad cell: 2 A lost: false B lost: true rounds: 4
}
