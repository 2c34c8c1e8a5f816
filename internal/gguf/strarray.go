package gguf

import (
	"encoding/binary"
	"iter"
	"runtime"
	"strings"
)

// StringArray is an array of strings read in place: its elements are the
// file's own bytes (each a uint64 length and that many bytes), checked by
// Parse and copied by nothing but Strings. A vocabulary is mostly such
// arrays (tokenizer.ggml.tokens and merges: 408k strings in Llama 3's), so
// reading them in place keeps their cost inside the file's mapping instead
// of the heap.
//
// A StringArray stays valid after its File is closed: Close keeps the
// pages of the file's metadata mapped until no StringArray of the file is
// reachable.
type StringArray struct {
	raw  []byte // n times: uint64 length, bytes
	n    int
	head *head // keeps the mapping of raw (a file from Open)
}

// head is what the string arrays of one parsed file share: Close keeps the
// metadata part of the mapping while it is reachable.
type head struct {
	arrays int // string arrays read in place
}

// Len is the number of strings.
func (a *StringArray) Len() int { return a.n }

// All yields each index and string. The bytes alias the file: they must not
// be modified, and are valid only until the loop body returns.
func (a *StringArray) All() iter.Seq2[int, []byte] {
	return func(yield func(int, []byte) bool) {
		defer runtime.KeepAlive(a) // its head keeps raw mapped
		p := a.raw
		for i := 0; i < a.n; i++ {
			k := binary.LittleEndian.Uint64(p)
			s := p[8 : 8+k : 8+k]
			p = p[8+k:]
			if !yield(i, s) {
				return
			}
		}
	}
}

// Strings returns the strings as a Go slice: their bytes share one
// allocation.
func (a *StringArray) Strings() []string {
	total := len(a.raw) - 8*a.n
	var b strings.Builder
	b.Grow(total)
	for _, s := range a.All() {
		b.Write(s)
	}
	all := b.String()
	out := make([]string, a.n)
	off := 0
	for i, s := range a.All() {
		out[i] = all[off : off+len(s)]
		off += len(s)
	}
	return out
}

// at returns string i (a copy), walking the array from its start.
func (a *StringArray) at(i int) string {
	for j, s := range a.All() {
		if j == i {
			return string(s)
		}
	}
	return ""
}
