package jinja

import (
	"math"
	"slices"
	"strings"
)

var tests = map[string]func(v Value) (bool, error){
	"boolean":  func(v Value) (bool, error) { _, ok := v.(bool); return ok, nil },
	"callable": func(v Value) (bool, error) { _, ok := v.(*Func); return ok, nil },
	"odd": func(v Value) (bool, error) {
		i, ok := v.(Int)
		if !ok {
			return false, fail("cannot test odd on a %s", typeName(v))
		}
		return math.Mod(float64(i), 2) != 0, nil
	},
	"even": func(v Value) (bool, error) {
		i, ok := v.(Int)
		if !ok {
			return false, fail("cannot test even on a %s", typeName(v))
		}
		return math.Mod(float64(i), 2) == 0, nil
	},
	"false":   func(v Value) (bool, error) { b, ok := v.(bool); return ok && !b, nil },
	"true":    func(v Value) (bool, error) { b, ok := v.(bool); return ok && b, nil },
	"none":    func(v Value) (bool, error) { _, ok := v.(noneT); return ok, nil },
	"string":  func(v Value) (bool, error) { _, ok := v.(Str); return ok, nil },
	"number":  func(v Value) (bool, error) { _, ok := isNum(v); return ok, nil },
	"integer": func(v Value) (bool, error) { _, ok := v.(Int); return ok, nil },
	"iterable": func(v Value) (bool, error) {
		switch v := v.(type) {
		case Str:
			return true, nil
		case *List:
			return !v.tuple, nil
		}
		return false, nil
	},
	"mapping": func(v Value) (bool, error) { _, ok := v.(*Dict); return ok, nil },
	"sequence": func(v Value) (bool, error) {
		switch v.(type) {
		case Str, *List, *Dict:
			return true, nil
		}
		return false, nil
	},
	"lower": func(v Value) (bool, error) { s, ok := v.(Str); return ok && s.s == jsLower(s.s), nil },
	"upper": func(v Value) (bool, error) { s, ok := v.(Str); return ok && s.s == jsUpper(s.s), nil },
	"defined": func(v Value) (bool, error) { _, ok := v.(undefinedT); return !ok, nil },
	"undefined": func(v Value) (bool, error) { _, ok := v.(undefinedT); return ok, nil },
}

func (in *interp) test(n *testNode, e *env) (Value, error) {
	x, err := in.eval(n.x, e)
	if err != nil {
		return nil, err
	}
	if n.name == "equalto" || n.name == "eq" {
		return nil, in.errf(n, "unsupported construct: test %q without an argument", n.name)
	}
	t, ok := tests[n.name]
	if !ok {
		return nil, in.errf(n, "unknown test %q", n.name)
	}
	r, err := t(x)
	if err != nil {
		return nil, err
	}
	return r != n.negate, nil
}

func (in *interp) filter(x Value, n *filterNode, e *env) (Value, error) {
	if !n.call {
		return in.plainFilter(x, n.name)
	}
	name := n.name
	switch name {
	case "tojson":
		_, kw, err := in.evalArgs(n.args, e)
		if err != nil {
			return nil, err
		}
		var o jsonOpts
		switch v := argOr(nil, 0, kw, "indent", None).(type) {
		case noneT:
		case Int:
			o.indent = int(v)
		default:
			return nil, fail("tojson: indent must be an integer")
		}
		ea, ok := argOr(nil, 0, kw, "ensure_ascii", false).(bool)
		if !ok {
			return nil, fail("tojson: ensure_ascii must be a boolean")
		}
		o.ensureASCII = ea
		sk, ok := argOr(nil, 0, kw, "sort_keys", false).(bool)
		if !ok {
			return nil, fail("tojson: sort_keys must be a boolean")
		}
		if sk {
			return nil, fail("unsupported construct: tojson(sort_keys=true) (the reference sorts by locale)")
		}
		switch v := argOr(nil, 0, kw, "separators", None).(type) {
		case noneT:
		case *List:
			if len(v.items) != 2 {
				return nil, fail("tojson: separators must be a tuple of two strings")
			}
			a, ok1 := v.items[0].(Str)
			b, ok2 := v.items[1].(Str)
			if !ok1 || !ok2 {
				return nil, fail("tojson: separators must be a tuple of two strings")
			}
			o.itemSep, o.keySep, o.sepSet = a.s, b.s, true
		default:
			return nil, fail("tojson: separators must be a tuple of two strings")
		}
		return jsonValue(x, o)
	case "join":
		var parts []Str
		switch v := x.(type) {
		case Str:
			offs := runeOffsets(v.s)
			for k := 0; k+1 < len(offs); k++ {
				parts = append(parts, v.sub(offs[k], offs[k+1]))
			}
		case *List:
			for _, it := range v.items {
				switch it.(type) {
				case undefinedT, noneT:
					parts = append(parts, Str{})
					continue
				}
				s, err := rawString(it)
				if err != nil {
					return nil, err
				}
				parts = append(parts, s)
			}
		default:
			return nil, fail("cannot apply filter join to a %s", typeName(x))
		}
		pos, kw, err := in.evalArgs(n.args, e)
		if err != nil {
			return nil, err
		}
		sep, ok := argOr(pos, 0, kw, "separator", Trusted("")).(Str)
		if !ok {
			return nil, fail("join: separator must be a string")
		}
		return in.checkLen(joinStr(parts, sep))
	case "int", "float":
		pos, kw, err := in.evalArgs(n.args, e)
		if err != nil {
			return nil, err
		}
		var def Value = Int(0)
		if name == "float" {
			def = Float(0)
		}
		def = argOr(pos, 0, kw, "default", def)
		return toNumberFilter(x, name, def)
	case "default":
		pos, kw, err := in.evalArgs(n.args, e)
		if err != nil {
			return nil, err
		}
		var def Value = Trusted("")
		if len(pos) > 0 {
			def = pos[0]
		}
		b, ok := argOr(pos, 1, kw, "boolean", false).(bool)
		if !ok {
			return nil, fail("default: the boolean flag must be a boolean")
		}
		if _, u := x.(undefinedT); u || (b && !truthy(x)) {
			return def, nil
		}
		return x, nil
	}
	switch v := x.(type) {
	case *List:
		switch name {
		case "sort":
			pos, kw, err := in.evalArgs(n.args, e)
			if err != nil {
				return nil, err
			}
			rev, ok := argOr(pos, 0, kw, "reverse", false).(bool)
			if !ok {
				return nil, fail("sort: reverse must be a boolean")
			}
			cs, ok := argOr(pos, 1, kw, "case_sensitive", false).(bool)
			if !ok {
				return nil, fail("sort: case_sensitive must be a boolean")
			}
			attr := argOr(pos, 2, kw, "attribute", None)
			key := func(v Value) Value { return v }
			switch a := attr.(type) {
			case noneT:
			case Str:
				key = func(v Value) Value { return attrPath(v, a.s) }
			case Int:
				p := jsNumber(float64(a))
				key = func(v Value) Value { return attrPath(v, p) }
			default:
				return nil, fail("sort: attribute must be a string, integer or none")
			}
			items := slices.Clone(v.items)
			if err := sortValues(items, key, cs, rev); err != nil {
				return nil, err
			}
			return &List{items: items}, nil
		case "selectattr", "rejectattr":
			for _, it := range v.items {
				switch it.(type) {
				case *Dict, *Namespace:
				default:
					return nil, fail("%s applies to a list of objects only", name)
				}
			}
			for _, a := range n.args {
				if _, ok := a.(*strLit); !ok {
					return nil, fail("the arguments of %s must be string literals", name)
				}
			}
			if len(n.args) == 0 {
				return nil, fail("%s needs an attribute name", name)
			}
			attr := n.args[0].(*strLit).val
			testFn := func(a, _ Value) (bool, error) { return truthy(a), nil }
			var arg Value = Undefined
			if len(n.args) > 1 {
				tn := n.args[1].(*strLit).val
				if tn == "equalto" || tn == "eq" {
					testFn = func(a, b Value) (bool, error) { return strictEq(a, b), nil }
				} else {
					t, ok := tests[tn]
					if !ok {
						return nil, fail("unknown test %q", tn)
					}
					testFn = func(a, _ Value) (bool, error) { return t(a) }
				}
				if len(n.args) > 2 {
					arg = Trusted(n.args[2].(*strLit).val)
				}
			}
			out := &List{}
			for _, it := range v.items {
				var d *Dict
				if ns, ok := it.(*Namespace); ok {
					d = ns.d
				} else {
					d = it.(*Dict)
				}
				res := false
				if a, ok := d.m[attr]; ok {
					r, err := testFn(a, arg)
					if err != nil {
						return nil, err
					}
					res = r
				}
				if res == (name == "selectattr") {
					out.items = append(out.items, it)
				}
			}
			return out, nil
		case "map":
			_, kw, err := in.evalArgs(n.args, e)
			if err != nil {
				return nil, err
			}
			a, ok := kw.m["attribute"]
			if !ok {
				return nil, fail("unsupported construct: map without attribute=")
			}
			as, ok := a.(Str)
			if !ok {
				return nil, fail("map: attribute must be a string")
			}
			def, hasDef := kw.m["default"]
			out := &List{}
			for _, it := range v.items {
				switch it.(type) {
				case *Dict, *Namespace:
				default:
					return nil, fail("map: items must be objects")
				}
				r := attrPath(it, as.s)
				if _, u := r.(undefinedT); u && hasDef {
					r = def
				}
				out.items = append(out.items, r)
			}
			return out, nil
		}
		return nil, fail("unknown list filter %q", name)
	case Str:
		switch name {
		case "indent":
			pos, kw, err := in.evalArgs(n.args, e)
			if err != nil {
				return nil, err
			}
			var ind Str
			switch w := argOr(pos, 0, kw, "width", Int(4)).(type) {
			case Int:
				ind = Trusted(strings.Repeat(" ", max(0, int(w))))
			case Str:
				ind = w
			default:
				return nil, fail("indent: width must be an integer or a string")
			}
			first := truthy(argOr(pos, 1, kw, "first", false))
			blank := truthy(argOr(pos, 2, kw, "blank", false))
			return in.checkLen(indent(v, ind, first, blank))
		case "replace":
			pos, kw, err := in.evalArgs(n.args, e)
			if err != nil {
				return nil, err
			}
			kw.kwargs = true
			return replaceStr(v, append(pos, kw))
		}
		return nil, fail("unknown string filter %q", name)
	case *Dict:
		if b, ok := dictBuiltin(v, name).(*Func); ok {
			args, err := in.callArgs(n.args, e)
			if err != nil {
				return nil, err
			}
			return b.call(in, args, e)
		}
		return nil, fail("unknown dict filter %q", name)
	}
	return nil, fail("cannot apply filter %s to a %s", name, typeName(x))
}

func jsonValue(x Value, o jsonOpts) (Value, error) {
	s, err := toJSON(x, o, 0)
	if err != nil {
		return nil, err
	}
	if xs, ok := x.(Str); ok {
		return derived(s, xs), nil
	}
	return Data(s), nil
}

func joinStr(parts []Str, sep Str) Str {
	all := make([]Str, 0, 2*len(parts))
	for i, p := range parts {
		if i > 0 {
			all = append(all, sep)
		}
		all = append(all, p)
	}
	return concat(all...)
}

func indent(s Str, ind Str, first, blank bool) Str {
	var parts []Str
	i := 0
	line := 0
	for {
		k := strings.IndexByte(s.s[i:], '\n')
		end := len(s.s)
		if k >= 0 {
			end = i + k
		}
		l := s.sub(i, end)
		if !((!first && line == 0) || (!blank && l.s == "")) {
			parts = append(parts, ind)
		}
		parts = append(parts, l)
		if k < 0 {
			break
		}
		parts = append(parts, s.sub(end, end+1))
		i = end + 1
		line++
	}
	return concat(parts...)
}

func toNumberFilter(x Value, name string, def Value) (Value, error) {
	switch v := x.(type) {
	case Str:
		if name == "int" {
			f, ok := parseIntJS(v.s)
			if !ok {
				return def, nil
			}
			return Int(f), nil
		}
		f, ok := parseFloatJS(v.s)
		if !ok {
			return def, nil
		}
		return Float(f), nil
	case Int, Float:
		f, _ := isNum(v)
		if name == "int" {
			return Int(math.Trunc(f) + 0), nil
		}
		return Float(f), nil
	case bool:
		if name == "int" {
			return boolNum(v), nil
		}
		if v {
			return Float(1), nil
		}
		return Float(0), nil
	}
	return nil, fail("cannot apply filter %s to a %s", name, typeName(x))
}

// plainFilter applies a filter written without parentheses.
func (in *interp) plainFilter(x Value, name string) (Value, error) {
	switch name {
	case "safe":
		return x, nil
	case "tojson":
		return jsonValue(x, jsonOpts{})
	}
	switch v := x.(type) {
	case *List:
		switch name {
		case "list":
			return v, nil
		case "first":
			if len(v.items) == 0 {
				return nil, fail("first of an empty list")
			}
			return v.items[0], nil
		case "last":
			if len(v.items) == 0 {
				return nil, fail("last of an empty list")
			}
			return v.items[len(v.items)-1], nil
		case "length":
			return Int(len(v.items)), nil
		case "reverse":
			items := slices.Clone(v.items)
			slices.Reverse(items)
			return &List{items: items}, nil
		case "sort":
			items := slices.Clone(v.items)
			if err := sortValues(items, func(v Value) Value { return v }, false, false); err != nil {
				return nil, err
			}
			return &List{items: items}, nil
		case "join":
			var parts []Str
			for _, it := range v.items {
				switch it.(type) {
				case undefinedT, noneT:
					continue
				}
				s, err := rawString(it)
				if err != nil {
					return nil, err
				}
				parts = append(parts, s)
			}
			return in.checkLen(concat(parts...))
		case "string":
			s, err := toJSON(v, jsonOpts{undefinedAsText: true}, 0)
			if err != nil {
				return nil, err
			}
			return Data(s), nil
		case "unique":
			out := &List{}
			for _, it := range v.items {
				// A JavaScript Set of raw values: SameValueZero.
				if !slices.ContainsFunc(out.items, func(o Value) bool { return sameValueZero(o, it) }) {
					out.items = append(out.items, it)
				}
			}
			return out, nil
		}
		return nil, fail("unknown list filter %q", name)
	case Str:
		switch name {
		case "length", "upper", "lower", "title", "capitalize":
			b := strBuiltin(v, name)
			if f, ok := b.(*Func); ok {
				return f.call(in, nil, nil)
			}
			return b, nil
		case "trim":
			return trimStr(v, true, true), nil
		case "indent":
			return indent(v, Trusted("    "), false, false), nil
		case "join", "string":
			return v, nil
		case "int", "float":
			var def Value = Int(0)
			if name == "float" {
				def = Float(0)
			}
			return toNumberFilter(v, name, def)
		}
		return nil, fail("unknown string filter %q", name)
	case Int, Float:
		switch name {
		case "abs":
			f, _ := isNum(v)
			if _, ok := v.(Int); ok {
				return Int(math.Abs(f)), nil
			}
			return Float(math.Abs(f)), nil
		case "int", "float":
			return toNumberFilter(v, name, nil)
		case "string":
			s, err := outString(v)
			if err != nil {
				return nil, err
			}
			return s, nil
		}
		return nil, fail("unknown number filter %q", name)
	case *Dict:
		switch name {
		case "items":
			return dictItems(v), nil
		case "length":
			return Int(v.Len()), nil
		}
		if b := dictBuiltin(v, name); b != nil {
			return b.(*Func).call(in, nil, nil)
		}
		return nil, fail("unknown dict filter %q", name)
	case bool:
		switch name {
		case "bool":
			return v, nil
		case "int", "float":
			return toNumberFilter(v, name, nil)
		case "string":
			return Data(jsBool(v)), nil
		}
		return nil, fail("unknown boolean filter %q", name)
	}
	return nil, fail("cannot apply filter %s to a %s", name, typeName(x))
}

func jsBool(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func sameValueZero(a, b Value) bool {
	ka, na, _, _ := jsPrim(a)
	kb, nb, _, _ := jsPrim(b)
	if ka == 'd' && kb == 'd' && math.IsNaN(na) && math.IsNaN(nb) {
		return true
	}
	return strictEq(a, b)
}
