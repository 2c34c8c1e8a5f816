package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeysCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.key")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"keys", "new", "--out", path}, &out, &errb); code != 0 {
		t.Fatalf("keys new: exit %d: %s", code, errb.String())
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	addr := strings.TrimPrefix(strings.Split(strings.TrimSpace(out.String()), "\n")[1], "address ")
	out.Reset()
	if code := run(context.Background(), []string{"keys", "show", path}, &out, &errb); code != 0 {
		t.Fatalf("keys show: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "address "+addr) {
		t.Fatalf("keys show printed %q, want address %s", out.String(), addr)
	}
	errb.Reset()
	if code := run(context.Background(), []string{"keys", "new", "--out", path}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "refusing to overwrite") {
		t.Fatalf("second keys new: exit %d, stderr %q", code, errb.String())
	}
	if strings.Count(errb.String(), "\n") != 1 {
		t.Fatalf("error is not one line: %q", errb.String())
	}
}

func TestModelIDCommand(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "models")
	if _, err := os.Stat(filepath.Join(dir, "stories260K.bin")); err != nil {
		t.Skipf("shared models not available at %s", dir)
	}
	last := func(args ...string) string {
		var out, errb bytes.Buffer
		if err := runModelID(context.Background(), args, &out, &errb); err != nil {
			t.Fatalf("model id %v: %v", args, err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		return lines[len(lines)-1]
	}
	a := last(filepath.Join(dir, "stories260K.bin"), "--tokenizer", filepath.Join(dir, "tok512.bin"))
	b := last(filepath.Join(dir, "stories260K.gguf"))
	c := last(filepath.Join(dir, "stories260K-F16.gguf"))
	if a != b || a == c || len(a) != 64 {
		t.Fatalf("ids: bin %s gguf %s f16 %s", a, b, c)
	}
	golden, err := os.ReadFile(filepath.Join("..", "..", "internal", "modelid", "testdata", "stories260K.id"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(golden)) != a {
		t.Fatalf("id %s, golden %s", a, golden)
	}
}
