package synth

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/verdictnet/verdict/internal/gguf"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/tensor"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

// TestRealPresetShapes checks the presets in real shapes against the
// issue's table (docs: README, "Synthetic models"), and their parameter
// counts against the published sizes of the models they imitate.
func TestRealPresetShapes(t *testing.T) {
	tests := []struct {
		name                                     string
		arch                                     string
		dim, ffn, layers, heads, kv, head, vocab int
		theta                                    float32
		bias, qkNorm, tied, llama3               bool
		minParams, maxParams                     float64 // billions
	}{
		{"smollm2-135m", "llama", 576, 1536, 30, 9, 3, 64, 49152, 1e5, false, false, true, false, 0.13, 0.14},
		{"qwen2.5-0.5b", "qwen2", 896, 4864, 24, 14, 2, 64, 151936, 1e6, true, false, true, false, 0.49, 0.5},
		{"qwen3-0.6b", "qwen3", 1024, 3072, 28, 16, 8, 128, 151936, 1e6, false, true, true, false, 0.59, 0.61},
		{"llama3.2-1b", "llama", 2048, 8192, 16, 32, 8, 64, 128256, 5e5, false, false, true, true, 1.23, 1.24},
		{"qwen3-8b", "qwen3", 4096, 12288, 36, 32, 8, 128, 151936, 1e6, false, true, false, false, 8.1, 8.3},
		{"llama3.1-8b", "llama", 4096, 14336, 32, 32, 8, 128, 128256, 5e5, false, false, false, true, 8.0, 8.1},
		{"mistral-7b", "llama", 4096, 14336, 32, 32, 8, 128, 32768, 1e6, false, false, false, false, 7.2, 7.3},
	}
	for _, tc := range tests {
		p, err := LookupPreset(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		c := p.Config(p.Vocab)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if c.Arch != tc.arch || c.Dim != tc.dim || c.Hidden != tc.ffn || c.Layers != tc.layers || c.Heads != tc.heads ||
			c.KVHeads != tc.kv || c.HeadDim() != tc.head || p.Vocab != tc.vocab || c.RopeTheta != tc.theta ||
			c.QKVBias != tc.bias || c.QKNorm != tc.qkNorm || p.Separate == tc.tied || c.FreqFactors != tc.llama3 {
			t.Errorf("%s: preset %+v, config %+v differ from the table", tc.name, p, c)
		}
		if n := float64(p.Params(p.Vocab)) / 1e9; n < tc.minParams || n > tc.maxParams {
			t.Errorf("%s: %.3fB parameters, want %.2f..%.2fB", tc.name, n, tc.minParams, tc.maxParams)
		}
	}
}

// TestLlama3Factors checks the RoPE frequency factors against values
// computed by hand from the converter's formula for Llama 3.2 1B (base
// 500000, head size 64, factor 32, low 1, high 4, original context 8192):
// wavelengths below 2048 keep factor 1, above 8192 get 32, and the pairs
// in between are interpolated smoothly.
func TestLlama3Factors(t *testing.T) {
	r := Llama3Rope{Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalContext: 8192}
	fs := r.Factors(5e5, 64)
	if len(fs) != 32 {
		t.Fatalf("%d factors", len(fs))
	}
	ones, full, mid := 0, 0, 0
	for j, f := range fs {
		freq := math.Pow(5e5, -float64(2*j)/64)
		wave := 2 * math.Pi / freq
		switch {
		case wave < 2048:
			ones++
			if f != 1 {
				t.Errorf("pair %d (wavelength %.0f): factor %v, want 1", j, wave, f)
			}
		case wave > 8192:
			full++
			if f != 32 {
				t.Errorf("pair %d (wavelength %.0f): factor %v, want 32", j, wave, f)
			}
		default:
			mid++
			s := (8192/wave - 1) / 3
			want := 1 / ((1-s)/32 + s)
			if math.Abs(float64(f)-want) > 1e-6*want || f <= 1 || f >= 32 {
				t.Errorf("pair %d (wavelength %.0f): factor %v, want %v", j, wave, f, want)
			}
		}
		if j > 0 && f < fs[j-1] {
			t.Errorf("factors decrease at pair %d", j)
		}
	}
	if ones == 0 || full == 0 || mid == 0 {
		t.Errorf("%d pairs at 1, %d at 32, %d between: the three cases are not all covered", ones, full, mid)
	}
}

// TestTinyPresets writes the small preset of each architecture and loads it
// back: the loader must see exactly the features the preset asks for.
func TestTinyPresets(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		preset                    string
		arch                      string
		headSize                  int
		bias, qkNorm, freqs, tied bool
	}{
		{"tiny-llama3", "llama", 0, false, false, true, false},
		{"tiny-qwen2", "qwen2", 0, true, false, false, true},
		{"tiny-qwen3", "qwen3", 32, false, true, false, true},
	} {
		for _, typ := range []string{"f32", "q8_0"} {
			path := filepath.Join(dir, tc.preset+"-"+typ+".gguf")
			if err := WriteFile(path, Options{Preset: tc.preset, Seed: 3, Type: typ}); err != nil {
				t.Fatal(err)
			}
			m, err := model.Load(path, "")
			if err != nil {
				t.Fatal(err)
			}
			c := m.Config
			if c.Arch != tc.arch || c.HeadSize != tc.headSize || c.QKVBias != tc.bias || c.QKNorm != tc.qkNorm ||
				c.FreqFactors != tc.freqs || (m.Output == m.TokenEmbd) != tc.tied {
				t.Errorf("%s %s: config %+v, tied %v", tc.preset, typ, c, m.Output == m.TokenEmbd)
			}
			if want := map[string]tensor.Type{"f32": tensor.F32, "q8_0": tensor.Q8_0}[typ]; m.Layers[0].Wq.Type != want {
				t.Errorf("%s %s: wq is %s", tc.preset, typ, m.Layers[0].Wq.Type)
			}
			m.Close()
		}
	}
}

// TestUseMoreBits: the layers llama.cpp's use_more_bits picks for the
// 16-layer Llama 3.2 1B and the 28-layer Qwen3 0.6B.
func TestUseMoreBits(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []int
	}{
		{16, []int{0, 1, 4, 7, 10, 13, 14, 15}},
		{28, []int{0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27}},
		{8, []int{0, 3, 6, 7}},
	} {
		var got []int
		for i := 0; i < tc.n; i++ {
			if useMoreBits(i, tc.n) {
				got = append(got, i)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%d layers: %v, want %v", tc.n, got, tc.want)
		}
	}
}

// TestKMixes writes the _K_M mixes and checks every matrix's type against
// llama.cpp's rule: the tied classifier Q6_K, attn_v and ffn_down Q6_K in
// the use_more_bits layers, everything else the base type; and, where rows
// are not whole super-blocks (the 64-wide tiny-qwen3), llama.cpp's
// fallbacks Q5_0, Q5_1 and Q8_0.
func TestKMixes(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		preset, typ string
		base, big   tensor.Type
		fileType    int // general.file_type: llama.cpp's LLAMA_FTYPE_MOSTLY_Q4_K_M, _Q5_K_M
	}{
		{"tiny256-qwen3", "q4_k_m", tensor.Q4_K, tensor.Q6_K, 15},
		{"tiny256-qwen3", "q5_k_m", tensor.Q5_K, tensor.Q6_K, 17},
		{"tiny-qwen3", "q4_k_m", tensor.Q5_0, tensor.Q8_0, 15},
		{"tiny-qwen3", "q5_k_m", tensor.Q5_1, tensor.Q8_0, 17},
	} {
		path := filepath.Join(dir, tc.preset+tc.typ+".gguf")
		if err := WriteFile(path, Options{Preset: tc.preset, Seed: 1, Type: tc.typ}); err != nil {
			t.Fatal(err)
		}
		m, err := model.Load(path, "")
		if err != nil {
			t.Fatal(err)
		}
		if f, err := gguf.Open(path); err != nil {
			t.Fatal(err)
		} else {
			if ft, _ := f.Int("general.file_type"); ft != tc.fileType {
				t.Errorf("%s %s: general.file_type %d, want %d", tc.preset, tc.typ, ft, tc.fileType)
			}
			f.Close()
		}
		more := map[int]bool{}
		for i := range m.Layers {
			more[i] = useMoreBits(i, len(m.Layers))
		}
		check := func(name string, got tensor.Type, big bool) {
			want := tc.base
			if big {
				want = tc.big
			}
			if got != want {
				t.Errorf("%s %s: %s is %s, want %s", tc.preset, tc.typ, name, got, want)
			}
		}
		check("token_embd (tied classifier)", m.TokenEmbd.Type, true)
		for i, l := range m.Layers {
			check(fmt.Sprintf("blk.%d.attn_q", i), l.Wq.Type, false)
			check(fmt.Sprintf("blk.%d.attn_k", i), l.Wk.Type, false)
			check(fmt.Sprintf("blk.%d.attn_v", i), l.Wv.Type, more[i])
			check(fmt.Sprintf("blk.%d.attn_output", i), l.Wo.Type, false)
			check(fmt.Sprintf("blk.%d.ffn_gate", i), l.FFNGate.Type, false)
			check(fmt.Sprintf("blk.%d.ffn_up", i), l.FFNUp.Type, false)
			check(fmt.Sprintf("blk.%d.ffn_down", i), l.FFNDown.Type, more[i])
			if l.QNorm.Type != tensor.F32 || l.AttnNorm.Type != tensor.F32 {
				t.Errorf("%s %s: norms are not F32", tc.preset, tc.typ)
			}
		}
		m.Close()
	}
}

// TestPaddedVocabulary: a preset whose vocabulary is larger than the
// file's (mistral-7b: 32768 over the 32000 SentencePiece tokens) gets
// "[PAD<i>]" tokens of type UNUSED with score 0, as llama.cpp's converter
// pads, and the model and its tokenizer load.
func TestPaddedVocabulary(t *testing.T) {
	p, err := LookupPreset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	p.Vocab = 32768
	tok, n, err := vocabKVs(vocabPath(t), p.Vocab)
	if err != nil || n != 32768 {
		t.Fatalf("%d tokens, %v", n, err)
	}
	var buf bytes.Buffer
	if err := writeModel(p, 0, tok, n, 1, uniformTypes(tensor.F32), &buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "padded.gguf")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	v := m.Vocab
	if m.Config.Vocab != 32768 || len(v.Tokens) != 32768 || len(v.Scores) != 32768 || len(v.Types) != 32768 {
		t.Fatalf("vocab %d: %d tokens, %d scores, %d types", m.Config.Vocab, len(v.Tokens), len(v.Scores), len(v.Types))
	}
	if v.Tokens[32000] != "[PAD32000]" || v.Types[32767] != tokenizer.Unused || v.Scores[32767] != 0 || v.Tokens[31999] == "[PAD31999]" {
		t.Errorf("padding: %q %v %v, last real %q", v.Tokens[32000], v.Types[32767], v.Scores[32767], v.Tokens[31999])
	}
	tk, err := tokenizer.New(v)
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := tk.Encode("Hello world", true); err != nil || len(ids) < 2 {
		t.Errorf("encode: %v %v", ids, err)
	}
	if _, _, err := vocabKVs(vocabPath(t), 1000); err == nil {
		t.Error("a preset smaller than the vocabulary was accepted")
	}
}
