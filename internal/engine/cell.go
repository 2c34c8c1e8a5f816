package engine

import (
	"fmt"

	"github.com/verdictnet/verdict/internal/kernels"
)

// The functions in this file recompute single cells of a forward pass — one
// layer at one position, or the classifier at one position — from their
// inputs, with the same code and so the same bits as Forward. Verifiers and
// dispute referees use them to check one step without running the rest.

// Embed returns the embedding of token tok (the hidden state entering
// layer 0).
func (e *Engine) Embed(tok int) ([]float32, error) {
	if tok < 0 || tok >= e.c.Vocab {
		return nil, fmt.Errorf("engine: token id %d out of range [0, %d)", tok, e.c.Vocab)
	}
	x := make([]float32, e.c.Dim)
	kernels.DequantRow(e.m.TokenEmbd, tok, x)
	return x, nil
}

func (e *Engine) checkCell(l, pos int, x []float32) error {
	switch {
	case l < 0 || l >= e.c.Layers:
		return fmt.Errorf("engine: layer %d out of range [0, %d)", l, e.c.Layers)
	case pos < 0 || pos >= MaxPositions:
		return fmt.Errorf("engine: position %d out of range [0, %d)", pos, MaxPositions)
	case len(x) != e.c.Dim:
		return fmt.Errorf("engine: hidden state of %d values, model dim is %d", len(x), e.c.Dim)
	}
	return nil
}

// QKV returns the query (QDim values), key and value vectors (biases added,
// Q/K norms and RoPE applied to q and k)
// that layer l computes at position pos from its input hidden state x.
func (e *Engine) QKV(l, pos int, x []float32) (q, k, v []float32, err error) {
	qs, ks, vs, err := e.QKVRows(l, []int{pos}, [][]float32{x})
	if err != nil {
		return nil, nil, nil, err
	}
	return qs[0], ks[0], vs[0], nil
}

// QKVRows is QKV for several rows of one layer at once, row i being the
// state xs[i] entering layer l at position pos[i]: the weights are read
// once for all of them, and each row gets the bits QKV gives it alone.
func (e *Engine) QKVRows(l int, pos []int, xs [][]float32) (q, k, v [][]float32, err error) {
	if len(pos) != len(xs) || len(xs) == 0 {
		return nil, nil, nil, fmt.Errorf("engine: %d positions for %d hidden states", len(pos), len(xs))
	}
	rows := make([]row, len(xs))
	for i, x := range xs {
		if err := e.checkCell(l, pos[i], x); err != nil {
			return nil, nil, nil, err
		}
		rows[i].pos = pos[i]
	}
	st := e.newState(rows)
	defer e.putState(st)
	d, kv, qd := e.c.Dim, e.c.KVDim(), e.qd
	for i, x := range xs {
		copy(st.x[i*d:], x)
	}
	e.layerQKV(l, st)
	for i := range xs {
		q = append(q, append([]float32(nil), st.q[i*qd:(i+1)*qd]...))
		k = append(k, append([]float32(nil), st.k[i*kv:(i+1)*kv]...))
		v = append(v, append([]float32(nil), st.v[i*kv:(i+1)*kv]...))
	}
	return q, k, v, nil
}

// FinishLayer returns the hidden state leaving layer l, given the state x
// entering it and the attention output attn of all heads (before the
// output projection): x + Wo·attn, then the feed-forward block.
func (e *Engine) FinishLayer(l int, x, attn []float32) ([]float32, error) {
	out, err := e.FinishLayerRows(l, [][]float32{x}, [][]float32{attn})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// FinishLayerRows is FinishLayer for several rows of one layer at once (the
// weights are read once), each row getting the bits FinishLayer gives it
// alone.
func (e *Engine) FinishLayerRows(l int, xs, attns [][]float32) ([][]float32, error) {
	if len(xs) != len(attns) || len(xs) == 0 {
		return nil, fmt.Errorf("engine: %d attention outputs for %d hidden states", len(attns), len(xs))
	}
	d, qd := e.c.Dim, e.qd
	for i, x := range xs {
		if err := e.checkCell(l, 0, x); err != nil {
			return nil, err
		}
		if len(attns[i]) != qd {
			return nil, fmt.Errorf("engine: attention output of %d values, the model's is %d", len(attns[i]), qd)
		}
	}
	st := e.newState(make([]row, len(xs)))
	defer e.putState(st)
	for i := range xs {
		copy(st.x[i*d:], xs[i])
		copy(st.att[i*qd:], attns[i])
	}
	e.layerFinish(l, st, seg{})
	out := make([][]float32, len(xs))
	for i := range out {
		out[i] = append([]float32(nil), st.x[i*d:(i+1)*d]...)
	}
	return out, nil
}

// LayerStep recomputes layer l at position pos from the hidden state x
// entering it and the keys and values that positions 0..pos-1 wrote into
// layer l's cache (keys[t], values[t], each of KVDim values; a binary16
// cache stores them rounded). It returns the position's own key and value,
// the attention output and the hidden state leaving the layer: the same
// bits Forward computes.
func (e *Engine) LayerStep(l, pos int, x []float32, keys, values [][]float32) (k, v, attn, out []float32, err error) {
	if err := e.checkCell(l, pos, x); err != nil {
		return nil, nil, nil, nil, err
	}
	kv := e.c.KVDim()
	if len(keys) != pos || len(values) != pos {
		return nil, nil, nil, nil, fmt.Errorf("engine: position %d needs %d cached keys and values, got %d and %d", pos, pos, len(keys), len(values))
	}
	for t := 0; t < pos; t++ {
		if len(keys[t]) != kv || len(values[t]) != kv {
			return nil, nil, nil, nil, fmt.Errorf("engine: cached key or value %d has the wrong length (want %d)", t, kv)
		}
	}
	// A sequence with layer l's cache only.
	seq := &Sequence{Pos: pos, cap: pos + 1, heads: e.c.KVHeads, hd: e.hd, page: e.page, pages: make([][]kvPage, e.c.Layers), f16: e.kv == KVF16}
	seq.reserveLayer(l, pos+1)
	for t := 0; t < pos; t++ {
		seq.store(l, t, keys[t], values[t])
	}
	st := e.newState([]row{{seq: seq, pos: pos}})
	copy(st.x, x)
	e.layerQKV(l, st)
	e.layerAttend(l, st)
	k, v = append([]float32(nil), st.k...), append([]float32(nil), st.v...)
	attn = append([]float32(nil), st.att...)
	e.layerFinish(l, st, seg{}) // overwrites k, v and attn in st
	return k, v, attn, st.x, nil
}

// AttentionHead recomputes head h of layer l at position pos: q is the
// position's query (from QKV), keys and values the layer's cached vectors of
// positions 0..pos (KVDim each, the position's own last). It returns the
// head's slice of the attention output (HeadDim values).
func (e *Engine) AttentionHead(l, h, pos int, q []float32, keys, values [][]float32) ([]float32, error) {
	c := e.c
	kv, hd := c.KVDim(), e.hd
	switch {
	case h < 0 || h >= c.Heads:
		return nil, fmt.Errorf("engine: head %d out of range [0, %d)", h, c.Heads)
	case len(q) != e.qd:
		return nil, fmt.Errorf("engine: query of %d values, the model's is %d", len(q), e.qd)
	case len(keys) != pos+1 || len(values) != pos+1:
		return nil, fmt.Errorf("engine: position %d attends to %d keys and values, got %d and %d", pos, pos+1, len(keys), len(values))
	}
	ks, vs := make([]float32, (pos+1)*kv), make([]float32, (pos+1)*kv)
	for t := 0; t <= pos; t++ {
		if len(keys[t]) != kv || len(values[t]) != kv {
			return nil, fmt.Errorf("engine: key or value %d has the wrong length (want %d)", t, kv)
		}
		copy(ks[t*kv:], keys[t])
		copy(vs[t*kv:], values[t])
	}
	if e.kv == KVF16 {
		// What the cache of SpecKV16 holds (idempotent on Forward's).
		kernels.RoundF16(ks)
		kernels.RoundF16(vs)
	}
	out := make([]float32, hd)
	scores := make([]float32, pos+1)
	off := (h / (c.Heads / c.KVHeads)) * hd
	Attend(q[h*hd:(h+1)*hd], ks, vs, kv, off, pos+1, e.scale, out, scores)
	return out, nil
}

// Logits returns the logits the classifier computes from x, the hidden
// state after the last layer.
func (e *Engine) Logits(x []float32) ([]float32, error) {
	out, err := e.LogitsRows([][]float32{x})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// LogitsRows is Logits for several final hidden states at once (the
// classifier is read once), each getting the bits Logits gives it alone.
func (e *Engine) LogitsRows(xs [][]float32) ([][]float32, error) {
	d, V := e.c.Dim, e.c.Vocab
	if len(xs) == 0 {
		return nil, fmt.Errorf("engine: no hidden states")
	}
	st := &state{rows: make([]row, len(xs)), n: len(xs), x: make([]float32, len(xs)*d), xb: make([]float32, len(xs)*d)}
	for i, x := range xs {
		if len(x) != d {
			return nil, fmt.Errorf("engine: hidden state of %d values, model dim is %d", len(x), d)
		}
		copy(st.x[i*d:], x)
	}
	e.rmsnorm(st, e.m.OutputNorm, st.x, st.xb)
	logits := make([]float32, len(xs)*V)
	e.matmul(st, e.m.Output, st.xb, logits)
	out := make([][]float32, len(xs))
	for i := range out {
		out[i] = logits[i*V : (i+1)*V : (i+1)*V]
	}
	return out, nil
}

// AttendHead computes one attention head over n positions whose keys and
// values are given as flat rows of HeadDim values (that head's slice of each
// cached vector): the same arithmetic as the head in Forward.
func (e *Engine) AttendHead(q, keys, values []float32, n int) ([]float32, error) {
	hd := e.hd
	if len(q) != hd || n < 1 || len(keys) < n*hd || len(values) < n*hd {
		return nil, fmt.Errorf("engine: attention head needs a %d-value query and %d keys and values of %d", hd, n, hd)
	}
	if e.kv == KVF16 {
		// What the cache of SpecKV16 holds (idempotent on Forward's).
		keys, values = append([]float32(nil), keys[:n*hd]...), append([]float32(nil), values[:n*hd]...)
		kernels.RoundF16(keys)
		kernels.RoundF16(values)
	}
	out := make([]float32, hd)
	Attend(q, keys, values, hd, 0, n, e.scale, out, make([]float32, n))
	return out, nil
}
