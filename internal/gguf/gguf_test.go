package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/verdictnet/verdict/internal/testutil"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/tensor"
)

func sampleKVs() []KV {
	return []KV{
		{"general.architecture", String("llama")},
		{"u8", Uint8(200)}, {"i8", Int8(-5)}, {"u16", Uint16(60000)}, {"i16", Int16(-30000)},
		{"u32", Uint32(4000000000)}, {"i32", Int32(-7)}, {"f32", Float32(1.5)}, {"b", Bool(true)},
		{"u64", Uint64(1 << 40)}, {"i64", Int64(-1 << 40)}, {"f64", Float64(math.Pi)},
		{"strs", Array([]string{"a", "", "▁héllo"})},
		{"f32s", Array([]float32{0, -1, float32(math.Inf(1))})},
		{"i32s", Array([]int32{1, -2, 3})},
		{"u8s", Array([]uint8{1, 2})},
		{"bools", Array([]bool{true, false})},
		{"empty", Array([]int64{})},
		{"nested", Array([]Value{Array([]uint16{1, 2}), Array([]uint16{3})})},
	}
}

func writeSample(t testing.TB) ([]byte, []KV, []TensorData) {
	t.Helper()
	f32 := make([]byte, 4*3*2)
	for i := range f32 {
		f32[i] = byte(i + 1)
	}
	q8 := bytes.Repeat([]byte{9}, 34*2)
	ts := []TensorData{
		{Name: "a", Type: tensor.F32, Dims: []int{3, 2}, Data: f32},
		{Name: "b", Type: tensor.Q8_0, Dims: []int{32, 2}, Data: q8},
		{Name: "c", Type: tensor.F16, Dims: []int{5}, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{Name: "d", Type: 12, Dims: []int{256, 1, 1, 1}, Data: make([]byte, 144)},
	}
	kvs := sampleKVs()
	var buf bytes.Buffer
	if err := Write(&buf, kvs, ts); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), kvs, ts
}

func TestRoundTrip(t *testing.T) {
	data, kvs, ts := writeSample(t)
	f, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 3 || f.Alignment != 32 || f.DataOffset%32 != 0 {
		t.Errorf("version %d alignment %d data offset %d", f.Version, f.Alignment, f.DataOffset)
	}
	if len(f.KV) != len(kvs) {
		t.Fatalf("%d KVs, want %d", len(f.KV), len(kvs))
	}
	for i, kv := range kvs {
		got := f.KV[i]
		if got.Key != kv.Key || got.Value.Type != kv.Value.Type || got.Value.Elem != kv.Value.Elem || !reflect.DeepEqual(got.Value.Any(), kv.Value.Any()) {
			t.Errorf("KV %d = %s %#v, want %s %#v", i, got.Key, got.Value, kv.Key, kv.Value)
		}
	}
	if len(f.Tensors) != len(ts) {
		t.Fatalf("%d tensors, want %d", len(f.Tensors), len(ts))
	}
	for i, want := range ts {
		ti := f.Tensors[i]
		if ti.Offset%32 != 0 {
			t.Errorf("tensor %s offset %d not aligned", ti.Name, ti.Offset)
		}
		got, err := f.Tensor(want.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got.Type != want.Type || !reflect.DeepEqual(got.Dims, want.Dims) || !bytes.Equal(got.Data, want.Data) {
			t.Errorf("tensor %s = %v %v %x, want %v %v %x", want.Name, got.Type, got.Dims, got.Data, want.Type, want.Dims, want.Data)
		}
	}
	// Writing what was read gives the same bytes.
	var again bytes.Buffer
	var ts2 []TensorData
	for _, ti := range f.Tensors {
		tt, _ := f.Tensor(ti.Name)
		ts2 = append(ts2, TensorData{Name: tt.Name, Type: tt.Type, Dims: tt.Dims, Data: tt.Data})
	}
	if err := Write(&again, f.KV, ts2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), data) {
		t.Error("rewriting a parsed file changed its bytes")
	}
}

func TestVersion2(t *testing.T) {
	data, _, _ := writeSample(t)
	v2 := append([]byte(nil), data...)
	v2[4] = 2 // version 2 has the same layout as version 3
	f, err := Parse(v2)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 2 || len(f.Tensors) != 4 {
		t.Errorf("version %d, %d tensors", f.Version, len(f.Tensors))
	}
}

func TestAccessors(t *testing.T) {
	data, _, _ := writeSample(t)
	f, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := f.String("general.architecture"); err != nil || s != "llama" {
		t.Errorf("String = %q, %v", s, err)
	}
	ints := []struct {
		key  string
		want int64
	}{{"u8", 200}, {"i8", -5}, {"u16", 60000}, {"i16", -30000}, {"u32", 4000000000}, {"i32", -7}, {"u64", 1 << 40}, {"i64", -1 << 40}}
	for _, c := range ints {
		if got, err := f.Int64(c.key); err != nil || got != c.want {
			t.Errorf("Int64(%s) = %d, %v; want %d", c.key, got, err, c.want)
		}
	}
	if _, err := f.Int("u32"); err == nil {
		t.Error("Int(u32=4e9) did not report overflow")
	}
	if got, err := f.Uint32("u32"); err != nil || got != 4000000000 {
		t.Errorf("Uint32 = %d, %v", got, err)
	}
	if _, err := f.Uint32("i32"); err == nil {
		t.Error("Uint32 of a negative value did not fail")
	}
	if got, err := f.Float32("f64"); err != nil || got != float32(math.Pi) {
		t.Errorf("Float32(f64) = %v, %v", got, err)
	}
	if got, err := f.Float32("i32"); err != nil || got != -7 {
		t.Errorf("Float32(i32) = %v, %v", got, err)
	}
	if b, err := f.Bool("b"); err != nil || !b {
		t.Errorf("Bool = %v, %v", b, err)
	}
	if got, err := f.Int32s("u8s"); err != nil || !reflect.DeepEqual(got, []int32{1, 2}) {
		t.Errorf("Int32s(u8s) = %v, %v", got, err)
	}
	if got, err := f.Strings("strs"); err != nil || len(got) != 3 || got[2] != "▁héllo" {
		t.Errorf("Strings = %q, %v", got, err)
	}
	if got, err := f.Float32s("f32s"); err != nil || len(got) != 3 || !math.IsInf(float64(got[2]), 1) {
		t.Errorf("Float32s = %v, %v", got, err)
	}
	if _, err := f.String("missing"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing key error = %v", err)
	}
	for _, bad := range []struct{ key, want string }{{"u8", "want string"}, {"strs", "array of string"}} {
		if _, err := f.String(bad.key); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("String(%s) error = %v, want mention of %q", bad.key, err, bad.want)
		}
	}
	if _, err := f.Int32s("strs"); err == nil {
		t.Error("Int32s of strings did not fail")
	}
	if _, err := f.Tensor("nope"); err == nil {
		t.Error("Tensor(nope) did not fail")
	}
	v, _ := f.Get("strs")
	if got, want := v.Format(2), `[string x 3] ["a", "", ...]`; got != want {
		t.Errorf("Format = %s, want %s", got, want)
	}
}

// header builds the start of a GGUF file by hand.
type builder struct{ bytes.Buffer }

func (b *builder) u32(x uint32) *builder { binary.Write(b, binary.LittleEndian, x); return b }
func (b *builder) u64(x uint64) *builder { binary.Write(b, binary.LittleEndian, x); return b }
func (b *builder) str(s string) *builder { b.u64(uint64(len(s))); b.WriteString(s); return b }

func TestParseErrors(t *testing.T) {
	good, _, _ := writeSample(t)
	// one tensor "t" F32 [4] at offset off, with given type
	oneTensor := func(typ uint32, dims []uint64, off uint64, dataLen int) []byte {
		b := &builder{}
		b.WriteString("GGUF")
		b.u32(3).u64(1).u64(0)
		b.str("t").u32(uint32(len(dims)))
		for _, d := range dims {
			b.u64(d)
		}
		b.u32(typ).u64(off)
		for b.Len()%32 != 0 {
			b.WriteByte(0)
		}
		b.Write(make([]byte, dataLen))
		return b.Bytes()
	}
	twoTensors := func(off2 uint64) []byte {
		b := &builder{}
		b.WriteString("GGUF")
		b.u32(3).u64(2).u64(0)
		b.str("x").u32(1).u64(16).u32(0).u64(0)
		b.str("y").u32(1).u64(16).u32(0).u64(off2)
		for b.Len()%32 != 0 {
			b.WriteByte(0)
		}
		b.Write(make([]byte, 256))
		return b.Bytes()
	}
	kvFile := func(build func(b *builder)) []byte {
		b := &builder{}
		b.WriteString("GGUF")
		b.u32(3).u64(0).u64(1)
		build(b)
		return b.Bytes()
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not a GGUF file"},
		{"wrong magic", append([]byte("GGUG"), good[4:]...), "magic"},
		{"version 1", append([]byte("GGUF\x01\x00\x00\x00"), good[8:]...), "version 1"},
		{"version 9", append([]byte("GGUF\x09\x00\x00\x00"), good[8:]...), "version 9"},
		{"big endian", append([]byte("GGUF\x00\x00\x00\x03"), good[8:]...), "big-endian"},
		{"truncated header", good[:12], "truncated"},
		{"truncated metadata", good[:100], "metadata count 19"},
		{"truncated in metadata", good[:200], "truncated"},
		{"truncated data", good[:len(good)-40], "truncated"},
		{"huge kv count", (&builder{}).u32(0x46554747).u32(3).u64(0).u64(1 << 62).Bytes(), "metadata count"},
		{"huge tensor count", (&builder{}).u32(0x46554747).u32(3).u64(1 << 60).u64(0).Bytes(), "tensor count"},
		{"huge string", kvFile(func(b *builder) { b.u64(1 << 62); b.Write(make([]byte, 16)) }), "claims"},
		{"huge array", kvFile(func(b *builder) { b.str("k").u32(9).u32(6).u64(1 << 61) }), "array length"},
		{"bad value type", kvFile(func(b *builder) { b.str("k").u32(13).u32(0) }), "unknown value type 13"},
		{"bad array type", kvFile(func(b *builder) { b.str("k").u32(9).u32(77).u64(1) }), "element type 77"},
		{"bad bool", kvFile(func(b *builder) { b.str("k").u32(7); b.WriteByte(2) }), "bool"},
		{"deep arrays", kvFile(func(b *builder) {
			b.str("k").u32(9)
			for i := 0; i < 10; i++ {
				b.u32(9).u64(1)
			}
		}), "nested"},
		{"bad alignment", kvFile(func(b *builder) { b.str("general.alignment").u32(4).u32(48) }), "power of two"},
		{"alignment type", kvFile(func(b *builder) { b.str("general.alignment").u32(8).str("x") }), "alignment"},
		{"duplicate key", func() []byte {
			b := &builder{}
			b.WriteString("GGUF")
			b.u32(3).u64(0).u64(2)
			b.str("k").u32(4).u32(1)
			b.str("k").u32(4).u32(1)
			return b.Bytes()
		}(), "appears twice"},
		{"unknown tensor type 99", oneTensor(99, []uint64{4}, 0, 16), "unknown tensor type 99"},
		{"zero dim", oneTensor(0, []uint64{0}, 0, 16), "dimension 0 is 0"},
		{"too many dims", oneTensor(0, []uint64{1, 1, 1, 1, 1}, 0, 16), "5 dimensions"},
		{"huge dims", oneTensor(0, []uint64{1 << 30, 1 << 30, 1 << 30}, 0, 16), "overflow"},
		{"partial block", oneTensor(8, []uint64{33}, 0, 64), "whole number"},
		{"misaligned", oneTensor(0, []uint64{4}, 4, 64), "not a multiple of the alignment"},
		{"past end", oneTensor(0, []uint64{4}, 32, 32), "truncated"},
		{"offset past end", oneTensor(0, []uint64{4}, 1<<40, 32), "truncated"},
		{"overlap", twoTensors(32), "overlaps"},
		{"duplicate tensor", func() []byte {
			b := &builder{}
			b.WriteString("GGUF")
			b.u32(3).u64(2).u64(0)
			b.str("x").u32(1).u64(8).u32(0).u64(0)
			b.str("x").u32(1).u64(8).u32(0).u64(32)
			for b.Len()%32 != 0 {
				b.WriteByte(0)
			}
			b.Write(make([]byte, 64))
			return b.Bytes()
		}(), "appears twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.data)
			if err == nil {
				t.Fatalf("Parse succeeded, want error mentioning %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q, want one line mentioning %q", err, tc.want)
			}
		})
	}
	// The two-tensor file is fine without overlap.
	if _, err := Parse(twoTensors(64)); err != nil {
		t.Errorf("valid two-tensor file: %v", err)
	}
}

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name string
		kvs  []KV
		ts   []TensorData
		want string
	}{
		{"dup key", []KV{{"a", Uint8(1)}, {"a", Uint8(2)}}, nil, "twice"},
		{"bad value", []KV{{"a", Value{Type: TypeString, x: 3}}}, nil, "does not match"},
		{"zero value", []KV{{"a", Value{Type: TypeArray}}}, nil, "does not match"},
		{"bad alignment", []KV{{"general.alignment", Uint32(3)}}, nil, "power-of-two"},
		{"dup tensor", nil, []TensorData{{Name: "x", Type: tensor.F32, Dims: []int{1}, Data: make([]byte, 4)}, {Name: "x", Type: tensor.F32, Dims: []int{1}, Data: make([]byte, 4)}}, "repeated"},
		{"short data", nil, []TensorData{{Name: "x", Type: tensor.F32, Dims: []int{2}, Data: make([]byte, 4)}}, "needs 8"},
		{"unknown type", nil, []TensorData{{Name: "x", Type: 99, Dims: []int{2}, Data: make([]byte, 4)}}, "unknown tensor type 99"},
		{"short source", nil, []TensorData{{Name: "x", Type: tensor.F32, Dims: []int{2}, Source: func(w io.Writer) error { _, err := w.Write(make([]byte, 4)); return err }}}, "wrote 4 bytes, want 8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Write(io.Discard, tc.kvs, tc.ts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Write error = %v, want mention of %q", err, tc.want)
			}
		})
	}
}

func TestWriteSource(t *testing.T) {
	var buf bytes.Buffer
	src := func(w io.Writer) error { _, err := w.Write([]byte{1, 2, 3, 4, 5, 6, 7, 8}); return err }
	if err := Write(&buf, []KV{{"general.alignment", Uint32(64)}}, []TensorData{
		{Name: "x", Type: tensor.F32, Dims: []int{2}, Source: src},
		{Name: "y", Type: tensor.BF16, Dims: []int{4}, Source: src},
	}); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if f.Alignment != 64 || f.DataOffset%64 != 0 || f.Tensors[1].Offset != 64 {
		t.Errorf("alignment %d, data offset %d, second offset %d", f.Alignment, f.DataOffset, f.Tensors[1].Offset)
	}
	y, _ := f.Tensor("y")
	if !bytes.Equal(y.Data, []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Errorf("y = %x", y.Data)
	}
}

// TestSharedFiles parses the GGUF files under ../shared/models and checks
// facts stated in ../shared/models/README.md.
func TestSharedFiles(t *testing.T) {
	dir := testutil.Shared(t, "models")
	tests := []struct {
		file    string
		tensors int
		embType tensor.Type
		tokens  int
	}{
		{"stories260K.gguf", 48, tensor.F32, 512},
		{"stories260K-F16.gguf", 48, tensor.F16, 512},
		{"stories260K-Q8_0.gguf", 48, tensor.Q8_0, 512},
		{"stories260K-Q4_0.gguf", 48, tensor.Q4_0, 512},
		{"llama-2-tiny-random.gguf", 12, tensor.F16, 32000},
		{"ggml-vocab-llama-spm.gguf", 0, 0, 32000},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			f, err := Open(filepath.Join(dir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Version != 3 || len(f.Tensors) != tc.tensors {
				t.Errorf("version %d, %d tensors; want 3, %d", f.Version, len(f.Tensors), tc.tensors)
			}
			if arch, err := f.String("general.architecture"); err != nil || arch != "llama" {
				t.Errorf("architecture %q, %v", arch, err)
			}
			toks, err := f.Strings("tokenizer.ggml.tokens")
			if err != nil || len(toks) != tc.tokens {
				t.Errorf("%d tokens, %v", len(toks), err)
			}
			if tc.tensors == 0 {
				return
			}
			emb, err := f.Tensor("token_embd.weight")
			if err != nil {
				t.Fatal(err)
			}
			if emb.Type != tc.embType || emb.Dims[1] != tc.tokens {
				t.Errorf("token_embd %s %v", emb.Type, emb.Dims)
			}
			if err := emb.Check(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestOpenError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.gguf")
	os.WriteFile(p, []byte("GGUF\x03\x00\x00\x00"), 0o644)
	_, err := Open(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+": ") || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("Open error = %v, want it to start with the path and say truncated", err)
	}
}

func FuzzParse(f *testing.F) {
	good, _, _ := writeSample(f)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("GGUF\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	if dir := filepath.Join("..", "..", "..", "shared", "models", "stories260K-Q4_0.gguf"); true {
		if b, err := os.ReadFile(dir); err == nil {
			f.Add(b[:20000])
		}
	}
	// One tensor of every quantised type Verdict computes with (whole and
	// cut short).
	var qs []TensorData
	for i, typ := range []tensor.Type{tensor.Q4_1, tensor.Q5_0, tensor.Q5_1, tensor.Q4_K, tensor.Q5_K, tensor.Q6_K} {
		qs = append(qs, TensorData{Name: fmt.Sprintf("q%d", i), Type: typ, Dims: []int{typ.BlockSize(), 2},
			Data: bytes.Repeat([]byte{byte(0x31 * (i + 1))}, 2*typ.BlockBytes())})
	}
	var qbuf bytes.Buffer
	if err := Write(&qbuf, sampleKVs(), qs); err != nil {
		f.Fatal(err)
	}
	f.Add(qbuf.Bytes())
	f.Add(qbuf.Bytes()[:qbuf.Len()-100])
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error %q", err)
			}
			return
		}
		for _, ti := range file.Tensors {
			tt, err := file.Tensor(ti.Name)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(tt.Data)) != ti.Size {
				t.Fatalf("tensor %s: %d bytes, want %d", ti.Name, len(tt.Data), ti.Size)
			}
		}
		for _, kv := range file.KV {
			kv.Value.Format(3)
			// A string array read in place yields Len strings, the
			// same as its copy.
			if a, ok := kv.Value.x.(*StringArray); ok {
				ss := a.Strings()
				n := 0
				for i, s := range a.All() {
					if i != n || string(s) != ss[i] {
						t.Fatalf("%s: string %d differs from its copy", kv.Key, i)
					}
					n++
				}
				if n != a.Len() || len(ss) != a.Len() {
					t.Fatalf("%s: %d strings yielded, %d copied, length %d", kv.Key, n, len(ss), a.Len())
				}
			}
		}
		// A parsed file can be written back and parses to the same metadata.
		var ts []TensorData
		for _, ti := range file.Tensors {
			tt, _ := file.Tensor(ti.Name)
			ts = append(ts, TensorData{Name: tt.Name, Type: tt.Type, Dims: tt.Dims, Data: tt.Data})
		}
		var buf bytes.Buffer
		if err := Write(&buf, file.KV, ts); err != nil {
			if !strings.Contains(err.Error(), "alignment") {
				t.Fatalf("rewrite: %v", err)
			}
			return
		}
		again, err := Parse(buf.Bytes())
		if err != nil {
			t.Fatalf("reparse: %v", err)
		}
		// Compare by bytes (metadata may hold NaNs, which DeepEqual rejects).
		var buf2 bytes.Buffer
		if err := Write(&buf2, again.KV, ts); err != nil {
			t.Fatalf("second rewrite: %v", err)
		}
		if !bytes.Equal(buf.Bytes(), buf2.Bytes()) {
			t.Fatal("metadata changed in a write/parse round trip")
		}
	})
}
