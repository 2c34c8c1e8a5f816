package audit

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/synth"
	"github.com/verdictnet/verdict/internal/tensor"
)

// BenchmarkRefereeLeaf measures the dispute referee's one recomputation,
// which the ledger runs inside FinalizeBlock, for the costliest leaves of
// a 256-token receipt of a synthetic model: a state leaf (output
// projection and feed-forward block of one layer at one position), a
// key/value leaf and an attention leaf at the last position (reading every
// key/value leaf of its layer). Leaf values are arbitrary floats: the cost
// does not depend on them. Run it with
//
//	VERDICT_BENCH_110M=1 [VERDICT_BENCH_PRESET=15m] go test -run XXX -bench RefereeLeaf ./internal/audit
func BenchmarkRefereeLeaf(b *testing.B) {
	if os.Getenv("VERDICT_BENCH_110M") == "" {
		b.Skip("set VERDICT_BENCH_110M=1 to run (writes a synthetic model of up to 440 MB)")
	}
	preset := os.Getenv("VERDICT_BENCH_PRESET")
	if preset == "" {
		preset = "110m"
	}
	path := filepath.Join(b.TempDir(), "m.gguf")
	out, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := synth.Generate(preset, filepath.Join(sharedModels(b), "ggml-vocab-llama-spm.gguf"), 1, tensor.F32, out); err != nil {
		b.Fatal(err)
	}
	out.Close()
	m, err := model.Load(path, "")
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	r := &receipt.Receipt{Prompt: make([]int, 5), Output: make([]int, 252)}
	ref, err := NewReferee(m, r)
	if err != nil {
		b.Fatal(err)
	}
	lay := ref.lay
	p, l := lay.Positions()-1, lay.Layers-1
	for _, c := range []struct {
		name string
		leaf int
	}{{"state", lay.XLeaf(l+1, p)}, {"keyvalue", lay.KVLeaf(l, 0, p)}, {"attention", lay.ALeaf(l, 0, p)}} {
		b.Run(c.name, func(b *testing.B) {
			var ins [][]byte
			for _, i := range ref.Inputs(c.leaf) {
				kind, _, _, _ := lay.Leaf(i)
				n := lay.Dim
				switch kind {
				case 'k':
					n = 2 * lay.HeadDim
				case 'a':
					n = lay.AWidth()
				}
				v := make([]float32, n)
				for j := range v {
					v[j] = float32((i+j)%7-3) / 8
				}
				ins = append(ins, appendF32(nil, v))
			}
			b.ReportMetric(float64(len(ins)), "leaves-read")
			for b.Loop() {
				if _, err := ref.Recompute(c.leaf, ins); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
