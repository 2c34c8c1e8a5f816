package tokenizer

import (
	"bytes"
	"fmt"
	"sync"
	"unicode/utf8"
)

// byteChars[b] is the character GPT-2's byte-level BPE writes for byte b:
// printable Latin-1 bytes stand for themselves, the other 68 bytes map to
// U+0100 onwards in byte order. charByte is its inverse.
var (
	byteChars [256]string
	charByte  = map[rune]byte{}
)

func init() {
	n := 0
	for b := range 256 {
		c := rune(b)
		if !(b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE) {
			c = rune(256 + n)
			n++
		}
		byteChars[b] = string(c)
		charByte[c] = byte(b)
	}
}

// mergeVal is the rank of a merge and the token its result is (-1 when
// the merged text is no token).
type mergeVal struct{ rank, tok int32 }

// bpeData is what a BPE tokenizer adds to a Tokenizer.
type bpeData struct {
	pre preSpec
	// byteTok[b] is the token of byteChars[b], -1 when there is none.
	byteTok [256]int32
	// merges holds the merges of two tokens; strMerges, keyed "left
	// right", those where a side is no token. The first of duplicate
	// merges wins, as in llama.cpp's bpe_ranks.emplace.
	merges    mergeTable
	strMerges map[string]int32
	pool      sync.Pool // *bpeState
}

// bpeState is the scratch memory of one encoding.
type bpeState struct {
	cps  []rune
	sp   splitter
	word []byte // the bytes of one word (UTF-8 as llama.cpp re-encodes it)
	buf  []byte
	m    merger
	// cache remembers the tokens of the words one encoding has merged (a
	// word's tokens depend on nothing else); it is emptied at the start of
	// each encoding and when it reaches cacheWords entries.
	cache map[string][]int32
}

// cacheWords bounds a bpeState's word cache.
const cacheWords = 1 << 14

// buildBPE validates the merges and fills t.bpe.
func (t *Tokenizer) buildBPE() error {
	pre, err := lookupPre(t.v.Pre)
	if err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	b := &bpeData{pre: pre, strMerges: map[string]int32{}}
	b.pool.New = func() any { return new(bpeState) }
	for i := range 256 {
		b.byteTok[i] = -1
		if id, ok := t.lookup.get(byteChars[i]); ok {
			b.byteTok[i] = id
		}
	}
	var lr []int32
	if t.v.Merges != nil {
		n := t.v.Merges.Len()
		if n > 1<<30 {
			return fmt.Errorf("tokenizer: %d merges is too many", n)
		}
		// lr holds the left and right tokens of each merge of two
		// tokens, by rank; -1 on the left marks the others.
		lr = make([]int32, 0, 2*n)
		for _, m := range t.v.Merges.All() {
			rank := len(lr) / 2
			if rank == n {
				return fmt.Errorf("tokenizer: the merges yield more than their length %d", n)
			}
			lr = append(lr, -1, 0)
			// llama.cpp splits at the first space after the first
			// byte; a merge without one pairs two empty pieces and
			// never applies.
			k := bytes.IndexByte(m[min(1, len(m)):], ' ')
			if k < 0 {
				continue
			}
			k += min(1, len(m))
			left, right := m[:k], m[k+1:]
			l, okl := t.lookup.getBytes(left)
			r, okr := t.lookup.getBytes(right)
			if okl && okr {
				lr[2*rank], lr[2*rank+1] = l, r
				continue
			}
			if key := string(left) + " " + string(right); !hasKey(b.strMerges, key) {
				b.strMerges[key] = int32(rank)
			}
		}
	}
	var buf []byte
	b.merges = newMergeTable(t.n, lr, func(l, r int32) int32 {
		buf = append(append(buf[:0], t.v.Tokens[l]...), t.v.Tokens[r]...)
		if tok, ok := t.lookup.getBytes(buf); ok {
			return tok
		}
		return -1
	})
	t.bpe = b
	return nil
}

// bpeFragment encodes one raw fragment with llama.cpp's
// llm_tokenizer_bpe_session: pre-tokenize into words, map each word's
// bytes to GPT-2 characters, merge by rank, emit each final symbol as its
// token or, when it is none, the tokens of its single bytes.
func (t *Tokenizer) bpeFragment(out []int, st *bpeState, text string) ([]int, error) {
	st.cps = decodeCodepoints(st.cps[:0], text)
	for _, c := range st.cps {
		if c > utf8.MaxRune {
			return nil, fmt.Errorf("text holds a UTF-8 sequence for U+%X, beyond U+10FFFF", c)
		}
	}
	st.sp.reset(st.cps)
	st.sp.run(t.bpe.pre.family)
	start := 0
	for _, e := range st.sp.ends {
		st.word = st.word[:0]
		for _, c := range st.cps[start:e] {
			st.word = appendCodepoint(st.word, c)
		}
		start = int(e)
		out = t.bpeWord(out, st)
	}
	return out, nil
}

// mapped appends the GPT-2 characters of bytes to dst.
func mapped(dst []byte, bytes []byte) []byte {
	for _, b := range bytes {
		dst = append(dst, byteChars[b]...)
	}
	return dst
}

// bpeWord appends the tokens of the word in st.word, from the cache or
// by merging.
func (t *Tokenizer) bpeWord(out []int, st *bpeState) []int {
	if ids, ok := st.cache[string(st.word)]; ok {
		for _, id := range ids {
			out = append(out, int(id))
		}
		return out
	}
	n := len(out)
	out = t.bpeMerge(out, st)
	if st.cache == nil || len(st.cache) >= cacheWords {
		st.cache = make(map[string][]int32)
	}
	ids := make([]int32, len(out)-n)
	for i, id := range out[n:] {
		ids[i] = int32(id)
	}
	st.cache[string(st.word)] = ids
	return out
}

// bpeMerge merges the word in st.word and appends its tokens.
func (t *Tokenizer) bpeMerge(out []int, st *bpeState) []int {
	w := st.word
	if t.bpe.pre.ignoreMerges {
		st.buf = mapped(st.buf[:0], w)
		if id, ok := t.lookup.getBytes(st.buf); ok {
			return append(out, int(id))
		}
	}
	m := &st.m
	m.syms, m.heap = m.syms[:0], m.heap[:0]
	for i, b := range w {
		m.push(t.bpe.byteTok[b], int32(i), 1)
	}
	pair := func(l, r int32) (int32, float32, bool) {
		a, b := &m.syms[l], &m.syms[r]
		if a.tok >= 0 && b.tok >= 0 {
			v, ok := t.bpe.merges.get(a.tok, b.tok)
			return v.tok, -float32(v.rank), ok
		}
		if len(t.bpe.strMerges) == 0 {
			return 0, 0, false
		}
		st.buf = mapped(st.buf[:0], w[a.start:a.start+a.n])
		st.buf = append(st.buf, ' ')
		st.buf = mapped(st.buf, w[b.start:b.start+b.n])
		rank, ok := t.bpe.strMerges[string(st.buf)]
		if !ok {
			return 0, 0, false
		}
		// The merged text: its token, if any.
		st.buf = mapped(st.buf[:0], w[a.start:b.start+b.n])
		tok, found := t.lookup.getBytes(st.buf)
		if !found {
			tok = -1
		}
		return tok, -float32(rank), true
	}
	m.run(pair)
	for i := m.first(); i >= 0; i = m.syms[i].next {
		s := m.syms[i]
		if s.tok >= 0 {
			out = append(out, int(s.tok))
			continue
		}
		// No token: llama.cpp looks up each byte of the mapped text alone.
		st.buf = mapped(st.buf[:0], w[s.start:s.start+s.n])
		for k := range st.buf {
			if id, ok := t.lookup.getBytes(st.buf[k : k+1]); ok {
				out = append(out, int(id))
			}
		}
	}
	return out
}

// decodeBPEText is llama.cpp's llama_decode_text: each character of a
// normal token stands for one byte; a character outside GPT-2's map comes
// out as "[UNK_BYTE_0x<hex of its UTF-8>" followed by the whole token text
// and "]".
func decodeBPEText(p string) []byte {
	var out []byte
	for _, c := range decodeCodepoints(nil, p) {
		if b, ok := charByte[c]; ok {
			out = append(out, b)
			continue
		}
		out = append(out, "[UNK_BYTE_0x"...)
		for _, x := range appendCodepoint(nil, min(c, utf8.MaxRune)) {
			out = fmt.Appendf(out, "%02x", x)
		}
		out = append(out, p...)
		out = append(out, ']')
	}
	return out
}

func hasKey[K comparable, V any](m map[K]V, k K) bool {
	_, ok := m[k]
	return ok
}
