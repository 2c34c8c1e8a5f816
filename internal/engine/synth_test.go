package engine_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/gguf"
	"github.com/verdictnet/verdict/internal/kernels"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/sampler"
	"github.com/verdictnet/verdict/internal/synth"
	"github.com/verdictnet/verdict/internal/tensor"
	"github.com/verdictnet/verdict/internal/testutil"
)

// Synthetic models in the benchmark shapes widen the golden digests to
// realistic dimensions (dim 288, 32000-token vocabulary) and to the weight
// types the shared files lack (BF16, Q4_0 with every matrix quantised).
func init() {
	digestCases = append(digestCases,
		digestCase{"synth-15m-f32", "synth:15m:f32", "", "Once upon a time", 6, sampler.Params{}, true},
		digestCase{"synth-15m-q8_0", "synth:15m:q8_0", "", "Hello world", 6, sampler.Params{Temperature: 0.8, Seed: 9}, true},
		digestCase{"synth-tiny-bf16", "synth:tiny:bf16", "", "The little dog", 16, sampler.Params{}, false},
		digestCase{"synth-tiny-q4_0", "synth:tiny:q4_0", "", "The little dog", 16, sampler.Params{Temperature: 1, TopP: 0.95, Seed: 5}, false},
		// One small model of each new architecture feature, in several
		// weight types (see synth's tiny-* presets).
		digestCase{"synth-tiny-llama3-f32", "synth:tiny-llama3:f32", "", "Once upon a time", 24, sampler.Params{}, false},
		digestCase{"synth-tiny-llama3-q4_0", "synth:tiny-llama3:q4_0", "", "The little dog", 24, sampler.Params{Temperature: 0.8, Seed: 11}, false},
		digestCase{"synth-tiny-qwen2-f16", "synth:tiny-qwen2:f16", "", "Once upon a time", 24, sampler.Params{}, false},
		digestCase{"synth-tiny-qwen2-q8_0", "synth:tiny-qwen2:q8_0", "", "Hello world", 24, sampler.Params{Temperature: 1, TopK: 40, Seed: 2}, false},
		digestCase{"synth-tiny-qwen3-f32", "synth:tiny-qwen3:f32", "", "Once upon a time", 24, sampler.Params{}, false},
		digestCase{"synth-tiny-qwen3-bf16", "synth:tiny-qwen3:bf16", "", "The little dog", 24, sampler.Params{Temperature: 1, TopP: 0.9, Seed: 4}, false},
		digestCase{"synth-tiny-qwen3-q8_0", "synth:tiny-qwen3:q8_0", "", "Hello world", 24, sampler.Params{}, false},
		// The types added with Q4_K: every matrix K-quantised (tiny256), a
		// K type beside its llama.cpp fallback (15m: ffn_down Q4_K, the
		// 288-column matrices Q5_0), and the 32-element types.
		digestCase{"synth-tiny256-q4_k", "synth:tiny256:q4_k", "", "The little dog", 12, sampler.Params{}, false},
		digestCase{"synth-tiny256-q5_k", "synth:tiny256:q5_k", "", "Once upon a time", 12, sampler.Params{Temperature: 0.8, Seed: 11}, false},
		digestCase{"synth-tiny256-q6_k", "synth:tiny256:q6_k", "", "Hello world", 12, sampler.Params{}, false},
		digestCase{"synth-15m-q4_k", "synth:15m:q4_k", "", "Hello world", 6, sampler.Params{}, true},
		digestCase{"synth-tiny-q4_1", "synth:tiny:q4_1", "", "The little dog", 16, sampler.Params{}, false},
		digestCase{"synth-tiny-q5_1", "synth:tiny:q5_1", "", "Once upon a time", 16, sampler.Params{Temperature: 1, TopK: 40, Seed: 8}, false},
		// llama.cpp's _K_M mixes on a qwen3 (Q4_K/Q5_K, Q6_K, and on the
		// 64-wide tiny-qwen3 the Q5_0/Q5_1/Q8_0 fallbacks).
		// (big: the scalar K kernels over a 32000-row Q6_K classifier
		// are slow under qemu.)
		digestCase{"synth-tiny256-qwen3-q4_k_m", "synth:tiny256-qwen3:q4_k_m", "", "Once upon a time", 8, sampler.Params{}, true},
		digestCase{"synth-tiny256-qwen3-q5_k_m", "synth:tiny256-qwen3:q5_k_m", "", "The little dog", 8, sampler.Params{Temperature: 0.7, Seed: 6}, true},
		digestCase{"synth-tiny-qwen3-q4_k_m", "synth:tiny-qwen3:q4_k_m", "", "Hello world", 20, sampler.Params{}, false},
		digestCase{"synth-tiny-qwen2-q5_k_m", "synth:tiny-qwen2:q5_k_m", "", "Hello world", 20, sampler.Params{}, false},
		// Every type in one model, matrices of different formats sharing an
		// input (see mixTypes).
		digestCase{"synth-tiny256-mix", "synth:tiny256:mix", "", "Lily and Tom went to the park", 12, sampler.Params{}, false},
	)
}

// mixTypes is the storage of each matrix of a "mix" model: the matrices
// that read the same input mix the two activation quantisations (Q8 for
// the 32-element blocks, Q8K for the K types), as a Q4_K_M file does with
// Q4_K and Q6_K (and more).
var mixTypes = map[string]tensor.Type{
	"token_embd": tensor.Q6_K, "attn_q": tensor.Q4_K, "attn_k": tensor.Q8_0, "attn_v": tensor.Q6_K,
	"attn_output": tensor.Q5_1, "ffn_gate": tensor.Q5_0, "ffn_up": tensor.Q5_K, "ffn_down": tensor.Q4_1,
}

// writeMix writes the F32 synthetic model of the preset with its matrices
// re-encoded as mixTypes says (layer 1 swaps Q4_K and Q6_K).
func writeMix(preset, vocab string, w io.Writer) error {
	var buf bytes.Buffer
	if err := synth.Generate(preset, vocab, 1, tensor.F32, &buf); err != nil {
		return err
	}
	gf, err := gguf.Parse(buf.Bytes())
	if err != nil {
		return err
	}
	var ts []gguf.TensorData
	for _, ti := range gf.Tensors {
		tt, err := gf.Tensor(ti.Name)
		if err != nil {
			return err
		}
		td := gguf.TensorData{Name: tt.Name, Type: tt.Type, Dims: tt.Dims, Data: tt.Data}
		parts := strings.Split(strings.TrimSuffix(tt.Name, ".weight"), ".")
		if typ, ok := mixTypes[parts[len(parts)-1]]; ok {
			if len(parts) == 3 && parts[1] == "1" && typ.SuperBlock() {
				typ = map[tensor.Type]tensor.Type{tensor.Q4_K: tensor.Q6_K, tensor.Q6_K: tensor.Q4_K, tensor.Q5_K: tensor.Q5_K}[typ]
			}
			x := kernels.F32Row(tt.Data)
			var data []byte
			for r := 0; r < tt.Rows(); r++ {
				if data, err = synth.AppendRow(data, typ, x[r*tt.Cols():(r+1)*tt.Cols()]); err != nil {
					return err
				}
			}
			td.Type, td.Data = typ, data
		}
		ts = append(ts, td)
	}
	return gguf.Write(w, gf.KV, ts)
}

// scalarBig names the digest cases that run in fewer thread/prefill
// configurations where the scalar kernels run (arm64 under qemu, purego):
// the K types cost about a second per configuration there; on amd64 the
// fast paths run them in every configuration.
var scalarBig = map[string]bool{
	"synth-tiny256-q4_k": true, "synth-tiny256-q5_k": true, "synth-tiny256-q6_k": true, "synth-tiny256-mix": true,
	"synth-15m-q4_k": true,
}

var (
	synthMu    sync.Mutex
	synthDir   string
	synthFiles = map[string]string{}
)

// synthModel writes (once per test binary) the synthetic model named
// "synth:PRESET:TYPE" and returns its path.
func synthModel(tb testing.TB, name string) string {
	tb.Helper()
	synthMu.Lock()
	defer synthMu.Unlock()
	if p, ok := synthFiles[name]; ok {
		return p
	}
	parts := strings.Split(name, ":")
	if len(parts) != 3 || !slices.Contains(synth.Types(), parts[2]) && parts[2] != "mix" {
		tb.Fatalf("bad synthetic model name %q", name)
	}
	vocab := testutil.Shared(tb, "models/ggml-vocab-llama-spm.gguf")
	if synthDir == "" {
		d, err := os.MkdirTemp("", "verdict-engine-test-")
		if err != nil {
			tb.Fatal(err)
		}
		synthDir = d
	}
	p := filepath.Join(synthDir, strings.ReplaceAll(name, ":", "-")+".gguf")
	f, err := os.Create(p)
	if err != nil {
		tb.Fatal(err)
	}
	if parts[2] == "mix" {
		err = writeMix(parts[1], vocab, f)
	} else {
		err = synth.Write(f, synth.Options{Preset: parts[1], Vocab: vocab, Seed: 1, Type: parts[2]})
	}
	if err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	synthFiles[name] = p
	return p
}

func TestMain(m *testing.M) {
	code := m.Run()
	if synthDir != "" {
		os.RemoveAll(synthDir)
	}
	os.Exit(code)
}

// FuzzBadBlocks corrupts the weight bytes of a synthetic tiny256 model in
// each K type (NaN and infinite f16 scales, any quanta): loading and a
// forward pass either fail with an error or give logits, never a panic
// (NaN or infinite scales propagate by IEEE arithmetic, docs/determinism.md
// section 3).
func FuzzBadBlocks(f *testing.F) {
	f.Add(uint8(0), uint32(0), []byte{0x00, 0x7e}) // a NaN scale at the start of the data
	f.Add(uint8(1), uint32(1<<20), []byte{0x00, 0x7c, 0x00, 0xfc})
	f.Add(uint8(2), uint32(12345), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add(uint8(0), uint32(4<<20), []byte{})
	names := []string{"synth:tiny256:q4_k", "synth:tiny256:q5_k", "synth:tiny256:q6_k"}
	f.Fuzz(func(t *testing.T, which uint8, off uint32, patch []byte) {
		data, err := os.ReadFile(synthModel(t, names[int(which)%len(names)]))
		if err != nil {
			t.Fatal(err)
		}
		gf, err := gguf.Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		start := int(gf.DataOffset)
		at := start + int(off)%(len(data)-start)
		copy(data[at:], patch)
		gf, err = gguf.Parse(data)
		if err != nil {
			return
		}
		m, err := model.FromGGUF(gf, true)
		if err != nil {
			return
		}
		e, err := engine.New(m, engine.Options{Threads: 2})
		if err != nil {
			return
		}
		defer e.Close()
		seq, err := e.NewSequence(4)
		if err != nil {
			t.Fatal(err)
		}
		it := &engine.Item{Seq: seq, Tokens: []int{1, 450, 2217}, Logits: engine.LogitsAll}
		if err := e.Forward(it); err != nil {
			t.Fatal(err)
		}
		if len(it.Out) != 3 {
			t.Fatalf("%d logit vectors", len(it.Out))
		}
	})
}

// TestMixModel: the mix model holds the types mixTypes says, so that its
// digest covers them.
func TestMixModel(t *testing.T) {
	l := load(t, "synth:tiny256:mix", "")
	m := l.m
	for _, c := range []struct {
		t    *tensor.Tensor
		want tensor.Type
	}{
		{m.TokenEmbd, tensor.Q6_K}, {m.Layers[0].Wq, tensor.Q4_K}, {m.Layers[1].Wq, tensor.Q6_K}, {m.Layers[0].Wk, tensor.Q8_0},
		{m.Layers[0].Wv, tensor.Q6_K}, {m.Layers[1].Wv, tensor.Q4_K}, {m.Layers[0].Wo, tensor.Q5_1}, {m.Layers[0].FFNGate, tensor.Q5_0},
		{m.Layers[0].FFNUp, tensor.Q5_K}, {m.Layers[0].FFNDown, tensor.Q4_1},
	} {
		if c.t.Type != c.want {
			t.Errorf("%s is %s, want %s", c.t.Name, c.t.Type, c.want)
		}
	}
}
