// Package model holds a loaded LLaMA-family model: its hyper-parameters, its
// weight tensors (memory-mapped from the model file) and its vocabulary.
//
// Load reads either a llama2.c checkpoint (with a separate tokenizer file) or
// a GGUF file, and checks that every shape agrees with the configuration, so
// that the engine never has to.
package model
