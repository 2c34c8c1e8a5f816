package chat_test

import (
	"encoding/json"
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/chat"
)

// TestAttackNestedToolIndent renders a caller's tool definition of under a
// megabyte, a list nested 190 deep holding 100,000 numbers, with Llama
// 3.1's template, which prints every tool with tojson(indent=4): each
// number prints on a line indented by 760 spaces, so the text is about 77
// MB, rebuilt at every level of the nesting (tens of gigabytes allocated
// and seconds of CPU for one request, or a quote, which costs nothing).
// tojson now fails once its text passes MaxOutput.
func TestAttackNestedToolIndent(t *testing.T) {
	tp := llama31(t)
	const depth, leaves = 190, 100000
	params := strings.Repeat("[", depth) + strings.TrimSuffix(strings.Repeat("0,", leaves), ",") + strings.Repeat("]", depth)
	tool := `{"type":"function","function":{"name":"f","parameters":` + params + `}}`
	req := &chat.Request{Messages: []chat.Message{msg(chat.RoleUser, "hi")}, Tools: []json.RawMessage{json.RawMessage(tool)}, AddGenerationPrompt: true}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	_, err := tp.Render(req)
	runtime.ReadMemStats(&m1)
	if err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("Render of a %d-byte tool: %v, want an error naming the length limit", len(tool), err)
	}
	if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 1<<30 {
		t.Fatalf("Render of a %d-byte tool allocated %d MB", len(tool), alloc>>20)
	}
}

// TestAttackCustomTools passes 1000 tool definitions, none of them a
// function, as chat_template_kwargs' custom_tools, which Llama 3.1's
// template renders as its tools: past the limit of MaxTools and the check
// that each is a function, and past the tool-call parsing that Tools
// selects. The same list in tools is refused; so is custom_tools now.
func TestAttackCustomTools(t *testing.T) {
	tp := llama31(t)
	list := "[" + strings.TrimSuffix(strings.Repeat(`{"anything":"x"},`, 1000), ",") + "]"
	var tools []json.RawMessage
	if err := json.Unmarshal([]byte(list), &tools); err != nil {
		t.Fatal(err)
	}
	for _, req := range []*chat.Request{
		{Messages: []chat.Message{msg(chat.RoleUser, "hi")}, Tools: tools, AddGenerationPrompt: true},
		{Messages: []chat.Message{msg(chat.RoleUser, "hi")}, Kwargs: json.RawMessage(`{"custom_tools":` + list + `}`), AddGenerationPrompt: true},
	} {
		p, err := tp.Render(req)
		if err == nil {
			t.Fatalf("rendered %d bytes from 1000 tools that are no functions", len(p.Text()))
		}
		var fe *chat.FieldError
		if !errors.As(err, &fe) {
			t.Errorf("error %v is no field error", err)
		}
	}
}

// llama31 is Llama 3.1's chat template (testdata), which prints tools with
// tojson(indent=4) and renders custom_tools as its tools.
func llama31(t *testing.T) *chat.Template {
	t.Helper()
	src, err := os.ReadFile("testdata/templates/llama3.1.jinja")
	if err != nil {
		t.Fatal(err)
	}
	tp, err := chat.New("llama3.1", string(src), "<|begin_of_text|>", "<|eot_id|>")
	if err != nil {
		t.Fatal(err)
	}
	return tp
}
