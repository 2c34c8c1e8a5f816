// Package fused is a control for the fused multiply-add detector: Go fuses
// this expression on arm64 and on amd64 with GOAMD64=v3.
package fused

//go:noinline
func MulAdd(x, y, z float32) float32 { return x*y + z }
