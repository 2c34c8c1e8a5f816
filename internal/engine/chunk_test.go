package engine_test

import (
	"sync"
	"testing"

	"github.com/verdictnet/verdict/internal/engine"
)

// TestChunksEqualWhole runs one batch of three sequences (a long prompt
// with logits from its middle on, a short one with the last logits only,
// and one with none) through engines whose passes take 1, 5, 16 rows or
// the default chunk, and the default with Options.TraceLayers, and compares
// every logit bit and every traced state with one pass over the whole
// batch.
func TestChunksEqualWhole(t *testing.T) {
	for _, mf := range append(cellModels, [2]string{"synth:tiny256:mix", ""}) {
		t.Run(mf[0], func(t *testing.T) { testChunksEqualWhole(t, mf) })
	}
}

type chunkRun struct {
	out   [3][][]float32
	trace [3]*recorder
}

func runChunked(t *testing.T, l loaded, chunk int, toks [3][]int, group bool) chunkRun {
	t.Helper()
	opts := engine.Options{Threads: 2, ChunkRows: chunk}
	calls, rows := 0, 0
	if group {
		// Each row's Layer in order, as audit.TraceLayerRows does for
		// tracers other than its recorders.
		var mu sync.Mutex
		opts.TraceLayers = func(l int, rs []engine.LayerRow) {
			mu.Lock()
			calls++
			rows += len(rs)
			mu.Unlock()
			for _, r := range rs {
				r.Tracer.Layer(l, r.Pos, r.X, r.K, r.V, r.Attn)
			}
		}
	}
	e, err := engine.New(l.m, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if chunk > 0 && e.ChunkRows() != chunk {
		t.Fatalf("ChunkRows %d, asked for %d", e.ChunkRows(), chunk)
	}
	var run chunkRun
	modes := [3]engine.LogitsMode{engine.LogitsAll, engine.LogitsLast, engine.LogitsNone}
	items := make([]*engine.Item, 3)
	for i := range items {
		seq, err := e.NewSequence(len(toks[i]) + 1)
		if err != nil {
			t.Fatal(err)
		}
		run.trace[i] = newRecorder()
		items[i] = &engine.Item{Seq: seq, Tokens: toks[i], Logits: modes[i], Trace: run.trace[i]}
	}
	items[0].LogitsFrom = len(toks[0]) / 2
	if err := e.Forward(items...); err != nil {
		t.Fatal(err)
	}
	for i, it := range items {
		run.out[i] = it.Out
	}
	// Every traced row of every layer, in calls of several items'.
	if n := l.m.Config.Layers * (len(toks[0]) + len(toks[1]) + len(toks[2])); group && (rows != n || calls == 0 || calls >= rows) {
		t.Fatalf("TraceLayers traced %d rows in %d calls, want %d rows in fewer calls", rows, calls, n)
	}
	return run
}

func testChunksEqualWhole(t *testing.T, mf [2]string) {
	l := load(t, mf[0], mf[1])
	var toks [3][]int
	for i, n := range []int{37, 9, 6} {
		for j := range n {
			toks[i] = append(toks[i], 1+(j*7919+i*104729)%(l.m.Config.Vocab-1))
		}
	}
	whole := runChunked(t, l, 1000, toks, false)
	if len(whole.out[0]) != len(toks[0])-len(toks[0])/2 || len(whole.out[1]) != 1 || len(whole.out[2]) != 0 {
		t.Fatalf("%d, %d and %d logit vectors", len(whole.out[0]), len(whole.out[1]), len(whole.out[2]))
	}
	for _, chunk := range []int{1, 5, 16, 0, -1} {
		got := runChunked(t, l, max(chunk, 0), toks, chunk < 0)
		for i := range toks {
			if len(got.out[i]) != len(whole.out[i]) {
				t.Fatalf("chunk %d, sequence %d: %d logit vectors, %d in one pass", chunk, i, len(got.out[i]), len(whole.out[i]))
			}
			for p := range got.out[i] {
				if !sameBits(got.out[i][p], whole.out[i][p]) {
					t.Fatalf("chunk %d, sequence %d: logit vector %d differs from one pass", chunk, i, p)
				}
			}
			w, g := whole.trace[i], got.trace[i]
			if len(g.x) != len(w.x) || len(g.final) != len(w.final) || len(g.final) != len(toks[i]) {
				t.Fatalf("chunk %d, sequence %d: %d layer and %d final states traced, %d and %d in one pass", chunk, i, len(g.x), len(g.final), len(w.x), len(w.final))
			}
			for key, x := range w.x {
				if !sameBits(g.x[key], x) || !sameBits(g.k[key], w.k[key]) || !sameBits(g.v[key], w.v[key]) || !sameBits(g.attn[key], w.attn[key]) {
					t.Fatalf("chunk %d, sequence %d: layer %d position %d traced states differ", chunk, i, key[0], key[1])
				}
			}
			for pos, x := range w.final {
				if !sameBits(g.final[pos], x) {
					t.Fatalf("chunk %d, sequence %d: final state %d differs", chunk, i, pos)
				}
			}
		}
	}
}
