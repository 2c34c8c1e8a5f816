package refcheck_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/refcheck"
	"github.com/verdictnet/verdict/internal/synth"
	"github.com/verdictnet/verdict/internal/testutil"
)

// traceRow compares Verdict and llama.cpp on one file over n positions and
// returns a line: the largest difference of log-probabilities over
// llama.cpp's top 8 tokens (both renormalised over its top 64, so a
// difference of logits up to a common shift), where it is, the same for
// Verdict against its exact activations (the floor), and the top
// probabilities at positions 0 and 1.
func traceRow(tb testing.TB, node, dir, text, path string, n int) string {
	tb.Helper()
	m, err := model.Load(path, "")
	if err != nil {
		tb.Fatal(err)
	}
	defer m.Close()
	e, err := engine.New(m, engine.Options{Threads: 2})
	if err != nil {
		tb.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ll, err := refcheck.RunLlama(ctx, node, dir, refcheck.Request{Model: path, Text: text, Positions: n, TopK: topK, Threads: 2, Batch: n})
	if err != nil {
		tb.Fatal(err)
	}
	logits, err := refcheck.TeacherForced(e, ll.Tokens)
	if err != nil {
		tb.Fatal(err)
	}
	rep, err := refcheck.Compare(ll.Top, logits)
	if err != nil {
		tb.Fatal(err)
	}
	pert, err := refcheck.Exact(m, 2, ll.Tokens)
	if err != nil {
		tb.Fatal(err)
	}
	fl, err := refcheck.Floor(ll.Top, logits, pert)
	if err != nil {
		tb.Fatal(err)
	}
	fworst := 0.0
	for i, top := range ll.Top {
		a, b := make([]float32, len(top)), make([]float32, len(top))
		for k, tp := range top {
			a[k], b[k] = logits[i][tp.Token], pert[i][tp.Token]
		}
		qa, qb := refcheck.Softmax(a), refcheck.Softmax(b)
		for k := 0; k < 8 && k < len(top); k++ {
			fworst = math.Max(fworst, math.Abs(math.Log(qa[k])-math.Log(qb[k])))
		}
	}
	worst, worstPos := 0.0, 0
	var p0 [2][2]float64
	for i, top := range ll.Top {
		sub := make([]float32, len(top))
		for k, tp := range top {
			sub[k] = logits[i][tp.Token]
		}
		q := refcheck.Softmax(sub)
		for k := 0; k < 8 && k < len(top); k++ {
			if d := math.Abs(math.Log(q[k]) - math.Log(top[k].Prob)); d > worst {
				worst, worstPos = d, i
			}
		}
		if i < 2 {
			p0[i] = [2]float64{top[0].Prob, q[0]}
		}
	}
	return fmt.Sprintf("max |dlnp| top8 %.4f (pos %d), max |dp| %.4f (pos %d), mean %.2g, top agree %d/%d; floor: max |dlnp| %.4f, max |dp| %.4f; p(top) pos0 llama %.5f verdict %.5f, pos1 llama %.5f verdict %.5f",
		worst, worstPos, rep.MaxAbs, rep.MaxAbsPos, rep.MeanAbs, rep.TopAgree, rep.Positions, fworst, fl.MaxAbs, p0[0][0], p0[0][1], p0[1][0], p0[1][1])
}

// TestTraceQwen2Q8 bisects the difference between Verdict and llama.cpp on
// the qwen2.5-0.5b Q8_0 preset by derived models (VERDICT_REFCHECK_TRACE=1).
func TestTraceQwen2Q8(t *testing.T) {
	if os.Getenv("VERDICT_REFCHECK_TRACE") == "" {
		t.Skip("a diagnostic: VERDICT_REFCHECK_TRACE=1")
	}
	node, dir := testutil.NodeModule(t, "node-llama-cpp")
	text := readText(t)
	typ := os.Getenv("VERDICT_REFCHECK_TRACE_TYPE")
	if typ == "" {
		typ = "q8_0"
	}
	src := synthModel(t, "qwen2.5-0.5b", vocabQwen, typ)
	n := 16
	all := func(string) bool { return true }
	has := func(s string) func(string) bool { return func(name string) bool { return strings.Contains(name, s) } }
	bias := func(name string) bool { return strings.HasSuffix(name, ".bias") }
	vs := []variant{
		{name: "full"},
		{name: "l1", layers: 1},
		{name: "l1-f32", layers: 1, toF32: all},
		{name: "l1-nobias", layers: 1, zero: bias},
		{name: "l1-f32-nobias", layers: 1, toF32: all, zero: bias},
		{name: "l1-f32-but-embd", layers: 1, toF32: func(s string) bool { return !strings.HasPrefix(s, "token_embd") }},
		{name: "l1-only-v", layers: 1, toF32: func(s string) bool { return !strings.Contains(s, "attn_v") }},
		{name: "l1-only-o", layers: 1, toF32: func(s string) bool { return !strings.Contains(s, "attn_output") }},
		{name: "l1-only-ffn", layers: 1, toF32: func(s string) bool { return !strings.Contains(s, "ffn_") }},
		{name: "l1-only-embd", layers: 1, toF32: has("blk.")},
		{name: "l1-only-q", layers: 1, toF32: func(s string) bool { return !strings.Contains(s, "attn_q") }},
		{name: "l1-only-k", layers: 1, toF32: func(s string) bool { return !strings.Contains(s, "attn_k") }},
		{name: "l1-only-qk", layers: 1, toF32: func(s string) bool { return !strings.Contains(s, "attn_q") && !strings.Contains(s, "attn_k") }},
		{name: "l1-but-o", layers: 1, toF32: has("attn_output")},
		{name: "l1-qko", layers: 1, toF32: func(s string) bool { return !has("attn_q")(s) && !has("attn_k")(s) && !has("attn_output")(s) }},
		{name: "l1-but-ffn", layers: 1, toF32: has("ffn_")},
		{name: "l1-but-embd", layers: 1, toF32: has("token_embd")},
		{name: "l1-only-qk-nobias", layers: 1, toF32: func(s string) bool { return !strings.Contains(s, "attn_q") && !strings.Contains(s, "attn_k") }, zero: bias},
	}
	if only := os.Getenv("VERDICT_REFCHECK_TRACE_ONLY"); only != "" {
		var sel []variant
		for _, v := range vs {
			if strings.Contains(","+only+",", ","+v.name+",") {
				sel = append(sel, v)
			}
		}
		vs = sel
	}
	for _, v := range vs {
		path := src
		if v.layers != 0 || v.toF32 != nil || v.zero != nil || v.scale != nil {
			path = writeVariant(t, src, v)
		}
		t.Logf("%-18s %s", v.name, traceRow(t, node, dir, text, path, n))
		if path != src {
			os.Remove(path)
		}
	}
}

// TestTraceQwen2Q8Noise compares the qwen2.5-0.5b Q8_0 preset with the same
// weights in F32 (exact values, so no activation is quantised), in both
// engines (VERDICT_REFCHECK_TRACE=1).
func TestTraceQwen2Q8Noise(t *testing.T) {
	if os.Getenv("VERDICT_REFCHECK_TRACE") == "" {
		t.Skip("a diagnostic: VERDICT_REFCHECK_TRACE=1")
	}
	node, dir := testutil.NodeModule(t, "node-llama-cpp")
	text := readText(t)
	src := synthModel(t, "qwen2.5-0.5b", vocabQwen, "q8_0")
	n := 32
	f32 := writeVariant(t, src, variant{name: "f32", toF32: func(string) bool { return true }})
	defer os.Remove(f32)
	run := func(path string) (*refcheck.Llama, [][]float32) {
		m, err := model.Load(path, "")
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		e, err := engine.New(m, engine.Options{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		ll, err := refcheck.RunLlama(context.Background(), node, dir, refcheck.Request{Model: path, Text: text, Positions: n, TopK: topK, Threads: 2, Batch: n})
		if err != nil {
			t.Fatal(err)
		}
		lg, err := refcheck.TeacherForced(e, ll.Tokens)
		if err != nil {
			t.Fatal(err)
		}
		return ll, lg
	}
	llQ, vQ := run(src)
	llF, vF := run(f32)
	report := func(what string, r refcheck.Report, err error) {
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%-40s max |dp| %.4f (pos %d), mean %.2g, top agree %d/%d", what, r.MaxAbs, r.MaxAbsPos, r.MeanAbs, r.TopAgree, r.Positions)
	}
	r, err := refcheck.Compare(llF.Top, vF)
	report("F32 weights: llama.cpp vs Verdict", r, err)
	r, err = refcheck.Compare(llQ.Top, vQ)
	report("Q8_0: llama.cpp vs Verdict", r, err)
	r, err = refcheck.Floor(llF.Top, vF, vQ)
	report("Verdict: F32 vs Q8_0 (same weights)", r, err)
	r, err = refcheck.Compare(llF.Top, vQ)
	report("llama.cpp F32 vs Verdict Q8_0", r, err)
	r, err = refcheck.Compare(llQ.Top, vF)
	report("llama.cpp Q8_0 vs Verdict F32", r, err)
	for i := 0; i < 4; i++ {
		t.Logf("pos %d p(top): llama.cpp F32 %.5f Q8_0 %.5f, Verdict F32 %.5f Q8_0 %.5f", i, llF.Top[i][0].Prob, llQ.Top[i][0].Prob,
			refcheck.Softmax(vF[i])[llF.Top[i][0].Token], refcheck.Softmax(vQ[i])[llQ.Top[i][0].Token])
	}
}

// TestTraceScale compares llama.cpp and Verdict on a quantised preset
// rescaled in several ways (VERDICT_REFCHECK_TRACE=1;
// VERDICT_REFCHECK_TRACE_PRESET, _TYPE choose the model): whether a scale
// makes the synthetic model's top token less fragile.
func TestTraceScale(t *testing.T) {
	if os.Getenv("VERDICT_REFCHECK_TRACE") == "" {
		t.Skip("a diagnostic: VERDICT_REFCHECK_TRACE=1")
	}
	node, dir := testutil.NodeModule(t, "node-llama-cpp")
	text := readText(t)
	preset, typ := os.Getenv("VERDICT_REFCHECK_TRACE_PRESET"), os.Getenv("VERDICT_REFCHECK_TRACE_TYPE")
	if preset == "" {
		preset = "smollm2-135m"
	}
	if typ == "" {
		typ = "q8_0"
	}
	vocab := map[string]string{"smollm2-135m": vocabSmolLM2, "qwen2.5-0.5b": vocabQwen, "qwen3-0.6b": vocabQwen, "llama3.2-1b": vocabLlama3}[preset]
	src := synthModel(t, preset, vocab, typ)
	p, err := synth.LookupPreset(preset)
	if err != nil {
		t.Fatal(err)
	}
	branch := float32(1 / math.Sqrt(float64(2*p.Layers)))
	isBranch := func(s string) bool {
		return strings.HasSuffix(s, "attn_output.weight") || strings.HasSuffix(s, "ffn_down.weight")
	}
	vs := []variant{
		{name: "base"},
		{name: "gain-x2", scale: func(s string) float32 { return map[bool]float32{true: 2}[s == "output_norm.weight"] }},
		{name: "gain-x0.5", scale: func(s string) float32 { return map[bool]float32{true: 0.5}[s == "output_norm.weight"] }},
		{name: "branch-1:sqrt(2L)", scale: func(s string) float32 { return map[bool]float32{true: branch}[isBranch(s)] }},
		{name: "embd-x2", scale: func(s string) float32 {
			return map[string]float32{"token_embd.weight": 2, "output_norm.weight": 0.5}[s]
		}},
		{name: "embd-x4", scale: func(s string) float32 {
			return map[string]float32{"token_embd.weight": 4, "output_norm.weight": 0.25}[s]
		}},
		{name: "embd-x8", scale: func(s string) float32 {
			return map[string]float32{"token_embd.weight": 8, "output_norm.weight": 0.125}[s]
		}},
	}
	if only := os.Getenv("VERDICT_REFCHECK_TRACE_ONLY"); only != "" {
		var sel []variant
		for _, v := range vs {
			if strings.Contains(","+only+",", ","+v.name+",") {
				sel = append(sel, v)
			}
		}
		vs = sel
	}
	n := 256
	for _, v := range vs {
		path := src
		if v.scale != nil {
			path = writeVariant(t, src, v)
		}
		m, err := model.Load(path, "")
		if err != nil {
			t.Fatal(err)
		}
		e, err := engine.New(m, engine.Options{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		ll, err := refcheck.RunLlama(context.Background(), node, dir, refcheck.Request{Model: path, Text: text, Positions: n, TopK: topK, Threads: 2, Batch: n})
		if err != nil {
			t.Fatal(err)
		}
		lg, err := refcheck.TeacherForced(e, ll.Tokens)
		if err != nil {
			t.Fatal(err)
		}
		e.Close()
		ex, err := refcheck.Exact(m, 2, ll.Tokens)
		if err != nil {
			t.Fatal(err)
		}
		m.Close()
		rep, err := refcheck.Compare(ll.Top, lg)
		if err != nil {
			t.Fatal(err)
		}
		fl, err := refcheck.Floor(ll.Top, lg, ex)
		if err != nil {
			t.Fatal(err)
		}
		copies := 0
		for i, l := range lg {
			if i+1 < len(ll.Tokens) && argmaxF(l) == ll.Tokens[i] {
				copies++
			}
		}
		var gaps []string
		for _, d := range rep.Disagreements {
			gaps = append(gaps, fmt.Sprintf("%.3f", d.Gap))
		}
		t.Logf("%-18s llama.cpp vs Verdict: top %d/%d, max |dp| %.3f, mean %.3g, gaps %v; Verdict vs exact activations: top %d, max |dp| %.3f, mean %.3g; median top p %.2f, > 0.3 at %.0f%%, top = input token at %d",
			v.name, rep.TopAgree, rep.Positions, rep.MaxAbs, rep.MeanAbs, gaps, fl.TopAgree, fl.MaxAbs, fl.MeanAbs, rep.MedianTopP, 100*rep.Confident, copies)
		if path != src {
			os.Remove(path)
		}
	}
}

func argmaxF(x []float32) int {
	b := 0
	for i, v := range x {
		if v > x[b] {
			b = i
		}
	}
	return b
}
