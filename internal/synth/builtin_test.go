package synth

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/modelid"
	"github.com/verdictnet/verdict/internal/tensor"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

// TestBuiltinModel writes the built-in model twice (same bytes), loads it,
// and checks that its tokenizer round-trips text, including bytes outside
// the word list, and that known words become single pieces.
func TestBuiltinModel(t *testing.T) {
	var a, b bytes.Buffer
	if err := GenerateBuiltin("tiny", BuiltinSeed, tensor.F32, &a); err != nil {
		t.Fatal(err)
	}
	if err := GenerateBuiltin("tiny", BuiltinSeed, tensor.F32, &b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two writes of the built-in model differ")
	}
	path := filepath.Join(t.TempDir(), "builtin.gguf")
	if err := os.WriteFile(path, a.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := modelid.Of(m); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.New(m.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		text   string
		pieces int // expected token count without BOS, -1: any
	}{
		{"Once upon a time", 4},
		{"the happy dog", 3},
		{"Zürich 🙂 {x}", -1},
		{"", 0},
	} {
		ids, err := tok.Encode(c.text, false)
		if err != nil {
			t.Fatalf("%q: %v", c.text, err)
		}
		if c.pieces >= 0 && len(ids) != c.pieces {
			t.Errorf("%q: %d tokens %v, want %d", c.text, len(ids), ids, c.pieces)
		}
		var out []byte
		prev := 1
		for _, id := range ids {
			p, err := tok.Piece(prev, id)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p...)
			prev = id
		}
		if string(out) != c.text {
			t.Errorf("round trip of %q gave %q", c.text, out)
		}
	}
}

// TestBuiltinModelID pins the built-in model's id: it is the default
// model of every devnet, so it must not change from machine to machine or
// release to release without notice (CI runs this under arm64 too). Run
// with -update after a deliberate change of the vocabulary, preset or
// seed.
func TestBuiltinModelID(t *testing.T) {
	var buf bytes.Buffer
	if err := GenerateBuiltin("tiny", BuiltinSeed, tensor.F32, &buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "builtin.gguf")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	id, err := modelid.Of(m)
	if err != nil {
		t.Fatal(err)
	}
	got := id.String() + "\n"
	golden := filepath.Join("testdata", "builtin-modelid.txt")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run BuiltinModelID -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("built-in model id %s, golden %s", got, want)
	}
}
