package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/gguf"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/tensor"
)

func sharedModelsDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("..", "..", "..", "shared", "models")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("shared models not available at %s (the ../shared directory next to the repository): %v", dir, err)
	}
	return dir
}

// verdict runs the CLI and returns its exit status, stdout and stderr.
func verdict(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestModelInspect(t *testing.T) {
	dir := sharedModelsDir(t)
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"model", "inspect", filepath.Join(dir, "stories260K.bin"), "--tokenizer", filepath.Join(dir, "tok512.bin")}, []string{
			"format:          llama2.c checkpoint, legacy v0",
			"dim:             64\n", "hidden:          172\n", "layers:          5\n", "heads:           8\n", "kv heads:        4\n",
			"head dim:        8\n", "kv dim:          32\n", "vocab:           512\n", "context length:  512",
			// 512*64 + 5*(2*64 + 2*64*64 + 2*64*32 + 3*64*172) + 64, from the README's shapes.
			"parameters:      260032 ",
			"tied classifier: yes",
			"blk.4.ffn_down.weight        F32   [172, 64]      44032\n",
			"flavor:        llama2c", "tokens:        512", `bos:           1 "\n<s>\n"`,
		}},
		{[]string{"model", "inspect", filepath.Join(dir, "stories260K-Q4_0.gguf")}, []string{
			"format:          GGUF v3", "context length:  128 (llama.context_length)", "tied classifier: no",
			"token_embd.weight            Q4_0  [64, 512]      18432\n", "output.weight                Q8_0  [64, 512]      34816\n",
			"tensor types:    F32 x16, Q4_0 x31, Q8_0 x1", "flavor:        spm", "add bos:       true",
			"bytes by type:   F32 ", "rope:            norm (adjacent pairs)", "q dim:           64\n",
			`general.file_type                        2`,
		}},
		{[]string{"model", "inspect", filepath.Join(dir, "ggml-vocab-llama-spm.gguf")}, []string{
			"no tensors (vocabulary only)", "tokens:        32000", `unk:           0 "<unk>"`,
		}},
	}
	for _, tc := range tests {
		code, out, errs := verdict(tc.args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errs)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: output lacks %q", tc.args[2], w)
			}
		}
	}
	code, _, errs := verdict("model", "inspect", filepath.Join(dir, "tok512.bin"))
	if code != 1 || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "tok512.bin: ") {
		t.Errorf("inspect of a tokenizer file: exit %d, stderr %q", code, errs)
	}
}

func TestModelSynth(t *testing.T) {
	vocab := filepath.Join(sharedModelsDir(t), "ggml-vocab-llama-spm.gguf")
	out := filepath.Join(t.TempDir(), "tiny.gguf")
	args := []string{"model", "synth", "--preset", "tiny", "--vocab", vocab, "--seed", "9", "--out", out, "--type", "q8_0"}
	if code, _, errs := verdict(args...); code != 0 {
		t.Fatalf("synth: exit %d: %s", code, errs)
	}
	first, _ := os.ReadFile(out)
	m, err := model.Load(out, "")
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.Dim != 64 || m.Config.Vocab != 32000 || m.Layers[0].Wq.Type != tensor.Q8_0 {
		t.Errorf("config %+v, wq %s", m.Config, m.Layers[0].Wq.Type)
	}
	m.Close()
	code, _, errs := verdict(args...)
	if code != 1 || !strings.Contains(errs, "refusing to overwrite") || strings.Count(errs, "\n") != 1 {
		t.Errorf("second synth: exit %d, stderr %q", code, errs)
	}
	if code, _, errs := verdict(append(args, "--force")...); code != 0 {
		t.Fatalf("synth --force: exit %d: %s", code, errs)
	}
	again, _ := os.ReadFile(out)
	if !bytes.Equal(first, again) {
		t.Error("the same seed wrote a different file")
	}
	for _, bad := range [][]string{
		{"model", "synth", "--preset", "7b", "--vocab", vocab, "--out", out + "2"},
		{"model", "synth", "--preset", "tiny", "--vocab", vocab, "--out", out + "2", "--type", "q2_k"},
		{"model", "synth", "--preset", "tiny", "--out", out + "2"},
		{"model", "synth", "--preset", "tiny", "--vocab", out + "missing", "--out", out + "2"},
		{"model", "frobnicate"},
		{"model"},
	} {
		code, _, errs := verdict(bad...)
		if code == 0 || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q", bad, code, errs)
		}
	}
	if _, err := os.Stat(out + "2"); err == nil {
		t.Error("a failed synth left its output file")
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".synth-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestModelInspectNewArchitectures inspects synthetic models of each new
// architecture: the architecture's parts, shapes, tensor types with counts
// and bytes, and the chat template copied from the vocabulary.
func TestModelInspectNewArchitectures(t *testing.T) {
	qwenVocab := filepath.Join("..", "..", "..", "shared", "tokenizers", "derived", "ggml-vocab-qwen2.derived-from-qwen3.gguf")
	if _, err := os.Stat(qwenVocab); err != nil {
		t.Skipf("shared vocabularies not available: %v", err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		preset, vocab, typ string
		want               []string
	}{
		{"tiny-qwen3", qwenVocab, "q8_0", []string{
			"architecture:    qwen3", "head dim:        32\n", "q dim:           128\n", "kv dim:          64\n",
			"rope:            neox (halves of each head)", "attention:       Q/K norms", "vocab:           151936",
			"context length:  512 (qwen3.context_length)", "tensor types:    F32 x", "Q8_0 x22",
			"blk.2.attn_q_norm.weight     F32   [32]           128\n", "blk.0.attn_output.weight     Q8_0  [128, 64]",
			"<|im_start|>", "<think>", "pre:           qwen2",
		}},
		{"tiny-qwen2", "builtin", "f16", []string{
			"architecture:    qwen2", "attention:       Q/K/V biases", "blk.1.attn_v.bias            F32   [32]           128\n",
			"none (tokenizer.chat_template absent)",
		}},
		{"tiny-llama3", "builtin", "f32", []string{
			"architecture:    llama", "rope factors:    8 (rope_freqs.weight, 1 .. 8)", "tied classifier: no",
		}},
	} {
		out := filepath.Join(dir, tc.preset+".gguf")
		if code, _, errs := verdict("model", "synth", "--preset", tc.preset, "--vocab", tc.vocab, "--type", tc.typ, "--out", out); code != 0 {
			t.Fatalf("synth %s: %s", tc.preset, errs)
		}
		code, stdout, errs := verdict("model", "inspect", out)
		if code != 0 {
			t.Fatalf("inspect %s: exit %d: %s", tc.preset, code, errs)
		}
		for _, w := range tc.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("%s: output lacks %q", tc.preset, w)
			}
		}
		if t.Failed() {
			t.Log(stdout)
		}
	}
}

// TestProofsCLIQwen3 runs the proof commands on a synthetic qwen3 in
// llama.cpp's Q4_K_M mix over the real Qwen vocabulary: run with a
// receipt, exact replay (verify), openings and their audit.
func TestProofsCLIQwen3(t *testing.T) {
	vocab := filepath.Join("..", "..", "..", "shared", "tokenizers", "derived", "ggml-vocab-qwen2.derived-from-qwen3.gguf")
	if _, err := os.Stat(vocab); err != nil {
		t.Skipf("shared vocabularies not available: %v", err)
	}
	dir := t.TempDir()
	m, key, rc, op := filepath.Join(dir, "q3.gguf"), filepath.Join(dir, "k.key"), filepath.Join(dir, "r.json"), filepath.Join(dir, "o.json")
	for _, args := range [][]string{
		{"model", "synth", "--preset", "tiny-qwen3", "--vocab", vocab, "--type", "q4_k_m", "--seed", "1", "--out", m},
		{"keys", "new", "--out", key},
		{"run", "--model", m, "--prompt", "Hello, world", "--max-tokens", "12", "--temperature", "0.8", "--seed", "3", "--key", key, "--receipt", rc},
		{"verify", "--model", m, rc},
		{"open", "--model", m, "--challenge", "77", "--out", op, rc},
		{"audit", "--model", m, "--challenge", "77", rc, op},
	} {
		code, stdout, stderr := verdict(args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		if args[0] == "verify" && !strings.Contains(stdout+stderr, "12 output tokens replayed exactly") {
			t.Errorf("verify: %s%s", stdout, stderr)
		}
		if args[0] == "audit" && !strings.Contains(stdout+stderr, "16 cells of receipt") {
			t.Errorf("audit: %s%s", stdout, stderr)
		}
	}
}

// TestBadModelFiles: files Verdict cannot compute with are refused by run,
// inspect and model id with one line naming what is unsupported, and a
// non-zero exit status.
func TestBadModelFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "q3.gguf")
	if code, _, errs := verdict("model", "synth", "--preset", "tiny-qwen3", "--vocab", "builtin", "--out", good); code != 0 {
		t.Fatal(errs)
	}
	f, err := gguf.Open(good)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rewrite := func(name string, kv func([]gguf.KV), td func([]gguf.TensorData) []gguf.TensorData) string {
		var editKV func([]gguf.KV) []gguf.KV
		if kv != nil {
			editKV = func(kvs []gguf.KV) []gguf.KV { kv(kvs); return kvs }
		}
		var buf bytes.Buffer
		if err := gguf.Rewrite(&buf, f, editKV, td); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	setKV := func(key string, v gguf.Value) func([]gguf.KV) {
		return func(kvs []gguf.KV) {
			for i := range kvs {
				if kvs[i].Key == key {
					kvs[i].Value = v
				}
			}
		}
	}
	for _, tc := range []struct {
		path, want string
	}{
		{rewrite("arch.gguf", setKV("general.architecture", gguf.String("gemma2")), nil), `architecture "gemma2" is not supported`},
		{rewrite("heads.gguf", setKV("qwen3.attention.head_count_kv", gguf.Uint32(3)), nil), "4 heads and 3 key/value heads do not fit together"},
		{rewrite("missing.gguf", nil, func(ts []gguf.TensorData) []gguf.TensorData {
			var out []gguf.TensorData
			for _, x := range ts {
				if x.Name != "blk.1.attn_q_norm.weight" {
					out = append(out, x)
				}
			}
			return out
		}), "missing tensor blk.1.attn_q_norm.weight"},
		{rewrite("shape.gguf", nil, func(ts []gguf.TensorData) []gguf.TensorData {
			for i := range ts {
				if ts[i].Name == "blk.0.attn_k_norm.weight" {
					ts[i].Dims, ts[i].Data = []int{16}, ts[i].Data[:64]
				}
			}
			return ts
		}), "tensor blk.0.attn_k_norm.weight has shape [16], the configuration needs [32]"},
		{rewrite("type.gguf", nil, func(ts []gguf.TensorData) []gguf.TensorData {
			for i := range ts {
				if ts[i].Name == "blk.0.attn_q.weight" {
					ts[i].Type = 16 // IQ2_XXS
					ts[i].Dims, ts[i].Data = []int{256, 1}, make([]byte, 66)
				}
			}
			return ts
		}), "tensor blk.0.attn_q.weight has type IQ2_XXS (16), which Verdict cannot compute with"},
	} {
		for _, args := range [][]string{
			{"run", "--model", tc.path, "--prompt", "Hello", "--max-tokens", "2"},
			{"model", "inspect", tc.path},
			{"model", "id", tc.path},
		} {
			code, _, errs := verdict(args...)
			if code == 0 || !strings.Contains(errs, tc.want) || strings.Count(errs, "\n") != 1 {
				t.Errorf("%v: exit %d, stderr %q; want one line mentioning %q", args[:2], code, errs, tc.want)
			}
		}
	}
}
