package audit

import (
	"fmt"

	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/receipt"
)

// Referee recomputes single trace leaves for a dispute (package dispute)
// between two traces of the same tokens: the prompt and output of a
// receipt, run as one teacher-forced prefill. Every leaf's inputs come
// before it in the trace tree, so the leaves the referee reads are ones
// both parties committed to identically.
type Referee struct {
	calc   *calc
	lay    Layout
	tokens []int
	// partBytes bounds the values of one answer (0: DisputePartBytes).
	partBytes int
	// Calls counts recomputations; LeavesRead and BytesRead the inputs
	// they read.
	Calls, LeavesRead, BytesRead int
}

// NewReferee returns the referee for traces of receipt r on model m.
func NewReferee(m *model.Model, r *receipt.Receipt) (*Referee, error) {
	lay := NewLayout(m.Config, len(r.Prompt), len(r.Output))
	if err := lay.check(); err != nil {
		return nil, fmt.Errorf("referee: %w", err)
	}
	for _, t := range append(append([]int(nil), r.Prompt...), r.Output...) {
		if t < 0 || t >= m.Config.Vocab {
			return nil, fmt.Errorf("referee: token %d outside the vocabulary", t)
		}
	}
	c, err := newCalc(m, r.Spec, 1) // a referee lives long and runs inside a block: no threads of its own
	if err != nil {
		return nil, fmt.Errorf("referee: %w", err)
	}
	return &Referee{calc: c, lay: lay, tokens: append(append([]int(nil), r.Prompt...), r.Output...)}, nil
}

// Cells is the number of leaves of the disputed trees.
func (r *Referee) Cells() int { return r.lay.Leaves() }

// Inputs lists the leaves leaf i is computed from.
func (r *Referee) Inputs(i int) []int {
	lay := r.lay
	if i < 0 || i >= lay.Leaves() {
		return nil
	}
	kind, l, h, p := lay.Leaf(i)
	switch kind {
	case 'x':
		if l == 0 {
			return nil // the embedding of the token at p
		}
		ins := []int{lay.XLeaf(l-1, p)}
		for h := 0; h < lay.KVHeads; h++ {
			ins = append(ins, lay.ALeaf(l-1, h, p))
		}
		return ins
	case 'k':
		return []int{lay.XLeaf(l, p)}
	}
	ins := []int{lay.XLeaf(l, p)}
	for t := 0; t <= p; t++ {
		ins = append(ins, lay.KVLeaf(l, h, t))
	}
	return ins
}

// Recompute returns the value leaf i must hold given its inputs.
func (r *Referee) Recompute(i int, ins [][]byte) ([]byte, error) {
	lay, c := r.lay, r.calc
	if i < 0 || i >= lay.Leaves() {
		return nil, fmt.Errorf("leaf %d out of range", i)
	}
	r.Calls++
	r.LeavesRead += len(ins)
	for _, b := range ins {
		r.BytesRead += len(b)
	}
	kind, l, h, p := lay.Leaf(i)
	D, hd := lay.Dim, lay.HeadDim
	if want := len(r.Inputs(i)); len(ins) != want {
		return nil, fmt.Errorf("leaf %d needs %d inputs, got %d", i, want, len(ins))
	}
	var x []float32
	if len(ins) > 0 {
		var ok bool
		if x, ok = floats(ins[0], D); !ok {
			return nil, fmt.Errorf("leaf %d: input state has %d bytes, want %d", i, len(ins[0]), 4*D)
		}
	}
	switch kind {
	case 'x':
		if l == 0 {
			emb, err := c.embed(r.tokens[p])
			if err != nil {
				return nil, fmt.Errorf("leaf %d: %w", i, err)
			}
			return appendF32(nil, emb), nil
		}
		W := lay.AWidth()
		attn := make([]float32, 0, lay.QDim())
		for h := 0; h < lay.KVHeads; h++ {
			a, ok := floats(ins[1+h], W)
			if !ok {
				return nil, fmt.Errorf("leaf %d: attention input %d has %d bytes, want %d", i, h, len(ins[1+h]), 4*W)
			}
			attn = append(attn, a...)
		}
		if err := c.finish(l-1, x, attn); err != nil {
			return nil, fmt.Errorf("leaf %d: %w", i, err)
		}
		return appendF32(nil, x), nil
	case 'k':
		_, k, v, err := c.qkv(l, p, x)
		if err != nil {
			return nil, fmt.Errorf("leaf %d: %w", i, err)
		}
		return appendF32(appendF32(nil, k[h*hd:(h+1)*hd]), v[h*hd:(h+1)*hd]), nil
	}
	q, _, _, err := c.qkv(l, p, x)
	if err != nil {
		return nil, fmt.Errorf("leaf %d: %w", i, err)
	}
	n := p + 1
	keys, vals := make([]float32, n*hd), make([]float32, n*hd)
	for t := 0; t < n; t++ {
		kv, ok := floats(ins[1+t], 2*hd)
		if !ok {
			return nil, fmt.Errorf("leaf %d: key/value input has %d bytes, want %d", i, len(ins[1+t]), 8*hd)
		}
		copy(keys[t*hd:], kv[:hd])
		copy(vals[t*hd:], kv[hd:])
	}
	group := lay.AWidth() / hd
	out := make([]float32, 0, lay.AWidth())
	for qh := h * group; qh < (h+1)*group; qh++ {
		a, err := c.attend(q, qh, keys, vals, n)
		if err != nil {
			return nil, fmt.Errorf("leaf %d: %w", i, err)
		}
		out = append(out, a...)
	}
	return appendF32(nil, out), nil
}

// Receipt returns the receipt a trace was regenerated from.
func (t *Trace) Receipt() *receipt.Receipt { return t.r }

// Tree returns the trace tree of a regenerated trace.
func (t *Trace) Tree() *merkle.Tree { return t.trace }

// LeafValue returns the data of trace leaf i of a regenerated trace.
func (t *Trace) LeafValue(i int) ([]byte, error) {
	if i < 0 || i >= t.lay.Leaves() {
		return nil, fmt.Errorf("leaf %d out of range", i)
	}
	kind, l, h, p := t.lay.Leaf(i)
	v, ok := t.rec.got[leafKey{kind: kind, p: p, l: l, h: h}]
	if !ok {
		return nil, fmt.Errorf("leaf %d not kept", i)
	}
	return v, nil
}
