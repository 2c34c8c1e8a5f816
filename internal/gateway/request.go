package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/verdictnet/verdict/internal/chat"
	"github.com/verdictnet/verdict/internal/inference"
	"github.com/verdictnet/verdict/internal/sampler"
)

// Limits on requests.
const (
	MaxStops       = 4
	MaxStopLen     = 256
	MaxMessages    = 1024
	MaxCompletionN = 5 // completions logprobs, as OpenAI
)

// fieldError is a decoding error naming the field at fault.
type fieldError struct {
	field string
	msg   string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

// stopField is OpenAI's stop: null, a string or an array of strings.
type stopField []string

func (s *stopField) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*s = nil
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var one string
		if err := json.Unmarshal(b, &one); err != nil {
			return &fieldError{"stop", "not a string"}
		}
		*s = stopField{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return &fieldError{"stop", "must be a string or an array of strings"}
	}
	*s = many
	return nil
}

// promptField is the completions prompt: a string, an array holding one
// string, or an array of token ids.
type promptField struct {
	text   *string
	tokens []int
}

func (p *promptField) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return &fieldError{"prompt", "not a string"}
		}
		p.text = &s
		return nil
	}
	var strs []string
	if err := json.Unmarshal(b, &strs); err == nil {
		if len(strs) != 1 {
			return &fieldError{"prompt", fmt.Sprintf("an array of %d prompts; exactly one is supported", len(strs))}
		}
		p.text = &strs[0]
		return nil
	}
	var toks []int
	if err := json.Unmarshal(b, &toks); err == nil {
		if len(toks) == 0 {
			return &fieldError{"prompt", "empty token array"}
		}
		p.tokens = toks
		return nil
	}
	return &fieldError{"prompt", "must be a string, an array of one string or an array of token ids"}
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// responseFormat is OpenAI's response_format: only {"type":"text"} (what
// every request gets) is supported.
type responseFormat struct {
	Type string `json:"type"`
}

// common holds the fields chat and completions share.
type common struct {
	Model            string             `json:"model"`
	MaxTokens        *int               `json:"max_tokens"`
	Temperature      *float64           `json:"temperature"`
	TopP             *float64           `json:"top_p"`
	Seed             *int64             `json:"seed"`
	N                *int               `json:"n"`
	Stop             stopField          `json:"stop"`
	Stream           bool               `json:"stream"`
	StreamOptions    *streamOptions     `json:"stream_options"`
	FrequencyPenalty *float64           `json:"frequency_penalty"`
	PresencePenalty  *float64           `json:"presence_penalty"`
	LogitBias        map[string]float64 `json:"logit_bias"`
	// TopK is an extension (as llama.cpp and vLLM): keep the k most
	// likely tokens; 0 or absent: no cut.
	TopK *int `json:"top_k"`
	// Accepted and checked for their type, otherwise unused.
	User     *string           `json:"user"`
	Metadata map[string]string `json:"metadata"`
	Store    *bool             `json:"store"`
	// ResponseFormat other than text is refused.
	ResponseFormat *responseFormat `json:"response_format"`
}

type chatRequest struct {
	common
	Messages            []chat.Message    `json:"messages"`
	MaxCompletionTokens *int              `json:"max_completion_tokens"`
	Logprobs            *bool             `json:"logprobs"`
	TopLogprobs         *int              `json:"top_logprobs"`
	Tools               []json.RawMessage `json:"tools"`
	ToolChoice          json.RawMessage   `json:"tool_choice"`
	// chat_template_kwargs and add_generation_prompt as vLLM accepts
	// them; add_generation_prompt defaults to true.
	ChatTemplateKwargs  json.RawMessage `json:"chat_template_kwargs"`
	AddGenerationPrompt *bool           `json:"add_generation_prompt"`
}

type completionRequest struct {
	common
	Prompt   *promptField `json:"prompt"`
	Logprobs *int         `json:"logprobs"`
	Echo     bool         `json:"echo"`
	Suffix   *string      `json:"suffix"`
	BestOf   *int         `json:"best_of"`
}

// decode parses a JSON object body into v, mapping decoding failures to
// API errors that name the field at fault.
func decode(body []byte, v any) *apiError {
	b := bytes.TrimSpace(body)
	if len(b) == 0 || b[0] != '{' {
		return invalid("", "", "the request body must be a JSON object")
	}
	// JSON decoding would replace invalid UTF-8 silently: a prompt must
	// be exactly what the caller sent.
	if !utf8.Valid(b) {
		return invalid("", "", "the request body is not valid UTF-8 (byte %d)", invalidUTF8At(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		var fe *fieldError
		var ce *chat.FieldError
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &fe):
			return invalid(fe.field, "", "invalid %s", fe.Error())
		case errors.As(err, &ce):
			return invalid(ce.Field, "", "invalid %s", ce.Error())
		case errors.As(err, &te):
			f := strings.TrimPrefix(te.Field, "common.")
			if f == "" {
				f = "body"
			}
			return invalid(f, "", "invalid type for %s: expected %s, got JSON %s", f, te.Type, te.Value)
		case errors.As(err, &se):
			return invalid("", "", "malformed JSON at byte %d: %v", se.Offset, err)
		}
		return invalid("", "", "malformed JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF { // dec.More is false before a '}' or ']'
		return invalid("", "", "malformed JSON: data after the request object")
	}
	return nil
}

// invalidUTF8At returns the offset of the first invalid UTF-8 byte.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// sampling validates the shared fields and fills the worker request.
func (c *common) sampling(req *inference.Request) *apiError {
	if c.Model == "" {
		return invalid("model", "", "you must provide a model parameter")
	}
	if c.N != nil && *c.N != 1 {
		return invalid("n", "", "n = %d is not supported: only n = 1", *c.N)
	}
	if c.MaxTokens != nil && *c.MaxTokens < 1 {
		return invalid("max_tokens", "", "max_tokens must be at least 1, got %d", *c.MaxTokens)
	}
	if c.TopK != nil && *c.TopK < 0 {
		return invalid("top_k", "", "top_k must be at least 0 (0: no cut), got %d", *c.TopK)
	}
	if c.ResponseFormat != nil && c.ResponseFormat.Type != "text" {
		return invalid("response_format", "", "response_format %q is not supported: only {\"type\":\"text\"}", trunc(c.ResponseFormat.Type, 40))
	}
	temp, topP := 1.0, 1.0
	if c.Temperature != nil {
		temp = *c.Temperature
		if !(temp >= 0 && temp <= 2) {
			return invalid("temperature", "", "temperature must be in [0, 2], got %v", temp)
		}
	}
	if c.TopP != nil {
		topP = *c.TopP
		if !(topP > 0 && topP <= 1) {
			return invalid("top_p", "", "top_p must be in (0, 1], got %v", topP)
		}
	}
	for _, f := range []struct {
		name string
		v    *float64
	}{{"frequency_penalty", c.FrequencyPenalty}, {"presence_penalty", c.PresencePenalty}} {
		if f.v != nil && !(*f.v >= -2 && *f.v <= 2) {
			return invalid(f.name, "", "%s must be in [-2, 2], got %v", f.name, *f.v)
		}
		if f.v != nil && *f.v != 0 {
			return invalid(f.name, "", "%s is not supported (it is not part of the verifiable sampling rule); send 0 or omit it", f.name)
		}
	}
	if len(c.LogitBias) > 0 {
		return invalid("logit_bias", "", "logit_bias is not supported (it is not part of the verifiable sampling rule)")
	}
	if len(c.Stop) > MaxStops {
		return invalid("stop", "", "at most %d stop sequences, got %d", MaxStops, len(c.Stop))
	}
	for i, s := range c.Stop {
		if s == "" || len(s) > MaxStopLen {
			return invalid("stop", "", "stop[%d] must have 1 to %d bytes, it has %d", i, MaxStopLen, len(s))
		}
	}
	if c.StreamOptions != nil && !c.Stream {
		return invalid("stream_options", "", "stream_options is only allowed when stream is true")
	}
	var seed uint64
	if c.Seed != nil {
		seed = uint64(*c.Seed)
	}
	p := sampler.Params{Temperature: float32(temp), Seed: seed}
	if c.TopK != nil {
		p.TopK = *c.TopK
	}
	if topP < 1 {
		p.TopP = float32(topP)
	}
	if temp > 0 && p.Temperature == 0 {
		return invalid("temperature", "", "temperature %v is too small", temp)
	}
	if topP < 1 && p.TopP == 0 { // TopP 0 is no cut at all
		return invalid("top_p", "", "top_p %v is too small", topP)
	}
	req.Model = c.Model
	req.Sampler = p
	req.Stop = c.Stop
	if c.MaxTokens != nil {
		req.MaxTokens = *c.MaxTokens
	}
	return nil
}

// toWorker validates a chat request and renders its prompt; tmpl is the
// chat template of the requested model.
func (c *chatRequest) toWorker(tmpl *chat.Template) (inference.Request, *apiError) {
	var req inference.Request
	if err := c.sampling(&req); err != nil {
		return req, err
	}
	if c.MaxCompletionTokens != nil {
		if *c.MaxCompletionTokens < 1 {
			return req, invalid("max_completion_tokens", "", "max_completion_tokens must be at least 1, got %d", *c.MaxCompletionTokens)
		}
		req.MaxTokens = *c.MaxCompletionTokens
	}
	if c.TopLogprobs != nil {
		if c.Logprobs == nil || !*c.Logprobs {
			return req, invalid("top_logprobs", "", "top_logprobs needs logprobs set to true")
		}
		if *c.TopLogprobs < 0 || *c.TopLogprobs > inference.MaxTopLogprobs {
			return req, invalid("top_logprobs", "", "top_logprobs must be in [0, %d], got %d", inference.MaxTopLogprobs, *c.TopLogprobs)
		}
		req.TopLogprobs = *c.TopLogprobs
	}
	req.Logprobs = c.Logprobs != nil && *c.Logprobs
	if len(c.Messages) == 0 {
		return req, invalid("messages", "", "messages must be a non-empty array")
	}
	if len(c.Messages) > MaxMessages {
		return req, invalid("messages", "", "at most %d messages, got %d", MaxMessages, len(c.Messages))
	}
	if aerr := checkToolChoice(c.ToolChoice); aerr != nil {
		return req, aerr
	}
	for i, m := range c.Messages {
		if !m.HasContent && (m.Role != chat.RoleAssistant || len(m.ToolCalls) == 0) {
			return req, invalid(fmt.Sprintf("messages[%d].content", i), "", "messages[%d].content is missing or null: give a string or an array of text parts (only an assistant message with tool_calls may omit it)", i)
		}
	}
	creq := chat.Request{Messages: c.Messages, Tools: c.Tools, AddGenerationPrompt: true, Kwargs: c.ChatTemplateKwargs}
	if c.AddGenerationPrompt != nil {
		creq.AddGenerationPrompt = *c.AddGenerationPrompt
	}
	p, err := tmpl.Render(&creq)
	if err != nil {
		param := "messages"
		var fe *chat.FieldError
		if errors.As(err, &fe) {
			param, _, _ = strings.Cut(fe.Field, "[")
		}
		// One line, whatever a template's exception says.
		return req, invalid(param, "", "%s", strings.Join(strings.Fields(err.Error()), " "))
	}
	req.Chat = p
	return req, nil
}

// toolChoiceNone reports tool_choice "none": the answer is not read for
// tool calls.
func (c *chatRequest) toolChoiceNone() bool {
	var s string
	return json.Unmarshal(c.ToolChoice, &s) == nil && s == "none"
}

// checkToolChoice accepts OpenAI's tool_choice "auto" and "none" (the
// tools are shown to the model either way, as vLLM does); forcing a call
// ("required" or a named function) needs constrained decoding, which is
// not part of the verifiable sampling rule.
func checkToolChoice(raw json.RawMessage) *apiError {
	b := bytes.TrimSpace(raw)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil && (s == "auto" || s == "none") {
		return nil
	}
	return invalid("tool_choice", "", "tool_choice %s is not supported: only \"auto\" and \"none\" (forcing a tool call needs constrained decoding)", b)
}

// toWorker validates a completions request and builds the generation.
func (c *completionRequest) toWorker() (inference.Request, *apiError) {
	var req inference.Request
	if err := c.sampling(&req); err != nil {
		return req, err
	}
	if c.Prompt == nil {
		return req, invalid("prompt", "", "you must provide a prompt")
	}
	if c.Echo {
		return req, invalid("echo", "", "echo is not supported")
	}
	if c.Suffix != nil && *c.Suffix != "" {
		return req, invalid("suffix", "", "suffix is not supported")
	}
	if c.BestOf != nil && *c.BestOf != 1 {
		return req, invalid("best_of", "", "best_of = %d is not supported: only 1", *c.BestOf)
	}
	if c.Logprobs != nil {
		if *c.Logprobs < 0 || *c.Logprobs > MaxCompletionN {
			return req, invalid("logprobs", "", "logprobs must be in [0, %d], got %d", MaxCompletionN, *c.Logprobs)
		}
		req.Logprobs, req.TopLogprobs = true, *c.Logprobs
	}
	if c.Prompt.text != nil {
		req.Segments = []chat.Segment{{Text: *c.Prompt.text, BOS: true}}
	} else {
		req.Tokens = c.Prompt.tokens
	}
	return req, nil
}
