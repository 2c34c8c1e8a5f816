package gateway

import (
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/chat"
)

// A template that throws, and a template that shows tools, through the
// chat request path.
func TestChatTemplateRequests(t *testing.T) {
	throws, err := chat.New("strict", "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported\nat all') }}{% endif %}{{ m.content }}{% endfor %}", "<s>", "</s>")
	if err != nil {
		t.Fatal(err)
	}
	tools, err := chat.New("tools", toolTemplate, "<s>", "</s>")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		tmpl  *chat.Template
		body  string
		param string // "" with want: accepted, rendering to want
		want  string
	}{
		{"template throws", throws, `{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"u"}]}`, "messages", "template raised an exception: System role not supported at all"},
		{"tools shown", tools, `{"model":"m","messages":[{"role":"user","content":"w?"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"auto"}`, "",
			`{"type": "function", "function": {"name": "f"}}<|im_start|>user\nw?<|im_end|><|im_start|>assistant\n`},
		{"no generation prompt", tools, `{"model":"m","messages":[{"role":"user","content":"w?"}],"add_generation_prompt":false}`, "", `<|im_start|>user\nw?<|im_end|>`},
		{"tool call arguments decoded", tools, `{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"{\"b\": 1, \"a\": [2]}"}}]}],"add_generation_prompt":false}`, "",
			`<|im_start|>assistant\nf{"b": 1, "a": [2]}<|im_end|>`},
	}
	for _, tc := range tests {
		var req chatRequest
		if aerr := decode([]byte(tc.body), &req); aerr != nil {
			t.Fatalf("%s: %+v", tc.name, aerr)
		}
		w, aerr := req.toWorker(tc.tmpl)
		if tc.param != "" {
			if aerr == nil || aerr.Status != 400 || aerr.Param == nil || *aerr.Param != tc.param || !strings.Contains(aerr.Message, tc.want) {
				t.Errorf("%s: error %+v, want param %q and %q", tc.name, aerr, tc.param, tc.want)
			}
			continue
		}
		if aerr != nil {
			t.Fatalf("%s: %+v", tc.name, aerr)
		}
		if got := w.Chat.Text(); got != tc.want {
			t.Errorf("%s: prompt %q, want %q", tc.name, got, tc.want)
		}
	}
}
