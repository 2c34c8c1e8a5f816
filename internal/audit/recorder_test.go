package audit

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
)

// tracePass is one forward pass's tracer calls, made up: what the engine
// reports for T positions of config c.
type tracePass struct {
	c                    model.Config
	x, k, v, attn, final [][]float32 // [layer*T+pos] (final: [pos])
	logits               [][]float32 // [pos]
}

func newTracePass(c model.Config, T int, seed uint64) *tracePass {
	r := rand.New(rand.NewPCG(seed, 1))
	vec := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return v
	}
	p := &tracePass{c: c}
	for range c.Layers * T {
		p.x = append(p.x, vec(c.Dim))
		p.k = append(p.k, vec(c.KVDim()))
		p.v = append(p.v, vec(c.KVDim()))
		p.attn = append(p.attn, vec(c.Dim))
	}
	for range T {
		p.final = append(p.final, vec(c.Dim))
		p.logits = append(p.logits, vec(c.Vocab))
	}
	return p
}

// roots feeds rec the pass's T positions and their logits, one call at a
// time, and returns its roots for n outputs.
func (p *tracePass) roots(t *testing.T, rec *Recorder, T, n int) (logits, trace merkle.Hash) {
	t.Helper()
	p.feed(rec, T)
	for pos, l := range p.logits {
		rec.Logits(pos, l)
	}
	logits, trace, err := rec.Roots(n)
	if err != nil {
		t.Fatal(err)
	}
	return logits, trace
}

// feed makes the calls in the engine's order (layer by layer, each over
// all positions), scribbling over each vector after the call as the
// engine's buffers are reused.
func (p *tracePass) feed(rec *Recorder, T int) {
	scratch := func(vs ...[]float32) [][]float32 {
		out := make([][]float32, len(vs))
		for i, v := range vs {
			out[i] = append([]float32(nil), v...)
		}
		return out
	}
	for l := range p.c.Layers {
		for pos := range T {
			i := l*T + pos
			b := scratch(p.x[i], p.k[i], p.v[i], p.attn[i])
			rec.Layer(l, pos, b[0], b[1], b[2], b[3])
			for _, s := range b {
				clear(s)
			}
		}
	}
	for pos := range T {
		b := scratch(p.final[pos])
		rec.Final(pos, b[0])
		clear(b[0])
	}
}

var recorderConfig = model.Config{Dim: 16, Hidden: 32, Layers: 3, Heads: 4, KVHeads: 2, Vocab: 50, ContextLen: 64}

// TestAsyncRecorderMatchesSync checks the hashing goroutines of a replay
// against the synchronous recorder every generation uses (whose roots the
// golden receipts pin), for several thread counts.
func TestAsyncRecorderMatchesSync(t *testing.T) {
	c := recorderConfig
	prompt := []int{1, 2, 3}
	for _, T := range []int{3, 4, 17} {
		n := T - len(prompt) + 1
		p := newTracePass(c, T, uint64(T))
		wantL, wantT := p.roots(t, NewRecorder(c, prompt), T, n)
		for _, threads := range []int{1, 2, 5} {
			rec := NewRecorder(c, prompt)
			rec.hashAsync(T, threads)
			p.feed(rec, T)
			rec.wait()
			rec.hashLogits(p.logits, threads)
			gotL, gotT, err := rec.Roots(n)
			if err != nil {
				t.Fatalf("T=%d threads=%d: %v", T, threads, err)
			}
			if gotL != wantL || gotT != wantT {
				t.Fatalf("T=%d threads=%d: roots %s %s, synchronous recorder %s %s", T, threads, gotL, gotT, wantL, wantT)
			}
		}
	}
}

// TestAsyncRecorderErrors checks that a pass that does not fit the
// recorder's sizes, or leaves a leaf out, gives an error, not a root.
func TestAsyncRecorderErrors(t *testing.T) {
	c := recorderConfig
	prompt := []int{1, 2}
	const T = 4
	p := newTracePass(c, T, 9)
	cases := []struct {
		name string
		feed func(rec *Recorder)
		want string
	}{
		{"position past the pass", func(rec *Recorder) {
			p.feed(rec, T)
			rec.Layer(1, T, p.x[0], p.k[0], p.v[0], p.attn[0])
		}, "does not fit"},
		{"final past the pass", func(rec *Recorder) {
			p.feed(rec, T)
			rec.Final(T+3, p.final[0])
		}, "does not fit"},
		{"short vector", func(rec *Recorder) {
			p.feed(rec, T)
			rec.Layer(0, 1, p.x[0][:3], p.k[0], p.v[0], p.attn[0])
		}, "does not fit"},
		{"missing position", func(rec *Recorder) { p.feed(rec, T-1) }, "missing"},
	}
	for _, tc := range cases {
		rec := NewRecorder(c, prompt)
		rec.hashAsync(T, 2)
		tc.feed(rec)
		rec.wait()
		rec.hashLogits(p.logits, 2)
		_, _, err := rec.Roots(T - len(prompt) + 1)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Roots error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

// TestHashLogits checks the parallel logit leaves against Logits and
// merkle.LeafHash of the little-endian bytes.
func TestHashLogits(t *testing.T) {
	c := recorderConfig
	prompt := []int{1, 2, 3, 4}
	p := newTracePass(c, 9, 3)
	one := NewRecorder(c, prompt)
	for pos, l := range p.logits {
		one.Logits(pos, l)
	}
	par := NewRecorder(c, prompt)
	par.hashLogits(p.logits, 3)
	if len(par.logits) != 9-len(prompt)+1 || len(one.logits) != len(par.logits) {
		t.Fatalf("%d and %d logit leaves, want %d", len(one.logits), len(par.logits), 9-len(prompt)+1)
	}
	for j := range par.logits {
		want := merkle.LeafHash(appendF32(nil, p.logits[len(prompt)-1+j]))
		if par.logits[j] != want || one.logits[j] != want {
			t.Fatalf("leaf %d: parallel %s, Logits %s, want %s", j, par.logits[j], one.logits[j], want)
		}
	}
}

// TestBatchedLeavesMatchOneByOne checks the recorders that hash leaves
// together (sha256x16: the synchronous recorder's heads, the hashing
// goroutines' batches of jobs, hashLogits' chunks) against a recorder
// keeping the trace, which hashes every leaf alone with merkle.LeafHash,
// for models with enough key/value heads to fill the multi-buffer lanes.
func TestBatchedLeavesMatchOneByOne(t *testing.T) {
	prompt := []int{1, 2, 3}
	for _, c := range []model.Config{
		{Dim: 64, Hidden: 32, Layers: 2, Heads: 8, KVHeads: 8, Vocab: 50, ContextLen: 64},
		{Dim: 64, Hidden: 32, Layers: 2, Heads: 16, KVHeads: 4, Vocab: 70, ContextLen: 64},
	} {
		const T = 40
		n := T - len(prompt) + 1
		p := newTracePass(c, T, 5)
		ref := NewRecorder(c, prompt)
		ref.got = make(map[leafKey][]byte)
		wantL, wantT := p.roots(t, ref, T, n)
		sync := NewRecorder(c, prompt)
		p.feed(sync, T)
		sync.hashLogits(p.logits, 2)
		if l, tr, err := sync.Roots(n); err != nil || l != wantL || tr != wantT {
			t.Fatalf("%d kv heads: synchronous recorder roots %s %s (%v), one by one %s %s", c.KVHeads, l, tr, err, wantL, wantT)
		}
		for _, threads := range []int{1, 3} {
			rec := NewRecorder(c, prompt)
			rec.hashAsync(T, threads)
			p.feed(rec, T)
			rec.wait()
			rec.hashLogits(p.logits, threads)
			if l, tr, err := rec.Roots(n); err != nil || l != wantL || tr != wantT {
				t.Fatalf("%d kv heads, %d threads: roots %s %s (%v), one by one %s %s", c.KVHeads, threads, l, tr, err, wantL, wantT)
			}
		}
	}
}

// LogitsAsync stores its leaves where Logits would, whatever the order of
// the positions and whether a position is recorded again (the last call
// wins, as with Logits); positions before the last prompt token are
// ignored; Roots waits for them.
func TestLogitsAsyncOrder(t *testing.T) {
	c := recorderConfig
	prompt := []int{1, 2, 3}
	vec := func(i int) []float32 {
		v := make([]float32, 300)
		for j := range v {
			v[j] = float32(i*1000 + j)
		}
		return v
	}
	a, b := NewRecorder(c, prompt), NewRecorder(c, prompt)
	for k, pos := range []int{0, 1, 4, 2, 3, 2} {
		a.Logits(pos, vec(pos*7+k))
		b.LogitsAsync(pos, vec(pos*7+k))
	}
	b.Logits(5, vec(99))
	a.Logits(5, vec(99))
	b.LogitsAsync(3, vec(98))
	a.Logits(3, vec(98))
	la, err := a.logitsTree(4)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.logitsTree(4)
	if err != nil {
		t.Fatal(err)
	}
	if la.Root() != lb.Root() || len(b.pending) != 0 || len(a.logits) != len(b.logits) {
		t.Fatalf("async root %s (%d leaves, %d pending), sync %s (%d)", lb.Root(), len(b.logits), len(b.pending), la.Root(), len(a.logits))
	}
	for j := range a.logits {
		if a.logits[j] != b.logits[j] {
			t.Errorf("leaf %d: async %s, sync %s", j, b.logits[j], a.logits[j])
		}
	}
}

// TestConcurrentLogits: the logit vectors that the recorders of
// concurrent generations record at the same time (hashed together by
// logitCombiner, or by logitHasher for LogitsAsync) get the leaves
// merkle.LeafHash gives each alone, vectors of equal and of different
// lengths.
func TestConcurrentLogits(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(fmt.Sprintf("async=%v", async), func(t *testing.T) { testConcurrentLogits(t, async) })
	}
}

func testConcurrentLogits(t *testing.T, async bool) {
	c := recorderConfig
	prompt := []int{1}
	const seqs, steps = 24, 20
	var wg sync.WaitGroup
	recs := make([]*Recorder, seqs)
	vecs := make([][][]float32, seqs)
	for s := range seqs {
		recs[s] = NewRecorder(c, prompt)
		r := rand.New(rand.NewPCG(uint64(s), 2))
		for range steps {
			v := make([]float32, 1000+s%3) // three lengths
			for i := range v {
				v[i] = float32(r.NormFloat64())
			}
			vecs[s] = append(vecs[s], v)
		}
	}
	for s := range seqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pos, v := range vecs[s] {
				if async {
					recs[s].LogitsAsync(pos, v)
				} else {
					recs[s].Logits(pos, v)
				}
			}
		}()
	}
	wg.Wait()
	for s := range seqs {
		if async {
			if len(recs[s].pending) != steps {
				t.Fatalf("sequence %d: %d leaves pending, want %d", s, len(recs[s].pending), steps)
			}
			recs[s].flushLogits()
		}
		for pos, v := range vecs[s] {
			if want := merkle.LeafHash(appendF32(nil, v)); recs[s].logits[pos] != want {
				t.Fatalf("sequence %d position %d: leaf %s, want %s", s, pos, recs[s].logits[pos], want)
			}
		}
	}
}

// countTracer is an engine.Tracer that only counts its Layer calls.
type countTracer struct{ layers int }

func (c *countTracer) Layer(l, pos int, x, k, v, attn []float32) { c.layers++ }
func (c *countTracer) Final(pos int, x []float32)                {}

// TraceLayerRows gives every recorder the roots its own Layer calls give,
// however the rows of several recorders are grouped (one position each,
// as in a decode step, or several positions of one, as in a prefill), with
// a recorder that keeps its trace for openings and another tracer among
// them; the buffers are scribbled over after each call, as the engine's.
func TestTraceLayerRowsMatchesLayer(t *testing.T) {
	prompt := []int{1, 2, 3}
	for _, c := range []model.Config{recorderConfig, {Dim: 64, Hidden: 32, Layers: 2, Heads: 16, KVHeads: 4, Vocab: 70, ContextLen: 64}} {
		const T, seqs = 9, 5
		n := T - len(prompt) + 1
		var passes []*tracePass
		var want [][2]merkle.Hash
		for s := range seqs {
			p := newTracePass(c, T, uint64(100+s))
			l, tr := p.roots(t, NewRecorder(c, prompt), T, n)
			passes, want = append(passes, p), append(want, [2]merkle.Hash{l, tr})
		}
		recs := make([]*Recorder, seqs)
		for s := range recs {
			recs[s] = NewRecorder(c, prompt)
		}
		recs[2].got = make(map[leafKey][]byte) // keeps its trace: Layer's own path
		other := &countTracer{}
		row := func(s, l, pos int) engine.LayerRow {
			i := l*T + pos
			p := passes[s]
			cp := func(v []float32) []float32 { return append([]float32(nil), v...) }
			return engine.LayerRow{Tracer: recs[s], Pos: pos, X: cp(p.x[i]), K: cp(p.k[i]), V: cp(p.v[i]), Attn: cp(p.attn[i])}
		}
		scribble := func(rows []engine.LayerRow) {
			for _, r := range rows {
				clear(r.X)
				clear(r.K)
				clear(r.V)
				clear(r.Attn)
			}
		}
		for l := range c.Layers {
			// Sequence 0 prefills its first 4 positions alone, then
			// every sequence's positions go in steps of one each (the
			// others' first 4 in one call of 16 rows), another tracer in
			// the middle.
			rows := []engine.LayerRow{}
			for pos := range 4 {
				rows = append(rows, row(0, l, pos))
			}
			TraceLayerRows(l, rows)
			scribble(rows)
			rows = rows[:0]
			for s := 1; s < seqs; s++ {
				for pos := range 4 {
					rows = append(rows, row(s, l, pos))
				}
			}
			TraceLayerRows(l, rows)
			scribble(rows)
			for pos := 4; pos < T; pos++ {
				rows = rows[:0]
				for s := range seqs {
					rows = append(rows, row(s, l, pos))
					if s == 1 {
						rows = append(rows, engine.LayerRow{Tracer: other, Pos: pos, X: make([]float32, c.Dim)})
					}
				}
				TraceLayerRows(l, rows)
				scribble(rows)
			}
		}
		for s, rec := range recs {
			p := passes[s]
			for pos := range T {
				rec.Final(pos, p.final[pos])
				rec.Logits(pos, p.logits[pos])
			}
			l, tr, err := rec.Roots(n)
			if err != nil || l != want[s][0] || tr != want[s][1] {
				t.Errorf("%d kv heads, sequence %d: roots %s %s (%v), Layer's %s %s", c.KVHeads, s, l, tr, err, want[s][0], want[s][1])
			}
		}
		if other.layers != c.Layers*(T-4) {
			t.Errorf("the other tracer got %d Layer calls, want %d", other.layers, c.Layers*(T-4))
		}
	}
}
