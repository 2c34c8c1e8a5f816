// Package detmath holds the elementary functions of the Verdict determinism
// specification (docs/determinism.md): exp, SiLU, square root, and the
// float64 log/exp/pow/sin/cos used to build RoPE tables.
//
// Every function here is written with IEEE-754 additions, multiplications,
// divisions, conversions and bit manipulation only, each product rounded
// explicitly with a float32(...) or float64(...) conversion so that no
// compiler may fuse it into a multiply-add. The results are therefore the
// same bits on every CPU and every GOARCH, unlike the standard library's
// math.Exp, math.Sin and friends, which are assembly on some platforms.
package detmath
