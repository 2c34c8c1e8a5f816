package chat

import (
	"errors"
	"fmt"
	"strings"
)

// Template names a prompt format.
type Template int

const (
	// Plain joins the message contents with newlines.
	Plain Template = iota
	// Llama2 is the Llama-2 chat format ([INST] ... [/INST]).
	Llama2
)

// String returns the template's name.
func (t Template) String() string {
	switch t {
	case Plain:
		return "plain"
	case Llama2:
		return "llama2"
	}
	return fmt.Sprintf("template(%d)", int(t))
}

// Detect picks the template for a model from its tokenizer.chat_template
// metadata (empty when the model has none).
func Detect(chatTemplate string) Template {
	if strings.Contains(chatTemplate, "[INST]") {
		return Llama2
	}
	return Plain
}

// Roles a message may have. Developer is OpenAI's newer name for system.
const (
	RoleSystem    = "system"
	RoleDeveloper = "developer"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Message is one chat message.
type Message struct {
	Role    string
	Content string
}

// Segment is a piece of prompt text, tokenized on its own: BOS goes before
// its tokens when BOS is set, EOS after them when EOS is set.
type Segment struct {
	Text     string
	BOS, EOS bool
}

// ErrNoMessages is returned for an empty message list.
var ErrNoMessages = errors.New("no messages")

// Render turns messages into prompt segments. It fails on an empty list or
// an unknown role, naming the message at fault.
func (t Template) Render(msgs []Message) ([]Segment, error) {
	if len(msgs) == 0 {
		return nil, ErrNoMessages
	}
	for i, m := range msgs {
		switch m.Role {
		case RoleSystem, RoleDeveloper, RoleUser, RoleAssistant:
		default:
			return nil, fmt.Errorf("messages[%d]: unsupported role %q (want system, developer, user or assistant)", i, m.Role)
		}
	}
	switch t {
	case Plain:
		parts := make([]string, len(msgs))
		for i, m := range msgs {
			parts[i] = m.Content
		}
		return []Segment{{Text: strings.Join(parts, "\n"), BOS: true}}, nil
	case Llama2:
		return renderLlama2(msgs), nil
	}
	return nil, fmt.Errorf("unknown template %d", int(t))
}

// renderLlama2 follows the Llama-2 chat template of Meta's reference code
// (llama/generation.py, chat_completion): system messages (all of them,
// joined with newlines) go inside the first [INST]; consecutive user
// messages are joined with newlines; an assistant message closes the turn
// with EOS. The last turn is left open for the model to answer.
func renderLlama2(msgs []Message) []Segment {
	var sys []string
	var rest []Message
	for _, m := range msgs {
		if m.Role == RoleSystem || m.Role == RoleDeveloper {
			sys = append(sys, m.Content)
			continue
		}
		rest = append(rest, m)
	}
	var segs []Segment
	var user []string
	first := true
	open := func() string {
		u := strings.Join(user, "\n")
		if first && len(sys) > 0 {
			u = "<<SYS>>\n" + strings.Join(sys, "\n") + "\n<</SYS>>\n\n" + u
		}
		u = strings.TrimSpace(u)
		first = false
		user = user[:0]
		return "[INST] " + u + " [/INST]"
	}
	for _, m := range rest {
		if m.Role == RoleUser {
			user = append(user, m.Content)
			continue
		}
		// Assistant: closes the pending turn (an empty user turn when an
		// assistant message comes first).
		segs = append(segs, Segment{Text: open() + " " + strings.TrimSpace(m.Content) + " ", BOS: true, EOS: true})
	}
	if len(user) > 0 || len(segs) == 0 {
		segs = append(segs, Segment{Text: open(), BOS: true})
	}
	return segs
}

// MustRender renders a single user message; it is for tests and examples.
func (t Template) MustRender(user string) []Segment {
	s, err := t.Render([]Message{{Role: RoleUser, Content: user}})
	if err != nil {
		panic(err)
	}
	return s
}
