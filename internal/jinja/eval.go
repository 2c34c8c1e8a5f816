package jinja

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Span is a piece of rendered output of one provenance. Trusted spans are
// template text (and trusted variables such as bos_token): a tokenizer may
// parse control tokens in them. Other spans are data and must be tokenized
// as plain text.
type Span struct {
	Text    string
	Trusted bool
}

// Limits on one render, so that a hostile template cannot exhaust memory or
// time.
const (
	MaxOutput     = 16 << 20 // bytes of output and of any one string built
	MaxIterations = 1 << 20  // loop iterations and range() items, in total
	MaxCallDepth  = 200      // nested macro calls
	MaxWork       = 1 << 28  // bytes of strings built, in total
)

type env struct {
	vars   map[string]Value
	parent *env
	// callBlock marks the scope a call block calls its macro from.
	callBlock bool
}

func newEnv(parent *env) *env { return &env{vars: map[string]Value{}, parent: parent} }

func (e *env) lookup(name string) Value {
	for s := e; s != nil; s = s.parent {
		if v, ok := s.vars[name]; ok {
			return v
		}
	}
	return Undefined
}

var (
	errBreak    = errors.New("break")
	errContinue = errors.New("continue")
)

type interp struct {
	src   string
	iters int
	depth int
	work  int
}

// at attaches the position of n to an error that has none.
func (in *interp) at(n node, err error) error {
	var e *Error
	if errors.As(err, &e) && e.Line == 0 {
		pe := errAtOrig(in.src, n.at(), "%s", e.Msg)
		return pe
	}
	return err
}

func (in *interp) errf(n node, format string, args ...any) error {
	return errAtOrig(in.src, n.at(), format, args...)
}

func fail(format string, args ...any) error { return &Error{Msg: fmt.Sprintf(format, args...)} }

// Render renders the template with vars (the top-level variables, such as
// messages, tools, add_generation_prompt, bos_token). It returns the output
// as spans; their texts joined are the rendered text.
func (t *Template) Render(vars *Dict) ([]Span, error) {
	root := newEnv(nil)
	for k, v := range globals() {
		root.vars[k] = v
	}
	if vars != nil {
		for _, k := range vars.keys {
			if _, ok := root.vars[k]; ok {
				return nil, &Error{Msg: fmt.Sprintf("variable %q is already declared (a built-in)", k)}
			}
			root.vars[k] = vars.m[k]
		}
	}
	in := &interp{src: t.src}
	out, err := in.renderBlock(t.body, root)
	if err != nil {
		if err == errBreak || err == errContinue {
			return nil, &Error{Msg: "break or continue outside a loop"}
		}
		return nil, err
	}
	spans := make([]Span, 0, len(out.runs))
	pos := 0
	for _, r := range out.runs {
		spans = append(spans, Span{Text: out.s[pos : pos+r.n], Trusted: r.trusted})
		pos += r.n
	}
	return spans, nil
}

// RenderString renders and returns the text alone.
func (t *Template) RenderString(vars *Dict) (string, error) {
	spans, err := t.Render(vars)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, s := range spans {
		b.WriteString(s.Text)
	}
	return b.String(), nil
}

func globals() map[string]Value {
	return map[string]Value{
		"false": false, "true": true, "none": None, "False": false, "True": true, "None": None,
		"namespace": &Func{name: "namespace", call: callNamespace},
		"raise_exception": &Func{name: "raise_exception", call: func(_ *interp, args []Value, _ *env) (Value, error) {
			msg := "undefined"
			if len(args) > 0 {
				s, err := rawString(args[0])
				if err != nil {
					return nil, err
				}
				msg = s.s
			}
			return nil, &Error{Msg: "template raised an exception: " + msg}
		}},
		"range": &Func{name: "range", call: callRange},
		"strftime_now": &Func{name: "strftime_now", call: func(*interp, []Value, *env) (Value, error) {
			return nil, fail("unsupported construct: strftime_now (the current date would make the prompt non-deterministic; pass date_string instead)")
		}},
	}
}

func callNamespace(_ *interp, args []Value, _ *env) (Value, error) {
	pos := args
	var kw *Dict
	if len(pos) > 0 {
		if d, ok := pos[len(pos)-1].(*Dict); ok && d.kwargs {
			kw, pos = d, pos[:len(pos)-1]
		}
	}
	if len(pos) > 1 {
		return nil, fail("namespace expected at most 1 argument, got %d", len(pos))
	}
	d := NewDict()
	if len(pos) == 1 {
		switch src := pos[0].(type) {
		case *Dict:
			for _, k := range src.keys {
				d.Set(k, src.m[k])
			}
		case *List:
			for _, pair := range src.items {
				var kv []Value
				switch p := pair.(type) {
				case *List:
					kv = p.items
				case Str:
					for _, r := range p.s {
						kv = append(kv, Data(string(r)))
					}
				}
				if len(kv) != 2 {
					return nil, fail("namespace expected an object or an iterable of [key, value] pairs")
				}
				k, ok := kv[0].(Str)
				if !ok {
					return nil, fail("namespace keys must be strings")
				}
				d.Set(k.s, kv[1])
			}
		default:
			return nil, fail("namespace: a %s is not iterable", typeName(src))
		}
	}
	if kw != nil {
		for _, k := range kw.keys {
			d.Set(k, kw.m[k])
		}
	}
	return &Namespace{d: d}, nil
}

func callRange(in *interp, args []Value, _ *env) (Value, error) {
	nums := make([]float64, len(args))
	for i, a := range args {
		switch a := a.(type) {
		case Int:
			nums[i] = float64(a)
		default:
			return nil, fail("range() takes integers, got a %s", typeName(a))
		}
	}
	var start, stop, step float64 = 0, 0, 1
	switch len(nums) {
	case 1:
		stop = nums[0]
	case 2:
		start, stop = nums[0], nums[1]
	case 3:
		start, stop, step = nums[0], nums[1], nums[2]
	default:
		return nil, fail("range() takes 1 to 3 arguments, got %d", len(nums))
	}
	if step == 0 {
		return nil, fail("range() step must not be zero")
	}
	l := &List{}
	for i := start; (step > 0 && i < stop) || (step < 0 && i > stop); i += step {
		if in.iters++; in.iters > MaxIterations {
			return nil, fail("more than %d loop iterations", MaxIterations)
		}
		l.items = append(l.items, NumberValue(i))
	}
	return l, nil
}

func (in *interp) renderBlock(nodes []node, e *env) (Str, error) {
	var parts []Str
	size := 0
	for _, n := range nodes {
		var s Str
		switch n := n.(type) {
		case *textNode:
			s = Trusted(n.val)
		case *commentNode:
			continue
		case *setNode:
			if err := in.execSet(n, e); err != nil {
				return Str{}, err
			}
			continue
		default:
			v, err := in.eval(n, e)
			if err != nil {
				return Str{}, err
			}
			switch v.(type) {
			case undefinedT, noneT:
				continue
			}
			s, err = outString(v)
			if err != nil {
				return Str{}, in.at(n, err)
			}
		}
		size += len(s.s)
		if size > MaxOutput {
			return Str{}, in.errf(n, "output longer than %d bytes", MaxOutput)
		}
		parts = append(parts, s)
	}
	return concat(parts...), nil
}

func (in *interp) eval(n node, e *env) (v Value, err error) {
	switch n := n.(type) {
	case nil:
		return Undefined, nil
	case *identNode:
		return e.lookup(n.name), nil
	case *intLit:
		return Int(n.val), nil
	case *floatLit:
		return Float(n.val), nil
	case *strLit:
		return Trusted(n.val), nil
	case *textNode:
		return Trusted(n.val), nil
	case *binaryNode:
		v, err = in.binary(n, e)
	case *memberNode:
		v, err = in.member(n, e)
	case *callNode:
		v, err = in.call(n, e)
	case *filterNode:
		var x Value
		if x, err = in.eval(n.x, e); err != nil {
			return nil, err
		}
		v, err = in.filter(x, n, e)
	case *testNode:
		v, err = in.test(n, e)
	case *ternaryNode:
		var c Value
		if c, err = in.eval(n.cond, e); err != nil {
			return nil, err
		}
		if truthy(c) {
			return in.eval(n.t, e)
		}
		return in.eval(n.f, e)
	case *unaryNode:
		v, err = in.unary(n, e)
	case *arrayLit:
		l := &List{items: make([]Value, len(n.items))}
		for i, it := range n.items {
			if l.items[i], err = in.eval(it, e); err != nil {
				return nil, err
			}
		}
		return l, nil
	case *tupleLit:
		l := &List{items: make([]Value, len(n.items)), tuple: true}
		for i, it := range n.items {
			if l.items[i], err = in.eval(it, e); err != nil {
				return nil, err
			}
		}
		return l, nil
	case *objectLit:
		d := NewDict()
		for i := range n.keys {
			k, err := in.eval(n.keys[i], e)
			if err != nil {
				return nil, err
			}
			ks, ok := k.(Str)
			if !ok {
				return nil, in.errf(n.keys[i], "dict keys must be strings, got a %s", typeName(k))
			}
			val, err := in.eval(n.vals[i], e)
			if err != nil {
				return nil, err
			}
			d.Set(ks.s, val)
		}
		return d, nil
	case *selectNode:
		var c Value
		if c, err = in.eval(n.test, e); err != nil {
			return nil, err
		}
		if !truthy(c) {
			return Undefined, nil
		}
		return in.eval(n.lhs, e)
	case *ifNode:
		var c Value
		if c, err = in.eval(n.test, e); err != nil {
			return nil, err
		}
		if truthy(c) {
			return in.renderBlock(n.body, e)
		}
		return in.renderBlock(n.alt, e)
	case *forNode:
		return in.renderFor(n, e)
	case *setNode:
		return None, in.execSet(n, e)
	case *macroNode:
		in.defineMacro(n, e)
		return None, nil
	case *callBlockNode:
		v, err = in.callBlock(n, e)
	case *filterBlock:
		var body Str
		if body, err = in.renderBlock(n.body, e); err != nil {
			return nil, err
		}
		v, err = in.filter(body, n.f, e)
	case *commentNode:
		return None, nil
	case *breakNode:
		return nil, errBreak
	case *continueNode:
		return nil, errContinue
	case *sliceNode, *kwargNode, *spreadNode, *kwSpreadNode:
		return nil, in.errf(n, "unsupported construct here")
	default:
		return nil, in.errf(n, "unsupported construct %T", n)
	}
	if err != nil {
		return nil, in.at(n, err)
	}
	return v, nil
}

func (in *interp) execSet(n *setNode, e *env) error {
	var rhs Value
	var err error
	if f, ok := n.value.(*filterNode); ok && !f.call && (f.name == "first" || f.name == "last") {
		// The reference's first/last of an empty list is JavaScript's
		// undefined, which a variable then holds as undefined (anywhere
		// else it fails).
		var x Value
		if x, err = in.eval(f.x, e); err != nil {
			return err
		}
		if l, ok := x.(*List); ok && len(l.items) == 0 {
			rhs = Undefined
		} else {
			rhs, err = in.filter(x, f, e)
			err = in.at(f, err)
		}
	} else if n.value != nil {
		rhs, err = in.eval(n.value, e)
	} else {
		rhs, err = in.renderBlock(n.body, e)
	}
	if err != nil {
		return err
	}
	switch t := n.target.(type) {
	case *identNode:
		e.vars[t.name] = rhs
	case *tupleLit:
		l, ok := rhs.(*List)
		if !ok {
			return in.errf(n, "cannot unpack a %s in set", typeName(rhs))
		}
		if len(l.items) != len(t.items) {
			return in.errf(n, "set unpacks %d values into %d names", len(l.items), len(t.items))
		}
		for i, it := range t.items {
			id, ok := it.(*identNode)
			if !ok {
				return in.errf(it, "cannot unpack into something that is not a name")
			}
			e.vars[id.name] = l.items[i]
		}
	case *memberNode:
		obj, err := in.eval(t.obj, e)
		if err != nil {
			return err
		}
		ns, ok := obj.(*Namespace)
		if !ok {
			return in.errf(n, "cannot assign an attribute of a %s (only of a namespace)", typeName(obj))
		}
		id, ok := t.prop.(*identNode)
		if !ok || t.computed {
			return in.errf(n, "cannot assign to a namespace member that is not a name")
		}
		ns.d.Set(id.name, rhs)
	default:
		return in.errf(n, "invalid target of set")
	}
	return nil
}

func (in *interp) bindLoopVar(lv node, cur Value, e *env) error {
	switch lv := lv.(type) {
	case *identNode:
		e.vars[lv.name] = cur
	case *tupleLit:
		l := cur.(*List)
		for j, t := range lv.items {
			id, ok := t.(*identNode)
			if !ok {
				return in.errf(t, "cannot unpack into something that is not a name")
			}
			e.vars[id.name] = l.items[j]
		}
	}
	return nil
}

func (in *interp) renderFor(n *forNode, outer *env) (Value, error) {
	scope := newEnv(outer)
	var test node
	var it Value
	var err error
	if sel, ok := n.iterable.(*selectNode); ok {
		it, err = in.eval(sel.lhs, scope)
		test = sel.test
	} else {
		it, err = in.eval(n.iterable, scope)
	}
	if err != nil {
		return nil, err
	}
	var cands []Value
	switch it := it.(type) {
	case *List:
		cands = it.items
	case *Dict:
		for _, k := range it.keys {
			cands = append(cands, Data(k))
		}
	default:
		return nil, in.errf(n.iterable, "cannot loop over a %s", typeName(it))
	}
	items := cands
	if _, ok := n.loopvar.(*identNode); !ok || test != nil {
		items = nil
		for _, c := range cands {
			if tl, ok := n.loopvar.(*tupleLit); ok {
				l, ok := c.(*List)
				if !ok || l.tuple {
					return nil, in.errf(n.loopvar, "cannot unpack a %s", typeName(c))
				}
				if len(l.items) != len(tl.items) {
					return nil, in.errf(n.loopvar, "cannot unpack %d values into %d names", len(l.items), len(tl.items))
				}
			}
			if test != nil {
				ls := newEnv(scope)
				if err := in.bindLoopVar(n.loopvar, c, ls); err != nil {
					return nil, err
				}
				tv, err := in.eval(test, ls)
				if err != nil {
					return nil, err
				}
				if !truthy(tv) {
					continue
				}
			}
			items = append(items, c)
		}
	} else {
		items = slices.Clone(cands)
	}
	var parts []Str
	size := 0
	none := true
	for i := range items {
		if in.iters++; in.iters > MaxIterations {
			return nil, in.errf(n, "more than %d loop iterations", MaxIterations)
		}
		loop := NewDict()
		ln := len(items)
		loop.Set("index", Int(i+1))
		loop.Set("index0", Int(i))
		loop.Set("revindex", Int(ln-i))
		loop.Set("revindex0", Int(ln-i-1))
		loop.Set("first", i == 0)
		loop.Set("last", i == ln-1)
		loop.Set("length", Int(ln))
		if i > 0 {
			loop.Set("previtem", items[i-1])
		} else {
			loop.Set("previtem", Undefined)
		}
		if i < ln-1 {
			loop.Set("nextitem", items[i+1])
		} else {
			loop.Set("nextitem", Undefined)
		}
		scope.vars["loop"] = loop
		if err := in.bindLoopVar(n.loopvar, items[i], scope); err != nil {
			return nil, err
		}
		s, err := in.renderBlock(n.body, scope)
		if err == errContinue {
			continue
		}
		if err == errBreak {
			break
		}
		if err != nil {
			return nil, err
		}
		if size += len(s.s); size > MaxOutput {
			return nil, in.errf(n, "output longer than %d bytes", MaxOutput)
		}
		parts = append(parts, s)
		none = false
	}
	if none {
		s, err := in.renderBlock(n.elseBody, scope)
		if err != nil {
			return nil, err
		}
		parts = append(parts, s)
	}
	return concat(parts...), nil
}

func (in *interp) defineMacro(n *macroNode, defEnv *env) {
	defEnv.vars[n.name] = &Func{name: n.name, call: func(in *interp, args []Value, site *env) (Value, error) {
		if in.depth++; in.depth > MaxCallDepth {
			return nil, in.errf(n, "macro calls nested deeper than %d", MaxCallDepth)
		}
		defer func() { in.depth-- }()
		parent := defEnv
		if n.caller {
			// caller is the call block's body when called from one.
			parent = newEnv(defEnv)
			parent.vars["caller"] = Undefined
			if site != nil && site.callBlock {
				if c, ok := site.vars["caller"]; ok {
					parent.vars["caller"] = c
				}
			}
		}
		scope := newEnv(parent)
		if err := in.bindArgs(n, fmt.Sprintf("%q", n.name), n.params, n.kwargs, n.varargs, args, scope); err != nil {
			return nil, err
		}
		return in.renderBlock(n.body, scope)
	}}
}

// bindArgs binds the arguments of a macro or call-block call to its
// parameters, then evaluates the defaults of the missing ones.
func (in *interp) bindArgs(at node, name string, params []node, useKwargs, useVarargs bool, args []Value, scope *env) error {
	pos := args
	kw := NewDict()
	if len(pos) > 0 {
		if d, ok := pos[len(pos)-1].(*Dict); ok && d.kwargs {
			pos = pos[:len(pos)-1]
			for _, k := range d.keys {
				kw.Set(k, d.m[k])
			}
		}
	}
	type pending struct {
		name string
		def  node
	}
	var defaults []pending
	for i, p := range params {
		var pname string
		var def node
		switch p := p.(type) {
		case *identNode:
			pname = p.name
		case *kwargNode:
			pname, def = p.key, p.value
		}
		var v Value
		if i < len(pos) {
			v = pos[i]
		} else if x, ok := kw.m[pname]; ok {
			v = x
			kw.delete(pname)
		}
		if v == nil && def != nil {
			defaults = append(defaults, pending{pname, def})
		}
		if v == nil {
			v = Undefined
		}
		scope.vars[pname] = v
	}
	if useKwargs {
		kw.kwargs = false
		scope.vars["kwargs"] = kw
	} else if kw.Len() > 0 {
		return in.errf(at, "macro %s takes no keyword argument %q", name, kw.keys[0])
	}
	if useVarargs {
		var extra []Value
		if len(pos) > len(params) {
			extra = slices.Clone(pos[len(params):])
		}
		scope.vars["varargs"] = &List{items: extra}
	} else if len(pos) > len(params) {
		return in.errf(at, "macro %s takes not more than %d argument(s)", name, len(params))
	}
	for _, d := range defaults {
		v, err := in.eval(d.def, scope)
		if err != nil {
			return err
		}
		scope.vars[d.name] = v
	}
	return nil
}

// callBlock runs {% call(params) macro(args) %}body{% endcall %}: the
// macro runs with caller() rendering body.
func (in *interp) callBlock(n *callBlockNode, e *env) (Value, error) {
	caller := &Func{name: "caller", call: func(in *interp, args []Value, _ *env) (Value, error) {
		scope := newEnv(e)
		if err := in.bindArgs(n, "None", n.params, n.kwargs, n.varargs, args, scope); err != nil {
			return nil, err
		}
		return in.renderBlock(n.body, scope)
	}}
	pos, kw, err := in.evalArgs(n.call.args, e)
	if err != nil {
		return nil, err
	}
	kw.kwargs = true
	args := append(pos, kw)
	fv, err := in.eval(n.call.callee, e)
	if err != nil {
		return nil, err
	}
	f, ok := fv.(*Func)
	if !ok {
		return nil, in.errf(n, "cannot call a %s%s", typeName(fv), calleeName(n.call.callee))
	}
	site := newEnv(e)
	site.callBlock = true
	site.vars["caller"] = caller
	return f.call(in, args, site)
}

func (d *Dict) delete(k string) {
	if _, ok := d.m[k]; !ok {
		return
	}
	delete(d.m, k)
	d.keys = slices.DeleteFunc(d.keys, func(x string) bool { return x == k })
}

// callArgs evaluates call arguments: the positional ones, then one
// keyword-arguments Dict when there are keyword arguments.
func (in *interp) callArgs(args []node, e *env) ([]Value, error) {
	pos, kw, err := in.evalArgs(args, e)
	if err != nil {
		return nil, err
	}
	if kw.Len() > 0 {
		kw.kwargs = true
		pos = append(pos, kw)
	}
	return pos, nil
}

func (in *interp) evalArgs(args []node, e *env) ([]Value, *Dict, error) {
	var pos []Value
	kw := NewDict()
	for _, a := range args {
		switch a := a.(type) {
		case *spreadNode:
			v, err := in.eval(a.x, e)
			if err != nil {
				return nil, nil, err
			}
			l, ok := v.(*List)
			if !ok {
				return nil, nil, in.errf(a, "cannot unpack a %s with *", typeName(v))
			}
			pos = append(pos, l.items...)
		case *kwargNode, *kwSpreadNode:
		default:
			v, err := in.eval(a, e)
			if err != nil {
				return nil, nil, err
			}
			pos = append(pos, v)
		}
	}
	for _, a := range args {
		switch a := a.(type) {
		case *kwargNode:
			if _, ok := kw.m[a.key]; ok {
				return nil, nil, in.errf(a, "several values for keyword argument %q", a.key)
			}
			v, err := in.eval(a.value, e)
			if err != nil {
				return nil, nil, err
			}
			kw.Set(a.key, v)
		case *kwSpreadNode:
			v, err := in.eval(a.x, e)
			if err != nil {
				return nil, nil, err
			}
			d, ok := v.(*Dict)
			if !ok {
				return nil, nil, in.errf(a, "argument after ** must be a mapping, not a %s", typeName(v))
			}
			for _, k := range d.keys {
				if _, ok := kw.m[k]; ok {
					return nil, nil, in.errf(a, "several values for keyword argument %q", k)
				}
				kw.Set(k, d.m[k])
			}
		}
	}
	return pos, kw, nil
}

func (in *interp) call(n *callNode, e *env) (Value, error) {
	args, err := in.callArgs(n.args, e)
	if err != nil {
		return nil, err
	}
	fv, err := in.eval(n.callee, e)
	if err != nil {
		return nil, err
	}
	f, ok := fv.(*Func)
	if !ok {
		return nil, in.errf(n, "cannot call a %s%s", typeName(fv), calleeName(n.callee))
	}
	return f.call(in, args, e)
}

func calleeName(n node) string {
	switch n := n.(type) {
	case *identNode:
		return " (" + n.name + ")"
	case *memberNode:
		if id, ok := n.prop.(*identNode); ok && !n.computed {
			return " (." + id.name + ")"
		}
	}
	return ""
}

func (in *interp) unary(n *unaryNode, e *env) (Value, error) {
	x, err := in.eval(n.x, e)
	if err != nil {
		return nil, err
	}
	if n.op == "not" {
		return !truthy(x), nil
	}
	sign := 1.0
	if n.op == "-" {
		sign = -1
	}
	switch x := x.(type) {
	case Int:
		return Int(sign * float64(x)), nil
	case Float:
		return Float(sign * float64(x)), nil
	case bool:
		if x {
			return Int(sign), nil
		}
		return Int(sign * 0), nil
	}
	return nil, fail("unary %s on a %s", n.op, typeName(x))
}

func isNum(v Value) (float64, bool) {
	switch v := v.(type) {
	case Int:
		return float64(v), true
	case Float:
		return float64(v), true
	}
	return 0, false
}

func numLike(v Value) (float64, bool) {
	if b, ok := v.(bool); ok {
		if b {
			return 1, true
		}
		return 0, true
	}
	return isNum(v)
}

func (in *interp) binary(n *binaryNode, e *env) (Value, error) {
	l, err := in.eval(n.l, e)
	if err != nil {
		return nil, err
	}
	switch n.op {
	case "and":
		if !truthy(l) {
			return l, nil
		}
		return in.eval(n.r, e)
	case "or":
		if truthy(l) {
			return l, nil
		}
		return in.eval(n.r, e)
	}
	r, err := in.eval(n.r, e)
	if err != nil {
		return nil, err
	}
	switch n.op {
	case "==":
		return looseEq(l, r), nil
	case "!=":
		return !looseEq(l, r), nil
	}
	a, lnum := isNum(l)
	b, rnum := isNum(r)
	_, lf := l.(Float)
	_, rf := r.(Float)
	_, lu := l.(undefinedT)
	_, ru := r.(undefinedT)
	_, ln := l.(noneT)
	_, rn := r.(noneT)
	switch {
	case lnum && rnum && n.op != "~" && n.op != "**":
		isF := lf || rf
		mk := func(x float64) Value {
			if isF {
				return Float(x)
			}
			return Int(x)
		}
		switch n.op {
		case "+":
			return mk(a + b), nil
		case "-":
			return mk(a - b), nil
		case "*":
			return mk(a * b), nil
		case "/":
			return Float(a / b), nil
		case "//":
			return mk(math.Floor(a / b)), nil
		case "%":
			return mk(math.Mod(a, b)), nil
		case "<":
			return a < b, nil
		case ">":
			return a > b, nil
		case ">=":
			return a >= b, nil
		case "<=":
			return a <= b, nil
		}
	case lu || ru:
		if ru && (n.op == "in" || n.op == "not in") {
			return n.op == "not in", nil
		}
		if n.op == "~" && !ln && !rn {
			var ls, rs Str
			if !lu {
				if ls, err = rawString(l); err != nil {
					return nil, err
				}
			}
			if !ru {
				if rs, err = rawString(r); err != nil {
					return nil, err
				}
			}
			return in.checkLen(concat(ls, rs))
		}
		return nil, fail("cannot apply %s to an undefined value", n.op)
	case ln || rn:
		return nil, fail("cannot apply %s to none", n.op)
	case n.op == "~":
		ls, err := rawString(l)
		if err != nil {
			return nil, err
		}
		rs, err := rawString(r)
		if err != nil {
			return nil, err
		}
		return in.checkLen(concat(ls, rs))
	case n.op == "**":
		a, ok1 := numLike(l)
		b, ok2 := numLike(r)
		if ok1 && ok2 {
			if a == 0 && b < 0 {
				return nil, fail("0.0 cannot be raised to a negative power")
			}
			// Go's math.Pow, not V8's fdlibm pow: a non-integer
			// result may differ in the last bit.
			res := math.Pow(a, b)
			if math.IsNaN(res) || math.IsInf(res, 0) {
				return nil, fail("exponentiation result is not a finite real number")
			}
			if lf || rf || b < 0 {
				return Float(res), nil
			}
			return Int(res), nil
		}
	}
	ll, lIsList := l.(*List)
	rl, rIsList := r.(*List)
	if lIsList && rIsList {
		if n.op == "+" {
			items := make([]Value, 0, len(ll.items)+len(rl.items))
			return &List{items: append(append(items, ll.items...), rl.items...)}, nil
		}
	} else if rIsList {
		member := slices.ContainsFunc(rl.items, func(x Value) bool { return strictEq(x, l) })
		switch n.op {
		case "in":
			return member, nil
		case "not in":
			return !member, nil
		}
	}
	ls, lIsStr := l.(Str)
	rs, rIsStr := r.(Str)
	if (lIsStr || rIsStr) && n.op == "+" {
		a, err := rawString(l)
		if err != nil {
			return nil, err
		}
		b, err := rawString(r)
		if err != nil {
			return nil, err
		}
		return in.checkLen(concat(a, b))
	}
	if lIsStr && rIsStr {
		switch n.op {
		case "in":
			return strings.Contains(rs.s, ls.s), nil
		case "not in":
			return !strings.Contains(rs.s, ls.s), nil
		}
	}
	if rd, ok := r.(*Dict); ok && lIsStr {
		_, has := rd.m[ls.s]
		switch n.op {
		case "in":
			return has, nil
		case "not in":
			return !has, nil
		}
	}
	return nil, fail("unknown operator %s between a %s and a %s", n.op, typeName(l), typeName(r))
}

func (in *interp) checkLen(s Str) (Value, error) {
	if len(s.s) > MaxOutput {
		return nil, fail("string longer than %d bytes", MaxOutput)
	}
	if in.work += len(s.s); in.work > MaxWork {
		return nil, fail("the template builds more than %d bytes of strings", MaxWork)
	}
	return s, nil
}

// jsKind classifies a value as JavaScript sees its raw value.
func jsPrim(v Value) (kind byte, num float64, str string, obj any) {
	switch v := v.(type) {
	case undefinedT, noneT:
		// The reference's NullValue holds JavaScript's undefined, so
		// none and undefined are one raw value.
		return 'u', 0, "", nil
	case bool:
		return 'b', 0, "", v
	case Int:
		return 'd', float64(v), "", nil
	case Float:
		return 'd', float64(v), "", nil
	case Str:
		return 's', 0, v.s, nil
	}
	return 'o', 0, "", v
}

// strictEq is JavaScript's === on raw values.
func strictEq(a, b Value) bool {
	ka, na, sa, oa := jsPrim(a)
	kb, nb, sb, ob := jsPrim(b)
	if ka != kb {
		return false
	}
	switch ka {
	case 'd':
		return na == nb
	case 's':
		return sa == sb
	case 'b', 'o':
		return oa == ob
	}
	return true
}

// looseEq is JavaScript's == on raw values (the reference compares
// left.value == right.value).
func looseEq(a, b Value) bool {
	ka, na, sa, oa := jsPrim(a)
	kb, nb, sb, ob := jsPrim(b)
	if ka == kb {
		return strictEq(a, b)
	}
	switch {
	case (ka == 'u' || ka == 'n') && (kb == 'u' || kb == 'n'):
		return true
	case ka == 'u' || ka == 'n' || kb == 'u' || kb == 'n':
		return false
	case ka == 'b':
		return looseEq(boolNum(oa.(bool)), b)
	case kb == 'b':
		return looseEq(a, boolNum(ob.(bool)))
	case ka == 'd' && kb == 's':
		return na == jsToNumber(sb)
	case ka == 's' && kb == 'd':
		return jsToNumber(sa) == nb
	case ka == 'o':
		return looseEq(toPrimitive(a), b)
	case kb == 'o':
		return looseEq(a, toPrimitive(b))
	}
	return false
}

func boolNum(b bool) Value {
	if b {
		return Int(1)
	}
	return Int(0)
}

func toPrimitive(v Value) Value {
	s, err := rawString(v)
	if err != nil {
		return Data("function")
	}
	return s
}

// jsToNumber is JavaScript's StringToNumber.
func jsToNumber(s string) float64 {
	s = trimJS(s, true, true)
	if s == "" {
		return 0
	}
	switch s {
	case "Infinity", "+Infinity":
		return math.Inf(1)
	case "-Infinity":
		return math.Inf(-1)
	}
	if len(s) > 2 && s[0] == '0' {
		base := 0
		switch s[1] {
		case 'x', 'X':
			base = 16
		case 'o', 'O':
			base = 8
		case 'b', 'B':
			base = 2
		}
		if base != 0 {
			var f float64
			for _, c := range s[2:] {
				d := strings.IndexRune("0123456789abcdef", c|0x20)
				if c >= 'A' && c <= 'F' {
					d = int(c-'A') + 10
				}
				if d < 0 || d >= base {
					return math.NaN()
				}
				f = float64(f*float64(base)) + float64(d) // rounded product: no fused multiply-add (internal/detcheck)
			}
			return f
		}
	}
	if !isDecimalLiteral(s) {
		return math.NaN()
	}
	f, err := parseFloatLenient(s)
	if err != nil {
		return math.NaN()
	}
	return f
}

func isDecimalLiteral(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for i < len(s) && isDigit(s[i]) {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		ed := 0
		for i < len(s) && isDigit(s[i]) {
			i++
			ed++
		}
		if ed == 0 {
			return false
		}
	}
	return i == len(s)
}
