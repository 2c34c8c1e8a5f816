package synth

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"github.com/verdictnet/verdict/internal/testutil"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/gguf"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/tensor"
)

func vocabPath(t testing.TB) string {
	return filepath.Join(testutil.Shared(t, "models"), "ggml-vocab-llama-spm.gguf")
}

func generate(t *testing.T, preset string, seed uint64, typ tensor.Type) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Generate(preset, vocabPath(t), seed, typ, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestGenerateTiny(t *testing.T) {
	vf, err := gguf.Open(vocabPath(t))
	if err != nil {
		t.Fatal(err)
	}
	defer vf.Close()
	for _, typ := range []tensor.Type{tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q4_0} {
		t.Run(typ.String(), func(t *testing.T) {
			data := generate(t, "tiny", 1, typ)
			f, err := gguf.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			m, err := model.FromGGUF(f, true)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
			c := m.Config
			if c.Dim != 64 || c.Hidden != 172 || c.Layers != 2 || c.Heads != 4 || c.KVHeads != 2 || c.Vocab != 32000 || c.ContextLen != 256 {
				t.Errorf("config %+v", c)
			}
			if m.Output != m.TokenEmbd {
				t.Error("classifier is not tied")
			}
			if m.Layers[1].Wq.Type != typ || m.TokenEmbd.Type != typ || m.Layers[0].AttnNorm.Type != tensor.F32 {
				t.Errorf("types: wq %s, embedding %s, norm %s", m.Layers[1].Wq.Type, m.TokenEmbd.Type, m.Layers[0].AttnNorm.Type)
			}
			// ffn_down rows (172) are not whole Q8_0/Q4_0 blocks: kept F32.
			wantDown := typ
			if typ.BlockSize() > 1 {
				wantDown = tensor.F32
			}
			if m.Layers[0].FFNDown.Type != wantDown {
				t.Errorf("ffn_down is %s, want %s", m.Layers[0].FFNDown.Type, wantDown)
			}
			if rd, _ := f.Int("llama.rope.dimension_count"); rd != 16 {
				t.Errorf("rope dimension count %d, want 16", rd)
			}
			// Every tokenizer key of the vocabulary file is copied, in order.
			var want, got []gguf.KV
			for _, kv := range vf.KV {
				if strings.HasPrefix(kv.Key, "tokenizer.") {
					want = append(want, kv)
				}
			}
			for _, kv := range f.KV {
				if strings.HasPrefix(kv.Key, "tokenizer.") {
					got = append(got, kv)
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("tokenizer metadata differs: %d keys, want %d", len(got), len(want))
			}
		})
	}
}

func TestGenerateDeterministic(t *testing.T) {
	a := generate(t, "tiny", 5, tensor.Q4_0)
	b := generate(t, "tiny", 5, tensor.Q4_0)
	c := generate(t, "tiny", 6, tensor.Q4_0)
	if !bytes.Equal(a, b) {
		t.Error("the same seed gave different files")
	}
	if len(a) != len(c) || bytes.Equal(a, c) {
		t.Error("different seeds gave the same weights (or different sizes)")
	}
}

// TestGenerateGolden pins the output of every preset and type by its
// SHA-256, so that a change of the generator (which would silently change
// every benchmark model) is noticed. Run with -update to rewrite.
func TestGenerateGolden(t *testing.T) {
	golden := filepath.Join("testdata", "digests.txt")
	var lines []string
	cases := []struct {
		preset string
		typ    tensor.Type
	}{{"tiny", tensor.F32}, {"tiny", tensor.F16}, {"tiny", tensor.BF16}, {"tiny", tensor.Q8_0}, {"tiny", tensor.Q4_0}, {"15m", tensor.Q8_0},
		{"tiny", tensor.Q4_1}, {"tiny", tensor.Q5_0}, {"tiny", tensor.Q5_1},
		{"tiny256", tensor.Q4_K}, {"tiny256", tensor.Q5_K}, {"tiny256", tensor.Q6_K}}
	for _, c := range cases {
		data := generate(t, c.preset, 42, c.typ)
		lines = append(lines, fmt.Sprintf("%s %s %d %x", c.preset, c.typ, len(data), sha256.Sum256(data)))
	}
	got := strings.Join(lines, "\n") + "\n"
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run Golden -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("generated files changed:\n got:\n%s want:\n%s", got, want)
	}
}

func TestGenerateErrors(t *testing.T) {
	vocab := vocabPath(t)
	dir := t.TempDir()
	notGGUF := filepath.Join(dir, "tok.bin")
	os.WriteFile(notGGUF, []byte("\x07\x00\x00\x00hello"), 0o644)
	tests := []struct {
		preset, vocab string
		typ           tensor.Type
		want          string
	}{
		{"7b", vocab, tensor.F32, `unknown preset "7b"`},
		{"tiny", vocab, 10, "unsupported weight type"}, // Q2_K
		{"tiny", filepath.Join(dir, "missing.gguf"), tensor.F32, "missing.gguf"},
		{"tiny", notGGUF, tensor.F32, "not a GGUF file"},
	}
	for _, tc := range tests {
		err := Generate(tc.preset, tc.vocab, 1, tc.typ, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Generate(%s, %s, %s) error = %v, want mention of %q", tc.preset, tc.vocab, tc.typ, err, tc.want)
		}
	}
}

// TestStorageType: matrices whose rows do not fit a type's blocks fall back
// as llama.cpp's quantizer does.
func TestStorageType(t *testing.T) {
	for _, c := range []struct {
		typ  tensor.Type
		cols int
		want tensor.Type
	}{
		{tensor.Q4_K, 512, tensor.Q4_K}, {tensor.Q4_K, 288, tensor.Q5_0}, {tensor.Q5_K, 896, tensor.Q5_1},
		{tensor.Q6_K, 576, tensor.Q8_0}, {tensor.Q6_K, 172, tensor.F32}, {tensor.Q4_0, 172, tensor.F32},
		{tensor.Q5_1, 64, tensor.Q5_1}, {tensor.F16, 7, tensor.F16},
	} {
		if got := StorageType(c.typ, c.cols); got != c.want {
			t.Errorf("StorageType(%s, %d) = %s, want %s", c.typ, c.cols, got, c.want)
		}
	}
}

// TestGenerateKTypes: every matrix of tiny256 is stored in the K type asked
// for, and the model passes its checks.
func TestGenerateKTypes(t *testing.T) {
	for _, typ := range []tensor.Type{tensor.Q4_K, tensor.Q5_K, tensor.Q6_K} {
		f, err := gguf.Parse(generate(t, "tiny256", 1, typ))
		if err != nil {
			t.Fatal(err)
		}
		m, err := model.FromGGUF(f, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
		for _, tt := range m.Tensors() {
			if len(tt.Dims) == 2 && tt.Type != typ {
				t.Errorf("%s: %s is %s", typ, tt.Name, tt.Type)
			}
		}
	}
}

func TestUniform(t *testing.T) {
	const n = 100000
	var sum, sq float64
	lo, hi := float32(1), float32(-1)
	for i := uint64(0); i < n; i++ {
		u := Uniform(3, "w", i)
		if u < -1 || u >= 1 {
			t.Fatalf("Uniform = %v outside [-1, 1)", u)
		}
		lo, hi = min(lo, u), max(hi, u)
		sum += float64(u)
		sq += float64(u) * float64(u)
	}
	mean, variance := sum/n, sq/n
	if mean < -0.01 || mean > 0.01 || variance < 0.32 || variance > 0.35 || lo > -0.999 || hi < 0.999 {
		t.Errorf("mean %v, variance %v (want 0, 1/3), range [%v, %v]", mean, variance, lo, hi)
	}
	if Uniform(3, "w", 0) == Uniform(3, "v", 0) && Uniform(3, "w", 1) == Uniform(3, "v", 1) {
		t.Error("tensor names do not separate streams")
	}
}
