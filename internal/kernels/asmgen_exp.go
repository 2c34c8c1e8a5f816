//go:build ignore

package main

// expKernels writes the vectorised Exp32-based kernels (softmax's exp pass,
// SwiGLU). Run with asmgen.go: `go run asmgen.go asmgen_exp.go`.
func expKernels() {}
