package model

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/verdictnet/verdict/internal/gguf"
	"github.com/verdictnet/verdict/internal/llama2c"
	"github.com/verdictnet/verdict/internal/mmapfile"
	"github.com/verdictnet/verdict/internal/tensor"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

// Defaults used when a file does not say (llama2.c never does).
const (
	DefaultRopeTheta = 10000
	DefaultNormEps   = 1e-5
)

// Load reads a model file, telling the format by its first bytes: "GGUF"
// for GGUF, the "ak42" magic for a llama2.c version-1 checkpoint, anything
// else a legacy llama2.c checkpoint.
//
// The vocabulary comes from tokenizerPath when it is not empty (a GGUF or a
// llama2.c tokenizer file), else from the GGUF metadata, else, for a llama2.c
// checkpoint, from tok<vocab>.bin or tokenizer.bin next to the model.
//
// Weights are memory-mapped; Close the model to release them. Every error
// starts with the path of the file at fault.
func Load(path, tokenizerPath string) (*Model, error) {
	isGGUF, err := hasMagic(path, gguf.Magic)
	if err != nil {
		return nil, err
	}
	var m *Model
	if isGGUF {
		f, err := gguf.Open(path)
		if err != nil {
			return nil, err
		}
		m, err = FromGGUF(f, tokenizerPath == "")
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		m.SetCloser(f)
	} else {
		mf, err := mmapfile.Open(path)
		if err != nil {
			return nil, err
		}
		ck, err := llama2c.ParseCheckpoint(mf.Data)
		if err != nil {
			mf.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		m = FromCheckpoint(ck)
		m.SetCloser(mf)
		if tokenizerPath == "" {
			if tokenizerPath, err = findTokenizer(path, ck.Vocab); err != nil {
				m.Close()
				return nil, err
			}
		}
	}
	m.Path = path
	if tokenizerPath != "" {
		v, err := loadVocabFile(tokenizerPath, m.Config.Vocab)
		if err != nil {
			m.Close()
			return nil, err
		}
		if len(v.Tokens) != m.Config.Vocab {
			m.Close()
			return nil, fmt.Errorf("%s: tokenizer has %d tokens, model %s has a vocabulary of %d", tokenizerPath, len(v.Tokens), path, m.Config.Vocab)
		}
		m.Vocab = v
	}
	if err := m.Check(); err != nil {
		m.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// findTokenizer looks for the tokenizer of a llama2.c checkpoint next to it.
func findTokenizer(modelPath string, vocab int) (string, error) {
	dir := filepath.Dir(modelPath)
	names := []string{fmt.Sprintf("tok%d.bin", vocab), "tokenizer.bin"}
	for _, n := range names {
		p := filepath.Join(dir, n)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: no tokenizer given and neither %s nor %s exists next to the model", modelPath, names[0], names[1])
}

// loadVocabFile reads a tokenizer file; a llama2.c one must hold exactly
// vocab tokens.
func loadVocabFile(path string, vocab int) (*tokenizer.Vocab, error) {
	isGGUF, err := hasMagic(path, gguf.Magic)
	if err != nil {
		return nil, err
	}
	if !isGGUF {
		return llama2c.ReadTokenizer(path, vocab)
	}
	return LoadVocab(path)
}

// FromCheckpoint builds a Model from a parsed llama2.c checkpoint, with
// llama2.c's fixed RoPE theta and RMSNorm epsilon. The caller attaches the
// vocabulary and calls Check.
func FromCheckpoint(ck *llama2c.Checkpoint) *Model {
	m := &Model{
		Config: Config{
			Arch:       "llama",
			Dim:        ck.Dim,
			Hidden:     ck.Hidden,
			Layers:     ck.Layers,
			Heads:      ck.Heads,
			KVHeads:    ck.KVHeads,
			Vocab:      ck.Vocab,
			ContextLen: ck.SeqLen,
			RopeTheta:  DefaultRopeTheta,
			NormEps:    DefaultNormEps,
		},
		TokenEmbd:  ck.TokenEmbd,
		OutputNorm: ck.Norm,
		Output:     ck.Wcls,
		Format:     "llama2c",
		Layers:     make([]Layer, ck.Layers),
	}
	for i := range m.Layers {
		m.Layers[i] = Layer{
			AttnNorm: ck.AttnNorm[i], Wq: ck.Wq[i], Wk: ck.Wk[i], Wv: ck.Wv[i], Wo: ck.Wo[i],
			FFNNorm: ck.FFNNorm[i], FFNGate: ck.W1[i], FFNDown: ck.W2[i], FFNUp: ck.W3[i],
		}
	}
	return m
}

// ggufInt reads an integer key, or def when it is absent and def >= 0.
func ggufInt(f *gguf.File, key string, def int) (int, error) {
	n, err := f.Int(key)
	if errors.Is(err, gguf.ErrNotFound) && def >= 0 {
		return def, nil
	}
	return n, err
}

func ggufFloat(f *gguf.File, key string, def float32) (float32, error) {
	x, err := f.Float32(key)
	if errors.Is(err, gguf.ErrNotFound) {
		return def, nil
	}
	return x, err
}

// archInfo says what an architecture's layers hold beyond a Llama-2 layer.
type archInfo struct {
	bias   tensorRule // attn_q.bias, attn_k.bias, attn_v.bias
	qkNorm tensorRule // attn_q_norm.weight, attn_k_norm.weight
	freqs  tensorRule // rope_freqs.weight
}

// tensorRule says whether a group of tensors must, may or must not appear.
type tensorRule int

const (
	never tensorRule = iota
	optional
	required
)

// archs are the architectures FromGGUF accepts, with the tensors llama.cpp
// loads for them (llama_model::load_tensors).
var archs = map[string]archInfo{
	ArchLlama: {bias: optional, freqs: optional},
	ArchQwen2: {bias: required},
	ArchQwen3: {qkNorm: required},
}

// FromGGUF builds a Model from a parsed GGUF file of architecture "llama",
// "qwen2" or "qwen3", reading every hyper-parameter from the keys llama.cpp
// reads ({arch}.embedding_length, ...). With withVocab the vocabulary is
// read from the file's tokenizer metadata. Tensors alias the file; the
// caller keeps it open, and calls Check (Load does both).
func FromGGUF(f *gguf.File, withVocab bool) (*Model, error) {
	arch, err := f.String("general.architecture")
	if err != nil {
		return nil, err
	}
	info, ok := archs[arch]
	if !ok {
		return nil, fmt.Errorf("architecture %q is not supported (only %s)", arch, strings.Join(Architectures(), ", "))
	}
	if err := checkVariant(f, arch); err != nil {
		return nil, err
	}
	c := Config{Arch: arch}
	for _, k := range []struct {
		key string
		dst *int
		def int
	}{
		{"embedding_length", &c.Dim, -1},
		{"feed_forward_length", &c.Hidden, -1},
		{"block_count", &c.Layers, -1},
		{"attention.head_count", &c.Heads, -1},
		{"context_length", &c.ContextLen, -1},
	} {
		if *k.dst, err = ggufInt(f, arch+"."+k.key, k.def); err != nil {
			return nil, err
		}
	}
	if c.KVHeads, err = ggufInt(f, arch+".attention.head_count_kv", c.Heads); err != nil {
		return nil, err
	}
	if c.RopeTheta, err = ggufFloat(f, arch+".rope.freq_base", DefaultRopeTheta); err != nil {
		return nil, err
	}
	if c.NormEps, err = ggufFloat(f, arch+".attention.layer_norm_rms_epsilon", DefaultNormEps); err != nil {
		return nil, err
	}
	if c.Heads <= 0 || c.Heads > 1<<12 {
		return nil, fmt.Errorf("%s.attention.head_count %d out of range", arch, c.Heads)
	}
	def := -1
	if c.Dim > 0 && c.Dim%c.Heads == 0 {
		def = c.Dim / c.Heads
	}
	hk, err := ggufInt(f, arch+".attention.key_length", def)
	if err != nil {
		return nil, fmt.Errorf("%w (embedding length %d is not a multiple of %d heads)", err, c.Dim, c.Heads)
	}
	hv, err := ggufInt(f, arch+".attention.value_length", hk)
	if err != nil {
		return nil, err
	}
	if hk != hv {
		return nil, fmt.Errorf("%s.attention.key_length %d differs from value_length %d; different key and value head sizes are not supported", arch, hk, hv)
	}
	if hk <= 0 || hk > 1<<12 || hk%2 != 0 {
		return nil, fmt.Errorf("%s.attention.key_length %d: the head size must be even and in 2..4096", arch, hk)
	}
	if hk != def {
		c.HeadSize = hk
	}
	if err := c.validateShape(); err != nil {
		return nil, err
	}
	if rd, err := ggufInt(f, arch+".rope.dimension_count", hk); err != nil {
		return nil, err
	} else if rd != hk {
		return nil, fmt.Errorf("%s.rope.dimension_count %d differs from the head size %d; partial RoPE is not supported", arch, rd, hk)
	}

	used := make([]bool, len(f.Tensors))
	position := make(map[string]int, len(f.Tensors))
	for i, ti := range f.Tensors {
		position[ti.Name] = i
	}
	get := func(name string, optional bool) (*tensor.Tensor, error) {
		ti, ok := f.TensorInfo(name)
		if !ok {
			if optional {
				return nil, nil
			}
			return nil, fmt.Errorf("missing tensor %s", name)
		}
		if !ti.Type.Known() {
			return nil, fmt.Errorf("tensor %s has type %s (%d), which Verdict cannot compute with (%s)", name, gguf.TypeName(ti.Type), uint32(ti.Type), knownTypes())
		}
		used[position[name]] = true
		return f.Tensor(name)
	}
	// group loads a group of tensors under a rule: all or none may be
	// present when optional.
	group := func(rule tensorRule, what string, names []string, dsts []**tensor.Tensor) (bool, error) {
		present := 0
		for _, n := range names {
			if _, ok := f.TensorInfo(n); ok {
				present++
			}
		}
		switch {
		case present == 0 && rule != required:
			return false, nil
		case rule == never:
			return false, fmt.Errorf("unexpected tensor %s (a %s model has no %s)", firstPresent(f, names), arch, what)
		case present != len(names) && rule == optional:
			return false, fmt.Errorf("%s: %d of the %d tensors %s are present; a model has all or none", what, present, len(names), strings.Join(names, ", "))
		}
		for i, n := range names {
			var err error
			if *dsts[i], err = get(n, false); err != nil {
				return false, err
			}
		}
		return true, nil
	}
	m := &Model{Format: "gguf", Layers: make([]Layer, c.Layers)}
	if m.TokenEmbd, err = get("token_embd.weight", false); err != nil {
		return nil, err
	}
	if len(m.TokenEmbd.Dims) != 2 {
		return nil, fmt.Errorf("tensor token_embd.weight has shape %v, want 2 dimensions", m.TokenEmbd.Dims)
	}
	if c.Vocab, err = ggufInt(f, arch+".vocab_size", m.TokenEmbd.Dims[1]); err != nil {
		return nil, err
	}
	for i := range m.Layers {
		l := &m.Layers[i]
		b := fmt.Sprintf("blk.%d.", i)
		for _, t := range []struct {
			name string
			dst  **tensor.Tensor
		}{
			{"attn_norm", &l.AttnNorm}, {"attn_q", &l.Wq}, {"attn_k", &l.Wk}, {"attn_v", &l.Wv},
			{"attn_output", &l.Wo}, {"ffn_norm", &l.FFNNorm}, {"ffn_gate", &l.FFNGate},
			{"ffn_down", &l.FFNDown}, {"ffn_up", &l.FFNUp},
		} {
			if *t.dst, err = get(b+t.name+".weight", false); err != nil {
				return nil, err
			}
		}
		has, err := group(info.bias, "Q/K/V biases", []string{b + "attn_q.bias", b + "attn_k.bias", b + "attn_v.bias"}, []**tensor.Tensor{&l.Bq, &l.Bk, &l.Bv})
		if err != nil {
			return nil, err
		}
		if i > 0 && has != c.QKVBias {
			return nil, fmt.Errorf("layer %d %s Q/K/V biases and layer 0 %s", i, haveWord(has), haveWord(c.QKVBias))
		}
		c.QKVBias = has
		if has, err = group(info.qkNorm, "Q/K norms", []string{b + "attn_q_norm.weight", b + "attn_k_norm.weight"}, []**tensor.Tensor{&l.QNorm, &l.KNorm}); err != nil {
			return nil, err
		}
		c.QKNorm = has
	}
	if c.FreqFactors, err = group(info.freqs, "RoPE frequency factors", []string{"rope_freqs.weight"}, []**tensor.Tensor{&m.RopeFreqs}); err != nil {
		return nil, err
	}
	if m.OutputNorm, err = get("output_norm.weight", false); err != nil {
		return nil, err
	}
	if m.Output, err = get("output.weight", true); err != nil {
		return nil, err
	}
	if m.Output == nil {
		m.Output = m.TokenEmbd
	}
	for i, u := range used {
		if !u {
			return nil, fmt.Errorf("unexpected tensor %s (a %s model with %d layers has no such tensor)", f.Tensors[i].Name, arch, c.Layers)
		}
	}
	m.Config = c
	if withVocab {
		if m.Vocab, err = VocabFromGGUF(f); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func haveWord(b bool) string {
	if b {
		return "has"
	}
	return "has no"
}

func firstPresent(f *gguf.File, names []string) string {
	for _, n := range names {
		if _, ok := f.TensorInfo(n); ok {
			return n
		}
	}
	return names[0]
}

// knownTypes names the tensor types Verdict computes with, for errors.
func knownTypes() string {
	names := make([]string, len(tensor.Types))
	for i, t := range tensor.Types {
		names[i] = t.String()
	}
	return strings.Join(names, ", ")
}

// validateShape checks the sizes read from a file before they are used to
// name or look up tensors.
func (c Config) validateShape() error {
	if c.Layers <= 0 || c.Layers > 1024 {
		return fmt.Errorf("block count %d out of range", c.Layers)
	}
	if c.Heads <= 0 || c.KVHeads <= 0 || c.Dim <= 0 || c.KVHeads > c.Heads || c.Heads%c.KVHeads != 0 {
		return fmt.Errorf("embedding length %d, %d heads and %d key/value heads do not fit together", c.Dim, c.Heads, c.KVHeads)
	}
	return nil
}

// checkVariant rejects files that need features the engine does not
// implement: RoPE scaling other than frequency factors (linear, YaRN, ...)
// and mixtures of experts.
func checkVariant(f *gguf.File, arch string) error {
	if f.Has(arch + ".rope.scaling.type") {
		t, err := f.String(arch + ".rope.scaling.type")
		if err != nil {
			return err
		}
		if t != "none" && t != "linear" {
			return fmt.Errorf("RoPE scaling %q (%s.rope.scaling.type) is not supported", t, arch)
		}
	}
	for _, k := range []string{".rope.scaling.factor", ".rope.scale_linear", ".rope.freq_scale", ".rope.scaling.attn_factor"} {
		if f.Has(arch + k) {
			x, err := f.Float32(arch + k)
			if err != nil {
				return err
			}
			if x != 0 && x != 1 {
				return fmt.Errorf("RoPE scaling (%s%s = %v) is not supported", arch, k, x)
			}
		}
	}
	for _, k := range []string{".expert_count", ".expert_used_count"} {
		if f.Has(arch + k) {
			n, err := f.Int64(arch + k)
			if err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("mixture of experts (%s%s = %d) is not supported", arch, k, n)
			}
		}
	}
	return nil
}
