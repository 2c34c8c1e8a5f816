package model

import (
	"bytes"
	"encoding/binary"
	"github.com/verdictnet/verdict/internal/testutil"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/gguf"
	"github.com/verdictnet/verdict/internal/llama2c"
	"github.com/verdictnet/verdict/internal/tensor"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

func load(t *testing.T, path, tok string) *Model {
	t.Helper()
	m, err := Load(path, tok)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// stories260K's documented shape (../shared/models/README.md).
var stories = Config{Arch: "llama", Dim: 64, Hidden: 172, Layers: 5, Heads: 8, KVHeads: 4, Vocab: 512, RopeTheta: 10000, NormEps: 1e-5}

func TestLoadShared(t *testing.T) {
	dir := testutil.Shared(t, "models")
	tests := []struct {
		file, tok  string
		format     string
		ctx        int
		matrixType tensor.Type // of blk.0.attn_q
		outType    tensor.Type
		flavor     tokenizer.Flavor
	}{
		{"stories260K.bin", "tok512.bin", "llama2c", 512, tensor.F32, tensor.F32, tokenizer.Llama2C},
		{"stories260K.bin", "", "llama2c", 512, tensor.F32, tensor.F32, tokenizer.Llama2C},
		{"stories260K.gguf", "", "gguf", 128, tensor.F32, tensor.F32, tokenizer.SPM},
		{"stories260K-F16.gguf", "", "gguf", 128, tensor.F16, tensor.F16, tokenizer.SPM},
		{"stories260K-Q8_0.gguf", "", "gguf", 128, tensor.Q8_0, tensor.Q8_0, tokenizer.SPM},
		{"stories260K-Q4_0.gguf", "", "gguf", 128, tensor.Q4_0, tensor.Q8_0, tokenizer.SPM},
		{"stories260K.gguf", "tok512.bin", "gguf", 128, tensor.F32, tensor.F32, tokenizer.Llama2C},
	}
	for _, tc := range tests {
		t.Run(tc.file+"+"+tc.tok, func(t *testing.T) {
			tok := ""
			if tc.tok != "" {
				tok = filepath.Join(dir, tc.tok)
			}
			m := load(t, filepath.Join(dir, tc.file), tok)
			want := stories
			want.ContextLen = tc.ctx
			if m.Config != want {
				t.Errorf("config %+v, want %+v", m.Config, want)
			}
			if m.Format != tc.format || m.Vocab == nil || m.Vocab.Flavor != tc.flavor || len(m.Vocab.Tokens) != 512 {
				t.Fatalf("format %s, vocab %v", m.Format, m.Vocab != nil)
			}
			if m.Layers[0].Wq.Type != tc.matrixType || m.Output.Type != tc.outType {
				t.Errorf("types: wq %s, output %s", m.Layers[0].Wq.Type, m.Output.Type)
			}
			if tc.matrixType.BlockSize() > 1 && m.Layers[0].FFNDown.Type != tensor.F32 {
				t.Errorf("ffn_down is %s; README says F32", m.Layers[0].FFNDown.Type)
			}
			if m.Layers[4].AttnNorm.Type != tensor.F32 {
				t.Error("norm not F32")
			}
		})
	}
}

// TestBinAndGGUFIdentical checks the README's statement that the GGUF's
// tensor data is byte-identical to the llama2.c checkpoint.
func TestBinAndGGUFIdentical(t *testing.T) {
	dir := testutil.Shared(t, "models")
	a := load(t, filepath.Join(dir, "stories260K.bin"), filepath.Join(dir, "tok512.bin"))
	b := load(t, filepath.Join(dir, "stories260K.gguf"), "")
	if a.Output != a.TokenEmbd || b.Output == b.TokenEmbd {
		t.Error("expected a tied .bin and an untied .gguf (output.weight is a copy)")
	}
	ta, tb := a.Tensors(), b.Tensors()
	ta = append(ta, a.Output) // the .bin's classifier is the embedding
	if len(ta) != len(tb) || len(ta) != 48 {
		t.Fatalf("%d and %d tensors", len(ta), len(tb))
	}
	for i := range ta {
		if ta[i].Name != tb[i].Name && !(ta[i].Name == "token_embd.weight" && tb[i].Name == "output.weight") {
			t.Errorf("tensor %d: %s vs %s", i, ta[i].Name, tb[i].Name)
		}
		if !ta[i].ShapeIs(tb[i].Dims...) || !bytes.Equal(ta[i].Data, tb[i].Data) {
			t.Errorf("tensor %s differs between the .bin and the .gguf", tb[i].Name)
		}
	}
}

func TestLoadTinyRandom(t *testing.T) {
	m := load(t, filepath.Join(testutil.Shared(t, "models"), "llama-2-tiny-random.gguf"), "")
	c := m.Config
	if c.Dim != 8 || c.Hidden != 32 || c.Layers != 1 || c.Heads != 2 || c.Vocab != 32000 || len(m.Vocab.Tokens) != 32000 {
		t.Errorf("config %+v", c)
	}
	if m.TokenEmbd.Type != tensor.F16 || m.Output.Type != tensor.F16 || m.Layers[0].Wq.Type != tensor.F16 {
		t.Error("not F16")
	}
}

func TestLoadVocab(t *testing.T) {
	dir := testutil.Shared(t, "models")
	for _, tc := range []struct {
		file   string
		flavor tokenizer.Flavor
		n      int
		types  bool
	}{{"tok512.bin", tokenizer.Llama2C, 512, false}, {"stories260K.gguf", tokenizer.SPM, 512, true}, {"ggml-vocab-llama-spm.gguf", tokenizer.SPM, 32000, true}} {
		v, err := LoadVocab(filepath.Join(dir, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		if v.Flavor != tc.flavor || len(v.Tokens) != tc.n || len(v.Scores) != tc.n || (v.Types != nil) != tc.types || v.BOS != 1 || v.EOS != 2 || v.UNK != 0 || !v.AddBOS {
			t.Errorf("%s: %s %d tokens, types %v, bos %d eos %d unk %d addbos %v", tc.file, v.Flavor, len(v.Tokens), v.Types != nil, v.BOS, v.EOS, v.UNK, v.AddBOS)
		}
		if tc.types && (v.Types[0] != tokenizer.Unknown || v.Types[1] != tokenizer.Control || v.Types[3] != tokenizer.Byte || v.Tokens[3] != "<0x00>") {
			t.Errorf("%s: token types %v", tc.file, v.Types[:4])
		}
	}
}

func TestFindTokenizer(t *testing.T) {
	dir := testutil.Shared(t, "models")
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "model.bin")
	data, err := os.ReadFile(filepath.Join(dir, "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(bin, data, 0o644)
	_, err = Load(bin, "")
	if err == nil || !strings.HasPrefix(err.Error(), bin+": ") || !strings.Contains(err.Error(), "tok512.bin") || !strings.Contains(err.Error(), "tokenizer.bin") {
		t.Errorf("error %v, want it to name the model and the tokenizer files looked for", err)
	}
	tok, _ := os.ReadFile(filepath.Join(dir, "tok512.bin"))
	os.WriteFile(filepath.Join(tmp, "tokenizer.bin"), tok, 0o644)
	m, err := Load(bin, "")
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
}

// ggufFile rewrites stories260K.gguf with changes and returns the path.
func ggufFile(t *testing.T, kvEdit func([]gguf.KV) []gguf.KV, tEdit func([]gguf.TensorData) []gguf.TensorData) string {
	t.Helper()
	f, err := gguf.Open(filepath.Join(testutil.Shared(t, "models"), "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if err := gguf.Rewrite(&buf, f, kvEdit, tEdit); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func setKV(key string, v gguf.Value) func([]gguf.KV) []gguf.KV {
	return func(kvs []gguf.KV) []gguf.KV {
		for i := range kvs {
			if kvs[i].Key == key {
				kvs[i].Value = v
				return kvs
			}
		}
		return append(kvs, gguf.KV{Key: key, Value: v})
	}
}

func dropKV(key string) func([]gguf.KV) []gguf.KV {
	return func(kvs []gguf.KV) []gguf.KV {
		var out []gguf.KV
		for _, kv := range kvs {
			if kv.Key != key {
				out = append(out, kv)
			}
		}
		return out
	}
}

func editTensor(name string, edit func(*gguf.TensorData)) func([]gguf.TensorData) []gguf.TensorData {
	return func(ts []gguf.TensorData) []gguf.TensorData {
		for i := range ts {
			if ts[i].Name == name {
				edit(&ts[i])
			}
		}
		return ts
	}
}

func dropTensor(name string) func([]gguf.TensorData) []gguf.TensorData {
	return func(ts []gguf.TensorData) []gguf.TensorData {
		var out []gguf.TensorData
		for _, t := range ts {
			if t.Name != name {
				out = append(out, t)
			}
		}
		return out
	}
}

func TestLoadGGUFVariants(t *testing.T) {
	testutil.Shared(t, "models")
	// Defaults and optional tensors.
	p := ggufFile(t, func(kvs []gguf.KV) []gguf.KV {
		return dropKV("llama.attention.head_count_kv")(dropKV("llama.attention.layer_norm_rms_epsilon")(kvs))
	}, dropTensor("output.weight"))
	m, err := Load(p, "")
	if err == nil {
		t.Errorf("dropping head_count_kv should make wk's shape disagree, got config %+v", m.Config)
		m.Close()
	}
	p = ggufFile(t, dropKV("llama.attention.layer_norm_rms_epsilon"), dropTensor("output.weight"))
	m = load(t, p, "")
	if m.Output != m.TokenEmbd || m.Config.NormEps != 1e-5 {
		t.Errorf("tied %v, eps %v", m.Output == m.TokenEmbd, m.Config.NormEps)
	}
	p = ggufFile(t, setKV("tokenizer.ggml.add_bos_token", gguf.Bool(false)), nil)
	if m := load(t, p, ""); m.Vocab.AddBOS {
		t.Error("add_bos_token false ignored")
	}
	p = ggufFile(t, setKV("llama.rope.scaling.type", gguf.String("none")), nil)
	load(t, p, "")
}

func TestLoadErrors(t *testing.T) {
	dir := testutil.Shared(t, "models")
	tmp := t.TempDir()
	bin, _ := os.ReadFile(filepath.Join(dir, "stories260K.bin"))
	write := func(name string, data []byte) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tok := filepath.Join(dir, "tok512.bin")
	gg, _ := os.ReadFile(filepath.Join(dir, "stories260K.gguf"))

	// A GGUF whose blk.0.attn_k.weight has type 99, patched in the bytes.
	type99 := func() string {
		p := ggufFile(t, nil, nil)
		data, _ := os.ReadFile(p)
		name := []byte("blk.0.attn_k.weight")
		i := bytes.Index(data, name) + len(name)
		// n_dims u32, dims 2 x u64, then the type.
		binary.LittleEndian.PutUint32(data[i+4+16:], 99)
		return write("type99.gguf", data)
	}()

	tests := []struct {
		name      string
		path, tok string
		want      string
	}{
		{"missing file", filepath.Join(tmp, "nope.bin"), tok, "no such file"},
		{"truncated bin", write("stories260K.bin", bin[:1000]), tok, "stories260K.bin: truncated: weights need 1056540 bytes, file has 1000"},
		{"bin with extra bytes", write("extra.bin", append(append([]byte(nil), bin...), 1, 2, 3, 4)), tok, "4 unexpected bytes"},
		{"bin lying dim", write("dim.bin", func() []byte {
			d := append([]byte(nil), bin...)
			binary.LittleEndian.PutUint32(d, 128)
			return d
		}()), tok, "truncated: weights need"},
		{"empty file", write("empty.bin", nil), tok, "truncated: header"},
		{"tokenizer size mismatch", filepath.Join(dir, "stories260K.bin"), filepath.Join(dir, "ggml-vocab-llama-spm.gguf"), "tokenizer has 32000 tokens"},
		{"tokenizer not a tokenizer", filepath.Join(dir, "stories260K.bin"), filepath.Join(dir, "stories260K.bin"), "stories260K.bin: "},
		{"truncated gguf", write("t.gguf", gg[:len(gg)-100]), "", "truncated"},
		{"gguf wrong version", write("v.gguf", append([]byte("GGUF\x07\x00\x00\x00"), gg[8:]...)), "", "unsupported GGUF version 7"},
		{"unknown tensor type 99", type99, "", "tensor blk.0.attn_k.weight: unknown tensor type 99"},
		{"unsupported tensor type", ggufFile(t, nil, editTensor("blk.2.attn_q.weight", func(td *gguf.TensorData) {
			td.Type, td.Dims, td.Data = 10, []int{256, 16}, make([]byte, 84*16)
		})), "", "tensor blk.2.attn_q.weight has type Q2_K (10)"},
		{"K type of the wrong shape", ggufFile(t, nil, editTensor("blk.2.attn_q.weight", func(td *gguf.TensorData) {
			td.Type, td.Dims, td.Data = tensor.Q4_K, []int{256, 16}, make([]byte, 144*16)
		})), "", "tensor blk.2.attn_q.weight has shape [256 16], the configuration needs [64 64]"},
		{"shape mismatch", ggufFile(t, nil, editTensor("blk.0.attn_k.weight", func(td *gguf.TensorData) {
			td.Dims, td.Data = []int{64, 64}, make([]byte, 64*64*4)
		})), "", "tensor blk.0.attn_k.weight has shape [64 64], the configuration needs [64 32]"},
		{"norm not F32", ggufFile(t, nil, editTensor("output_norm.weight", func(td *gguf.TensorData) {
			td.Type, td.Data = tensor.F16, make([]byte, 128)
		})), "", "norms must be F32"},
		{"missing tensor", ggufFile(t, nil, dropTensor("blk.3.ffn_up.weight")), "", "missing tensor blk.3.ffn_up.weight"},
		{"unexpected tensor", ggufFile(t, nil, func(ts []gguf.TensorData) []gguf.TensorData {
			return append(ts, gguf.TensorData{Name: "blk.5.attn_q.weight", Type: tensor.F32, Dims: []int{4}, Data: make([]byte, 16)})
		}), "", "unexpected tensor blk.5.attn_q.weight"},
		{"zero rope factors", ggufFile(t, nil, func(ts []gguf.TensorData) []gguf.TensorData {
			return append(ts, gguf.TensorData{Name: "rope_freqs.weight", Type: tensor.F32, Dims: []int{4}, Data: make([]byte, 16)})
		}), "", "rope_freqs.weight: factor 0 of pair 0"},
		{"rope factors shape", ggufFile(t, nil, func(ts []gguf.TensorData) []gguf.TensorData {
			return append(ts, gguf.TensorData{Name: "rope_freqs.weight", Type: tensor.F32, Dims: []int{8}, Data: make([]byte, 32)})
		}), "", "tensor rope_freqs.weight has shape [8], the configuration needs [4]"},
		{"biases in part", ggufFile(t, nil, func(ts []gguf.TensorData) []gguf.TensorData {
			return append(ts, gguf.TensorData{Name: "blk.0.attn_q.bias", Type: tensor.F32, Dims: []int{64}, Data: make([]byte, 256)})
		}), "", "Q/K/V biases: 1 of the 3 tensors"},
		{"qk norm in a llama", ggufFile(t, nil, func(ts []gguf.TensorData) []gguf.TensorData {
			return append(ts, gguf.TensorData{Name: "blk.0.attn_q_norm.weight", Type: tensor.F32, Dims: []int{8}, Data: make([]byte, 32)})
		}), "", "unexpected tensor blk.0.attn_q_norm.weight (a llama model has no Q/K norms)"},
		{"key and value sizes", ggufFile(t, setKV("llama.attention.value_length", gguf.Uint32(16)), nil), "", "key_length 8 differs from value_length 16"},
		{"head size", ggufFile(t, setKV("llama.attention.key_length", gguf.Uint32(16)), nil), "", "partial RoPE"},
		{"kv heads above heads", ggufFile(t, setKV("llama.attention.head_count_kv", gguf.Uint32(16)), nil), "", "8 heads and 16 key/value heads do not fit"},
		{"architecture", ggufFile(t, setKV("general.architecture", gguf.String("gpt2")), nil), "", `architecture "gpt2" is not supported`},
		{"no architecture", ggufFile(t, dropKV("general.architecture"), nil), "", "general.architecture"},
		{"rope scaling", ggufFile(t, setKV("llama.rope.scaling.type", gguf.String("yarn")), nil), "", `RoPE scaling "yarn"`},
		{"rope scale factor", ggufFile(t, setKV("llama.rope.scaling.factor", gguf.Float32(4)), nil), "", "llama.rope.scaling.factor = 4"},
		{"rope theta below 1", ggufFile(t, setKV("llama.rope.freq_base", gguf.Float32(0.5)), nil), "", "rope theta 0.5 out of range: the RoPE frequency base must be finite and at least 1"},
		{"partial rope", ggufFile(t, setKV("llama.rope.dimension_count", gguf.Uint32(4)), nil), "", "partial RoPE"},
		{"experts", ggufFile(t, setKV("llama.expert_count", gguf.Uint32(8)), nil), "", "mixture of experts"},
		{"lying dim", ggufFile(t, func(kvs []gguf.KV) []gguf.KV {
			return setKV("llama.embedding_length", gguf.Uint32(128))(dropKV("llama.rope.dimension_count")(kvs))
		}, nil), "", "tensor token_embd.weight has shape [64 512], the configuration needs [128 512]"},
		{"lying dim, rope count", ggufFile(t, setKV("llama.embedding_length", gguf.Uint32(128)), nil), "", "partial RoPE"},
		{"lying layers", ggufFile(t, setKV("llama.block_count", gguf.Uint32(6)), nil), "", "missing tensor blk.5."},
		{"huge layers", ggufFile(t, setKV("llama.block_count", gguf.Uint64(1<<40)), nil), "", "out of range"},
		{"zero heads", ggufFile(t, setKV("llama.attention.head_count", gguf.Uint32(0)), nil), "", "llama.attention.head_count 0 out of range"},
		{"string dim", ggufFile(t, setKV("llama.embedding_length", gguf.String("64")), nil), "", "llama.embedding_length has type string"},
		{"lying vocab size", ggufFile(t, setKV("llama.vocab_size", gguf.Uint32(600)), nil), "", "has shape"},
		{"no tokenizer", ggufFile(t, dropKV("tokenizer.ggml.model"), nil), "", "no tokenizer"},
		{"gpt2 tokenizer without merges", ggufFile(t, setKV("tokenizer.ggml.model", gguf.String("gpt2")), nil), "", `BPE vocabulary without merges`},
		{"bert tokenizer", ggufFile(t, setKV("tokenizer.ggml.model", gguf.String("bert")), nil), "", `tokenizer model "bert" is not supported`},
		{"bos out of range", ggufFile(t, setKV("tokenizer.ggml.bos_token_id", gguf.Uint32(512)), nil), "", "bos_token_id 512 is outside"},
		{"scores length", ggufFile(t, setKV("tokenizer.ggml.scores", gguf.Array([]float32{1})), nil), "", "scores has 1 entries"},
		{"token types", ggufFile(t, setKV("tokenizer.ggml.token_type", gguf.Array(make([]int32, 511))), nil), "", "token_type has 511 entries"},
		{"bad token type", ggufFile(t, setKV("tokenizer.ggml.token_type", gguf.Array(append(make([]int32, 511), 42))), nil), "", "unknown type 42"},
		{"tokens vs embedding", ggufFile(t, setKV("tokenizer.ggml.tokens", gguf.Array(make([]string, 500))), nil), "", "500"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Load(tc.path, tc.tok)
			if err == nil {
				m.Close()
				t.Fatalf("Load succeeded, want error mentioning %q", tc.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q, want one line mentioning %q", msg, tc.want)
			}
			if !strings.HasPrefix(msg, tc.path+": ") && !strings.HasPrefix(msg, tc.tok+": ") && !strings.Contains(msg, tc.path) {
				t.Errorf("error %q does not start with the file name", msg)
			}
		})
	}
}

// FuzzLoad feeds arbitrary bytes through model construction from both
// formats: parse, build and check must fail cleanly or give a model whose
// every tensor is consistent.
func FuzzLoad(f *testing.F) {
	if dir := filepath.Join("..", "..", "..", "shared", "models"); true {
		for _, name := range []string{"stories260K-Q4_0.gguf", "stories260K.bin"} {
			if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte("GGUF\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add(make([]byte, 28))
	for _, b := range retypedSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m *Model
		if bytes.HasPrefix(data, []byte(gguf.Magic)) {
			gf, err := gguf.Parse(data)
			if err != nil {
				return
			}
			if m, err = FromGGUF(gf, true); err != nil {
				return
			}
		} else {
			ck, err := llama2c.ParseCheckpoint(data)
			if err != nil {
				return
			}
			m = FromCheckpoint(ck)
		}
		if err := m.Check(); err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error %q", err)
			}
			return
		}
		for _, tt := range m.Tensors() {
			if err := tt.Check(); err != nil {
				t.Fatalf("checked model has a bad tensor: %v", err)
			}
		}
	})
}

// retypedSeeds returns stories260K-Q4_0.gguf with the matrices of its
// first layer stored as Q4_1, Q5_0 and Q5_1 (random blocks), whole and cut
// short, and with a K-type tensor (Q6_K) of the wrong shape in place of
// attn_q. Nil where the shared file is absent.
func retypedSeeds(tb testing.TB) [][]byte {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "models", "stories260K-Q4_0.gguf"))
	if err != nil {
		return nil
	}
	f, err := gguf.Parse(b)
	if err != nil {
		tb.Fatal(err)
	}
	types := map[string]tensor.Type{"blk.0.attn_q.weight": tensor.Q4_1, "blk.0.attn_k.weight": tensor.Q5_0, "blk.0.attn_v.weight": tensor.Q5_1, "blk.0.ffn_gate.weight": tensor.Q5_0}
	var seeds [][]byte
	for _, k := range []bool{false, true} {
		var ts []gguf.TensorData
		for _, ti := range f.Tensors {
			tt, _ := f.Tensor(ti.Name)
			td := gguf.TensorData{Name: tt.Name, Type: tt.Type, Dims: tt.Dims, Data: tt.Data}
			if typ, ok := types[tt.Name]; ok && !k {
				rb, _ := tensor.RowBytes(typ, tt.Cols())
				td.Type, td.Data = typ, make([]byte, rb*tt.Rows())
				for i := range td.Data {
					td.Data[i] = byte(i*7 + 3)
				}
			}
			if tt.Name == "blk.1.attn_q.weight" && k {
				td.Type, td.Dims, td.Data = tensor.Q6_K, []int{256, 16}, make([]byte, 210*16)
			}
			ts = append(ts, td)
		}
		var buf bytes.Buffer
		if err := gguf.Write(&buf, f.KV, ts); err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, buf.Bytes(), buf.Bytes()[:buf.Len()-1000])
	}
	return seeds
}

// TestRetypedSeedsLoad: the Q4_1/Q5_0/Q5_1 seed of FuzzLoad is a valid
// model (so the fuzzer starts from one that reaches every check).
func TestRetypedSeedsLoad(t *testing.T) {
	testutil.Shared(t, "models")
	seeds := retypedSeeds(t)
	gf, err := gguf.Parse(seeds[0])
	if err != nil {
		t.Fatal(err)
	}
	m, err := FromGGUF(gf, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	if m.Layers[0].Wv.Type != tensor.Q5_1 {
		t.Fatalf("wv is %s", m.Layers[0].Wv.Type)
	}
}

// TestWeightsNotCopied loads a GGUF whose weights take 6 MB and checks that
// the Go heap grows by much less: the tensors alias the memory map.
func TestWeightsNotCopied(t *testing.T) {
	dir := testutil.Shared(t, "models")
	const rows = 24000 // 24000 x 64 F32 = 6 MB of embedding
	f, err := gguf.Open(filepath.Join(dir, "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	var ts []gguf.TensorData
	for _, ti := range f.Tensors {
		if ti.Name == "token_embd.weight" || ti.Name == "output.weight" {
			continue
		}
		tt, _ := f.Tensor(ti.Name)
		ts = append(ts, gguf.TensorData{Name: tt.Name, Type: tt.Type, Dims: tt.Dims, Data: tt.Data})
	}
	ts = append(ts, gguf.TensorData{Name: "token_embd.weight", Type: tensor.F32, Dims: []int{64, rows}, Data: make([]byte, 64*rows*4)})
	var kvs []gguf.KV
	for _, kv := range f.KV {
		if !strings.HasPrefix(kv.Key, "tokenizer.") {
			kvs = append(kvs, kv)
		}
	}
	var buf bytes.Buffer
	if err := gguf.Write(&buf, kvs, ts); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p := filepath.Join(t.TempDir(), "big.gguf")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	buf = bytes.Buffer{}
	ts = nil
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	// The vocabulary comes from a separate small tokenizer file.
	m, err := Load(p, filepath.Join(dir, "tok512.bin"))
	if err == nil {
		m.Close()
		t.Fatal("a 512-token tokenizer was accepted for a 24000-row embedding")
	}
	gf, err := gguf.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer gf.Close()
	mm, err := FromGGUF(gf, false)
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if mm.TokenEmbd.Dims[1] != rows {
		t.Fatalf("embedding dims %v", mm.TokenEmbd.Dims)
	}
	grew := int64(after.TotalAlloc - before.TotalAlloc)
	t.Logf("heap allocations while loading: %d bytes", grew)
	if grew > 1<<20 {
		t.Errorf("loading allocated %d bytes on the heap; weights (6 MB) seem to be copied", grew)
	}
}
