package tokenizer

import (
	"fmt"
	"unicode/utf8"
)

// AppendPiece appends the bytes of token tok, which follows token prev (-1
// when tok starts the sequence), to dst. The rules are llama2.c run.c's
// decode:
//   - a byte token (Llama2C: a piece spelled <0xXX>; SPM: a token of type
//     Byte) is its raw byte;
//   - right after BOS, one leading space of a non-byte piece is dropped: it
//     is the dummy prefix the encoder added (SPM vocabularies with
//     NoDummyPrefix keep it);
//   - BOS itself is empty: it marks a sequence start and is never text
//     (run.c stops generating when it samples BOS).
//
// SPM pieces are further decoded as llama.cpp's token_to_piece does: U+2581
// becomes a space, and control, unknown, unused and undefined tokens are
// empty. An id outside the vocabulary is an error; prev is only compared
// with BOS and may be anything.
func (t *Tokenizer) AppendPiece(dst []byte, prev, tok int) ([]byte, error) {
	if err := t.checkID(tok); err != nil {
		return dst, fmt.Errorf("decode: %w", err)
	}
	p := t.piece(tok)
	if prev == t.v.BOS && prev >= 0 && t.dummy && t.byteVal[tok] < 0 && len(p) > 0 && p[0] == ' ' {
		p = p[1:]
	}
	return append(dst, p...), nil
}

// Piece returns the bytes of token tok following token prev; see
// AppendPiece.
func (t *Tokenizer) Piece(prev, tok int) ([]byte, error) {
	return t.AppendPiece(nil, prev, tok)
}

// Decode returns the text of a whole token sequence: the concatenation of
// each token's piece given the token before it (none for the first). The
// result may hold invalid UTF-8 when the tokens do.
func (t *Tokenizer) Decode(tokens []int) (string, error) {
	var buf []byte
	prev := -1
	for _, tok := range tokens {
		var err error
		if buf, err = t.AppendPiece(buf, prev, tok); err != nil {
			return "", err
		}
		prev = tok
	}
	return string(buf), nil
}

// Llama2CPrintable reports whether run.c's safe_printf would print piece:
// it drops empty pieces and single bytes that are neither printable ASCII
// nor whitespace (such as the halves of a UTF-8 sequence emitted by byte
// tokens). A caller that must reproduce run.c's stdout byte for byte filters
// each piece with it; a caller that wants all text uses a StreamDecoder.
func Llama2CPrintable(piece []byte) bool {
	if len(piece) == 0 {
		return false
	}
	if len(piece) == 1 {
		c := piece[0]
		return (c >= 0x20 && c <= 0x7E) || c == ' ' || (c >= '\t' && c <= '\r')
	}
	return true
}

// StreamDecoder turns tokens, one at a time, into text that is safe to show:
// it holds back the bytes of a UTF-8 sequence that a later token may
// complete, and loses no byte (bytes that can never form valid UTF-8 are
// passed through as they are).
type StreamDecoder struct {
	t       *Tokenizer
	prev    int
	pending []byte
}

// NewStreamDecoder returns a decoder at the start of a sequence.
func (t *Tokenizer) NewStreamDecoder() *StreamDecoder {
	return &StreamDecoder{t: t, prev: -1}
}

// Next takes the next token of the sequence and returns the bytes that are
// ready: everything decoded so far except an incomplete UTF-8 sequence at
// the end. The returned slice is valid until the next call.
func (d *StreamDecoder) Next(tok int) ([]byte, error) {
	var err error
	d.pending, err = d.t.AppendPiece(d.pending, d.prev, tok)
	if err != nil {
		return nil, err
	}
	d.prev = tok
	cut := len(d.pending) - incompleteTail(d.pending)
	out := make([]byte, cut)
	copy(out, d.pending[:cut])
	d.pending = append(d.pending[:0], d.pending[cut:]...)
	return out, nil
}

// Flush returns the bytes held back (an unfinished UTF-8 sequence) and
// empties the decoder's buffer; call it at the end of the sequence.
func (d *StreamDecoder) Flush() []byte {
	out := d.pending
	d.pending = nil
	return out
}

// incompleteTail is the length of the suffix of b that is a proper prefix
// of a valid UTF-8 encoding (0 to 3 bytes).
func incompleteTail(b []byte) int {
	for k := 1; k <= 3 && k <= len(b); k++ {
		c := b[len(b)-k]
		if c&0xC0 == 0x80 {
			continue // continuation byte: look further back for the lead
		}
		if !utf8.FullRune(b[len(b)-k:]) {
			return k
		}
		return 0
	}
	return 0
}
