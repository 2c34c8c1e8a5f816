package gateway

import (
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/chat"
)

var fuzzSeeds = []string{
	`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
	`{"model":"m","messages":[{"role":"system","content":null},{"role":"user","content":[{"type":"text","text":"a"}]}],"stop":["x"],"seed":-1,"temperature":0.5,"top_p":0.9,"max_tokens":3,"n":1,"logprobs":true,"top_logprobs":2,"stream":true,"stream_options":{"include_usage":true}}`,
	`{"model":"m","prompt":"abc","logprobs":3,"stop":"z","max_tokens":1e3}`,
	`{"model":"m","prompt":[1,2,3]}`,
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
		for _, tmpl := range []chat.Template{chat.Plain, chat.Llama2} {
			w, err := req.toWorker(tmpl)
			if err != nil {
				if err.Status != 400 || err.Message == "" {
					t.Fatalf("bad error %+v", err)
				}
				continue
			}
			if len(w.Stop) > MaxStops || w.Sampler.Validate() != nil || w.MaxTokens < 0 || len(w.Segments) == 0 || w.TopLogprobs > 20 {
				t.Fatalf("accepted out-of-range request %+v", w)
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
			if err.Status != 400 || err.Message == "" {
				t.Fatalf("bad error %+v", err)
			}
			return
		}
		w, err := req.toWorker()
		if err != nil {
			if err.Status != 400 {
				t.Fatalf("bad error %+v", err)
			}
			return
		}
		if (w.Segments == nil) == (len(w.Tokens) == 0) || w.Sampler.Validate() != nil || w.TopLogprobs > MaxCompletionN {
			t.Fatalf("accepted inconsistent request %+v", w)
		}
	})
}
