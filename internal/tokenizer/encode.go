package tokenizer

import (
	"fmt"
	"strings"
)

// llama2cMinScore is run.c's initial best_score (float best_score = -1e10):
// a merge must score strictly above it.
const llama2cMinScore float32 = -1e10

// encodeLlama2C reproduces run.c's encode. out holds BOS or nothing; run.c
// lets BOS take part in the merges, so it does here too.
func (t *Tokenizer) encodeLlama2C(out []int, text string) ([]int, error) {
	var m merger
	for _, id := range out {
		m.push(int32(id), 0, 0)
	}
	if text != "" {
		// add_dummy_prefix: the token for " " precedes the text.
		sp, ok := t.lookup.get(" ")
		if !ok {
			return nil, fmt.Errorf("vocabulary has no \" \" token for the dummy prefix")
		}
		m.push(sp, 0, 0)
	}
	// Split into UTF-8 code points as run.c does: a byte plus up to three
	// following continuation bytes (lead bytes are not validated). A chunk
	// that is not a piece falls back to one token per byte, id byte+3.
	for i := 0; i < len(text); {
		j := i + 1
		for j < len(text) && text[j]&0xC0 == 0x80 && j-i < 4 {
			j++
		}
		if id, ok := t.lookup.get(text[i:j]); ok {
			m.push(id, 0, 0)
		} else {
			for k := i; k < j; k++ {
				id := int(text[k]) + 3
				if id >= t.n {
					return nil, fmt.Errorf("byte fallback for 0x%02X needs token %d, beyond the %d-token vocabulary", text[k], id, t.n)
				}
				m.push(int32(id), 0, 0)
			}
		}
		i = j
	}
	var buf []byte
	pair := func(l, r int32) (int32, float32, bool) {
		buf = append(append(buf[:0], t.v.Tokens[m.syms[l].tok]...), t.v.Tokens[m.syms[r].tok]...)
		id, ok := t.lookup.getBytes(buf)
		if !ok || !(t.v.Scores[id] > llama2cMinScore) {
			return 0, 0, false
		}
		return id, t.v.Scores[id], true
	}
	m.run(pair)
	out = out[:0]
	for i := m.first(); i >= 0; i = m.syms[i].next {
		out = append(out, int(m.syms[i].tok))
	}
	return out, nil
}

// encodeFragments encodes partitioned text: special tokens as they are,
// raw fragments with the vocabulary's flavor. For SPM it reproduces
// llama.cpp's llama_vocab::tokenize: each raw fragment gets the
// dummy-prefix space when it starts the text or follows a special token,
// spaces become U+2581, and the fragment is merged pair by pair.
func (t *Tokenizer) encodeFragments(out []int, text string, frags []fragment) ([]int, error) {
	prevSpecial := true
	var err error
	for _, f := range frags {
		if f.tok >= 0 {
			out = append(out, int(f.tok))
			prevSpecial = true
			continue
		}
		frag := text[f.start:f.end]
		if t.dummy && prevSpecial {
			frag = " " + frag
		}
		out, err = t.spmSession(out, strings.ReplaceAll(frag, " ", spaceEscape))
		if err != nil {
			return nil, err
		}
		prevSpecial = false
	}
	return out, nil
}

// utf8Len is llama.cpp's unicode_len_utf8: the sequence length a lead byte
// announces, 1 for continuation bytes.
func utf8Len(b byte) int {
	switch {
	case b < 0xC0:
		return 1
	case b < 0xE0:
		return 2
	case b < 0xF0:
		return 3
	}
	return 4
}

// spmSession is llm_tokenizer_spm_session::tokenize for one escaped
// fragment. When no piece of the vocabulary holds U+2581 right after
// another character (Tokenizer.spmWords), no merge can cross the start of a
// word (a U+2581 after a symbol that is not U+2581), so each word is
// merged on its own: the same result, with smaller queues.
func (t *Tokenizer) spmSession(out []int, text string) ([]int, error) {
	var m merger
	var err error
	start, prevEscape := 0, false
	for i := 0; i < len(text); {
		n := min(utf8Len(text[i]), len(text)-i)
		escape := n == len(spaceEscape) && text[i:i+n] == spaceEscape
		if t.spmWords && escape && !prevEscape && i > start {
			if out, err = t.spmMerge(out, &m, text, start, i); err != nil {
				return nil, err
			}
			start = i
		}
		prevEscape = escape
		i += n
	}
	return t.spmMerge(out, &m, text, start, len(text))
}

// spmMerge merges text[lo:hi] and appends its tokens.
func (t *Tokenizer) spmMerge(out []int, m *merger, text string, lo, hi int) ([]int, error) {
	m.syms, m.heap = m.syms[:0], m.heap[:0]
	for i := lo; i < hi; {
		n := min(utf8Len(text[i]), hi-i)
		m.push(-1, int32(i), int32(n))
		i += n
	}
	pair := func(l, r int32) (int32, float32, bool) {
		a := m.syms[l]
		id, ok := t.lookup.get(text[a.start : a.start+a.n+m.syms[r].n])
		if !ok {
			return 0, 0, false
		}
		return id, t.v.Scores[id], true
	}
	m.run(pair)
	for i := m.first(); i >= 0; i = m.syms[i].next {
		s := m.syms[i]
		piece := text[s.start : s.start+s.n]
		if id, ok := t.lookup.get(piece); ok {
			out = append(out, int(id))
			continue
		}
		// Resegment: a symbol that is no piece is emitted byte by byte.
		for k := 0; k < len(piece); k++ {
			id := t.spmByte[piece[k]]
			if id < 0 {
				return nil, fmt.Errorf("byte 0x%02X has no <0x%02X> token, no one-byte token and no UNK token", piece[k], piece[k])
			}
			out = append(out, int(id))
		}
	}
	return out, nil
}

// symbol is one node of the merger's doubly linked list.
type symbol struct {
	tok        int32 // token id (Llama2C) or -1 (SPM: spans of text)
	start, n   int32 // SPM: the symbol is text[start:start+n]
	prev, next int32 // neighbours, -1 at the ends
	gen        uint32
	dead       bool
}

// bigram is a candidate merge of two adjacent symbols.
type bigram struct {
	score       float32
	left, right int32
	lgen, rgen  uint32 // generations the symbols had when it was queued
	tok         int32
}

// before orders the queue: highest score first, then leftmost.
func (a *bigram) before(b *bigram) bool {
	return a.score > b.score || (a.score == b.score && a.left < b.left)
}

// merger repeatedly merges the best adjacent pair, run.c's and llama.cpp's
// shared algorithm, with a binary heap and lazy deletion: a queued pair is
// stale once either symbol changed (its generation moved) or died.
type merger struct {
	syms []symbol
	heap []bigram
}

func (m *merger) push(tok, start, n int32) {
	i := int32(len(m.syms))
	next := int32(-1)
	if i > 0 {
		m.syms[i-1].next = i
	}
	m.syms = append(m.syms, symbol{tok: tok, start: start, n: n, prev: i - 1, next: next})
}

func (m *merger) first() int32 {
	if len(m.syms) == 0 {
		return -1
	}
	return 0 // the first symbol only ever absorbs others
}

// run merges until no adjacent pair forms a piece. pair reports the token,
// and its score, that symbols l and r would merge into.
func (m *merger) run(pair func(l, r int32) (int32, float32, bool)) {
	try := func(l, r int32) {
		if l < 0 || r < 0 {
			return
		}
		tok, score, ok := pair(l, r)
		if !ok {
			return
		}
		m.heapPush(bigram{score: score, left: l, right: r, lgen: m.syms[l].gen, rgen: m.syms[r].gen, tok: tok})
	}
	// Queue every initial pair, then heapify in O(n).
	for i := int32(1); i < int32(len(m.syms)); i++ {
		if tok, score, ok := pair(i-1, i); ok {
			m.heap = append(m.heap, bigram{score: score, left: i - 1, right: i, tok: tok})
		}
	}
	for i := len(m.heap)/2 - 1; i >= 0; i-- {
		m.siftDown(i)
	}
	for len(m.heap) > 0 {
		b := m.heapPop()
		l, r := &m.syms[b.left], &m.syms[b.right]
		if l.dead || r.dead || l.gen != b.lgen || r.gen != b.rgen {
			continue
		}
		l.tok = b.tok
		l.n += r.n
		l.gen++
		r.dead = true
		r.gen++
		l.next = r.next
		if r.next >= 0 {
			m.syms[r.next].prev = b.left
		}
		try(l.prev, b.left)
		try(b.left, l.next)
	}
}

func (m *merger) heapPush(b bigram) {
	m.heap = append(m.heap, b)
	h := m.heap
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].before(&h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (m *merger) heapPop() bigram {
	h := m.heap
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	m.heap = h[:last]
	m.siftDown(0)
	return top
}

func (m *merger) siftDown(i int) {
	h := m.heap
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		c := l
		if r := l + 1; r < len(h) && h[r].before(&h[l]) {
			c = r
		}
		if !h[c].before(&h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}
