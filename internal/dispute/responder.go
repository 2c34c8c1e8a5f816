package dispute

import (
	"fmt"

	"github.com/verdictnet/verdict/internal/merkle"
)

// Responder answers queries for one party from its trace.
type Responder struct {
	Party Party
	Tree  *merkle.Tree
	// Value returns the state after cell i (leaf i's data).
	Value func(i int) ([]byte, error)
}

// Answer returns the party's answer to a query.
func (r *Responder) Answer(q Message) (Message, error) {
	switch q.Kind {
	case OpenNode:
		if q.End-q.Start < 2 {
			return Message{}, fmt.Errorf("dispute: node [%d,%d) has no children", q.Start, q.End)
		}
		k := merkle.SplitPoint(q.End - q.Start)
		l, err := r.Tree.RangeHash(q.Start, q.Start+k)
		if err != nil {
			return Message{}, fmt.Errorf("dispute: %w", err)
		}
		rh, err := r.Tree.RangeHash(q.Start+k, q.End)
		if err != nil {
			return Message{}, fmt.Errorf("dispute: %w", err)
		}
		return Message{Kind: Node, From: r.Party, Round: q.Round, Start: q.Start, End: q.End, Left: l, Right: rh}, nil
	case OpenLeaves:
		vals := make([][]byte, len(q.Leaves))
		for i, l := range q.Leaves {
			v, err := r.Value(l)
			if err != nil {
				return Message{}, fmt.Errorf("dispute: leaf %d: %w", l, err)
			}
			if v == nil {
				v = []byte{}
			}
			vals[i] = v
		}
		p, err := r.Tree.MultiProof(q.Leaves)
		if err != nil {
			return Message{}, fmt.Errorf("dispute: %w", err)
		}
		return Message{Kind: LeafValues, From: r.Party, Round: q.Round, Start: q.Start, End: q.End, Leaves: append([]int(nil), q.Leaves...), Values: vals, Proof: p}, nil
	}
	return Message{}, fmt.Errorf("dispute: %s is not a query", q.Kind)
}
