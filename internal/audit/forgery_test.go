package audit

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/sampler"
	"github.com/verdictnet/verdict/internal/synth"
	"github.com/verdictnet/verdict/internal/tensor"
)

// A forgery is a receipt the worker signs (or someone alters) and the
// trace a forger would open for it: the forger computes honestly whatever
// its lie does not force it to change, which is its best strategy.
type forgery struct {
	name string
	// make returns the forged receipt and a trace to open it from (nil when
	// the forger cannot open anything).
	make func(t *testing.T, s *suite) (*receipt.Receipt, *Trace)
}

type suite struct {
	honest *fixture
	r      *receipt.Receipt // an honest receipt
	params sampler.Params
	steps  int
	prompt []int
	other  *fixture // a different model with the same shapes (F16), or nil
}

func cloneReceipt(r *receipt.Receipt) *receipt.Receipt {
	c := *r
	c.Prompt = append([]int(nil), r.Prompt...)
	c.Output = append([]int(nil), r.Output...)
	c.Sampling.Stop = append([]int(nil), r.Sampling.Stop...)
	c.Signature = append([]byte(nil), r.Signature...)
	return &c
}

// recommit recomputes the roots of r on f's engine and signs it with the
// honest worker key, claiming model id `id`.
func recommit(t *testing.T, f *fixture, r *receipt.Receipt, id merkle.Hash, key *fixture) (*receipt.Receipt, *Trace) {
	t.Helper()
	tr, err := regenerate(context.Background(), f.e, r)
	if err != nil {
		t.Fatal(err)
	}
	r.Model = id
	r.TraceRoot, r.LogitsRoot = tr.trace.Root(), tr.logits.Root()
	if err := r.Sign(key.key.Private); err != nil {
		t.Fatal(err)
	}
	tr.r = r
	return r, tr
}

// runWith generates on a forger's model but claims the honest model id.
func (s *suite) runWith(t *testing.T, f *fixture) (*receipt.Receipt, *Trace) {
	t.Helper()
	saved := f.id
	f.id = s.honest.id
	defer func() { f.id = saved }()
	r := f.generateReceipt(t, s.prompt, s.params, s.steps)
	tr, err := regenerate(context.Background(), f.e, r)
	if err != nil {
		t.Fatal(err)
	}
	return r, tr
}

func copyTensor(t *tensor.Tensor) *tensor.Tensor {
	return &tensor.Tensor{Name: t.Name, Type: t.Type, Dims: t.Dims, Data: append([]byte(nil), t.Data...)}
}

func cloneModel(m *model.Model) *model.Model {
	c := *m
	c.Layers = append([]model.Layer(nil), m.Layers...)
	return &c
}

// ulpModel changes one weight (element 1 of layer 1's attention norm) by
// one ulp.
func ulpModel(m *model.Model) *model.Model {
	m = cloneModel(m)
	w := copyTensor(m.Layers[1].AttnNorm)
	binary.LittleEndian.PutUint32(w.Data[4:], binary.LittleEndian.Uint32(w.Data[4:])+1)
	m.Layers[1].AttnNorm = w
	return m
}

// skipLayerModel makes the middle layer an identity (its output projection
// and down projection are zero, so both residual additions add 0).
func skipLayerModel(m *model.Model) *model.Model {
	m = cloneModel(m)
	l := len(m.Layers) / 2
	for _, p := range []**tensor.Tensor{&m.Layers[l].Wo, &m.Layers[l].FFNDown} {
		z := copyTensor(*p)
		clear(z.Data)
		*p = z
	}
	return m
}

var forgeries = []forgery{
	{"changed output token", func(t *testing.T, s *suite) (*receipt.Receipt, *Trace) {
		r := cloneReceipt(s.r)
		j := len(r.Output) / 2
		r.Output[j] = (r.Output[j] + 7) % s.honest.m.Config.Vocab
		if r.Output[j] == s.honest.m.Vocab.BOS {
			r.Output[j]++
		}
		return recommit(t, s.honest, r, s.honest.id, s.honest)
	}},
	{"changed prompt token", func(t *testing.T, s *suite) (*receipt.Receipt, *Trace) {
		r := cloneReceipt(s.r)
		r.Prompt[2] = (r.Prompt[2] + 11) % s.honest.m.Config.Vocab
		return recommit(t, s.honest, r, s.honest.id, s.honest)
	}},
	{"one flipped logit bit", func(t *testing.T, s *suite) (*receipt.Receipt, *Trace) {
		r := cloneReceipt(s.r)
		_, tr := recommit(t, s.honest, r, s.honest.id, s.honest)
		// Flip the lowest bit of logit 0 of output token j's vector.
		j := len(r.Output) / 3
		lg := tr.rec.logitsData(t, s.honest, r, j)
		bits := math.Float32bits(lg[0]) ^ 1
		lg[0] = math.Float32frombits(bits)
		tr.rec.logits[j] = merkle.LeafHash(appendF32(nil, lg))
		if err := tr.build(); err != nil {
			t.Fatal(err)
		}
		r.LogitsRoot = tr.logits.Root()
		if err := r.Sign(s.honest.key.Private); err != nil {
			t.Fatal(err)
		}
		return r, tr
	}},
	{"weight changed by one ulp", func(t *testing.T, s *suite) (*receipt.Receipt, *Trace) {
		return s.runWith(t, newFixture(t, ulpModel(s.honest.m), 2))
	}},
	{"different model (F16 for F32)", func(t *testing.T, s *suite) (*receipt.Receipt, *Trace) {
		if s.other == nil {
			t.Skip("no F16 twin")
		}
		return s.runWith(t, s.other)
	}},
	{"skipped layer", func(t *testing.T, s *suite) (*receipt.Receipt, *Trace) {
		return s.runWith(t, newFixture(t, skipLayerModel(s.honest.m), 2))
	}},
	{"truncated output", func(t *testing.T, s *suite) (*receipt.Receipt, *Trace) {
		r := cloneReceipt(s.r)
		r.Output = r.Output[:len(r.Output)-3]
		return recommit(t, s.honest, r, s.honest.id, s.honest)
	}},
	{"forged signature", func(t *testing.T, s *suite) (*receipt.Receipt, *Trace) {
		r := cloneReceipt(s.r)
		r.Signature[10] ^= 0x20
		tr, _ := regenerate(context.Background(), s.honest.e, s.r)
		tr.r = r
		return r, tr
	}},
	{"missing signature", func(t *testing.T, s *suite) (*receipt.Receipt, *Trace) {
		r := cloneReceipt(s.r)
		r.Signature = nil
		tr, _ := regenerate(context.Background(), s.honest.e, s.r)
		tr.r = r
		return r, tr
	}},
	{"changed seed", func(t *testing.T, s *suite) (*receipt.Receipt, *Trace) {
		r := cloneReceipt(s.r)
		r.Sampling.Seed++
		return recommit(t, s.honest, r, s.honest.id, s.honest)
	}},
}

// logitsData recomputes output token j's logit vector (test helper).
func (r *Recorder) logitsData(t *testing.T, f *fixture, rc *receipt.Receipt, j int) []float32 {
	_, logits, err := prefill(context.Background(), f.e, rc, false)
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), logits[len(rc.Prompt)-1+j]...)
}

func runSuite(t *testing.T, s *suite, challenges int) {
	ctx := context.Background()
	lay := NewLayout(s.honest.m.Config, len(s.r.Prompt), len(s.r.Output))
	rows := make([]string, len(forgeries))
	t.Run("forgeries", func(t *testing.T) {
		for i, fg := range forgeries {
			t.Run(fg.name, func(t *testing.T) {
				r, tr := fg.make(t, s)
				t.Parallel()
				err := Replay(ctx, s.honest.e, r, s.honest.id)
				if err == nil {
					t.Fatalf("exact replay accepted the forgery")
				}
				if !strings.HasPrefix(err.Error(), "receipt rejected: ") {
					t.Fatalf("replay failed without naming a mismatch: %v", err)
				}
				t.Logf("replay: %v", err)
				var rates []string
				for _, k := range []int{1, 4, 16} {
					caught := 0
					for seed := uint64(0); seed < uint64(challenges); seed++ {
						var o *Openings
						var err error
						if tr != nil {
							o, err = tr.Open(seed, k)
						}
						if tr == nil || err != nil {
							caught++ // a worker that cannot open is slashed
							continue
						}
						if Check(s.honest.m, s.honest.id, r, seed, k, o) != nil {
							caught++
						}
					}
					rates = append(rates, fmt.Sprintf("%7.1f%%", 100*float64(caught)/float64(challenges)))
					if fg.name == "different model (F16 for F32)" && caught != challenges {
						t.Errorf("a forgery touching every cell escaped %d of %d audits at K=%d", challenges-caught, challenges, k)
					}
				}
				rows[i] = fmt.Sprintf("%-32s %6s %s\n", fg.name, "yes", strings.Join(rates, " "))
			})
		}
	})
	var report strings.Builder
	fmt.Fprintf(&report, "\n%-32s %6s %8s %8s %8s   (%d cells, %d challenges per K)\n", "forgery", "replay", "K=1", "K=4", "K=16", lay.Cells(), challenges)
	for _, r := range rows {
		report.WriteString(r)
	}
	t.Log(report.String())
	if os.Getenv("VERDICT_FORGERY_REPORT") != "" {
		fmt.Print(report.String())
	}
}

func TestForgeriesStories260K(t *testing.T) {
	f := loadFixture(t, "stories260K.gguf", 2)
	params := sampler.Params{Temperature: 0.8, TopK: 0, TopP: 0.95, Seed: 1234}
	r := f.generateReceipt(t, storyPrompt, params, 64)
	if err := Replay(context.Background(), f.e, r, f.id); err != nil {
		t.Fatal(err)
	}
	s := &suite{honest: f, r: r, params: params, steps: 64, prompt: storyPrompt, other: loadFixture(t, "stories260K-F16.gguf", 2)}
	runSuite(t, s, 200)
}

func TestForgeriesSynthetic15M(t *testing.T) {
	if testing.Short() {
		t.Skip("synthetic 15M model: skipped in -short mode")
	}
	dir := sharedModels(t)
	vocab := filepath.Join(dir, "ggml-vocab-llama-spm.gguf")
	tmp := t.TempDir()
	load := func(typ tensor.Type, name string) *fixture {
		path := filepath.Join(tmp, name)
		out, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := synth.Generate("15m", vocab, 1, typ, out); err != nil {
			t.Fatal(err)
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
		m, err := model.Load(path, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return newFixture(t, m, 2)
	}
	f := load(tensor.F32, "s15m.gguf")
	params := sampler.Params{Temperature: 1, Seed: 99}
	prompt := []int{1, 450, 4996, 17354, 1701}
	r := f.generateReceipt(t, prompt, params, 40)
	if err := Replay(context.Background(), f.e, r, f.id); err != nil {
		t.Fatal(err)
	}
	s := &suite{honest: f, r: r, params: params, steps: 40, prompt: prompt, other: load(tensor.F16, "s15m-f16.gguf")}
	runSuite(t, s, 200)
}
