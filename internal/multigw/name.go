package multigw

import (
	"bytes"
	"encoding/json"
	"net"
	"strconv"
)

// nameWorker adds the worker's agent id and address to the top-level
// "verdict" object of a JSON answer, and returns the answer as pieces to
// write in order: b itself (one piece) when it is not a JSON object or has
// no "verdict" object.
//
// It does not decode the answer: it checks that b is JSON (json.Valid,
// which allocates nothing), finds the "verdict" member by scanning, and
// splices the two fields in before the object's closing brace, so that
// naming a maximal answer (MaxResponseBytes) costs a few hundred bytes
// beside the answer itself. Decoding it into a map and encoding it again
// cost a few times the answer (TestAttackAnswerNamingCost). The result
// means what the decode and encode meant: where "verdict" appears more
// than once at the top level (the last one counts, as for Go's and
// JavaScript's decoders) the others are dropped, and an "agent_id" or
// "worker" the worker put in it is replaced; only then is the answer
// copied (once).
func nameWorker(b []byte, w Worker) net.Buffers {
	one := net.Buffers{b}
	if !json.Valid(b) {
		return one
	}
	top := skipWS(b, 0)
	if b[top] != '{' {
		return one
	}
	n, vs, ve := 0, 0, 0 // the "verdict" members, the last one's value
	walkObject(b, top, func(ks, ke, s, e int) {
		if keyIs(b[ks:ke], "verdict") {
			n, vs, ve = n+1, s, e
		}
	})
	if n == 0 || b[vs] != '{' {
		return one
	}
	empty, named := true, false
	walkObject(b, vs, func(ks, ke, _, _ int) {
		empty = false
		named = named || keyIs(b[ks:ke], "agent_id") || keyIs(b[ks:ke], "worker")
	})
	fields := workerFields(w)
	if n == 1 && !named {
		end := ve - 1 // the verdict object's '}'
		if !empty {
			fields = append([]byte{','}, fields...)
		}
		return net.Buffers{b[:end], fields, b[end:]}
	}
	// Rare (no honest worker sends it): rebuilt, members joined by commas.
	out := make([]byte, 0, len(b)+len(fields)+1)
	out = append(out, '{')
	sep := false
	walkObject(b, top, func(ks, ke, s, e int) {
		last := s == vs
		if keyIs(b[ks:ke], "verdict") && !last {
			return
		}
		if sep {
			out = append(out, ',')
		}
		sep = true
		if !last {
			out = append(out, b[ks:e]...)
			return
		}
		out = append(out, b[ks:s]...)
		out = append(out, '{')
		walkObject(b, vs, func(ks, ke, _, e int) {
			if keyIs(b[ks:ke], "agent_id") || keyIs(b[ks:ke], "worker") {
				return
			}
			out = append(append(out, b[ks:e]...), ',')
		})
		out = append(append(out, fields...), '}')
	})
	return net.Buffers{append(out, '}')}
}

// workerFields is `"agent_id":ID,"worker":"ADDRESS"`.
func workerFields(w Worker) []byte {
	a, _ := json.Marshal(w.Address.String())
	f := make([]byte, 0, 64+len(a))
	f = append(f, `"agent_id":`...)
	f = strconv.AppendUint(f, w.AgentID, 10)
	f = append(f, `,"worker":`...)
	return append(f, a...)
}

// The scanners below take JSON that json.Valid accepted.

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string that starts at b[i] ('"').
func skipString(b []byte, i int) int {
	i++
	for {
		j := bytes.IndexAny(b[i:], "\"\\")
		i += j
		if b[i] == '"' {
			return i + 1
		}
		i += 2 // an escape: '\\' and the byte after it
	}
}

// skipValue returns the index after the value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return i
		}
		i++
	}
	return i
}

// hexVal is the value of a hex digit (json.Valid checked it is one).
func hexVal(h byte) int {
	switch {
	case h >= 'a':
		return int(h-'a') + 10
	case h >= 'A':
		return int(h-'A') + 10
	}
	return int(h - '0')
}

// walkObject calls f with the key (quotes included) and value spans of
// each member of the object that starts at b[i] ('{'), in order, and
// returns the index after the object.
func walkObject(b []byte, i int, f func(ks, ke, vs, ve int)) int {
	i++
	for {
		i = skipWS(b, i)
		switch b[i] {
		case '}':
			return i + 1
		case ',':
			i = skipWS(b, i+1)
		}
		ks, ke := i, skipString(b, i)
		vs := skipWS(b, skipWS(b, ke)+1) // past the ':'
		ve := skipValue(b, vs)
		f(ks, ke, vs, ve)
		i = ve
	}
}

// keyIs reports whether the JSON string raw (quotes included) is name,
// an ASCII string, once its escapes are decoded; it allocates nothing.
func keyIs(raw []byte, name string) bool {
	s := raw[1 : len(raw)-1]
	if bytes.IndexByte(s, '\\') < 0 {
		return string(s) == name
	}
	k := 0
	for i := 0; i < len(s); k++ {
		c := s[i]
		i++
		if c == '\\' {
			switch e := s[i]; e {
			case 'u':
				r := 0
				for _, h := range s[i+1 : i+5] {
					r = r<<4 | hexVal(h)
				}
				if r >= 0x80 {
					return false
				}
				c, i = byte(r), i+5
			case 'b':
				c, i = '\b', i+1
			case 'f':
				c, i = '\f', i+1
			case 'n':
				c, i = '\n', i+1
			case 'r':
				c, i = '\r', i+1
			case 't':
				c, i = '\t', i+1
			default: // '"', '\\', '/'
				c, i = e, i+1
			}
		}
		if k >= len(name) || name[k] != c {
			return false
		}
	}
	return k == len(name)
}
