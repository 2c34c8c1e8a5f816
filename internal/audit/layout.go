package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"sort"

	"github.com/verdictnet/verdict/internal/model"
)

// Layout fixes the leaf order of a trace tree.
type Layout struct {
	Layers, Dim, KVHeads, HeadDim int
	// Heads is the number of query heads; 0 means Dim/HeadDim (a model
	// whose heads fill the hidden state exactly).
	Heads          int
	Prompt, Output int // token counts of the receipt
}

// NewLayout returns the layout for a model configuration and a receipt's
// prompt and output lengths.
func NewLayout(c model.Config, prompt, output int) Layout {
	return Layout{Layers: c.Layers, Dim: c.Dim, KVHeads: c.KVHeads, HeadDim: c.HeadDim(), Heads: c.Heads, Prompt: prompt, Output: output}
}

// Positions is the number of fed positions: the prompt and every output
// token but the last.
func (l Layout) Positions() int { return l.Prompt + l.Output - 1 }

// The trace tree is in computation order, one block of leaves per layer
// (every leaf's inputs come before it): the states entering the layer at
// every position, then the key/value leaves of each key/value head at every
// position (head-major: one head's keys and values of positions 0..p are a
// contiguous range), then, for every position, the attention outputs of
// each key/value head's query heads; after the last block, the final
// hidden state of every position.
func (l Layout) block() int { return l.Positions() * (1 + 2*l.KVHeads) }

// XLeaf is the index of the leaf holding the hidden state entering layer
// layer at position p; layer = Layers gives the final hidden state.
func (l Layout) XLeaf(layer, p int) int { return layer*l.block() + p }

// KVLeaf is the index of the key/value leaf of head h of layer layer at
// position p.
func (l Layout) KVLeaf(layer, h, p int) int {
	T := l.Positions()
	return layer*l.block() + T + h*T + p
}

// ALeaf is the index of the attention output at position p of the query
// heads of layer layer that read key/value head h. The attention leaves of
// one position are adjacent (position-major), so the whole attention
// output of a layer at a position is one contiguous range of leaves.
func (l Layout) ALeaf(layer, h, p int) int {
	T := l.Positions()
	return layer*l.block() + T + l.KVHeads*T + p*l.KVHeads + h
}

// QDim is the width of a layer's whole attention output at one position:
// Heads*HeadDim (which is Dim for Llama-2-style models, not for qwen3).
func (l Layout) QDim() int {
	if l.Heads == 0 {
		return l.Dim
	}
	return l.Heads * l.HeadDim
}

// AWidth is the number of floats of an attention leaf: the outputs of the
// Heads/KVHeads query heads that read one key/value head.
func (l Layout) AWidth() int { return l.QDim() / l.KVHeads }

// Leaves is the number of leaves of the trace tree.
func (l Layout) Leaves() int { return l.Layers*l.block() + l.Positions() }

// Leaf describes trace leaf i: its kind ('x' state, 'k' key/value, 'a'
// attention), layer, head and position.
func (l Layout) Leaf(i int) (kind byte, layer, h, p int) {
	T := l.Positions()
	layer, r := i/l.block(), i%l.block()
	switch {
	case layer == l.Layers || r < T:
		return 'x', layer, 0, r
	case r < T+l.KVHeads*T:
		return 'k', layer, (r - T) / T, (r - T) % T
	}
	r -= T + l.KVHeads*T
	return 'a', layer, r % l.KVHeads, r / l.KVHeads
}

// Cells is the number of auditable cells: one per (position, layer), then
// one per output token's logit vector.
func (l Layout) Cells() int { return l.Positions()*l.Layers + l.Output }

// Cell describes cell c: a layer cell (P, Layer) or, when Logits, the
// logit vector of output token Index (computed at position P).
type Cell struct {
	Index    int
	Logits   bool
	P, Layer int
}

// Cell decodes a cell number.
func (l Layout) Cell(c int) (Cell, error) {
	if c < 0 || c >= l.Cells() {
		return Cell{}, fmt.Errorf("cell %d out of range 0..%d", c, l.Cells()-1)
	}
	n := l.Positions() * l.Layers
	if c < n {
		return Cell{Index: c, P: c / l.Layers, Layer: c % l.Layers}, nil
	}
	j := c - n
	return Cell{Index: c, Logits: true, P: l.Prompt - 1 + j, Layer: j}, nil
}

// check validates a layout built from untrusted numbers.
func (l Layout) check() error {
	if l.Prompt < 1 || l.Output < 1 {
		return fmt.Errorf("receipt needs a prompt and an output")
	}
	if l.Layers < 1 || l.KVHeads < 1 || l.HeadDim < 1 || l.Dim < 1 || l.Heads < 0 || l.QDim() < 1 || l.QDim()%(l.KVHeads*l.HeadDim) != 0 {
		return fmt.Errorf("bad model shape")
	}
	if int64(l.Positions())*(1+int64(l.Layers)*(1+2*int64(l.KVHeads))) > 1<<40 {
		return fmt.Errorf("trace of %d positions is too large", l.Positions())
	}
	return nil
}

// challengeWord returns the i-th 64-bit word of the challenge stream:
// the first 8 bytes, little-endian, of
// SHA-256("verdict/challenge/v1" || 0x00 || receipt id || seed (8 bytes LE) || tag || i (8 bytes LE)).
func challengeWord(id [32]byte, seed uint64, tag byte, i uint64) uint64 {
	var b [20 + 1 + 32 + 8 + 1 + 8]byte
	copy(b[:], "verdict/challenge/v1")
	b[20] = 0
	copy(b[21:], id[:])
	binary.LittleEndian.PutUint64(b[53:], seed)
	b[61] = tag
	binary.LittleEndian.PutUint64(b[62:], i)
	h := sha256.Sum256(b[:])
	return binary.LittleEndian.Uint64(h[:8])
}

// uniform maps the challenge stream to a uniform number below n by
// rejection: words at or above the largest multiple of n are skipped.
func uniform(id [32]byte, seed uint64, tag byte, ctr *uint64, n uint64) uint64 {
	limit := math.MaxUint64 - math.MaxUint64%n
	for {
		w := challengeWord(id, seed, tag, *ctr)
		*ctr++
		if w < limit {
			return w % n
		}
	}
}

// OpeningsBudget is the most bytes the openings of one challenge may take
// so that a worker can always post them (docs/protocol.md 7, docs/ledger.md
// postOpenings): a postOpenings transaction carries the openings
// base64-encoded and is at most 6 MiB (ledger.MaxTxBytes) of which 1 KiB is
// left to its envelope, so (6 MiB - 1024) / 4 * 3 = 4,717,824 bytes, under
// the ledger's 5 MiB limit of the field itself. It is a protocol constant:
// the challenge's cell selection (Select) depends on it.
const OpeningsBudget = (6<<20 - 1024) / 4 * 3

// Worst-case framing of an openings file (docs/protocol.md 7): the object
// around the cells and proofs, each cell's JSON around its base64 fields,
// and one proof hash ("<64 hex digits>",).
const (
	openingsFrame = 256
	cellFrame     = 128
	hashJSON      = 67
)

// depth is ceil(log2 n), the depth of an RFC 6962 tree of n >= 1 leaves.
func depth(n int) int64 { return int64(bits.Len64(uint64(n - 1))) }

// b64 is the length of the padded base64 encoding of n bytes.
func b64(n int64) int64 { return 4 * ((n + 2) / 3) }

// layerCellFixed bounds what a layer cell's opening takes besides its keys
// and values: its frame, the base64 of X(l, p), A(l, p) and X(l+1, p), and
// its share of the trace multi-proof. A layer cell's leaves are KVH+1
// single leaves (X(l, p); X(l+1, p); KV(l, h', p) of each h' != h) and two
// runs of adjacent leaves (KV(l, h, 0..p); A(l, 0..KVH-1, p)); the
// multi-proof of a single leaf is at most one hash per tree level (D =
// depth(Leaves)), that of a run at most two (one either side), and that
// of a union at most the sum of its parts': D*(KVH+5) hashes.
func (l Layout) layerCellFixed() int64 {
	return cellFrame + 2*b64(4*int64(l.Dim)) + b64(4*int64(l.QDim())) + hashJSON*depth(l.Leaves())*int64(l.KVHeads+5)
}

// LayerCellBytes bounds the bytes a layer cell at position p adds to an
// openings file: layerCellFixed and the base64 of its (p+1)*2*hd floats of
// keys and values.
func (l Layout) LayerCellBytes(p int) int64 {
	return l.layerCellFixed() + b64(8*int64(l.HeadDim)*int64(p+1))
}

// LogitsCellBytes bounds the bytes a logits cell adds to an openings file:
// its frame, the base64 of X(L, p), and one leaf's share of each
// multi-proof (one hash per level of each tree).
func (l Layout) LogitsCellBytes() int64 {
	return cellFrame + b64(4*int64(l.Dim)) + hashJSON*(depth(l.Leaves())+depth(l.Output))
}

// CellBudget is the bytes each selected cell's opening may take for a
// challenge of k >= 1 cells: (OpeningsBudget - openingsFrame) / min(k,
// Cells()), so that the openings of every selection fit OpeningsBudget.
func (l Layout) CellBudget(k int) int64 {
	return (OpeningsBudget - openingsFrame) / int64(max(1, min(k, l.Cells())))
}

// Challengeable returns the cells a challenge of k cells selects among:
// the layer cells of the first positions positions (cells 0 ..
// positions*Layers-1) and, when logits, every logits cell. A cell is
// challengeable when its worst-case opening (LayerCellBytes,
// LogitsCellBytes) is at most CellBudget(k); since a layer cell's grows
// with its position, they are those of positions p < positions, where
// positions = min(T, floor(3*floor(R/4) / (8*hd))), R = CellBudget(k) -
// layerCellFixed (0 when R < 0): the largest count with 4*ceil(8*hd*p/3)
// <= R. Layer cells at later positions of a long receipt are left to
// replays and disputes (docs/protocol.md 7).
func (l Layout) Challengeable(k int) (positions int, logits bool) {
	budget := l.CellBudget(k)
	if r := budget - l.layerCellFixed(); r >= 0 {
		positions = int(min(int64(l.Positions()), 3*(r/4)/(8*int64(max(1, l.HeadDim)))))
	}
	return positions, l.LogitsCellBytes() <= budget
}

// Select returns the distinct cells (ascending) a challenge seed picks for
// the receipt with the given id, k of them unless fewer are challengeable
// (Challengeable(k)): with n challengeable cells, numbered j = 0..n-1 in
// cell order (the layer cells j < positions*Layers, then the logits cells,
// j = positions*Layers + i being cell T*L + i), it draws j below n from
// stream tag 'c' until k distinct cells are found (all n when k >= n).
// When every cell is challengeable (n = T*L + O) j is the cell number and
// the selection is that of every receipt before the bound.
func (l Layout) Select(id [32]byte, seed uint64, k int) []int {
	positions, logits := l.Challengeable(k)
	nl := positions * l.Layers
	n := nl
	if logits {
		n += l.Output
	}
	cell := func(j int) int {
		if j < nl {
			return j
		}
		return l.Positions()*l.Layers + j - nl
	}
	if k >= n {
		out := make([]int, n)
		for j := range out {
			out[j] = cell(j)
		}
		return out
	}
	seen := make(map[int]bool, k)
	out := make([]int, 0, k)
	var ctr uint64
	for len(out) < k {
		c := cell(int(uniform(id, seed, 'c', &ctr, uint64(n))))
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	sort.Ints(out)
	return out
}

// Head returns the key/value head whose attention a layer cell's audit
// checks: the first draw of stream tag 'h' with counter = cell.
func (l Layout) Head(id [32]byte, seed uint64, cell int) int {
	limit := math.MaxUint64 - math.MaxUint64%uint64(l.KVHeads)
	for i := uint64(0); ; i++ {
		w := challengeWord(id, seed, 'h', uint64(cell)<<20|i)
		if w < limit {
			return int(w % uint64(l.KVHeads))
		}
	}
}
