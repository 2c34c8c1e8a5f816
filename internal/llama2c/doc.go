// Package llama2c reads the file formats of Andrej Karpathy's llama2.c: model
// checkpoints (the legacy "v0" layout with a 7-integer header, and the "v1"
// layout with the "ak42" magic) and tokenizer files (tokenizer.bin,
// tok512.bin).
//
// Checkpoint weights are never copied: the tensors alias the bytes they were
// parsed from, normally a memory-mapped file. Every size in a header is
// checked against the file before use.
package llama2c
