package synth

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/verdictnet/verdict/internal/kernels"
	"github.com/verdictnet/verdict/internal/tensor"
)

// AppendRow encodes one row of float32 values as type t and appends it to
// dst. The row length must be a whole number of blocks of t.
func AppendRow(dst []byte, t tensor.Type, x []float32) ([]byte, error) {
	if _, err := tensor.RowBytes(t, len(x)); err != nil {
		return dst, err
	}
	le := binary.LittleEndian
	switch t {
	case tensor.F32:
		for _, v := range x {
			dst = le.AppendUint32(dst, math.Float32bits(v))
		}
	case tensor.F16:
		for _, v := range x {
			dst = le.AppendUint16(dst, kernels.F32ToF16(v))
		}
	case tensor.BF16:
		for _, v := range x {
			dst = le.AppendUint16(dst, kernels.F32ToBF16(v))
		}
	case tensor.Q8_0:
		for i := 0; i < len(x); i += tensor.QK {
			dst = appendQ8_0(dst, x[i:i+tensor.QK])
		}
	case tensor.Q4_0:
		for i := 0; i < len(x); i += tensor.QK {
			dst = appendQ4_0(dst, x[i:i+tensor.QK])
		}
	case tensor.Q4_1, tensor.Q5_1:
		for i := 0; i < len(x); i += tensor.QK {
			dst = appendQ4_1Q5_1(dst, t, x[i:i+tensor.QK])
		}
	case tensor.Q5_0:
		for i := 0; i < len(x); i += tensor.QK {
			dst = appendQ5_0(dst, x[i:i+tensor.QK])
		}
	case tensor.Q4_K, tensor.Q5_K:
		for i := 0; i < len(x); i += tensor.QKK {
			dst = appendQ4_KQ5_K(dst, t, x[i:i+tensor.QKK])
		}
	case tensor.Q6_K:
		for i := 0; i < len(x); i += tensor.QKK {
			dst = appendQ6_K(dst, x[i:i+tensor.QKK])
		}
	default:
		return dst, fmt.Errorf("cannot encode type %s", t)
	}
	return dst, nil
}

// appendQ8_0 follows ggml's quantize_row_q8_0_ref: d = amax/127 stored as
// fp16, q = roundf(x * (1/d)).
func appendQ8_0(dst []byte, x []float32) []byte {
	var amax float32
	for _, v := range x {
		amax = max(amax, abs32(v))
	}
	d := amax / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	dst = binary.LittleEndian.AppendUint16(dst, kernels.F32ToF16(d))
	for _, v := range x {
		p := float32(v * id) // no fused multiply-add
		dst = append(dst, byte(int8(math.Round(float64(p)))))
	}
	return dst
}

// appendQ4_0 follows ggml's quantize_row_q4_0_ref: the value of largest
// magnitude (with its sign) gives d = max / -8; q = min(15, trunc(x/d +
// 8.5)); byte j holds value j in its low nibble and value j+16 in its high
// nibble.
func appendQ4_0(dst []byte, x []float32) []byte {
	var amax, mx float32
	for _, v := range x {
		if amax < abs32(v) {
			amax = abs32(v)
			mx = v
		}
	}
	d := mx / -8
	var id float32
	if d != 0 {
		id = 1 / d
	}
	dst = binary.LittleEndian.AppendUint16(dst, kernels.F32ToF16(d))
	q := func(v float32) byte {
		p := float32(v * id)
		return byte(min(15, int(int8(p+8.5))))
	}
	for j := 0; j < tensor.QK/2; j++ {
		dst = append(dst, q(x[j])|q(x[j+tensor.QK/2])<<4)
	}
	return dst
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }
