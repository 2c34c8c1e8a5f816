// Package chat turns an OpenAI-style chat request (messages, tools, template
// arguments) into the prompt a model sees, by rendering the model's Jinja
// chat template (GGUF tokenizer.chat_template) with package jinja, exactly as
// Hugging Face's reference renderer does.
//
// The variables a template sees are those transformers and vLLM pass:
// messages, tools (none when the request has none), add_generation_prompt,
// bos_token and eos_token (the texts of the vocabulary's BOS and EOS
// tokens), and every key of chat_template_kwargs (for example Qwen3's
// enable_thinking) at the top level. See Request for how messages look.
//
// Models without a template get the built-in "plain" template (the message
// contents joined by newlines, as a story model continues them); the
// built-in "llama2" template is Meta's Llama-2 chat format. Both are Jinja
// templates like any other (see Builtin).
//
// The rendered prompt is a list of spans that say which bytes came from the
// template and which from the request (jinja.Span); Prompt.Encode tokenizes
// it so that control tokens are recognised only in template text: a user who
// writes "<|im_start|>" in a message cannot forge a turn. Like llama.cpp,
// when the vocabulary adds BOS by itself (tokenizer.ggml.add_bos_token) and
// the rendered text starts with the BOS text, that text is dropped, so the
// prompt has exactly one BOS.
//
// Rendering is a pure function of the template and the request, and
// Prompt.Digest commits to both (docs/protocol.md, "chat template"), so a
// verifier can re-render a request and compare.
package chat
