// Package jinja renders Hugging Face chat templates: the subset of Jinja that
// model files ship in tokenizer.chat_template, with the semantics of the
// reference renderer npm @huggingface/jinja 0.5.13 (the one transformers.js
// uses), byte for byte.
//
// Why not a general Go Jinja library: chat templates are rendered by Hugging
// Face's renderers, not by Python Jinja, and their output differs from Python
// Jinja in many small ways that change the prompt bytes (trim_blocks and
// lstrip_blocks always on, tojson with Python's separators, str.rstrip
// ignoring its argument, booleans printed as "true", JavaScript number
// formatting, ...). A receipt certifies the exact prompt tokens, so the
// renderer must reproduce the reference exactly; and the output must say
// which bytes came from the template and which from data (see Span), which
// no general library tracks. So this package ports the reference's lexer,
// parser and interpreter rules for the constructs listed in
// docs/chat-templates.md.
//
// Rendering is a pure function of the template text and the variables: no
// clock (strftime_now is refused), no environment, no randomness.
//
// Provenance: every string value carries, byte for byte, whether it came
// from the template (text outside tags, string literals, and variables the
// caller marks as trusted such as bos_token) or from data (message contents,
// tool definitions and arguments, numbers printed from data). Substrings
// (strip, split, slices) keep the provenance of their bytes; concatenation
// joins it; any other transformation (upper, replace, tojson, ...) yields
// template text only when every input was template text. Render returns the
// output as spans of one provenance each, so that a tokenizer can parse
// control tokens only in template text.
//
// Errors: a template the reference would reject, a construct this package
// does not implement (strftime_now, sort_keys, ...), and
// raise_exception all fail with an *Error naming the construct and its line
// and column; nothing is rendered partially.
package jinja
