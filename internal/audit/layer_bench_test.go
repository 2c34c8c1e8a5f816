package audit

import (
	"testing"

	"github.com/verdictnet/verdict/internal/model"
)

// BenchmarkRecorderLayer times the trace leaves of one layer at one
// position (Recorder.Layer: the residual, every head's key/value and
// attention leaves) for the 110m shape; a decode step of a batch of 16
// pays it 16 times a layer.
func BenchmarkRecorderLayer(b *testing.B) {
	c := model.Config{Dim: 768, Hidden: 2048, Layers: 12, Heads: 12, KVHeads: 12, Vocab: 32000, ContextLen: 1024}
	r := NewRecorder(c, []int{1})
	x := make([]float32, c.Dim)
	k := make([]float32, c.KVDim())
	v := make([]float32, c.KVDim())
	attn := make([]float32, c.QDim())
	for i := range x {
		x[i] = float32(i) * 0.25
	}
	pos := 0
	b.SetBytes(int64(4 * (len(x) + len(k) + len(v) + len(attn))))
	for b.Loop() {
		r.Layer(pos%c.Layers, pos/c.Layers%c.ContextLen, x, k, v, attn)
		pos++
	}
}
