package modelid

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/synth"
)

// archManifest writes the small synthetic model of a preset (built-in
// vocabulary) and returns its model id commitment.
func archManifest(tb testing.TB, preset string) *Commitment {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), preset+".gguf")
	if err := synth.WriteFile(path, synth.Options{Preset: preset, Seed: 1, Type: "q8_0"}); err != nil {
		tb.Fatal(err)
	}
	m, err := model.Load(path, "")
	if err != nil {
		tb.Fatal(err)
	}
	defer m.Close()
	c, err := Compute(m)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// TestManifestNewArchitectures: the manifest of a model with the new
// parts names them (head_dim, features, their tensors in the canonical
// order), parses back to the same layout, and is strict about them.
func TestManifestNewArchitectures(t *testing.T) {
	for _, tc := range []struct {
		preset string
		want   []string
	}{
		{"tiny-qwen3", []string{"arch qwen3\n", "norm_eps 0x358637bd\nhead_dim 32\nfeatures qk_norm\noutput tied\n",
			"tensor blk.0.attn_v.weight Q8_0 64,64 4352\ntensor blk.0.attn_q_norm.weight F32 32 128\ntensor blk.0.attn_k_norm.weight F32 32 128\ntensor blk.0.attn_output.weight Q8_0 128,64 8704\n"}},
		{"tiny-qwen2", []string{"arch qwen2\n", "features qkv_bias\noutput tied\n",
			"tensor blk.1.attn_v.weight Q8_0 64,32 2176\ntensor blk.1.attn_q.bias F32 64 256\ntensor blk.1.attn_k.bias F32 32 128\ntensor blk.1.attn_v.bias F32 32 128\n"}},
		{"tiny-llama3", []string{"arch llama\n", "features rope_freqs\noutput separate\n",
			"tensor output_norm.weight F32 64 256\ntensor rope_freqs.weight F32 8 32\ntensor output.weight Q8_0 "}},
	} {
		c := archManifest(t, tc.preset)
		man := string(c.Manifest)
		for _, w := range tc.want {
			if !strings.Contains(man, w) {
				t.Errorf("%s: manifest lacks %q:\n%s", tc.preset, w, man)
			}
		}
		if tc.preset != "tiny-qwen3" && strings.Contains(man, "head_dim") {
			t.Errorf("%s: head_dim line for a head size of dim/heads", tc.preset)
		}
		l, err := ParseManifest(c.Manifest)
		if err != nil {
			t.Fatal(err)
		}
		if l.Config != c.Layout.Config || l.Leaves != c.Layout.Leaves {
			t.Errorf("%s: parsed %+v, computed %+v", tc.preset, l.Config, c.Layout.Config)
		}
	}
	man := string(archManifest(t, "tiny-qwen3").Manifest)
	for _, bad := range []struct{ name, data string }{
		{"unknown feature", strings.Replace(man, "features qk_norm", "features qk_norm sliding", 1)},
		{"feature without its tensors", strings.Replace(man, "features qk_norm", "features qkv_bias qk_norm", 1)},
		{"features out of order", strings.Replace(man, "features qk_norm", "features qk_norm qkv_bias", 1)},
		{"no features line", strings.Replace(man, "features qk_norm\n", "", 1)},
		{"head_dim of dim/heads", strings.Replace(man, "head_dim 32", "head_dim 16", 1)},
		{"head_dim zero", strings.Replace(man, "head_dim 32", "head_dim 0", 1)},
		{"head_dim after features", strings.Replace(man, "head_dim 32\nfeatures qk_norm\n", "features qk_norm\nhead_dim 32\n", 1)},
		{"unknown arch", strings.Replace(man, "arch qwen3", "arch gemma", 1)},
	} {
		if bad.data == man {
			t.Fatalf("%s: test bug: no change", bad.name)
		}
		if _, err := ParseManifest([]byte(bad.data)); err == nil {
			t.Errorf("%s: accepted", bad.name)
		} else if !strings.HasPrefix(err.Error(), "manifest: ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %q", bad.name, err)
		}
	}
	// The Llama-2 manifest is what it was: the pinned stories260K id.
	good, err := os.ReadFile(filepath.Join("testdata", "stories260K.manifest"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(good, []byte("features")) || bytes.Contains(good, []byte("head_dim")) {
		t.Error("the Llama-2 manifest has new lines")
	}
}
