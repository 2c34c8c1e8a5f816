package merkle

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"sync"

	"github.com/verdictnet/verdict/internal/sha256x16"
)

// HashSize is the size of every hash in a tree.
const HashSize = sha256.Size

// Hash is a SHA-256 digest: a leaf hash, an interior node or a root.
type Hash [HashSize]byte

// String returns the lower-case hex form.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ParseHash decodes 64 hex digits (either case is rejected unless lower case,
// so that a hash has a single text form).
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*HashSize {
		return h, fmt.Errorf("hash %.80q: want %d hex digits, have %d", s, 2*HashSize, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return h, fmt.Errorf("hash %.80q: byte %d is not a lower-case hex digit", s, i)
		}
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("hash %.80q: %w", s, err)
	}
	return h, nil
}

// EmptyRoot is the root of the tree with no leaves: SHA-256 of nothing.
var EmptyRoot = Hash(sha256.Sum256(nil))

// LeafHash returns SHA-256(0x00 || data).
func LeafHash(data []byte) Hash {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(data)
	var out Hash
	h.Sum(out[:0])
	return out
}

// NodeHash returns SHA-256(0x01 || left || right).
func NodeHash(left, right Hash) Hash {
	var buf [1 + 2*HashSize]byte
	buf[0] = 1
	copy(buf[1:], left[:])
	copy(buf[1+HashSize:], right[:])
	return sha256.Sum256(buf[:])
}

// NodeHashes sets out[j] = NodeHash(in[2j], in[2j+1]) for every j <
// len(out) (in needs 2*len(out) hashes), 16 at a time on the multi-buffer
// SHA-256 of sha256x16 where the CPU has it.
func NodeHashes(out []Hash, in []Hash) {
	in = in[:2*len(out)]
	var parts [2 * sha256x16.Lanes][]byte
	for lo := 0; lo < len(out); lo += sha256x16.Lanes {
		n := min(sha256x16.Lanes, len(out)-lo)
		for j := range 2 * n {
			parts[j] = in[2*lo+j][:]
		}
		sha256x16.Sum(out[lo:lo+n], nodePrefix[:], parts[:2*n])
	}
}

// LeafHashes sets out[i] = LeafHash(leaves[i]) for every i, hashing
// leaves of equal length 16 at a time (see NodeHashes).
func LeafHashes(out []Hash, leaves [][]byte) {
	sha256x16.Sum(out[:len(leaves)], leafPrefix[:], leaves)
}

// The domain-separation prefixes of leaves and interior nodes.
var (
	leafPrefix = [1]byte{0}
	nodePrefix = [1]byte{1}
)

// Builder computes the root of a tree from leaves appended in order, keeping
// only one hash per set bit of the leaf count. The zero value is an empty
// tree.
type Builder struct {
	stack []Hash // roots of perfect subtrees, largest first
	n     uint64
}

// Add appends one leaf given its data.
func (b *Builder) Add(data []byte) { b.AddHash(LeafHash(data)) }

// AddHash appends one leaf given its leaf hash.
func (b *Builder) AddHash(h Hash) {
	b.stack = append(b.stack, h)
	b.n++
	// Merge equal-sized perfect subtrees: one merge per trailing zero bit.
	for k := bits.TrailingZeros64(b.n); k > 0; k-- {
		l := len(b.stack)
		b.stack[l-2] = NodeHash(b.stack[l-2], b.stack[l-1])
		b.stack = b.stack[:l-1]
	}
}

// Len is the number of leaves added.
func (b *Builder) Len() uint64 { return b.n }

// Root returns the root of the leaves added so far.
func (b *Builder) Root() Hash {
	if len(b.stack) == 0 {
		return EmptyRoot
	}
	h := b.stack[len(b.stack)-1]
	for i := len(b.stack) - 2; i >= 0; i-- {
		h = NodeHash(b.stack[i], h)
	}
	return h
}

// Root returns the root over the given leaf data.
func Root(leaves [][]byte) Hash {
	var b Builder
	for _, l := range leaves {
		b.Add(l)
	}
	return b.Root()
}

// parallelPairs is the number of node pairs per goroutine from which
// NewTree spreads a level over several.
const parallelPairs = 4096

// Tree holds every level of a tree's hashes (2n hashes for n leaves, never
// the leaf data) so that it can produce inclusion proofs.
type Tree struct {
	levels [][]Hash // levels[0] are the leaf hashes; the last level has one hash
}

// NewTree builds a tree over the given leaf hashes. The slice is kept.
// Large levels are hashed on all CPUs (a trace tree of a long receipt has
// hundreds of thousands of leaves); the hashes do not depend on it.
func NewTree(leafHashes []Hash) *Tree {
	t := &Tree{levels: [][]Hash{leafHashes}}
	cur := leafHashes
	for len(cur) > 1 {
		next := make([]Hash, (len(cur)+1)/2)
		pairs := len(cur) / 2
		hashPairs := func(lo, hi int) { NodeHashes(next[lo:hi], cur[2*lo:2*hi]) }
		if workers := min(runtime.GOMAXPROCS(0), pairs/parallelPairs); workers > 1 {
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					hashPairs(pairs*w/workers, pairs*(w+1)/workers)
				}()
			}
			wg.Wait()
		} else {
			hashPairs(0, pairs)
		}
		if len(cur)%2 == 1 {
			// An unpaired last node moves up unchanged: this is exactly the
			// RFC 6962 split at the largest power of two.
			next[len(next)-1] = cur[len(cur)-1]
		}
		t.levels = append(t.levels, next)
		cur = next
	}
	return t
}

// NewTreeFromData builds a tree over leaf data.
func NewTreeFromData(leaves [][]byte) *Tree {
	hs := make([]Hash, len(leaves))
	LeafHashes(hs, leaves)
	return NewTree(hs)
}

// Len is the number of leaves.
func (t *Tree) Len() int { return len(t.levels[0]) }

// Leaf returns the hash of leaf i.
func (t *Tree) Leaf(i int) Hash { return t.levels[0][i] }

// Root returns the tree's root.
func (t *Tree) Root() Hash {
	top := t.levels[len(t.levels)-1]
	if len(top) == 0 {
		return EmptyRoot
	}
	return top[0]
}

// Proof returns the inclusion proof (RFC 6962 audit path, leaf side first)
// of leaf i.
func (t *Tree) Proof(i int) ([]Hash, error) {
	if i < 0 || i >= t.Len() {
		return nil, fmt.Errorf("merkle: leaf %d out of range for a tree of %d leaves", i, t.Len())
	}
	var p []Hash
	for _, lv := range t.levels[:len(t.levels)-1] {
		if s := i ^ 1; s < len(lv) {
			p = append(p, lv[s])
		}
		i >>= 1
	}
	return p, nil
}

// MaxProofLen is the longest proof any tree of at most 2^63 leaves has.
const MaxProofLen = 63

// ErrProof is returned (wrapped) by Verify when a proof does not verify.
var ErrProof = errors.New("merkle: inclusion proof does not verify")

// RootFromProof recomputes the root implied by a leaf hash at index in a tree
// of size leaves and its proof (RFC 9162 section 2.1.3.2). It fails when the
// proof has the wrong length for that index and size.
func RootFromProof(leaf Hash, index, size uint64, proof []Hash) (Hash, error) {
	if index >= size {
		return Hash{}, fmt.Errorf("merkle: leaf index %d out of range for a tree of %d leaves: %w", index, size, ErrProof)
	}
	if len(proof) > MaxProofLen {
		return Hash{}, fmt.Errorf("merkle: proof of %d hashes is too long: %w", len(proof), ErrProof)
	}
	fn, sn := index, size-1
	r := leaf
	for _, p := range proof {
		if sn == 0 {
			return Hash{}, fmt.Errorf("merkle: proof of %d hashes is too long for leaf %d of %d: %w", len(proof), index, size, ErrProof)
		}
		if fn&1 == 1 || fn == sn {
			r = NodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = NodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return Hash{}, fmt.Errorf("merkle: proof of %d hashes is too short for leaf %d of %d: %w", len(proof), index, size, ErrProof)
	}
	return r, nil
}

// Verify checks that leaf (a leaf hash) is leaf number index of the tree of
// size leaves with the given root.
func Verify(root, leaf Hash, index, size uint64, proof []Hash) error {
	r, err := RootFromProof(leaf, index, size, proof)
	if err != nil {
		return err
	}
	if r != root {
		return fmt.Errorf("merkle: leaf %d of %d: proof leads to root %s, want %s: %w", index, size, r, root, ErrProof)
	}
	return nil
}

// HexHashes returns the hex forms of hs.
func HexHashes(hs []Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.String()
	}
	return out
}

// ParseHexHashes decodes hex hashes, at most max of them.
func ParseHexHashes(ss []string, max int) ([]Hash, error) {
	if len(ss) > max {
		return nil, fmt.Errorf("%d hashes, at most %d allowed", len(ss), max)
	}
	out := make([]Hash, len(ss))
	for i, s := range ss {
		h, err := ParseHash(s)
		if err != nil {
			return nil, fmt.Errorf("hash %d: %w", i, err)
		}
		out[i] = h
	}
	return out, nil
}

// SplitPoint returns k, the size of the left subtree of a tree of n > 1
// leaves: the largest power of two smaller than n.
func SplitPoint(n int) int {
	if n < 2 {
		return 0
	}
	return 1 << (bits.Len(uint(n-1)) - 1)
}

// RangeHash returns the hash of the subtree over leaves [start, end), which
// must be a node of the tree: end-start = 2^k with start a multiple of 2^k,
// or the right edge (end = Len) of such a range.
func (t *Tree) RangeHash(start, end int) (Hash, error) {
	n := t.Len()
	if start < 0 || end > n || start >= end {
		return Hash{}, fmt.Errorf("merkle: range [%d,%d) outside a tree of %d leaves", start, end, n)
	}
	k := bits.Len(uint(end - start - 1)) // ceil(log2(end-start))
	size := 1 << k
	if start%size != 0 || (end-start != size && end != n) || k >= len(t.levels) {
		return Hash{}, fmt.Errorf("merkle: range [%d,%d) is not a node of a tree of %d leaves", start, end, n)
	}
	return t.levels[k][start>>k], nil
}
