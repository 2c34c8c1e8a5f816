// Package tensor describes weight tensors as they are stored in model files:
// their element type (the GGML type numbers), their shape and their raw bytes.
//
// A Tensor never owns a copy of its data when it was loaded from a file: Data
// aliases the memory map of the model file. Numeric work on tensors lives in
// package kernels; this package only knows layouts and sizes.
package tensor
