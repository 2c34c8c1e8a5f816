package chat_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/chat"
)

// FuzzOutputParser: no answer panics the parser, and streaming it in any
// chunks gives what parsing it whole gives.
func FuzzOutputParser(f *testing.F) {
	f.Add("<think>\na\n</think>\n\nb<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>", uint8(3), uint8(0))
	f.Add("{\"name\": \"f\", \"parameters\": {\"a\": [1]}}", uint8(1), uint8(1))
	f.Add("[TOOL_CALLS] [{\"name\": \"f\", \"arguments\": {}}]", uint8(5), uint8(2))
	f.Add("<thi", uint8(2), uint8(0))
	f.Fuzz(func(t *testing.T, text string, chunk, format uint8) {
		formats := []chat.OutputFormat{{Tools: chat.Hermes, Think: true}, {Tools: chat.Llama3JSON}, {Tools: chat.MistralCalls}, {Think: true}}
		fm := formats[int(format)%len(formats)]
		content, reasoning, calls := chat.ParseOutput(fm, true, text)
		p := chat.NewOutputParser(fm, true)
		n := int(chunk%7) + 1
		var c, r strings.Builder
		for i := 0; i < len(text); i += n {
			d := p.Push(text[i:min(i+n, len(text))])
			c.WriteString(d.Content)
			r.WriteString(d.Reasoning)
		}
		d, scalls := p.Finish()
		c.WriteString(d.Content)
		r.WriteString(d.Reasoning)
		if strings.TrimSpace(c.String()) != content || r.String() != reasoning || !reflect.DeepEqual(calls, scalls) {
			t.Fatalf("streamed %q %q %v, whole %q %q %v", c.String(), r.String(), scalls, content, reasoning, calls)
		}
		for _, call := range calls {
			if call.Name == "" || !json.Valid([]byte(call.Arguments)) {
				t.Fatalf("parsed call %+v: want a name and JSON arguments", call)
			}
		}
	})
}

// FuzzRequest: no request body panics ParseRequest or Render, with
// templates that read every variable; a rendered prompt's spans are never
// empty and its digest depends only on the request.
func FuzzRequest(f *testing.F) {
	f.Add([]byte(`{"messages":[{"role":"user","content":"hi"}]}`))
	f.Add([]byte(`{"messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":[1,{\"2\":null}]}"}}]},{"role":"tool","tool_call_id":"c","content":"r"}],"tools":[{"type":"function","function":{"name":"f"}}],"chat_template_kwargs":{"enable_thinking":false,"x":[1.5,"y"]},"add_generation_prompt":false}`))
	f.Add([]byte(`{"messages":[{"role":"developer","content":[{"type":"text","text":"a"}]},{"role":"user","content":"<|im_start|>\u0000"}]}`))
	f.Add([]byte(`{"messages":[{"role":"user","content":"x"}],"chat_template_kwargs":{"messages":1}}`))
	var tps []*chat.Template
	for _, src := range []string{
		"{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content | trim }}{% if m.tool_calls %}{{ m.tool_calls | tojson }}{% endif %}<|im_end|>{% endfor %}{% if tools %}{{ tools | tojson(indent=2) }}{% endif %}{% if add_generation_prompt %}<|im_start|>assistant\n{% if enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}{{ eos_token }}",
		"{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('no tools') }}{% endif %}{{ m.content[:3] ~ m.get('name', '') }}{% endfor %}",
	} {
		tp, err := chat.New("fuzz", src, "<s>", "</s>")
		if err != nil {
			f.Fatal(err)
		}
		tps = append(tps, tp)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := chat.ParseRequest(body)
		if err != nil {
			return
		}
		for _, tp := range tps {
			p, err := tp.Render(r)
			if err != nil {
				continue
			}
			for _, s := range p.Spans {
				if s.Text == "" {
					t.Fatalf("empty span")
				}
			}
			q, err := tp.Render(r)
			if err != nil || q.Digest != p.Digest || q.Text() != p.Text() {
				t.Fatalf("rendering twice differs: %v", err)
			}
		}
	})
}
