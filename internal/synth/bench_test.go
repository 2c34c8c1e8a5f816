package synth

import (
	"testing"

	"github.com/verdictnet/verdict/internal/tensor"
)

func BenchmarkAppendRow(b *testing.B) {
	row := make([]float32, 2048)
	for i := range row {
		row[i] = Uniform(1, "x", uint64(i))
	}
	for _, t := range []tensor.Type{tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q4_0} {
		b.Run(t.String(), func(b *testing.B) {
			var buf []byte
			for i := 0; i < b.N; i++ {
				buf, _ = AppendRow(buf[:0], t, row)
			}
			b.SetBytes(int64(4 * len(row)))
		})
	}
}
