// Package model holds a loaded model of architecture llama (Llama 1/2/3.x,
// Mistral, SmolLM2), qwen2 or qwen3: its hyper-parameters, its weight
// tensors (memory-mapped from the model file, or copied into huge pages:
// CopyToHugePages) and its vocabulary.
//
// Load reads either a llama2.c checkpoint (with a separate tokenizer file) or
// a GGUF file, reading every hyper-parameter from the keys llama.cpp reads,
// and checks that every tensor's presence, type and shape agrees with the
// configuration, so that the engine never has to. Anything the engine does
// not compute (another architecture or tensor type, RoPE scaling other than
// frequency factors, mixtures of experts, ...) is refused with one line
// naming it.
package model
