package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/inference"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/testutil"
	"github.com/verdictnet/verdict/internal/worker"
)

var (
	workerOnce sync.Once
	sharedW    *worker.Local
	workerErr  error
)

func testWorker(t testing.TB) *worker.Local {
	t.Helper()
	path := testutil.Shared(t, "models/stories260K.gguf")
	workerOnce.Do(func() { sharedW, workerErr = worker.Open(worker.Config{ModelPath: path, Threads: 1}) })
	if workerErr != nil {
		t.Fatal(workerErr)
	}
	return sharedW
}

// counting wraps a backend and counts generations.
type counting struct {
	Backend
	n atomic.Int64
}

func (c *counting) Generate(ctx context.Context, req inference.Request, f func(inference.Delta) error) (*inference.Result, error) {
	c.n.Add(1)
	return c.Backend.Generate(ctx, req, f)
}

func newServer(t testing.TB, mod func(*Options)) (*httptest.Server, *counting) {
	t.Helper()
	b := &counting{Backend: testWorker(t)}
	o := Options{Backend: b, ServeMetrics: true}
	if mod != nil {
		mod(&o)
	}
	o.NoAuth = o.Auth == nil
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts, b
}

func post(t testing.TB, url, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func get(t testing.TB, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// reference returns run.c's greedy continuation of prompt for 64 steps
// (../shared/reference/greedy) and the number of new tokens (60 for the
// 5-token prompts, BOS included).
func reference(t *testing.T, file, prompt string) string {
	ref, err := os.ReadFile(filepath.Join(testutil.Shared(t, "reference/greedy"), file))
	if err != nil {
		t.Fatal(err)
	}
	want, ok := strings.CutPrefix(strings.TrimSuffix(string(ref), "\n"), prompt)
	if !ok {
		t.Fatalf("%s does not start with %q", file, prompt)
	}
	return want
}

type chatResp struct {
	ID                string `json:"id"`
	Object            string `json:"object"`
	Model             string `json:"model"`
	SystemFingerprint string `json:"system_fingerprint"`
	Choices           []struct {
		Index   int `json:"index"`
		Message *struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		Delta *struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		Text     string `json:"text"`
		Logprobs *struct {
			Content []struct {
				Token       string  `json:"token"`
				Logprob     float64 `json:"logprob"`
				Bytes       []int   `json:"bytes"`
				TopLogprobs []struct {
					Token   string  `json:"token"`
					Logprob float64 `json:"logprob"`
				} `json:"top_logprobs"`
			} `json:"content"`
			Tokens        []string             `json:"tokens"`
			TokenLogprobs []float64            `json:"token_logprobs"`
			TopLogprobs   []map[string]float64 `json:"top_logprobs"`
			TextOffset    []int                `json:"text_offset"`
		} `json:"logprobs"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
	Verdict *struct {
		ReceiptID string `json:"receipt_id"`
		ModelID   string `json:"model_id"`
	} `json:"verdict"`
}

func decodeResp(t testing.TB, b []byte) chatResp {
	t.Helper()
	var r chatResp
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("response %s: %v", b, err)
	}
	return r
}

func TestChatCompletion(t *testing.T) {
	ts, _ := newServer(t, nil)
	want := reference(t, "p1.txt", "Once upon a time")
	resp, b := post(t, ts.URL+"/v1/chat/completions", `{"model":"stories260K","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":60,"temperature":0,"some_unknown_field":{"x":1}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	r := decodeResp(t, b)
	if r.Object != "chat.completion" || r.Model != "stories260K" || !strings.HasPrefix(r.SystemFingerprint, "fp_") || !strings.HasPrefix(r.ID, "chatcmpl-") {
		t.Errorf("header fields: %s", b)
	}
	if len(r.Choices) != 1 || r.Choices[0].Message == nil || r.Choices[0].Message.Role != "assistant" {
		t.Fatalf("choices: %s", b)
	}
	if got := r.Choices[0].Message.Content; got != want {
		t.Errorf("content %q\nwant    %q", got, want)
	}
	if *r.Choices[0].FinishReason != "length" || r.Usage.PromptTokens != 5 || r.Usage.CompletionTokens != 60 || r.Usage.TotalTokens != 65 {
		t.Errorf("finish/usage: %s", b)
	}
	if r.Verdict == nil || len(r.Verdict.ReceiptID) != 64 || resp.Header.Get("X-Verdict-Receipt") != r.Verdict.ReceiptID {
		t.Fatalf("receipt id: header %q, body %s", resp.Header.Get("X-Verdict-Receipt"), b)
	}
	// The receipt is served, verifies, and commits to what was returned.
	resp, rb := get(t, ts.URL+"/v1/receipts/"+r.Verdict.ReceiptID)
	if resp.StatusCode != 200 {
		t.Fatalf("receipt: %d %s", resp.StatusCode, rb)
	}
	var rr struct {
		ID      string          `json:"id"`
		Status  string          `json:"status"`
		Receipt json.RawMessage `json:"receipt"`
	}
	if err := json.Unmarshal(rb, &rr); err != nil {
		t.Fatal(err)
	}
	rc, err := receipt.Parse(rr.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Verify(); err != nil {
		t.Fatal(err)
	}
	id := rc.ID()
	if rr.Status != "published" || rr.ID != r.Verdict.ReceiptID || len(rc.Output) != 60 || rc.Model.String() != r.Verdict.ModelID {
		t.Errorf("receipt %s (id %x)", rb, id)
	}
	text, err := testWorker(t).Models()[0].Tokenizer.Decode(append([]int{rc.Prompt[len(rc.Prompt)-1]}, rc.Output...))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(text, want) {
		t.Errorf("receipt tokens decode to %q", text)
	}
}

func TestCompletion(t *testing.T) {
	ts, _ := newServer(t, nil)
	want := reference(t, "p3.txt", "The little dog")
	resp, b := post(t, ts.URL+"/v1/completions", `{"model":"stories260K","prompt":"The little dog","max_tokens":60,"temperature":0}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	r := decodeResp(t, b)
	if r.Object != "text_completion" || len(r.Choices) != 1 || r.Choices[0].Text != want {
		t.Errorf("response %s\nwant text %q", b, want)
	}
	if resp.Header.Get("X-Verdict-Receipt") == "" || r.Verdict.ReceiptID != resp.Header.Get("X-Verdict-Receipt") {
		t.Errorf("receipt: %s", b)
	}
	// A prompt of token ids gives the same text.
	toks, err := testWorker(t).Models()[0].Tokenizer.Encode("The little dog", true)
	if err != nil {
		t.Fatal(err)
	}
	tj, _ := json.Marshal(toks)
	_, b2 := post(t, ts.URL+"/v1/completions", `{"model":"stories260K","prompt":`+string(tj)+`,"max_tokens":60,"temperature":0}`)
	if r2 := decodeResp(t, b2); len(r2.Choices) != 1 || r2.Choices[0].Text != want {
		t.Errorf("token prompt: %s", b2)
	}
}

// readSSE returns the data payloads of an event stream.
func readSSE(t *testing.T, body io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		d, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("not an SSE data line: %q", line)
		}
		out = append(out, d)
	}
	return out
}

func TestChatStream(t *testing.T) {
	ts, _ := newServer(t, nil)
	want := reference(t, "p2.txt", "Lily and Tom went to the park")
	toks, err := testWorker(t).Models()[0].Tokenizer.Encode("Lily and Tom went to the park", true)
	if err != nil {
		t.Fatal(err)
	}
	n := 64 - len(toks) + 1 // run.c ran 64 positions
	body := `{"model":"stories260K","messages":[{"role":"user","content":[{"type":"text","text":"Lily and Tom "},{"type":"text","text":"went to the park"}]}],"max_completion_tokens":` + strconv.Itoa(n) + `,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}`
	resp, err := http.Post(ts.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := readSSE(t, resp.Body)
	if len(events) < 4 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("events: %q", events)
	}
	var text strings.Builder
	var receiptID, finish string
	var usage *chatResp
	for i, e := range events[:len(events)-1] {
		c := decodeResp(t, []byte(e))
		if c.Object != "chat.completion.chunk" {
			t.Fatalf("event %d: %s", i, e)
		}
		if i == 0 && (len(c.Choices) != 1 || c.Choices[0].Delta.Role != "assistant") {
			t.Errorf("first chunk: %s", e)
		}
		if c.Usage != nil {
			usage = &c
			if len(c.Choices) != 0 {
				t.Errorf("usage chunk has choices: %s", e)
			}
			continue
		}
		ch := c.Choices[0]
		if ch.Delta.Content != nil {
			text.WriteString(*ch.Delta.Content)
		}
		if ch.FinishReason != nil {
			finish = *ch.FinishReason
			receiptID = c.Verdict.ReceiptID
		}
	}
	if text.String() != want || finish != "length" {
		t.Errorf("streamed %q (%s)\nwant     %q", text.String(), finish, want)
	}
	if usage == nil || usage.Usage.CompletionTokens != n || usage.Verdict.ReceiptID != receiptID {
		t.Errorf("usage chunk: %+v", usage)
	}
	if resp.Trailer.Get("X-Verdict-Receipt") != receiptID || receiptID == "" {
		t.Errorf("trailer %q, receipt %q", resp.Trailer.Get("X-Verdict-Receipt"), receiptID)
	}
	if r, _ := get(t, ts.URL+"/v1/receipts/"+receiptID); r.StatusCode != 200 {
		t.Errorf("receipt %s: %d", receiptID, r.StatusCode)
	}
}

func TestCompletionStream(t *testing.T) {
	ts, _ := newServer(t, nil)
	_, nb := post(t, ts.URL+"/v1/completions", `{"model":"stories260K","prompt":"Once","max_tokens":30,"seed":5,"logprobs":2}`)
	nr := decodeResp(t, nb)
	resp, err := http.Post(ts.URL+"/v1/completions", "application/json", strings.NewReader(`{"model":"stories260K","prompt":"Once","max_tokens":30,"seed":5,"stream":true,"logprobs":2}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := readSSE(t, resp.Body)
	var text strings.Builder
	var toks []string
	for _, e := range events[:len(events)-1] {
		c := decodeResp(t, []byte(e))
		if len(c.Choices) == 1 {
			text.WriteString(c.Choices[0].Text)
			if lp := c.Choices[0].Logprobs; lp != nil {
				toks = append(toks, lp.Tokens...)
			}
		}
	}
	if text.String() != nr.Choices[0].Text || events[len(events)-1] != "[DONE]" {
		t.Errorf("streamed %q, whole %q", text.String(), nr.Choices[0].Text)
	}
	if strings.Join(toks, "") != strings.Join(nr.Choices[0].Logprobs.Tokens, "") || len(toks) != nr.Usage.CompletionTokens {
		t.Errorf("stream tokens %q, whole %q", toks, nr.Choices[0].Logprobs.Tokens)
	}
}

func TestSeedDeterminism(t *testing.T) {
	ts, b := newServer(t, nil)
	run := func(extra string) chatResp {
		_, body := post(t, ts.URL+"/v1/chat/completions", `{"model":"stories260K","messages":[{"role":"user","content":"Lily"}],"max_tokens":40,"temperature":1`+extra+`}`)
		return decodeResp(t, body)
	}
	a, a2, c := run(`,"seed":1234`), run(`,"seed":1234`), run(`,"seed":99`)
	if a.Choices[0].Message.Content != a2.Choices[0].Message.Content {
		t.Errorf("same seed: %q / %q", a.Choices[0].Message.Content, a2.Choices[0].Message.Content)
	}
	// Each generation is its own receipt (a per-request nonce), billed on
	// its own.
	if a.Verdict.ReceiptID == a2.Verdict.ReceiptID {
		t.Errorf("two generations share receipt %s", a.Verdict.ReceiptID)
	}
	if a.Choices[0].Message.Content == c.Choices[0].Message.Content {
		t.Errorf("different seeds, same text %q", c.Choices[0].Message.Content)
	}
	// No seed means seed 0.
	d, z := run(""), run(`,"seed":0`)
	if d.Choices[0].Message.Content != z.Choices[0].Message.Content {
		t.Errorf("default seed is not 0")
	}
	if b.n.Load() != 5 {
		t.Errorf("%d generations", b.n.Load())
	}
}

func TestChatLogprobs(t *testing.T) {
	ts, _ := newServer(t, nil)
	_, body := post(t, ts.URL+"/v1/chat/completions", `{"model":"stories260K","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":5,"temperature":0,"logprobs":true,"top_logprobs":3}`)
	r := decodeResp(t, body)
	lp := r.Choices[0].Logprobs
	if lp == nil || len(lp.Content) != 5 {
		t.Fatalf("logprobs: %s", body)
	}
	var text strings.Builder
	for _, c := range lp.Content {
		text.WriteString(c.Token)
		if len(c.TopLogprobs) != 3 || c.TopLogprobs[0].Token != c.Token || c.TopLogprobs[0].Logprob != c.Logprob || c.Logprob > 0 || len(c.Bytes) != len(c.Token) {
			t.Errorf("entry %+v", c)
		}
	}
	if text.String() != r.Choices[0].Message.Content {
		t.Errorf("tokens %q, content %q", text.String(), r.Choices[0].Message.Content)
	}
	// Without logprobs the field is null.
	_, body = post(t, ts.URL+"/v1/chat/completions", `{"model":"stories260K","messages":[{"role":"user","content":"Once"}],"max_tokens":2}`)
	if !bytes.Contains(body, []byte(`"logprobs":null`)) {
		t.Errorf("logprobs not null: %s", body)
	}
}

func TestStop(t *testing.T) {
	ts, _ := newServer(t, nil)
	want := reference(t, "p1.txt", "Once upon a time")
	i := strings.Index(want, "Lily")
	_, body := post(t, ts.URL+"/v1/completions", `{"model":"stories260K","prompt":"Once upon a time","max_tokens":60,"temperature":0,"stop":"Lily"}`)
	r := decodeResp(t, body)
	if r.Choices[0].Text != want[:i] || *r.Choices[0].FinishReason != "stop" {
		t.Errorf("stop: %s", body)
	}
	_, body = post(t, ts.URL+"/v1/completions", `{"model":"stories260K","prompt":"Once upon a time","max_tokens":60,"temperature":0,"stop":["zzz","girl"]}`)
	r = decodeResp(t, body)
	if r.Choices[0].Text != want[:strings.Index(want, "girl")] {
		t.Errorf("stop array: %s", body)
	}
}

func TestErrors(t *testing.T) {
	ts, b := newServer(t, func(o *Options) { o.MaxBodyBytes = 4096 })
	chat := ts.URL + "/v1/chat/completions"
	comp := ts.URL + "/v1/completions"
	long := strings.Repeat("Once upon a time there was a dog. ", 60)
	tests := []struct {
		name, url, body  string
		status           int
		typ, param, code string
	}{
		{"malformed json", chat, `{"model":`, 400, "invalid_request_error", "", ""},
		{"not an object", chat, `[1,2]`, 400, "invalid_request_error", "", ""},
		{"trailing data", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}]} {}`, 400, "invalid_request_error", "", ""},
		{"trailing brace", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}]}}`, 400, "invalid_request_error", "", ""},
		{"messages wrong type", chat, `{"model":"stories260K","messages":"hi"}`, 400, "invalid_request_error", "messages", ""},
		{"temperature wrong type", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"temperature":"hot"}`, 400, "invalid_request_error", "temperature", ""},
		{"max_tokens fractional", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"max_tokens":1.5}`, 400, "invalid_request_error", "max_tokens", ""},
		{"stop wrong type", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"stop":5}`, 400, "invalid_request_error", "stop", ""},
		{"content image", chat, `{"model":"stories260K","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, 400, "invalid_request_error", "messages.content", ""},
		{"missing model", chat, `{"messages":[{"role":"user","content":"a"}]}`, 400, "invalid_request_error", "model", ""},
		{"missing messages", chat, `{"model":"stories260K"}`, 400, "invalid_request_error", "messages", ""},
		{"bad role", chat, `{"model":"stories260K","messages":[{"role":"wizard","content":"a"}]}`, 400, "invalid_request_error", "messages", ""},
		{"tools without template support", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"tools":[{"type":"function","function":{"name":"f"}}]}`, 400, "invalid_request_error", "tools", ""},
		{"tool_choice required", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"tool_choice":"required"}`, 400, "invalid_request_error", "tool_choice", ""},
		{"tool call arguments not JSON", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{nope"}}]}]}`, 400, "invalid_request_error", "messages", ""},
		{"kwargs not an object", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"chat_template_kwargs":"x"}`, 400, "invalid_request_error", "chat_template_kwargs", ""},
		{"unknown model", chat, `{"model":"gpt-4o","messages":[{"role":"user","content":"a"}]}`, 404, "invalid_request_error", "model", "model_not_found"},
		{"n=2", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"n":2}`, 400, "invalid_request_error", "n", ""},
		{"temperature range", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"temperature":2.5}`, 400, "invalid_request_error", "temperature", ""},
		{"top_p zero", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"top_p":0}`, 400, "invalid_request_error", "top_p", ""},
		{"max_tokens zero", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"max_tokens":0}`, 400, "invalid_request_error", "max_tokens", ""},
		{"five stops", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"stop":["a","b","c","d","e"]}`, 400, "invalid_request_error", "stop", ""},
		{"top_logprobs alone", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"top_logprobs":2}`, 400, "invalid_request_error", "top_logprobs", ""},
		{"top_logprobs range", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"logprobs":true,"top_logprobs":21}`, 400, "invalid_request_error", "top_logprobs", ""},
		{"penalty", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"presence_penalty":0.5}`, 400, "invalid_request_error", "presence_penalty", ""},
		{"stream_options without stream", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"stream_options":{"include_usage":true}}`, 400, "invalid_request_error", "stream_options", ""},
		{"oversized prompt", chat, `{"model":"stories260K","messages":[{"role":"user","content":"` + long[:2000] + `"}]}`, 400, "invalid_request_error", "messages", "context_length_exceeded"},
		{"body too large", chat, `{"model":"stories260K","messages":[{"role":"user","content":"` + long + long + long + `"}]}`, 413, "invalid_request_error", "", "request_too_large"},
		{"completion no prompt", comp, `{"model":"stories260K"}`, 400, "invalid_request_error", "prompt", ""},
		{"completion prompt type", comp, `{"model":"stories260K","prompt":{"a":1}}`, 400, "invalid_request_error", "prompt", ""},
		{"completion two prompts", comp, `{"model":"stories260K","prompt":["a","b"]}`, 400, "invalid_request_error", "prompt", ""},
		{"completion token range", comp, `{"model":"stories260K","prompt":[1,99999]}`, 400, "invalid_request_error", "", ""},
		{"completion logprobs range", comp, `{"model":"stories260K","prompt":"a","logprobs":6}`, 400, "invalid_request_error", "logprobs", ""},
		{"completion oversized", comp, `{"model":"stories260K","prompt":"` + long[:2000] + `"}`, 400, "invalid_request_error", "prompt", "context_length_exceeded"},
		{"completion echo", comp, `{"model":"stories260K","prompt":"a","echo":true}`, 400, "invalid_request_error", "echo", ""},
		{"unknown endpoint", ts.URL + "/v1/embeddings", `{}`, 404, "invalid_request_error", "", "unknown_url"},
		// Every field out of its range or of the wrong type is a 400 that
		// names it (OpenAI's ranges; top_k as llama.cpp's).
		{"top_k negative", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"top_k":-3}`, 400, "invalid_request_error", "top_k", ""},
		{"top_k fractional", comp, `{"model":"stories260K","prompt":"a","top_k":2.5}`, 400, "invalid_request_error", "top_k", ""},
		{"content null", chat, `{"model":"stories260K","messages":[{"role":"user","content":null}]}`, 400, "invalid_request_error", "messages[0].content", ""},
		{"content missing", chat, `{"model":"stories260K","messages":[{"role":"system","content":"s"},{"role":"user"}]}`, 400, "invalid_request_error", "messages[1].content", ""},
		{"content number", chat, `{"model":"stories260K","messages":[{"role":"user","content":5}]}`, 400, "invalid_request_error", "messages.content", ""},
		{"content part without text", chat, `{"model":"stories260K","messages":[{"role":"user","content":[{"type":"text"}]}]}`, 400, "invalid_request_error", "messages.content", ""},
		{"role wrong type", chat, `{"model":"stories260K","messages":[{"role":5,"content":"a"}]}`, 400, "invalid_request_error", "messages.role", ""},
		{"name wrong type", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a","name":5}]}`, 400, "invalid_request_error", "messages.name", ""},
		{"invalid UTF-8", chat, "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"a\xff\"}]}", 400, "invalid_request_error", "", ""},
		{"message not an object", chat, `{"model":"stories260K","messages":["hi"]}`, 400, "invalid_request_error", "messages", ""},
		{"model wrong type", chat, `{"model":5,"messages":[{"role":"user","content":"a"}]}`, 400, "invalid_request_error", "model", ""},
		{"stream wrong type", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"stream":"yes"}`, 400, "invalid_request_error", "stream", ""},
		{"stream_options wrong type", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"stream":true,"stream_options":{"include_usage":"yes"}}`, 400, "invalid_request_error", "stream_options.include_usage", ""},
		{"seed fractional", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"seed":1.5}`, 400, "invalid_request_error", "seed", ""},
		{"seed string", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"seed":"7"}`, 400, "invalid_request_error", "seed", ""},
		{"seed too large", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"seed":18446744073709551616}`, 400, "invalid_request_error", "seed", ""},
		{"temperature negative", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"temperature":-0.1}`, 400, "invalid_request_error", "temperature", ""},
		{"temperature too small", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"temperature":1e-50}`, 400, "invalid_request_error", "temperature", ""},
		{"top_p too small", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"top_p":1e-50}`, 400, "invalid_request_error", "top_p", ""},
		{"top_p above one", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"top_p":1.5}`, 400, "invalid_request_error", "top_p", ""},
		{"frequency_penalty range", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"frequency_penalty":3}`, 400, "invalid_request_error", "frequency_penalty", ""},
		{"logit_bias", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"logit_bias":{"5":10}}`, 400, "invalid_request_error", "logit_bias", ""},
		{"logit_bias wrong type", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"logit_bias":[1]}`, 400, "invalid_request_error", "logit_bias", ""},
		{"n zero", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"n":0}`, 400, "invalid_request_error", "n", ""},
		{"max_tokens negative", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"max_tokens":-1}`, 400, "invalid_request_error", "max_tokens", ""},
		{"max_completion_tokens zero", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"max_completion_tokens":0}`, 400, "invalid_request_error", "max_completion_tokens", ""},
		{"logprobs wrong type", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"logprobs":1}`, 400, "invalid_request_error", "logprobs", ""},
		{"top_logprobs negative", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"logprobs":true,"top_logprobs":-1}`, 400, "invalid_request_error", "top_logprobs", ""},
		{"stop too long", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"stop":"` + strings.Repeat("x", 257) + `"}`, 400, "invalid_request_error", "stop", ""},
		{"stop empty", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"stop":[""]}`, 400, "invalid_request_error", "stop", ""},
		{"user wrong type", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"user":5}`, 400, "invalid_request_error", "user", ""},
		{"metadata wrong type", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"metadata":{"a":1}}`, 400, "invalid_request_error", "metadata", ""},
		{"store wrong type", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"store":"no"}`, 400, "invalid_request_error", "store", ""},
		{"response_format json", chat, `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"response_format":{"type":"json_object"}}`, 400, "invalid_request_error", "response_format", ""},
		{"completion best_of", comp, `{"model":"stories260K","prompt":"a","best_of":2}`, 400, "invalid_request_error", "best_of", ""},
		{"completion suffix", comp, `{"model":"stories260K","prompt":"a","suffix":"b"}`, 400, "invalid_request_error", "suffix", ""},
		{"completion echo wrong type", comp, `{"model":"stories260K","prompt":"a","echo":"no"}`, 400, "invalid_request_error", "echo", ""},
		{"completion logprobs negative", comp, `{"model":"stories260K","prompt":"a","logprobs":-1}`, 400, "invalid_request_error", "logprobs", ""},
		{"completion empty tokens", comp, `{"model":"stories260K","prompt":[]}`, 400, "invalid_request_error", "prompt", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(t, tc.url, tc.body)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			var e struct {
				Error *struct {
					Message string  `json:"message"`
					Type    string  `json:"type"`
					Param   *string `json:"param"`
					Code    *string `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
				t.Fatalf("not an OpenAI error: %s", body)
			}
			param, code := "", ""
			if e.Error.Param != nil {
				param = *e.Error.Param
			}
			if e.Error.Code != nil {
				code = *e.Error.Code
			}
			if e.Error.Type != tc.typ || param != tc.param || code != tc.code || e.Error.Message == "" || strings.Contains(e.Error.Message, "\n") {
				t.Errorf("error %+v (param %q code %q), want type %q param %q code %q", *e.Error, param, code, tc.typ, tc.param, tc.code)
			}
		})
	}
	if n := b.n.Load(); n != 3 { // only the oversized prompts and the bad token id reach the worker (which refuses them)
		t.Errorf("%d generations started by bad requests", n)
	}
}

func TestReceiptErrors(t *testing.T) {
	ts, _ := newServer(t, nil)
	for _, tc := range []struct {
		id     string
		status int
	}{
		{strings.Repeat("ab", 32), 404},
		{"xyz", 400},
		{strings.Repeat("g", 64), 400},
	} {
		resp, body := get(t, ts.URL+"/v1/receipts/"+tc.id)
		if resp.StatusCode != tc.status || !bytes.Contains(body, []byte(`"error"`)) {
			t.Errorf("%s: %d %s", tc.id, resp.StatusCode, body)
		}
	}
}

func TestModels(t *testing.T) {
	ts, _ := newServer(t, nil)
	info := testWorker(t).Models()[0]
	resp, body := get(t, ts.URL+"/v1/models")
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Verdict struct {
				ModelID           string `json:"model_id"`
				SystemFingerprint string `json:"system_fingerprint"`
				ContextLength     int    `json:"context_length"`
			} `json:"verdict"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if list.Object != "list" || len(list.Data) != 1 || list.Data[0].ID != "stories260K" || list.Data[0].Verdict.ModelID != info.ID.String() || list.Data[0].Verdict.ContextLength != 128 {
		t.Errorf("models: %s", body)
	}
	if list.Data[0].Verdict.SystemFingerprint != inference.Fingerprint(info.ID, engine.SpecVersion) {
		t.Errorf("fingerprint %s", list.Data[0].Verdict.SystemFingerprint)
	}
	for _, name := range []string{"stories260K", info.ID.String()} {
		if resp, body := get(t, ts.URL+"/v1/models/"+name); resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"id":"stories260K"`)) {
			t.Errorf("model %s: %d %s", name, resp.StatusCode, body)
		}
	}
	if resp, _ := get(t, ts.URL+"/v1/models/nope"); resp.StatusCode != 404 {
		t.Errorf("unknown model: %d", resp.StatusCode)
	}
	if resp, body := get(t, ts.URL+"/healthz"); resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"ok"`)) {
		t.Errorf("healthz: %d %s", resp.StatusCode, body)
	}
}

func TestMetrics(t *testing.T) {
	ts, _ := newServer(t, nil)
	post(t, ts.URL+"/v1/completions", `{"model":"stories260K","prompt":"Once","max_tokens":3}`)
	post(t, ts.URL+"/v1/completions", `{"model":"nope","prompt":"Once"}`)
	_, body := get(t, ts.URL+"/metrics")
	for _, want := range []string{
		`verdict_gateway_requests_total{code="200",endpoint="completions"} 1`,
		`verdict_gateway_requests_total{code="404",endpoint="completions"} 1`,
		`verdict_gateway_tokens_total{kind="completion"} 3`,
		`verdict_gateway_receipts_total 1`,
		`verdict_gateway_request_duration_seconds_count{endpoint="completions"} 2`,
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestAuth(t *testing.T) {
	ts, _ := newServer(t, func(o *Options) { o.Auth = StaticKeys{"sk-good": "alice"} })
	body := `{"model":"stories260K","prompt":"Once","max_tokens":2}`
	for _, tc := range []struct {
		hdr    []string
		status int
	}{
		{nil, 401},
		{[]string{"Authorization", "Bearer sk-bad"}, 401},
		{[]string{"Authorization", "sk-good"}, 401},
		{[]string{"Authorization", "Bearer sk-good"}, 200},
	} {
		resp, b := post(t, ts.URL+"/v1/completions", body, tc.hdr...)
		if resp.StatusCode != tc.status {
			t.Errorf("%v: %d %s", tc.hdr, resp.StatusCode, b)
		}
		if tc.status == 401 && !bytes.Contains(b, []byte(`"invalid_api_key"`)) {
			t.Errorf("401 body %s", b)
		}
	}
	if resp, _ := get(t, ts.URL+"/v1/models"); resp.StatusCode != 401 {
		t.Errorf("models without key: %d", resp.StatusCode)
	}
	if resp, _ := get(t, ts.URL+"/healthz"); resp.StatusCode != 200 {
		t.Errorf("healthz needs no key: %d", resp.StatusCode)
	}
}

func TestIdempotency(t *testing.T) {
	ts, b := newServer(t, nil)
	body := `{"model":"stories260K","messages":[{"role":"user","content":"Lily"}],"max_tokens":20,"seed":3}`
	r1, b1 := post(t, ts.URL+"/v1/chat/completions", body, "Idempotency-Key", "k1")
	// Concurrent retries all get the first response.
	var wg sync.WaitGroup
	bodies := make([][]byte, 4)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, bb := post(t, ts.URL+"/v1/chat/completions", body, "Idempotency-Key", "k1")
			if resp.Header.Get("Idempotent-Replayed") != "true" || resp.Header.Get("X-Verdict-Receipt") != r1.Header.Get("X-Verdict-Receipt") {
				t.Errorf("replay headers %v", resp.Header)
			}
			bodies[i] = bb
		}()
	}
	wg.Wait()
	for _, bb := range bodies {
		if !bytes.Equal(bb, b1) {
			t.Errorf("replayed %s\nfirst    %s", bb, b1)
		}
	}
	if n := b.n.Load(); n != 1 {
		t.Errorf("%d generations for one key", n)
	}
	// Same key, other body: refused, nothing run.
	resp, bb := post(t, ts.URL+"/v1/chat/completions", strings.Replace(body, `"seed":3`, `"seed":4`, 1), "Idempotency-Key", "k1")
	if resp.StatusCode != 422 || !bytes.Contains(bb, []byte("idempotency_key_reused")) {
		t.Errorf("reused key: %d %s", resp.StatusCode, bb)
	}
	// A streamed request is replayed too.
	sbody := strings.Replace(body, `"seed":3`, `"seed":3,"stream":true`, 1)
	_, s1 := post(t, ts.URL+"/v1/chat/completions", sbody, "Idempotency-Key", "k2")
	_, s2 := post(t, ts.URL+"/v1/chat/completions", sbody, "Idempotency-Key", "k2")
	if !bytes.Equal(s1, s2) || !bytes.HasSuffix(s1, []byte("data: [DONE]\n\n")) {
		t.Errorf("stream replay differs:\n%s\n%s", s1, s2)
	}
	// A different key runs again: the same text, a receipt of its own
	// (its own nonce), billed again.
	r3, b3 := post(t, ts.URL+"/v1/chat/completions", body, "Idempotency-Key", "k3")
	if c1, c3 := decodeResp(t, b1).Choices[0].Message.Content, decodeResp(t, b3).Choices[0].Message.Content; c1 != c3 {
		t.Errorf("same request, other text: %q / %q", c1, c3)
	}
	if n := b.n.Load(); n != 3 || r3.Header.Get("X-Verdict-Receipt") == r1.Header.Get("X-Verdict-Receipt") {
		t.Errorf("%d generations, receipt %s vs %s", n, r3.Header.Get("X-Verdict-Receipt"), r1.Header.Get("X-Verdict-Receipt"))
	}
}

// failing is a backend whose generations fail with err.
type failing struct {
	Backend
	err error
}

func (f failing) Generate(context.Context, inference.Request, func(inference.Delta) error) (*inference.Result, error) {
	return nil, f.err
}

func TestBackendErrors(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{inference.ErrBusy, 429, `"code":"rate_limit_exceeded"`},
		{fmt.Errorf("wrapped: %w", inference.ErrContextLength), 400, `"code":"context_length_exceeded"`},
		{errors.New("disk on fire"), 500, `"type":"server_error"`},
	} {
		ts, _ := newServer(t, func(o *Options) { o.Backend = failing{o.Backend, tc.err} })
		for _, stream := range []string{"false", "true"} {
			resp, body := post(t, ts.URL+"/v1/chat/completions", `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"stream":`+stream+`}`)
			if resp.StatusCode != tc.status || !bytes.Contains(body, []byte(tc.code)) {
				t.Errorf("%v, stream %s: %d %s", tc.err, stream, resp.StatusCode, body)
			}
		}
	}
}

// A bounded burst of concurrent requests: none is lost, each gets its own
// stored receipt, and repeated Idempotency-Keys never run twice.
func TestBurst(t *testing.T) {
	ts, b := newServer(t, nil)
	const n, par = 60, 8
	type result struct {
		status  int
		receipt string
		dur     time.Duration
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, par)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			// Requests 2k and 2k+1 share an Idempotency-Key and a body.
			body := fmt.Sprintf(`{"model":"stories260K","messages":[{"role":"user","content":"Tom"}],"max_tokens":16,"seed":%d}`, i/2)
			t0 := time.Now()
			resp, rb := post(t, ts.URL+"/v1/chat/completions", body, "Idempotency-Key", fmt.Sprintf("burst-%d", i/2))
			results[i] = result{resp.StatusCode, decodeResp(t, rb).Verdict.ReceiptID, time.Since(t0)}
		}()
	}
	wg.Wait()
	var durs []time.Duration
	seen := map[string]int{}
	for i, r := range results {
		if r.status != 200 || r.receipt == "" {
			t.Fatalf("request %d: status %d", i, r.status)
		}
		seen[r.receipt]++
		durs = append(durs, r.dur)
		if i%2 == 1 && r.receipt != results[i-1].receipt {
			t.Errorf("requests %d and %d share a key but not a receipt", i-1, i)
		}
	}
	if len(seen) != n/2 {
		t.Errorf("%d distinct receipts for %d distinct requests", len(seen), n/2)
	}
	if g := b.n.Load(); g != n/2 {
		t.Errorf("%d generations for %d distinct idempotency keys", g, n/2)
	}
	for id := range seen {
		if resp, _ := get(t, ts.URL+"/v1/receipts/"+id); resp.StatusCode != 200 {
			t.Errorf("receipt %s: %d", id, resp.StatusCode)
		}
	}
	slices.Sort(durs)
	pct := func(p int) time.Duration { return durs[(len(durs)-1)*p/100] }
	t.Logf("%d requests, %d in parallel: p50 %v p95 %v p99 %v max %v", n, par, pct(50), pct(95), pct(99), durs[len(durs)-1])
}

// prepaid is a Meter with a token balance per account, from which it
// holds the most a request can cost until it is charged.
type prepaid struct {
	mu      sync.Mutex
	balance map[string]int
	held    map[string]int
	charges int
}

func (p *prepaid) Reserve(_ context.Context, acct, _ string, prompt, maxNew int) (Reservation, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held == nil {
		p.held = map[string]int{}
	}
	need := prompt + maxNew
	if p.balance[acct]-p.held[acct] < need {
		return nil, fmt.Errorf("account %q has %d, %d held, needs %d: %w", acct, p.balance[acct], p.held[acct], need, ErrInsufficientQuota)
	}
	p.held[acct] += need
	return &prepaidHold{p: p, acct: acct, n: need}, nil
}

type prepaidHold struct {
	p    *prepaid
	acct string
	n    int
}

func (h *prepaidHold) Release() {
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	h.p.held[h.acct] -= h.n
}

func (h *prepaidHold) Charge(_ context.Context, res *inference.Result) error {
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	h.p.held[h.acct] -= h.n
	h.p.balance[h.acct] -= res.PromptTokens + res.CompletionTokens
	h.p.charges++
	return nil
}

func TestMeter(t *testing.T) {
	m := &prepaid{balance: map[string]int{"alice": 30, "bob": 0}}
	ts, _ := newServer(t, func(o *Options) {
		o.Auth = StaticKeys{"sk-a": "alice", "sk-b": "bob"}
		o.Meter = m
	})
	body := `{"model":"stories260K","prompt":"Once upon a time","max_tokens":10}`
	url := ts.URL + "/v1/completions"
	// A retry with the same key is charged once.
	for range 2 {
		if resp, b := post(t, url, body, "Authorization", "Bearer sk-a", "Idempotency-Key", "x"); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
	}
	// A bad request is not charged; nor is a refused one.
	post(t, url, `{"model":"stories260K","prompt":"a","n":3}`, "Authorization", "Bearer sk-a")
	resp, b := post(t, url, body, "Authorization", "Bearer sk-b")
	if resp.StatusCode != 429 || !bytes.Contains(b, []byte(`"insufficient_quota"`)) {
		t.Errorf("empty balance: %d %s", resp.StatusCode, b)
	}
	if m.charges != 1 || m.balance["alice"] != 15 || m.balance["bob"] != 0 {
		t.Errorf("%d charges, balances %v", m.charges, m.balance)
	}
	// A streamed completion is charged at its end.
	if resp, b := post(t, url, strings.Replace(body, "}", `,"stream":true}`, 1), "Authorization", "Bearer sk-a"); resp.StatusCode != 200 || m.charges != 2 || m.balance["alice"] != 0 {
		t.Errorf("stream: %d %s; %d charges, balances %v", resp.StatusCode, b, m.charges, m.balance)
	}
	if resp, _ := post(t, url, body, "Authorization", "Bearer sk-a"); resp.StatusCode != 429 {
		t.Errorf("spent balance: %d", resp.StatusCode)
	}
}
