package jinja

import (
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// tokenType is the kind of a lexer token (the reference's TOKEN_TYPES).
type tokenType uint8

const (
	tText tokenType = iota
	tNumber
	tString
	tIdent
	tEquals
	tOpenParen
	tCloseParen
	tOpenStatement
	tCloseStatement
	tOpenExpression
	tCloseExpression
	tOpenBracket
	tCloseBracket
	tOpenCurly
	tCloseCurly
	tComma
	tDot
	tColon
	tPipe
	tAdditive
	tMultiplicative
	tPower
	tComparison
	tUnary
	tComment
)

var tokenNames = [...]string{"text", "number", "string", "identifier", "'='", "'('", "')'", "'{%'", "'%}'", "'{{'", "'}}'",
	"'['", "']'", "'{'", "'}'", "','", "'.'", "':'", "'|'", "additive operator", "multiplicative operator", "'**'",
	"comparison operator", "unary operator", "comment"}

func (t tokenType) String() string { return tokenNames[t] }

type token struct {
	typ tokenType
	val string
	pos int // byte offset in the original template
}

// Error is a template error: a syntax error, an unsupported construct or a
// failure while rendering, at a position of the template.
type Error struct {
	Line, Col int // 1-based; 0 when unknown
	Msg       string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return "jinja: " + e.Msg
	}
	return fmt.Sprintf("jinja: line %d, column %d: %s", e.Line, e.Col, e.Msg)
}

// source is a template after the reference's preprocessing, with the
// original offset of every byte.
type source struct {
	orig string
	src  string
	off  []int32 // off[i]: offset in orig of src[i]; off[len(src)] = len(orig)
}

func (s *source) errAt(srcPos int, format string, args ...any) *Error {
	if srcPos > len(s.src) {
		srcPos = len(s.src)
	}
	if srcPos < 0 {
		return &Error{Msg: fmt.Sprintf(format, args...)}
	}
	return errAtOrig(s.orig, int(s.off[srcPos]), format, args...)
}

func errAtOrig(orig string, p int, format string, args ...any) *Error {
	if p < 0 {
		return &Error{Msg: fmt.Sprintf(format, args...)}
	}
	if p > len(orig) {
		p = len(orig)
	}
	line := 1 + strings.Count(orig[:p], "\n")
	col := 1 + utf8.RuneCountInString(orig[strings.LastIndexByte(orig[:p], '\n')+1:p])
	return &Error{Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

// isJSSpace is JavaScript's \s (and String.prototype.trim's set).
func isJSSpace(r rune) bool {
	if r <= 32 {
		return r == 32 || (r >= 9 && r <= 13)
	}
	return r > 127 && (r == 0xa0 || r == 0x1680 || (r >= 0x2000 && r <= 0x200a) || r == 0x2028 || r == 0x2029 ||
		r == 0x202f || r == 0x205f || r == 0x3000 || r == 0xfeff)
}

// isLineTerminator is JavaScript's LineTerminator (what ^ matches after in
// a multiline regular expression).
func isLineTerminator(r rune) bool { return r == '\n' || r == '\r' || r == 0x2028 || r == 0x2029 }

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// spaceAt reports whether a JavaScript whitespace character starts at s[i]
// and its length.
func spaceAt(s string, i int) (bool, int) {
	if i >= len(s) {
		return false, 0
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	return isJSSpace(r), n
}

// spaceBefore reports whether a whitespace character ends at s[i] and its
// length.
func spaceBefore(s string, i int) (bool, int) {
	if i <= 0 {
		return false, 0
	}
	r, n := utf8.DecodeLastRuneInString(s[:i])
	return isJSSpace(r), n
}

// builder accumulates preprocessed text with original offsets.
type builder struct {
	b   strings.Builder
	off []int32
}

func (b *builder) add(s string, off []int32) {
	b.b.WriteString(s)
	b.off = append(b.off, off[:len(s)]...)
}

func (b *builder) done(origLen int) (string, []int32) {
	return b.b.String(), append(b.off, int32(origLen))
}

// preprocess applies the reference's preprocessing: drop one trailing
// newline; lstrip_blocks (spaces and tabs before {%, {# or {- at the start
// of a line); trim_blocks (the newline after %}, #} or -}); and the
// transformers-only {% generation %} tags.
func preprocess(tmpl string) *source {
	s := &source{orig: tmpl}
	src := tmpl
	src = strings.TrimSuffix(src, "\n")
	off := make([]int32, len(src)+1)
	for i := range off {
		off[i] = int32(i)
	}
	off[len(src)] = int32(len(tmpl))
	// lstrip_blocks: /^[ \t]*({[#%-])/gm
	{
		var b builder
		lineStart := true
		for i := 0; i < len(src); {
			if lineStart {
				j := i
				for j < len(src) && (src[j] == ' ' || src[j] == '\t') {
					j++
				}
				if j+1 < len(src) && src[j] == '{' && (src[j+1] == '#' || src[j+1] == '%' || src[j+1] == '-') {
					b.add(src[j:j+2], off[j:])
					i = j + 2
					lineStart = false
					continue
				}
			}
			r, n := utf8.DecodeRuneInString(src[i:])
			b.add(src[i:i+n], off[i:])
			lineStart = isLineTerminator(r)
			i += n
		}
		src, off = b.done(len(tmpl))
	}
	// trim_blocks: /([#%-]})\n/g
	{
		var b builder
		for i := 0; i < len(src); {
			if i+2 < len(src) && (src[i] == '#' || src[i] == '%' || src[i] == '-') && src[i+1] == '}' && src[i+2] == '\n' {
				b.add(src[i:i+2], off[i:])
				i += 3
				continue
			}
			b.add(src[i:i+1], off[i:])
			i++
		}
		src, off = b.done(len(tmpl))
	}
	// generation tags: /{%(-?)\s*(?:end)?generation\s*(-?)%}(\s*)/gs
	{
		var b builder
		last := 0
		for i := 0; i+1 < len(src); i++ {
			if src[i] != '{' || src[i+1] != '%' {
				continue
			}
			end, lstrip, rstrip, after, ok := matchGeneration(src, i)
			if !ok {
				continue
			}
			e := i
			if lstrip {
				for e > last {
					sp, n := spaceBefore(src, e)
					if !sp {
						break
					}
					e -= n
				}
			}
			b.add(src[last:e], off[last:])
			if !rstrip {
				b.add(src[after:end], off[after:])
			}
			last = end
			i = end - 1
		}
		b.add(src[last:], off[last:])
		src, off = b.done(len(tmpl))
	}
	s.src, s.off = src, off
	return s
}

// matchGeneration matches {%-? \s* (end)?generation \s* -?%} \s* at i.
func matchGeneration(src string, i int) (end int, lstrip, rstrip bool, after int, ok bool) {
	j := i + 2
	if j < len(src) && src[j] == '-' {
		lstrip = true
		j++
	}
	for {
		sp, n := spaceAt(src, j)
		if !sp {
			break
		}
		j += n
	}
	if strings.HasPrefix(src[j:], "end") && strings.HasPrefix(src[j+3:], "generation") {
		j += 3
	}
	if !strings.HasPrefix(src[j:], "generation") {
		return 0, false, false, 0, false
	}
	j += len("generation")
	for {
		sp, n := spaceAt(src, j)
		if !sp {
			break
		}
		j += n
	}
	if j < len(src) && src[j] == '-' && strings.HasPrefix(src[j+1:], "%}") {
		rstrip = true
		j++
	}
	if !strings.HasPrefix(src[j:], "%}") {
		return 0, false, false, 0, false
	}
	j += 2
	after = j
	for {
		sp, n := spaceAt(src, j)
		if !sp {
			break
		}
		j += n
	}
	return j, lstrip, rstrip, after, true
}

var ruleTable = []struct {
	seq string
	typ tokenType
}{
	{"{%", tOpenStatement}, {"%}", tCloseStatement}, {"{{", tOpenExpression}, {"}}", tCloseExpression},
	{"(", tOpenParen}, {")", tCloseParen}, {"{", tOpenCurly}, {"}", tCloseCurly}, {"[", tOpenBracket},
	{"]", tCloseBracket}, {",", tComma}, {".", tDot}, {":", tColon}, {"|", tPipe},
	{"<=", tComparison}, {">=", tComparison}, {"==", tComparison}, {"!=", tComparison}, {"<", tComparison},
	{">", tComparison}, {"+", tAdditive}, {"-", tAdditive}, {"~", tAdditive}, {"**", tPower},
	{"*", tMultiplicative}, {"//", tMultiplicative}, {"/", tMultiplicative}, {"%", tMultiplicative},
	{"=", tEquals},
}

var escapes = map[byte]string{'n': "\n", 't': "\t", 'r': "\r", 'b': "\b", 'f': "\f", 'v': "\v", '\'': "'", '"': "\"", '\\': "\\"}

// tokenize is the reference's lexer.
func tokenize(s *source) ([]token, error) {
	src := s.src
	n := len(src)
	var toks []token
	cur := 0
	curly := 0
	push := func(typ tokenType, val string, at int) {
		toks = append(toks, token{typ: typ, val: val, pos: int(s.off[at])})
	}
	// consumeWhile fails when the input ends while pred still holds.
	consumeWhile := func(pred func(c byte) bool) (string, error) {
		start := cur
		for cur < n && pred(src[cur]) {
			cur++
			if cur >= n {
				return "", s.errAt(start, "unexpected end of template")
			}
		}
		return src[start:cur], nil
	}
	skipSpace := func() {
		for {
			sp, m := spaceAt(src, cur)
			if !sp {
				return
			}
			cur += m
		}
	}
	stripTrailing := func() {
		if len(toks) > 0 && toks[len(toks)-1].typ == tText {
			t := &toks[len(toks)-1]
			v := t.val
			for {
				sp, m := spaceBefore(v, len(v))
				if !sp {
					break
				}
				v = v[:len(v)-m]
			}
			t.val = v
			if v == "" {
				toks = toks[:len(toks)-1]
			}
		}
	}
main:
	for cur < n {
		last := tokenType(255)
		if len(toks) > 0 {
			last = toks[len(toks)-1].typ
		}
		if last == 255 || last == tCloseStatement || last == tCloseExpression || last == tComment {
			end := cur
			for {
				k := strings.IndexByte(src[end:], '{')
				if k < 0 {
					end = n
					break
				}
				end += k
				if end+1 < n && (src[end+1] == '%' || src[end+1] == '{' || src[end+1] == '#') {
					break
				}
				end++
			}
			if end > cur {
				push(tText, src[cur:end], cur)
				cur = end
				continue
			}
		}
		if src[cur] == '{' && cur+1 < n {
			next := src[cur+1]
			if next == '#' {
				start := cur
				cur += 2
				stripBefore := cur < n && src[cur] == '-'
				if stripBefore {
					cur++
				}
				end := strings.Index(src[cur:], "#}")
				if end < 0 {
					return nil, s.errAt(start, "comment {# is not closed with #}")
				}
				end += cur
				comment := src[cur:end]
				stripAfter := strings.HasSuffix(comment, "-")
				if stripAfter {
					comment = comment[:len(comment)-1]
				}
				if stripBefore {
					stripTrailing()
				}
				push(tComment, comment, start)
				cur = end + 2
				if stripAfter {
					skipSpace()
				}
				continue
			}
			if cur+2 < n && src[cur+2] == '-' {
				if next == '%' {
					stripTrailing()
					push(tOpenStatement, "{%", cur)
					cur += 3
					continue
				}
				if next == '{' {
					stripTrailing()
					push(tOpenExpression, "{{", cur)
					curly = 0
					cur += 3
					continue
				}
			}
		}
		// Whitespace inside a tag (consumeWhile(isWhitespace)).
		for {
			sp, m := spaceAt(src, cur)
			if !sp {
				break
			}
			cur += m
			if cur >= n {
				return nil, s.errAt(cur, "unexpected end of template")
			}
		}
		c := src[cur]
		if c == '-' && cur+2 < n && src[cur+2] == '}' {
			if src[cur+1] == '%' {
				push(tCloseStatement, "%}", cur)
				cur += 3
				skipSpace()
				continue
			}
			if src[cur+1] == '}' {
				push(tCloseExpression, "}}", cur)
				cur += 3
				skipSpace()
				continue
			}
		}
		if c == '-' || c == '+' {
			if last == tText || last == 255 {
				return nil, s.errAt(cur, "unexpected character %q", string(c))
			}
			switch last {
			case tIdent, tNumber, tString, tCloseParen, tCloseBracket:
			default:
				start := cur
				cur++
				num, err := consumeWhile(isDigit)
				if err != nil {
					return nil, err
				}
				if len(num) > 0 && cur+1 < n && src[cur] == '.' && isDigit(src[cur+1]) {
					cur++
					frac, err := consumeWhile(isDigit)
					if err != nil {
						return nil, err
					}
					num += "." + frac
				}
				if len(num) > 0 {
					push(tNumber, string(c)+num, start)
				} else {
					push(tUnary, string(c), start)
				}
				continue
			}
		}
		for _, r := range ruleTable {
			if r.seq == "}}" && curly > 0 {
				continue
			}
			if strings.HasPrefix(src[cur:], r.seq) {
				push(r.typ, r.seq, cur)
				switch r.typ {
				case tOpenExpression:
					curly = 0
				case tOpenCurly:
					curly++
				case tCloseCurly:
					curly--
				}
				cur += len(r.seq)
				continue main
			}
		}
		if c == '\'' || c == '"' {
			start := cur
			cur++
			str, err := lexString(s, &cur, c)
			if err != nil {
				return nil, err
			}
			push(tString, str, start)
			cur++
			continue
		}
		if isDigit(c) {
			start := cur
			num, err := consumeWhile(isDigit)
			if err != nil {
				return nil, err
			}
			if last != tDot && cur+1 < n && src[cur] == '.' && isDigit(src[cur+1]) {
				cur++
				frac, err := consumeWhile(isDigit)
				if err != nil {
					return nil, err
				}
				num += "." + frac
			}
			push(tNumber, num, start)
			continue
		}
		if isWordByte(c) {
			start := cur
			w, err := consumeWhile(isWordByte)
			if err != nil {
				return nil, err
			}
			push(tIdent, w, start)
			continue
		}
		r, _ := utf8.DecodeRuneInString(src[cur:])
		return nil, s.errAt(cur, "unexpected character %q", r)
	}
	return toks, nil
}

// lexString reads a string literal's body up to (not past) the closing
// quote, resolving escapes.
func lexString(s *source, cur *int, quote byte) (string, error) {
	src := s.src
	n := len(src)
	var units []uint16 // escapes produce UTF-16 units, as in JavaScript
	var b strings.Builder
	flush := func() {
		if len(units) > 0 {
			b.WriteString(string(utf16.Decode(units)))
			units = units[:0]
		}
	}
	start := *cur
	for {
		if *cur >= n {
			return "", s.errAt(start-1, "string literal is not closed")
		}
		c := src[*cur]
		if c == quote {
			break
		}
		if c != '\\' {
			r, m := utf8.DecodeRuneInString(src[*cur:])
			flush()
			b.WriteString(src[*cur : *cur+m])
			_ = r
			*cur += m
			continue
		}
		*cur++
		if *cur >= n {
			return "", s.errAt(start-1, "string literal is not closed")
		}
		e := src[*cur]
		*cur++
		if e == 'x' || e == 'u' {
			l := 2
			if e == 'u' {
				l = 4
			}
			if *cur+l > n {
				return "", s.errAt(*cur-2, "invalid hexadecimal escape")
			}
			var v uint16
			for _, h := range []byte(src[*cur : *cur+l]) {
				var d byte
				switch {
				case h >= '0' && h <= '9':
					d = h - '0'
				case h >= 'a' && h <= 'f':
					d = h - 'a' + 10
				case h >= 'A' && h <= 'F':
					d = h - 'A' + 10
				default:
					return "", s.errAt(*cur-2, "invalid hexadecimal escape \\%c%s", e, src[*cur:*cur+l])
				}
				v = v<<4 | uint16(d)
			}
			units = append(units, v)
			*cur += l
			continue
		}
		u, ok := escapes[e]
		if !ok {
			return "", s.errAt(*cur-2, "unexpected escaped character %q", string(e))
		}
		flush()
		b.WriteString(u)
	}
	flush()
	return b.String(), nil
}
