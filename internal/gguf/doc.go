// Package gguf reads and writes GGUF model files (versions 2 and 3), the
// format of llama.cpp and ggml.
//
// Open memory-maps a file and Parse reads one held in memory; both check
// every count, length and offset against the file, so a corrupt or lying
// file gives an error, never a panic or a huge allocation. Metadata is kept
// in file order with typed values, and tensor data is never copied: the
// tensors returned by File.Tensor alias the mapped file.
//
// Write produces files llama.cpp accepts (GGUF v3, 32-byte alignment).
package gguf
