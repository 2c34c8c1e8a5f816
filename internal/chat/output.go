package chat

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
)

// ToolFormat is how a model family writes tool calls in its output.
type ToolFormat int

const (
	// NoTools: the template shows no tools; output is text.
	NoTools ToolFormat = iota
	// Hermes: <tool_call>{"name": ..., "arguments": {...}}</tool_call>
	// blocks (Qwen 2.5/3, Hermes, SmolLM3 and other ChatML models).
	Hermes
	// Llama3JSON: the whole answer is {"name": ..., "parameters": {...}},
	// optionally after <|python_tag|> (Llama 3.1/3.2/3.3).
	Llama3JSON
	// MistralCalls: [TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...].
	MistralCalls
)

func (f ToolFormat) String() string {
	switch f {
	case Hermes:
		return "hermes"
	case Llama3JSON:
		return "llama3-json"
	case MistralCalls:
		return "mistral"
	}
	return "none"
}

// OutputFormat says how to read a model's answer: the tool-call syntax its
// template teaches and whether it thinks in <think>...</think>.
type OutputFormat struct {
	Tools ToolFormat
	Think bool
}

// OutputFormat infers the answer format from the template text.
func (t *Template) OutputFormat() OutputFormat {
	var f OutputFormat
	switch {
	case !t.tools:
	case strings.Contains(t.src, "<tool_call>"):
		f.Tools = Hermes
	case strings.Contains(t.src, "[TOOL_CALLS]"):
		f.Tools = MistralCalls
	case strings.Contains(t.src, "<|python_tag|>") || strings.Contains(t.src, `"parameters": `):
		f.Tools = Llama3JSON
	}
	f.Think = strings.Contains(t.src, "</think>")
	return f
}

// ParsedCall is a tool call read from a model's answer; Arguments is JSON
// text, as the OpenAI API returns it.
type ParsedCall struct {
	Name      string
	Arguments string
}

// Delta is a piece of a parsed answer.
type Delta struct {
	Content, Reasoning string
}

// OutputParser splits a model's answer, as it streams, into reasoning,
// content and tool calls. Push returns what can be shown so far; Finish
// returns the rest and the calls. Text that looks like a tool call but does
// not parse is returned as content.
type OutputParser struct {
	f     OutputFormat
	tools bool // the request offered tools
	state int
	buf   string // held back
	// skipNL drops the newlines that follow <think> and </think>.
	skipNL bool
	call   strings.Builder
}

const (
	psStart = iota
	psThink
	psContent
	psCall
)

// NewOutputParser returns a parser; tools says whether the request offered
// tools (tool calls are only looked for then).
func NewOutputParser(f OutputFormat, tools bool) *OutputParser {
	if !tools {
		f.Tools = NoTools
	}
	return &OutputParser{f: f, tools: tools}
}

// Active reports whether the parser changes anything (else the answer is
// plain content).
func (p *OutputParser) Active() bool { return p.f.Think || p.f.Tools != NoTools }

// partialSuffix returns the length of the longest suffix of s that is a
// proper prefix of marker.
func partialSuffix(s, marker string) int {
	for n := min(len(marker)-1, len(s)); n > 0; n-- {
		if strings.HasSuffix(s, marker[:n]) {
			return n
		}
	}
	return 0
}

var callStarts = map[ToolFormat][]string{
	Hermes:       {"<tool_call>"},
	Llama3JSON:   {"<|python_tag|>", "{"},
	MistralCalls: {"[TOOL_CALLS]"},
}

// Push adds generated text.
func (p *OutputParser) Push(text string) Delta {
	p.buf += text
	var d Delta
	for {
		switch p.state {
		case psStart:
			t := strings.TrimLeft(p.buf, " \t\r\n")
			if p.f.Think {
				if strings.HasPrefix(t, "<think>") {
					p.buf = t[len("<think>"):]
					p.state, p.skipNL = psThink, true
					continue
				}
				if strings.HasPrefix("<think>", t) {
					return d // undecided
				}
			}
			if p.f.Tools == Llama3JSON {
				// Llama's call is the whole answer: decide on its start.
				if t == "" || strings.HasPrefix("<|python_tag|>", t) {
					return d
				}
				if strings.HasPrefix(t, "<|python_tag|>") || strings.HasPrefix(t, "{") {
					p.call.WriteString(p.buf)
					p.buf = ""
					p.state = psCall
					return d
				}
			}
			p.state = psContent
		case psThink:
			if p.skipNL {
				if p.buf = strings.TrimLeft(p.buf, "\n"); p.buf == "" {
					return d
				}
				p.skipNL = false
			}
			if i := strings.Index(p.buf, "</think>"); i >= 0 {
				d.Reasoning += p.buf[:i]
				p.buf = p.buf[i+len("</think>"):]
				p.state, p.skipNL = psContent, true
				if p.f.Tools == Llama3JSON {
					p.state = psStart
					p.f.Think = false
				}
				continue
			}
			k := len(p.buf) - partialSuffix(p.buf, "</think>")
			d.Reasoning += p.buf[:k]
			p.buf = p.buf[k:]
			return d
		case psContent:
			if p.skipNL {
				if p.buf = strings.TrimLeft(p.buf, "\n"); p.buf == "" {
					return d
				}
				p.skipNL = false
			}
			if p.f.Tools == Hermes || p.f.Tools == MistralCalls {
				marker := callStarts[p.f.Tools][0]
				if i := strings.Index(p.buf, marker); i >= 0 {
					d.Content += p.buf[:i]
					p.call.WriteString(p.buf[i:])
					p.buf = ""
					p.state = psCall
					return d
				}
				k := len(p.buf) - partialSuffix(p.buf, marker)
				d.Content += p.buf[:k]
				p.buf = p.buf[k:]
				return d
			}
			d.Content += p.buf
			p.buf = ""
			return d
		case psCall:
			p.call.WriteString(p.buf)
			p.buf = ""
			return d
		}
	}
}

// Finish ends the answer: the held-back text and the tool calls.
func (p *OutputParser) Finish() (Delta, []ParsedCall) {
	var d Delta
	switch p.state {
	case psThink:
		d.Reasoning = p.buf
	case psCall:
		calls, ok := parseCalls(p.f.Tools, p.call.String())
		if ok {
			return d, calls
		}
		d.Content = p.call.String()
	default:
		d.Content = p.buf
	}
	p.buf = ""
	return d, nil
}

// ParseOutput parses a whole answer.
func ParseOutput(f OutputFormat, tools bool, text string) (content, reasoning string, calls []ParsedCall) {
	p := NewOutputParser(f, tools)
	d := p.Push(text)
	e, calls := p.Finish()
	return strings.TrimSpace(d.Content + e.Content), d.Reasoning + e.Reasoning, calls
}

func parseCalls(f ToolFormat, s string) ([]ParsedCall, bool) {
	switch f {
	case Hermes:
		var calls []ParsedCall
		rest := s
		for {
			rest = strings.TrimSpace(rest)
			if rest == "" {
				break
			}
			if !strings.HasPrefix(rest, "<tool_call>") {
				return nil, false
			}
			rest = rest[len("<tool_call>"):]
			end := strings.Index(rest, "</tool_call>")
			if end < 0 {
				return nil, false
			}
			c, ok := oneCall([]byte(rest[:end]), "arguments")
			if !ok {
				return nil, false
			}
			calls = append(calls, c)
			rest = rest[end+len("</tool_call>"):]
		}
		return calls, len(calls) > 0
	case Llama3JSON:
		s = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "<|python_tag|>"))
		c, ok := oneCall([]byte(s), "parameters")
		if !ok {
			return nil, false
		}
		return []ParsedCall{c}, true
	case MistralCalls:
		s = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "[TOOL_CALLS]"))
		var raw []json.RawMessage
		if err := strictJSON([]byte(s), &raw); err != nil || len(raw) == 0 {
			return nil, false
		}
		var calls []ParsedCall
		for _, r := range raw {
			c, ok := oneCall(r, "arguments")
			if !ok {
				return nil, false
			}
			calls = append(calls, c)
		}
		return calls, true
	}
	return nil, false
}

// oneCall reads {"name": NAME, ARGS: {...}} (ARGS "arguments" or
// "parameters"; either is accepted).
func oneCall(b []byte, argsKey string) (ParsedCall, bool) {
	var m map[string]json.RawMessage
	if err := strictJSON(bytes.TrimSpace(b), &m); err != nil {
		return ParsedCall{}, false
	}
	var name string
	if err := json.Unmarshal(m["name"], &name); err != nil || name == "" {
		return ParsedCall{}, false
	}
	args, ok := m[argsKey]
	if !ok {
		for _, k := range []string{"arguments", "parameters"} {
			if a, has := m[k]; has {
				args, ok = a, true
			}
		}
	}
	if !ok {
		args = json.RawMessage("{}")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, args); err != nil {
		return ParsedCall{}, false
	}
	return ParsedCall{Name: name, Arguments: buf.String()}, true
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF { // dec.More is false before a '}' or ']'
		return &json.SyntaxError{}
	}
	return nil
}
