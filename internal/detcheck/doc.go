// Package detcheck holds static checks of the determinism contract
// (docs/determinism.md) that no unit test of the numeric code itself can
// make: that no engine package calls a math function the contract forbids,
// and that the compiled kernels contain no fused multiply-add instruction on
// arm64 or on amd64 built for GOAMD64=v3. It has no code of its own, only
// tests.
package detcheck
