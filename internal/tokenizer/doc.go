// Package tokenizer turns text into token ids and back, bit for bit as the
// reference implementations do, so that a prompt gives the same tokens
// (and hence the same logits) on every machine. docs/tokenizers.md is the
// full specification.
//
// A Vocab (from a llama2.c tokenizer file or a GGUF file's metadata, see
// model.LoadVocab) names one of three flavors:
//
//   - Llama2C reproduces llama2.c run.c's encode: a dummy-prefix " " token
//     when the text is not empty, a lookup of each UTF-8 code point with a
//     fallback to token byte+3 per byte, then repeated merging of the
//     adjacent pair whose concatenated pieces form the best-scoring token
//     (first occurrence on ties, scores must exceed -1e10). BOS takes part in
//     the merges, as in run.c.
//   - SPM reproduces llama.cpp's SentencePiece ("llama") tokenizer:
//     special tokens split the text, spaces become U+2581, a U+2581
//     dummy prefix starts each fragment that begins the text or follows a
//     special token (unless Vocab.NoDummyPrefix), pairs of symbols are
//     merged by score (leftmost on ties), and a symbol that is no piece is
//     emitted as <0xXX> byte tokens (or UNK when the vocabulary lacks one).
//   - BPE reproduces llama.cpp's byte-level BPE ("gpt2") tokenizer: special
//     tokens split the text, a pre-tokenizer named by Vocab.Pre cuts each
//     fragment into words, each word's bytes become GPT-2's printable
//     characters, and adjacent symbols are merged by the rank of their
//     pair in Vocab.Merges (lowest rank, then leftmost).
//
// The pre-tokenizers are hand-written scanners, one per family of
// llama.cpp's pattern lists, rather than regular expressions: the patterns
// use look-ahead (\s+(?!\S)), which Go's regexp (RE2) lacks, and llama.cpp
// itself does not run most of them as written. It runs its own
// hand-written splitters for the GPT-2, Llama 3 and Qwen 2 patterns, whose
// results differ from the regular expressions in corner cases (each piece
// of the previous split ends the text, for instance), and std::regex over
// a text where each non-ASCII code point is collapsed to one byte naming
// its category for the others. The scanners reproduce that behaviour
// exactly, with Go's Unicode tables (patched to Unicode 15.1, which
// llama.cpp uses), and are checked against llama.cpp itself.
//
// Special tokens (control, user-defined, unknown) are recognised by their
// text as llama.cpp does: Encode finds user-defined tokens only,
// EncodeSpecial all of them, and EncodeSpans only inside spans a chat
// template wrote (Span.Special), so that text a user sent cannot forge a
// control token. IsEOG and EOG give the tokens generation stops at.
//
// Merging uses a priority queue with lazy deletion, O(n log n) in the
// text length. Decoding follows llama.cpp's token_to_piece without special
// tokens (and run.c's decode for Llama2C), with a StreamDecoder for
// generation that never splits or drops the bytes of a UTF-8 sequence.
package tokenizer
