package jinja

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
)

// Value is a template value: Undefined, None, a bool, an Int or Float, a Str,
// a *List, a *Dict, a *Namespace or a *Func. Use the constructors and
// FromJSON to build the variables of a render.
type Value any

type undefinedT struct{}
type noneT struct{}

// Undefined is the value of a missing variable or attribute.
var Undefined Value = undefinedT{}

// None is Jinja's none (JSON null).
var None Value = noneT{}

// Int is an integer. Like the reference (JavaScript), numbers are float64;
// Int marks one that prints as an integer.
type Int float64

// Float is a floating-point number.
type Float float64

// run is a stretch of a string with one provenance.
type run struct {
	n       int
	trusted bool
}

// Str is a string whose bytes each carry a provenance: template text
// (trusted) or data.
type Str struct {
	s    string
	runs []run
}

// Trusted returns a string of template provenance: control tokens in it are
// parsed (bos_token, eos_token).
func Trusted(s string) Str { return mkStr(s, true) }

// Data returns a string of data provenance.
func Data(s string) Str { return mkStr(s, false) }

func mkStr(s string, trusted bool) Str {
	if s == "" {
		return Str{}
	}
	return Str{s: s, runs: []run{{len(s), trusted}}}
}

// String returns the text.
func (s Str) String() string { return s.s }

// allTrusted reports whether every byte is template text (true for "").
func (s Str) allTrusted() bool {
	for _, r := range s.runs {
		if !r.trusted {
			return false
		}
	}
	return true
}

func concat(parts ...Str) Str {
	var b strings.Builder
	var runs []run
	for _, p := range parts {
		b.WriteString(p.s)
		for _, r := range p.runs {
			if r.n == 0 {
				continue
			}
			if len(runs) > 0 && runs[len(runs)-1].trusted == r.trusted {
				runs[len(runs)-1].n += r.n
			} else {
				runs = append(runs, r)
			}
		}
	}
	return Str{s: b.String(), runs: runs}
}

// sub returns s[i:j] with its provenance.
func (s Str) sub(i, j int) Str {
	if i >= j {
		return Str{}
	}
	out := Str{s: s.s[i:j]}
	pos := 0
	for _, r := range s.runs {
		a, b := max(pos, i), min(pos+r.n, j)
		if a < b {
			out.runs = append(out.runs, run{b - a, r.trusted})
		}
		pos += r.n
	}
	return out
}

// derived returns a new string computed from inputs: template text only
// when every input was.
func derived(s string, inputs ...Str) Str {
	for _, in := range inputs {
		if !in.allTrusted() {
			return Data(s)
		}
	}
	return Trusted(s)
}

// List is a list (tuple set for tuples). Lists are shared by reference, as
// in the reference.
type List struct {
	items []Value
	tuple bool
}

// NewList returns a list.
func NewList(items ...Value) *List { return &List{items: items} }

// Dict is an ordered mapping with string keys.
type Dict struct {
	keys   []string
	m      map[string]Value
	kwargs bool // keyword arguments of a call
}

// NewDict returns an empty mapping.
func NewDict() *Dict { return &Dict{m: map[string]Value{}} }

// Set sets key, keeping the position of an existing key.
func (d *Dict) Set(key string, v Value) {
	if _, ok := d.m[key]; !ok {
		d.keys = append(d.keys, key)
	}
	d.m[key] = v
}

// Get returns the value of key.
func (d *Dict) Get(key string) (Value, bool) {
	v, ok := d.m[key]
	return v, ok
}

// Len returns the number of keys.
func (d *Dict) Len() int { return len(d.keys) }

// Namespace is the mutable object namespace() returns.
type Namespace struct{ d *Dict }

// Func is a callable: a macro or a global function.
type Func struct {
	name string
	call func(in *interp, args []Value, site *env) (Value, error)
}

func typeName(v Value) string {
	switch v := v.(type) {
	case undefinedT:
		return "undefined"
	case noneT:
		return "none"
	case bool:
		return "boolean"
	case Int:
		return "integer"
	case Float:
		return "float"
	case Str:
		return "string"
	case *List:
		if v.tuple {
			return "tuple"
		}
		return "list"
	case *Dict:
		if v.kwargs {
			return "keyword arguments"
		}
		return "dict"
	case *Namespace:
		return "namespace"
	case *Func:
		return "function"
	}
	return "?"
}

func truthy(v Value) bool {
	switch v := v.(type) {
	case undefinedT, noneT:
		return false
	case bool:
		return v
	case Int:
		return v != 0 && !math.IsNaN(float64(v))
	case Float:
		return v != 0 && !math.IsNaN(float64(v))
	case Str:
		return v.s != ""
	case *List:
		return len(v.items) > 0
	case *Dict:
		return len(v.keys) > 0
	}
	return true
}

// jsNumber formats f as JavaScript's Number.prototype.toString does.
func jsNumber(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		return "0"
	}
	sign := ""
	if f < 0 {
		sign = "-"
		f = -f
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	k, n := len(digits), x+1
	switch {
	case k <= n && n <= 21:
		return sign + digits + strings.Repeat("0", n-k)
	case 0 < n && n <= 21:
		return sign + digits[:n] + "." + digits[n:]
	case -6 < n && n <= 0:
		return sign + "0." + strings.Repeat("0", -n) + digits
	}
	es := "+"
	if n-1 < 0 {
		es = "-"
	}
	m := digits[:1]
	if k > 1 {
		m += "." + digits[1:]
	}
	return sign + m + "e" + es + strconv.Itoa(abs(n-1))
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// floatString is FloatValue.toString: integers keep ".0".
func floatString(f float64) string {
	if f == 0 && math.Signbit(f) {
		return "-0.0"
	}
	if !math.IsInf(f, 0) && !math.IsNaN(f) && f == math.Trunc(f) {
		if math.Abs(f) >= 1e21 {
			return jsNumber(f)
		}
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
	return jsNumber(f)
}

// rawString is JavaScript's String(v.value): how + and ~ and join turn a
// value into text.
func rawString(v Value) (Str, error) {
	switch v := v.(type) {
	case Str:
		return v, nil
	case undefinedT, noneT:
		// The reference's NullValue holds JavaScript's undefined.
		return Data("undefined"), nil
	case bool:
		return Data(strconv.FormatBool(v)), nil
	case Int:
		return Data(jsNumber(float64(v))), nil
	case Float:
		return Data(jsNumber(float64(v))), nil
	case *List:
		// Array.prototype.toString: the items' toString joined by ",".
		parts := make([]Str, 0, 2*len(v.items))
		for i, it := range v.items {
			if i > 0 {
				parts = append(parts, Data(","))
			}
			s, err := outString(it)
			if err != nil {
				return Str{}, err
			}
			parts = append(parts, s)
		}
		return concat(parts...), nil
	case *Dict, *Namespace:
		return Data("[object Map]"), nil
	}
	return Str{}, &Error{Msg: "cannot convert a " + typeName(v) + " to a string"}
}

// outString is the reference's RuntimeValue.toString: how {{ }} prints.
func outString(v Value) (Str, error) {
	switch v := v.(type) {
	case Str:
		return v, nil
	case Float:
		return Data(floatString(float64(v))), nil
	case *List, *Dict, *Namespace:
		s, err := toJSON(v, jsonOpts{undefinedAsText: true}, 0)
		if err != nil {
			return Str{}, err
		}
		return Data(s), nil
	case *Func:
		return Str{}, &Error{Msg: "unsupported construct: printing a function or macro"}
	}
	return rawString(v)
}

// utf16Len is JavaScript's string length.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}

// utf16At is JavaScript's String.prototype.at: one UTF-16 unit (a lone
// surrogate becomes U+FFFD, as it does when the reference's output is
// encoded as UTF-8).
func utf16At(s string, i int) (string, bool) {
	u := utf16.Encode([]rune(s))
	if i < 0 {
		i += len(u)
	}
	if i < 0 || i >= len(u) {
		return "", false
	}
	return string(utf16.Decode(u[i : i+1])), true
}

// runeOffsets returns the byte offset of every code point and len(s).
func runeOffsets(s string) []int {
	offs := make([]int, 0, len(s)+1)
	for i := range s {
		offs = append(offs, i)
	}
	return append(offs, len(s))
}

// Keys returns the keys in order.
func (d *Dict) Keys() []string { return d.keys }
