package tensor

import (
	"strings"
	"testing"
)

// TestTypeSizes pins the block sizes and bytes of every type to GGML's
// (ggml-common.h: block_q4_1 {d, m, qs[16]} = 20 bytes, block_q5_0 {d,
// qh[4], qs[16]} = 22, block_q5_1 {d, m, qh[4], qs[16]} = 24, block_q4_K
// {d, dmin, scales[12], qs[128]} = 144, block_q5_K {d, dmin, scales[12],
// qh[32], qs[128]} = 176, block_q6_K {ql[128], qh[64], scales[16], d} =
// 210).
func TestTypeSizes(t *testing.T) {
	for _, c := range []struct {
		t            Type
		name         string
		block, bytes int
	}{
		{F32, "F32", 1, 4}, {F16, "F16", 1, 2}, {BF16, "BF16", 1, 2}, {Q8_0, "Q8_0", 32, 34}, {Q4_0, "Q4_0", 32, 18},
		{Q4_1, "Q4_1", 32, 20}, {Q5_0, "Q5_0", 32, 22}, {Q5_1, "Q5_1", 32, 24},
		{Q4_K, "Q4_K", 256, 144}, {Q5_K, "Q5_K", 256, 176}, {Q6_K, "Q6_K", 256, 210},
	} {
		if c.t.String() != c.name || c.t.BlockSize() != c.block || c.t.BlockBytes() != c.bytes || !c.t.Known() {
			t.Errorf("%d: %s block %d bytes %d known %v, want %s %d %d", uint32(c.t), c.t, c.t.BlockSize(), c.t.BlockBytes(), c.t.Known(), c.name, c.block, c.bytes)
		}
		if c.t.SuperBlock() != (c.block == 256) || c.t.Quantized() != (c.block > 1) {
			t.Errorf("%s: SuperBlock %v Quantized %v", c.t, c.t.SuperBlock(), c.t.Quantized())
		}
	}
	for _, bad := range []Type{9, 10, 11, 15, 99} {
		if bad.Known() {
			t.Errorf("type %d is known", uint32(bad))
		}
	}
}

// TestCheck: data of the wrong length (truncated or too long) and rows that
// are not whole blocks are refused with one line.
func TestCheck(t *testing.T) {
	for _, c := range []struct {
		t    Tensor
		want string
	}{
		{Tensor{Name: "a", Type: Q4_K, Dims: []int{512, 2}, Data: make([]byte, 4*144)}, ""},
		{Tensor{Name: "a", Type: Q4_K, Dims: []int{512, 2}, Data: make([]byte, 4*144-1)}, "575 bytes of data"},
		{Tensor{Name: "a", Type: Q6_K, Dims: []int{256, 3}, Data: make([]byte, 3*210+1)}, "631 bytes of data"},
		{Tensor{Name: "a", Type: Q5_K, Dims: []int{288, 1}, Data: make([]byte, 176)}, "not a whole number of 256-element blocks"},
		{Tensor{Name: "a", Type: Q5_0, Dims: []int{64, 2}, Data: make([]byte, 4*22)}, ""},
		{Tensor{Name: "a", Type: Q5_1, Dims: []int{48, 2}, Data: make([]byte, 4*24)}, "not a whole number of 32-element blocks"},
		{Tensor{Name: "a", Type: Q4_1, Dims: []int{32, 2}, Data: make([]byte, 20)}, "20 bytes of data"},
	} {
		err := c.t.Check()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n")) {
			t.Errorf("%s %v with %d bytes: error %v, want %q", c.t.Type, c.t.Dims, len(c.t.Data), err, c.want)
		}
	}
}
