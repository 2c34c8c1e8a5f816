package jinja_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/jinja"
	"github.com/verdictnet/verdict/internal/jinja/jinjatest"
)

// randomVars are the variables of the generated expressions.
const randomVars = `{"s1": "Héllo 😀 wörld", "s2": "  pad\t\n", "s3": "a,b,,c", "s4": "", "n1": 3, "n2": -7, "n0": 0,
 "f1": 2.5, "f2": 1e21, "f3": 0.1, "l1": [1, "x", null, 2.5], "l2": ["b", "A", "c"], "l3": [], "d1": {"b": 1, "a": [2, "y"], "10": true, "2": null},
 "d2": {}, "t": true, "f": false, "nn": null, "ms": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo", "x": 1}]}`

var (
	atoms = []string{"s1", "s2", "s3", "s4", "n1", "n2", "n0", "f1", "f2", "f3", "l1", "l2", "l3", "d1", "d2", "t", "f", "nn", "undef", "ms",
		"'lit'", "\"q\\\"x\"", "7", "0", "-2", "1.5", "none", "true", "[1, 2]", "['a', 'b']", "{'k': 'v', 'n': 1}", "(1, 'a')", "''", "'a,b'"}
	binops  = []string{"+", "-", "*", "/", "//", "%", "**", "~", "==", "!=", "<", ">", "<=", ">=", "in", "not in", "and", "or"}
	filters = []string{"length", "upper", "lower", "trim", "first", "last", "tojson", "string", "int", "float", "abs", "list", "reverse",
		"sort", "unique", "items", "capitalize", "title", "join", "safe", "join(', ')", "default('d')", "default('e', true)", "tojson(indent=2)",
		"replace('a', 'b')", "int(5)", "indent(2)", "map(attribute='role')", "selectattr('role', 'equalto', 'user')", "rejectattr('x')",
		"sort(reverse=true)", "dictsort", "bool", "keys", "values", "tojson(separators=(',', ':'))"}
	testsN  = []string{"defined", "undefined", "none", "string", "number", "integer", "mapping", "iterable", "sequence", "odd", "even", "lower", "upper", "boolean", "true", "false", "callable"}
	methods = []string{"upper()", "lower()", "strip()", "split(',')", "split()", "split(' ', 1)", "startswith('a')", "endswith(('c', 'd'))", "replace('l', 'L')",
		"title()", "capitalize()", "lstrip()", "rstrip()", "get('a')", "get('zz', 0)", "items()", "keys()", "values()", "length"}
)

func genExpr(r *rand.Rand, depth int) string {
	if depth <= 0 {
		return atoms[r.IntN(len(atoms))]
	}
	x := func() string { return genExpr(r, depth-1) }
	switch r.IntN(11) {
	case 0, 1:
		return atoms[r.IntN(len(atoms))]
	case 2:
		return "(" + x() + " " + binops[r.IntN(len(binops))] + " " + x() + ")"
	case 3:
		return "(not " + x() + ")"
	case 4:
		return "(" + x() + " | " + filters[r.IntN(len(filters))] + ")"
	case 5:
		neg := ""
		if r.IntN(2) == 0 {
			neg = "not "
		}
		return "(" + x() + " is " + neg + testsN[r.IntN(len(testsN))] + ")"
	case 6:
		idx := []string{"0", "-1", "1", "'a'", "'role'", "1:", ":-1", "::-1", "::2", "10"}[r.IntN(10)]
		return x() + "[" + idx + "]"
	case 7:
		return x() + "." + methods[r.IntN(len(methods))]
	case 8:
		return "(" + x() + " if " + x() + " else " + x() + ")"
	case 9:
		return "[" + x() + ", " + x() + "]"
	default:
		return "{'k': " + x() + "}"
	}
}

// TestRandomExpressions renders thousands of generated expressions and
// statements and checks each against the reference: the same text, or an
// error on both sides.
func TestRandomExpressions(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 500
	}
	seed := uint64(11)
	if s := os.Getenv("JINJA_DIFF_SEED"); s != "" { // exploring: other corpora
		fmt.Sscan(s, &seed)
	}
	r := rand.New(rand.NewPCG(seed, 29))
	var cases []jinjatest.Case
	var tmpls []string
	for i := 0; i < n; i++ {
		var tmpl string
		switch i % 4 {
		case 0, 1:
			tmpl = "{{ " + genExpr(r, 3) + " }}"
		case 2:
			tmpl = "{% for x in " + genExpr(r, 2) + " %}[{{ loop.index }}:{{ x }}]{% else %}none{% endfor %}"
		default:
			tmpl = "{% if " + genExpr(r, 2) + " %}yes {{ " + genExpr(r, 2) + " }}{% else %}no{% endif %}{% set v = " + genExpr(r, 1) + " %}|{{ v }}"
		}
		tmpls = append(tmpls, tmpl)
		cases = append(cases, jinjatest.Case{Template: tmpl, Vars: json.RawMessage(randomVars)})
	}
	ref := jinjatest.Render(t, cases)
	v, err := jinja.FromJSON([]byte(randomVars))
	if err != nil {
		t.Fatal(err)
	}
	bad, agreeErr := 0, 0
	for i, tmpl := range tmpls {
		var got string
		tp, err := jinja.Parse(tmpl)
		if err == nil {
			got, err = tp.RenderString(v.(*jinja.Dict))
		}
		want := ref[i]
		var msg string
		switch {
		case !want.OK && err == nil:
			msg = fmt.Sprintf("reference fails (%s), we render %q", want.Error, got)
		case want.OK && err != nil:
			msg = fmt.Sprintf("we fail (%v), reference renders %q", err, want.Text)
		case want.OK && got != want.Text:
			msg = fmt.Sprintf("got %q, want %q", got, want.Text)
		case !want.OK:
			agreeErr++
		}
		if msg != "" {
			bad++
			if bad <= 40 {
				t.Errorf("%s: %s", tmpl, msg)
			}
		}
	}
	t.Logf("%d generated templates: %d differ, %d fail on both sides", n, bad, agreeErr)
}

// genTemplate builds a template of nested blocks with random whitespace
// control and text full of spaces and newlines.
func genTemplate(r *rand.Rand, depth int) string {
	texts := []string{"\n", "  ", "\t", "x", " y \n  ", "\n\n  z", "a\r\nb", "  \n", "{ not a tag }", "#}", "%} -}", "\u00a0\u2028"}
	open := func(kw string) string {
		return []string{"{%", "{%-", "  {%", "\n{%-"}[r.IntN(4)] + " " + kw + " " + []string{"%}", "-%}", "%}\n", "-%}\n  "}[r.IntN(4)]
	}
	expr := func() string {
		return []string{"{{", "{{-", " {{"}[r.IntN(3)] + " " + genExpr(r, 1) + " " + []string{"}}", "-}}", "}}\n"}[r.IntN(3)]
	}
	var b strings.Builder
	n := 1 + r.IntN(4)
	for i := 0; i < n; i++ {
		switch k := r.IntN(9); {
		case k < 3:
			b.WriteString(texts[r.IntN(len(texts))])
		case k < 5:
			b.WriteString(expr())
		case k == 5:
			b.WriteString([]string{"{#", "{#-"}[r.IntN(2)] + " c " + []string{"#}", "-#}", "#}\n"}[r.IntN(3)])
		case k == 6 && depth > 0:
			b.WriteString(open("if " + genExpr(r, 1)))
			b.WriteString(genTemplate(r, depth-1))
			if r.IntN(2) == 0 {
				b.WriteString(open("else"))
				b.WriteString(genTemplate(r, depth-1))
			}
			b.WriteString(open("endif"))
		case k == 7 && depth > 0:
			b.WriteString(open("for m in " + []string{"ms", "l1", "l2", "range(3)", "d1", "ms if m.role == 'user'"}[r.IntN(6)]))
			b.WriteString("{{ loop.index0 }}")
			b.WriteString(genTemplate(r, depth-1))
			if r.IntN(3) == 0 {
				b.WriteString(open("if loop.first") + open([]string{"continue", "break"}[r.IntN(2)]) + open("endif"))
			}
			b.WriteString(open("endfor"))
		case k == 8 && depth > 0:
			switch r.IntN(3) {
			case 0:
				b.WriteString(open("set ns = namespace(c=0)") + open("set ns.c = ns.c + 1") + "{{ ns.c }}")
			case 1:
				b.WriteString(open("macro mm(a, b='q')") + genTemplate(r, depth-1) + "{{ a ~ b }}" + open("endmacro") + "{{ mm(1) }}{{ mm('x', b=2) }}")
			default:
				b.WriteString(open("set blk") + genTemplate(r, depth-1) + open("endset") + "[{{ blk }}]")
			}
		default:
			b.WriteString(texts[r.IntN(len(texts))])
		}
	}
	return b.String()
}

// TestRandomTemplates: generated templates with whitespace control,
// comments, nested blocks, macros and namespaces render as the reference
// renders them.
func TestRandomTemplates(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 300
	}
	seed := uint64(5)
	if s := os.Getenv("JINJA_DIFF_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	r := rand.New(rand.NewPCG(seed, 31))
	var cases []jinjatest.Case
	for i := 0; i < n; i++ {
		tmpl := genTemplate(r, 3)
		if r.IntN(4) == 0 {
			tmpl += "\n"
		}
		cases = append(cases, jinjatest.Case{Template: tmpl, Vars: json.RawMessage(randomVars)})
	}
	ref := jinjatest.Render(t, cases)
	v, err := jinja.FromJSON([]byte(randomVars))
	if err != nil {
		t.Fatal(err)
	}
	bad, ok := 0, 0
	for i, c := range cases {
		var got string
		tp, err := jinja.Parse(c.Template)
		if err == nil {
			got, err = tp.RenderString(v.(*jinja.Dict))
		}
		want := ref[i]
		var msg string
		switch {
		case !want.OK && err == nil:
			msg = fmt.Sprintf("reference fails (%s), we render %q", want.Error, got)
		case want.OK && err != nil:
			msg = fmt.Sprintf("we fail (%v), reference renders %q", err, want.Text)
		case want.OK && got != want.Text:
			msg = fmt.Sprintf("got %q, want %q", got, want.Text)
		case want.OK:
			ok++
		}
		if msg != "" {
			bad++
			if bad <= 20 {
				t.Errorf("%q: %s", c.Template, msg)
			}
		}
	}
	t.Logf("%d generated templates: %d differ, %d render on both sides", n, bad, ok)
}
