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

func TestCloseExceptHead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	content := make([]byte, 3*os.Getpagesize()+100)
	for i := range content {
		content[i] = byte(i * 7)
	}
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, keep := range []int{0, 1, os.Getpagesize(), os.Getpagesize() + 1, len(content), len(content) + 5} {
		f, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		head := f.Data[:min(keep, len(content))]
		release, err := f.CloseExceptHead(keep)
		if err != nil {
			t.Fatal(err)
		}
		if f.Data != nil {
			t.Errorf("keep %d: Data still set after CloseExceptHead", keep)
		}
		// The head is still readable.
		if !bytes.Equal(head, content[:len(head)]) {
			t.Errorf("keep %d: the head changed", keep)
		}
		if err := release(); err != nil {
			t.Errorf("keep %d: release: %v", keep, err)
		}
		if err := f.Close(); err != nil {
			t.Errorf("keep %d: Close after CloseExceptHead: %v", keep, err)
		}
		if b, err := os.ReadFile("/proc/self/maps"); err == nil && strings.Contains(string(b), p) {
			t.Errorf("keep %d: %s still mapped after release", keep, p)
		}
	}
}
