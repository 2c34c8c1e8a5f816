package synth

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/tensor"
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
