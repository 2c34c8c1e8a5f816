package engine_test

import (
	"math"
	"runtime"
	"testing"

	"github.com/verdictnet/verdict/internal/engine"
)

// recorder keeps every traced state of a forward pass.
type recorder struct {
	x, k, v, attn map[[2]int][]float32 // by (layer, pos)
	final         map[int][]float32
}

func newRecorder() *recorder {
	return &recorder{x: map[[2]int][]float32{}, k: map[[2]int][]float32{}, v: map[[2]int][]float32{}, attn: map[[2]int][]float32{}, final: map[int][]float32{}}
}

func clone(s []float32) []float32 { return append([]float32(nil), s...) }

func (r *recorder) Layer(l, pos int, x, k, v, attn []float32) {
	key := [2]int{l, pos}
	r.x[key], r.k[key], r.v[key], r.attn[key] = clone(x), clone(k), clone(v), clone(attn)
}

func (r *recorder) Final(pos int, x []float32) { r.final[pos] = clone(x) }

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// cellModels are the models whose cells are recomputed: a Llama-2 model
// and a small synthetic model of each new architecture feature (llama3
// frequency factors and a separate output; qwen2 biases; qwen3 Q/K norms
// and a head size that is not dim/heads), in several weight types.
var cellModels = [][2]string{
	{"stories260K.bin", "tok512.bin"},
	{"synth:tiny-llama3:f16", ""},
	{"synth:tiny-qwen2:q8_0", ""},
	{"synth:tiny-qwen3:f32", ""},
	{"synth:tiny-qwen3:q4_k_m", ""},
	// the binary16 key/value cache (engine.SpecKV16), with grouped-query
	// attention
	{"synth:tiny-llama3:f16" + kvSuffix, ""},
}

// tracedPrefill runs text through the model mf as one prefill on threads
// threads, recording every traced state and every logit vector.
func tracedPrefill(t *testing.T, mf [2]string, threads int, text string) (loaded, *engine.Engine, []int, *recorder, *engine.Item) {
	t.Helper()
	l := load(t, mf[0], mf[1])
	e := newEngine(t, l.m, threads)
	toks, err := l.tok.Encode(text, true)
	if err != nil {
		t.Fatal(err)
	}
	seq, _ := e.NewSequence(len(toks))
	rec := newRecorder()
	it := &engine.Item{Seq: seq, Tokens: toks, Logits: engine.LogitsAll, Trace: rec}
	if err := e.Forward(it); err != nil {
		t.Fatal(err)
	}
	return l, e, toks, rec, it
}

// TestCellsRecomputeForward recomputes every layer cell and logit cell of a
// prefill from the traced inputs and compares bits.
func TestCellsRecomputeForward(t *testing.T) {
	for _, mf := range cellModels {
		t.Run(mf[0], func(t *testing.T) { testCellsRecomputeForward(t, mf) })
	}
}

func testCellsRecomputeForward(t *testing.T, mf [2]string) {
	l, e, toks, rec, it := tracedPrefill(t, mf, 2, "Once upon a time there was a dog")
	c := l.m.Config
	for pos := range toks {
		emb, _ := e.Embed(toks[pos])
		if !sameBits(emb, rec.x[[2]int{0, pos}]) {
			t.Fatalf("embedding of position %d differs from the traced layer-0 input", pos)
		}
		for layer := 0; layer < c.Layers; layer++ {
			var keys, values [][]float32
			for q := 0; q < pos; q++ {
				keys = append(keys, rec.k[[2]int{layer, q}])
				values = append(values, rec.v[[2]int{layer, q}])
			}
			key := [2]int{layer, pos}
			k, v, attn, out, err := e.LayerStep(layer, pos, rec.x[key], keys, values)
			if err != nil {
				t.Fatal(err)
			}
			next := rec.final[pos]
			if layer+1 < c.Layers {
				next = rec.x[[2]int{layer + 1, pos}]
			}
			if !sameBits(k, rec.k[key]) || !sameBits(v, rec.v[key]) || !sameBits(attn, rec.attn[key]) || !sameBits(out, next) {
				t.Fatalf("layer %d position %d: recomputed cell differs from the forward pass", layer, pos)
			}
			q, k2, _, err := e.QKV(layer, pos, rec.x[key])
			if err != nil || !sameBits(k2, k) {
				t.Fatalf("QKV differs at layer %d position %d (%v)", layer, pos, err)
			}
			hd := c.HeadDim()
			for h := 0; h < c.Heads; h++ {
				ho, err := e.AttentionHead(layer, h, pos, q, append(keys, k), append(values, v))
				if err != nil || !sameBits(ho, attn[h*hd:(h+1)*hd]) {
					t.Fatalf("AttentionHead layer %d head %d position %d differs (%v)", layer, h, pos, err)
				}
			}
			fo, err := e.FinishLayer(layer, rec.x[key], attn)
			if err != nil || !sameBits(fo, out) {
				t.Fatalf("FinishLayer differs at layer %d position %d (%v)", layer, pos, err)
			}
		}
		logits, err := e.Logits(rec.final[pos])
		if err != nil || !sameBits(logits, it.Out[pos]) {
			t.Fatalf("logits of position %d differ (%v)", pos, err)
		}
	}
	if _, _, _, _, err := e.LayerStep(c.Layers, 0, rec.x[[2]int{0, 0}], nil, nil); err == nil {
		t.Fatal("LayerStep accepted a layer out of range")
	}
}

// TestCellRowsMatchForward recomputes, for every layer, all positions of a
// prefill in one QKVRows and one FinishLayerRows call, and every logit
// vector in one LogitsRows call (on more threads than the forward pass):
// batched recomputation must give the forward pass's bits.
func TestCellRowsMatchForward(t *testing.T) {
	for _, mf := range cellModels {
		t.Run(mf[0], func(t *testing.T) { testCellRowsMatchForward(t, mf) })
	}
}

func testCellRowsMatchForward(t *testing.T, mf [2]string) {
	l, _, toks, rec, it := tracedPrefill(t, mf, 1, "Once upon a time there was a big red ball")
	e3 := newEngine(t, l.m, 3)
	c := l.m.Config
	// Rows in a scrambled order, some repeated.
	var order []int
	for i := range toks {
		order = append(order, (i*5+3)%len(toks))
	}
	order = append(order, order[0], order[2])
	for layer := 0; layer < c.Layers; layer++ {
		var xs, attns [][]float32
		for _, p := range order {
			xs = append(xs, rec.x[[2]int{layer, p}])
			attns = append(attns, rec.attn[[2]int{layer, p}])
		}
		_, ks, vs, err := e3.QKVRows(layer, order, xs)
		if err != nil {
			t.Fatal(err)
		}
		outs, err := e3.FinishLayerRows(layer, xs, attns)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range order {
			key := [2]int{layer, p}
			next := rec.final[p]
			if layer+1 < c.Layers {
				next = rec.x[[2]int{layer + 1, p}]
			}
			if !sameBits(ks[i], rec.k[key]) || !sameBits(vs[i], rec.v[key]) || !sameBits(outs[i], next) {
				t.Fatalf("layer %d row %d (position %d): batched recomputation differs from the forward pass", layer, i, p)
			}
		}
	}
	var finals [][]float32
	for _, p := range order {
		finals = append(finals, rec.final[p])
	}
	lgs, err := e3.LogitsRows(finals)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range order {
		if !sameBits(lgs[i], it.Out[p]) {
			t.Fatalf("logits row %d (position %d) differ", i, p)
		}
	}
	if _, _, _, err := e3.QKVRows(0, []int{0}, nil); err == nil {
		t.Fatal("QKVRows accepted mismatched rows")
	}
	if _, err := e3.FinishLayerRows(0, [][]float32{rec.x[[2]int{0, 0}]}, [][]float32{{1}}); err == nil {
		t.Fatal("FinishLayerRows accepted a short attention output")
	}
}

// TestLogitsFrom: skipping the classifier at the first positions returns
// exactly the tail of the logits of a full pass; bad values are refused.
func TestLogitsFrom(t *testing.T) {
	l := load(t, "stories260K.bin", "tok512.bin")
	e := newEngine(t, l.m, 2)
	toks, err := l.tok.Encode("Once upon a time there was a cat", true)
	if err != nil {
		t.Fatal(err)
	}
	seq, _ := e.NewSequence(len(toks))
	all := &engine.Item{Seq: seq, Tokens: toks, Logits: engine.LogitsAll}
	if err := e.Forward(all); err != nil {
		t.Fatal(err)
	}
	for _, from := range []int{0, 1, len(toks) / 2, len(toks) - 1} {
		seq, _ := e.NewSequence(len(toks))
		it := &engine.Item{Seq: seq, Tokens: toks, Logits: engine.LogitsAll, LogitsFrom: from}
		if err := e.Forward(it); err != nil {
			t.Fatal(err)
		}
		if len(it.Out) != len(toks)-from {
			t.Fatalf("from %d: %d vectors, want %d", from, len(it.Out), len(toks)-from)
		}
		for i, v := range it.Out {
			if !sameBits(v, all.Out[from+i]) {
				t.Fatalf("from %d: vector %d differs from the full pass", from, i)
			}
		}
	}
	for _, bad := range []struct {
		mode engine.LogitsMode
		from int
	}{{engine.LogitsAll, -1}, {engine.LogitsAll, len(toks)}, {engine.LogitsLast, 1}} {
		seq, _ := e.NewSequence(len(toks))
		if err := e.Forward(&engine.Item{Seq: seq, Tokens: toks, Logits: bad.mode, LogitsFrom: bad.from}); err == nil {
			t.Fatalf("mode %d from %d accepted", bad.mode, bad.from)
		}
	}
}

// TestSequenceGrowsWithUse: a sequence allowed a long context (2^20
// positions; 512 MiB of cache for this model if allocated up front) costs
// only what its positions use, and its logits are those of a sequence sized
// to fit.
func TestSequenceGrowsWithUse(t *testing.T) {
	l := load(t, "synth:tiny-llama3:f32", "")
	small := newEngine(t, l.m, 2)
	big := *l.m
	big.Config.ContextLen = 1 << 20
	e := newEngine(t, &big, 2)
	toks := []int{1, 500, 600, 700, 800, 900, 1000}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	seq, err := e.NewSequence(0)
	if err != nil {
		t.Fatal(err)
	}
	var got [][]float32
	for _, tok := range toks {
		it := &engine.Item{Seq: seq, Tokens: []int{tok}, Logits: engine.LogitsLast}
		if err := e.Forward(it); err != nil {
			t.Fatal(err)
		}
		got = append(got, it.Out[0])
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Errorf("a sequence of %d positions allocated %d bytes", len(toks), grew)
	}
	seq2, _ := small.NewSequence(len(toks))
	it := &engine.Item{Seq: seq2, Tokens: toks, Logits: engine.LogitsAll}
	if err := small.Forward(it); err != nil {
		t.Fatal(err)
	}
	for i := range toks {
		if !sameBits(got[i], it.Out[i]) {
			t.Fatalf("position %d: logits differ", i)
		}
	}
}
