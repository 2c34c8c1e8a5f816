package jinja

import (
	"errors"
	"slices"
	"strconv"
	"strings"
)

// node is a statement or expression of the template's syntax tree.
type node interface{ at() int }

type base struct{ pos int }

func (b base) at() int { return b.pos }

type (
	textNode struct {
		base
		val string
	} // text outside tags
	commentNode struct{ base }
	ifNode      struct {
		base
		test      node
		body, alt []node
	}
	forNode struct {
		base
		loopvar        node // *identNode or *tupleLit
		iterable       node
		body, elseBody []node
	}
	setNode struct {
		base
		target node
		value  node // nil: block set
		body   []node
	}
	macroNode struct {
		base
		name   string
		params []node // *identNode or *kwargNode
		body   []node
		// special arguments the body reads
		kwargs, varargs, caller bool
	}
	callBlockNode struct {
		base
		params          []node // caller's parameters
		call            *callNode
		body            []node
		kwargs, varargs bool // special arguments the body reads
	}
	filterBlock struct {
		base
		f    *filterNode // x unused
		body []node
	}
	breakNode    struct{ base }
	continueNode struct{ base }

	identNode struct {
		base
		name string
	}
	intLit struct {
		base
		val float64
	}
	floatLit struct {
		base
		val float64
	}
	strLit struct {
		base
		val string
	}
	arrayLit struct {
		base
		items []node
	}
	tupleLit struct {
		base
		items []node
	}
	objectLit struct {
		base
		keys, vals []node
	}
	binaryNode struct {
		base
		op   string
		l, r node
	}
	unaryNode struct {
		base
		op string
		x  node
	}
	memberNode struct {
		base
		obj, prop node
		computed  bool
	}
	sliceNode struct {
		base
		start, stop, step node // nil when absent
	}
	callNode struct {
		base
		callee node
		args   []node
	}
	kwargNode struct {
		base
		key   string
		value node
	}
	spreadNode struct {
		base
		x node
	}
	kwSpreadNode struct {
		base
		x node
	}
	filterNode struct {
		base
		x    node
		name string
		args []node // nil: no parentheses
		call bool
	}
	testNode struct {
		base
		x      node
		negate bool
		name   string
	}
	selectNode struct {
		base
		lhs, test node
	}
	ternaryNode struct {
		base
		cond, t, f node
	}
)

// Template is a parsed chat template.
type Template struct {
	src  string
	body []node
}

// Parse parses a template. It fails, with an *Error, on a syntax error and
// on constructs this package does not implement.
func Parse(tmpl string) (t *Template, err error) {
	s := preprocess(tmpl)
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, src: tmpl}
	defer func() {
		if r := recover(); r != nil {
			pe, ok := r.(*Error)
			if !ok {
				panic(r)
			}
			t, err = nil, pe
		}
	}()
	var body []node
	for p.cur < len(p.toks) {
		body = append(body, p.parseAny())
	}
	return &Template{src: tmpl, body: body}, nil
}

// Source returns the template text.
func (t *Template) Source() string { return t.src }

type parser struct {
	toks []token
	cur  int
	src  string
	// depth bounds recursion so that a hostile template cannot exhaust
	// the stack.
	depth int
}

const maxDepth = 500

func (p *parser) fail(pos int, format string, args ...any) {
	panic(errAtOrig(p.src, pos, format, args...))
}

func (p *parser) tok(i int) token {
	if i < len(p.toks) {
		return p.toks[i]
	}
	return token{typ: 255, pos: len(p.src)}
}

func (p *parser) peek() token { return p.tok(p.cur) }

func (p *parser) next() token {
	t := p.tok(p.cur)
	if p.cur >= len(p.toks) {
		p.fail(len(p.src), "unexpected end of template")
	}
	p.cur++
	return t
}

func (p *parser) expect(typ tokenType, what string) token {
	t := p.next()
	if t.typ != typ {
		p.fail(t.pos, "%s: found %s", what, describe(t))
	}
	return t
}

func describe(t token) string {
	switch t.typ {
	case 255:
		return "end of template"
	case tIdent:
		return strconv.Quote(t.val)
	case tText:
		return "text"
	}
	return t.typ.String()
}

func (p *parser) is(types ...tokenType) bool {
	if p.cur+len(types) > len(p.toks) {
		return false
	}
	for i, t := range types {
		if p.toks[p.cur+i].typ != t {
			return false
		}
	}
	return true
}

func (p *parser) isIdent(names ...string) bool {
	if p.cur+len(names) > len(p.toks) {
		return false
	}
	for i, n := range names {
		t := p.toks[p.cur+i]
		if t.typ != tIdent || t.val != n {
			return false
		}
	}
	return true
}

func (p *parser) isStatement(names ...string) bool {
	return p.tok(p.cur).typ == tOpenStatement && p.tok(p.cur+1).typ == tIdent && slices.Contains(names, p.tok(p.cur+1).val)
}

func (p *parser) expectIdent(name string) {
	t := p.peek()
	if !p.isIdent(name) {
		p.fail(t.pos, "expected %q, found %s", name, describe(t))
	}
	p.cur++
}

func (p *parser) enter() {
	p.depth++
	if p.depth > maxDepth {
		p.fail(p.peek().pos, "template nested too deeply")
	}
}

func (p *parser) leave() { p.depth-- }

func (p *parser) parseAny() node {
	p.enter()
	defer p.leave()
	t := p.peek()
	switch t.typ {
	case tComment:
		p.cur++
		return &commentNode{base{t.pos}}
	case tText:
		p.cur++
		return &textNode{base{t.pos}, t.val}
	case tOpenStatement:
		return p.parseStatement()
	case tOpenExpression:
		p.cur++
		e := p.parseExpression()
		p.expect(tCloseExpression, "expected }}")
		return e
	}
	p.fail(t.pos, "unexpected %s", describe(t))
	return nil
}

// block parses statements until one of the named statements.
func (p *parser) block(ends ...string) []node {
	var body []node
	for !p.isStatement(ends...) {
		if p.cur >= len(p.toks) {
			end := ends[0]
			for _, e := range ends {
				if strings.HasPrefix(e, "end") {
					end = e
				}
			}
			p.fail(len(p.src), "unexpected end of template: missing {%% %s %%}", end)
		}
		body = append(body, p.parseAny())
	}
	return body
}

func (p *parser) endTag(name string) {
	p.expect(tOpenStatement, "expected {% "+name+" %}")
	p.expectIdent(name)
	p.expect(tCloseStatement, "expected %}")
}

func (p *parser) parseStatement() node {
	open := p.expect(tOpenStatement, "expected {%")
	t := p.peek()
	if t.typ != tIdent {
		p.fail(t.pos, "expected a statement name after {%%, found %s", describe(t))
	}
	switch t.val {
	case "set":
		p.cur++
		target := p.parseExpressionSequence(false)
		n := &setNode{base: base{open.pos}, target: target}
		if p.is(tEquals) {
			p.cur++
			n.value = p.parseExpressionSequence(false)
		} else {
			p.expect(tCloseStatement, "expected %}")
			n.body = p.block("endset")
			p.expect(tOpenStatement, "expected {% endset %}")
			p.expectIdent("endset")
		}
		p.expect(tCloseStatement, "expected %}")
		return n
	case "if":
		p.cur++
		n := p.parseIf(open.pos)
		p.endTag("endif")
		return n
	case "macro":
		p.cur++
		n := p.parseMacro(open.pos)
		p.endTag("endmacro")
		return n
	case "for":
		p.cur++
		n := p.parseFor(open.pos)
		p.endTag("endfor")
		return n
	case "break":
		p.cur++
		p.expect(tCloseStatement, "expected %}")
		return &breakNode{base{open.pos}}
	case "continue":
		p.cur++
		p.expect(tCloseStatement, "expected %}")
		return &continueNode{base{open.pos}}
	case "filter":
		p.cur++
		nt := p.peek()
		f := p.parsePrimary()
		id, ok := f.(*identNode)
		if !ok {
			p.fail(nt.pos, "expected a filter name after {%% filter")
		}
		fn := &filterNode{base: base{nt.pos}, name: id.name}
		if p.is(tOpenParen) {
			fn.call = true
			fn.args = p.parseArgs(false)
		}
		p.expect(tCloseStatement, "expected %}")
		body := p.block("endfilter")
		p.endTag("endfilter")
		return &filterBlock{base{open.pos}, fn, body}
	case "call":
		p.cur++
		var params []node
		if p.is(tOpenParen) {
			params = p.parseArgs(true)
		}
		ct := p.peek()
		callee := p.parsePrimary()
		if _, ok := callee.(*identNode); !ok {
			p.fail(ct.pos, "expected a macro name after {%% call")
		}
		call := &callNode{base{ct.pos}, callee, p.parseArgs(false)}
		p.expect(tCloseStatement, "expected %}")
		body := p.block("endcall")
		p.endTag("endcall")
		n := &callBlockNode{base: base{open.pos}, params: params, call: call, body: body}
		n.kwargs, n.varargs, _ = specialArgs(params, body)
		return n
	}
	p.fail(t.pos, "unknown statement %q", t.val)
	return nil
}

func (p *parser) parseIf(pos int) node {
	test := p.parseExpression()
	p.expect(tCloseStatement, "expected %}")
	n := &ifNode{base: base{pos}, test: test}
	n.body = p.block("elif", "else", "endif")
	if p.isStatement("elif") {
		at := p.peek().pos
		p.cur += 2
		n.alt = []node{p.parseIf(at)}
	} else if p.isStatement("else") {
		p.cur += 2
		p.expect(tCloseStatement, "expected %}")
		n.alt = p.block("endif")
	}
	return n
}

func (p *parser) parseMacro(pos int) node {
	t := p.peek()
	name := p.parsePrimary()
	id, ok := name.(*identNode)
	if !ok {
		p.fail(t.pos, "expected a macro name")
	}
	params := p.parseArgs(true)
	p.expect(tCloseStatement, "expected %}")
	body := p.block("endmacro")
	m := &macroNode{base: base{pos}, name: id.name, params: params, body: body}
	m.kwargs, m.varargs, m.caller = specialArgs(params, body)
	return m
}

// specialArgs reports which of kwargs, varargs and caller a macro or call
// block body reads without declaring them as parameters.
func specialArgs(params, body []node) (kwargs, varargs, caller bool) {
	declared := map[string]bool{}
	for _, a := range params {
		declared[paramName(a)] = true
	}
	walkIdents(body, func(name string) {
		switch name {
		case "kwargs":
			kwargs = kwargs || !declared[name]
		case "varargs":
			varargs = varargs || !declared[name]
		case "caller":
			caller = caller || !declared[name]
		}
	})
	return
}

func paramName(n node) string {
	if id, ok := n.(*identNode); ok {
		return id.name
	}
	return n.(*kwargNode).key
}

func (p *parser) parseFor(pos int) node {
	t := p.peek()
	lv := p.parseExpressionSequence(true)
	switch lv.(type) {
	case *identNode, *tupleLit:
	default:
		p.fail(t.pos, "expected a loop variable or tuple of them")
	}
	if !p.isIdent("in") {
		p.fail(p.peek().pos, "expected 'in' after the loop variable, found %s", describe(p.peek()))
	}
	p.cur++
	it := p.parseExpression()
	p.expect(tCloseStatement, "expected %}")
	n := &forNode{base: base{pos}, loopvar: lv, iterable: it}
	n.body = p.block("endfor", "else")
	if p.isStatement("else") {
		p.cur += 2
		p.expect(tCloseStatement, "expected %}")
		n.elseBody = p.block("endfor")
	}
	return n
}

func (p *parser) parseExpressionSequence(primary bool) node {
	pos := p.peek().pos
	fn := p.parseExpression
	if primary {
		fn = p.parsePrimary
	}
	exprs := []node{fn()}
	tuple := p.is(tComma)
	for tuple {
		p.cur++
		exprs = append(exprs, fn())
		if !p.is(tComma) {
			break
		}
	}
	if tuple {
		return &tupleLit{base{pos}, exprs}
	}
	return exprs[0]
}

func (p *parser) parseExpression() node {
	p.enter()
	defer p.leave()
	return p.parseIfExpr()
}

func (p *parser) parseIfExpr() node {
	pos := p.peek().pos
	a := p.parseOr()
	if p.isIdent("if") {
		p.cur++
		test := p.parseOr()
		if p.isIdent("else") {
			p.cur++
			f := p.parseIfExpr()
			return &ternaryNode{base{pos}, test, a, f}
		}
		return &selectNode{base{pos}, a, test}
	}
	return a
}

func (p *parser) parseOr() node {
	l := p.parseAnd()
	for p.isIdent("or") {
		t := p.next()
		r := p.parseAnd()
		l = &binaryNode{base{t.pos}, "or", l, r}
	}
	return l
}

func (p *parser) parseAnd() node {
	l := p.parseNot()
	for p.isIdent("and") {
		t := p.next()
		r := p.parseNot()
		l = &binaryNode{base{t.pos}, "and", l, r}
	}
	return l
}

func (p *parser) parseNot() node {
	var right node
	for p.isIdent("not") {
		p.enter()
		t := p.next()
		arg := p.parseNot()
		p.leave()
		right = &unaryNode{base{t.pos}, "not", arg}
	}
	if right != nil {
		return right
	}
	return p.parseComparison()
}

func (p *parser) parseComparison() node {
	l := p.parseAdditive()
	for {
		var op string
		pos := p.peek().pos
		switch {
		case p.isIdent("not", "in"):
			op = "not in"
			p.cur += 2
		case p.isIdent("in"):
			op = "in"
			p.cur++
		case p.is(tComparison):
			op = p.next().val
		default:
			return l
		}
		r := p.parseAdditive()
		l = &binaryNode{base{pos}, op, l, r}
	}
}

func (p *parser) parseAdditive() node {
	l := p.parseMultiplicative()
	for p.is(tAdditive) {
		t := p.next()
		r := p.parseMultiplicative()
		l = &binaryNode{base{t.pos}, t.val, l, r}
	}
	return l
}

func (p *parser) parseMultiplicative() node {
	l := p.parsePower()
	for p.is(tMultiplicative) {
		t := p.next()
		r := p.parsePower()
		l = &binaryNode{base{t.pos}, t.val, l, r}
	}
	return l
}

func (p *parser) parsePower() node {
	l := p.parseTest()
	for p.is(tPower) {
		t := p.next()
		r := p.parseTest()
		l = &binaryNode{base{t.pos}, t.val, l, r}
	}
	return l
}

func (p *parser) parseTest() node {
	x := p.parseFilter()
	for p.isIdent("is") {
		t := p.next()
		neg := p.isIdent("not")
		if neg {
			p.cur++
		}
		nt := p.peek()
		f := p.parsePrimary()
		id, ok := f.(*identNode)
		if !ok {
			p.fail(nt.pos, "expected a test name after 'is'")
		}
		x = &testNode{base{t.pos}, x, neg, id.name}
	}
	return x
}

func (p *parser) parseFilter() node {
	x := p.parseUnarySign()
	for p.is(tPipe) {
		p.cur++
		nt := p.peek()
		f := p.parsePrimary()
		id, ok := f.(*identNode)
		if !ok {
			p.fail(nt.pos, "expected a filter name after '|'")
		}
		fn := &filterNode{base: base{nt.pos}, x: x, name: id.name}
		if p.is(tOpenParen) {
			fn.call = true
			fn.args = p.parseArgs(false)
			// parseCallExpression: member access and calls on the
			// filter's call are syntax the reference accepts but cannot
			// evaluate as a filter.
			if p.is(tDot) || p.is(tOpenBracket) || p.is(tOpenParen) {
				p.fail(p.peek().pos, "unsupported construct: member access or call on a filter call")
			}
		}
		x = fn
	}
	return x
}

func (p *parser) parseUnarySign() node {
	t := p.peek()
	if (t.typ == tUnary || t.typ == tAdditive) && (t.val == "-" || t.val == "+") {
		p.enter()
		defer p.leave()
		p.cur++
		return &unaryNode{base{t.pos}, t.val, p.parseUnarySign()}
	}
	return p.parseCallMember()
}

func (p *parser) parseCallMember() node {
	m := p.parseMember(p.parsePrimary())
	if p.is(tOpenParen) {
		return p.parseCall(m)
	}
	return m
}

func (p *parser) parseCall(callee node) node {
	var e node = &callNode{base{callee.at()}, callee, p.parseArgs(false)}
	e = p.parseMember(e)
	if p.is(tOpenParen) {
		p.enter()
		defer p.leave()
		e = p.parseCall(e)
	}
	return e
}

// parseArgs parses a parenthesised argument list: call arguments, or macro
// parameters when params is set.
func (p *parser) parseArgs(params bool) []node {
	p.expect(tOpenParen, "expected (")
	var args []node
	names := map[string]bool{}
	sawKw, sawSpread := false, false
	for !p.is(tCloseParen) {
		if p.cur >= len(p.toks) {
			p.fail(len(p.src), "unexpected end of template in an argument list")
		}
		t := p.peek()
		kwSpread := p.is(tPower)
		spread := p.is(tMultiplicative) && t.val == "*"
		if params && (kwSpread || spread) {
			p.fail(t.pos, "argument unpacking is not allowed in parameter declarations")
		}
		if kwSpread {
			p.cur++
			args = append(args, &kwSpreadNode{base{t.pos}, p.parseExpression()})
			if p.is(tComma) {
				p.cur++
			}
			if !p.is(tCloseParen) {
				p.fail(p.peek().pos, "** must be applied to the final argument")
			}
			break
		}
		var arg node
		if spread {
			if sawSpread {
				p.fail(t.pos, "only one * argument unpacking is allowed")
			}
			sawSpread = true
			p.cur++
			arg = &spreadNode{base{t.pos}, p.parseExpression()}
		} else {
			arg = p.parseExpression()
			if p.is(tEquals) {
				p.cur++
				id, ok := arg.(*identNode)
				if !ok {
					p.fail(t.pos, "expected an identifier before =")
				}
				arg = &kwargNode{base{t.pos}, id.name, p.parseExpression()}
			}
			if params {
				var name string
				switch a := arg.(type) {
				case *identNode:
					name = a.name
				case *kwargNode:
					name = a.key
				default:
					p.fail(t.pos, "expected an identifier for a parameter")
				}
				if names[name] {
					p.fail(t.pos, "duplicate parameter %q", name)
				}
				names[name] = true
			}
			if _, ok := arg.(*kwargNode); ok {
				sawKw = true
			} else if sawKw {
				if params {
					p.fail(t.pos, "non-default parameter follows default parameter")
				}
				p.fail(t.pos, "positional argument follows keyword argument")
			} else if sawSpread {
				p.fail(t.pos, "positional argument follows * argument unpacking")
			}
		}
		args = append(args, arg)
		if p.is(tComma) {
			p.cur++
		}
	}
	p.expect(tCloseParen, "expected )")
	return args
}

func (p *parser) parseSubscript(pos int) node {
	var parts []node
	slice := false
	for !p.is(tCloseBracket) {
		if p.cur >= len(p.toks) {
			p.fail(len(p.src), "unexpected end of template in a subscript")
		}
		if p.is(tColon) {
			parts = append(parts, nil)
			p.cur++
			slice = true
		} else {
			parts = append(parts, p.parseExpression())
			if p.is(tColon) {
				p.cur++
				slice = true
			}
		}
	}
	if len(parts) == 0 {
		p.fail(pos, "empty subscript []")
	}
	if slice {
		if len(parts) > 3 {
			p.fail(pos, "a slice takes at most 3 parts")
		}
		s := &sliceNode{base: base{pos}}
		s.start = parts[0]
		if len(parts) > 1 {
			s.stop = parts[1]
		}
		if len(parts) > 2 {
			s.step = parts[2]
		}
		return s
	}
	if len(parts) > 1 {
		// The reference uses the first expression and ignores the rest.
		p.fail(pos, "unsupported construct: several expressions in one subscript")
	}
	return parts[0]
}

func (p *parser) parseMember(obj node) node {
	for p.is(tDot) || p.is(tOpenBracket) {
		t := p.next()
		if t.typ == tOpenBracket {
			prop := p.parseSubscript(t.pos)
			p.expect(tCloseBracket, "expected ]")
			obj = &memberNode{base{t.pos}, obj, prop, true}
			continue
		}
		pt := p.peek()
		prop := p.parsePrimary()
		switch prop.(type) {
		case *identNode, *intLit:
		default:
			p.fail(pt.pos, "expected a name or integer after '.'")
		}
		obj = &memberNode{base{t.pos}, obj, prop, false}
	}
	return obj
}

func (p *parser) parsePrimary() node {
	t := p.next()
	switch t.typ {
	case tNumber:
		f, err := strconv.ParseFloat(t.val, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			p.fail(t.pos, "bad number %q", t.val)
		}
		if strings.Contains(t.val, ".") {
			return &floatLit{base{t.pos}, f}
		}
		return &intLit{base{t.pos}, f}
	case tString:
		v := t.val
		for p.is(tString) {
			v += p.next().val
		}
		return &strLit{base{t.pos}, v}
	case tIdent:
		return &identNode{base{t.pos}, t.val}
	case tOpenParen:
		e := p.parseExpressionSequence(false)
		p.expect(tCloseParen, "expected )")
		return e
	case tOpenBracket:
		var items []node
		for !p.is(tCloseBracket) {
			if p.cur >= len(p.toks) {
				p.fail(len(p.src), "unexpected end of template in a list")
			}
			items = append(items, p.parseExpression())
			if p.is(tComma) {
				p.cur++
			}
		}
		p.cur++
		return &arrayLit{base{t.pos}, items}
	case tOpenCurly:
		o := &objectLit{base: base{t.pos}}
		for !p.is(tCloseCurly) {
			if p.cur >= len(p.toks) {
				p.fail(len(p.src), "unexpected end of template in a dict")
			}
			k := p.parseExpression()
			p.expect(tColon, "expected : between key and value")
			v := p.parseExpression()
			o.keys = append(o.keys, k)
			o.vals = append(o.vals, v)
			if p.is(tComma) {
				p.cur++
			}
		}
		p.cur++
		return o
	}
	p.fail(t.pos, "unexpected %s", describe(t))
	return nil
}

// walkIdents calls f for every identifier read in a macro body.
func walkIdents(body []node, f func(string)) {
	var walk func(n node)
	walkAll := func(ns []node) {
		for _, n := range ns {
			if n != nil {
				walk(n)
			}
		}
	}
	walk = func(n node) {
		switch n := n.(type) {
		case *identNode:
			f(n.name)
		case *ifNode:
			walk(n.test)
			walkAll(n.body)
			walkAll(n.alt)
		case *forNode:
			walk(n.iterable)
			walkAll(n.body)
			walkAll(n.elseBody)
		case *setNode:
			if n.value != nil {
				walk(n.value)
			}
			walkAll(n.body)
		case *macroNode:
			walkAll(n.body)
		case *filterBlock:
			walkAll(n.f.args)
			walkAll(n.body)
		case *callBlockNode:
			walk(n.call)
			walkAll(n.body)
		case *arrayLit:
			walkAll(n.items)
		case *tupleLit:
			walkAll(n.items)
		case *objectLit:
			walkAll(n.keys)
			walkAll(n.vals)
		case *binaryNode:
			walk(n.l)
			walk(n.r)
		case *unaryNode:
			walk(n.x)
		case *memberNode:
			walk(n.obj)
			if n.computed {
				walk(n.prop)
			}
		case *sliceNode:
			walkAll([]node{n.start, n.stop, n.step})
		case *callNode:
			walk(n.callee)
			walkAll(n.args)
		case *kwargNode:
			walk(n.value)
		case *spreadNode:
			walk(n.x)
		case *kwSpreadNode:
			walk(n.x)
		case *filterNode:
			walk(n.x)
			walkAll(n.args)
		case *testNode:
			walk(n.x)
		case *selectNode:
			walk(n.lhs)
			walk(n.test)
		case *ternaryNode:
			walk(n.cond)
			walk(n.t)
			walk(n.f)
		}
	}
	walkAll(body)
}

// Reads reports whether the template reads the variable name anywhere (the
// chat layer uses it to refuse tools that a template cannot show).
func (t *Template) Reads(name string) bool {
	found := false
	walkIdents(t.body, func(n string) { found = found || n == name })
	return found
}
