package tokenizer

import (
	"cmp"
	"hash/maphash"
	"slices"
)

// pieceTable maps a piece to its token id: an open-addressing table
// (linear probing) of ids into the vocabulary's own strings, so that it
// stores no copy of any piece. Each slot holds the id plus one in its low
// 32 bits (0: an empty slot) and the high 32 bits of the piece's hash in
// its high bits, so that a probe compares strings only when those agree.
// On a 128k-token vocabulary it takes 2 MiB where a map[string]int32 took
// 6.7 MB.
type pieceTable struct {
	pieces []string // the vocabulary's pieces, not copied
	slots  []uint64
	mask   uint64 // len(slots)-1, a power of two less one
	seed   maphash.Seed
}

// newPieceTable returns an empty table for pieces with room for all of
// them (at most two thirds of the slots are ever used).
func newPieceTable(pieces []string) pieceTable {
	size := 8
	for size < len(pieces)+len(pieces)/2 {
		size *= 2
	}
	return pieceTable{pieces: pieces, slots: make([]uint64, size), mask: uint64(size - 1), seed: maphash.MakeSeed()}
}

// probe returns the slot that holds s, of hash h, or the empty slot where
// it would go.
func (p *pieceTable) probe(s string, h uint64) uint64 {
	tag := h &^ (1<<32 - 1)
	for i := h & p.mask; ; i = (i + 1) & p.mask {
		v := p.slots[i]
		if v == 0 || v&^(1<<32-1) == tag && p.pieces[uint32(v)-1] == s {
			return i
		}
	}
}

// set maps piece id's text to id, replacing the id an equal piece had;
// it returns that id and whether there was one.
func (p *pieceTable) set(id int32) (int32, bool) {
	s := p.pieces[id]
	h := maphash.String(p.seed, s)
	i := p.probe(s, h)
	old := p.slots[i]
	p.slots[i] = h&^(1<<32-1) | uint64(id) + 1
	return int32(uint32(old)) - 1, old != 0
}

// get returns the id of s.
func (p *pieceTable) get(s string) (int32, bool) {
	v := p.slots[p.probe(s, maphash.String(p.seed, s))]
	return int32(uint32(v)) - 1, v != 0
}

// getBytes returns the id of the piece spelled b.
func (p *pieceTable) getBytes(b []byte) (int32, bool) {
	h := maphash.Bytes(p.seed, b)
	tag := h &^ (1<<32 - 1)
	for i := h & p.mask; ; i = (i + 1) & p.mask {
		v := p.slots[i]
		if v == 0 || v&^(1<<32-1) == tag && p.pieces[uint32(v)-1] == string(b) {
			return int32(uint32(v)) - 1, v != 0
		}
	}
}

// mergeTable holds the merges of two tokens, grouped by their left token
// and sorted by the right one: the merges whose left token is l are
// entries[start[l]:start[l+1]]. 12 bytes per merge and 4 per token (3.9 MB
// for Llama 3's 280k merges, where a map took 9.0 MB).
type mergeTable struct {
	start   []int32
	entries []mergeEntry
}

// mergeEntry is one merge: its right token, its rank and the token its
// result is (-1 when the merged text is no token).
type mergeEntry struct{ right, rank, tok int32 }

// get returns the merge of tokens l and r.
func (m *mergeTable) get(l, r int32) (mergeVal, bool) {
	if int(l)+1 >= len(m.start) {
		return mergeVal{}, false
	}
	e := m.entries[m.start[l]:m.start[l+1]]
	lo, hi := 0, len(e)
	for lo < hi {
		h := int(uint(lo+hi) >> 1)
		if e[h].right < r {
			lo = h + 1
		} else {
			hi = h
		}
	}
	if lo < len(e) && e[lo].right == r {
		return mergeVal{rank: e[lo].rank, tok: e[lo].tok}, true
	}
	return mergeVal{}, false
}

// newMergeTable builds the table from n tokens and the pairs (lr[2k],
// lr[2k+1]) of rank k, where a negative left marks no merge; of duplicate
// pairs the lowest rank counts. tok gives the token of a merge's result.
func newMergeTable(n int, lr []int32, tok func(l, r int32) int32) mergeTable {
	m := mergeTable{start: make([]int32, n+1)}
	count := 0
	for k := 0; k < len(lr); k += 2 {
		if l := lr[k]; l >= 0 {
			m.start[l+1]++
			count++
		}
	}
	for i := range n {
		m.start[i+1] += m.start[i]
	}
	m.entries = make([]mergeEntry, count)
	next := slices.Clone(m.start[:n])
	for k := 0; k < len(lr); k += 2 {
		if l := lr[k]; l >= 0 {
			m.entries[next[l]] = mergeEntry{right: lr[k+1], rank: int32(k / 2), tok: -1}
			next[l]++
		}
	}
	// Sort each left token's merges by right token (ranks ascending among
	// equal ones), keep the first of each pair, and close the gaps.
	w := int32(0)
	for l := range n {
		seg := m.entries[m.start[l]:m.start[l+1]]
		slices.SortStableFunc(seg, func(a, b mergeEntry) int { return cmp.Compare(a.right, b.right) })
		m.start[l] = w
		for i, e := range seg {
			if i > 0 && e.right == seg[i-1].right {
				continue
			}
			e.tok = tok(int32(l), e.right)
			m.entries[w] = e
			w++
		}
	}
	m.start[n] = w
	m.entries = slices.Clip(m.entries[:w])
	return m
}
