package model_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/gguf"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/synth"
	"github.com/verdictnet/verdict/internal/tensor"
)

// synthBytes writes a small synthetic model of the named preset (built-in
// vocabulary) and returns the file's bytes.
func synthBytes(tb testing.TB, preset string, typ ...string) []byte {
	if len(typ) == 0 {
		typ = []string{"f32"}
	}
	tb.Helper()
	var buf bytes.Buffer
	if err := synth.Write(&buf, synth.Options{Preset: preset, Seed: 1, Type: typ[0]}); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// edited rewrites a GGUF with kv and tensor edits and returns the path.
func edited(t *testing.T, data []byte, kv func([]gguf.KV) []gguf.KV, ts func([]gguf.TensorData) []gguf.TensorData) string {
	t.Helper()
	f, err := gguf.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := gguf.Rewrite(&buf, f, kv, ts); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func set(key string, v gguf.Value) func([]gguf.KV) []gguf.KV {
	return func(kvs []gguf.KV) []gguf.KV {
		for i := range kvs {
			if kvs[i].Key == key {
				kvs[i].Value = v
				return kvs
			}
		}
		return append(kvs, gguf.KV{Key: key, Value: v})
	}
}

func drop(name string) func([]gguf.TensorData) []gguf.TensorData {
	return func(ts []gguf.TensorData) []gguf.TensorData {
		var out []gguf.TensorData
		for _, t := range ts {
			if t.Name != name {
				out = append(out, t)
			}
		}
		return out
	}
}

func add(name string, typ tensor.Type, dims ...int) func([]gguf.TensorData) []gguf.TensorData {
	return func(ts []gguf.TensorData) []gguf.TensorData {
		n := 1
		for _, d := range dims {
			n *= d
		}
		data := make([]byte, n*4)
		if typ == tensor.F16 {
			data = data[:n*2]
		}
		return append(ts, gguf.TensorData{Name: name, Type: typ, Dims: dims, Data: data})
	}
}

// setF32 sets the i-th value of F32 tensor name to x.
func setF32(name string, i int, x float32) func([]gguf.TensorData) []gguf.TensorData {
	return func(ts []gguf.TensorData) []gguf.TensorData {
		for j := range ts {
			if ts[j].Name == name {
				d := slices.Clone(ts[j].Data)
				binary.LittleEndian.PutUint32(d[4*i:], math.Float32bits(x))
				ts[j].Data = d
			}
		}
		return ts
	}
}

func retype(name string, typ tensor.Type) func([]gguf.TensorData) []gguf.TensorData {
	return func(ts []gguf.TensorData) []gguf.TensorData {
		for i := range ts {
			if ts[i].Name == name {
				ts[i].Type, ts[i].Data = typ, ts[i].Data[:len(ts[i].Data)/2]
			}
		}
		return ts
	}
}

// TestLoadArchitectures loads a small model of each new architecture and
// checks every configuration field the loader derives from its keys and
// tensors.
func TestLoadArchitectures(t *testing.T) {
	for _, tc := range []struct {
		preset string
		want   model.Config
		rope   model.RopeType
		tied   bool
	}{
		{"tiny-llama3", model.Config{Arch: "llama", Dim: 64, Hidden: 172, Layers: 2, Heads: 4, KVHeads: 2, ContextLen: 512, RopeTheta: 5e5, NormEps: 1e-5, FreqFactors: true}, model.RopeNorm, false},
		{"tiny-qwen2", model.Config{Arch: "qwen2", Dim: 64, Hidden: 172, Layers: 2, Heads: 4, KVHeads: 2, ContextLen: 512, RopeTheta: 1e6, NormEps: 1e-6, QKVBias: true}, model.RopeNeox, true},
		{"tiny-qwen3", model.Config{Arch: "qwen3", Dim: 64, Hidden: 160, Layers: 3, Heads: 4, KVHeads: 2, ContextLen: 512, RopeTheta: 1e6, NormEps: 1e-6, HeadSize: 32, QKNorm: true}, model.RopeNeox, true},
	} {
		p := edited(t, synthBytes(t, tc.preset), nil, nil)
		m, err := model.Load(p, "")
		if err != nil {
			t.Fatal(err)
		}
		want := tc.want
		want.Vocab = m.Config.Vocab
		if m.Config != want || m.Config.Rope() != tc.rope || (m.Output == m.TokenEmbd) != tc.tied {
			t.Errorf("%s: config %+v (rope %s, tied %v), want %+v (rope %s, tied %v)", tc.preset, m.Config, m.Config.Rope(), m.Output == m.TokenEmbd, want, tc.rope, tc.tied)
		}
		m.Close()
	}
}

// TestLoadArchitectureErrors: every malformed file of a new architecture
// is refused with one line naming what is wrong.
func TestLoadArchitectureErrors(t *testing.T) {
	qwen2, qwen3, llama3 := synthBytes(t, "tiny-qwen2"), synthBytes(t, "tiny-qwen3"), synthBytes(t, "tiny-llama3")
	tests := []struct {
		name string
		path string
		want string
	}{
		{"unknown architecture", edited(t, qwen3, set("general.architecture", gguf.String("phi3")), nil), `architecture "phi3" is not supported (only llama, qwen2, qwen3)`},
		{"qwen2 without a bias", edited(t, qwen2, nil, drop("blk.1.attn_k.bias")), "missing tensor blk.1.attn_k.bias"},
		{"qwen2 bias not F32", edited(t, qwen2, nil, retype("blk.0.attn_q.bias", tensor.F16)), "tensor blk.0.attn_q.bias is F16; norms must be F32"},
		{"qwen2 bias shape", edited(t, qwen2, nil, func(ts []gguf.TensorData) []gguf.TensorData {
			return add("blk.0.attn_v.bias", tensor.F32, 16)(drop("blk.0.attn_v.bias")(ts))
		}), "tensor blk.0.attn_v.bias has shape [16], the configuration needs [32]"},
		{"qwen2 with q/k norms", edited(t, qwen2, nil, add("blk.0.attn_q_norm.weight", tensor.F32, 16)), "unexpected tensor blk.0.attn_q_norm.weight (a qwen2 model has no Q/K norms)"},
		{"qwen2 with frequency factors", edited(t, qwen2, nil, add("rope_freqs.weight", tensor.F32, 8)), "unexpected tensor rope_freqs.weight (a qwen2 model has no RoPE frequency factors)"},
		{"qwen3 without a norm", edited(t, qwen3, nil, drop("blk.2.attn_k_norm.weight")), "missing tensor blk.2.attn_k_norm.weight"},
		{"qwen3 with biases", edited(t, qwen3, nil, add("blk.0.attn_q.bias", tensor.F32, 128)), "unexpected tensor blk.0.attn_q.bias (a qwen3 model has no Q/K/V biases)"},
		{"qwen3 head size lie", edited(t, qwen3, func(kvs []gguf.KV) []gguf.KV {
			return set("qwen3.attention.value_length", gguf.Uint32(16))(set("qwen3.attention.key_length", gguf.Uint32(16))(kvs))
		}, nil), "qwen3.rope.dimension_count 32 differs from the head size 16; partial RoPE is not supported"},
		{"qwen3 head size and rope agree on a lie", edited(t, qwen3, func(kvs []gguf.KV) []gguf.KV {
			return set("qwen3.rope.dimension_count", gguf.Uint32(16))(set("qwen3.attention.value_length", gguf.Uint32(16))(set("qwen3.attention.key_length", gguf.Uint32(16))(kvs)))
		}, nil), "tensor blk.0.attn_q.weight has shape [64 128], the configuration needs [64 64]"},
		{"qwen3 value size", edited(t, qwen3, set("qwen3.attention.value_length", gguf.Uint32(64)), nil), "key_length 32 differs from value_length 64"},
		{"qwen3 odd head size", edited(t, qwen3, func(kvs []gguf.KV) []gguf.KV {
			return set("qwen3.attention.value_length", gguf.Uint32(33))(set("qwen3.attention.key_length", gguf.Uint32(33))(kvs))
		}, nil), "head size must be even"},
		{"kv heads not a divisor", edited(t, qwen3, set("qwen3.attention.head_count_kv", gguf.Uint32(3)), nil), "4 heads and 3 key/value heads do not fit"},
		{"yarn", edited(t, qwen2, set("qwen2.rope.scaling.type", gguf.String("yarn")), nil), `RoPE scaling "yarn" (qwen2.rope.scaling.type) is not supported`},
		{"linear scaling factor", edited(t, llama3, set("llama.rope.scaling.factor", gguf.Float32(8)), nil), "llama.rope.scaling.factor = 8"},
		{"yarn attention factor", edited(t, qwen3, set("qwen3.rope.scaling.attn_factor", gguf.Float32(1.2)), nil), "qwen3.rope.scaling.attn_factor = 1.2"},
		{"experts", edited(t, qwen3, set("qwen3.expert_count", gguf.Uint32(8)), nil), "mixture of experts (qwen3.expert_count = 8)"},
		{"llama3 factors shape", edited(t, llama3, nil, func(ts []gguf.TensorData) []gguf.TensorData {
			return add("rope_freqs.weight", tensor.F32, 16)(drop("rope_freqs.weight")(ts))
		}), "tensor rope_freqs.weight has shape [16], the configuration needs [8]"},
		{"llama3 zero factors", edited(t, llama3, nil, func(ts []gguf.TensorData) []gguf.TensorData {
			return add("rope_freqs.weight", tensor.F32, 8)(drop("rope_freqs.weight")(ts))
		}), "rope_freqs.weight: factor 0 of pair 0"},
		{"llama3 factor below 1", edited(t, llama3, nil, setF32("rope_freqs.weight", 3, 0.5)), "rope_freqs.weight: factor 0.5 of pair 3; RoPE frequency factors must be finite and at least 1"},
		{"missing output norm", edited(t, qwen3, nil, drop("output_norm.weight")), "missing tensor output_norm.weight"},
		{"string head count", edited(t, qwen3, set("qwen3.attention.head_count", gguf.String("4")), nil), "qwen3.attention.head_count has type string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := model.Load(tc.path, "")
			if err == nil {
				m.Close()
				t.Fatalf("loaded; want an error mentioning %q", tc.want)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") || !strings.HasPrefix(msg, tc.path+": ") {
				t.Errorf("error %q, want one line starting with the path and mentioning %q", msg, tc.want)
			}
		})
	}
}

// FuzzLoadArchitectures feeds mutations of small qwen2, qwen3 and llama3
// files through the loader: it must refuse cleanly (one line, no panic) or
// give a model whose every tensor is consistent.
func FuzzLoadArchitectures(f *testing.F) {
	for _, p := range []string{"tiny-qwen2", "tiny-qwen3", "tiny-llama3"} {
		f.Add(synthBytes(f, p, "q4_0"))
	}
	// Small seeds the fuzzer mutates quickly: the hyper-parameter keys of
	// a qwen3 and one tensor of each new kind, no vocabulary.
	var small bytes.Buffer
	err := gguf.Write(&small, []gguf.KV{
		{Key: "general.architecture", Value: gguf.String("qwen3")},
		{Key: "qwen3.embedding_length", Value: gguf.Uint32(8)},
		{Key: "qwen3.feed_forward_length", Value: gguf.Uint32(8)},
		{Key: "qwen3.block_count", Value: gguf.Uint32(1)},
		{Key: "qwen3.attention.head_count", Value: gguf.Uint32(2)},
		{Key: "qwen3.attention.head_count_kv", Value: gguf.Uint32(1)},
		{Key: "qwen3.attention.key_length", Value: gguf.Uint32(8)},
		{Key: "qwen3.context_length", Value: gguf.Uint32(16)},
	}, []gguf.TensorData{
		{Name: "blk.0.attn_q_norm.weight", Type: tensor.F32, Dims: []int{8}, Data: make([]byte, 32)},
		{Name: "rope_freqs.weight", Type: tensor.F32, Dims: []int{4}, Data: make([]byte, 16)},
		{Name: "blk.0.attn_q.bias", Type: tensor.F32, Dims: []int{16}, Data: make([]byte, 64)},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(small.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		gf, err := gguf.Parse(data)
		if err != nil {
			return
		}
		m, err := model.FromGGUF(gf, true)
		if err == nil {
			err = m.Check()
		}
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error %q", err)
			}
			return
		}
		for _, e := range m.Entries() {
			if err := e.Tensor.Check(); err != nil || !e.Tensor.ShapeIs(e.Dims...) {
				t.Fatalf("checked model has a bad tensor %s: %v", e.Name, err)
			}
		}
	})
}
