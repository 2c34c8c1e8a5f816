package chat

import "fmt"

// Names of the built-in templates.
const (
	PlainName  = "plain"
	Llama2Name = "llama2"
)

// plainSource joins the message contents with one newline after BOS; roles
// are dropped, so a story model continues the last message.
const plainSource = `{{ bos_token }}{% for message in messages %}{% if not loop.first %}{{ '\n' }}{% endif %}{{ message.content }}{% endfor %}`

// llama2Source is Meta's Llama-2 chat format as the reference code writes it
// (llama/generation.py, chat_completion): every system (and developer)
// message, joined with newlines, goes into the first [INST] inside
// <<SYS>>...<</SYS>>; consecutive user messages are joined with newlines and
// stripped; each answered turn is BOS "[INST] user [/INST] answer " EOS and
// the open turn BOS "[INST] user [/INST]". An assistant message without a
// user turn before it answers an empty one.
const llama2Source = `{%- set ns = namespace(sys=[], user=[], first=true, open=false) -%}
{%- for m in messages if m.role == 'system' -%}{%- set ns.sys = ns.sys + [m.content] -%}{%- endfor -%}
{%- macro turn() -%}
{%- set u = ns.user | join('\n') -%}
{%- if ns.first and ns.sys | length > 0 -%}{%- set u = '<<SYS>>\n' + ns.sys | join('\n') + '\n<</SYS>>\n\n' + u -%}{%- endif -%}
{{- bos_token + '[INST] ' + u | trim + ' [/INST]' -}}
{%- endmacro -%}
{%- for m in messages if m.role != 'system' -%}
{%- if m.role == 'user' -%}
{%- set ns.user = ns.user + [m.content] -%}
{%- else -%}
{{- turn() + ' ' + (m.content or '') | trim + ' ' + eos_token -}}
{%- set ns.first = false -%}{%- set ns.user = [] -%}{%- set ns.open = true -%}
{%- endif -%}
{%- endfor -%}
{%- if ns.user | length > 0 or not ns.open -%}{{- turn() -}}{%- endif -%}`

// Builtin returns a built-in template by name ("plain" or "llama2").
func Builtin(name, bos, eos string) (*Template, error) {
	switch name {
	case PlainName:
		return New(PlainName, plainSource, bos, eos)
	case Llama2Name:
		return New(Llama2Name, llama2Source, bos, eos)
	}
	return nil, fmt.Errorf("chat: no built-in template %q (want plain or llama2)", name)
}
