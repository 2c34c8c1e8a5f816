package synth

import (
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"strings"

	"github.com/verdictnet/verdict/internal/gguf"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/tensor"
)

// Preset is a model shape. Vocab is taken from the vocabulary file.
type Preset struct {
	Name       string
	Dim        int
	Hidden     int
	Layers     int
	Heads      int
	KVHeads    int
	ContextLen int
}

// presets are the shapes Generate knows, by name.
var presets = []Preset{
	{Name: "15m", Dim: 288, Hidden: 768, Layers: 6, Heads: 6, KVHeads: 6, ContextLen: 256},
	{Name: "110m", Dim: 768, Hidden: 2048, Layers: 12, Heads: 12, KVHeads: 12, ContextLen: 1024},
	{Name: "tiny", Dim: 64, Hidden: 172, Layers: 2, Heads: 4, KVHeads: 2, ContextLen: 256},
	// tiny256: every matrix a whole number of 256-element super-blocks, so
	// that a K type covers all of them (tests and golden digests).
	{Name: "tiny256", Dim: 256, Hidden: 512, Layers: 2, Heads: 4, KVHeads: 2, ContextLen: 256},
}

// Presets returns the names of the known presets.
func Presets() []string {
	names := make([]string, len(presets))
	for i, p := range presets {
		names[i] = p.Name
	}
	return names
}

// LookupPreset returns the named preset.
func LookupPreset(name string) (Preset, error) {
	for _, p := range presets {
		if p.Name == name {
			return p, nil
		}
	}
	return Preset{}, fmt.Errorf("unknown preset %q (known: %s)", name, strings.Join(Presets(), ", "))
}

// fileType is general.file_type (llama.cpp's llama_ftype) for a weight type.
func fileType(t tensor.Type) (uint32, error) {
	switch t {
	case tensor.F32:
		return 0, nil
	case tensor.F16:
		return 1, nil
	case tensor.Q4_0:
		return 2, nil
	case tensor.Q4_1:
		return 3, nil
	case tensor.Q8_0:
		return 7, nil
	case tensor.Q5_0:
		return 8, nil
	case tensor.Q5_1:
		return 9, nil
	case tensor.Q4_K:
		return 14, nil // MOSTLY_Q4_K_S: every matrix Q4_K
	case tensor.Q5_K:
		return 16, nil // MOSTLY_Q5_K_S
	case tensor.Q6_K:
		return 18, nil
	case tensor.BF16:
		return 32, nil
	}
	return 0, fmt.Errorf("unsupported weight type %s", t)
}

// StorageType returns the type a matrix with rows of cols elements is
// stored as when typ is asked for: typ when cols is a whole number of its
// blocks; otherwise llama.cpp's fallback (Q4_K to Q5_0, Q5_K to Q5_1, Q6_K
// to Q8_0, as llama_tensor_get_type does) when that fits, and F32 else.
func StorageType(typ tensor.Type, cols int) tensor.Type {
	if cols%typ.BlockSize() == 0 {
		return typ
	}
	fb := map[tensor.Type]tensor.Type{tensor.Q4_K: tensor.Q5_0, tensor.Q5_K: tensor.Q5_1, tensor.Q6_K: tensor.Q8_0}[typ]
	if fb != 0 && cols%fb.BlockSize() == 0 {
		return fb
	}
	return tensor.F32
}

// Generate writes a llama GGUF with random weights in the shape of the
// named preset to w. The vocabulary, and every tokenizer.* metadata key, is
// copied from the GGUF at vocabPath. Matrices are stored as typ (norms stay
// F32; a matrix whose rows are not a whole number of typ's blocks is stored
// as StorageType says, as llama.cpp's quantizer does). The classifier is tied to the
// token embedding, as in llama2.c's stories models.
func Generate(preset, vocabPath string, seed uint64, typ tensor.Type, w io.Writer) error {
	p, err := LookupPreset(preset)
	if err != nil {
		return err
	}
	ft, err := fileType(typ)
	if err != nil {
		return err
	}
	vf, err := gguf.Open(vocabPath)
	if err != nil {
		return err
	}
	defer vf.Close()
	vocab, err := model.VocabFromGGUF(vf)
	if err != nil {
		return fmt.Errorf("%s: %w", vocabPath, err)
	}
	var tok []gguf.KV
	for _, kv := range vf.KV {
		if strings.HasPrefix(kv.Key, "tokenizer.") {
			tok = append(tok, kv)
		}
	}
	return writeModel(p, ft, tok, len(vocab.Tokens), seed, typ, w)
}

// writeModel writes a model of preset p whose vocabulary of n tokens is
// described by the tokenizer.* metadata tok.
func writeModel(p Preset, ft uint32, tok []gguf.KV, n int, seed uint64, typ tensor.Type, w io.Writer) error {
	preset := p.Name
	cfg := model.Config{
		Arch: "llama", Dim: p.Dim, Hidden: p.Hidden, Layers: p.Layers, Heads: p.Heads, KVHeads: p.KVHeads,
		Vocab: n, ContextLen: p.ContextLen, RopeTheta: model.DefaultRopeTheta, NormEps: model.DefaultNormEps,
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("preset %s: %w", preset, err)
	}
	kvs := []gguf.KV{
		{Key: "general.architecture", Value: gguf.String("llama")},
		{Key: "general.name", Value: gguf.String("verdict-synth-" + p.Name)},
		{Key: "general.file_type", Value: gguf.Uint32(ft)},
		{Key: "general.quantization_version", Value: gguf.Uint32(2)},
		{Key: "verdict.synth.preset", Value: gguf.String(p.Name)},
		{Key: "verdict.synth.seed", Value: gguf.Uint64(seed)},
		{Key: "llama.vocab_size", Value: gguf.Uint32(uint32(n))},
		{Key: "llama.context_length", Value: gguf.Uint32(uint32(cfg.ContextLen))},
		{Key: "llama.embedding_length", Value: gguf.Uint32(uint32(cfg.Dim))},
		{Key: "llama.block_count", Value: gguf.Uint32(uint32(cfg.Layers))},
		{Key: "llama.feed_forward_length", Value: gguf.Uint32(uint32(cfg.Hidden))},
		{Key: "llama.rope.dimension_count", Value: gguf.Uint32(uint32(cfg.HeadDim()))},
		{Key: "llama.rope.freq_base", Value: gguf.Float32(cfg.RopeTheta)},
		{Key: "llama.attention.head_count", Value: gguf.Uint32(uint32(cfg.Heads))},
		{Key: "llama.attention.head_count_kv", Value: gguf.Uint32(uint32(cfg.KVHeads))},
		{Key: "llama.attention.layer_norm_rms_epsilon", Value: gguf.Float32(cfg.NormEps)},
	}
	kvs = append(kvs, tok...)
	var ts []gguf.TensorData
	matrix := func(name string, cols, rows int) {
		t := StorageType(typ, cols)
		ts = append(ts, gguf.TensorData{Name: name, Type: t, Dims: []int{cols, rows}, Source: randomSource(seed, name, t, cols, rows)})
	}
	norm := func(name string) {
		ts = append(ts, gguf.TensorData{Name: name, Type: tensor.F32, Dims: []int{cfg.Dim}, Source: onesSource(cfg.Dim)})
	}
	matrix("token_embd.weight", cfg.Dim, n)
	for i := 0; i < cfg.Layers; i++ {
		b := fmt.Sprintf("blk.%d.", i)
		norm(b + "attn_norm.weight")
		matrix(b+"attn_q.weight", cfg.Dim, cfg.Dim)
		matrix(b+"attn_k.weight", cfg.Dim, cfg.KVDim())
		matrix(b+"attn_v.weight", cfg.Dim, cfg.KVDim())
		matrix(b+"attn_output.weight", cfg.Dim, cfg.Dim)
		norm(b + "ffn_norm.weight")
		matrix(b+"ffn_gate.weight", cfg.Dim, cfg.Hidden)
		matrix(b+"ffn_down.weight", cfg.Hidden, cfg.Dim)
		matrix(b+"ffn_up.weight", cfg.Dim, cfg.Hidden)
	}
	norm("output_norm.weight")
	return gguf.Write(w, kvs, ts)
}

// splitmix64 is the finaliser of Steele, Lea and Flood's SplitMix64.
func splitmix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

const golden = 0x9e3779b97f4a7c15

// Uniform returns element i of the random stream of tensor name under
// seed: a float32 uniform on [-1, 1) with 24 random bits, a pure function of
// (seed, name, i).
func Uniform(seed uint64, name string, i uint64) float32 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return uniform(splitmix64(seed^h.Sum64()), i)
}

func uniform(stream, i uint64) float32 {
	z := splitmix64(stream + golden*(i+1))
	return float32(int32(z>>40)-1<<23) / (1 << 23)
}

// randomSource streams a rows x cols matrix of uniform(-a, a) values with
// a = 1/sqrt(cols), encoded as t.
func randomSource(seed uint64, name string, t tensor.Type, cols, rows int) func(io.Writer) error {
	return func(w io.Writer) error {
		h := fnv.New64a()
		h.Write([]byte(name))
		stream := splitmix64(seed ^ h.Sum64())
		a := float32(1 / math.Sqrt(float64(cols)))
		row := make([]float32, cols)
		var buf []byte
		for r := 0; r < rows; r++ {
			base := uint64(r) * uint64(cols)
			for c := range row {
				row[c] = uniform(stream, base+uint64(c)) * a
			}
			var err error
			if buf, err = AppendRow(buf[:0], t, row); err != nil {
				return err
			}
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
		return nil
	}
}

func onesSource(n int) func(io.Writer) error {
	return func(w io.Writer) error {
		row := make([]float32, n)
		for i := range row {
			row[i] = 1
		}
		buf, _ := AppendRow(nil, tensor.F32, row)
		_, err := w.Write(buf)
		return err
	}
}
