package llama2c

import (
	"encoding/binary"
	"fmt"

	"github.com/verdictnet/verdict/internal/tensor"
)

// MagicV1 is the first little-endian uint32 of a version-1 checkpoint: the
// bytes "42ka", i.e. 0x616b3432 ("ak42" read as a big-endian word).
const MagicV1 uint32 = 0x616b3432

// HeaderSizeV0 and HeaderSizeV1 are the sizes of the two headers.
const (
	HeaderSizeV0 = 7 * 4
	HeaderSizeV1 = 256
)

// Limits on header values, matching model.Config.Validate.
const (
	maxDim    = 1 << 16
	maxHidden = 1 << 18
	maxLayers = 1024
	maxVocab  = 1 << 22
	maxSeqLen = 1 << 20
)

// Header holds a checkpoint's hyper-parameters.
type Header struct {
	Version int // 0 (legacy, no magic) or 1 ("ak42")
	Dim     int
	Hidden  int
	Layers  int
	Heads   int
	KVHeads int
	Vocab   int // always positive here; see Shared
	SeqLen  int
	// Shared reports a classifier tied to the token embedding (v0: a
	// positive vocab_size in the file; v1: the shared_classifier flag).
	Shared bool
}

// HeadSize is Dim / Heads.
func (h Header) HeadSize() int { return h.Dim / h.Heads }

// KVDim is the width of the key and value projections.
func (h Header) KVDim() int { return h.Dim * h.KVHeads / h.Heads }

// Checkpoint is a parsed checkpoint. Tensor data aliases the parsed bytes
// and dims are in GGML order (row length first); tensors are named as in
// GGUF (token_embd.weight, blk.0.attn_q.weight, ...).
type Checkpoint struct {
	Header
	TokenEmbd *tensor.Tensor   // [Dim, Vocab]
	AttnNorm  []*tensor.Tensor // per layer [Dim]
	Wq        []*tensor.Tensor // [Dim, Dim]
	Wk        []*tensor.Tensor // [Dim, KVDim]
	Wv        []*tensor.Tensor // [Dim, KVDim]
	Wo        []*tensor.Tensor // [Dim, Dim]
	FFNNorm   []*tensor.Tensor // [Dim]
	W1        []*tensor.Tensor // gate [Dim, Hidden]
	W2        []*tensor.Tensor // down [Hidden, Dim]
	W3        []*tensor.Tensor // up [Dim, Hidden]
	Norm      *tensor.Tensor   // [Dim]
	Wcls      *tensor.Tensor   // [Dim, Vocab]; TokenEmbd itself when Shared
}

// IsV1 reports whether data starts with the version-1 magic.
func IsV1(data []byte) bool {
	return len(data) >= 4 && binary.LittleEndian.Uint32(data) == MagicV1
}

// ParseHeader reads and validates a checkpoint header.
func ParseHeader(data []byte) (Header, error) {
	le := binary.LittleEndian
	var h Header
	var p []byte
	if IsV1(data) {
		if len(data) < HeaderSizeV1 {
			return h, fmt.Errorf("truncated: version 1 header needs %d bytes, file has %d", HeaderSizeV1, len(data))
		}
		if v := int32(le.Uint32(data[4:])); v != 1 {
			if v == 2 {
				return h, fmt.Errorf("llama2.c checkpoint version 2 (int8 Q8_0 export) is not supported; use version 1 or GGUF")
			}
			return h, fmt.Errorf("unsupported llama2.c checkpoint version %d", v)
		}
		h.Version = 1
		p = data[8:36]
		switch data[36] {
		case 0:
		case 1:
			h.Shared = true
		default:
			return h, fmt.Errorf("shared_classifier flag is %d, want 0 or 1", data[36])
		}
	} else {
		if len(data) < HeaderSizeV0 {
			return h, fmt.Errorf("truncated: header needs %d bytes, file has %d", HeaderSizeV0, len(data))
		}
		p = data[:28]
	}
	var v [7]int64
	for i := range v {
		v[i] = int64(int32(le.Uint32(p[4*i:])))
	}
	h.Dim, h.Hidden, h.Layers, h.Heads, h.KVHeads, h.SeqLen = int(v[0]), int(v[1]), int(v[2]), int(v[3]), int(v[4]), int(v[6])
	vocab := v[5]
	if h.Version == 0 {
		h.Shared = vocab > 0
		if vocab < 0 {
			vocab = -vocab
		}
	}
	h.Vocab = int(vocab)
	for _, f := range []struct {
		name string
		val  int
		max  int
	}{
		{"dim", h.Dim, maxDim}, {"hidden_dim", h.Hidden, maxHidden}, {"n_layers", h.Layers, maxLayers},
		{"n_heads", h.Heads, maxDim}, {"n_kv_heads", h.KVHeads, maxDim}, {"vocab_size", h.Vocab, maxVocab},
		{"max_seq_len", h.SeqLen, maxSeqLen},
	} {
		if f.val <= 0 || f.val > f.max {
			return h, fmt.Errorf("header %s = %d is out of range (1 to %d); not a llama2.c checkpoint?", f.name, f.val, f.max)
		}
	}
	if h.Dim%h.Heads != 0 {
		return h, fmt.Errorf("header dim %d is not a multiple of n_heads %d", h.Dim, h.Heads)
	}
	if h.KVHeads > h.Heads || h.Heads%h.KVHeads != 0 {
		return h, fmt.Errorf("header n_heads %d is not a multiple of n_kv_heads %d", h.Heads, h.KVHeads)
	}
	return h, nil
}

// layout hands out consecutive float32 tensors from data.
type layout struct {
	data []byte
	pos  int64
}

func (l *layout) next(name string, dims ...int) *tensor.Tensor {
	n := int64(4)
	for _, d := range dims {
		n *= int64(d)
	}
	t := &tensor.Tensor{Name: name, Type: tensor.F32, Dims: dims}
	if l.pos+n <= int64(len(l.data)) {
		t.Data = l.data[l.pos : l.pos+n : l.pos+n]
	}
	l.pos += n
	return t
}

func (l *layout) skip(floats int64) { l.pos += 4 * floats }

// ParseCheckpoint parses a legacy (v0) or version-1 checkpoint held in
// memory. The tensors alias data. Sizes are checked before any tensor is
// handed out: a short file gives "truncated: weights need N bytes, file has
// M", a long one an error too.
func ParseCheckpoint(data []byte) (*Checkpoint, error) {
	h, err := ParseHeader(data)
	if err != nil {
		return nil, err
	}
	c := &Checkpoint{Header: h}
	l := &layout{data: data}
	L := h.Layers
	per := func(name string, dims ...int) []*tensor.Tensor {
		ts := make([]*tensor.Tensor, L)
		for i := range ts {
			ts[i] = l.next(fmt.Sprintf("blk.%d.%s.weight", i, name), dims...)
		}
		return ts
	}
	D, F, KV := h.Dim, h.Hidden, h.KVDim()
	if h.Version == 0 {
		l.pos = HeaderSizeV0
		c.TokenEmbd = l.next("token_embd.weight", D, h.Vocab)
		c.AttnNorm = per("attn_norm", D)
		c.Wq = per("attn_q", D, D)
		c.Wk = per("attn_k", D, KV)
		c.Wv = per("attn_v", D, KV)
		c.Wo = per("attn_output", D, D)
		c.FFNNorm = per("ffn_norm", D)
		c.W1 = per("ffn_gate", D, F)
		c.W2 = per("ffn_down", F, D)
		c.W3 = per("ffn_up", D, F)
		c.Norm = l.next("output_norm.weight", D)
		// The legacy freq_cis_real and freq_cis_imag tables, unused.
		half := int64(h.SeqLen) * int64(h.HeadSize()) / 2
		l.skip(2 * half)
	} else {
		l.pos = HeaderSizeV1
		c.AttnNorm = per("attn_norm", D)
		c.FFNNorm = per("ffn_norm", D)
		c.Norm = l.next("output_norm.weight", D)
		c.TokenEmbd = l.next("token_embd.weight", D, h.Vocab)
		c.Wq = per("attn_q", D, D)
		c.Wk = per("attn_k", D, KV)
		c.Wv = per("attn_v", D, KV)
		c.Wo = per("attn_output", D, D)
		c.W1 = per("ffn_gate", D, F)
		c.W2 = per("ffn_down", F, D)
		c.W3 = per("ffn_up", D, F)
	}
	if h.Shared {
		c.Wcls = c.TokenEmbd
	} else {
		c.Wcls = l.next("output.weight", D, h.Vocab)
	}
	switch {
	case l.pos > int64(len(data)):
		return nil, fmt.Errorf("truncated: weights need %d bytes, file has %d", l.pos, len(data))
	case l.pos < int64(len(data)):
		return nil, fmt.Errorf("%d unexpected bytes after the weights (which end at byte %d); header does not match the file", int64(len(data))-l.pos, l.pos)
	}
	return c, nil
}
