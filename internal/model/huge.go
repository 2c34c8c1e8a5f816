package model

import (
	"unsafe"

	"github.com/verdictnet/verdict/internal/hugepage"
	"github.com/verdictnet/verdict/internal/tensor"
)

// minHugeCopy is the least weight bytes CopyToHugePages copies: below two
// huge pages nothing is gained. A variable so that tests can copy small
// models.
var minHugeCopy = 2 * hugepage.Size

// CopyToHugePages copies every weight tensor out of the model file's
// mapping into one block of memory in huge pages (internal/hugepage) and
// releases the mapping's pages they held, and returns the bytes copied (0
// for weights under two huge pages, or already copied). A decode step reads
// every weight once: from 2 MiB pages a 110m Q8_0 step took 10–12% less
// time for one sequence and 3–4% for sixteen than from the mapped file
// (docs/benchmarks.md, session 20). The bytes are the same, so is every
// result. The cost: the weights are the process's own memory, which the
// kernel cannot drop under pressure and another process serving the same
// file does not share, where the file's pages are both. Call it before the
// model is used (an engine keeps no copy of a tensor's slice, but a caller
// could).
func (m *Model) CopyToHugePages() int64 {
	if m.copied {
		return 0
	}
	seen := map[*tensor.Tensor]bool{}
	var ts []*tensor.Tensor
	total := 0
	for _, e := range m.Entries() {
		if t := e.Tensor; t != nil && len(t.Data) > 0 && !seen[t] {
			seen[t] = true
			ts = append(ts, t)
			total += (len(t.Data) + 63) &^ 63 // each tensor on a cache line
		}
	}
	if total < minHugeCopy {
		return 0
	}
	f := hugepage.Floats(total / 4)
	block := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(f))), total)
	rel, _ := m.closer.(interface{ Release([]byte) })
	off := 0
	for _, t := range ts {
		n := copy(block[off:], t.Data)
		if rel != nil {
			rel.Release(t.Data)
		}
		t.Data = block[off : off+n : off+n]
		off += (n + 63) &^ 63
	}
	m.copied = true
	return int64(total)
}
