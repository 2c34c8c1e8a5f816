package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/verdictnet/verdict/internal/chat"
	"github.com/verdictnet/verdict/internal/inference"
)

// Response shapes (OpenAI's).

type chatLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

type chatTokenLogprob struct {
	chatLogprob
	TopLogprobs []chatLogprob `json:"top_logprobs"`
}

type chatLogprobs struct {
	Content []chatTokenLogprob `json:"content"`
}

func bytesOf(b []byte) []int {
	out := make([]int, len(b))
	for i, c := range b {
		out[i] = int(c)
	}
	return out
}

func chatLogprobsOf(ls []inference.TokenLogprob) *chatLogprobs {
	out := &chatLogprobs{Content: []chatTokenLogprob{}}
	for _, l := range ls {
		e := chatTokenLogprob{chatLogprob: chatLogprob{l.Text, l.Logprob, bytesOf(l.Bytes)}, TopLogprobs: []chatLogprob{}}
		for _, a := range l.Top {
			e.TopLogprobs = append(e.TopLogprobs, chatLogprob{a.Text, a.Logprob, bytesOf(a.Bytes)})
		}
		out.Content = append(out.Content, e)
	}
	return out
}

type completionLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float64            `json:"token_logprobs"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

// completionLogprobsOf builds the legacy logprobs object; offset is the
// text length before the first token.
func completionLogprobsOf(ls []inference.TokenLogprob, offset int) *completionLogprobs {
	out := &completionLogprobs{Tokens: []string{}, TokenLogprobs: []float64{}, TopLogprobs: []map[string]float64{}, TextOffset: []int{}}
	for _, l := range ls {
		out.Tokens = append(out.Tokens, l.Text)
		out.TokenLogprobs = append(out.TokenLogprobs, l.Logprob)
		top := map[string]float64{}
		for _, a := range l.Top {
			if _, dup := top[a.Text]; !dup {
				top[a.Text] = a.Logprob
			}
		}
		out.TopLogprobs = append(out.TopLogprobs, top)
		out.TextOffset = append(out.TextOffset, offset)
		offset += len(l.Bytes)
	}
	return out
}

type chatMessageOut struct {
	Role             string        `json:"role,omitempty"`
	Content          *string       `json:"content,omitempty"`
	ReasoningContent *string       `json:"reasoning_content,omitempty"`
	ToolCalls        []toolCallOut `json:"tool_calls,omitempty"`
	Refusal          *string       `json:"refusal"`
}

type toolCallOut struct {
	Index    *int   `json:"index,omitempty"` // in stream deltas
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// toolCallsOut turns parsed calls into OpenAI's shape; streamed ones carry
// their index.
func toolCallsOut(calls []chat.ParsedCall, streamed bool) []toolCallOut {
	out := make([]toolCallOut, len(calls))
	for i, c := range calls {
		out[i].ID, out[i].Type = newID("call_"), "function"
		out[i].Function.Name, out[i].Function.Arguments = c.Name, c.Arguments
		if streamed {
			out[i].Index = &i
		}
	}
	return out
}

// FinishToolCalls is the finish reason of an answer that calls tools.
const FinishToolCalls = "tool_calls"

func strOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

type chatChoice struct {
	Index        int             `json:"index"`
	Message      *chatMessageOut `json:"message,omitempty"`
	Delta        *chatMessageOut `json:"delta,omitempty"`
	Logprobs     *chatLogprobs   `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

type chatResponse struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	SystemFingerprint string       `json:"system_fingerprint"`
	Choices           []chatChoice `json:"choices"`
	Usage             *usage       `json:"usage,omitempty"`
	Verdict           *verdictInfo `json:"verdict,omitempty"`
}

type completionChoice struct {
	Text         string              `json:"text"`
	Index        int                 `json:"index"`
	Logprobs     *completionLogprobs `json:"logprobs"`
	FinishReason *string             `json:"finish_reason"`
}

type completionResponse struct {
	ID                string             `json:"id"`
	Object            string             `json:"object"`
	Created           int64              `json:"created"`
	Model             string             `json:"model"`
	SystemFingerprint string             `json:"system_fingerprint"`
	Choices           []completionChoice `json:"choices"`
	Usage             *usage             `json:"usage,omitempty"`
	Verdict           *verdictInfo       `json:"verdict,omitempty"`
}

// sse writes server-sent events.
type sse struct {
	w       http.ResponseWriter
	started bool
}

func (s *sse) start(trailer bool) {
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	if trailer {
		h.Set("Trailer", "X-Verdict-Receipt")
		if h.Get(HeaderPaymentResponse) != "" {
			// x402: the settlement (escrow) went out as a header; its
			// final form (receipt id, upto's amount) follows as a trailer.
			h.Add("Trailer", HeaderPaymentResponse)
		}
	}
	s.w.WriteHeader(http.StatusOK)
	s.started = true
}

func (s *sse) send(v any) error {
	var buf bytes.Buffer
	buf.WriteString("data: ")
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	buf.WriteString("\n")
	return s.write(buf.Bytes())
}

// write sends b and flushes it, within StreamWriteTimeout. The events are
// written by the generation's own goroutine (its OnToken): a client that
// keeps its connection open but stops reading (a zero TCP window) made
// that write block for good, and the generation with it, holding its
// batch slot and key/value cache and slowing every step of the batch
// while it paid for nothing. Its write now fails after the timeout, which
// ends the generation as a hang-up does (charged for what it generated).
func (s *sse) write(b []byte) error {
	rc := http.NewResponseController(s.w)
	// A writer without deadlines (a test's recorder) writes as before.
	_ = rc.SetWriteDeadline(time.Now().Add(StreamWriteTimeout))
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("stream: %w", err)
	}
	return nil
}

// StreamWriteTimeout bounds each write of a streamed answer: a client
// that reads none of it for this long is cut off.
var StreamWriteTimeout = 30 * time.Second

// close clears the write deadline that write set: net/http sets none
// of its own (no WriteTimeout), and the next request on a kept-alive
// connection would find this one's.
func (s *sse) close() {
	_ = http.NewResponseController(s.w).SetWriteDeadline(time.Time{})
}

func (s *sse) done() {
	_ = s.write([]byte("data: [DONE]\n\n"))
}

// fail reports an error: as an error response before the stream started,
// as an error event after.
func (s *sse) fail(e *apiError) {
	if !s.started {
		writeError(s.w, e)
		return
	}
	s.send(struct {
		Error *apiError `json:"error"`
	}{e})
}

// validUTF8 replaces invalid bytes so that JSON keeps the text stable.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return string(bytes.ToValidUTF8([]byte(s), []byte("\uFFFD")))
}

// chat serves POST /v1/chat/completions. It reports whether a complete
// response was sent.
func (s *Server) chat(w http.ResponseWriter, r *http.Request, acct string, body []byte) bool {
	t0 := time.Now()
	var req chatRequest
	if aerr := decode(body, &req); aerr != nil {
		writeError(w, aerr)
		return true
	}
	if req.Model == "" {
		writeError(w, invalid("model", "", "you must provide a model parameter"))
		return true
	}
	info, aerr := s.findModel(req.Model)
	if aerr != nil {
		writeError(w, aerr)
		return true
	}
	wreq, aerr := req.toWorker(info.Template)
	if aerr != nil {
		writeError(w, aerr)
		return aerr.Status < 500 && aerr.Status != http.StatusTooManyRequests
	}
	id, created := newID("chatcmpl-"), s.o.Now().Unix()
	base := chatResponse{ID: id, Created: created, Model: info.Name, SystemFingerprint: info.Fingerprint}
	// Reasoning and tool calls are read from the answer as the template
	// teaches them (tool calls only when the request offered tools).
	outFormat, tools := info.Template.OutputFormat(), len(req.Tools) > 0 && !req.toolChoiceNone()
	parser := chat.NewOutputParser(outFormat, tools)
	if !req.Stream {
		res, err := s.Generate(r.Context(), acct, wreq, nil)
		if err != nil {
			writeError(w, backendError(err, "messages"))
			return !isCancel(err)
		}
		resp := base
		resp.Object = "chat.completion"
		text := validUTF8(res.Text)
		msg := &chatMessageOut{Role: "assistant", Content: &text}
		finish := res.FinishReason
		if parser.Active() {
			content, reasoning, calls := chat.ParseOutput(outFormat, tools, text)
			msg.Content, msg.ReasoningContent = &content, strOrNil(reasoning)
			if len(calls) > 0 {
				msg.ToolCalls = toolCallsOut(calls, false)
				msg.Content = strOrNil(content)
				finish = FinishToolCalls
			}
		}
		ch := chatChoice{Message: msg, FinishReason: &finish}
		if wreq.Logprobs {
			ch.Logprobs = chatLogprobsOf(res.Logprobs)
		}
		resp.Choices = []chatChoice{ch}
		resp.Usage = usageOf(res)
		resp.Verdict = verdictOf(res)
		w.Header().Set("X-Verdict-Receipt", res.ReceiptID)
		writeJSON(w, http.StatusOK, resp)
		return true
	}
	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	st := &sse{w: w}
	defer st.close()
	chunk := func(ch chatChoice) chatResponse {
		c := base
		c.Object = "chat.completion.chunk"
		c.Choices = []chatChoice{ch}
		return c
	}
	first := true
	res, err := s.Generate(r.Context(), acct, wreq, func(d inference.Delta) error {
		if first {
			// The first chunk opens the stream with the role.
			first = false
			s.m.ttft.Observe(time.Since(t0).Seconds())
			st.start(true)
			empty := ""
			if err := st.send(chunk(chatChoice{Delta: &chatMessageOut{Role: "assistant", Content: &empty}})); err != nil {
				return err
			}
		}
		text := validUTF8(d.Text)
		delta := &chatMessageOut{Content: &text}
		if parser.Active() {
			pd := parser.Push(text)
			delta = &chatMessageOut{Content: strOrNil(pd.Content), ReasoningContent: strOrNil(pd.Reasoning)}
			if delta.Content == nil && delta.ReasoningContent == nil && !wreq.Logprobs {
				return nil // held back: maybe the start of a tool call
			}
		}
		ch := chatChoice{Delta: delta}
		if wreq.Logprobs {
			ch.Logprobs = chatLogprobsOf(d.Logprobs)
		}
		return st.send(chunk(ch))
	})
	if err != nil {
		st.fail(backendError(err, "messages"))
		return !st.started && !isCancel(err)
	}
	if !st.started {
		st.start(true)
		empty := ""
		st.send(chunk(chatChoice{Delta: &chatMessageOut{Role: "assistant", Content: &empty}}))
	}
	finish := res.FinishReason
	if parser.Active() {
		pd, calls := parser.Finish()
		if pd.Content != "" || pd.Reasoning != "" {
			st.send(chunk(chatChoice{Delta: &chatMessageOut{Content: strOrNil(pd.Content), ReasoningContent: strOrNil(pd.Reasoning)}}))
		}
		if len(calls) > 0 {
			st.send(chunk(chatChoice{Delta: &chatMessageOut{ToolCalls: toolCallsOut(calls, true)}}))
			finish = FinishToolCalls
		}
	}
	last := chunk(chatChoice{Delta: &chatMessageOut{}, FinishReason: &finish})
	last.Verdict = verdictOf(res)
	st.send(last)
	if includeUsage {
		u := base
		u.Object = "chat.completion.chunk"
		u.Choices = []chatChoice{}
		u.Usage = usageOf(res)
		u.Verdict = verdictOf(res)
		st.send(u)
	}
	st.done()
	w.Header().Set("X-Verdict-Receipt", res.ReceiptID) // the trailer
	return true
}

// completions serves POST /v1/completions.
func (s *Server) completions(w http.ResponseWriter, r *http.Request, acct string, body []byte) bool {
	t0 := time.Now()
	var req completionRequest
	if aerr := decode(body, &req); aerr != nil {
		writeError(w, aerr)
		return true
	}
	if req.Model == "" {
		writeError(w, invalid("model", "", "you must provide a model parameter"))
		return true
	}
	info, aerr := s.findModel(req.Model)
	if aerr != nil {
		writeError(w, aerr)
		return true
	}
	wreq, aerr := req.toWorker()
	if aerr != nil {
		writeError(w, aerr)
		return aerr.Status < 500 && aerr.Status != http.StatusTooManyRequests
	}
	id, created := newID("cmpl-"), s.o.Now().Unix()
	base := completionResponse{ID: id, Object: "text_completion", Created: created, Model: info.Name, SystemFingerprint: info.Fingerprint}
	if !req.Stream {
		res, err := s.Generate(r.Context(), acct, wreq, nil)
		if err != nil {
			writeError(w, backendError(err, "prompt"))
			return !isCancel(err)
		}
		resp := base
		ch := completionChoice{Text: validUTF8(res.Text), FinishReason: &res.FinishReason}
		if wreq.Logprobs {
			ch.Logprobs = completionLogprobsOf(res.Logprobs, 0)
		}
		resp.Choices = []completionChoice{ch}
		resp.Usage = usageOf(res)
		resp.Verdict = verdictOf(res)
		w.Header().Set("X-Verdict-Receipt", res.ReceiptID)
		writeJSON(w, http.StatusOK, resp)
		return true
	}
	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	st := &sse{w: w}
	defer st.close()
	offset := 0
	res, err := s.Generate(r.Context(), acct, wreq, func(d inference.Delta) error {
		if !st.started {
			s.m.ttft.Observe(time.Since(t0).Seconds())
			st.start(true)
		}
		c := base
		ch := completionChoice{Text: validUTF8(d.Text)}
		if wreq.Logprobs {
			ch.Logprobs = completionLogprobsOf(d.Logprobs, offset)
			for _, l := range d.Logprobs {
				offset += len(l.Bytes)
			}
		}
		c.Choices = []completionChoice{ch}
		return st.send(c)
	})
	if err != nil {
		st.fail(backendError(err, "prompt"))
		return !st.started && !isCancel(err)
	}
	if !st.started {
		st.start(true)
	}
	last := base
	last.Choices = []completionChoice{{FinishReason: &res.FinishReason}}
	last.Verdict = verdictOf(res)
	st.send(last)
	if includeUsage {
		u := base
		u.Choices = []completionChoice{}
		u.Usage = usageOf(res)
		u.Verdict = verdictOf(res)
		st.send(u)
	}
	st.done()
	w.Header().Set("X-Verdict-Receipt", res.ReceiptID)
	return true
}
