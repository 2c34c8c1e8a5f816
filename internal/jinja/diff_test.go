package jinja_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/jinja"
	"github.com/verdictnet/verdict/internal/jinja/jinjatest"
)

// snippets exercise one construct each; the vars below are shared.
var snippets = []string{
	"plain text\n",
	"a\n{% if true %}\n  x\n{% endif %}\n  b",
	"  {% if true %}x{% endif %}  \n{%- if true -%}  y  {%- endif %}  z",
	"{# c #}\n{#- c2 -#}  q  {{- 'w' -}}  e",
	"{{ 1 + 2 }} {{ 1.5 + 1 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 1 / 4 }} {{ 4 / 2 }} {{ 2 * 3.0 }}",
	"{{ 1 if false else 0.1 + 0.2 }} {{ 100000000000000000000000 }} {{ 0.000001 }} {{ 0.0000001 }} {{ -0.0 }} {{ 3.0 }}",
	"{{ 'a' ~ 1 ~ 1.0 ~ true ~ none_var }} {{ 'x' + 1 }} {{ [1,2] ~ 'z' }} {{ {'a':1} ~ '' }}",
	"{{ 'abc'[0] }}{{ 'abc'[-1] }}{{ 'abc'[1:] }}{{ 'abcdef'[::2] }}{{ 'abcdef'[::-1] }}{{ [1,2,3][1:] }}{{ [1,2,3][-2:] }}",
	"{{ 'Hello World'.upper() }} {{ 'Hello'.lower() }} {{ '  x  '.strip() }}|{{ '\\n\\nx\\n'.rstrip('\\n') }}|{{ '\\n x'.lstrip() }}|",
	"{{ 'hello wörld foo_bar 3x'.title() }} {{ 'hELLO'.capitalize() }} {{ 'abc'.startswith('a') }} {{ 'abc'.endswith(('x','c')) }}",
	"{{ 'a,b,,c'.split(',') }} {{ '  a  b c '.split() }} {{ 'a b c d'.split(' ', 2) }} {{ 'a  b c'.split(none, 1) }} {{ 'x'.split('x') }}",
	"{{ 'aaa'.replace('a', 'b') }} {{ 'aaa'.replace('a', 'b', 2) }} {{ 'abc'.replace('', '-') }} {{ 'aaa' | replace('a', 'c') }}",
	"{{ messages | length }} {{ messages[0].content | length }} {{ 'héllo😀'.length }} {{ {'a':1,'b':2} | length }}",
	"{{ messages | tojson }}",
	"{{ tools | tojson(indent=4) }}",
	"{{ tools[0] | tojson(indent=2, ensure_ascii=true) }} {{ 'é😀\\u2028</>' | tojson }} {{ none | tojson }} {{ undefined_x | tojson }}",
	"{{ {'b': 1, 'a': [1, 2.5, none, true, 'x']} | tojson(separators=(',', ':')) }}",
	"{% for m in messages %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }}/{{ loop.previtem is defined }};{% endfor %}",
	"{% for m in messages if m.role == 'user' %}{{ m.content }}{% else %}none{% endfor %}",
	"{% for m in [] %}x{% else %}empty{% endfor %}{% for i in range(5) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}",
	"{% for k, v in {'a': 1, 'b': [2]}.items() %}{{ k }}={{ v }};{% endfor %}{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}",
	"{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}{{ range(2, 10, 3) }}{{ range(5, 0, -2) }}",
	"{% set ns = namespace(x=0, y='a') %}{% for i in range(3) %}{% set ns.x = ns.x + i %}{% endfor %}{{ ns.x }}{{ ns.y }}{{ ns }}",
	"{% set x = 1 %}{% for i in range(2) %}{% set x = x + 10 %}{{ x }}{% endfor %}{{ x }}",
	"{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t %}block {{ a }}{% endset %}[{{ t }}]",
	"{% macro f(a, b=2, c='x') %}{{ a }}-{{ b }}-{{ c }}{% endmacro %}{{ f(1) }} {{ f(1, 3) }} {{ f(1, c='y') }} {{ f(a=5) }}",
	"{% macro g() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ g(1, 2, k=3) }}",
	"{{ x is defined }} {{ messages is defined }} {{ none is none }} {{ 'a' is string }} {{ {} is mapping }} {{ [] is iterable }} {{ 1 is number }} {{ 1 is integer }} {{ 1.5 is integer }} {{ 3 is odd }} {{ 4 is even }} {{ 'ab' is lower }} {{ 'AB' is upper }} {{ true is boolean }} {{ x is not defined }} {{ (1,2) is iterable }} {{ range is callable }}",
	"{{ 1 == 1.0 }} {{ '1' == 1 }} {{ true == 1 }} {{ none == x }} {{ [] == '' }} {{ 'a' != 'b' }} {{ 1 < 2 }} {{ 2 >= 2.5 }} {{ 'a' in 'cat' }} {{ 'k' in {'k': 1} }} {{ 1 in [1, 2] }} {{ 'z' not in ['a'] }} {{ x in y }}",
	"{{ not true }} {{ true and 'x' }} {{ '' or 'y' }} {{ [] or 'e' }} {{ 0 and 1 }} {{ none or 0 }} {{ -3 | abs }} {{ -(2) }} {{ +true }}",
	"{{ 'a' if x else 'b' }} [{{ 'a' if x }}] {{ 'c' if messages else 'd' }}",
	"{{ messages | map(attribute='role') | join(', ') }} {{ messages | selectattr('role', 'equalto', 'user') | list | length }} {{ messages | rejectattr('role', 'equalto', 'user') | map(attribute='content') | first }}",
	"{{ messages | selectattr('tool_calls') | list | length }} {{ messages | selectattr('role', 'defined') | list | length }} {{ messages|last|tojson }}",
	"{{ [3, 1, 2] | sort }} {{ ['b', 'A', 'c'] | sort }} {{ ['b', 'A', 'c'] | sort(reverse=true, case_sensitive=true) }} {{ [1, 2, 2, 1] | unique }} {{ [1, 2] | reverse }}",
	"{{ messages | sort(attribute='role') | map(attribute='role') | join }} {{ {'b': 1, 'a': 2} | dictsort }} {{ {'b': 1, 'a': 2} | items }}",
	"{{ x | default('d') }} {{ '' | default('e', true) }} {{ 'v' | default('f') }} {{ none | default('g') }} {{ 0 | default('h', boolean=true) }}",
	"{{ '42abc' | int }} {{ 'x' | int }} {{ 'x' | int(7) }} {{ 3.9 | int }} {{ '2.5e1x' | float }} {{ true | int }} {{ 5 | float }} {{ 5 | string }} {{ [1, 'a'] | string }} {{ true | string }}",
	"{{ '  trim me  ' | trim }}|{{ 'a\\nb\\n\\nc' | indent }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent('> ', blank=true) }}",
	"{{ 'abc' | upper }} {{ 'ABC' | lower }} {{ 'abc def' | title }} {{ 'abc' | capitalize }} {{ 'abc' | list if false else 'no' }} {{ [1, none, 'a'] | join('-') }} {{ 'abc' | join('.') }}",
	"{{ {'a': 1}.get('a') }} {{ {'a': 1}.get('b') }} {{ {'a': 1}.get('b', 2) }} {{ {'a': 1, 'b': 2}.keys() }} {{ {'a': 1, 'b': 2}.values() }} {{ {'a':1}.items() }}",
	"{{ messages[0]['role'] }} {{ messages[-1].content }} {{ messages[10] }} {{ messages.length }} {{ tools[0].function.parameters.properties | tojson }}",
	"{{ x.y.z }}|{{ none_var.attr }}|{{ 'abc'.nothing }}|{{ (1, 2)[1] }}|{{ [1, [2, 3]] }}|{{ {'a': {'b': none}} }}",
	"{% if messages[0].role == 'system' %}{% set sys = messages[0].content %}{% set rest = messages[1:] %}{% else %}{% set sys = '' %}{% set rest = messages %}{% endif %}{{ sys }}|{{ rest | length }}",
	"{% if a %}1{% elif messages %}2{% else %}3{% endif %}",
	"{{ raise_exception('bad ' ~ 1) }}",
	"{{ 1 + 'a' }}",
	"{{ 'a' < 'b' }}",
	"{% for c in 'abc' %}{{ c }}{% endfor %}",
	"{{ x[0] }}",
	"{% if %}",
	"{{ 'unterminated }}",
	"{% endfor %}",
	"{{ 'x' ~ none }}",
	"{{ [1] | first }}{{ [] | length }}{{ bos_token }}{{ eos_token }}",
	"{{- bos_token }}\n{%- for message in messages %}\n    {{- '<|im_start|>' + message.role + '\\n' + message.content | trim + '<|im_end|>\\n' }}\n{%- endfor %}",
	"{{ '\\x41\\u00e9\\t' }} {{ \"dq 'x'\" }} {{ 'a' 'b' }}",
	"{%- set x = 'a' -%}\n\n   {{ x }}   \n\n{%- generation %}  gen  {% endgeneration -%}  after",
	"{{ messages[0].content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}",
	"{{ 5 if true }}{{ [1,2,3] | selectattr('x') | list }}",
	"{{ (messages | last).content }} {{ (1, 2)[0] }} {{ [1, 2, 3][::-1] | join }}",
	"{{ 'a' in ['a', 'b'] and 'c' not in 'abc' }} {{ 2 * 3 + 1 }} {{ 2 + 3 * 2 }} {{ (2 + 3) * 2 }} {{ 10 - 2 - 3 }} {{ 2 ** 3 ** 2 }}",
	"{{ tools[0].function.parameters.properties.items() | list | length }}{% for name, p in tools[0].function.parameters.properties | items %}{{ name }}:{{ p.type }};{% endfor %}",
	"{{ messages[1].tool_calls[0].function.arguments | tojson }} {{ messages[1].tool_calls[0].function.arguments is mapping }}",
	"{{ '%d' }} {{ 100 % 7 }} {{ 'é' | upper }} {{ 'ß' | upper }}",
	"{% set d = {'k': 'v', 'k': 'w'} %}{{ d }}",
	"{% filter upper %}a {{ messages[0].role }}{% endfilter %}|{%- filter replace('a', 'b') -%} a a {% endfilter -%}|{% filter trim %}  x  {% endfilter %}|{% filter length %}abc{% endfilter %}",
	"{% filter nosuch %}x{% endfilter %}",
	"{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}bold {{ messages[0].role }}{% endcall %}",
	"{% macro each(xs) %}{% for x in xs %}{{ caller(x, loop.index) }};{% endfor %}{% endmacro %}{% call(item, i) each(messages) %}{{ i }}={{ item.role }}{% endcall %}",
	"{% macro m() %}[{{ caller is defined }}]{% endmacro %}{{ m() }}{% call m() %}x{% endcall %}",
	"{% macro k() %}{{ kwargs }}{{ caller() }}{% endmacro %}{% call k(a=1) %}y{% endcall %}",
}

const vars = `{
  "messages": [
    {"role": "system", "content": "You are helpful.\n<think>a</think>\n\nyes"},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich", "2": 1, "days": 3}}}]},
    {"role": "user", "content": "  Héllo <|im_start|> wörld 😀  "}
  ],
  "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather ☀ \"now\"", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1.5}}, "required": ["city"]}}}],
  "bos_token": "<s>", "eos_token": "</s>", "add_generation_prompt": true
}`

func render(t *testing.T, tmpl string) (string, error) {
	t.Helper()
	v, err := jinja.FromJSON([]byte(vars))
	if err != nil {
		t.Fatal(err)
	}
	tp, err := jinja.Parse(tmpl)
	if err != nil {
		return "", err
	}
	return tp.RenderString(v.(*jinja.Dict))
}

func TestAgainstHuggingFace(t *testing.T) {
	cases := make([]jinjatest.Case, len(snippets))
	for i, s := range snippets {
		cases[i] = jinjatest.Case{Template: s, Vars: json.RawMessage(vars)}
	}
	ref := jinjatest.Render(t, cases)
	for i, s := range snippets {
		got, err := render(t, s)
		want := ref[i]
		switch {
		case !want.OK && err == nil:
			t.Errorf("snippet %d %q: reference fails (%s), we render %q", i, s, want.Error, got)
		case want.OK && err != nil:
			t.Errorf("snippet %d %q: we fail (%v), reference renders %q", i, s, err, want.Text)
		case want.OK && got != want.Text:
			t.Errorf("snippet %d %q:\n got %q\nwant %q", i, s, got, want.Text)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "jinja: ") {
			t.Errorf("snippet %d: error %q is not a jinja error", i, err)
		}
	}
}
