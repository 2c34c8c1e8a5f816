package audit

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/generate"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/modelid"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/sampler"
)

func sharedModels(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "models")
	if _, err := os.Stat(filepath.Join(dir, "stories260K.gguf")); err != nil {
		t.Skipf("shared models not available at %s: %v", dir, err)
	}
	return dir
}

type fixture struct {
	m   *model.Model
	e   *engine.Engine
	id  merkle.Hash
	key *keys.Key
	// spec is the determinism spec the fixture's receipts name ("":
	// engine.SpecVersion).
	spec string
}

func loadFixture(t testing.TB, file string, threads int) *fixture {
	t.Helper()
	m, err := model.Load(filepath.Join(sharedModels(t), file), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return newFixture(t, m, threads)
}

func newFixture(t testing.TB, m *model.Model, threads int) *fixture {
	t.Helper()
	e, err := engine.New(m, engine.Options{Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	id, err := modelid.Of(m)
	if err != nil {
		t.Fatal(err)
	}
	k, err := keys.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{m: m, e: e, id: id, key: k}
}

var storyPrompt = []int{1, 403, 407, 261, 378} // "Once upon a time", reference trace p1

// generateReceipt runs a generation as `verdict run --receipt` does.
func (f *fixture) generateReceipt(t testing.TB, prompt []int, p sampler.Params, steps int) *receipt.Receipt {
	t.Helper()
	rec := NewRecorder(f.m.Config, prompt)
	stop := []int{f.m.Vocab.BOS}
	res, err := generate.Run(context.Background(), f.e, generate.Request{
		Prompt: prompt, Steps: steps, Sampler: p, StopTokens: stop,
		OnLogits: func(pos int, l []float32) error { rec.Logits(pos, l); return nil },
		Trace:    rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	spec := f.spec
	if spec == "" {
		spec = engine.SpecVersion
	}
	r, err := rec.Receipt(f.id, spec, p, EffectiveSteps(steps, f.m.Config.ContextLen), stop, res.Output, nil, f.key)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestHonestReceiptReplays(t *testing.T) {
	f := loadFixture(t, "stories260K.gguf", 2)
	for _, p := range []sampler.Params{{}, {Temperature: 0.8, TopK: 40, TopP: 0.9, Seed: 42}, {Temperature: 1, Seed: 7}} {
		r := f.generateReceipt(t, storyPrompt, p, 64)
		if err := Replay(context.Background(), f.e, r, f.id); err != nil {
			t.Fatalf("%+v: honest receipt rejected: %v", p, err)
		}
		// Another thread count and the .bin file of the same model agree.
		g := loadFixture(t, "stories260K.gguf", 1)
		if err := Replay(context.Background(), g.e, r, g.id); err != nil {
			t.Fatalf("1 thread: %v", err)
		}
		enc, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if limit := 1024 + 4*(len(r.Prompt)+len(r.Output)); len(enc) > limit {
			t.Errorf("receipt of %d tokens is %d bytes, limit %d", len(r.Prompt)+len(r.Output), len(enc), limit)
		}
	}
}

// binFixture is the fixture of stories260K.bin (llama2.c, its context
// 512 positions), on two threads: the model of stories260K.gguf (128).
func binFixture(t testing.TB) *fixture {
	t.Helper()
	dir := sharedModels(t)
	m, err := model.Load(filepath.Join(dir, "stories260K.bin"), filepath.Join(dir, "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return newFixture(t, m, 2)
}

func TestHonestReceiptFromBinReplaysOnGGUF(t *testing.T) {
	f := binFixture(t)
	r := f.generateReceipt(t, storyPrompt, sampler.Params{}, 100)
	g := loadFixture(t, "stories260K.gguf", 2)
	if err := Replay(context.Background(), g.e, r, g.id); err != nil {
		t.Fatal(err)
	}
}

func TestHonestOpeningsPass(t *testing.T) {
	f := loadFixture(t, "stories260K.gguf", 2)
	r := f.generateReceipt(t, storyPrompt, sampler.Params{Temperature: 0.9, Seed: 3}, 64)
	lay := NewLayout(f.m.Config, len(r.Prompt), len(r.Output))
	for seed := uint64(0); seed < 20; seed++ {
		k := []int{1, 4, 16, lay.Cells()}[seed%4]
		o, err := Open(context.Background(), f.e, r, seed, k)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := ParseOpenings(o.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		if err := Check(f.m, f.id, r, seed, k, parsed); err != nil {
			t.Fatalf("seed %d k %d: honest openings rejected: %v", seed, k, err)
		}
		// The same openings do not answer another challenge.
		if err := Check(f.m, f.id, r, seed+1000, k, parsed); err == nil && k < lay.Cells() {
			t.Fatalf("openings accepted for another seed")
		}
	}
}

func TestSelect(t *testing.T) {
	lay := Layout{Layers: 5, Dim: 64, KVHeads: 4, HeadDim: 8, Prompt: 5, Output: 60}
	var id [32]byte
	n := lay.Cells()
	counts := make([]int, n)
	for seed := uint64(0); seed < 2000; seed++ {
		cells := lay.Select(id, seed, 16)
		if len(cells) != 16 {
			t.Fatalf("%d cells", len(cells))
		}
		for i, c := range cells {
			if c < 0 || c >= n || (i > 0 && c <= cells[i-1]) {
				t.Fatalf("cells %v not distinct ascending in range", cells)
			}
			counts[c]++
		}
	}
	// Every cell is drawn about 2000*16/n times.
	want := 2000 * 16 / n
	for c, k := range counts {
		if k < want/3 || k > want*3 {
			t.Fatalf("cell %d drawn %d times, expected about %d", c, k, want)
		}
	}
	// k > cells selects every challengeable cell: here, with each cell's
	// share of the openings budget OpeningsBudget/Cells, the layer cells
	// of the first positions and the logits cells (Layout.Challengeable).
	positions, logits := lay.Challengeable(n + 5)
	if positions < 1 || !logits {
		t.Fatalf("k > cells: %d positions challengeable, logits %v", positions, logits)
	}
	if got := lay.Select(id, 1, n+5); len(got) != positions*lay.Layers+lay.Output {
		t.Fatalf("k > cells gives %d cells", len(got))
	}
}

func TestParseOpeningsRejects(t *testing.T) {
	for _, s := range []string{"", "{}", `{"version":2}`, `{"version":1,"receipt":"00","seed":"1","cells":[],"trace_proof":[],"logits_proof":[]}`} {
		if _, err := ParseOpenings([]byte(s)); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func FuzzParseOpenings(f *testing.F) {
	o := &Openings{Version: 1, Seed: 5, Cells: []CellOpening{{Cell: 3, Head: 1, In: []byte{1, 2, 3, 4}, KV: []byte{0}}}, TraceProof: []merkle.Hash{{1}}}
	f.Add(o.Marshal())
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := ParseOpenings(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if string(o.Marshal()) != string(data) {
			t.Fatal("accepted a non-canonical encoding")
		}
	})
}

var _ = errors.Is

// TestContextNotCommitted: stories260K.bin states a context of 512
// positions, its GGUF conversion 128, and both have one model id (the
// context length is not part of it). A receipt of more than 128 positions
// made on the first used to be refused on the second ("the model's
// context is 128"): its replay, its openings (which validators check
// inside a block) and its dispute (a forfeit). Validators holding the two
// files would have disagreed on it, and the ledger split. Now nothing a
// verifier checks reads the context length its file states.
func TestContextNotCommitted(t *testing.T) {
	if engine.MaxPositions != receipt.MaxTokens {
		t.Fatalf("engine.MaxPositions %d, receipt.MaxTokens %d", engine.MaxPositions, receipt.MaxTokens)
	}
	f := binFixture(t)
	g := loadFixture(t, "stories260K.gguf", 2)
	if f.id != g.id || f.m.Config.ContextLen <= g.m.Config.ContextLen {
		t.Fatalf("ids %s, %s; contexts %d, %d", f.id, g.id, f.m.Config.ContextLen, g.m.Config.ContextLen)
	}
	// Sampled without stop tokens, so that it runs to its steps.
	const steps = 200
	p := sampler.Params{Temperature: 1, Seed: 11}
	rec := NewRecorder(f.m.Config, storyPrompt)
	res, err := generate.Run(context.Background(), f.e, generate.Request{Prompt: storyPrompt, Steps: steps, Sampler: p,
		OnLogits: func(pos int, l []float32) error { rec.Logits(pos, l); return nil }, Trace: rec})
	if err != nil {
		t.Fatal(err)
	}
	r, err := rec.Receipt(f.id, engine.SpecVersion, p, steps, nil, res.Output, nil, f.key)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(r.Prompt) + len(r.Output) - 1; n <= g.m.Config.ContextLen {
		t.Fatalf("receipt of %d positions, not past the GGUF's context", n)
	}
	if err := Replay(context.Background(), g.e, r, g.id); err != nil {
		t.Fatalf("replay on the GGUF: %v", err)
	}
	lay := NewLayout(g.m.Config, len(r.Prompt), len(r.Output))
	o, err := Open(context.Background(), f.e, r, 3, lay.Cells())
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(g.m, g.id, r, 3, lay.Cells(), o); err != nil {
		t.Fatalf("every cell's openings checked on the GGUF: %v", err)
	}
	rb, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cfg, ref, err := DisputeSetup(g.m, g.id, rb, make([]byte, 32))
	if err != nil || ref == nil || cfg.Forfeit != [2]dispute.Loss{} {
		t.Fatalf("dispute setup on the GGUF: forfeit %q, referee %v, error %v", cfg.Forfeit, ref != nil, err)
	}
}

// TestReplayInChunks: a replay's passes of replayChunk positions compute
// what one pass computes (the logit vectors bit for bit, prefill), an
// honest receipt replays, and one whose output token was changed, early
// or late, is refused at that position, whatever the chunk (1, 7, 256
// positions, or all at once).
func TestReplayInChunks(t *testing.T) {
	f := binFixture(t)
	r := f.generateReceipt(t, storyPrompt, sampler.Params{Temperature: 0.8, Seed: 42}, 200)
	P, n := len(r.Prompt), len(r.Output)
	if n < 30 {
		t.Fatalf("a receipt of %d output tokens spans too few chunks", n)
	}
	defer func(c int) { replayChunk = c }(replayChunk)
	var want [][]float32
	for _, c := range []int{1 << 20, 256, 7, 1} {
		replayChunk = c
		if err := Replay(context.Background(), f.e, r, f.id); err != nil {
			t.Fatalf("chunks of %d: honest receipt rejected: %v", c, err)
		}
		_, got, err := prefill(context.Background(), f.e, r, false)
		if err != nil {
			t.Fatal(err)
		}
		if want == nil {
			want = got
		}
		for p := P - 1; p < P+n-1; p++ {
			for i := range want[p] {
				if math.Float32bits(got[p][i]) != math.Float32bits(want[p][i]) {
					t.Fatalf("chunks of %d: position %d logit %d: %v, in one pass %v", c, p, i, got[p][i], want[p][i])
				}
			}
		}
		for _, j := range []int{3, n - 2} {
			forged := *r
			forged.Output = slices.Clone(r.Output)
			forged.Output[j] = (forged.Output[j] + 1) % f.m.Config.Vocab
			if err := forged.Sign(f.key.Private); err != nil {
				t.Fatal(err)
			}
			var mm *Mismatch
			if err := Replay(context.Background(), f.e, &forged, f.id); !errors.As(err, &mm) || mm.What != "token" || mm.Position != P+j {
				t.Fatalf("chunks of %d: output token %d changed: %v, want a token mismatch at position %d", c, j, err, P+j)
			}
		}
	}
}
