package merkle

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type rfcVectors struct {
	Leaves    []string `json:"leaves"`
	Roots     []string `json:"roots"`
	Inclusion []struct {
		Index uint64   `json:"index"`
		Size  uint64   `json:"size"`
		Proof []string `json:"proof"`
	} `json:"inclusion"`
}

func loadVectors(t *testing.T) ([][]byte, rfcVectors) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "rfc6962.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v rfcVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	leaves := make([][]byte, len(v.Leaves))
	for i, s := range v.Leaves {
		if leaves[i], err = hex.DecodeString(s); err != nil {
			t.Fatal(err)
		}
	}
	return leaves, v
}

// TestRFC6962Roots checks every way of computing a root against the
// published Certificate Transparency vectors.
func TestRFC6962Roots(t *testing.T) {
	leaves, v := loadVectors(t)
	for n := 0; n <= len(leaves); n++ {
		want := v.Roots[n]
		var b Builder
		for _, l := range leaves[:n] {
			b.Add(l)
		}
		if got := b.Root().String(); got != want {
			t.Errorf("Builder root of %d leaves = %s, want %s", n, got, want)
		}
		if got := NewTreeFromData(leaves[:n]).Root().String(); got != want {
			t.Errorf("Tree root of %d leaves = %s, want %s", n, got, want)
		}
		if got := Root(leaves[:n]).String(); got != want {
			t.Errorf("Root of %d leaves = %s, want %s", n, got, want)
		}
	}
}

func TestRFC6962Inclusion(t *testing.T) {
	leaves, v := loadVectors(t)
	for _, c := range v.Inclusion {
		tree := NewTreeFromData(leaves[:c.Size])
		got, err := tree.Proof(int(c.Index))
		if err != nil {
			t.Fatal(err)
		}
		want, err := ParseHexHashes(c.Proof, MaxProofLen)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("proof of %d/%d has %d hashes, want %d", c.Index, c.Size, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("proof of %d/%d hash %d = %s, want %s", c.Index, c.Size, i, got[i], want[i])
			}
		}
		root, _ := ParseHash(v.Roots[c.Size])
		if err := Verify(root, LeafHash(leaves[c.Index]), c.Index, c.Size, want); err != nil {
			t.Errorf("published proof %d/%d: %v", c.Index, c.Size, err)
		}
	}
}

// naiveRoot and naivePath transcribe RFC 6962 section 2.1 literally; they are
// the independent oracle for larger trees.
func naiveRoot(d []Hash) Hash {
	switch len(d) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return d[0]
	}
	k := split(len(d))
	return NodeHash(naiveRoot(d[:k]), naiveRoot(d[k:]))
}

func split(n int) int {
	k := 1
	for k*2 < n {
		k *= 2
	}
	return k
}

func naivePath(m int, d []Hash) []Hash {
	if len(d) <= 1 {
		return nil
	}
	k := split(len(d))
	if m < k {
		return append(naivePath(m, d[:k]), naiveRoot(d[k:]))
	}
	return append(naivePath(m-k, d[k:]), naiveRoot(d[:k]))
}

func testLeaves(n int) []Hash {
	hs := make([]Hash, n)
	for i := range hs {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(i)*0x9e3779b97f4a7c15)
		hs[i] = LeafHash(b[:])
	}
	return hs
}

func TestTreesAgreeWithRFCDefinition(t *testing.T) {
	for n := 0; n <= 70; n++ {
		hs := testLeaves(n)
		want := naiveRoot(hs)
		tree := NewTree(hs)
		if tree.Root() != want {
			t.Fatalf("n=%d: tree root %s, RFC definition %s", n, tree.Root(), want)
		}
		var b Builder
		for _, h := range hs {
			b.AddHash(h)
		}
		if b.Root() != want || b.Len() != uint64(n) {
			t.Fatalf("n=%d: builder root %s, RFC definition %s", n, b.Root(), want)
		}
		for i := 0; i < n; i++ {
			p, err := tree.Proof(i)
			if err != nil {
				t.Fatal(err)
			}
			np := naivePath(i, hs)
			if len(p) != len(np) {
				t.Fatalf("n=%d i=%d: proof length %d, RFC PATH %d", n, i, len(p), len(np))
			}
			for j := range p {
				if p[j] != np[j] {
					t.Fatalf("n=%d i=%d: proof hash %d differs from RFC PATH", n, i, j)
				}
			}
			if err := Verify(want, hs[i], uint64(i), uint64(n), p); err != nil {
				t.Fatalf("n=%d i=%d: %v", n, i, err)
			}
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	const n = 13
	hs := testLeaves(n)
	tree := NewTree(hs)
	root := tree.Root()
	p, _ := tree.Proof(6)
	flipped := append([]Hash(nil), p...)
	flipped[1][0] ^= 1
	cases := []struct {
		name        string
		leaf        Hash
		index, size uint64
		proof       []Hash
	}{
		{"wrong leaf", hs[5], 6, n, p},
		{"wrong index", hs[6], 7, n, p},
		{"index past size", hs[6], n, n, p},
		{"size with another shape", hs[6], 6, 8, p},
		{"larger size", hs[6], 6, 17, p},
		{"flipped hash", hs[6], 6, n, flipped},
		{"short proof", hs[6], 6, n, p[:len(p)-1]},
		{"long proof", hs[6], 6, n, append(append([]Hash(nil), p...), p[0])},
		{"empty tree", hs[6], 0, 0, nil},
		{"huge proof", hs[6], 6, n, make([]Hash, 100)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Verify(root, c.leaf, c.index, c.size, c.proof)
			if !errors.Is(err, ErrProof) {
				t.Fatalf("Verify = %v, want ErrProof", err)
			}
		})
	}
	if err := Verify(root, hs[6], 6, n, p); err != nil {
		t.Fatalf("honest proof: %v", err)
	}
	if _, err := tree.Proof(n); err == nil {
		t.Fatal("Proof(n) succeeded")
	}
	if _, err := tree.Proof(-1); err == nil {
		t.Fatal("Proof(-1) succeeded")
	}
}

func TestParseHash(t *testing.T) {
	good := "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
	if h, err := ParseHash(good); err != nil || h.String() != good {
		t.Fatalf("ParseHash(%s) = %s, %v", good, h, err)
	}
	for _, bad := range []string{"", good[:63], good + "0", "5DC9" + good[4:], "zz" + good[2:]} {
		if _, err := ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) succeeded", bad)
		}
	}
}

func FuzzVerify(f *testing.F) {
	f.Add(uint64(3), uint64(7), []byte{1, 2, 3})
	f.Add(uint64(0), uint64(1), []byte{})
	f.Add(uint64(1<<62), uint64(1<<63), make([]byte, 64*32))
	f.Fuzz(func(t *testing.T, index, size uint64, raw []byte) {
		var proof []Hash
		for len(raw) >= HashSize {
			var h Hash
			copy(h[:], raw)
			proof = append(proof, h)
			raw = raw[HashSize:]
		}
		// Never panics; an arbitrary proof against an arbitrary root fails.
		if err := Verify(Hash{1}, Hash{2}, index, size, proof); err == nil {
			t.Fatalf("random proof verified")
		}
	})
}

func FuzzTree(f *testing.F) {
	f.Add(uint16(1), uint16(0))
	f.Add(uint16(100), uint16(63))
	f.Fuzz(func(t *testing.T, n, i uint16) {
		if n == 0 || n > 3000 {
			return
		}
		i %= n
		hs := testLeaves(int(n))
		tree := NewTree(hs)
		p, err := tree.Proof(int(i))
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(tree.Root(), hs[i], uint64(i), uint64(n), p); err != nil {
			t.Fatal(err)
		}
		var b Builder
		for _, h := range hs {
			b.AddHash(h)
		}
		if b.Root() != tree.Root() {
			t.Fatal("builder and tree disagree")
		}
	})
}

func FuzzParseHash(f *testing.F) {
	f.Add("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHash(s)
		if err == nil && h.String() != s {
			t.Fatalf("ParseHash(%q) accepted a non-canonical form", s)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Fatalf("multi-line error %q", err)
		}
	})
}

func ExampleTree_Proof() {
	leaves := [][]byte{[]byte("a"), []byte("b"), []byte("c")}
	tree := NewTreeFromData(leaves)
	proof, _ := tree.Proof(2)
	err := Verify(tree.Root(), LeafHash([]byte("c")), 2, 3, proof)
	fmt.Println(len(proof), err)
	// Output: 1 <nil>
}

// The leaf hashes of four leaves and the two nodes above them, each
// level hashed in one call.
func ExampleNodeHashes() {
	leaves := make([]Hash, 4)
	LeafHashes(leaves, [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d")})
	nodes := make([]Hash, 2)
	NodeHashes(nodes, leaves)
	fmt.Println(nodes[0].String()[:16], nodes[1].String()[:16], nodes[0] == NodeHash(leaves[0], leaves[1]))
	// Output: b137985ff484fb60 dbbd68c325614a73 true
}

func BenchmarkBuilder64KiB(b *testing.B) {
	data := make([]byte, 64<<10)
	b.SetBytes(int64(len(data)))
	var bl Builder
	for b.Loop() {
		bl.Add(data)
	}
}

func TestRangeHash(t *testing.T) {
	for n := 1; n <= 40; n++ {
		hs := testLeaves(n)
		tree := NewTree(hs)
		// Walk the RFC 6962 recursion and check every node.
		var walk func(s, e int)
		walk = func(s, e int) {
			got, err := tree.RangeHash(s, e)
			if err != nil {
				t.Fatalf("n=%d [%d,%d): %v", n, s, e, err)
			}
			if want := naiveRoot(hs[s:e]); got != want {
				t.Fatalf("n=%d [%d,%d): wrong hash", n, s, e)
			}
			if e-s > 1 {
				k := SplitPoint(e - s)
				if k != split(e-s) {
					t.Fatalf("SplitPoint(%d) = %d, want %d", e-s, k, split(e-s))
				}
				walk(s, s+k)
				walk(s+k, e)
			}
		}
		walk(0, n)
		if n > 3 {
			if _, err := tree.RangeHash(1, 3); err == nil {
				t.Fatalf("n=%d: unaligned range accepted", n)
			}
		}
		if _, err := tree.RangeHash(0, n+1); err == nil {
			t.Fatalf("n=%d: range past the end accepted", n)
		}
	}
}

// TestNewTreeLarge: trees large enough to be hashed on several goroutines
// have the Builder's root and verifiable proofs.
func TestNewTreeLarge(t *testing.T) {
	for _, n := range []int{2 * parallelPairs * 2, 2*parallelPairs*3 + 1, 50001} {
		data := make([][]byte, n)
		var b Builder
		for i := range data {
			data[i] = []byte{byte(i), byte(i >> 8), byte(i >> 16)}
			b.Add(data[i])
		}
		tr := NewTreeFromData(data)
		if tr.Root() != b.Root() {
			t.Fatalf("%d leaves: root %s, builder %s", n, tr.Root(), b.Root())
		}
		for _, i := range []int{0, n / 3, n - 1} {
			p, err := tr.Proof(i)
			if err != nil {
				t.Fatal(err)
			}
			if err := Verify(tr.Root(), LeafHash(data[i]), uint64(i), uint64(n), p); err != nil {
				t.Fatalf("%d leaves, leaf %d: %v", n, i, err)
			}
		}
	}
}

// TestBatchHashes: NodeHashes and LeafHashes (16 at a time) give NodeHash
// and LeafHash of every pair and leaf, for every count up to 40 and leaves
// of equal and of mixed lengths.
func TestBatchHashes(t *testing.T) {
	for n := 0; n <= 40; n++ {
		in := testLeaves(2 * n)
		out := make([]Hash, n)
		NodeHashes(out, in)
		for j := range out {
			if want := NodeHash(in[2*j], in[2*j+1]); out[j] != want {
				t.Fatalf("%d pairs: node %d = %s, want %s", n, j, out[j], want)
			}
		}
		for _, mixed := range []bool{false, true} {
			leaves := make([][]byte, n)
			for i := range leaves {
				l := 200
				if mixed {
					l += i % 3
				}
				leaves[i] = make([]byte, l)
				leaves[i][i%l] = byte(i + 1)
			}
			hs := make([]Hash, n)
			LeafHashes(hs, leaves)
			for i := range hs {
				if want := LeafHash(leaves[i]); hs[i] != want {
					t.Fatalf("%d leaves (mixed lengths %v): leaf %d = %s, want %s", n, mixed, i, hs[i], want)
				}
			}
		}
	}
}

// BenchmarkNodeHashes hashes the 32768 nodes above 65536 leaf hashes on
// one goroutine: NodeHashes (16 at a time where the CPU allows) against
// NodeHash one by one.
func BenchmarkNodeHashes(b *testing.B) {
	hs := testLeaves(1 << 16)
	out := make([]Hash, len(hs)/2)
	for _, batch := range []bool{true, false} {
		name := "NodeHashes"
		if !batch {
			name = "NodeHash"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				if batch {
					NodeHashes(out, hs)
					continue
				}
				for j := range out {
					out[j] = NodeHash(hs[2*j], hs[2*j+1])
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(out)), "ns/node")
		})
	}
}
