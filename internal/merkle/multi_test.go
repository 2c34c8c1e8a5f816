package merkle

import (
	"errors"
	"math/rand/v2"
	"sort"
	"testing"
)

func pick(rng *rand.Rand, n, k int) []int {
	set := map[int]bool{}
	for len(set) < k {
		set[rng.IntN(n)] = true
	}
	out := make([]int, 0, k)
	for i := range set {
		out = append(out, i)
	}
	sort.Ints(out)
	return out
}

func TestMultiProof(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 1; n <= 70; n++ {
		hs := testLeaves(n)
		tree := NewTree(hs)
		for trial := 0; trial < 10; trial++ {
			k := 1 + rng.IntN(n)
			idx := pick(rng, n, k)
			p, err := tree.MultiProof(idx)
			if err != nil {
				t.Fatal(err)
			}
			lh := make([]Hash, k)
			for i, j := range idx {
				lh[i] = hs[j]
			}
			if err := VerifyMulti(tree.Root(), n, idx, lh, p); err != nil {
				t.Fatalf("n=%d idx=%v: %v", n, idx, err)
			}
			// A single leaf's multi-proof has the same hashes as its
			// inclusion proof (in depth-first order).
			if k == 1 {
				single, _ := tree.Proof(idx[0])
				if len(single) != len(p) {
					t.Fatalf("n=%d: multi-proof of one leaf has %d hashes, proof %d", n, len(p), len(single))
				}
				a, b := HexHashes(p), HexHashes(single)
				sort.Strings(a)
				sort.Strings(b)
				for i := range a {
					if a[i] != b[i] {
						t.Fatalf("n=%d: multi-proof of one leaf differs from its inclusion proof", n)
					}
				}
			}
			bad := append([]Hash(nil), lh...)
			bad[rng.IntN(k)][0] ^= 1
			if err := VerifyMulti(tree.Root(), n, idx, bad, p); !errors.Is(err, ErrProof) {
				t.Fatalf("tampered leaf: %v", err)
			}
			if len(p) > 0 {
				if err := VerifyMulti(tree.Root(), n, idx, lh, p[1:]); !errors.Is(err, ErrProof) {
					t.Fatalf("short proof: %v", err)
				}
			}
			if err := VerifyMulti(tree.Root(), n, idx, lh, append(p, Hash{})); !errors.Is(err, ErrProof) {
				t.Fatalf("long proof: %v", err)
			}
		}
	}
	tree := NewTree(testLeaves(8))
	for _, bad := range [][]int{nil, {3, 3}, {4, 2}, {8}, {-1}} {
		if _, err := tree.MultiProof(bad); err == nil {
			t.Errorf("MultiProof(%v) succeeded", bad)
		}
	}
}

func TestMultiProofRangeIsCompact(t *testing.T) {
	const n = 1 << 14
	tree := NewTree(testLeaves(n))
	idx := make([]int, 256)
	for i := range idx {
		idx[i] = 5000 + i
	}
	p, err := tree.MultiProof(idx)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) > 2*14 {
		t.Fatalf("contiguous range of 256 leaves needs %d hashes", len(p))
	}
}

func FuzzVerifyMulti(f *testing.F) {
	f.Add(uint16(10), []byte{1, 3, 7}, []byte{0})
	f.Fuzz(func(t *testing.T, n uint16, idxb []byte, raw []byte) {
		idx := make([]int, 0, len(idxb))
		for _, b := range idxb {
			idx = append(idx, int(b))
		}
		var proof []Hash
		for len(raw) >= HashSize {
			var h Hash
			copy(h[:], raw)
			proof = append(proof, h)
			raw = raw[HashSize:]
		}
		hs := make([]Hash, len(idx))
		if err := VerifyMulti(Hash{9}, int(n), idx, hs, proof); err == nil {
			t.Fatal("random multi-proof verified")
		}
	})
}
