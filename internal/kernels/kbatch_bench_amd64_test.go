//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/verdictnet/verdict/internal/tensor"
)

// BenchmarkKBatch times the K types against n = 1 to 128 activation rows
// (the decode steps of a continuous batch, and prefill chunks) on the
// llama3.2-1b shapes: FFN up/gate (8192 x 2048), FFN down (2048 x 8192)
// and attention (2048 x 2048), each cycled over enough copies (beyond the
// L3 cache) that the weights stream from memory, as in a real step. The
// paths: dispatch (what MatMul does), kwt (the kwt tiles for every n, in
// groups of 8 rows and passes of kwtChunkBytes, two whole groups at a time
// in the 16-row tiles), kwt8 (kwt without the 16-row tiles) and kvnni (the kvnni tiles
// for every n >= vnniMinRows, kvnniR = 2). cpu-GMAC/s is the multiply-adds
// (rows x cols x n) per CPU second of the benchmark's thread, cpu-GB/s
// the weight bytes per CPU second (steadier than wall time on a shared
// machine).
func BenchmarkKBatch(b *testing.B) {
	if !hasVNNI || !useVNNI {
		b.Skip("no AVX-512 VNNI")
	}
	r := rand.New(rand.NewPCG(1, 1))
	shapes := []struct {
		name       string
		rows, cols int
	}{{"up", 8192, 2048}, {"down", 2048, 8192}, {"attn", 2048, 2048}}
	for _, typ := range []tensor.Type{tensor.Q4_K, tensor.Q6_K} {
		for _, sh := range shapes {
			copies := max(2, (64<<20)/(sh.rows*sh.cols/tensor.QKK*typ.BlockBytes()))
			ws := make([]*tensor.Tensor, copies)
			for i := range ws {
				ws[i] = weights(r, typ, sh.rows, sh.cols, false)
			}
			for _, n := range []int{1, 2, 4, 8, 16, 17, 24, 32, 48, 64, 128} {
				x := values(r, n*sh.cols, false)
				out := make([]float32, n*sh.rows)
				for _, path := range []string{"dispatch", "kwt", "kwt8", "kvnni"} {
					if path != "dispatch" && n < vnniMinRows || path == "kwt8" && n < 2*kwtP {
						continue
					}
					b.Run(fmt.Sprintf("%s/%s/n=%d/%s", typ, sh.name, n, path), func(b *testing.B) {
						was, was16 := kwtMaxRows, useKWT16
						defer func() { kwtMaxRows, useKWT16 = was, was16 }()
						switch path {
						case "kwt":
							kwtMaxRows = 1 << 30
						case "kwt8":
							kwtMaxRows, useKWT16 = 1<<30, false
						case "kvnni":
							kwtMaxRows = 0
						}
						var a Acts
						a.Prepare(typ, x, n, sh.cols)
						if want := path == "kwt" || path == "kwt8" || path == "dispatch" && n <= was; a.packedKW != want {
							b.Fatalf("packedKW %v, want %v", a.packedKW, want)
						}
						runtime.LockOSThread()
						defer runtime.UnlockOSThread()
						cpu0 := threadCPU()
						i := 0
						for b.Loop() {
							MatMul(ws[i%copies], &a, out, sh.rows, 0, sh.rows)
							i++
						}
						cpu := threadCPU() - cpu0
						b.ReportMetric(float64(sh.rows)*float64(sh.cols)*float64(n)*float64(b.N)/cpu.Seconds()/1e9, "cpu-GMAC/s")
						b.ReportMetric(float64(len(ws[0].Data))*float64(b.N)/cpu.Seconds()/1e9, "cpu-GB/s")
					})
				}
			}
		}
	}
}

// BenchmarkKWTChunk times the kwt path of BenchmarkKBatch (Q4_K, Q6_K; the
// FFN shapes; 64 and 128 activation rows) with passes of 8 to 128
// activation rows (kwtChunkBytes: 8 to 128 rows of 2048 columns, 2 to 32
// of 8192).
func BenchmarkKWTChunk(b *testing.B) {
	if !hasVNNI || !useVNNI {
		b.Skip("no AVX-512 VNNI")
	}
	r := rand.New(rand.NewPCG(1, 1))
	for _, typ := range []tensor.Type{tensor.Q4_K, tensor.Q6_K} {
		for _, sh := range []struct {
			name       string
			rows, cols int
		}{{"up", 8192, 2048}, {"down", 2048, 8192}} {
			copies := max(2, (64<<20)/(sh.rows*sh.cols/tensor.QKK*typ.BlockBytes()))
			ws := make([]*tensor.Tensor, copies)
			for i := range ws {
				ws[i] = weights(r, typ, sh.rows, sh.cols, false)
			}
			for _, n := range []int{64, 128} {
				x := values(r, n*sh.cols, false)
				out := make([]float32, n*sh.rows)
				was := kwtMaxRows
				kwtMaxRows = 1 << 30
				var a Acts
				a.Prepare(typ, x, n, sh.cols)
				kwtMaxRows = was
				for _, kb := range []int{20, 40, 80, 160, 320, 640} {
					b.Run(fmt.Sprintf("%s/%s/n=%d/chunk=%dKB", typ, sh.name, n, kb), func(b *testing.B) {
						was := kwtChunkBytes
						kwtChunkBytes = kb << 10
						defer func() { kwtChunkBytes = was }()
						runtime.LockOSThread()
						defer runtime.UnlockOSThread()
						cpu0 := threadCPU()
						i := 0
						for b.Loop() {
							MatMul(ws[i%copies], &a, out, sh.rows, 0, sh.rows)
							i++
						}
						cpu := threadCPU() - cpu0
						b.ReportMetric(float64(sh.rows)*float64(sh.cols)*float64(n)*float64(b.N)/cpu.Seconds()/1e9, "cpu-GMAC/s")
					})
				}
			}
		}
	}
}
