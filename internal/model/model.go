package model

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/verdictnet/verdict/internal/tensor"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

// Config holds the hyper-parameters that, with the weights and the
// vocabulary, determine every logit.
type Config struct {
	Arch       string  // "llama", "qwen2" or "qwen3" (see Arch)
	Dim        int     // embedding length
	Hidden     int     // feed-forward length
	Layers     int     // transformer blocks
	Heads      int     // attention heads
	KVHeads    int     // key/value heads (grouped-query attention)
	Vocab      int     // vocabulary size
	ContextLen int     // maximum positions
	RopeTheta  float32 // RoPE frequency base
	NormEps    float32 // RMSNorm epsilon
	// HeadSize is the size of one attention head ({arch}.attention.key_length)
	// when it is not Dim/Heads; 0 means Dim/Heads (the loaders write 0 in
	// that case, so that equal models have equal configurations).
	HeadSize int
	// QKVBias: every layer adds a bias to its query, key and value
	// projections (qwen2).
	QKVBias bool
	// QKNorm: every layer applies an RMSNorm to each head of its queries and
	// keys before RoPE (qwen3).
	QKNorm bool
	// FreqFactors: the RoPE frequencies are divided by the factors of the
	// tensor rope_freqs.weight (Llama 3.x "llama3" RoPE scaling).
	FreqFactors bool
}

// Architectures Verdict computes, by their general.architecture name.
const (
	ArchLlama = "llama" // Llama 1/2/3.x, Mistral, SmolLM2: RoPE on adjacent pairs
	ArchQwen2 = "qwen2" // Qwen2 / Qwen2.5: NEOX RoPE, Q/K/V biases
	ArchQwen3 = "qwen3" // Qwen3: NEOX RoPE, per-head Q/K RMSNorm
)

// Architectures lists the supported architectures.
func Architectures() []string { return []string{ArchLlama, ArchQwen2, ArchQwen3} }

// RopeType is how RoPE pairs the values of a head (llama.cpp's
// LLAMA_ROPE_TYPE_NORM and LLAMA_ROPE_TYPE_NEOX).
type RopeType int

const (
	// RopeNorm rotates adjacent pairs (x[2j], x[2j+1]).
	RopeNorm RopeType = iota
	// RopeNeox rotates the pairs (x[j], x[j+hd/2]) of the two halves.
	RopeNeox
)

func (r RopeType) String() string {
	if r == RopeNeox {
		return "neox"
	}
	return "norm"
}

// Rope is the RoPE type of the architecture, as llama.cpp's
// llama_model_rope_type assigns it.
func (c Config) Rope() RopeType {
	switch c.Arch {
	case ArchQwen2, ArchQwen3:
		return RopeNeox
	}
	return RopeNorm
}

// HeadDim is the size of one attention head.
func (c Config) HeadDim() int {
	if c.HeadSize > 0 {
		return c.HeadSize
	}
	if c.Heads <= 0 {
		return 0
	}
	return c.Dim / c.Heads
}

// QDim is the width of the query vector, and of the attention output, of
// one position: Heads * HeadDim.
func (c Config) QDim() int { return c.Heads * c.HeadDim() }

// KVDim is the width of the key and value vectors of one position.
func (c Config) KVDim() int { return c.KVHeads * c.HeadDim() }

// Validate checks that the configuration is usable.
func (c Config) Validate() error {
	switch {
	case c.Dim <= 0 || c.Hidden <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.KVHeads <= 0 || c.Vocab <= 0 || c.ContextLen <= 0:
		return fmt.Errorf("configuration has a non-positive size: %+v", c)
	case c.Dim > 1<<16 || c.Hidden > 1<<18 || c.Layers > 1024 || c.Vocab > 1<<22 || c.ContextLen > 1<<20:
		return fmt.Errorf("configuration is implausibly large: %+v", c)
	case c.Arch != ArchLlama && c.Arch != ArchQwen2 && c.Arch != ArchQwen3:
		return fmt.Errorf("architecture %q is not supported (only %s)", c.Arch, strings.Join(Architectures(), ", "))
	case c.HeadSize < 0 || c.HeadSize > 1<<12:
		return fmt.Errorf("head size %d out of range", c.HeadSize)
	case c.HeadSize == 0 && c.Dim%c.Heads != 0:
		return fmt.Errorf("dim %d is not a multiple of %d heads", c.Dim, c.Heads)
	case c.HeadSize != 0 && c.Dim%c.Heads == 0 && c.HeadSize == c.Dim/c.Heads:
		return fmt.Errorf("head size %d equals dim/heads: write 0", c.HeadSize)
	case c.QDim() > 1<<16:
		return fmt.Errorf("%d heads of %d values are implausibly large", c.Heads, c.HeadDim())
	case c.Heads%c.KVHeads != 0:
		return fmt.Errorf("%d heads is not a multiple of %d key/value heads", c.Heads, c.KVHeads)
	case c.HeadDim()%2 != 0:
		return fmt.Errorf("head size %d is odd; RoPE needs pairs", c.HeadDim())
	case !(c.RopeTheta >= 1) || math.IsInf(float64(c.RopeTheta), 1):
		// A base below 1 makes frequencies above 1, and angles past
		// detmath.SinCos64's range at positions a sequence may hold.
		return fmt.Errorf("rope theta %v out of range: the RoPE frequency base must be finite and at least 1", c.RopeTheta)
	case !(c.NormEps >= 0) || math.IsInf(float64(c.NormEps), 1):
		return fmt.Errorf("norm epsilon %v out of range", c.NormEps)
	}
	return nil
}

// Layer holds the weights of one transformer block. Matrix dims are in GGML
// order (row length first).
type Layer struct {
	AttnNorm *tensor.Tensor // [Dim] F32
	Wq       *tensor.Tensor // [Dim, QDim]
	Wk       *tensor.Tensor // [Dim, KVDim]
	Wv       *tensor.Tensor // [Dim, KVDim]
	Bq       *tensor.Tensor // [QDim] F32, with QKVBias
	Bk       *tensor.Tensor // [KVDim] F32, with QKVBias
	Bv       *tensor.Tensor // [KVDim] F32, with QKVBias
	QNorm    *tensor.Tensor // [HeadDim] F32, with QKNorm
	KNorm    *tensor.Tensor // [HeadDim] F32, with QKNorm
	Wo       *tensor.Tensor // [QDim, Dim]
	FFNNorm  *tensor.Tensor // [Dim] F32
	FFNGate  *tensor.Tensor // [Dim, Hidden] (llama2.c w1)
	FFNDown  *tensor.Tensor // [Hidden, Dim] (llama2.c w2)
	FFNUp    *tensor.Tensor // [Dim, Hidden] (llama2.c w3)
}

// Model is a loaded model.
type Model struct {
	Config     Config
	TokenEmbd  *tensor.Tensor // [Dim, Vocab]
	Layers     []Layer
	OutputNorm *tensor.Tensor // [Dim] F32
	Output     *tensor.Tensor // [Dim, Vocab]; may be TokenEmbd (tied)
	RopeFreqs  *tensor.Tensor // [HeadDim/2] F32, with FreqFactors
	Vocab      *tokenizer.Vocab
	// Format is "llama2c" or "gguf"; Path is the weights file.
	Format string
	Path   string

	closer io.Closer
	copied bool // CopyToHugePages has run
}

// Close releases the memory map behind the weights.
func (m *Model) Close() error {
	if m.closer == nil {
		return nil
	}
	err := m.closer.Close()
	m.closer = nil
	return err
}

// SetCloser records what Close must release (used by the loaders).
func (m *Model) SetCloser(c io.Closer) { m.closer = c }

// Entry is one weight tensor of a model with its canonical (GGUF) name and
// the shape the configuration requires.
type Entry struct {
	Name   string
	Tensor *tensor.Tensor
	Dims   []int
	F32    bool // must be F32 (norms, biases, frequency factors)
}

// Entries lists every weight tensor in a fixed canonical order: token
// embedding; per layer attn_norm, attn_q, attn_k, attn_v, then (with
// QKVBias) their biases, (with QKNorm) attn_q_norm and attn_k_norm, then
// attn_output, ffn_norm, ffn_gate, ffn_down, ffn_up; output_norm; (with
// FreqFactors) rope_freqs; output (when not tied). Models without the new
// features list exactly the tensors of a Llama-2 model, in the same order.
func (m *Model) Entries() []Entry {
	c := m.Config
	d, q, kv, hd := c.Dim, c.QDim(), c.KVDim(), c.HeadDim()
	es := []Entry{{"token_embd.weight", m.TokenEmbd, []int{d, c.Vocab}, false}}
	for i, l := range m.Layers {
		b := fmt.Sprintf("blk.%d.", i)
		es = append(es,
			Entry{b + "attn_norm.weight", l.AttnNorm, []int{d}, true},
			Entry{b + "attn_q.weight", l.Wq, []int{d, q}, false},
			Entry{b + "attn_k.weight", l.Wk, []int{d, kv}, false},
			Entry{b + "attn_v.weight", l.Wv, []int{d, kv}, false})
		if c.QKVBias {
			es = append(es,
				Entry{b + "attn_q.bias", l.Bq, []int{q}, true},
				Entry{b + "attn_k.bias", l.Bk, []int{kv}, true},
				Entry{b + "attn_v.bias", l.Bv, []int{kv}, true})
		}
		if c.QKNorm {
			es = append(es,
				Entry{b + "attn_q_norm.weight", l.QNorm, []int{hd}, true},
				Entry{b + "attn_k_norm.weight", l.KNorm, []int{hd}, true})
		}
		es = append(es,
			Entry{b + "attn_output.weight", l.Wo, []int{q, d}, false},
			Entry{b + "ffn_norm.weight", l.FFNNorm, []int{d}, true},
			Entry{b + "ffn_gate.weight", l.FFNGate, []int{d, c.Hidden}, false},
			Entry{b + "ffn_down.weight", l.FFNDown, []int{c.Hidden, d}, false},
			Entry{b + "ffn_up.weight", l.FFNUp, []int{d, c.Hidden}, false})
	}
	es = append(es, Entry{"output_norm.weight", m.OutputNorm, []int{d}, true})
	if c.FreqFactors {
		es = append(es, Entry{"rope_freqs.weight", m.RopeFreqs, []int{hd / 2}, true})
	}
	if m.Output != m.TokenEmbd {
		es = append(es, Entry{"output.weight", m.Output, []int{d, c.Vocab}, false})
	}
	return es
}

// Shapes returns the entries of a model with configuration c, as Entries
// lists them, without their tensors: each name with the shape and whether
// it must be F32. tied says whether the output matrix is the token
// embedding.
func Shapes(c Config, tied bool) []Entry {
	m := &Model{Config: c, Layers: make([]Layer, max(c.Layers, 0)), TokenEmbd: &tensor.Tensor{}, Output: &tensor.Tensor{}}
	if tied {
		m.Output = m.TokenEmbd
	}
	es := m.Entries()
	for i := range es {
		es[i].Tensor = nil
	}
	return es
}

// TensorNames returns the canonical names of the tensors of a model with
// configuration c, in the order of Entries; tied says whether the output
// matrix is the token embedding.
func TensorNames(c Config, tied bool) []string {
	es := Shapes(c, tied)
	names := make([]string, len(es))
	for i, e := range es {
		names[i] = e.Name
	}
	return names
}

// Tensors lists every weight tensor in the canonical order of Entries.
func (m *Model) Tensors() []*tensor.Tensor {
	es := m.Entries()
	ts := make([]*tensor.Tensor, len(es))
	for i, e := range es {
		ts[i] = e.Tensor
	}
	return ts
}

// Check verifies every tensor against the configuration: presence, type,
// shape and data length.
func (m *Model) Check() error {
	c := m.Config
	if err := c.Validate(); err != nil {
		return err
	}
	if len(m.Layers) != c.Layers {
		return fmt.Errorf("config says %d layers, found %d", c.Layers, len(m.Layers))
	}
	if m.Output == nil {
		return fmt.Errorf("missing tensor: output")
	}
	for _, w := range m.Entries() {
		if w.Tensor == nil {
			return fmt.Errorf("missing tensor %s", w.Name)
		}
		if err := w.Tensor.Check(); err != nil {
			return fmt.Errorf("%s: %w", w.Name, err)
		}
		if !w.Tensor.ShapeIs(w.Dims...) {
			return fmt.Errorf("tensor %s has shape %v, the configuration needs %v", w.Name, w.Tensor.Dims, w.Dims)
		}
		if w.F32 && w.Tensor.Type != tensor.F32 {
			return fmt.Errorf("tensor %s is %s; norms must be F32 (and biases and frequency factors)", w.Name, w.Tensor.Type)
		}
	}
	if c.FreqFactors {
		for j := 0; j < c.HeadDim()/2; j++ {
			x := math.Float32frombits(binary.LittleEndian.Uint32(m.RopeFreqs.Data[4*j:]))
			if !(x >= 1) || math.IsInf(float64(x), 1) {
				// A factor below 1 would raise a frequency above 1 (see
				// Config.Validate's RopeTheta): Llama 3's are from 1 to its
				// scaling factor.
				return fmt.Errorf("rope_freqs.weight: factor %v of pair %d; RoPE frequency factors must be finite and at least 1", x, j)
			}
		}
	}
	if m.Vocab != nil && len(m.Vocab.Tokens) != c.Vocab {
		return fmt.Errorf("tokenizer has %d tokens, model vocabulary is %d", len(m.Vocab.Tokens), c.Vocab)
	}
	return nil
}
