package gguf

import (
	"fmt"

	"github.com/verdictnet/verdict/internal/tensor"
)

// typeInfo describes the storage of one GGML tensor type.
type typeInfo struct {
	name       string
	blockSize  int // elements per block
	blockBytes int // bytes per block
}

// ggmlTypes lists the GGML tensor types whose storage size is known, so that
// files holding types Verdict cannot compute with can still be inspected and
// bounds-checked. Numbers and sizes follow ggml.c's type_traits table.
var ggmlTypes = map[tensor.Type]typeInfo{
	0:  {"F32", 1, 4},
	1:  {"F16", 1, 2},
	2:  {"Q4_0", 32, 18},
	3:  {"Q4_1", 32, 20},
	6:  {"Q5_0", 32, 22},
	7:  {"Q5_1", 32, 24},
	8:  {"Q8_0", 32, 34},
	9:  {"Q8_1", 32, 36},
	10: {"Q2_K", 256, 84},
	11: {"Q3_K", 256, 110},
	12: {"Q4_K", 256, 144},
	13: {"Q5_K", 256, 176},
	14: {"Q6_K", 256, 210},
	15: {"Q8_K", 256, 292},
	16: {"IQ2_XXS", 256, 66},
	17: {"IQ2_XS", 256, 74},
	18: {"IQ3_XXS", 256, 98},
	19: {"IQ1_S", 256, 50},
	20: {"IQ4_NL", 32, 18},
	21: {"IQ3_S", 256, 110},
	22: {"IQ2_S", 256, 82},
	23: {"IQ4_XS", 256, 136},
	24: {"I8", 1, 1},
	25: {"I16", 1, 2},
	26: {"I32", 1, 4},
	27: {"I64", 1, 8},
	28: {"F64", 1, 8},
	29: {"IQ1_M", 256, 56},
	30: {"BF16", 1, 2},
	34: {"TQ1_0", 256, 54},
	35: {"TQ2_0", 256, 66},
}

// TypeName returns the GGML name of a tensor type ("Q4_K"), or "type(N)"
// when the type is not known.
func TypeName(t tensor.Type) string {
	if ti, ok := ggmlTypes[t]; ok {
		return ti.name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// TypeSize returns the number of bytes a tensor of type t with the given
// GGML-order dims occupies. It fails for unknown types, rows that are not a
// whole number of blocks, non-positive dims and sizes that overflow.
func TypeSize(t tensor.Type, dims []int) (int64, error) {
	ti, ok := ggmlTypes[t]
	if !ok {
		return 0, fmt.Errorf("unknown tensor type %d", uint32(t))
	}
	if len(dims) == 0 {
		return 0, fmt.Errorf("no dimensions")
	}
	for _, d := range dims {
		if d <= 0 {
			return 0, fmt.Errorf("dimension %d is not positive", d)
		}
	}
	if dims[0]%ti.blockSize != 0 {
		return 0, fmt.Errorf("%s row of %d elements is not a whole number of %d-element blocks", ti.name, dims[0], ti.blockSize)
	}
	const limit = int64(1) << 50
	size := int64(dims[0]/ti.blockSize) * int64(ti.blockBytes)
	for _, d := range dims[1:] {
		if size > limit/int64(d) {
			return 0, fmt.Errorf("tensor size overflows")
		}
		size *= int64(d)
	}
	if size > limit {
		return 0, fmt.Errorf("tensor size overflows")
	}
	return size, nil
}
