package llama2c

import (
	"bytes"
	"encoding/binary"
	"github.com/verdictnet/verdict/internal/testutil"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/tensor"
)

// writer builds checkpoint files for tests.
type writer struct{ bytes.Buffer }

func (w *writer) i32(xs ...int32) {
	for _, x := range xs {
		binary.Write(w, binary.LittleEndian, x)
	}
}

// floats appends n float32 values base, base+1, ...; each tensor gets a
// distinct base so that a misplaced tensor is noticed.
func (w *writer) floats(n int, base float32) {
	for i := 0; i < n; i++ {
		binary.Write(w, binary.LittleEndian, base+float32(i))
	}
}

// small is a config with grouped-query attention.
var small = Header{Dim: 8, Hidden: 12, Layers: 2, Heads: 4, KVHeads: 2, Vocab: 10, SeqLen: 6}

// tensorBase gives each (kind, layer) a distinct first value.
func tensorBase(kind, layer int) float32 { return float32(kind*10000 + layer*1000) }

// Tensor kinds in run.c order.
const (
	kEmb = iota
	kAttnNorm
	kWq
	kWk
	kWv
	kWo
	kFFNNorm
	kW1
	kW2
	kW3
	kNorm
	kCls
)

func sizes(h Header) map[int]int {
	kv := h.Dim * h.KVHeads / h.Heads
	return map[int]int{
		kEmb: h.Vocab * h.Dim, kAttnNorm: h.Dim, kWq: h.Dim * h.Dim, kWk: h.Dim * kv, kWv: h.Dim * kv,
		kWo: h.Dim * h.Dim, kFFNNorm: h.Dim, kW1: h.Dim * h.Hidden, kW2: h.Dim * h.Hidden, kW3: h.Dim * h.Hidden,
		kNorm: h.Dim, kCls: h.Vocab * h.Dim,
	}
}

// buildV0 writes a legacy checkpoint following run.c's memory_map_weights.
func buildV0(h Header) []byte {
	w := &writer{}
	vocab := int32(h.Vocab)
	if !h.Shared {
		vocab = -vocab
	}
	w.i32(int32(h.Dim), int32(h.Hidden), int32(h.Layers), int32(h.Heads), int32(h.KVHeads), vocab, int32(h.SeqLen))
	s := sizes(h)
	w.floats(s[kEmb], tensorBase(kEmb, 0))
	for _, k := range []int{kAttnNorm, kWq, kWk, kWv, kWo, kFFNNorm, kW1, kW2, kW3} {
		for l := 0; l < h.Layers; l++ {
			w.floats(s[k], tensorBase(k, l))
		}
	}
	w.floats(s[kNorm], tensorBase(kNorm, 0))
	w.floats(h.SeqLen*(h.Dim/h.Heads), -1) // freq_cis_real and _imag
	if !h.Shared {
		w.floats(s[kCls], tensorBase(kCls, 0))
	}
	return w.Bytes()
}

// buildV1 writes a version-1 checkpoint following llama2.c export.py's
// version1_export: norms first, then the embedding, then the matrices.
func buildV1(h Header) []byte {
	w := &writer{}
	w.i32(int32(MagicV1), 1, int32(h.Dim), int32(h.Hidden), int32(h.Layers), int32(h.Heads), int32(h.KVHeads), int32(h.Vocab), int32(h.SeqLen))
	if h.Shared {
		w.WriteByte(1)
	} else {
		w.WriteByte(0)
	}
	w.Write(make([]byte, HeaderSizeV1-w.Len()))
	s := sizes(h)
	for _, k := range []int{kAttnNorm, kFFNNorm} {
		for l := 0; l < h.Layers; l++ {
			w.floats(s[k], tensorBase(k, l))
		}
	}
	w.floats(s[kNorm], tensorBase(kNorm, 0))
	w.floats(s[kEmb], tensorBase(kEmb, 0))
	for _, k := range []int{kWq, kWk, kWv, kWo, kW1, kW2, kW3} {
		for l := 0; l < h.Layers; l++ {
			w.floats(s[k], tensorBase(k, l))
		}
	}
	if !h.Shared {
		w.floats(s[kCls], tensorBase(kCls, 0))
	}
	return w.Bytes()
}

func first(t *tensor.Tensor) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(t.Data)) }

func TestParseCheckpoint(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version int
		shared  bool
	}{{"v0 tied", 0, true}, {"v0 untied", 0, false}, {"v1 tied", 1, true}, {"v1 untied", 1, false}} {
		t.Run(tc.name, func(t *testing.T) {
			h := small
			h.Shared = tc.shared
			data := buildV0(h)
			if tc.version == 1 {
				data = buildV1(h)
			}
			c, err := ParseCheckpoint(data)
			if err != nil {
				t.Fatal(err)
			}
			want := h
			want.Version = tc.version
			if c.Header != want {
				t.Errorf("header %+v, want %+v", c.Header, want)
			}
			kv := h.KVDim()
			check := func(tt *tensor.Tensor, kind, layer int, dims ...int) {
				t.Helper()
				if err := tt.Check(); err != nil {
					t.Error(err)
					return
				}
				if !tt.ShapeIs(dims...) || tt.Type != tensor.F32 {
					t.Errorf("%s: %s %v, want F32 %v", tt.Name, tt.Type, tt.Dims, dims)
				}
				if got, want := first(tt), tensorBase(kind, layer); got != want {
					t.Errorf("%s starts with %v, want %v (tensor misplaced)", tt.Name, got, want)
				}
			}
			check(c.TokenEmbd, kEmb, 0, h.Dim, h.Vocab)
			for l := 0; l < h.Layers; l++ {
				check(c.AttnNorm[l], kAttnNorm, l, h.Dim)
				check(c.Wq[l], kWq, l, h.Dim, h.Dim)
				check(c.Wk[l], kWk, l, h.Dim, kv)
				check(c.Wv[l], kWv, l, h.Dim, kv)
				check(c.Wo[l], kWo, l, h.Dim, h.Dim)
				check(c.FFNNorm[l], kFFNNorm, l, h.Dim)
				check(c.W1[l], kW1, l, h.Dim, h.Hidden)
				check(c.W2[l], kW2, l, h.Hidden, h.Dim)
				check(c.W3[l], kW3, l, h.Dim, h.Hidden)
			}
			check(c.Norm, kNorm, 0, h.Dim)
			if tc.shared {
				if c.Wcls != c.TokenEmbd {
					t.Error("tied classifier is not the embedding")
				}
			} else {
				check(c.Wcls, kCls, 0, h.Dim, h.Vocab)
			}
			if c.Wq[1].Name != "blk.1.attn_q.weight" {
				t.Errorf("name %q", c.Wq[1].Name)
			}
			// Weights alias the input, not a copy.
			if &c.Norm.Data[0] != &data[len(data)-len(c.Norm.Data)-tailAfterNorm(h, tc.version)] {
				t.Error("norm weights do not alias the input bytes")
			}
		})
	}
}

// tailAfterNorm is how many bytes follow the final norm in each layout.
func tailAfterNorm(h Header, version int) int {
	s := sizes(h)
	n := 0
	if version == 0 {
		n = 4 * h.SeqLen * (h.Dim / h.Heads)
	} else {
		n = 4 * s[kEmb]
		for _, k := range []int{kWq, kWk, kWv, kWo, kW1, kW2, kW3} {
			n += 4 * s[k] * h.Layers
		}
	}
	if !h.Shared {
		n += 4 * s[kCls]
	}
	return n
}

func TestParseCheckpointErrors(t *testing.T) {
	good := buildV0(small)
	goodV1 := buildV1(small)
	patch := func(data []byte, off int, v int32) []byte {
		d := append([]byte(nil), data...)
		binary.LittleEndian.PutUint32(d[off:], uint32(v))
		return d
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "truncated: header needs 28 bytes, file has 0"},
		{"short header", good[:20], "truncated: header"},
		{"truncated weights", good[:1000], "truncated: weights need"},
		{"one byte short", good[:len(good)-1], "truncated: weights need"},
		{"extra bytes", append(append([]byte(nil), good...), 0, 0, 0, 0), "4 unexpected bytes"},
		{"zero dim", patch(good, 0, 0), "dim = 0"},
		{"negative hidden", patch(good, 4, -5), "hidden_dim = -5"},
		{"huge layers", patch(good, 8, 1<<30), "n_layers = 1073741824"},
		{"heads do not divide dim", patch(good, 12, 3), "not a multiple of n_heads"},
		{"kv heads do not divide heads", patch(good, 16, 3), "not a multiple of n_kv_heads"},
		{"kv heads above heads", patch(good, 16, 8), "n_kv_heads"},
		{"huge vocab", patch(good, 20, math.MinInt32), "vocab_size"},
		{"lying vocab", patch(good, 20, -11), "weights need"},
		{"vocab sign flipped", patch(good, 20, 10), "unexpected bytes"},
		{"lying seq len", patch(good, 24, 7), "weights need"},
		{"v1 short header", goodV1[:100], "version 1 header needs 256"},
		{"v1 version 2", patch(goodV1, 4, 2), "version 2"},
		{"v1 version 7", patch(goodV1, 4, 7), "version 7"},
		{"v1 bad flag", func() []byte { d := append([]byte(nil), goodV1...); d[36] = 5; return d }(), "shared_classifier flag is 5"},
		{"v1 truncated", goodV1[:len(goodV1)-4], "truncated: weights need"},
		{"v1 huge dims", patch(patch(goodV1, 8, 1<<16), 12, 1<<18), "truncated: weights need"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCheckpoint(tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %v, want one line mentioning %q", err, tc.want)
			}
		})
	}
}

// TestStoriesV1 converts the legacy stories260K.bin into the version-1
// layout and checks that both parse to the same tensors.
func TestStoriesV1(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testutil.Shared(t, "models"), "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	v0, err := ParseCheckpoint(data)
	if err != nil {
		t.Fatal(err)
	}
	want := Header{Version: 0, Dim: 64, Hidden: 172, Layers: 5, Heads: 8, KVHeads: 4, Vocab: 512, SeqLen: 512, Shared: true}
	if v0.Header != want {
		t.Fatalf("header %+v, want %+v", v0.Header, want)
	}
	w := &writer{}
	h := v0.Header
	w.i32(int32(MagicV1), 1, int32(h.Dim), int32(h.Hidden), int32(h.Layers), int32(h.Heads), int32(h.KVHeads), int32(h.Vocab), int32(h.SeqLen))
	w.WriteByte(1)
	w.Write(make([]byte, HeaderSizeV1-w.Len()))
	var order []*tensor.Tensor
	order = append(order, v0.AttnNorm...)
	order = append(order, v0.FFNNorm...)
	order = append(order, v0.Norm, v0.TokenEmbd)
	for _, ts := range [][]*tensor.Tensor{v0.Wq, v0.Wk, v0.Wv, v0.Wo, v0.W1, v0.W2, v0.W3} {
		order = append(order, ts...)
	}
	for _, tt := range order {
		w.Write(tt.Data)
	}
	v1, err := ParseCheckpoint(w.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	all := func(c *Checkpoint) []*tensor.Tensor {
		ts := []*tensor.Tensor{c.TokenEmbd, c.Norm, c.Wcls}
		for _, l := range [][]*tensor.Tensor{c.AttnNorm, c.Wq, c.Wk, c.Wv, c.Wo, c.FFNNorm, c.W1, c.W2, c.W3} {
			ts = append(ts, l...)
		}
		return ts
	}
	a, b := all(v0), all(v1)
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Data, b[i].Data) || !a[i].ShapeIs(b[i].Dims...) {
			t.Errorf("tensor %s differs between v0 and v1", a[i].Name)
		}
	}
}

func FuzzCheckpoint(f *testing.F) {
	f.Add(buildV0(small))
	h := small
	h.Shared = true
	f.Add(buildV0(h))
	f.Add(buildV1(small))
	f.Add(buildV1(h))
	f.Add(buildV0(small)[:40])
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCheckpoint(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error %q", err)
			}
			return
		}
		for _, tt := range append([]*tensor.Tensor{c.TokenEmbd, c.Norm, c.Wcls}, c.Wq...) {
			if err := tt.Check(); err != nil {
				t.Fatalf("accepted checkpoint has a bad tensor: %v", err)
			}
		}
	})
}
