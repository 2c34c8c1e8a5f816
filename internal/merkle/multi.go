package merkle

import (
	"fmt"
	"sort"
)

// MultiProof returns the hashes that, with the leaf hashes of the given
// leaves (sorted ascending, no duplicates), determine the root: the hash of
// every maximal subtree holding none of them, in depth-first, left-to-right
// order of the RFC 6962 tree. Leaves that share subtrees share their proof.
func (t *Tree) MultiProof(leaves []int) ([]Hash, error) {
	if err := checkIndices(leaves, t.Len()); err != nil {
		return nil, err
	}
	var out []Hash
	var walk func(start, end int, idx []int)
	walk = func(start, end int, idx []int) {
		if len(idx) == 0 {
			h, _ := t.RangeHash(start, end)
			out = append(out, h)
			return
		}
		if end-start == 1 {
			return
		}
		mid := start + SplitPoint(end-start)
		i := sort.SearchInts(idx, mid)
		walk(start, mid, idx[:i])
		walk(mid, end, idx[i:])
	}
	walk(0, t.Len(), leaves)
	return out, nil
}

func checkIndices(leaves []int, n int) error {
	if len(leaves) == 0 {
		return fmt.Errorf("merkle: multi-proof of no leaves")
	}
	for i, l := range leaves {
		if l < 0 || l >= n {
			return fmt.Errorf("merkle: leaf %d out of range for a tree of %d leaves", l, n)
		}
		if i > 0 && l <= leaves[i-1] {
			return fmt.Errorf("merkle: multi-proof leaves not strictly ascending at %d", l)
		}
	}
	return nil
}

// MaxMultiProof bounds the hashes VerifyMulti accepts.
const MaxMultiProof = 1 << 22

// VerifyMulti checks that hashes are the leaf hashes of the given leaves
// (strictly ascending) of the tree of size leaves with the given root.
func VerifyMulti(root Hash, size int, leaves []int, hashes []Hash, proof []Hash) error {
	if size <= 0 || size > 1<<48 {
		return fmt.Errorf("merkle: tree size %d: %w", size, ErrProof)
	}
	if err := checkIndices(leaves, size); err != nil {
		return fmt.Errorf("%w: %w", err, ErrProof)
	}
	if len(hashes) != len(leaves) {
		return fmt.Errorf("merkle: %d leaf hashes for %d leaves: %w", len(hashes), len(leaves), ErrProof)
	}
	if len(proof) > MaxMultiProof {
		return fmt.Errorf("merkle: multi-proof of %d hashes is too long: %w", len(proof), ErrProof)
	}
	next := 0
	short := false
	var walk func(start, end int, idx []int, hs []Hash) Hash
	walk = func(start, end int, idx []int, hs []Hash) Hash {
		if len(idx) == 0 {
			if next >= len(proof) {
				short = true
				return Hash{}
			}
			next++
			return proof[next-1]
		}
		if end-start == 1 {
			return hs[0]
		}
		mid := start + SplitPoint(end-start)
		i := sort.SearchInts(idx, mid)
		l := walk(start, mid, idx[:i], hs[:i])
		r := walk(mid, end, idx[i:], hs[i:])
		return NodeHash(l, r)
	}
	got := walk(0, size, leaves, hashes)
	switch {
	case short:
		return fmt.Errorf("merkle: multi-proof too short: %w", ErrProof)
	case next != len(proof):
		return fmt.Errorf("merkle: multi-proof has %d unused hashes: %w", len(proof)-next, ErrProof)
	case got != root:
		return fmt.Errorf("merkle: multi-proof leads to root %s, want %s: %w", got, root, ErrProof)
	}
	return nil
}
