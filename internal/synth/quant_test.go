package synth

import (
	"bytes"
	"encoding/binary"
	"github.com/verdictnet/verdict/internal/testutil"
	"math"
	"path/filepath"
	"testing"

	"github.com/verdictnet/verdict/internal/gguf"
	"github.com/verdictnet/verdict/internal/kernels"
	"github.com/verdictnet/verdict/internal/tensor"
)

func openGGUF(t *testing.T, path string) *gguf.File {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func f32s(b []byte) []float32 {
	x := make([]float32, len(b)/4)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return x
}

// TestQuantizersMatchLlamaCpp encodes the F32 weights of stories260K.gguf
// and compares the bytes with the F16, Q8_0 and Q4_0 files that llama.cpp's
// quantizer made from the same weights (an independent oracle).
func TestQuantizersMatchLlamaCpp(t *testing.T) {
	dir := testutil.Shared(t, "models")
	src := openGGUF(t, filepath.Join(dir, "stories260K.gguf"))
	for _, name := range []string{"stories260K-F16.gguf", "stories260K-Q8_0.gguf", "stories260K-Q4_0.gguf"} {
		t.Run(name, func(t *testing.T) {
			dst := openGGUF(t, filepath.Join(dir, name))
			compared := map[tensor.Type]int{}
			for _, ti := range dst.Tensors {
				want, err := dst.Tensor(ti.Name)
				if err != nil {
					t.Fatal(err)
				}
				if want.Type == tensor.F32 {
					continue
				}
				in, err := src.Tensor(ti.Name)
				if err != nil {
					t.Fatal(err)
				}
				x := f32s(in.Data)
				var got []byte
				for r := 0; r < in.Rows(); r++ {
					if got, err = AppendRow(got, want.Type, x[r*in.Cols():(r+1)*in.Cols()]); err != nil {
						t.Fatal(err)
					}
				}
				if !bytes.Equal(got, want.Data) {
					n := 0
					for got[n] == want.Data[n] {
						n++
					}
					t.Errorf("%s as %s differs from llama.cpp's at byte %d of %d", ti.Name, want.Type, n, len(got))
				}
				compared[want.Type]++
			}
			if len(compared) == 0 {
				t.Error("no tensor compared")
			}
			t.Logf("tensors compared per type: %v", compared)
		})
	}
}

// TestQuantizeError checks, with the engine's dequantiser, that every
// quantised value lies within half a step of the input.
func TestQuantizeError(t *testing.T) {
	x := make([]float32, 4*32)
	for i := range x {
		x[i] = Uniform(7, "q", uint64(i)) * 3
	}
	x[5] = 0 // exact zero stays representable
	for i := 64; i < 96; i++ {
		x[i] = 0 // an all-zero block
	}
	for _, c := range []struct {
		t   tensor.Type
		tol float32 // relative to the block's max magnitude
	}{{tensor.F16, 1.0 / 2048}, {tensor.BF16, 1.0 / 256}, {tensor.Q8_0, 0.5/127 + 1e-3}, {tensor.Q4_0, 1.0/8 + 1e-3}} {
		b, err := AppendRow(nil, c.t, x)
		if err != nil {
			t.Fatal(err)
		}
		w := &tensor.Tensor{Name: "q", Type: c.t, Dims: []int{len(x), 1}, Data: b}
		if err := w.Check(); err != nil {
			t.Fatal(err)
		}
		out := make([]float32, len(x))
		kernels.DequantRow(w, 0, out)
		for blk := 0; blk < len(x); blk += 32 {
			var amax float32
			for _, v := range x[blk : blk+32] {
				amax = max(amax, abs32(v))
			}
			for i := blk; i < blk+32; i++ {
				if d := abs32(out[i] - x[i]); d > c.tol*amax {
					t.Errorf("%s: element %d: %v -> %v (error %v > %v)", c.t, i, x[i], out[i], d, c.tol*amax)
				}
			}
		}
	}
	if _, err := AppendRow(nil, tensor.Q8_0, x[:33]); err == nil {
		t.Error("a 33-element Q8_0 row was accepted")
	}
	if _, err := AppendRow(nil, 99, x); err == nil {
		t.Error("type 99 was accepted")
	}
}

// TestQuantizersRoundTrip encodes random rows in every type without a
// llama.cpp oracle file and dequantises them (kernels.DequantRow, itself
// checked against GGML's definition): the relative RMS error stays within
// what the type's bits allow (a misplaced element would give about 1.4),
// and every block is valid (decodes to finite values).
func TestQuantizersRoundTrip(t *testing.T) {
	limits := map[tensor.Type]float64{
		tensor.Q4_1: 0.09, tensor.Q5_0: 0.056, tensor.Q5_1: 0.045,
		tensor.Q4_K: 0.09, tensor.Q5_K: 0.045, tensor.Q6_K: 0.023,
	}
	for _, typ := range []tensor.Type{tensor.Q4_1, tensor.Q5_0, tensor.Q5_1, tensor.Q4_K, tensor.Q5_K, tensor.Q6_K} {
		const cols, rows = 1024, 16
		x := make([]float32, cols*rows)
		for i := range x {
			x[i] = Uniform(7, typ.String(), uint64(i)) * 0.05
			if i%97 == 0 {
				x[i] *= 4 // outliers
			}
		}
		var data []byte
		for r := 0; r < rows; r++ {
			var err error
			if data, err = AppendRow(data, typ, x[r*cols:(r+1)*cols]); err != nil {
				t.Fatal(err)
			}
		}
		w := &tensor.Tensor{Name: "w", Type: typ, Dims: []int{cols, rows}, Data: data}
		if err := w.Check(); err != nil {
			t.Fatal(err)
		}
		out := make([]float32, cols)
		var se, sx float64
		for r := 0; r < rows; r++ {
			kernels.DequantRow(w, r, out)
			for j, v := range out {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("%s: row %d element %d decodes to %g", typ, r, j, v)
				}
				e := float64(v) - float64(x[r*cols+j])
				se += e * e
				sx += float64(x[r*cols+j]) * float64(x[r*cols+j])
			}
		}
		rel := math.Sqrt(se / sx)
		t.Logf("%s: relative RMS error %.4f", typ, rel)
		if rel > limits[typ] {
			t.Errorf("%s: relative RMS error %.4f > %.4f", typ, rel, limits[typ])
		}
	}
}

// TestQuantizersZeroRow: an all-zero row encodes to zeros.
func TestQuantizersZeroRow(t *testing.T) {
	for _, typ := range []tensor.Type{tensor.Q4_1, tensor.Q5_0, tensor.Q5_1, tensor.Q4_K, tensor.Q5_K, tensor.Q6_K} {
		data, err := AppendRow(nil, typ, make([]float32, 256))
		if err != nil {
			t.Fatal(err)
		}
		out := make([]float32, 256)
		kernels.DequantRow(&tensor.Tensor{Type: typ, Dims: []int{256, 1}, Data: data}, 0, out)
		for j, v := range out {
			if v != 0 {
				t.Fatalf("%s: element %d = %g", typ, j, v)
			}
		}
	}
}
