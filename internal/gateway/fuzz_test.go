package gateway

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/chat"
)

var fuzzSeeds = []string{
	`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
	`{"model":"m","messages":[{"role":"system","content":null},{"role":"user","content":[{"type":"text","text":"a"}]}],"stop":["x"],"seed":-1,"temperature":0.5,"top_p":0.9,"max_tokens":3,"n":1,"logprobs":true,"top_logprobs":2,"stream":true,"stream_options":{"include_usage":true}}`,
	`{"model":"m","prompt":"abc","logprobs":3,"stop":"z","max_tokens":1e3}`,
	`{"model":"m","messages":[{"role":"user","content":"hi"}],"top_p":4e-46}`,
	`{"model":"m","prompt":[1,2,3]}`,
	`{"model":"m","messages":[{"role":"user","content":"w?"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},{"role":"tool","tool_call_id":"c1","content":"ok"}],"tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"tool_choice":"auto","chat_template_kwargs":{"enable_thinking":false},"add_generation_prompt":false}`,
	`{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"required","chat_template_kwargs":[1]}`,
	`{"model":"m","prompt":["one"]}`,
	`{"model":1}`,
	`{"messages":"x","prompt":{}}`,
	`[]`,
	`{"stop":[1]}`,
	`{"seed":18446744073709551615}`,
	`{`,
	``,
}

// FuzzDecodeChat checks that no body makes the chat decoder or validation
// panic, and that accepted requests are within the documented limits.
func FuzzDecodeChat(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req chatRequest
		if err := decode(body, &req); err != nil {
			if err.Status != 400 || err.Message == "" || strings.Contains(err.Message, "\n") {
				t.Fatalf("bad error %+v", err)
			}
			return
		}
		for _, tmpl := range fuzzTemplates(t) {
			w, err := req.toWorker(tmpl)
			if err != nil {
				if err.Status != 400 || err.Message == "" || strings.Contains(err.Message, "\n") {
					t.Fatalf("bad error %+v", err)
				}
				continue
			}
			if len(w.Stop) > MaxStops || w.Sampler.Validate() != nil || w.MaxTokens < 0 || w.Chat == nil || w.TopLogprobs > 20 {
				t.Fatalf("accepted out-of-range request %+v", w)
			}
			// The sampling run is the one asked for: float32 does not
			// turn a temperature greedy or a top_p into no cut.
			if (req.Temperature != nil && *req.Temperature > 0 && w.Sampler.Temperature == 0) || (req.TopP != nil && *req.TopP < 1 && w.Sampler.TopP == 0) {
				t.Fatalf("temperature %v, top_p %v ran as %+v", fmtPtr(req.Temperature), fmtPtr(req.TopP), w.Sampler)
			}
		}
	})
}

// FuzzDecodeCompletion does the same for the completions decoder.
func FuzzDecodeCompletion(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req completionRequest
		if err := decode(body, &req); err != nil {
			if err.Status != 400 || err.Message == "" || strings.Contains(err.Message, "\n") {
				t.Fatalf("bad error %+v", err)
			}
			return
		}
		w, err := req.toWorker()
		if err != nil {
			if err.Status != 400 || strings.Contains(err.Message, "\n") {
				t.Fatalf("bad error %+v", err)
			}
			return
		}
		if (w.Segments == nil) == (len(w.Tokens) == 0) || w.Sampler.Validate() != nil || w.TopLogprobs > MaxCompletionN {
			t.Fatalf("accepted inconsistent request %+v", w)
		}
	})
}

// fuzzTemplates are the built-in templates and one that shows tools.
func fuzzTemplates(t *testing.T) []*chat.Template {
	var out []*chat.Template
	for _, name := range []string{chat.PlainName, chat.Llama2Name} {
		tp, err := chat.Builtin(name, "<s>", "</s>")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tp)
	}
	tp, err := chat.New("tools", toolTemplate, "<s>", "</s>")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, tp)
}

const toolTemplate = `{% if tools %}{% for t in tools %}{{ t | tojson }}{% endfor %}{% endif %}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}{% for c in m.tool_calls or [] %}{{ c.function.name }}{{ c.function.arguments | tojson }}{% endfor %}<|im_end|>{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}`

// FuzzDecodePayment: any PAYMENT-SIGNATURE header decodes or is refused
// as an x402 error, never a panic.
func FuzzDecodePayment(f *testing.F) {
	f.Add("")
	f.Add("%%%")
	f.Add(base64.StdEncoding.EncodeToString([]byte(`{"x402Version":2,"accepted":{"scheme":"exact"},"payload":{"transaction":"e30="}}`)))
	f.Add(base64.StdEncoding.EncodeToString([]byte(`{"x402Version":2,"payload":{"transaction":"` + base64.StdEncoding.EncodeToString([]byte(`{"chainId":"c","signer":"00","nonce":0,"fee":1,"msg":{},"sig":""}`)) + `"}}`)))
	f.Fuzz(func(t *testing.T, h string) {
		p, tx, err := decodePayment(h)
		if err != nil {
			var xe *x402Error
			if !errors.As(err, &xe) || p != nil || tx != nil || strings.Contains(xe.Msg, "\n") {
				t.Fatalf("error %q is not a one-line x402 refusal", err)
			}
			return
		}
		if p.X402Version != X402Version || tx == nil {
			t.Fatalf("accepted %+v", p)
		}
	})
}

func fmtPtr(v *float64) string {
	if v == nil {
		return "unset"
	}
	return strconv.FormatFloat(*v, 'g', -1, 64)
}
