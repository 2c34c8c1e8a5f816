package gguf

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// mappings counts the mappings of path in /proc/self/maps (-1 where there
// is no such file).
func mappings(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return -1
	}
	return strings.Count(string(b), path)
}

func TestStringArrayOutlivesClose(t *testing.T) {
	data, _, ts := writeSample(t)
	p := filepath.Join(t.TempDir(), "sample.gguf")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "", "▁héllo"}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.StringArray("strs")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.StringArray("i32s"); err == nil || !strings.Contains(err.Error(), "want array of string") {
		t.Errorf("StringArray of an int32 array: %v", err)
	}
	if n := mappings(t, p); n == 0 {
		t.Fatalf("%s is not mapped", p)
	}
	kv := append([]KV(nil), f.KV...)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// The pages of the metadata stay mapped: every way of reading the
	// array still works.
	if a.Len() != 3 || !reflect.DeepEqual(a.Strings(), want) {
		t.Errorf("after Close: %d strings %q, want %q", a.Len(), a.Strings(), want)
	}
	var got []string
	for i, s := range a.All() {
		if i != len(got) {
			t.Fatalf("index %d, want %d", i, len(got))
		}
		got = append(got, string(s))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("All after Close: %q, want %q", got, want)
	}
	for _, x := range kv {
		if x.Key != "strs" {
			continue
		}
		if !reflect.DeepEqual(x.Value.Any(), want) || x.Value.Len() != 3 {
			t.Errorf("Value after Close: %#v", x.Value.Any())
		}
		if s := x.Value.Format(2); s != `[string x 3] ["a", "", ...]` {
			t.Errorf("Format(2) = %s", s)
		}
		if s := x.Value.Format(0); s != `[string x 3] ["a", "", "▁héllo"]` {
			t.Errorf("Format(0) = %s", s)
		}
		if got, ok := elemAt(x.Value.x, 2).(string); !ok || got != want[2] {
			t.Errorf("elemAt 2 = %q", got)
		}
	}
	// Written again after Close: the same file.
	var buf bytes.Buffer
	if err := Write(&buf, kv, ts); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		t.Error("rewriting the closed file's metadata changed its bytes")
	}
	if mappings(t, p) < 0 {
		return // no /proc: nothing more to check
	}
	if n := mappings(t, p); n != 1 {
		t.Errorf("after Close, %d mappings of the file, want 1 (its metadata)", n)
	}
	// Once no string array is reachable, the rest is unmapped too.
	a, kv = nil, nil
	deadline := time.Now().Add(5 * time.Second)
	for mappings(t, p) != 0 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n := mappings(t, p); n != 0 {
		t.Errorf("%d mappings of the file left once its string arrays are unreachable", n)
	}
}

func TestCloseWithoutStringArrays(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, []KV{{"general.architecture", String("llama")}}, nil); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "plain.gguf")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if n := mappings(t, p); n > 0 {
		t.Errorf("%d mappings of a closed file without string arrays", n)
	}
}
