package chat_test

import (
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
	})
}
