package model

import (
	"fmt"
	"io"

	"github.com/verdictnet/verdict/internal/tensor"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

// Config holds the hyper-parameters that, with the weights and the
// vocabulary, determine every logit.
type Config struct {
	Arch       string  // "llama"
	Dim        int     // embedding length
	Hidden     int     // feed-forward length
	Layers     int     // transformer blocks
	Heads      int     // attention heads
	KVHeads    int     // key/value heads (grouped-query attention)
	Vocab      int     // vocabulary size
	ContextLen int     // maximum positions
	RopeTheta  float32 // RoPE frequency base
	NormEps    float32 // RMSNorm epsilon
}

// HeadDim is the size of one attention head.
func (c Config) HeadDim() int { return c.Dim / c.Heads }

// KVDim is the width of the key and value vectors of one position.
func (c Config) KVDim() int { return c.KVHeads * c.HeadDim() }

// Validate checks that the configuration is usable.
func (c Config) Validate() error {
	switch {
	case c.Dim <= 0 || c.Hidden <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.KVHeads <= 0 || c.Vocab <= 0 || c.ContextLen <= 0:
		return fmt.Errorf("configuration has a non-positive size: %+v", c)
	case c.Dim > 1<<16 || c.Hidden > 1<<18 || c.Layers > 1024 || c.Vocab > 1<<22 || c.ContextLen > 1<<20:
		return fmt.Errorf("configuration is implausibly large: %+v", c)
	case c.Dim%c.Heads != 0:
		return fmt.Errorf("dim %d is not a multiple of %d heads", c.Dim, c.Heads)
	case c.Heads%c.KVHeads != 0:
		return fmt.Errorf("%d heads is not a multiple of %d key/value heads", c.Heads, c.KVHeads)
	case c.HeadDim()%2 != 0:
		return fmt.Errorf("head size %d is odd; RoPE needs pairs", c.HeadDim())
	case !(c.RopeTheta > 0) || !(c.NormEps >= 0):
		return fmt.Errorf("rope theta %v or norm epsilon %v out of range", c.RopeTheta, c.NormEps)
	}
	return nil
}

// Layer holds the weights of one transformer block. Matrix dims are in GGML
// order (row length first).
type Layer struct {
	AttnNorm *tensor.Tensor // [Dim] F32
	Wq       *tensor.Tensor // [Dim, Dim]
	Wk       *tensor.Tensor // [Dim, KVDim]
	Wv       *tensor.Tensor // [Dim, KVDim]
	Wo       *tensor.Tensor // [Dim, Dim]
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
	Vocab      *tokenizer.Vocab
	// Format is "llama2c" or "gguf"; Path is the weights file.
	Format string
	Path   string

	closer io.Closer
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

// Tensors lists every weight tensor in a fixed canonical order: token
// embedding; per layer attn_norm, wq, wk, wv, wo, ffn_norm, gate, down, up;
// output norm; output (when not tied).
func (m *Model) Tensors() []*tensor.Tensor {
	ts := []*tensor.Tensor{m.TokenEmbd}
	for _, l := range m.Layers {
		ts = append(ts, l.AttnNorm, l.Wq, l.Wk, l.Wv, l.Wo, l.FFNNorm, l.FFNGate, l.FFNDown, l.FFNUp)
	}
	ts = append(ts, m.OutputNorm)
	if m.Output != m.TokenEmbd {
		ts = append(ts, m.Output)
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
	type want struct {
		t    *tensor.Tensor
		name string
		dims []int
		f32  bool
	}
	ws := []want{{m.TokenEmbd, "token embedding", []int{c.Dim, c.Vocab}, false}}
	for i, l := range m.Layers {
		p := fmt.Sprintf("layer %d ", i)
		ws = append(ws,
			want{l.AttnNorm, p + "attention norm", []int{c.Dim}, true},
			want{l.Wq, p + "wq", []int{c.Dim, c.Dim}, false},
			want{l.Wk, p + "wk", []int{c.Dim, c.KVDim()}, false},
			want{l.Wv, p + "wv", []int{c.Dim, c.KVDim()}, false},
			want{l.Wo, p + "wo", []int{c.Dim, c.Dim}, false},
			want{l.FFNNorm, p + "ffn norm", []int{c.Dim}, true},
			want{l.FFNGate, p + "ffn gate", []int{c.Dim, c.Hidden}, false},
			want{l.FFNDown, p + "ffn down", []int{c.Hidden, c.Dim}, false},
			want{l.FFNUp, p + "ffn up", []int{c.Dim, c.Hidden}, false},
		)
	}
	ws = append(ws, want{m.OutputNorm, "output norm", []int{c.Dim}, true}, want{m.Output, "output", []int{c.Dim, c.Vocab}, false})
	for _, w := range ws {
		if w.t == nil {
			return fmt.Errorf("missing tensor: %s", w.name)
		}
		if err := w.t.Check(); err != nil {
			return fmt.Errorf("%s: %w", w.name, err)
		}
		if !w.t.ShapeIs(w.dims...) {
			return fmt.Errorf("%s (%s) has shape %v, config needs %v", w.name, w.t.Name, w.t.Dims, w.dims)
		}
		if w.f32 && w.t.Type != tensor.F32 {
			return fmt.Errorf("%s (%s) is %s; norms must be F32", w.name, w.t.Name, w.t.Type)
		}
	}
	if m.Vocab != nil && len(m.Vocab.Tokens) != c.Vocab {
		return fmt.Errorf("tokenizer has %d tokens, model vocabulary is %d", len(m.Vocab.Tokens), c.Vocab)
	}
	return nil
}
