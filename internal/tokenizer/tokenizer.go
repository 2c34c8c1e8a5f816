package tokenizer

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// MaxTextLen is the longest text, in bytes, that Encode accepts. It keeps
// every symbol index inside an int32 even after SPM's space escaping (which
// can triple the length).
const MaxTextLen = 1 << 28

// spaceEscape is SentencePiece's visible space, U+2581 LOWER ONE EIGHTH BLOCK.
const spaceEscape = "\u2581"

// Tokenizer encodes text to token ids and decodes ids back to bytes for one
// vocabulary. It is immutable after New and safe for concurrent use.
type Tokenizer struct {
	v      *Vocab
	n      int
	dummy  bool       // a dummy-prefix space is added before the text
	lookup pieceTable // piece -> id
	// spmByte[b] is the token an SPM encoding emits for byte b when no
	// piece covers it: <0xXX>, else the one-byte piece, else UNK, else -1.
	spmByte [256]int32
	// attrs[id] are llama.cpp's attributes of token id (SPM and BPE);
	// special lists the tokens that special-token parsing looks for
	// (control, user-defined and unknown, non-empty pieces), longer pieces
	// first, then lower ids.
	attrs   []attr
	special []int32
	// spmWords: no SPM piece holds U+2581 after another character, so
	// words can be merged one by one (see spmSession).
	spmWords bool
	// eog lists the end-of-generation tokens, sorted.
	eog []int
	// bpe is set for BPE vocabularies.
	bpe *bpeData
	// decoded[decOff[id]:decOff[id+1]] is the text of token id (one
	// allocation for all); byteVal[id] is its byte value for byte tokens,
	// -1 for others.
	decoded []byte
	decOff  []uint32
	byteVal []int16
	// maxPiece is the bytes of the longest piece (at least 1).
	maxPiece int
}

// New checks v and builds a Tokenizer for it. v must not be modified
// afterwards.
//
// Validation rules:
//   - at least one token; Scores (and Types, when not nil) as long as Tokens;
//   - no NaN score (the merge order would be undefined);
//   - Types within 0..6; SPM and BPE byte tokens spelled exactly <0xXX>;
//   - BOS and EOS in range or -1; UNK in range or -1; EOG ids in range;
//   - Llama2C: every piece unique (including the empty one) and free of NUL
//     bytes: run.c looks pieces up as C strings by binary search, so a
//     duplicate or an embedded NUL would make its encoding ambiguous;
//   - SPM and BPE: duplicate pieces are allowed and the highest id wins,
//     exactly like llama.cpp's token_to_id map; empty pieces are never
//     matched;
//   - BPE: Pre names a supported pre-tokenizer (see PreTokenizers); a merge
//     without a space after its first byte never applies, and of duplicate
//     merges the first counts, as in llama.cpp.
func New(v *Vocab) (*Tokenizer, error) {
	if v == nil {
		return nil, errors.New("tokenizer: nil vocabulary")
	}
	n := len(v.Tokens)
	switch {
	case n == 0:
		return nil, errors.New("tokenizer: empty vocabulary")
	case n > math.MaxInt32:
		return nil, fmt.Errorf("tokenizer: vocabulary of %d tokens is too large", n)
	case len(v.Scores) != n:
		return nil, fmt.Errorf("tokenizer: %d tokens but %d scores", n, len(v.Scores))
	case v.Types != nil && len(v.Types) != n:
		return nil, fmt.Errorf("tokenizer: %d tokens but %d token types", n, len(v.Types))
	case v.Flavor != Llama2C && v.Flavor != SPM && v.Flavor != BPE:
		return nil, fmt.Errorf("tokenizer: unknown flavor %q", v.Flavor)
	}
	for _, id := range []struct {
		name string
		id   int
	}{{"BOS", v.BOS}, {"EOS", v.EOS}, {"UNK", v.UNK}} {
		if id.id < -1 || id.id >= n {
			return nil, fmt.Errorf("tokenizer: %s id %d out of range [0,%d)", id.name, id.id, n)
		}
	}
	t := &Tokenizer{
		v:        v,
		n:        n,
		maxPiece: 1,
		dummy:    v.Flavor == Llama2C || v.Flavor == SPM && !v.NoDummyPrefix,
		lookup:   newPieceTable(v.Tokens),
		decOff:   make([]uint32, n+1),
		byteVal:  make([]int16, n),
	}
	for i, s := range v.Scores {
		if s != s {
			return nil, fmt.Errorf("tokenizer: token %d (%q) has a NaN score", i, v.Tokens[i])
		}
	}
	for i, p := range v.Tokens {
		t.maxPiece = max(t.maxPiece, len(p))
		typ := t.typ(i)
		if typ < Undefined || typ > Byte {
			return nil, fmt.Errorf("tokenizer: token %d (%q) has unknown type %d", i, p, typ)
		}
		if v.Flavor == Llama2C {
			if strings.IndexByte(p, 0) >= 0 {
				return nil, fmt.Errorf("tokenizer: token %d (%q) contains a NUL byte", i, p)
			}
			if j, dup := t.lookup.set(int32(i)); dup {
				return nil, fmt.Errorf("tokenizer: tokens %d and %d are both %q", j, i, p)
			}
		} else if p != "" {
			t.lookup.set(int32(i)) // last wins, as in llama.cpp
		}
	}
	for _, id := range v.EOG {
		if id < 0 || id >= n {
			return nil, fmt.Errorf("tokenizer: end-of-generation id %d out of range [0,%d)", id, n)
		}
	}
	if v.Flavor != Llama2C {
		t.buildSpecial()
	}
	if err := t.buildDecode(); err != nil {
		return nil, err
	}
	switch v.Flavor {
	case SPM:
		t.buildSPM()
	case BPE:
		if err := t.buildBPE(); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// typ is the type of token id (Normal when the vocabulary has no types).
func (t *Tokenizer) typ(id int) TokenType {
	if t.v.Types == nil {
		return Normal
	}
	return t.v.Types[id]
}

// parseByteToken reports the byte of a piece spelled exactly <0xXX>.
func parseByteToken(p string) (byte, bool) {
	if len(p) != 6 || p[:3] != "<0x" || p[5] != '>' {
		return 0, false
	}
	hi, ok1 := unhex(p[3])
	lo, ok2 := unhex(p[4])
	return hi<<4 | lo, ok1 && ok2
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// buildDecode fills decoded, decOff and byteVal.
func (t *Tokenizer) buildDecode() error {
	size := 0
	for _, p := range t.v.Tokens {
		size += len(p) // most decoded pieces are no longer than their piece
	}
	t.decoded = make([]byte, 0, size)
	for i, p := range t.v.Tokens {
		if err := t.decodePiece(i, p); err != nil {
			return err
		}
		if len(t.decoded) > math.MaxUint32 {
			return fmt.Errorf("tokenizer: the decoded pieces hold more than 4 GiB")
		}
		t.decOff[i+1] = uint32(len(t.decoded))
	}
	if len(t.decoded) > size {
		t.decoded = slices.Clone(t.decoded) // grown: drop the spare capacity
	}
	return nil
}

// piece is the decoded text of token id.
func (t *Tokenizer) piece(id int) []byte {
	a, b := t.decOff[id], t.decOff[id+1]
	return t.decoded[a:b:b]
}

// decodePiece appends the text of token i, piece p, to decoded and sets
// its byteVal.
func (t *Tokenizer) decodePiece(i int, p string) error {
	t.byteVal[i] = -1
	if i == t.v.BOS {
		return nil // BOS marks a sequence start; it is never text
	}
	if t.v.Flavor == Llama2C {
		// run.c: a piece that reads as <0xXX> is that raw byte.
		if b, ok := parseByteToken(p); ok {
			t.byteVal[i] = int16(b)
			t.decoded = append(t.decoded, b)
		} else {
			t.decoded = append(t.decoded, p...)
		}
		return nil
	}
	// SPM and BPE, as llama.cpp's token_to_piece without special
	// tokens.
	if t.attrs[i]&(attrControl|attrUnknown) != 0 {
		return nil
	}
	switch t.typ(i) {
	case Normal:
		if t.v.Flavor == BPE {
			t.decoded = append(t.decoded, decodeBPEText(p)...)
		} else {
			t.decoded = append(t.decoded, strings.ReplaceAll(p, spaceEscape, " ")...)
		}
	case Byte:
		b, ok := parseByteToken(p)
		if !ok {
			return fmt.Errorf("tokenizer: token %d is a byte token but its piece %q is not <0xXX>", i, p)
		}
		t.byteVal[i] = int16(b)
		t.decoded = append(t.decoded, b)
	case UserDefined:
		t.decoded = append(t.decoded, p...)
	default: // Unused, Undefined: no text
	}
	return nil
}

// buildSPM fills spmByte and spmWords.
func (t *Tokenizer) buildSPM() {
	t.spmWords = true
	for _, p := range t.v.Tokens {
		for k := 1; k < len(p) && t.spmWords; k++ {
			if strings.HasPrefix(p[k:], spaceEscape) && (k < len(spaceEscape) || p[k-len(spaceEscape):k] != spaceEscape) {
				t.spmWords = false
			}
		}
	}
	const hexdig = "0123456789ABCDEF"
	for b := 0; b < 256; b++ {
		t.spmByte[b] = -1
		if id, ok := t.lookup.getBytes([]byte{'<', '0', 'x', hexdig[b>>4], hexdig[b&15], '>'}); ok {
			t.spmByte[b] = id
		} else if id, ok := t.lookup.getBytes([]byte{byte(b)}); ok {
			t.spmByte[b] = id
		} else if t.v.UNK >= 0 {
			t.spmByte[b] = int32(t.v.UNK)
		}
	}
}

// Vocab returns the vocabulary the tokenizer was built from.
func (t *Tokenizer) Vocab() *Vocab { return t.v }

// MinTokens is a lower bound of the tokens any encoding of text gives
// (Encode, EncodeSpecial, EncodeSpans of its pieces): every token stands
// for the text of one piece, and no piece is longer than the
// vocabulary's longest (a SentencePiece piece spells a space in three
// bytes, a byte-level BPE piece a byte in one or two; a byte no piece
// covers is a token of its own). A BPE vocabulary encodes the text as
// llama.cpp re-encodes it, which may be shorter (an overlong form is
// re-encoded short; a stray byte is U+FFFD's three bytes), less the
// bytes it has no token for, which llama.cpp drops. A caller refuses a
// text far over a context with it before encoding the text, which costs
// a second a few megabytes.
func (t *Tokenizer) MinTokens(text string) int {
	n := len(text)
	if t.bpe != nil {
		n = 0
		var buf [4]byte
		cps := make([]rune, 0, 1024)
		for start := 0; start < len(text); {
			// Pieces of the text cut before a byte that continues no
			// sequence decode as the whole text does.
			end := min(start+cap(cps), len(text))
			for end < len(text) && text[end]&0xC0 == 0x80 {
				end++
			}
			cps = decodeCodepoints(cps[:0], text[start:end])
			start = end
			for _, c := range cps {
				if c > 0x10FFFF {
					continue // Encode fails on it
				}
				for _, b := range appendCodepoint(buf[:0], c) {
					if t.bpe.byteTok[b] >= 0 {
						n++
					}
				}
			}
		}
	}
	if n <= 0 {
		return 0
	}
	return (n-1)/t.maxPiece + 1
}

// Len is the number of tokens in the vocabulary.
func (t *Tokenizer) Len() int { return t.n }

// TokenID returns the id of the token whose piece is exactly piece (as
// stored in the vocabulary: U+2581 for spaces in SPM vocabularies).
func (t *Tokenizer) TokenID(piece string) (int, bool) {
	id, ok := t.lookup.get(piece)
	return int(id), ok
}

// checkID reports an id outside the vocabulary.
func (t *Tokenizer) checkID(id int) error {
	if id < 0 || id >= t.n {
		return fmt.Errorf("token id %d out of range [0,%d)", id, t.n)
	}
	return nil
}
