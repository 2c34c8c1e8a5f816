package modelid

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/tensor"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

// ChunkSize is the number of bytes in each data leaf (the last chunk of a
// tensor or of the tokenizer may be shorter).
const ChunkSize = 64 << 10

// manifestMagic is the first line of every manifest.
const manifestMagic = "verdict-model-id/1"

// Limits on what ParseManifest accepts. (The tensors are those the
// configuration names, CanonicalNames: their count is bounded by
// model.Config.Validate's.)
const (
	MaxManifest = 1 << 20
	maxBytes    = 1 << 40 // per tensor or tokenizer
)

// Region is a run of consecutive data leaves: the tokenizer or one tensor.
type Region struct {
	Name  string // "tokenizer" or the canonical tensor name
	Type  tensor.Type
	Dims  []int
	Bytes int64
	First int // index of the first data leaf
}

// Leaves is the number of data leaves of the region.
func (r Region) Leaves() int { return int((r.Bytes + ChunkSize - 1) / ChunkSize) }

// Layout is what a manifest says about the tree.
type Layout struct {
	Spec      string
	Config    model.Config // ContextLen is always 0
	Tied      bool
	BOS, EOS  int
	UNK       int
	Tokenizer Region
	Tensors   []Region
	Leaves    int // total leaves, manifest included
}

// Tensor returns the region of the named tensor.
func (l *Layout) Tensor(name string) (Region, bool) {
	for _, r := range l.Tensors {
		if r.Name == name {
			return r, true
		}
	}
	return Region{}, false
}

// Commitment is a computed model id with the tree needed for proofs.
type Commitment struct {
	Root     merkle.Hash
	Manifest []byte
	Layout   *Layout
	tree     *merkle.Tree
}

// CanonicalNames returns the canonical (GGUF) tensor names in the order of
// model.Tensors for a model with configuration c.
func CanonicalNames(c model.Config, tied bool) []string { return model.TensorNames(c, tied) }

func sameTensor(a, b *tensor.Tensor) bool {
	return a == b || a.Type == b.Type && a.ShapeIs(b.Dims...) && bytes.Equal(a.Data, b.Data)
}

// canonicalTensors lists the committed tensors: model.Tensors, with an
// output that equals the token embedding (type, shape and bytes) treated as
// tied, so that a file storing a copy gets the same id as one that ties.
func canonicalTensors(m *model.Model) ([]*tensor.Tensor, bool) {
	tied := m.Output == nil || sameTensor(m.Output, m.TokenEmbd)
	c := *m
	if tied {
		c.Output = c.TokenEmbd
	}
	return c.Tensors(), tied
}

// CanonicalTokens returns the vocabulary in SentencePiece form
// (tokenizer.Vocab.CanonicalPiece): llama2.c files store U+2581 as a plain
// space and wrap BOS and EOS in newlines; both are undone. Types missing
// from the file are derived as GGUF converters do: UNK is Unknown, BOS and
// EOS are Control, pieces of the form <0xXX> are Byte, everything else
// Normal.
func CanonicalTokens(v *tokenizer.Vocab) ([]string, []tokenizer.TokenType) {
	toks := make([]string, len(v.Tokens))
	types := make([]tokenizer.TokenType, len(v.Tokens))
	for i := range v.Tokens {
		t := v.CanonicalPiece(i)
		toks[i] = t
		switch {
		case v.Types != nil && i < len(v.Types):
			types[i] = v.Types[i]
		case i == v.UNK:
			types[i] = tokenizer.Unknown
		case i == v.BOS || i == v.EOS:
			types[i] = tokenizer.Control
		case isBytePiece(t):
			types[i] = tokenizer.Byte
		default:
			types[i] = tokenizer.Normal
		}
	}
	return toks, types
}

func isBytePiece(s string) bool {
	if len(s) != 6 || s[:3] != "<0x" || s[5] != '>' {
		return false
	}
	for _, c := range []byte(s[3:5]) {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// tokenizerBytes serialises the canonical vocabulary: per token, uint32
// byte length, the bytes, uint32 score bits, int32 type; all little-endian.
func tokenizerBytes(v *tokenizer.Vocab) ([]byte, error) {
	if len(v.Scores) != len(v.Tokens) {
		return nil, fmt.Errorf("tokenizer has %d tokens but %d scores", len(v.Tokens), len(v.Scores))
	}
	toks, types := CanonicalTokens(v)
	var b bytes.Buffer
	var w [4]byte
	for i, t := range toks {
		binary.LittleEndian.PutUint32(w[:], uint32(len(t)))
		b.Write(w[:])
		b.WriteString(t)
		binary.LittleEndian.PutUint32(w[:], math.Float32bits(v.Scores[i]))
		b.Write(w[:])
		binary.LittleEndian.PutUint32(w[:], uint32(types[i]))
		b.Write(w[:])
	}
	return b.Bytes(), nil
}

func f32hex(f float32) string { return fmt.Sprintf("0x%08x", math.Float32bits(f)) }

func dimsString(d []int) string {
	s := make([]string, len(d))
	for i, x := range d {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

// Manifest renders the layout as manifest text, the exact bytes of leaf 0.
func (l *Layout) Manifest() []byte {
	c := l.Config
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nspec %s\narch %s\ndim %d\nhidden %d\nlayers %d\nheads %d\nkv_heads %d\nvocab %d\nrope_theta %s\nnorm_eps %s\n",
		manifestMagic, l.Spec, c.Arch, c.Dim, c.Hidden, c.Layers, c.Heads, c.KVHeads, c.Vocab, f32hex(c.RopeTheta), f32hex(c.NormEps))
	// Lines for what Llama-2-style models lack, written only when set so
	// that their ids are unchanged.
	if c.HeadSize != 0 {
		fmt.Fprintf(&b, "head_dim %d\n", c.HeadSize)
	}
	if fs := features(c); len(fs) > 0 {
		fmt.Fprintf(&b, "features %s\n", strings.Join(fs, " "))
	}
	out := "separate"
	if l.Tied {
		out = "tied"
	}
	// A vocabulary may lack BOS or EOS (a GPT-2 style one) as well as UNK.
	id := func(t int) string {
		if t < 0 {
			return "none"
		}
		return strconv.Itoa(t)
	}
	fmt.Fprintf(&b, "output %s\nchunk %d\ntokenizer %d %s %s %s\n", out, ChunkSize, l.Tokenizer.Bytes, id(l.BOS), id(l.EOS), id(l.UNK))
	for _, r := range l.Tensors {
		fmt.Fprintf(&b, "tensor %s %s %s %d\n", r.Name, r.Type, dimsString(r.Dims), r.Bytes)
	}
	return []byte(b.String())
}

// layoutOf builds the layout of a checked model.
func layoutOf(m *model.Model, spec string, ts []*tensor.Tensor, tied bool, tokBytes int) *Layout {
	c := m.Config
	c.ContextLen = 0
	l := &Layout{Spec: spec, Config: c, Tied: tied, BOS: m.Vocab.BOS, EOS: m.Vocab.EOS, UNK: m.Vocab.UNK}
	leaves := 1
	l.Tokenizer = Region{Name: "tokenizer", Bytes: int64(tokBytes), First: leaves}
	leaves += l.Tokenizer.Leaves()
	names := CanonicalNames(c, tied)
	for i, t := range ts {
		r := Region{Name: names[i], Type: t.Type, Dims: append([]int(nil), t.Dims...), Bytes: int64(len(t.Data)), First: leaves}
		leaves += r.Leaves()
		l.Tensors = append(l.Tensors, r)
	}
	l.Leaves = leaves
	return l
}

// Compute hashes a model under the engine's default specification
// (engine.SpecVersion). It reads every weight once.
func Compute(m *model.Model) (*Commitment, error) { return ComputeSpec(m, engine.SpecVersion) }

// ComputeSpec hashes a model under the determinism specification spec,
// one the engine implements (engine.KVTypeOf): the same weights computed
// under another specification are another function, with another id.
func ComputeSpec(m *model.Model, spec string) (*Commitment, error) {
	cs, err := ComputeSpecs(m, spec)
	if err != nil {
		return nil, err
	}
	return cs[0], nil
}

// ComputeSpecs is ComputeSpec for each of specs, reading the weights once:
// the commitments differ in the manifest (leaf 0) only.
func ComputeSpecs(m *model.Model, specs ...string) ([]*Commitment, error) {
	for _, spec := range specs {
		if _, err := engine.KVTypeOf(spec); err != nil {
			return nil, fmt.Errorf("model id: %w", err)
		}
	}
	if m == nil || m.Vocab == nil {
		return nil, fmt.Errorf("model id: model has no tokenizer")
	}
	if err := m.Check(); err != nil {
		return nil, fmt.Errorf("model id: %w", err)
	}
	ts, tied := canonicalTensors(m)
	tok, err := tokenizerBytes(m.Vocab)
	if err != nil {
		return nil, fmt.Errorf("model id: %w", err)
	}
	// The data leaves: every chunk after the manifest (hashed together,
	// 16 chunks of equal length at a time).
	var data [][]byte
	chunk := func(d []byte) {
		for off := 0; off < len(d); off += ChunkSize {
			data = append(data, d[off:min(off+ChunkSize, len(d))])
		}
	}
	chunk(tok)
	for _, t := range ts {
		chunk(t.Data)
	}
	dataLeaves := make([]merkle.Hash, len(data))
	merkle.LeafHashes(dataLeaves, data)
	var out []*Commitment
	for _, spec := range specs {
		man := layoutOf(m, spec, ts, tied, len(tok)).Manifest()
		lay, err := ParseManifest(man)
		if err != nil {
			return nil, fmt.Errorf("model id: internal error: own manifest does not parse: %w", err)
		}
		leaves := append([]merkle.Hash{merkle.LeafHash(man)}, dataLeaves...)
		if len(leaves) != lay.Leaves {
			return nil, fmt.Errorf("model id: internal error: %d leaves, manifest says %d", len(leaves), lay.Leaves)
		}
		tree := merkle.NewTree(leaves)
		out = append(out, &Commitment{Root: tree.Root(), Manifest: man, Layout: lay, tree: tree})
	}
	return out, nil
}

// Of returns the model id under engine.SpecVersion.
func Of(m *model.Model) (merkle.Hash, error) { return OfSpec(m, engine.SpecVersion) }

// OfSpec returns the model id under the specification spec.
func OfSpec(m *model.Model, spec string) (merkle.Hash, error) {
	c, err := ComputeSpec(m, spec)
	if err != nil {
		return merkle.Hash{}, err
	}
	return c.Root, nil
}

// Proof returns the inclusion proof of a leaf.
func (c *Commitment) Proof(leaf int) ([]merkle.Hash, error) { return c.tree.Proof(leaf) }

// ChunkLeaf returns the leaf index holding byte offset off of the named
// tensor, and the offset at which that leaf's chunk starts.
func (l *Layout) ChunkLeaf(name string, off int64) (leaf int, start int64, err error) {
	r, ok := l.Tensor(name)
	if !ok {
		return 0, 0, fmt.Errorf("model has no tensor %q", name)
	}
	if off < 0 || off >= r.Bytes {
		return 0, 0, fmt.Errorf("offset %d outside tensor %s of %d bytes", off, name, r.Bytes)
	}
	return r.First + int(off/ChunkSize), off / ChunkSize * ChunkSize, nil
}

// SliceProof proves that some bytes belong to a tensor of a model: the
// manifest with its proof (leaf 0), and the chunk holding the bytes with
// its proof.
type SliceProof struct {
	Manifest      []byte
	ManifestProof []merkle.Hash
	Tensor        string
	Leaf          int
	Chunk         []byte
	ChunkProof    []merkle.Hash
}

// ProveSlice returns the proof for the chunk of tensor name holding byte off.
func (c *Commitment) ProveSlice(m *model.Model, name string, off int64) (*SliceProof, error) {
	leaf, start, err := c.Layout.ChunkLeaf(name, off)
	if err != nil {
		return nil, err
	}
	ts, tied := canonicalTensors(m)
	var data []byte
	for i, n := range CanonicalNames(m.Config, tied) {
		if n == name {
			data = ts[i].Data
		}
	}
	mp, err := c.tree.Proof(0)
	if err != nil {
		return nil, err
	}
	cp, err := c.tree.Proof(leaf)
	if err != nil {
		return nil, err
	}
	return &SliceProof{Manifest: c.Manifest, ManifestProof: mp, Tensor: name, Leaf: leaf,
		Chunk: data[start:min(start+ChunkSize, int64(len(data)))], ChunkProof: cp}, nil
}

// VerifySlice checks a slice proof against a model id and returns the
// tensor region and the chunk's offset within the tensor.
func VerifySlice(id merkle.Hash, p *SliceProof) (Region, int64, error) {
	lay, err := ParseManifest(p.Manifest)
	if err != nil {
		return Region{}, 0, err
	}
	n := uint64(lay.Leaves)
	if err := merkle.Verify(id, merkle.LeafHash(p.Manifest), 0, n, p.ManifestProof); err != nil {
		return Region{}, 0, fmt.Errorf("manifest: %w", err)
	}
	r, ok := lay.Tensor(p.Tensor)
	if !ok {
		return Region{}, 0, fmt.Errorf("model has no tensor %q", p.Tensor)
	}
	if p.Leaf < r.First || p.Leaf >= r.First+r.Leaves() {
		return Region{}, 0, fmt.Errorf("leaf %d is not a chunk of tensor %s (leaves %d..%d)", p.Leaf, p.Tensor, r.First, r.First+r.Leaves()-1)
	}
	start := int64(p.Leaf-r.First) * ChunkSize
	if want := min(r.Bytes-start, ChunkSize); int64(len(p.Chunk)) != want {
		return Region{}, 0, fmt.Errorf("chunk has %d bytes, leaf %d holds %d", len(p.Chunk), p.Leaf, want)
	}
	if err := merkle.Verify(id, merkle.LeafHash(p.Chunk), uint64(p.Leaf), n, p.ChunkProof); err != nil {
		return Region{}, 0, fmt.Errorf("chunk: %w", err)
	}
	return r, start, nil
}
