package chat_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/chat"
)

func TestParseOutput(t *testing.T) {
	hermes := chat.OutputFormat{Tools: chat.Hermes, Think: true}
	llama := chat.OutputFormat{Tools: chat.Llama3JSON}
	mistral := chat.OutputFormat{Tools: chat.MistralCalls}
	tests := []struct {
		name               string
		f                  chat.OutputFormat
		tools              bool
		text               string
		content, reasoning string
		calls              []chat.ParsedCall
	}{
		{"plain", hermes, true, "Hello there.", "Hello there.", "", nil},
		{"thinking", hermes, false, "<think>\n2+2 is 4\n</think>\n\nIt is 4.", "It is 4.", "2+2 is 4\n", nil},
		{"unclosed thinking", hermes, false, "<think>\nhmm", "", "hmm", nil},
		{"no tools offered", hermes, false, "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>", "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>", "", nil},
		{"hermes call", hermes, true, "<think>\nneed weather\n</think>\n\nLet me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"n\": [1, 2]}}\n</tool_call>",
			"Let me check.", "need weather\n", []chat.ParsedCall{{"get_weather", `{"city":"Paris","n":[1,2]}`}}},
		{"hermes two calls", hermes, true, "<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": \"b\", \"arguments\": {\"x\": \"<y>\"}}\n</tool_call>",
			"", "", []chat.ParsedCall{{"a", `{}`}, {"b", `{"x":"<y>"}`}}},
		{"hermes bad json", hermes, true, "<tool_call>\n{\"name\": \"a\", \"arguments\": {oops}}\n</tool_call>", "<tool_call>\n{\"name\": \"a\", \"arguments\": {oops}}\n</tool_call>", "", nil},
		{"hermes unclosed", hermes, true, "x <tool_call>{\"name\": \"a\"}", "x <tool_call>{\"name\": \"a\"}", "", nil},
		{"llama call", llama, true, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\"}}", "", "", []chat.ParsedCall{{"get_weather", `{"city":"Rome"}`}}},
		{"llama python tag", llama, true, "<|python_tag|>{\"name\": \"f\", \"parameters\": {}}", "", "", []chat.ParsedCall{{"f", `{}`}}},
		{"llama text", llama, true, "The answer is {42}.", "The answer is {42}.", "", nil},
		{"llama brace text", llama, true, "{not json", "{not json", "", nil},
		{"mistral", mistral, true, "[TOOL_CALLS] [{\"name\": \"f\", \"arguments\": {\"a\": 1}}, {\"name\": \"g\", \"arguments\": {}}]", "", "", []chat.ParsedCall{{"f", `{"a":1}`}, {"g", `{}`}}},
	}
	for _, tc := range tests {
		content, reasoning, calls := chat.ParseOutput(tc.f, tc.tools, tc.text)
		if content != tc.content || reasoning != tc.reasoning || !reflect.DeepEqual(calls, tc.calls) {
			t.Errorf("%s: got %q %q %v, want %q %q %v", tc.name, content, reasoning, calls, tc.content, tc.reasoning, tc.calls)
		}
		// Streamed byte by byte: the same pieces.
		p := chat.NewOutputParser(tc.f, tc.tools)
		var c, r strings.Builder
		for i := 0; i < len(tc.text); i++ {
			d := p.Push(tc.text[i : i+1])
			c.WriteString(d.Content)
			r.WriteString(d.Reasoning)
		}
		d, scalls := p.Finish()
		c.WriteString(d.Content)
		r.WriteString(d.Reasoning)
		if strings.TrimSpace(c.String()) != tc.content || r.String() != tc.reasoning || !reflect.DeepEqual(scalls, tc.calls) {
			t.Errorf("%s streamed: got %q %q %v", tc.name, c.String(), r.String(), scalls)
		}
	}
}

func TestOutputFormat(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want chat.OutputFormat
	}{
		{"{{ messages }}", chat.OutputFormat{}},
		{"{% for t in tools %}{% endfor %}<tool_call></think>", chat.OutputFormat{Tools: chat.Hermes, Think: true}},
		{"{% if tools %}<|python_tag|>{% endif %}", chat.OutputFormat{Tools: chat.Llama3JSON}},
		{"{% if tools %}[TOOL_CALLS]{% endif %}", chat.OutputFormat{Tools: chat.MistralCalls}},
		{"<tool_call>", chat.OutputFormat{}}, // never reads tools
	} {
		tp, err := chat.New("t", tc.src, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if got := tp.OutputFormat(); got != tc.want {
			t.Errorf("%q: %+v, want %+v", tc.src, got, tc.want)
		}
	}
}
