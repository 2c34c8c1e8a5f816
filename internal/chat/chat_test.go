package chat

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestDetect(t *testing.T) {
	tests := []struct {
		tmpl string
		want Template
	}{
		{"", Plain},
		{"{% for m in messages %}{{ m.content }}{% endfor %}", Plain},
		{"{{ bos_token + '[INST] ' + content + ' [/INST]' }}", Llama2},
	}
	for _, tc := range tests {
		if got := Detect(tc.tmpl); got != tc.want {
			t.Errorf("Detect(%q) = %v, want %v", tc.tmpl, got, tc.want)
		}
	}
}

// The Llama-2 expectations are written from Meta's reference implementation
// (llama/generation.py, chat_completion): B_INST, E_INST = "[INST]", "[/INST]";
// B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"; each answered turn is
// bos + f"{B_INST} {prompt.strip()} {E_INST} {answer.strip()} " + eos and the
// last one bos + f"{B_INST} {prompt.strip()} {E_INST}".
func TestRender(t *testing.T) {
	sys := Message{RoleSystem, "Be brief."}
	u1 := Message{RoleUser, " Hi there "}
	a1 := Message{RoleAssistant, " Hello! "}
	u2 := Message{RoleUser, "Tell a story."}
	tests := []struct {
		name string
		tmpl Template
		msgs []Message
		want []Segment
	}{
		{"plain one", Plain, []Message{{RoleUser, "Once upon a time"}}, []Segment{{Text: "Once upon a time", BOS: true}}},
		{"plain many", Plain, []Message{sys, u1, a1, u2}, []Segment{{Text: "Be brief.\n Hi there \n Hello! \nTell a story.", BOS: true}}},
		{"plain empty content", Plain, []Message{{RoleUser, ""}}, []Segment{{Text: "", BOS: true}}},
		{"llama2 user", Llama2, []Message{u2}, []Segment{{Text: "[INST] Tell a story. [/INST]", BOS: true}}},
		{"llama2 system", Llama2, []Message{sys, u1}, []Segment{{Text: "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n Hi there [/INST]", BOS: true}}},
		{"llama2 dialog", Llama2, []Message{sys, u1, a1, u2}, []Segment{
			{Text: "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n Hi there [/INST] Hello! ", BOS: true, EOS: true},
			{Text: "[INST] Tell a story. [/INST]", BOS: true},
		}},
		{"llama2 ends with assistant", Llama2, []Message{u1, a1}, []Segment{
			{Text: "[INST] Hi there [/INST] Hello! ", BOS: true, EOS: true},
		}},
		{"llama2 developer is system", Llama2, []Message{{RoleDeveloper, "D"}, u2}, []Segment{{Text: "[INST] <<SYS>>\nD\n<</SYS>>\n\nTell a story. [/INST]", BOS: true}}},
		{"llama2 system only", Llama2, []Message{sys}, []Segment{{Text: "[INST] <<SYS>>\nBe brief.\n<</SYS>> [/INST]", BOS: true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.tmpl.Render(tc.msgs)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Render = %+v\nwant     %+v", got, tc.want)
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	tests := []struct {
		msgs []Message
		want string
	}{
		{nil, "no messages"},
		{[]Message{{RoleUser, "a"}, {"tool", "b"}}, `messages[1]: unsupported role "tool"`},
		{[]Message{{"", "b"}}, `messages[0]: unsupported role ""`},
	}
	for _, tmpl := range []Template{Plain, Llama2} {
		for _, tc := range tests {
			_, err := tmpl.Render(tc.msgs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v.Render(%v) error = %v, want %q", tmpl, tc.msgs, err, tc.want)
			}
		}
	}
	if _, err := Template(9).Render([]Message{{RoleUser, "a"}}); err == nil {
		t.Error("unknown template rendered")
	}
}

func ExampleTemplate_Render() {
	segs, _ := Llama2.Render([]Message{{RoleSystem, "Be brief."}, {RoleUser, "Hi"}})
	for _, s := range segs {
		fmt.Printf("BOS=%v %q EOS=%v\n", s.BOS, s.Text, s.EOS)
	}
	// Output:
	// BOS=true "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]" EOS=false
}
