package audit

import (
	"fmt"
	"testing"

	"github.com/verdictnet/verdict/internal/engine"
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

// BenchmarkTraceLayerRows times TraceLayerRows on the 110m shape for a
// group of 4 rows (a 16-sequence decode step's share of one call) and of
// 16, each row its own recorder, positions advancing as in a decode: the
// leaves hashed together (sha256x16) and stored.
func BenchmarkTraceLayerRows(b *testing.B) {
	c := model.Config{Dim: 768, Hidden: 2048, Layers: 12, Heads: 12, KVHeads: 12, Vocab: 32000, ContextLen: 1024}
	for _, n := range []int{4, 16} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			rows := make([]engine.LayerRow, n)
			for i := range rows {
				x := make([]float32, c.Dim)
				for j := range x {
					x[j] = float32(i+j) * 0.25
				}
				rows[i] = engine.LayerRow{Tracer: NewRecorder(c, []int{1}), X: x,
					K: make([]float32, c.KVDim()), V: make([]float32, c.KVDim()), Attn: make([]float32, c.QDim())}
			}
			b.SetBytes(int64(n * 4 * (c.Dim + 2*c.KVDim() + c.QDim())))
			step := 0
			for b.Loop() {
				for i := range rows {
					rows[i].Pos = step / c.Layers % c.ContextLen
				}
				TraceLayerRows(step%c.Layers, rows)
				step++
			}
		})
	}
}
