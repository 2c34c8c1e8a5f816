package engine_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/generate"
	"github.com/verdictnet/verdict/internal/kernels"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/sampler"
	"github.com/verdictnet/verdict/internal/testutil"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

type loaded struct {
	m   *model.Model
	tok *tokenizer.Tokenizer
}

// kvSuffix on a model file name in these tests (load) runs the model's
// engines (newEngine) with the binary16 key/value cache (engine.SpecKV16).
const kvSuffix = "+kv16"

// kv16Models are the models loaded with kvSuffix.
var kv16Models sync.Map // *model.Model -> true

func load(tb testing.TB, file, tokFile string) loaded {
	tb.Helper()
	file, kv16 := strings.CutSuffix(file, kvSuffix)
	l := loadFile(tb, file, tokFile)
	if kv16 {
		kv16Models.Store(l.m, true)
		tb.Cleanup(func() { kv16Models.Delete(l.m) })
	}
	return l
}

func loadFile(tb testing.TB, file, tokFile string) loaded {
	tb.Helper()
	var path string
	if strings.HasPrefix(file, "synth:") {
		path = synthModel(tb, file)
	} else {
		path = testutil.Shared(tb, "models/"+file)
	}
	tp := ""
	if tokFile != "" {
		tp = testutil.Shared(tb, "models/"+tokFile)
	}
	m, err := model.Load(path, tp)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	tok, err := tokenizer.New(m.Vocab)
	if err != nil {
		tb.Fatal(err)
	}
	return loaded{m, tok}
}

func newEngine(tb testing.TB, m *model.Model, threads int) *engine.Engine {
	tb.Helper()
	opts := engine.Options{Threads: threads}
	if _, ok := kv16Models.Load(m); ok {
		opts.KV = engine.KVF16
	}
	e, err := engine.New(m, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(e.Close)
	return e
}

// readTrace parses a reference trace: the prompt tokens and the token fed at
// every position.
func readTrace(tb testing.TB, name string) (prompt, fed []int) {
	tb.Helper()
	f, err := os.Open(testutil.Shared(tb, "reference/traces/"+name))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) > 0 && fields[0] == "PROMPT_TOKENS:":
			for _, s := range fields[1:] {
				n, err := strconv.Atoi(s)
				if err != nil {
					tb.Fatal(err)
				}
				prompt = append(prompt, n)
			}
		case len(fields) == 4 && fields[0] == "POS" && fields[2] == "IN":
			pos, err1 := strconv.Atoi(fields[1])
			t, err2 := strconv.Atoi(fields[3])
			if err1 != nil || err2 != nil || pos != len(fed) {
				tb.Fatalf("bad trace line %q", sc.Text())
			}
			fed = append(fed, t)
		}
	}
	if len(prompt) == 0 || len(fed) == 0 {
		tb.Fatalf("trace %s: nothing parsed", name)
	}
	return prompt, fed
}

var prompts = map[string]string{
	"p1": "Once upon a time",
	"p2": "Lily and Tom went to the park",
	"p3": "The little dog",
}

// TestTracesMatchReference checks the prompt tokens and every fed token
// against run.c's traces, for the llama2.c checkpoint and the GGUF files
// (tokenizer from the GGUF).
func TestTracesMatchReference(t *testing.T) {
	for _, mf := range [][2]string{
		{"stories260K.bin", "tok512.bin"},
		{"stories260K.gguf", ""},
		{"stories260K-F16.gguf", ""},
		{"stories260K-Q8_0.gguf", ""},
	} {
		l := load(t, mf[0], mf[1])
		e := newEngine(t, l.m, 2)
		for _, p := range []string{"p1", "p2", "p3"} {
			t.Run(mf[0]+"/"+p, func(t *testing.T) {
				wantPrompt, wantFed := readTrace(t, p+".txt")
				prompt, err := l.tok.Encode(prompts[p], true)
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(prompt) != fmt.Sprint(wantPrompt) {
					t.Fatalf("prompt tokens %v, reference %v", prompt, wantPrompt)
				}
				res, err := generate.Run(context.Background(), e, generate.Request{
					Prompt: prompt, Steps: len(wantFed), StopTokens: []int{1},
				})
				if err != nil {
					t.Fatal(err)
				}
				fed := append(append([]int{}, prompt...), res.Output...)[:len(wantFed)]
				if fmt.Sprint(fed) != fmt.Sprint(wantFed) {
					t.Fatalf("fed tokens differ from the reference:\n got %v\nwant %v", fed, wantFed)
				}
			})
		}
	}
}

// TestLogitsMatchReference compares logits with run.c's dumps: within 1e-4
// and the same argmax.
func TestLogitsMatchReference(t *testing.T) {
	l := load(t, "stories260K.bin", "tok512.bin")
	e := newEngine(t, l.m, 1)
	for _, c := range []struct {
		file, prompt string
		pos          int
	}{
		{"p1_pos0.txt", "p1", 0}, {"p1_pos3.txt", "p1", 3}, {"p2_pos0.txt", "p2", 0}, {"p3_pos0.txt", "p3", 0},
	} {
		want := readLogits(t, c.file)
		prompt, err := l.tok.Encode(prompts[c.prompt], true)
		if err != nil {
			t.Fatal(err)
		}
		seq, err := e.NewSequence(c.pos + 1)
		if err != nil {
			t.Fatal(err)
		}
		it := &engine.Item{Seq: seq, Tokens: prompt[:c.pos+1], Logits: engine.LogitsLast}
		if err := e.Forward(it); err != nil {
			t.Fatal(err)
		}
		got := it.Out[0]
		worst := 0.0
		for i := range want {
			worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
		}
		if worst > 1e-4 {
			t.Errorf("%s: max |logit - reference| = %g, want <= 1e-4", c.file, worst)
		}
		if a, b := sampler.Argmax(got), sampler.Argmax(want); a != b {
			t.Errorf("%s: argmax %d, reference %d", c.file, a, b)
		}
		t.Logf("%s: max abs difference %.3g", c.file, worst)
	}
}

func readLogits(tb testing.TB, name string) []float32 {
	tb.Helper()
	data, err := os.ReadFile(testutil.Shared(tb, "reference/logits/"+name))
	if err != nil {
		tb.Fatal(err)
	}
	var out []float32
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != strconv.Itoa(i) {
			tb.Fatalf("%s: bad line %q", name, line)
		}
		bits, err := strconv.ParseUint(f[1], 16, 32)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, math.Float32frombits(uint32(bits)))
	}
	return out
}

// digestCase is one generation whose logit digest is pinned in
// testdata/digests.golden.
type digestCase struct {
	name, file, tok, prompt string
	steps                   int
	sampler                 sampler.Params
	// big cases run in fewer thread/prefill configurations (slow under qemu).
	big bool
}

var digestCases = []digestCase{
	{"bin-p1-greedy", "stories260K.bin", "tok512.bin", "Once upon a time", 64, sampler.Params{}, false},
	{"bin-noprompt-greedy", "stories260K.bin", "tok512.bin", "", 200, sampler.Params{}, false},
	{"bin-p2-sampled", "stories260K.bin", "tok512.bin", "Lily and Tom went to the park", 96, sampler.Params{Temperature: 0.9, TopP: 0.9, Seed: 42}, false},
	{"gguf-p3-topk", "stories260K.gguf", "", "The little dog", 64, sampler.Params{Temperature: 1, TopK: 20, Seed: 7}, false},
	{"f16-p1-greedy", "stories260K-F16.gguf", "", "Once upon a time", 64, sampler.Params{}, false},
	{"q8_0-p2-greedy", "stories260K-Q8_0.gguf", "", "Lily and Tom went to the park", 64, sampler.Params{}, false},
	{"q4_0-p3-sampled", "stories260K-Q4_0.gguf", "", "The little dog", 64, sampler.Params{Temperature: 0.7, Seed: 3}, false},
	{"tiny-random-f16", "llama-2-tiny-random.gguf", "", "Hello world", 24, sampler.Params{}, false},
	// The binary16 key/value cache (engine.SpecKV16).
	{"bin-p1-greedy-kv16", "stories260K.bin" + kvSuffix, "tok512.bin", "Once upon a time", 64, sampler.Params{}, false},
	{"q8_0-p2-sampled-kv16", "stories260K-Q8_0.gguf" + kvSuffix, "", "Lily and Tom went to the park", 64, sampler.Params{Temperature: 0.9, Seed: 5}, false},
}

func runDigest(tb testing.TB, e *engine.Engine, tok *tokenizer.Tokenizer, c digestCase, tokenByToken bool) (string, []int) {
	tb.Helper()
	prompt, err := tok.Encode(c.prompt, true)
	if err != nil {
		tb.Fatal(err)
	}
	d := generate.NewDigest()
	res, err := generate.Run(context.Background(), e, generate.Request{
		Prompt: prompt, Steps: c.steps, Sampler: c.sampler, TokenByToken: tokenByToken,
		OnLogits: func(pos int, logits []float32) error { d.Add(logits); return nil },
	})
	if err != nil {
		tb.Fatal(err)
	}
	return d.Hex(), res.Output
}

// TestGoldenDigests pins the bits of every logit vector of several runs and
// checks that thread counts 1, 2, 3 and 8, and prefill versus token-by-token
// decode, all give exactly those bits. The same golden file is checked by the
// GOAMD64=v3 and GOARCH=arm64 (qemu) runs of this test in .ci/run.
func TestGoldenDigests(t *testing.T) {
	golden := filepath.Join("testdata", "digests.golden")
	got := map[string]string{}
	for _, c := range digestCases {
		l := load(t, c.file, c.tok)
		var first string
		var firstOut []int
		for _, threads := range []int{1, 2, 3, 8} {
			e := newEngine(t, l.m, threads)
			for _, tbt := range []bool{false, true} {
				if tbt && threads != 1 && threads != 3 {
					continue
				}
				if (c.big || scalarBig[c.name] && kernels.FastPath == "") && !((threads == 1 && !tbt) || (threads == 3 && tbt)) {
					continue
				}
				dg, out := runDigest(t, e, l.tok, c, tbt)
				if first == "" {
					first, firstOut = dg, out
					continue
				}
				if dg != first {
					t.Errorf("%s: threads %d token-by-token %v: digest %s, threads 1 prefill gave %s", c.name, threads, tbt, dg, first)
				}
				if fmt.Sprint(out) != fmt.Sprint(firstOut) {
					t.Errorf("%s: threads %d token-by-token %v: different tokens", c.name, threads, tbt)
				}
			}
		}
		got[c.name] = first
	}
	if *update {
		var b strings.Builder
		names := make([]string, 0, len(got))
		for n := range got {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(&b, "%s %s\n", n, got[n])
		}
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("reading %s (run with -update to create): %v", golden, err)
	}
	want := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 {
			want[f[0]] = f[1]
		}
	}
	for _, c := range digestCases {
		if want[c.name] != got[c.name] {
			t.Errorf("%s: digest %s, golden %s", c.name, got[c.name], want[c.name])
		}
	}
}

// TestBatchEqualsAlone runs three sequences as one batch (their prompts in
// one prefill, then decode steps together) and each alone, and compares every
// logit bit; and 16 sequences (decode steps of 16 rows: the 16-row kwt
// tiles of Q4_K and Q6_K) on the K-type models.
func TestBatchEqualsAlone(t *testing.T) {
	for _, mf := range append(cellModels, [2]string{"synth:tiny256:mix", ""}) { // and a model with every quantised type (synth_test.go)
		t.Run(mf[0], func(t *testing.T) { testBatchEqualsAlone(t, mf, 3) })
	}
	for _, mf := range [][2]string{{"synth:tiny256:mix", ""}, {"synth:tiny256-qwen3:q4_k_m", ""}, {"synth:tiny256-qwen3:q4_k_m" + kvSuffix, ""}} {
		t.Run(mf[0]+"/16", func(t *testing.T) { testBatchEqualsAlone(t, mf, 16) })
	}
}

// testBatchEqualsAlone runs n sequences: the prompts p1, p2, p3 in turn,
// the (i/3)th of each without its last i/3 tokens.
func testBatchEqualsAlone(t *testing.T, mf [2]string, n int) {
	l := load(t, mf[0], mf[1])
	e := newEngine(t, l.m, 3)
	var ps [][]int
	for i := 0; i < n; i++ {
		toks, err := l.tok.Encode(prompts[[]string{"p1", "p2", "p3"}[i%3]], true)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, toks[:max(1, len(toks)-i/3)])
	}
	const extra = 12
	// Alone: prompt then greedy decode, one sequence at a time.
	alone := make([][][]float32, len(ps))
	next := make([][]int, len(ps))
	for i, p := range ps {
		seq, _ := e.NewSequence(len(p) + extra)
		it := &engine.Item{Seq: seq, Tokens: p, Logits: engine.LogitsAll}
		if err := e.Forward(it); err != nil {
			t.Fatal(err)
		}
		alone[i] = append(alone[i], it.Out...)
		for s := 0; s < extra; s++ {
			tok := sampler.Argmax(it.Out[len(it.Out)-1])
			next[i] = append(next[i], tok)
			it = &engine.Item{Seq: seq, Tokens: []int{tok}, Logits: engine.LogitsAll}
			if err := e.Forward(it); err != nil {
				t.Fatal(err)
			}
			alone[i] = append(alone[i], it.Out...)
		}
	}
	// Together.
	seqs := make([]*engine.Sequence, len(ps))
	items := make([]*engine.Item, len(ps))
	together := make([][][]float32, len(ps))
	for i, p := range ps {
		seqs[i], _ = e.NewSequence(len(p) + extra)
		items[i] = &engine.Item{Seq: seqs[i], Tokens: p, Logits: engine.LogitsAll}
	}
	if err := e.Forward(items...); err != nil {
		t.Fatal(err)
	}
	for s := 0; ; s++ {
		for i := range items {
			together[i] = append(together[i], items[i].Out...)
		}
		if s == extra {
			break
		}
		for i := range items {
			items[i] = &engine.Item{Seq: seqs[i], Tokens: []int{next[i][s]}, Logits: engine.LogitsAll}
		}
		if err := e.Forward(items...); err != nil {
			t.Fatal(err)
		}
	}
	for i := range ps {
		if len(alone[i]) != len(together[i]) {
			t.Fatalf("sequence %d: %d logit vectors alone, %d batched", i, len(alone[i]), len(together[i]))
		}
		for p := range alone[i] {
			for j := range alone[i][p] {
				if math.Float32bits(alone[i][p][j]) != math.Float32bits(together[i][p][j]) {
					t.Fatalf("sequence %d position %d logit %d: %v alone, %v batched", i, p, j, alone[i][p][j], together[i][p][j])
				}
			}
		}
	}
}

// TestSeededSampling: the same seed gives the same text on every thread
// count; another seed gives another text.
func TestSeededSampling(t *testing.T) {
	l := load(t, "stories260K.bin", "tok512.bin")
	c := digestCase{prompt: "Once upon a time", steps: 80, sampler: sampler.Params{Temperature: 1, Seed: 1234}}
	var ref []int
	for _, threads := range []int{1, 2, 5} {
		_, out := runDigest(t, newEngine(t, l.m, threads), l.tok, c, false)
		if ref == nil {
			ref = out
		} else if fmt.Sprint(out) != fmt.Sprint(ref) {
			t.Fatalf("threads %d: sampled tokens differ", threads)
		}
	}
	c.sampler.Seed = 1235
	_, other := runDigest(t, newEngine(t, l.m, 2), l.tok, c, false)
	if fmt.Sprint(other) == fmt.Sprint(ref) {
		t.Fatal("seeds 1234 and 1235 gave the same text")
	}
	greedy := c
	greedy.sampler = sampler.Params{}
	_, g := runDigest(t, newEngine(t, l.m, 2), l.tok, greedy, false)
	if fmt.Sprint(g) == fmt.Sprint(ref) {
		t.Fatal("sampling at temperature 1 gave the greedy text")
	}
}

// TestRopeAnglesInRange: the smallest frequency base and factors a model
// may have (model.Config.Validate: at least 1) keep every RoPE angle of
// every position a sequence may hold (MaxPositions) inside
// detmath.SinCos64's range: cos and sin finite and of magnitude at most 1.
// A base of 1/2 would not.
func TestRopeAnglesInRange(t *testing.T) {
	for _, hd := range []int{2, 64, 128, 256} {
		for _, theta := range []float32{1, 1.5, 10000, 5e5, 1e6, math.MaxFloat32} {
			freqs := engine.RopeFreqs(theta, hd)
			engine.DivideFreqs(freqs, slices.Repeat([]float32{1}, hd/2))
			cos, sin := make([]float32, hd/2), make([]float32, hd/2)
			for _, pos := range []int{0, 1, engine.MaxPositions/2 + 7, engine.MaxPositions - 1} {
				engine.RopeAngles(freqs, pos, cos, sin)
				for j := range cos {
					if !(math.Abs(float64(cos[j])) <= 1 && math.Abs(float64(sin[j])) <= 1) {
						t.Fatalf("head size %d, theta %v, position %d, pair %d: cos %v sin %v", hd, theta, pos, j, cos[j], sin[j])
					}
				}
			}
		}
	}
	cos, sin := make([]float32, 32), make([]float32, 32)
	engine.RopeAngles(engine.RopeFreqs(0.5, 64), engine.MaxPositions-1, cos, sin)
	if !math.IsNaN(float64(cos[31])) {
		t.Errorf("theta 1/2: cos %v at the last position; the test no longer shows what the model's check guards", cos[31])
	}
}
