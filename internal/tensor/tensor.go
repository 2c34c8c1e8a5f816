package tensor

import (
	"fmt"
	"math"
)

// Type is a tensor element type, numbered as in GGML/GGUF.
type Type uint32

// The element types Verdict can compute with.
const (
	F32  Type = 0
	F16  Type = 1
	Q4_0 Type = 2
	Q4_1 Type = 3
	Q5_0 Type = 6
	Q5_1 Type = 7
	Q8_0 Type = 8
	Q4_K Type = 12
	Q5_K Type = 13
	Q6_K Type = 14
	BF16 Type = 30
)

// QK is the number of weights in one block of Q8_0, Q4_0, Q4_1, Q5_0 and
// Q5_1.
const QK = 32

// QKK is the number of weights in one super-block of the K types (Q4_K,
// Q5_K, Q6_K).
const QKK = 256

func (t Type) String() string {
	switch t {
	case F32:
		return "F32"
	case F16:
		return "F16"
	case Q4_0:
		return "Q4_0"
	case Q8_0:
		return "Q8_0"
	case BF16:
		return "BF16"
	case Q4_1:
		return "Q4_1"
	case Q5_0:
		return "Q5_0"
	case Q5_1:
		return "Q5_1"
	case Q4_K:
		return "Q4_K"
	case Q5_K:
		return "Q5_K"
	case Q6_K:
		return "Q6_K"
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// Known reports whether Verdict can compute with tensors of this type.
func (t Type) Known() bool {
	switch t {
	case F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, BF16:
		return true
	}
	return false
}

// Types lists every type Verdict can compute with, in GGML id order.
var Types = []Type{F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, BF16}

// Quantized reports whether t is a block-quantised type, whose matrix
// products use quantised activations (docs/determinism.md 4.2).
func (t Type) Quantized() bool { return t.Known() && t.BlockSize() > 1 }

// SuperBlock reports whether t is one of the K types, whose activations are
// quantised per 256-element super-block (Q8K) rather than per 32-element
// block (Q8).
func (t Type) SuperBlock() bool { return t == Q4_K || t == Q5_K || t == Q6_K }

// BlockSize is the number of elements in one storage block.
func (t Type) BlockSize() int {
	switch t {
	case Q4_0, Q4_1, Q5_0, Q5_1, Q8_0:
		return QK
	case Q4_K, Q5_K, Q6_K:
		return QKK
	}
	return 1
}

// BlockBytes is the number of bytes one storage block takes.
func (t Type) BlockBytes() int {
	switch t {
	case F32:
		return 4
	case F16, BF16:
		return 2
	case Q8_0:
		return 2 + QK // f16 scale, 32 int8
	case Q4_0:
		return 2 + QK/2 // f16 scale, 32 nibbles
	case Q4_1:
		return 4 + QK/2 // f16 scale and min, 32 nibbles
	case Q5_0:
		return 2 + 4 + QK/2 // f16 scale, 32 high bits, 32 nibbles
	case Q5_1:
		return 4 + 4 + QK/2 // f16 scale and min, 32 high bits, 32 nibbles
	case Q4_K:
		return 4 + 12 + QKK/2 // f16 d and dmin, 8 6-bit scales and mins, 256 nibbles
	case Q5_K:
		return 4 + 12 + QKK/8 + QKK/2 // as Q4_K plus 256 high bits
	case Q6_K:
		return QKK/2 + QKK/4 + QKK/16 + 2 // low nibbles, high 2 bits, 16 int8 scales, f16 d
	}
	return 0
}

// RowBytes returns the storage size of n elements of type t, or an error when
// n is not a whole number of blocks or the type is unknown.
func RowBytes(t Type, n int) (int, error) {
	if !t.Known() {
		return 0, fmt.Errorf("unknown tensor type %d", uint32(t))
	}
	bs := t.BlockSize()
	if n < 0 || n%bs != 0 {
		return 0, fmt.Errorf("%s row of %d elements is not a whole number of %d-element blocks", t, n, bs)
	}
	return n / bs * t.BlockBytes(), nil
}

// Tensor is a named, typed, shaped block of weights.
//
// Dims are in GGML order: Dims[0] is the length of a row (the contiguous
// dimension), Dims[1] the number of rows. A matrix W with Dims {n, m} maps an
// n-vector to an m-vector: out[i] = dot(row i, x).
type Tensor struct {
	Name string
	Type Type
	Dims []int
	Data []byte
}

// Cols is the length of one row (Dims[0]).
func (t *Tensor) Cols() int {
	if len(t.Dims) == 0 {
		return 1
	}
	return t.Dims[0]
}

// Rows is the number of rows (the product of Dims[1:]).
func (t *Tensor) Rows() int {
	r := 1
	for _, d := range t.Dims[1:] {
		r *= d
	}
	return r
}

// Elements is the total number of elements.
func (t *Tensor) Elements() int { return t.Cols() * t.Rows() }

// RowSize is the number of bytes one row takes.
func (t *Tensor) RowSize() int {
	n, _ := RowBytes(t.Type, t.Cols())
	return n
}

// Row returns the raw bytes of row i.
func (t *Tensor) Row(i int) []byte {
	rs := t.RowSize()
	return t.Data[i*rs : (i+1)*rs]
}

// Check verifies that the tensor's data length matches its type and shape.
func (t *Tensor) Check() error {
	if len(t.Dims) == 0 {
		return fmt.Errorf("tensor %s: no dimensions", t.Name)
	}
	for _, d := range t.Dims {
		if d <= 0 {
			return fmt.Errorf("tensor %s: dimension %d is not positive", t.Name, d)
		}
	}
	rs, err := RowBytes(t.Type, t.Cols())
	if err != nil {
		return fmt.Errorf("tensor %s: %w", t.Name, err)
	}
	rows := t.Rows()
	if rows > 0 && rs > math.MaxInt/rows {
		return fmt.Errorf("tensor %s: size overflows", t.Name)
	}
	if want := rs * rows; len(t.Data) != want {
		return fmt.Errorf("tensor %s: %d bytes of data, shape %v of %s needs %d", t.Name, len(t.Data), t.Dims, t.Type, want)
	}
	return nil
}

// ShapeIs reports whether the tensor has exactly the given GGML-order dims.
func (t *Tensor) ShapeIs(dims ...int) bool {
	if len(t.Dims) != len(dims) {
		return false
	}
	for i := range dims {
		if t.Dims[i] != dims[i] {
			return false
		}
	}
	return true
}
