package jinja

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
)

type jsonOpts struct {
	indent          int // 0: none
	ensureASCII     bool
	itemSep, keySep string // "" with sepSet false: defaults
	sepSet          bool
	undefinedAsText bool // undefined prints as "undefined" (toString), else null
}

// toJSON is the reference's toJSON: Python json.dumps separators. It is
// written into one buffer and fails once that holds more than MaxOutput
// bytes: indentation grows with the depth, so that a small, deeply nested
// value (a caller's tool definition) would otherwise print to gigabytes.
func toJSON(v Value, o jsonOpts, depth int) (string, error) {
	var b strings.Builder
	if err := writeJSON(&b, v, o, depth, MaxOutput); err != nil {
		return "", err
	}
	if b.Len() > MaxOutput {
		return "", errJSONTooLong
	}
	return b.String(), nil
}

var errJSONTooLong = &Error{Msg: fmt.Sprintf("tojson: string longer than %d bytes", MaxOutput)}

// writeJSON writes v's JSON text to b; limit > 0 stops it once b holds
// more than limit bytes.
func writeJSON(b *strings.Builder, v Value, o jsonOpts, depth, limit int) error {
	if limit > 0 && b.Len() > limit {
		return errJSONTooLong
	}
	item, key := ", ", ": "
	if o.sepSet {
		item, key = o.itemSep, o.keySep
	} else if o.indent > 0 {
		item = ","
	}
	switch v := v.(type) {
	case noneT:
		b.WriteString("null")
	case undefinedT:
		if o.undefinedAsText {
			b.WriteString("undefined")
		} else {
			b.WriteString("null")
		}
	case Int:
		b.WriteString(jsonNumber(float64(v)))
	case Float:
		b.WriteString(jsonNumber(float64(v)))
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case Str:
		writeJSONString(b, v.s, o.ensureASCII)
	case *List:
		if v.tuple {
			return &Error{Msg: "cannot convert a tuple to JSON"}
		}
		pad := "\n" + strings.Repeat(" ", o.indent*depth)
		child := pad + strings.Repeat(" ", o.indent)
		b.WriteByte('[')
		for i, it := range v.items {
			if i > 0 {
				b.WriteString(item)
			}
			if o.indent > 0 {
				b.WriteString(child)
			}
			if err := writeJSON(b, it, o, depth+1, limit); err != nil {
				return err
			}
		}
		if o.indent > 0 && len(v.items) > 0 {
			b.WriteString(pad)
		}
		b.WriteByte(']')
	case *Dict, *Namespace:
		d, ok := v.(*Dict)
		if !ok {
			d = v.(*Namespace).d
		}
		pad := "\n" + strings.Repeat(" ", o.indent*depth)
		child := pad + strings.Repeat(" ", o.indent)
		b.WriteByte('{')
		for i, k := range d.keys {
			if i > 0 {
				b.WriteString(item)
			}
			if o.indent > 0 {
				b.WriteString(child)
			}
			writeJSONString(b, k, o.ensureASCII)
			b.WriteString(key)
			if err := writeJSON(b, d.m[k], o, depth+1, limit); err != nil {
				return err
			}
		}
		if o.indent > 0 && len(d.keys) > 0 {
			b.WriteString(pad)
		}
		b.WriteByte('}')
	default:
		return &Error{Msg: "cannot convert a " + typeName(v) + " to JSON"}
	}
	return nil
}

func jsonNumber(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "null"
	}
	return jsNumber(f)
}

// writeJSONString writes JSON.stringify of a string to b (optionally with
// the reference's ensure_ascii escaping of every UTF-16 unit >= 0x7f).
func writeJSONString(b *strings.Builder, s string, ascii bool) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			switch {
			case r < 0x20:
				fmt.Fprintf(b, `\u%04x`, r)
			case ascii && r >= 0x7f:
				for _, u := range utf16.Encode([]rune{r}) {
					fmt.Fprintf(b, `\u%04x`, u)
				}
			default:
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

// MaxJSONDepth bounds the nesting FromJSON accepts.
const MaxJSONDepth = 200

// FromJSON decodes JSON into a template value the way the reference's
// callers see it after JSON.parse: objects keep their key order, except
// that keys which are array indices ("0", "17") come first in ascending
// order, as in every JavaScript object; a repeated key keeps its first
// position and its last value; integral numbers are Ints. Strings are data.
func FromJSON(b []byte) (Value, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return nil, fmt.Errorf("jinja: json: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("jinja: json: data after the top-level value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder, depth int) (Value, error) {
	if depth > MaxJSONDepth {
		return nil, fmt.Errorf("nested deeper than %d", MaxJSONDepth)
	}
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := t.(type) {
	case nil:
		return None, nil
	case bool:
		return t, nil
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, err
		}
		return NumberValue(f), nil
	case string:
		return Data(t), nil
	case json.Delim:
		switch t {
		case '[':
			l := &List{}
			for dec.More() {
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				l.items = append(l.items, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return l, nil
		case '{':
			d := NewDict()
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("object key %v is not a string", kt)
				}
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				d.Set(k, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			d.jsOrder()
			return d, nil
		}
	}
	return nil, fmt.Errorf("unexpected %v", t)
}

// NumberValue returns an Int for an integral f, else a Float (JavaScript's
// Number.isInteger rule).
func NumberValue(f float64) Value {
	if !math.IsInf(f, 0) && f == math.Trunc(f) {
		return Int(f)
	}
	return Float(f)
}

// arrayIndex reports whether k is a JavaScript array index and its value.
func arrayIndex(k string) (uint64, bool) {
	if k == "" || len(k) > 10 || (len(k) > 1 && k[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseUint(k, 10, 64)
	if err != nil || n >= 1<<32-1 {
		return 0, false
	}
	return n, true
}

// jsOrder puts array-index keys first, ascending, as JavaScript objects do.
func (d *Dict) jsOrder() {
	var idx, rest []string
	for _, k := range d.keys {
		if _, ok := arrayIndex(k); ok {
			idx = append(idx, k)
		} else {
			rest = append(rest, k)
		}
	}
	if len(idx) == 0 {
		return
	}
	slices.SortFunc(idx, func(a, b string) int {
		x, _ := arrayIndex(a)
		y, _ := arrayIndex(b)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	d.keys = append(idx, rest...)
}

// Marshal encodes v as compact JSON (JSON.stringify's formatting: no
// spaces, keys in order, only ", \, and control characters escaped).
func Marshal(v Value) (string, error) {
	var b strings.Builder
	if err := writeJSON(&b, v, jsonOpts{itemSep: ",", keySep: ":", sepSet: true}, 0, 0); err != nil {
		return "", err
	}
	return b.String(), nil
}
