package audit

import (
	"fmt"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/model"
)

// calc recomputes single cells through the engine's cell API
// (engine.Embed, QKV, AttendHead, FinishLayer, Logits), which runs the very
// code of a forward pass, so a recomputed cell has the bits of the original.
// Inputs reaching calc have been checked against the layout, so the
// engine's argument errors cannot occur; they panic if they do.
type calc struct {
	e  *engine.Engine
	hd int
}

func newCalc(m *model.Model) *calc {
	e, err := engine.New(m, engine.Options{Threads: 1})
	if err != nil {
		panic(fmt.Sprintf("audit: %v", err)) // m passed model.Check when it was loaded
	}
	return &calc{e: e, hd: m.Config.HeadDim()}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprintf("audit: %v", err))
	}
	return v
}

// embed returns the embedding of token t.
func (k *calc) embed(t int) []float32 { return must(k.e.Embed(t)) }

// qkv returns the query, key and value vectors (RoPE applied) of layer l at
// position p for the hidden state x entering the layer.
func (k *calc) qkv(l, p int, x []float32) (q, kk, v []float32) {
	q, kk, v, err := k.e.QKV(l, p, x)
	if err != nil {
		panic(fmt.Sprintf("audit: %v", err))
	}
	return q, kk, v
}

// attend computes the attention output of query head qh over keys and
// values of its key/value head at positions 0..n-1 (flat, head-sized rows).
func (k *calc) attend(q []float32, qh int, keys, values []float32, n int) []float32 {
	return must(k.e.AttendHead(q[qh*k.hd:(qh+1)*k.hd], keys, values, n))
}

// finish applies the output projection and feed-forward block of layer l
// to x (in place) given the attention output.
func (k *calc) finish(l int, x, attn []float32) {
	copy(x, must(k.e.FinishLayer(l, x, attn)))
}

// logits computes the logits of a final hidden state.
func (k *calc) logits(x []float32) []float32 { return must(k.e.Logits(x)) }
