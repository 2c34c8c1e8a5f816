package mmapfile

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content []byte
	}{
		{"empty", nil},
		{"small", []byte("hello, world")},
		{"page", bytes.Repeat([]byte{7}, 5000)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if err := os.WriteFile(p, tc.content, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(f.Data, tc.content) {
				t.Errorf("data = %q, want %q", f.Data, tc.content)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatalf("second close: %v", err)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{filepath.Join(dir, "missing"), dir} {
		_, err := Open(p)
		if err == nil {
			t.Fatalf("Open(%s) succeeded", p)
		}
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not name %s", err, p)
		}
	}
}
