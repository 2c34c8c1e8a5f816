package tokenizer

import (
	"sync"
	"unicode"
)

// cpFlags classify a code point the way llama.cpp's unicode tables do
// (unicode.cpp, unicode-data.cpp): one general category (\p{L}, \p{N},
// \p{P}, \p{S}, \p{M}, the rest) plus White_Space. fAny is set for every
// code point inside the text being split, so that a zero value means "past
// the end", as llama.cpp's out-of-range flags do.
type cpFlags uint8

const (
	fAny cpFlags = 1 << iota
	fLetter
	fNumber
	fPunct
	fSymbol
	fMark
	fSpace // Unicode White_Space
)

// flagTable caches the flags of the Basic Multilingual Plane.
var (
	flagOnce  sync.Once
	flagTable []cpFlags
)

// cpFlagsOf returns the flags of code point c. llama.cpp's tables follow
// Unicode 15.1, Go's 15.0 (unicode.Version); the 627 code points that
// Unicode 15.1 added are patched in (five ideographic description
// characters, So, and CJK Extension I, Lo). Code points beyond U+10FFFF
// have no category.
func cpFlagsOf(c rune) cpFlags {
	if c >= 0 && c < 0x10000 {
		flagOnce.Do(buildFlagTable)
		return flagTable[c]
	}
	return computeFlags(c)
}

func buildFlagTable() {
	t := make([]cpFlags, 0x10000)
	for c := range t {
		t[c] = computeFlags(rune(c))
	}
	flagTable = t
}

func computeFlags(c rune) cpFlags {
	f := fAny
	if unicode.Is(unicode.White_Space, c) {
		f |= fSpace
	}
	switch {
	case c < 0 || c > unicode.MaxRune:
	case unicode.IsLetter(c):
		f |= fLetter
	case unicode.IsNumber(c):
		f |= fNumber
	case unicode.IsPunct(c):
		f |= fPunct
	case unicode.IsSymbol(c):
		f |= fSymbol
	case unicode.IsMark(c):
		f |= fMark
	case c >= 0x2FFC && c <= 0x2FFF, c == 0x31EF: // Unicode 15.1, So
		f |= fSymbol
	case c >= 0x2EBF0 && c <= 0x2EE5D: // Unicode 15.1, CJK Extension I
		f |= fLetter
	}
	return f
}

// decodeCodepoints decodes text as llama.cpp's unicode_cpts_from_utf8
// does, which is laxer than Go's decoder: a lead byte followed by enough
// continuation bytes is decoded whatever it encodes (overlong forms,
// surrogates, values up to 0x1FFFFF), and any other byte becomes U+FFFD.
func decodeCodepoints(dst []rune, text string) []rune {
	n := len(text)
	for i := 0; i < n; {
		b := text[i]
		switch {
		case b < 0x80:
			dst = append(dst, rune(b))
			i++
			continue
		case b&0x40 == 0:
		case b&0x20 == 0:
			if i+1 < n && text[i+1]&0xC0 == 0x80 {
				dst = append(dst, rune(b&0x1F)<<6|rune(text[i+1]&0x3F))
				i += 2
				continue
			}
		case b&0x10 == 0:
			if i+2 < n && text[i+1]&0xC0 == 0x80 && text[i+2]&0xC0 == 0x80 {
				dst = append(dst, rune(b&0x0F)<<12|rune(text[i+1]&0x3F)<<6|rune(text[i+2]&0x3F))
				i += 3
				continue
			}
		case b&0x08 == 0:
			if i+3 < n && text[i+1]&0xC0 == 0x80 && text[i+2]&0xC0 == 0x80 && text[i+3]&0xC0 == 0x80 {
				dst = append(dst, rune(b&0x07)<<18|rune(text[i+1]&0x3F)<<12|rune(text[i+2]&0x3F)<<6|rune(text[i+3]&0x3F))
				i += 4
				continue
			}
		}
		dst = append(dst, 0xFFFD)
		i++
	}
	return dst
}

// appendCodepoint encodes c as llama.cpp's unicode_cpt_to_utf8 does
// (surrogates included, unlike Go's encoder). c must be at most 0x10FFFF.
func appendCodepoint(dst []byte, c rune) []byte {
	switch {
	case c < 0x80:
		return append(dst, byte(c))
	case c < 0x800:
		return append(dst, 0xC0|byte(c>>6), 0x80|byte(c&0x3F))
	case c < 0x10000:
		return append(dst, 0xE0|byte(c>>12), 0x80|byte(c>>6&0x3F), 0x80|byte(c&0x3F))
	}
	return append(dst, 0xF0|byte(c>>18), 0x80|byte(c>>12&0x3F), 0x80|byte(c>>6&0x3F), 0x80|byte(c&0x3F))
}
