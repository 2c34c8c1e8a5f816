package audit

import (
	"fmt"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/model"
)

// calc recomputes single cells through the engine's cell API
// (engine.Embed, QKV, AttendHead, FinishLayer; Check uses the batched
// QKVRows, FinishLayerRows and LogitsRows), which runs the very
// code of a forward pass, so a recomputed cell has the bits of the original.
// Callers check sizes against the layout first; the engine checks them
// again and its errors are returned, never turned into panics.
type calc struct {
	e  *engine.Engine
	hd int
}

// newCalc returns a calculator of the determinism specification spec
// running on threads threads (0: one per CPU); with more than one, close
// must be called when done.
func newCalc(m *model.Model, spec string, threads int) (*calc, error) {
	kv, err := engine.KVTypeOf(spec)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	e, err := engine.New(m, engine.Options{Threads: threads, KV: kv})
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return &calc{e: e, hd: m.Config.HeadDim()}, nil
}

// close stops the engine's threads.
func (k *calc) close() { k.e.Close() }

// embed returns the embedding of token t.
func (k *calc) embed(t int) ([]float32, error) { return k.e.Embed(t) }

// qkv returns the query, key and value vectors (RoPE applied) of layer l at
// position p for the hidden state x entering the layer.
func (k *calc) qkv(l, p int, x []float32) (q, kk, v []float32, err error) {
	return k.e.QKV(l, p, x)
}

// attend computes the attention output of query head qh over keys and
// values of its key/value head at positions 0..n-1 (flat, head-sized rows).
func (k *calc) attend(q []float32, qh int, keys, values []float32, n int) ([]float32, error) {
	if qh < 0 || (qh+1)*k.hd > len(q) {
		return nil, fmt.Errorf("audit: query head %d out of range", qh)
	}
	return k.e.AttendHead(q[qh*k.hd:(qh+1)*k.hd], keys, values, n)
}

// finish applies the output projection and feed-forward block of layer l
// to x (in place) given the attention output.
func (k *calc) finish(l int, x, attn []float32) error {
	out, err := k.e.FinishLayer(l, x, attn)
	if err != nil {
		return err
	}
	copy(x, out)
	return nil
}
