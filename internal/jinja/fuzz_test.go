package jinja_test

import (
	"testing"

	"github.com/verdictnet/verdict/internal/jinja"
)

// FuzzParseRender: no template, however malformed, panics the parser or the
// renderer; every failure is an *Error.
func FuzzParseRender(f *testing.F) {
	for _, s := range snippets {
		f.Add(s)
	}
	f.Add("{{ a[::0] }}")
	f.Add("{% for %}{% endfor")
	f.Add("{{ {'a': {'b': }} }}")
	f.Add("{{ -'x' }}{{ (((((1))))) }}")
	f.Add("{% macro f(a=1, b) %}{% endmacro %}")
	f.Add("{{ f(**x, y) }}{{ f(*a, *b) }}")
	f.Add("{{ '\\u00zz' }}{{ \"\\q\" }}")
	v, err := jinja.FromJSON([]byte(vars))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, tmpl string) {
		tp, err := jinja.Parse(tmpl)
		if err != nil {
			return
		}
		spans, err := tp.Render(v.(*jinja.Dict))
		if err != nil {
			return
		}
		for _, s := range spans {
			if s.Text == "" {
				t.Fatalf("empty span in %+v", spans)
			}
		}
	})
}
