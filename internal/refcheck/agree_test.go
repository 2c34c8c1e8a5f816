package refcheck_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/refcheck"
	"github.com/verdictnet/verdict/internal/synth"
	"github.com/verdictnet/verdict/internal/testutil"
)

var summaryOut = flag.String("refcheck.summary", "", "append one markdown table row per compared model to this file")

// modelDir holds the synthesised models of this test run, each written once.
var (
	modelDir  string
	modelOnce sync.Map // file name -> *sync.Once
)

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "refcheck-models-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	modelDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// synthModel returns the path of the preset's model of type typ (a name of
// synth.Types) on the vocabulary vocab (relative to ../shared; "" for the
// built-in one), writing it on first use.
func synthModel(tb testing.TB, preset, vocab, typ string) string {
	tb.Helper()
	var vocabPath string
	if vocab != "" {
		vocabPath = testutil.Shared(tb, vocab)
	}
	name := fmt.Sprintf("%s-%s.gguf", preset, typ)
	path := filepath.Join(modelDir, name)
	once, _ := modelOnce.LoadOrStore(name, new(sync.Once))
	var err error
	once.(*sync.Once).Do(func() {
		start := time.Now()
		err = synth.WriteFile(path, synth.Options{Preset: preset, Vocab: vocabPath, Seed: 1, Type: typ})
		tb.Logf("synthesised %s in %v", name, time.Since(start).Round(time.Millisecond))
	})
	if err != nil {
		tb.Fatalf("synthesising %s: %v", name, err)
	}
	if _, serr := os.Stat(path); serr != nil {
		tb.Fatalf("%s: %v (its synthesis failed in an earlier test)", name, serr)
	}
	return path
}

// agreeCase is one model file compared with llama.cpp.
type agreeCase struct {
	name      string
	path      func(testing.TB) string
	positions int
	crit      refcheck.Criteria
}

// nearTie is the log-probability gap under which a disagreement of the top
// tokens is excused: llama.cpp's two candidates are within 10% of each
// other in its own distribution.
const nearTie = 0.1

// topK is how many of llama.cpp's most probable tokens are compared at each
// position (see refcheck.Compare).
const topK = 64

func shared(rel string) func(testing.TB) string {
	return func(tb testing.TB) string { return testutil.Shared(tb, rel) }
}

func synthetic(preset, vocab, typ string) func(testing.TB) string {
	return func(tb testing.TB) string { return synthModel(tb, preset, vocab, typ) }
}

func crit(maxAbs, meanAbs float64) refcheck.Criteria {
	return refcheck.Criteria{MinTopAgree: 0.99, NearTie: nearTie, MaxAbs: maxAbs, MeanAbs: meanAbs}
}

// The real vocabularies of the presets (../shared/tokenizers/derived).
const (
	vocabSmolLM2 = "tokenizers/derived/ggml-vocab-smollm2.derived.gguf"
	vocabQwen    = "tokenizers/derived/ggml-vocab-qwen2.derived-from-qwen3.gguf"
	vocabLlama3  = "tokenizers/derived/ggml-vocab-llama-bpe.derived.gguf"
)

// The bounds are the measured differences (see the README) with headroom.
// F16: llama.cpp rounds the activations to binary16 before its F16 matrix
// products (ggml's vec_dot_type for F16); Verdict multiplies them in f32.
var agreeCases = []agreeCase{
	// stories260K: a trained model; its GGUFs declare a context of 128.
	{"stories260K/f32", shared("models/stories260K.gguf"), 128, crit(1e-5, 2e-6)},
	{"stories260K/f16", shared("models/stories260K-F16.gguf"), 128, crit(5e-3, 5e-4)},
	{"stories260K/q8_0", shared("models/stories260K-Q8_0.gguf"), 128, crit(1e-2, 2e-4)},
	// Q4_0 (output Q8_0): llama.cpp repacks the attention matrices
	// (CPU_REPACK); the residual is larger than Q8_0's (see the README).
	{"stories260K/q4_0", shared("models/stories260K-Q4_0.gguf"), 128, crit(5e-2, 1e-2)},
	{"smollm2-135m/q8_0", synthetic("smollm2-135m", vocabSmolLM2, "q8_0"), 256, crit(1, 1)},
}

func readText(tb testing.TB) string {
	b, err := os.ReadFile(filepath.Join("testdata", "story.txt"))
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// TestAgreeWithLlamaCpp compares every case with llama.cpp, teacher-forced
// and greedy.
func TestAgreeWithLlamaCpp(t *testing.T) {
	node, dir := testutil.NodeModule(t, "node-llama-cpp")
	text := readText(t)
	for _, c := range agreeCases {
		t.Run(c.name, func(t *testing.T) { runAgreement(t, node, dir, text, c) })
	}
}

func runAgreement(t *testing.T, node, dir, text string, c agreeCase) {
	path := c.path(t)
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
	const genPrompt, genTokens = 16, 48
	req := refcheck.Request{
		Model: path, Text: text, Positions: c.positions, TopK: topK, Threads: 2, Batch: c.positions,
		GenPrompt: genPrompt, GenTokens: min(genTokens, m.Config.ContextLen-genPrompt), GenTop: 16,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	ll, err := refcheck.RunLlama(ctx, node, dir, req)
	if err != nil {
		t.Fatal(err)
	}
	llamaTime := time.Since(start)
	if ll.FlashAttention || !ll.KVCacheF32() {
		t.Fatalf("llama.cpp did not run with flash attention off and an F32 KV cache: %+v", ll.Settings)
	}
	if len(ll.Tokens) != c.positions {
		t.Fatalf("llama.cpp evaluated %d positions, want %d", len(ll.Tokens), c.positions)
	}
	start = time.Now()
	logits, err := refcheck.TeacherForced(e, ll.Tokens)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := refcheck.Compare(ll.Top, logits)
	if err != nil {
		t.Fatal(err)
	}
	g, err := refcheck.Greedy(e, ll.Tokens[:genPrompt], ll.Gen, ll.GenTop)
	if err != nil {
		t.Fatal(err)
	}
	verdictTime := time.Since(start)
	t.Logf("llama.cpp: %v", ll.Settings.Log)
	t.Logf("%s: %d positions, top token agrees at %d (%.2f%%), %d disagreements, max |dp| %.3g (pos %d), mean max |dp| %.3g, largest mass outside llama.cpp's top %d %.2g; Verdict's top p median %.3f, > 0.3 at %.0f%%; greedy %d/%d same (diverged %v, gap %.3g); llama.cpp %v, Verdict %v",
		c.name, rep.Positions, rep.TopAgree, 100*rep.TopAgreeShare(), len(rep.Disagreements), rep.MaxAbs, rep.MaxAbsPos, rep.MeanAbs, topK, rep.MaxTail,
		rep.MedianTopP, 100*rep.Confident, g.Same, g.Steps, g.Diverged, g.Gap, llamaTime.Round(time.Millisecond), verdictTime.Round(time.Millisecond))
	for _, d := range rep.Disagreements {
		t.Logf("  disagreement at %d: llama.cpp %d (p %.5f), Verdict %d (llama.cpp p %.5f), gap %.4f", d.Pos, d.Llama, d.LlamaP, d.Verdict, d.LlamaPVerdict, d.Gap)
	}
	if *summaryOut != "" {
		f, err := os.OpenFile(*summaryOut, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintf(f, "| %s | %d | %.2f%% | %d | %.2g | %.2g | %.2g | %.2f | %d/%d |\n", c.name, rep.Positions, 100*rep.TopAgreeShare(),
				len(rep.Disagreements), rep.MaxAbs, rep.MeanAbs, rep.MaxTail, rep.MedianTopP, g.Same, g.Steps)
			f.Close()
		}
	}
	if err := rep.Check(c.crit); err != nil {
		t.Error(err)
	}
	if err := g.Check(nearTie); err != nil {
		t.Error(err)
	}
}
