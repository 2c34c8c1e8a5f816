// Package chat turns a list of chat messages into the prompt a model sees.
//
// Two templates exist, chosen from the model's metadata by Detect:
//
//   - Plain, for models without a chat template (such as the TinyStories
//     models): the message contents, in order, joined with one newline, as one
//     segment that starts with BOS. Roles are dropped. A story model thus
//     continues the last message.
//   - Llama2, for GGUFs whose tokenizer.chat_template mentions [INST]: Meta's
//     Llama-2 chat format. Each user turn and the assistant answer after it
//     form one segment "[INST] user [/INST] answer" that starts with BOS and,
//     when answered, ends with EOS; a system message is folded into the first
//     user turn as "<<SYS>>\nsystem\n<</SYS>>\n\n".
//
// Rendering is a pure function of the messages: the same messages always give
// the same segments, so the prompt tokens recorded in a receipt follow from
// the request.
package chat
