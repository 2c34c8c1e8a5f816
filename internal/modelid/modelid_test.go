package modelid

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/tensor"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// sharedModels returns ../shared/models relative to the repository root, or
// skips the test.
func sharedModels(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dir := filepath.Join(root, "..", "shared", "models")
	if _, err := os.Stat(filepath.Join(dir, "stories260K.bin")); err != nil {
		t.Skipf("shared models not available at %s: %v", dir, err)
	}
	return dir
}

func load(t testing.TB, name, tok string) *model.Model {
	t.Helper()
	dir := sharedModels(t)
	tp := ""
	if tok != "" {
		tp = filepath.Join(dir, tok)
	}
	m, err := model.Load(filepath.Join(dir, name), tp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func id(t testing.TB, m *model.Model) *Commitment {
	t.Helper()
	c, err := Compute(m)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSameModelSameID(t *testing.T) {
	bin := id(t, load(t, "stories260K.bin", "tok512.bin"))
	gg := id(t, load(t, "stories260K.gguf", ""))
	if bin.Root != gg.Root {
		t.Errorf("stories260K.bin+tok512.bin id %s != stories260K.gguf id %s", bin.Root, gg.Root)
		t.Logf("bin manifest:\n%s\ngguf manifest:\n%s", bin.Manifest, gg.Manifest)
	}
	seen := map[merkle.Hash]string{bin.Root: "F32"}
	for _, f := range []string{"stories260K-F16.gguf", "stories260K-Q8_0.gguf", "stories260K-Q4_0.gguf"} {
		c := id(t, load(t, f, ""))
		if prev, dup := seen[c.Root]; dup {
			t.Errorf("%s has the same id as %s", f, prev)
		}
		seen[c.Root] = f
	}
	path := filepath.Join("testdata", "stories260K.manifest")
	if *update {
		if err := os.WriteFile(path, bin.Manifest, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "stories260K.id"), []byte(bin.Root.String()+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, bin.Manifest) {
		t.Errorf("manifest differs from %s (run with -update if the format changed on purpose):\n%s", path, bin.Manifest)
	}
	wantID, _ := os.ReadFile(filepath.Join("testdata", "stories260K.id"))
	if strings.TrimSpace(string(wantID)) != bin.Root.String() {
		t.Errorf("id %s, golden %s", bin.Root, wantID)
	}
}

// TestDerivedTokenTypes checks the types derived for tok512.bin (which has
// none) against those llama.cpp's converter wrote into the GGUF, and the
// canonical pieces against the GGUF's.
func TestDerivedTokenTypes(t *testing.T) {
	a := load(t, "stories260K.bin", "tok512.bin").Vocab
	b := load(t, "stories260K.gguf", "").Vocab
	if a.Types != nil {
		t.Log("tok512.bin loader now supplies types; checking them anyway")
	}
	ta, ya := CanonicalTokens(a)
	tb, yb := CanonicalTokens(b)
	for i := range tb {
		if ta[i] != tb[i] || ya[i] != yb[i] || ya[i] != b.Types[i] {
			t.Errorf("token %d: llama2c canonical %q type %d, GGUF %q type %d", i, ta[i], ya[i], tb[i], b.Types[i])
		}
	}
}

func TestAnyChangeChangesID(t *testing.T) {
	base := id(t, load(t, "stories260K.gguf", "")).Root
	cases := []struct {
		name string
		f    func(m *model.Model)
	}{
		{"weight one ulp", func(m *model.Model) {
			d := append([]byte(nil), m.Layers[3].Wv.Data...)
			d[100]++ // low byte of a little-endian float32: one ulp
			m.Layers[3].Wv = &tensor.Tensor{Name: m.Layers[3].Wv.Name, Type: m.Layers[3].Wv.Type, Dims: m.Layers[3].Wv.Dims, Data: d}
		}},
		{"untied output", func(m *model.Model) {
			d := append([]byte(nil), m.Output.Data...)
			d[len(d)-1] ^= 1
			m.Output = &tensor.Tensor{Name: "output.weight", Type: m.Output.Type, Dims: m.Output.Dims, Data: d}
		}},
		{"rope theta", func(m *model.Model) { m.Config.RopeTheta = 10001 }},
		{"norm eps", func(m *model.Model) { m.Config.NormEps = 1e-6 }},
		{"token score", func(m *model.Model) {
			v := *m.Vocab
			v.Scores = append([]float32(nil), v.Scores...)
			v.Scores[300] += 1
			m.Vocab = &v
		}},
		{"token piece", func(m *model.Model) {
			v := *m.Vocab
			v.Tokens = append([]string(nil), v.Tokens...)
			v.Tokens[300] += "x"
			m.Vocab = &v
		}},
		{"eos", func(m *model.Model) {
			v := *m.Vocab
			v.EOS = 5
			m.Vocab = &v
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := load(t, "stories260K.gguf", "")
			c.f(m)
			if got := id(t, m).Root; got == base {
				t.Fatal("id did not change")
			}
		})
	}
	// Context length is not committed.
	m := load(t, "stories260K.gguf", "")
	m.Config.ContextLen = 4096
	if id(t, m).Root != base {
		t.Fatal("context length changed the id")
	}
}

func TestSliceProof(t *testing.T) {
	m := load(t, "stories260K.gguf", "")
	c := id(t, m)
	for _, tc := range []struct {
		name string
		off  int64
	}{{"token_embd.weight", 0}, {"token_embd.weight", 131071}, {"blk.4.ffn_up.weight", 1000}, {"output_norm.weight", 3}} {
		p, err := c.ProveSlice(m, tc.name, tc.off)
		if err != nil {
			t.Fatal(err)
		}
		r, start, err := VerifySlice(c.Root, p)
		if err != nil {
			t.Fatalf("%s@%d: %v", tc.name, tc.off, err)
		}
		if r.Name != tc.name || tc.off < start || tc.off >= start+int64(len(p.Chunk)) {
			t.Fatalf("%s@%d: region %s start %d len %d", tc.name, tc.off, r.Name, start, len(p.Chunk))
		}
		bad := *p
		bad.Chunk = append([]byte(nil), p.Chunk...)
		bad.Chunk[0] ^= 1
		if _, _, err := VerifySlice(c.Root, &bad); !errors.Is(err, merkle.ErrProof) {
			t.Fatalf("tampered chunk: %v", err)
		}
		bad = *p
		bad.Tensor = "blk.0.attn_q.weight"
		if _, _, err := VerifySlice(c.Root, &bad); err == nil {
			t.Fatal("proof accepted for another tensor")
		}
	}
	if _, err := c.ProveSlice(m, "nope", 0); err == nil {
		t.Fatal("unknown tensor accepted")
	}
	if _, err := c.ProveSlice(m, "output_norm.weight", 256); err == nil {
		t.Fatal("offset past the end accepted")
	}
}

func TestParseManifestRejects(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("testdata", "stories260K.manifest"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseManifest(good); err != nil {
		t.Fatal(err)
	}
	s := string(good)
	cases := []struct{ name, data, want string }{
		{"empty", "", ""},
		{"no newline", strings.TrimSuffix(s, "\n"), ""},
		{"magic", strings.Replace(s, "verdict-model-id/1", "verdict-model-id/2", 1), ""},
		{"missing line", strings.Replace(s, "hidden 172\n", "", 1), ""},
		{"leading zero", strings.Replace(s, "dim 64", "dim 064", 1), ""},
		{"negative", strings.Replace(s, "dim 64", "dim -64", 1), ""},
		{"bad float", strings.Replace(s, "rope_theta 0x461c4000", "rope_theta 10000", 1), ""},
		{"upper float", strings.Replace(s, "rope_theta 0x461c4000", "rope_theta 0x461C4000", 1), ""},
		{"chunk", strings.Replace(s, "chunk 65536", "chunk 1", 1), ""},
		{"type", strings.Replace(s, "token_embd.weight F32", "token_embd.weight F64", 1), ""},
		{"size", strings.Replace(s, "64,512 131072", "64,512 131076", 1), ""},
		{"extra", s + "extra\n", ""},
		{"double space", strings.Replace(s, "dim 64", "dim  64", 1), ""},
		{"bos out of range", strings.Replace(s, " 1 2 0\n", " 512 2 0\n", 1), ""},
		{"heads", strings.Replace(s, "heads 8", "heads 7", 1), ""},
		// Each of the next three passes every other check.
		{"shape", strings.Replace(s, "blk.0.ffn_down.weight F32 172,64 44032", "blk.0.ffn_down.weight F32 64,172 44032", 1),
			"manifest: tensor blk.0.ffn_down.weight has shape [64 172], the configuration needs [172 64]"},
		{"norm type", strings.Replace(s, "blk.0.attn_norm.weight F32 64 256", "blk.0.attn_norm.weight F16 64 128", 1),
			"manifest: tensor blk.0.attn_norm.weight is F16; norms, biases and frequency factors are F32"},
		{"rope theta below 1", strings.Replace(s, "rope_theta 0x461c4000", "rope_theta 0x3f000000", 1), "rope theta 0.5 out of range"},
	}
	for _, c := range cases {
		if c.data == s {
			t.Fatalf("%s: test bug: no change", c.name)
		}
		if _, err := ParseManifest([]byte(c.data)); err == nil {
			t.Errorf("%s: accepted", c.name)
		} else if !strings.HasPrefix(err.Error(), "manifest: ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %q is not one line starting with manifest:", c.name, err)
		} else if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q, want it to say %q", c.name, err, c.want)
		}
	}
}

func FuzzParseManifest(f *testing.F) {
	if good, err := os.ReadFile(filepath.Join("testdata", "stories260K.manifest")); err == nil {
		f.Add(good)
	}
	f.Add([]byte("verdict-model-id/1\n"))
	for _, p := range []string{"tiny-qwen3", "tiny-qwen2", "tiny-llama3"} {
		f.Add(archManifest(f, p).Manifest)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseManifest(b)
		if err != nil {
			return
		}
		if !bytes.Equal(l.Manifest(), b) {
			t.Fatal("accepted a non-canonical manifest")
		}
	})
}

func BenchmarkCompute(b *testing.B) {
	m := load(b, "stories260K.gguf", "")
	b.SetBytes(1185376)
	for b.Loop() {
		if _, err := Compute(m); err != nil {
			b.Fatal(err)
		}
	}
}

// TestVocabularyWithoutBOS: a vocabulary may lack BOS and EOS (a GPT-2
// style one without them, as it may lack UNK). The manifest wrote such an
// id as -1, which its own parser refused, so that the model had no id
// ("own manifest does not parse"); it writes none now, parses back, and
// the id differs from the one with the tokens.
func TestVocabularyWithoutBOS(t *testing.T) {
	m := load(t, "stories260K.gguf", "")
	with := id(t, m)
	bos, eos := m.Vocab.BOS, m.Vocab.EOS
	defer func() { m.Vocab.BOS, m.Vocab.EOS = bos, eos }()
	m.Vocab.BOS, m.Vocab.EOS = -1, -1
	c := id(t, m)
	l, err := ParseManifest(c.Manifest)
	if err != nil {
		t.Fatalf("manifest of a vocabulary without BOS and EOS: %v", err)
	}
	if l.BOS != -1 || l.EOS != -1 || !bytes.Contains(c.Manifest, []byte(" none none ")) {
		t.Fatalf("BOS %d, EOS %d parsed from %q", l.BOS, l.EOS, c.Manifest)
	}
	if c.Root == with.Root {
		t.Fatal("the id without BOS and EOS is the id with them")
	}
}
