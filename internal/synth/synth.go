package synth

import (
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"runtime"
	"strings"

	"github.com/verdictnet/verdict/internal/detmath"
	"github.com/verdictnet/verdict/internal/gguf"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/tensor"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

// Preset is a model shape. Vocab is taken from the vocabulary file unless
// the preset fixes it.
type Preset struct {
	Name       string
	Arch       string // general.architecture; "" is "llama"
	Dim        int
	Hidden     int
	Layers     int
	Heads      int
	KVHeads    int
	HeadDim    int // {arch}.attention.key_length; 0 is Dim/Heads
	Vocab      int // 0: the vocabulary file's size; larger: padded as llama.cpp's converter pads
	ContextLen int
	RopeTheta  float32 // 0: model.DefaultRopeTheta
	NormEps    float32 // 0: model.DefaultNormEps
	QKVBias    bool    // qwen2
	QKNorm     bool    // qwen3
	Separate   bool    // an output.weight of its own (else tied to the embedding)
	Llama3Rope *Llama3Rope
	// OutputGain is the value of every output_norm weight (0: 1). A large
	// gain spreads the logits, so that the random model is confident.
	OutputGain float32
	// Real says the preset has a real model's shape (the table);
	// small presets are for tests.
	Real bool
}

// Llama3Rope is the "llama3" RoPE scaling of Llama 3.1/3.2
// (rope_scaling in the Hugging Face config), which llama.cpp's converter
// turns into the tensor rope_freqs.weight.
type Llama3Rope struct {
	Factor, LowFreqFactor, HighFreqFactor float64
	OriginalContext                       int
}

// gain of the output norm of the presets in real shapes: the logits of a
// random model then have a standard deviation of about 11, which makes the
// top token's probability exceed 0.3 at most positions even over 150k
// tokens.
const confidentGain = 20

// presets are the shapes Generate knows, by name.
var presets = []Preset{
	{Name: "15m", Dim: 288, Hidden: 768, Layers: 6, Heads: 6, KVHeads: 6, ContextLen: 256},
	{Name: "110m", Dim: 768, Hidden: 2048, Layers: 12, Heads: 12, KVHeads: 12, ContextLen: 1024},
	{Name: "tiny", Dim: 64, Hidden: 172, Layers: 2, Heads: 4, KVHeads: 2, ContextLen: 256},
	// tiny256: every matrix a whole number of 256-element super-blocks, so
	// that a K type covers all of them (tests and golden digests).
	{Name: "tiny256", Dim: 256, Hidden: 512, Layers: 2, Heads: 4, KVHeads: 2, ContextLen: 256},

	// The shapes of real open models (docs: the table).
	{Name: "smollm2-135m", Arch: model.ArchLlama, Dim: 576, Hidden: 1536, Layers: 30, Heads: 9, KVHeads: 3, HeadDim: 64, Vocab: 49152,
		ContextLen: 8192, RopeTheta: 1e5, OutputGain: confidentGain, Real: true},
	{Name: "qwen2.5-0.5b", Arch: model.ArchQwen2, Dim: 896, Hidden: 4864, Layers: 24, Heads: 14, KVHeads: 2, HeadDim: 64, Vocab: 151936,
		ContextLen: 32768, RopeTheta: 1e6, NormEps: 1e-6, QKVBias: true, OutputGain: confidentGain, Real: true},
	{Name: "qwen3-0.6b", Arch: model.ArchQwen3, Dim: 1024, Hidden: 3072, Layers: 28, Heads: 16, KVHeads: 8, HeadDim: 128, Vocab: 151936,
		ContextLen: 40960, RopeTheta: 1e6, NormEps: 1e-6, QKNorm: true, OutputGain: confidentGain, Real: true},
	{Name: "llama3.2-1b", Arch: model.ArchLlama, Dim: 2048, Hidden: 8192, Layers: 16, Heads: 32, KVHeads: 8, HeadDim: 64, Vocab: 128256,
		ContextLen: 131072, RopeTheta: 5e5, Llama3Rope: &Llama3Rope{32, 1, 4, 8192}, OutputGain: confidentGain, Real: true},
	{Name: "qwen3-8b", Arch: model.ArchQwen3, Dim: 4096, Hidden: 12288, Layers: 36, Heads: 32, KVHeads: 8, HeadDim: 128, Vocab: 151936,
		ContextLen: 40960, RopeTheta: 1e6, NormEps: 1e-6, QKNorm: true, Separate: true, OutputGain: confidentGain, Real: true},
	{Name: "llama3.1-8b", Arch: model.ArchLlama, Dim: 4096, Hidden: 14336, Layers: 32, Heads: 32, KVHeads: 8, HeadDim: 128, Vocab: 128256,
		ContextLen: 131072, RopeTheta: 5e5, Llama3Rope: &Llama3Rope{8, 1, 4, 8192}, Separate: true, OutputGain: confidentGain, Real: true},
	{Name: "mistral-7b", Arch: model.ArchLlama, Dim: 4096, Hidden: 14336, Layers: 32, Heads: 32, KVHeads: 8, HeadDim: 128, Vocab: 32768,
		ContextLen: 32768, RopeTheta: 1e6, Separate: true, OutputGain: confidentGain, Real: true},

	// Small models of each architecture for tests: every feature of the
	// real shapes (NEOX RoPE, biases, Q/K norms, a head size that is not
	// dim/heads, frequency factors with all three llama3 cases, a separate
	// output) at a size CI runs in milliseconds.
	{Name: "tiny-llama3", Arch: model.ArchLlama, Dim: 64, Hidden: 172, Layers: 2, Heads: 4, KVHeads: 2, ContextLen: 512,
		RopeTheta: 5e5, Llama3Rope: &Llama3Rope{8, 1, 4, 8192}, Separate: true, OutputGain: confidentGain},
	{Name: "tiny-qwen2", Arch: model.ArchQwen2, Dim: 64, Hidden: 172, Layers: 2, Heads: 4, KVHeads: 2, ContextLen: 512,
		RopeTheta: 1e6, NormEps: 1e-6, QKVBias: true, OutputGain: confidentGain},
	{Name: "tiny-qwen3", Arch: model.ArchQwen3, Dim: 64, Hidden: 160, Layers: 3, Heads: 4, KVHeads: 2, HeadDim: 32, ContextLen: 512,
		RopeTheta: 1e6, NormEps: 1e-6, QKNorm: true, OutputGain: confidentGain},
	// tiny-widehead: one layer of one head of 256 dimensions and a long
	// context, cheap to run over thousands of positions, whose late layer
	// cells' keys and values are megabytes (audit
	// TestAttackLongReceiptAudit).
	{Name: "tiny-widehead", Dim: 256, Hidden: 256, Layers: 1, Heads: 1, KVHeads: 1, ContextLen: 4096},
	// tiny256-qwen3: a qwen3 whose matrices are whole 256-element
	// super-blocks, with enough layers for the _K_M mixes to differ by
	// layer (Q6_K attn_v and ffn_down in layers 0, 3, 6, 7).
	{Name: "tiny256-qwen3", Arch: model.ArchQwen3, Dim: 256, Hidden: 768, Layers: 8, Heads: 4, KVHeads: 2, HeadDim: 128, ContextLen: 512,
		RopeTheta: 1e6, NormEps: 1e-6, QKNorm: true, OutputGain: confidentGain},
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

// Config returns the model configuration of the preset with a vocabulary
// of n tokens.
func (p Preset) Config(n int) model.Config {
	c := model.Config{
		Arch: p.Arch, Dim: p.Dim, Hidden: p.Hidden, Layers: p.Layers, Heads: p.Heads, KVHeads: p.KVHeads,
		Vocab: n, ContextLen: p.ContextLen, RopeTheta: p.RopeTheta, NormEps: p.NormEps,
		QKVBias: p.QKVBias, QKNorm: p.QKNorm, FreqFactors: p.Llama3Rope != nil,
	}
	if c.Arch == "" {
		c.Arch = model.ArchLlama
	}
	if c.RopeTheta == 0 {
		c.RopeTheta = model.DefaultRopeTheta
	}
	if c.NormEps == 0 {
		c.NormEps = model.DefaultNormEps
	}
	if p.HeadDim != 0 && p.Heads > 0 && (p.Dim%p.Heads != 0 || p.HeadDim != p.Dim/p.Heads) {
		c.HeadSize = p.HeadDim
	}
	return c
}

// Params is the number of weights of the preset with a vocabulary of n
// tokens.
func (p Preset) Params(n int) int64 {
	c := p.Config(n)
	d, q, kv := int64(c.Dim), int64(c.QDim()), int64(c.KVDim())
	per := d + d*q + 2*d*kv + q*d + d + 3*d*int64(c.Hidden)
	if c.QKVBias {
		per += q + 2*kv
	}
	if c.QKNorm {
		per += 2 * int64(c.HeadDim())
	}
	total := d*int64(n) + int64(c.Layers)*per + d
	if p.Separate {
		total += d * int64(n)
	}
	return total
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

// Generate writes a GGUF with random weights in the shape of the named
// preset to w. The vocabulary, and every tokenizer.* metadata key (the chat
// template included), is copied from the GGUF at vocabPath, padded to the
// preset's vocabulary size if it fixes a larger one. Matrices are stored as
// typ (norms and biases stay F32; a matrix whose rows are not a whole number
// of typ's blocks is stored as StorageType says, as llama.cpp's quantizer
// does). The
// classifier is tied to the token embedding unless the preset has a
// separate output, as the models it imitates do.
func Generate(preset, vocabPath string, seed uint64, typ tensor.Type, w io.Writer) error {
	p, err := LookupPreset(preset)
	if err != nil {
		return err
	}
	ft, err := fileType(typ)
	if err != nil {
		return err
	}
	tok, n, err := vocabKVs(vocabPath, p.Vocab)
	if err != nil {
		return err
	}
	return writeModel(p, ft, tok, n, seed, uniformTypes(typ), w)
}

// vocabKVs reads the tokenizer.* metadata of a vocabulary GGUF and the
// number of its tokens; want > 0 pads the vocabulary to want tokens.
func vocabKVs(vocabPath string, want int) ([]gguf.KV, int, error) {
	vf, err := gguf.Open(vocabPath)
	if err != nil {
		return nil, 0, err
	}
	defer vf.Close()
	toks, err := vf.Strings("tokenizer.ggml.tokens")
	if err != nil {
		return nil, 0, fmt.Errorf("%s: no vocabulary: %w", vocabPath, err)
	}
	var tok []gguf.KV
	for _, kv := range vf.KV {
		if strings.HasPrefix(kv.Key, "tokenizer.") {
			tok = append(tok, kv)
		}
	}
	n := len(toks)
	switch {
	case want == 0 || want == n:
		return tok, n, nil
	case want < n:
		return nil, 0, fmt.Errorf("%s: the vocabulary has %d tokens, the preset %d", vocabPath, n, want)
	}
	// Pad as llama.cpp's converter pads a vocabulary up to the model's
	// vocab_size: "[PAD<i>]" tokens of type UNUSED, score 0.
	for i := range tok {
		switch tok[i].Key {
		case "tokenizer.ggml.tokens":
			for j := n; j < want; j++ {
				toks = append(toks, fmt.Sprintf("[PAD%d]", j))
			}
			tok[i].Value = gguf.Array(toks)
		case "tokenizer.ggml.scores":
			sc, err := vf.Float32s(tok[i].Key)
			if err != nil {
				return nil, 0, fmt.Errorf("%s: %w", vocabPath, err)
			}
			tok[i].Value = gguf.Array(append(sc, make([]float32, want-len(sc))...))
		case "tokenizer.ggml.token_type":
			ty, err := vf.Int32s(tok[i].Key)
			if err != nil {
				return nil, 0, fmt.Errorf("%s: %w", vocabPath, err)
			}
			for len(ty) < want {
				ty = append(ty, int32(tokenizer.Unused))
			}
			tok[i].Value = gguf.Array(ty)
		}
	}
	return tok, want, nil
}

// typeFunc chooses the type of a matrix from its name, the layer it is in
// (-1 for none), its row length, and whether it is the classifier (the
// output matrix, or the token embedding when they are tied).
type typeFunc func(name string, layer, layers, cols int, classifier bool) tensor.Type

// uniformTypes stores every matrix as t, or as StorageType falls back where
// rows are not whole blocks of t.
func uniformTypes(t tensor.Type) typeFunc {
	return func(_ string, _, _, cols int, _ bool) tensor.Type { return StorageType(t, cols) }
}

// useMoreBits is llama.cpp's use_more_bits: the first and last eighth of
// the layers and every third one between get more bits in the _M mixes.
func useMoreBits(i, n int) bool { return i < n/8 || i >= 7*n/8 || (i-n/8)%3 == 2 }

// kMix is the per-tensor type choice of llama.cpp's Q4_K_M or Q5_K_M
// (llama_tensor_get_type for a dense model without an importance matrix):
// base (Q4_K or Q5_K) everywhere but the classifier, which gets Q6_K (Q8_0
// when its rows are not whole 256-element super-blocks), and attn_v and
// ffn_down of the layers useMoreBits picks, which get Q6_K; then
// llama.cpp's fallback for rows that are not whole super-blocks (Q4_K to
// Q5_0, Q5_K to Q5_1, Q6_K to Q8_0).
func kMix(base tensor.Type) typeFunc {
	return func(name string, layer, layers, cols int, classifier bool) tensor.Type {
		t := base
		switch {
		case classifier:
			t = tensor.Q6_K
		case (strings.HasSuffix(name, ".attn_v.weight") || strings.HasSuffix(name, ".ffn_down.weight")) && useMoreBits(layer, layers):
			t = tensor.Q6_K
		}
		return StorageType(t, cols)
	}
}

// writeModel writes a model of preset p whose vocabulary of n tokens is
// described by the tokenizer.* metadata tok. Models of the Llama-2 presets
// (no Arch) keep the exact bytes of earlier versions.
func writeModel(p Preset, ft uint32, tok []gguf.KV, n int, seed uint64, typeOf typeFunc, w io.Writer) error {
	preset := p.Name
	cfg := p.Config(n)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("preset %s: %w", preset, err)
	}
	a := cfg.Arch
	kvs := []gguf.KV{
		{Key: "general.architecture", Value: gguf.String(a)},
		{Key: "general.name", Value: gguf.String("verdict-synth-" + p.Name)},
		{Key: "general.file_type", Value: gguf.Uint32(ft)},
		{Key: "general.quantization_version", Value: gguf.Uint32(2)},
		{Key: "verdict.synth.preset", Value: gguf.String(p.Name)},
		{Key: "verdict.synth.seed", Value: gguf.Uint64(seed)},
		{Key: a + ".vocab_size", Value: gguf.Uint32(uint32(n))},
		{Key: a + ".context_length", Value: gguf.Uint32(uint32(cfg.ContextLen))},
		{Key: a + ".embedding_length", Value: gguf.Uint32(uint32(cfg.Dim))},
		{Key: a + ".block_count", Value: gguf.Uint32(uint32(cfg.Layers))},
		{Key: a + ".feed_forward_length", Value: gguf.Uint32(uint32(cfg.Hidden))},
		{Key: a + ".rope.dimension_count", Value: gguf.Uint32(uint32(cfg.HeadDim()))},
		{Key: a + ".rope.freq_base", Value: gguf.Float32(cfg.RopeTheta)},
		{Key: a + ".attention.head_count", Value: gguf.Uint32(uint32(cfg.Heads))},
		{Key: a + ".attention.head_count_kv", Value: gguf.Uint32(uint32(cfg.KVHeads))},
		{Key: a + ".attention.layer_norm_rms_epsilon", Value: gguf.Float32(cfg.NormEps)},
	}
	if p.Arch != "" {
		kvs = append(kvs,
			gguf.KV{Key: a + ".attention.key_length", Value: gguf.Uint32(uint32(cfg.HeadDim()))},
			gguf.KV{Key: a + ".attention.value_length", Value: gguf.Uint32(uint32(cfg.HeadDim()))})
	}
	kvs = append(kvs, tok...)
	var ts []gguf.TensorData
	matrix := func(name string, layer, cols, rows int) {
		classifier := name == "output.weight" || (name == "token_embd.weight" && !p.Separate)
		t := typeOf(name, layer, cfg.Layers, cols, classifier)
		ts = append(ts, gguf.TensorData{Name: name, Type: t, Dims: []int{cols, rows}, Source: randomSource(seed, name, t, cols, rows, 1)})
	}
	vector := func(name string, n int, center, spread float32) {
		ts = append(ts, gguf.TensorData{Name: name, Type: tensor.F32, Dims: []int{n}, Source: vectorSource(seed, name, n, center, spread)})
	}
	norm := func(name string) { vector(name, cfg.Dim, 1, 0) }
	q, kv, hd := cfg.QDim(), cfg.KVDim(), cfg.HeadDim()
	matrix("token_embd.weight", -1, cfg.Dim, n)
	for i := 0; i < cfg.Layers; i++ {
		b := fmt.Sprintf("blk.%d.", i)
		norm(b + "attn_norm.weight")
		matrix(b+"attn_q.weight", i, cfg.Dim, q)
		matrix(b+"attn_k.weight", i, cfg.Dim, kv)
		matrix(b+"attn_v.weight", i, cfg.Dim, kv)
		if cfg.QKVBias {
			vector(b+"attn_q.bias", q, 0, 0.5)
			vector(b+"attn_k.bias", kv, 0, 0.5)
			vector(b+"attn_v.bias", kv, 0, 0.5)
		}
		if cfg.QKNorm {
			vector(b+"attn_q_norm.weight", hd, 1, 0.25)
			vector(b+"attn_k_norm.weight", hd, 1, 0.25)
		}
		matrix(b+"attn_output.weight", i, q, cfg.Dim)
		norm(b + "ffn_norm.weight")
		matrix(b+"ffn_gate.weight", i, cfg.Dim, cfg.Hidden)
		matrix(b+"ffn_down.weight", i, cfg.Hidden, cfg.Dim)
		matrix(b+"ffn_up.weight", i, cfg.Dim, cfg.Hidden)
	}
	gain := p.OutputGain
	if gain == 0 {
		gain = 1
	}
	vector("output_norm.weight", cfg.Dim, gain, 0)
	if r := p.Llama3Rope; r != nil {
		fs := r.Factors(float64(cfg.RopeTheta), hd)
		ts = append(ts, gguf.TensorData{Name: "rope_freqs.weight", Type: tensor.F32, Dims: []int{hd / 2}, Source: func(w io.Writer) error {
			buf, _ := AppendRow(nil, tensor.F32, fs)
			_, err := w.Write(buf)
			return err
		}})
	}
	if p.Separate {
		matrix("output.weight", -1, cfg.Dim, n)
	}
	return gguf.Write(w, kvs, ts)
}

// Factors returns the RoPE frequency factors llama.cpp's converter
// (convert_hf_to_gguf.py, LlamaModel) writes as rope_freqs.weight for
// "llama3" scaling: for the frequency f_j = base^(-2j/hd) of each pair,
// with wavelength 2π/f_j: 1 below the high-frequency wavelength
// original/high, factor above the low-frequency one original/low, and in
// between 1/((1-s)/factor + s) with s = (original/wavelength - low)/(high -
// low). The file holds the factors, not the engine: the arithmetic here is
// binary64 with detmath's pow, rounded once to f32.
func (r Llama3Rope) Factors(base float64, hd int) []float32 {
	lowWave := float64(r.OriginalContext) / r.LowFreqFactor
	highWave := float64(r.OriginalContext) / r.HighFreqFactor
	out := make([]float32, hd/2)
	for j := range out {
		f := detmath.Pow64(base, -float64(2*j)/float64(hd))
		wave := 2 * math.Pi / f
		switch {
		case wave < highWave:
			out[j] = 1
		case wave > lowWave:
			out[j] = float32(r.Factor)
		default:
			s := (float64(r.OriginalContext)/wave - r.LowFreqFactor) / (r.HighFreqFactor - r.LowFreqFactor)
			out[j] = float32(1 / ((1-s)/r.Factor + s))
		}
	}
	return out
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
// a = scale/sqrt(cols), encoded as t.
func randomSource(seed uint64, name string, t tensor.Type, cols, rows int, scale float64) func(io.Writer) error {
	return func(w io.Writer) error {
		h := fnv.New64a()
		h.Write([]byte(name))
		stream := splitmix64(seed ^ h.Sum64())
		a := float32(scale / math.Sqrt(float64(cols)))
		// Blocks of rows are generated and encoded on every CPU and
		// written in order: the bytes are those of one row at a time, and
		// memory stays at a few blocks whatever the matrix's size.
		rowsPer := max(1, (1<<20)/(4*cols))
		blocks := (rows + rowsPer - 1) / rowsPer
		workers := min(runtime.GOMAXPROCS(0), blocks)
		type result struct {
			buf []byte
			err error
		}
		out := make([]chan result, blocks)
		for i := range out {
			out[i] = make(chan result, 1)
		}
		next := make(chan int)
		done := make(chan struct{})
		defer close(done)
		// At most 2*workers blocks are handed out ahead of the writer; the
		// feeder takes a slot before handing out a block, so the oldest
		// block the writer waits for always holds one.
		ahead := make(chan struct{}, 2*workers)
		go func() {
			defer close(next)
			for b := 0; b < blocks; b++ {
				select {
				case ahead <- struct{}{}:
				case <-done:
					return
				}
				select {
				case next <- b:
				case <-done:
					return
				}
			}
		}()
		for range workers {
			go func() {
				row := make([]float32, cols)
				for b := range next {
					var buf []byte
					var err error
					for r := b * rowsPer; r < min(rows, (b+1)*rowsPer) && err == nil; r++ {
						base := uint64(r) * uint64(cols)
						for c := range row {
							row[c] = uniform(stream, base+uint64(c)) * a
						}
						buf, err = AppendRow(buf, t, row)
					}
					out[b] <- result{buf, err}
				}
			}()
		}
		for b := 0; b < blocks; b++ {
			res := <-out[b]
			<-ahead
			if res.err != nil {
				return res.err
			}
			if _, err := w.Write(res.buf); err != nil {
				return err
			}
		}
		return nil
	}
}

// vectorSource streams n F32 values center + spread*u_i, u_i uniform on
// [-1, 1) from the stream of the tensor's name (all center when spread is
// 0).
func vectorSource(seed uint64, name string, n int, center, spread float32) func(io.Writer) error {
	return func(w io.Writer) error {
		row := make([]float32, n)
		for i := range row {
			row[i] = center
			if spread != 0 {
				row[i] = center + float32(spread*Uniform(seed, name, uint64(i)))
			}
		}
		buf, _ := AppendRow(nil, tensor.F32, row)
		_, err := w.Write(buf)
		return err
	}
}
