package chat

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/verdictnet/verdict/internal/jinja"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

// Roles a message may have. Developer is OpenAI's newer name for system:
// templates see it as system.
const (
	RoleSystem    = "system"
	RoleDeveloper = "developer"
	RoleUser      = "user"
	RoleAssistant = "assistant"
	RoleTool      = "tool"
)

// Limits on what Render accepts.
const (
	MaxMessages = 1024
	MaxTools    = 128
)

// Message is one chat message, as OpenAI's API spells it.
type Message struct {
	Role string `json:"role"`
	// Content is the text. Like vLLM, null or absent content (an
	// assistant message with tool calls) is ""; an array of text parts
	// is concatenated.
	Content          string     `json:"-"`
	ReasoningContent *string    `json:"reasoning_content,omitempty"`
	Name             string     `json:"name,omitempty"`
	ToolCalls        []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID       string     `json:"tool_call_id,omitempty"`
	// HasContent records that the decoded JSON had a content that is not
	// null (an API may refuse a message without one).
	HasContent bool `json:"-"`
}

// ToolCall is a function call an assistant message made.
type ToolCall struct {
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"`
	Function FunctionCall `json:"function"`
}

// FunctionCall names the function and its arguments: a JSON text, as
// OpenAI sends it; templates see it decoded (as vLLM passes it).
type FunctionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// UnmarshalJSON decodes a message, with content as a string, null, or an
// array of {"type":"text","text":...} parts.
func (m *Message) UnmarshalJSON(b []byte) error {
	type plain Message
	var aux struct {
		plain
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if te.Field == "" {
				return &FieldError{"messages", "each message must be a JSON object, got JSON " + te.Value}
			}
			f := "messages." + strings.TrimPrefix(te.Field, "plain.")
			return &FieldError{f, fmt.Sprintf("expected %s, got JSON %s", te.Type, te.Value)}
		}
		return err
	}
	*m = Message(aux.plain)
	c := bytes.TrimSpace(aux.Content)
	if len(c) == 0 || bytes.Equal(c, []byte("null")) {
		return nil
	}
	m.HasContent = true
	if c[0] == '"' {
		var s string
		if err := json.Unmarshal(c, &s); err != nil {
			return &FieldError{"messages.content", "not a string"}
		}
		m.Content = s
		return nil
	}
	var parts []struct {
		Type string  `json:"type"`
		Text *string `json:"text"`
	}
	if err := json.Unmarshal(c, &parts); err != nil {
		return &FieldError{"messages.content", "must be a string, null or an array of content parts"}
	}
	texts := make([]string, len(parts))
	for i, p := range parts {
		if p.Type != "text" || p.Text == nil {
			return &FieldError{"messages.content", fmt.Sprintf("part %d: only text parts ({\"type\":\"text\",\"text\":...}) are supported, got type %q", i, p.Type)}
		}
		texts[i] = *p.Text
	}
	m.Content = strings.Join(texts, "")
	return nil
}

// MarshalJSON encodes a message the way UnmarshalJSON reads it.
func (m Message) MarshalJSON() ([]byte, error) {
	type plain Message
	return json.Marshal(struct {
		Role    string `json:"role"`
		Content string `json:"content"`
		plain
	}{m.Role, m.Content, plain(m)})
}

// FieldError is a request error that names the field at fault.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Request is what a template renders.
type Request struct {
	Messages []Message `json:"messages"`
	// Tools are OpenAI tool definitions ({"type":"function","function":
	// {...}}), passed to the template as they are; nil: none.
	Tools []json.RawMessage `json:"tools,omitempty"`
	// AddGenerationPrompt opens an assistant turn at the end.
	AddGenerationPrompt bool `json:"add_generation_prompt"`
	// Kwargs is a JSON object whose keys become template variables
	// (chat_template_kwargs); nil: none.
	Kwargs json.RawMessage `json:"chat_template_kwargs,omitempty"`
}

// reserved are the variables a request cannot set through Kwargs: those
// the request's own fields set, and custom_tools, which Llama 3.1's
// template renders as its tools: set through Kwargs, tools went past the
// checks of Tools (MaxTools, each a function) and past the answer's
// tool-call parsing, which follows Tools.
var reserved = map[string]bool{"messages": true, "tools": true, "custom_tools": true, "add_generation_prompt": true, "bos_token": true, "eos_token": true}

// Template is a chat template ready to render.
type Template struct {
	name     string
	src      string
	t        *jinja.Template
	bos, eos string
	tools    bool
}

// New parses a Jinja chat template; bos and eos are the texts of the
// vocabulary's BOS and EOS tokens ("" when it has none). name says where it
// came from (for messages and the CLI).
func New(name, source, bos, eos string) (*Template, error) {
	t, err := jinja.Parse(source)
	if err != nil {
		return nil, fmt.Errorf("chat template %s: %w", name, err)
	}
	return &Template{name: name, src: source, t: t, bos: bos, eos: eos, tools: t.Reads("tools")}, nil
}

// ForVocab returns the template of a model: source (its
// tokenizer.chat_template) or, when source is empty, the plain template,
// with the BOS and EOS texts of v (TokenText).
func ForVocab(source string, v *tokenizer.Vocab) (*Template, error) {
	bos, eos := TokenText(v, v.BOS), TokenText(v, v.EOS)
	if source == "" {
		return Builtin(PlainName, bos, eos)
	}
	return New("gguf", source, bos, eos)
}

// TokenText is the text of token id in v as the bos_token and eos_token
// template variables hold it, "" for -1: the piece in SentencePiece form
// (tokenizer.Vocab.CanonicalPiece), so that a llama2.c tokenizer file's
// "\n<s>\n" is "<s>" as in the model's GGUF, and the chat-template digest
// of the two files of one model id is the same.
func TokenText(v *tokenizer.Vocab, id int) string { return v.CanonicalPiece(id) }

// Name says where the template came from: "plain", "llama2", "gguf", ...
func (t *Template) Name() string { return t.name }

// Source returns the template text.
func (t *Template) Source() string { return t.src }

// SupportsTools reports whether the template reads the tools variable.
func (t *Template) SupportsTools() bool { return t.tools }

// Prompt is a rendered prompt.
type Prompt struct {
	// Spans are the rendered text, marked template text or data.
	Spans []jinja.Span
	// Digest commits to the template and the variables it rendered
	// (docs/protocol.md, "chat template").
	Digest [32]byte
	bos    string
}

// Text returns the rendered text.
func (p *Prompt) Text() string {
	var b strings.Builder
	for _, s := range p.Spans {
		b.WriteString(s.Text)
	}
	return b.String()
}

// ErrNoMessages is returned for an empty message list.
var ErrNoMessages = errors.New("no messages")

// Vars returns the template variables of r as canonical JSON (the bytes
// Prompt.Digest commits to): an object with messages, tools,
// add_generation_prompt, bos_token, eos_token and then the keys of Kwargs.
func (t *Template) Vars(r *Request) ([]byte, error) {
	d, err := t.vars(r)
	if err != nil {
		return nil, err
	}
	s, err := jinja.Marshal(d)
	if err != nil {
		return nil, err
	}
	return []byte(s), nil
}

func (t *Template) vars(r *Request) (*jinja.Dict, error) {
	if len(r.Messages) == 0 {
		return nil, ErrNoMessages
	}
	if len(r.Messages) > MaxMessages {
		return nil, &FieldError{"messages", fmt.Sprintf("at most %d messages, got %d", MaxMessages, len(r.Messages))}
	}
	var items []jinja.Value
	for i, m := range r.Messages {
		v, err := messageValue(m)
		if err != nil {
			return nil, &FieldError{fmt.Sprintf("messages[%d]", i), err.Error()}
		}
		items = append(items, v)
	}
	d := jinja.NewDict()
	d.Set("messages", jinja.NewList(items...))
	if r.Tools != nil {
		if !t.tools && len(r.Tools) > 0 {
			return nil, &FieldError{"tools", fmt.Sprintf("the chat template of this model (%s) cannot show tools", t.name)}
		}
		if len(r.Tools) > MaxTools {
			return nil, &FieldError{"tools", fmt.Sprintf("at most %d tools, got %d", MaxTools, len(r.Tools))}
		}
		var tools []jinja.Value
		for i, raw := range r.Tools {
			v, err := jinja.FromJSON(raw)
			if err != nil {
				return nil, &FieldError{fmt.Sprintf("tools[%d]", i), err.Error()}
			}
			if _, ok := v.(*jinja.Dict); !ok {
				return nil, &FieldError{fmt.Sprintf("tools[%d]", i), "must be an object"}
			}
			tools = append(tools, v)
		}
		d.Set("tools", jinja.NewList(tools...))
	} else {
		d.Set("tools", jinja.None)
	}
	d.Set("add_generation_prompt", r.AddGenerationPrompt)
	d.Set("bos_token", jinja.Trusted(t.bos))
	d.Set("eos_token", jinja.Trusted(t.eos))
	if len(bytes.TrimSpace(r.Kwargs)) > 0 && !bytes.Equal(bytes.TrimSpace(r.Kwargs), []byte("null")) {
		kv, err := jinja.FromJSON(r.Kwargs)
		if err != nil {
			return nil, &FieldError{"chat_template_kwargs", err.Error()}
		}
		kd, ok := kv.(*jinja.Dict)
		if !ok {
			return nil, &FieldError{"chat_template_kwargs", "must be an object"}
		}
		for _, k := range kd.Keys() {
			if reserved[k] {
				return nil, &FieldError{"chat_template_kwargs", fmt.Sprintf("cannot set %q (the request's own fields set it: messages, tools, add_generation_prompt)", k)}
			}
			v, _ := kd.Get(k)
			d.Set(k, v)
		}
	}
	return d, nil
}

func messageValue(m Message) (jinja.Value, error) {
	role := m.Role
	switch role {
	case RoleSystem, RoleUser, RoleAssistant, RoleTool:
	case RoleDeveloper:
		role = RoleSystem
	default:
		return nil, fmt.Errorf("unsupported role %q (want system, developer, user, assistant or tool)", m.Role)
	}
	d := jinja.NewDict()
	d.Set("role", jinja.Data(role))
	d.Set("content", jinja.Data(m.Content))
	if m.ReasoningContent != nil {
		d.Set("reasoning_content", jinja.Data(*m.ReasoningContent))
	}
	if m.Name != "" {
		d.Set("name", jinja.Data(m.Name))
	}
	if len(m.ToolCalls) > 0 {
		if role != RoleAssistant {
			return nil, fmt.Errorf("tool_calls in a %s message (only assistant messages make tool calls)", role)
		}
		var calls []jinja.Value
		for j, c := range m.ToolCalls {
			cd := jinja.NewDict()
			if c.ID != "" {
				cd.Set("id", jinja.Data(c.ID))
			}
			typ := c.Type
			if typ == "" {
				typ = "function"
			}
			if typ != "function" {
				return nil, fmt.Errorf("tool_calls[%d]: type %q is not supported (want function)", j, typ)
			}
			cd.Set("type", jinja.Data(typ))
			if c.Function.Name == "" {
				return nil, fmt.Errorf("tool_calls[%d].function.name is empty", j)
			}
			args, err := jinja.FromJSON([]byte(c.Function.Arguments))
			if err != nil {
				return nil, fmt.Errorf("tool_calls[%d].function.arguments is not valid JSON: %v", j, err)
			}
			fd := jinja.NewDict()
			fd.Set("name", jinja.Data(c.Function.Name))
			fd.Set("arguments", args)
			cd.Set("function", fd)
			calls = append(calls, cd)
		}
		d.Set("tool_calls", jinja.NewList(calls...))
	}
	if m.ToolCallID != "" {
		d.Set("tool_call_id", jinja.Data(m.ToolCallID))
	}
	return d, nil
}

const digestDomain = "verdict/chat-template/v1\x00"

// Render renders a request. Errors: an empty message list, an unknown role,
// tools for a template that does not read them, malformed tool calls, and
// every template error (one that raise_exception threw included).
func (t *Template) Render(r *Request) (*Prompt, error) {
	vars, err := t.vars(r)
	if err != nil {
		return nil, err
	}
	canon, err := jinja.Marshal(vars)
	if err != nil {
		return nil, err
	}
	spans, err := t.t.Render(vars)
	if err != nil {
		return nil, fmt.Errorf("chat template %s: %w", t.name, err)
	}
	p := &Prompt{Spans: spans, bos: t.bos}
	p.Digest = Digest(t.src, []byte(canon))
	return p, nil
}

// Digest is the commitment to a rendered chat prompt: SHA-256 over the
// domain "verdict/chat-template/v1\x00", the template text and the
// canonical variables (Template.Vars), each preceded by its length as an
// 8-byte big-endian integer.
func Digest(template string, vars []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(digestDomain))
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(template)))
	h.Write(n[:])
	h.Write([]byte(template))
	binary.BigEndian.PutUint64(n[:], uint64(len(vars)))
	h.Write(n[:])
	h.Write(vars)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// Encode tokenizes the prompt: control tokens are recognised in template
// text only. When the vocabulary adds BOS (Vocab.AddBOS), BOS comes first
// and a BOS text at the start of the rendered prompt is dropped; otherwise
// the template alone decides.
func (p *Prompt) Encode(tok *tokenizer.Tokenizer) ([]int, error) {
	v := tok.Vocab()
	spans := make([]tokenizer.Span, 0, len(p.Spans))
	for _, s := range p.Spans {
		spans = append(spans, tokenizer.Span{Text: s.Text, Special: s.Trusted})
	}
	addBOS := v.AddBOS && v.BOS >= 0
	if addBOS && p.bos != "" && len(spans) > 0 && spans[0].Special && strings.HasPrefix(spans[0].Text, p.bos) {
		spans[0].Text = spans[0].Text[len(p.bos):]
	}
	return tok.EncodeSpans(spans, addBOS)
}

// Segment is a piece of raw prompt text (the completions API), tokenized on
// its own with no control token recognised: BOS goes before its tokens when
// BOS is set, EOS after them when EOS is set.
type Segment struct {
	Text     string
	BOS, EOS bool
}

// ParseRequest reads the chat fields of an OpenAI chat-completion request
// body: messages, tools, chat_template_kwargs and add_generation_prompt (true
// when absent, as vLLM has it). Other fields are ignored.
func ParseRequest(body []byte) (*Request, error) {
	var aux struct {
		Messages            []Message         `json:"messages"`
		Tools               []json.RawMessage `json:"tools"`
		Kwargs              json.RawMessage   `json:"chat_template_kwargs"`
		AddGenerationPrompt *bool             `json:"add_generation_prompt"`
	}
	if !utf8.Valid(body) {
		return nil, errors.New("chat request: not valid UTF-8")
	}
	if err := json.Unmarshal(body, &aux); err != nil {
		return nil, fmt.Errorf("chat request: %w", err)
	}
	r := &Request{Messages: aux.Messages, Tools: aux.Tools, Kwargs: aux.Kwargs, AddGenerationPrompt: true}
	if aux.AddGenerationPrompt != nil {
		r.AddGenerationPrompt = *aux.AddGenerationPrompt
	}
	return r, nil
}
