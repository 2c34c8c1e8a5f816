package jinja

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

func (in *interp) member(n *memberNode, e *env) (Value, error) {
	obj, err := in.eval(n.obj, e)
	if err != nil {
		return nil, err
	}
	var prop Value
	switch {
	case n.computed:
		if sl, ok := n.prop.(*sliceNode); ok {
			return in.slice(obj, sl, e)
		}
		if prop, err = in.eval(n.prop, e); err != nil {
			return nil, err
		}
	default:
		switch p := n.prop.(type) {
		case *intLit:
			prop = Int(p.val)
		case *identNode:
			prop = Data(p.name)
		}
	}
	return getMember(obj, prop)
}

func getMember(obj, prop Value) (Value, error) {
	switch o := obj.(type) {
	case *Dict, *Namespace:
		k, ok := prop.(Str)
		if !ok {
			return nil, fail("cannot access a %s member with a %s", typeName(obj), typeName(prop))
		}
		if d, ok := o.(*Dict); ok {
			if v, ok := d.m[k.s]; ok {
				return v, nil
			}
			if b := dictBuiltin(d, k.s); b != nil {
				return b, nil
			}
			return Undefined, nil
		}
		if v, ok := o.(*Namespace).d.m[k.s]; ok {
			return v, nil
		}
		return Undefined, nil
	case *List:
		switch p := prop.(type) {
		case Int:
			i := int(p)
			if i < 0 {
				i += len(o.items)
			}
			if i < 0 || i >= len(o.items) {
				return Undefined, nil
			}
			return o.items[i], nil
		case Str:
			if p.s == "length" {
				return Int(len(o.items)), nil
			}
			return Undefined, nil
		}
		return nil, fail("cannot access a list member with a %s", typeName(prop))
	case Str:
		switch p := prop.(type) {
		case Int:
			c, ok := utf16At(o.s, int(p))
			if !ok {
				return Undefined, nil
			}
			return derived(c, o), nil
		case Str:
			if b := strBuiltin(o, p.s); b != nil {
				return b, nil
			}
			return Undefined, nil
		}
		return nil, fail("cannot access a string member with a %s", typeName(prop))
	}
	if _, ok := prop.(Str); !ok {
		return nil, fail("cannot access a member of a %s with a %s", typeName(obj), typeName(prop))
	}
	return Undefined, nil
}

// pySlice is the reference's slice(): Python slicing.
func pySlice(n int, start, stop, step *float64) []int {
	st := 1
	if step != nil {
		st = int(*step)
	}
	var a, b int
	if st >= 0 {
		a, b = 0, n
		if start != nil {
			a = int(*start)
			if a < 0 {
				a = max(n+a, 0)
			} else {
				a = min(a, n)
			}
		}
		if stop != nil {
			b = int(*stop)
			if b < 0 {
				b = max(n+b, 0)
			} else {
				b = min(b, n)
			}
		}
	} else {
		a, b = n-1, -1
		if start != nil {
			a = int(*start)
			if a < 0 {
				a = max(n+a, -1)
			} else {
				a = min(a, n-1)
			}
		}
		if stop != nil {
			b = int(*stop)
			if b < -1 {
				b = max(n+b, -1)
			} else {
				b = min(b, n-1)
			}
		}
	}
	var idx []int
	if st == 0 {
		// The reference loops forever; refuse.
		return nil
	}
	dir := 1
	if st < 0 {
		dir = -1
	}
	for i := a; dir*i < dir*b; i += st {
		idx = append(idx, i)
	}
	return idx
}

func (in *interp) slice(obj Value, sl *sliceNode, e *env) (Value, error) {
	var parts [3]*float64
	for i, x := range []node{sl.start, sl.stop, sl.step} {
		v, err := in.eval(x, e)
		if err != nil {
			return nil, err
		}
		switch v := v.(type) {
		case undefinedT:
		case Int:
			f := float64(v)
			parts[i] = &f
		default:
			return nil, fail("slice bounds must be integers, got a %s", typeName(v))
		}
	}
	if parts[2] != nil && *parts[2] == 0 {
		return nil, fail("slice step cannot be zero")
	}
	switch o := obj.(type) {
	case *List:
		idx := pySlice(len(o.items), parts[0], parts[1], parts[2])
		out := &List{items: make([]Value, len(idx))}
		for i, j := range idx {
			out.items[i] = o.items[j]
		}
		return out, nil
	case Str:
		offs := runeOffsets(o.s)
		idx := pySlice(len(offs)-1, parts[0], parts[1], parts[2])
		if len(idx) > 0 && (parts[2] == nil || *parts[2] == 1) {
			return o.sub(offs[idx[0]], offs[idx[len(idx)-1]+1]), nil
		}
		ps := make([]Str, len(idx))
		for i, j := range idx {
			ps[i] = o.sub(offs[j], offs[j+1])
		}
		return concat(ps...), nil
	}
	return nil, fail("cannot slice a %s", typeName(obj))
}

func method(name string, f func(args []Value) (Value, error)) *Func {
	return &Func{name: name, call: func(_ *interp, args []Value, _ *env) (Value, error) { return f(args) }}
}

// trimJS trims JavaScript whitespace.
func trimJS(s string, left, right bool) string {
	if left {
		s = strings.TrimLeftFunc(s, isJSSpace)
	}
	if right {
		s = strings.TrimRightFunc(s, isJSSpace)
	}
	return s
}

func trimStr(s Str, left, right bool) Str {
	i, j := 0, len(s.s)
	if left {
		i = len(s.s) - len(strings.TrimLeftFunc(s.s, isJSSpace))
	}
	if right {
		j = len(strings.TrimRightFunc(s.s[i:], isJSSpace)) + i
	}
	return s.sub(i, j)
}

// jsUpper and jsLower approximate JavaScript's toUpperCase/toLowerCase with
// Go's Unicode case mapping plus the commonest special casings.
func jsUpper(s string) string {
	s = strings.ToUpper(s)
	if strings.ContainsAny(s, "ßﬀﬁﬂﬃﬄﬅﬆŉ") {
		s = strings.NewReplacer("ß", "SS", "ﬀ", "FF", "ﬁ", "FI", "ﬂ", "FL", "ﬃ", "FFI", "ﬄ", "FFL", "ﬅ", "ST", "ﬆ", "ST", "ŉ", "ʼN").Replace(s)
	}
	return s
}

func jsLower(s string) string {
	if strings.ContainsRune(s, 'İ') {
		s = strings.ReplaceAll(s, "İ", "i̇")
	}
	return strings.ToLower(s)
}

// titleCase is the reference's value.replace(/\b\w/g, c => c.toUpperCase()).
func titleCase(s string) string {
	b := []byte(s)
	prevWord := false
	for i := 0; i < len(b); i++ {
		w := isWordByte(b[i])
		if w && !prevWord && b[i] >= 'a' && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
		prevWord = w
	}
	return string(b)
}

func strBuiltin(s Str, name string) Value {
	switch name {
	case "upper":
		return method(name, func([]Value) (Value, error) { return derived(jsUpper(s.s), s), nil })
	case "lower":
		return method(name, func([]Value) (Value, error) { return derived(jsLower(s.s), s), nil })
	case "strip":
		return method(name, func([]Value) (Value, error) { return trimStr(s, true, true), nil })
	case "lstrip":
		return method(name, func([]Value) (Value, error) { return trimStr(s, true, false), nil })
	case "rstrip":
		return method(name, func([]Value) (Value, error) { return trimStr(s, false, true), nil })
	case "title":
		return method(name, func([]Value) (Value, error) { return derived(titleCase(s.s), s), nil })
	case "capitalize":
		return method(name, func([]Value) (Value, error) { return capitalize(s), nil })
	case "length":
		return Int(utf16Len(s.s))
	case "startswith", "endswith":
		return method(name, func(args []Value) (Value, error) {
			if len(args) == 0 {
				return nil, fail("%s() requires at least one argument", name)
			}
			test := strings.HasPrefix
			if name == "endswith" {
				test = strings.HasSuffix
			}
			switch p := args[0].(type) {
			case Str:
				return test(s.s, p.s), nil
			case *List:
				for _, it := range p.items {
					x, ok := it.(Str)
					if !ok {
						return nil, fail("%s() tuple elements must be strings", name)
					}
					if test(s.s, x.s) {
						return true, nil
					}
				}
				return false, nil
			}
			return nil, fail("%s() argument must be a string or tuple of strings", name)
		})
	case "split":
		return method(name, func(args []Value) (Value, error) { return split(s, args) })
	case "replace":
		return method(name, func(args []Value) (Value, error) { return replaceStr(s, args) })
	}
	return nil
}

func capitalize(s Str) Str {
	if s.s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s.s)
	if r >= 0x10000 {
		return s // charAt(0) is a lone surrogate: unchanged
	}
	first := jsUpper(string(r))
	return concat(derived(first, s.sub(0, n)), s.sub(n, len(s.s)))
}

func split(s Str, args []Value) (Value, error) {
	var sep Value = None
	if len(args) > 0 {
		sep = args[0]
	}
	maxsplit := -1.0
	if len(args) > 1 {
		m, ok := args[1].(Int)
		if !ok {
			return nil, fail("split(): maxsplit must be an integer")
		}
		maxsplit = float64(m)
	}
	out := &List{}
	switch sp := sep.(type) {
	case noneT:
		text := trimStr(s, true, false)
		i := 0
		for i < len(text.s) {
			// skip whitespace
			for i < len(text.s) {
				r, n := utf8.DecodeRuneInString(text.s[i:])
				if !isJSSpace(r) {
					break
				}
				i += n
			}
			if i >= len(text.s) {
				break
			}
			j := i
			for j < len(text.s) {
				r, n := utf8.DecodeRuneInString(text.s[j:])
				if isJSSpace(r) {
					break
				}
				j += n
			}
			if maxsplit >= 0 && float64(len(out.items)) >= maxsplit {
				out.items = append(out.items, text.sub(i, len(text.s)))
				break
			}
			out.items = append(out.items, text.sub(i, j))
			i = j
		}
	case Str:
		if sp.s == "" {
			return nil, fail("split(): empty separator")
		}
		var starts, ends []int
		i := 0
		for {
			k := strings.Index(s.s[i:], sp.s)
			if k < 0 {
				break
			}
			starts, ends = append(starts, i), append(ends, i+k)
			i += k + len(sp.s)
		}
		starts, ends = append(starts, i), append(ends, len(s.s))
		if maxsplit >= 0 && float64(len(starts)) > maxsplit {
			m := int(maxsplit)
			starts, ends = starts[:m+1], append(ends[:m], len(s.s))
		}
		for k := range starts {
			out.items = append(out.items, s.sub(starts[k], ends[k]))
		}
	default:
		return nil, fail("split(): separator must be a string or none")
	}
	return out, nil
}

func replaceStr(s Str, args []Value) (Value, error) {
	if len(args) < 2 {
		return nil, fail("replace() requires at least two arguments")
	}
	old, ok1 := args[0].(Str)
	nw, ok2 := args[1].(Str)
	if !ok1 || !ok2 {
		return nil, fail("replace() arguments must be strings")
	}
	var count Value = None
	if len(args) > 2 {
		if d, ok := args[2].(*Dict); ok && d.kwargs {
			if c, ok := d.m["count"]; ok {
				count = c
			}
		} else {
			count = args[2]
		}
	}
	n := -1
	switch c := count.(type) {
	case noneT:
	case Int:
		if c >= 0 {
			n = int(c)
		}
	default:
		return nil, fail("replace() count must be an integer or none")
	}
	var res string
	if old.s == "" {
		// (?=) with the u flag: at every code point boundary.
		var b strings.Builder
		offs := runeOffsets(s.s)
		for k, o := range offs {
			if n < 0 || k < n {
				b.WriteString(nw.s)
			}
			if k+1 < len(offs) {
				b.WriteString(s.s[o:offs[k+1]])
			}
		}
		res = b.String()
	} else {
		res = strings.Replace(s.s, old.s, nw.s, n)
	}
	if len(res) > MaxOutput {
		return nil, fail("string longer than %d bytes", MaxOutput)
	}
	return derived(res, s, old, nw), nil
}

func dictBuiltin(d *Dict, name string) Value {
	switch name {
	case "get":
		return method(name, func(args []Value) (Value, error) {
			var key Value = Undefined
			if len(args) > 0 {
				key = args[0]
			}
			k, ok := key.(Str)
			if !ok {
				return nil, fail("get(): key must be a string, got a %s", typeName(key))
			}
			if v, ok := d.m[k.s]; ok {
				return v, nil
			}
			if len(args) > 1 {
				return args[1], nil
			}
			return None, nil
		})
	case "items":
		return method(name, func([]Value) (Value, error) { return dictItems(d), nil })
	case "keys":
		return method(name, func([]Value) (Value, error) {
			l := &List{}
			for _, k := range d.keys {
				l.items = append(l.items, Data(k))
			}
			return l, nil
		})
	case "values":
		return method(name, func([]Value) (Value, error) {
			l := &List{}
			for _, k := range d.keys {
				l.items = append(l.items, d.m[k])
			}
			return l, nil
		})
	case "dictsort":
		return method(name, func(args []Value) (Value, error) { return dictsort(d, args) })
	}
	return nil
}

func dictItems(d *Dict) *List {
	l := &List{}
	for _, k := range d.keys {
		l.items = append(l.items, &List{items: []Value{Data(k), d.m[k]}})
	}
	return l
}

func splitKwargs(args []Value) ([]Value, *Dict) {
	kw := NewDict()
	var pos []Value
	for _, a := range args {
		if d, ok := a.(*Dict); ok && d.kwargs {
			kw = d
			continue
		}
		pos = append(pos, a)
	}
	return pos, kw
}

func argOr(pos []Value, i int, kw *Dict, name string, def Value) Value {
	if i < len(pos) {
		return pos[i]
	}
	if v, ok := kw.m[name]; ok {
		return v
	}
	return def
}

func dictsort(d *Dict, args []Value) (Value, error) {
	pos, kw := splitKwargs(args)
	cs, ok := argOr(pos, 0, kw, "case_sensitive", false).(bool)
	if !ok {
		return nil, fail("dictsort: case_sensitive must be a boolean")
	}
	by, ok := argOr(pos, 1, kw, "by", Data("key")).(Str)
	if !ok || (by.s != "key" && by.s != "value") {
		return nil, fail("dictsort: by must be 'key' or 'value'")
	}
	rev, ok := argOr(pos, 2, kw, "reverse", false).(bool)
	if !ok {
		return nil, fail("dictsort: reverse must be a boolean")
	}
	items := dictItems(d).items
	idx := 0
	if by.s == "value" {
		idx = 1
	}
	err := sortValues(items, func(v Value) Value { return v.(*List).items[idx] }, cs, rev)
	if err != nil {
		return nil, err
	}
	return &List{items: items}, nil
}

// cmpUTF16 compares strings by UTF-16 code units, as JavaScript's < does.
func cmpUTF16(a, b string) int {
	ua, ub := utf16.Encode([]rune(a)), utf16.Encode([]rune(b))
	return slices.Compare(ua, ub)
}

// compareValues is the reference's compareRuntimeValues.
func compareValues(a, b Value, caseSensitive bool) (int, error) {
	_, an := a.(noneT)
	_, bn := b.(noneT)
	if an && bn {
		return 0, nil
	}
	if an || bn {
		return 0, fail("cannot compare a %s with a %s", typeName(a), typeName(b))
	}
	_, au := a.(undefinedT)
	_, bu := b.(undefinedT)
	if au && bu {
		return 0, nil
	}
	if au || bu {
		return 0, fail("cannot compare a %s with a %s", typeName(a), typeName(b))
	}
	x, ok1 := numLike(a)
	y, ok2 := numLike(b)
	if ok1 && ok2 {
		switch {
		case x < y:
			return -1, nil
		case x > y:
			return 1, nil
		}
		return 0, nil
	}
	as, ok1 := a.(Str)
	bs, ok2 := b.(Str)
	if ok1 && ok2 {
		x, y := as.s, bs.s
		if !caseSensitive {
			x, y = jsLower(x), jsLower(y)
		}
		return cmpUTF16(x, y), nil
	}
	if typeName(a) != typeName(b) {
		return 0, fail("cannot compare a %s with a %s", typeName(a), typeName(b))
	}
	return 0, fail("cannot compare values of type %s", typeName(a))
}

func sortValues(items []Value, key func(Value) Value, caseSensitive, reverse bool) error {
	var err error
	slices.SortStableFunc(items, func(a, b Value) int {
		if err != nil {
			return 0
		}
		c, e := compareValues(key(a), key(b), caseSensitive)
		if e != nil {
			err = e
		}
		if reverse {
			return -c
		}
		return c
	})
	return err
}

// attrPath is the reference's getAttributeValue ("a.b", "items.0").
func attrPath(item Value, path string) Value {
	v := item
	for _, part := range strings.Split(path, ".") {
		switch o := v.(type) {
		case *Dict:
			x, ok := o.m[part]
			if !ok {
				return Undefined
			}
			v = x
		case *Namespace:
			x, ok := o.d.m[part]
			if !ok {
				return Undefined
			}
			v = x
		case *List:
			i, err := strconv.Atoi(leadingInt(part))
			if err != nil || i < 0 || i >= len(o.items) {
				return Undefined
			}
			v = o.items[i]
		default:
			return Undefined
		}
	}
	return v
}

// leadingInt is what parseInt(s, 10) reads.
func leadingInt(s string) string {
	s = trimJS(s, true, false)
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	j := i
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	if j == i {
		return "x"
	}
	return s[:j]
}

// parseIntJS is JavaScript's parseInt(s, 10).
func parseIntJS(s string) (float64, bool) {
	l := leadingInt(s)
	if l == "x" {
		return 0, false
	}
	f, err := strconv.ParseFloat(l, 64)
	if err != nil {
		return 0, false
	}
	return f, true
}

// parseFloatJS is JavaScript's parseFloat.
func parseFloatJS(s string) (float64, bool) {
	s = trimJS(s, true, false)
	sign := 1.0
	t := s
	if t != "" && (t[0] == '+' || t[0] == '-') {
		if t[0] == '-' {
			sign = -1
		}
		t = t[1:]
	}
	if strings.HasPrefix(t, "Infinity") {
		return sign * math.Inf(1), true
	}
	// longest prefix that is a decimal literal
	best := -1
	for j := len(t); j > 0; j-- {
		if isDecimalLiteral(t[:j]) && t[0] != '+' && t[0] != '-' {
			best = j
			break
		}
	}
	if best < 0 {
		return 0, false
	}
	f, err := parseFloatLenient(t[:best])
	if err != nil {
		return 0, false
	}
	return sign * f, true
}

func parseFloatLenient(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return f, nil
		}
	}
	return f, err
}
