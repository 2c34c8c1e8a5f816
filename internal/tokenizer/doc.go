// Package tokenizer turns text into LLaMA token ids and back, bit for bit as
// the reference implementations do, so that a prompt gives the same tokens
// (and hence the same logits) on every machine.
//
// A Vocab (from a llama2.c tokenizer file or a GGUF file's metadata, see
// model.LoadVocab) names one of two flavors:
//
//   - Llama2C reproduces llama2.c run.c's encode: a dummy-prefix " " token
//     when the text is not empty, a lookup of each UTF-8 code point with a
//     fallback to token byte+3 per byte, then repeated merging of the
//     adjacent pair whose concatenated pieces form the best-scoring token
//     (first occurrence on ties, scores must exceed -1e10). BOS takes part in
//     the merges, as in run.c.
//   - SPM reproduces llama.cpp's SentencePiece ("llama") tokenizer:
//     user-defined tokens split the text, spaces become U+2581, a U+2581
//     dummy prefix starts each fragment that begins the text or follows a
//     user-defined token (unless Vocab.NoDummyPrefix), pairs of symbols are
//     merged by score (leftmost on ties), and a symbol that is no piece is
//     emitted as <0xXX> byte tokens (or UNK when the vocabulary lacks one).
//
// Both use a priority queue with lazy deletion, O(n log n) in the text
// length. Decoding follows run.c's decode (Piece, Decode), with a
// StreamDecoder for generation that never splits or drops the bytes of a
// UTF-8 sequence.
package tokenizer
