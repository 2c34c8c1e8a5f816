package engine_test

import (
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/kernels"
	"github.com/verdictnet/verdict/internal/model"
)

// forwardAll runs a prefill of prompt (all logits), then decodes steps
// tokens greedily one at a time, and returns every logit vector.
func forwardAll(tb testing.TB, e *engine.Engine, prompt []int, steps int) [][]float32 {
	tb.Helper()
	seq, err := e.NewSequence(len(prompt) + steps)
	if err != nil {
		tb.Fatal(err)
	}
	it := &engine.Item{Seq: seq, Tokens: prompt, Logits: engine.LogitsAll}
	if err := e.Forward(it); err != nil {
		tb.Fatal(err)
	}
	var all [][]float32
	all = append(all, it.Out...)
	for i := 0; i < steps; i++ {
		last := all[len(all)-1]
		best := 0
		for j, v := range last {
			if v > last[best] {
				best = j
			}
		}
		it.Tokens, it.Logits = []int{best}, engine.LogitsLast
		if err := e.Forward(it); err != nil {
			tb.Fatal(err)
		}
		all = append(all, it.Out[0])
	}
	return all
}

// TestFastEqualsScalar runs whole forward passes (prefill and decode, 1 and
// 2 threads) with the fast kernels and with the scalar reference kernels,
// over every weight type, and requires every logit to have the same bits.
func TestFastEqualsScalar(t *testing.T) {
	if kernels.FastPath == "" {
		t.Skip("no fast path on this CPU/architecture: only the scalar kernels run here")
	}
	defer kernels.UseFast(true)
	cases := []struct{ name, file string }{
		{"f32", "stories260K.gguf"},
		{"f16", "stories260K-F16.gguf"},
		{"q8_0", "stories260K-Q8_0.gguf"},
		{"q4_0", "stories260K-Q4_0.gguf"},
		{"synth-tiny-bf16", "synth:tiny:bf16"},
		{"synth-tiny-q4_0", "synth:tiny:q4_0"},
	}
	prompt := []int{1, 403, 407, 261, 378, 9, 300, 77, 45, 260, 400, 500, 11, 12, 13, 14, 15, 16, 17}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var m *model.Model
			if c.file[:6] == "synth:" {
				var err error
				m, err = model.Load(synthModel(t, c.file), "")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { m.Close() })
			} else {
				m = load(t, c.file, "").m
			}
			p := make([]int, len(prompt))
			for i, tok := range prompt {
				p[i] = tok % m.Config.Vocab
			}
			kernels.UseFast(false)
			want := forwardAll(t, newEngine(t, m, 1), p, 12)
			for _, threads := range []int{1, 2} {
				kernels.UseFast(true)
				got := forwardAll(t, newEngine(t, m, threads), p, 12)
				if err := sameLogits(got, want); err != nil {
					t.Fatalf("%d threads, fast vs scalar: %v", threads, err)
				}
			}
		})
	}
}

func sameLogits(got, want [][]float32) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d logit vectors, want %d", len(got), len(want))
	}
	for i := range got {
		for j := range got[i] {
			if math.Float32bits(got[i][j]) != math.Float32bits(want[i][j]) {
				return fmt.Errorf("position %d logit %d: %#08x, scalar %#08x", i, j, math.Float32bits(got[i][j]), math.Float32bits(want[i][j]))
			}
		}
	}
	return nil
}

// BenchmarkDecode and BenchmarkPrefill time the engine on the shared
// stories260K models (tiny: they measure per-step overheads more than
// bandwidth; `verdict bench` and bench/run.sh time the 15m and 110m shapes).
func BenchmarkDecode(b *testing.B) {
	for _, file := range []string{"stories260K.gguf", "stories260K-Q8_0.gguf"} {
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads=%d", file, threads), func(b *testing.B) {
				m := load(b, file, "").m
				e := newEngine(b, m, threads)
				seq, err := e.NewSequence(0)
				if err != nil {
					b.Fatal(err)
				}
				it := &engine.Item{Seq: seq, Tokens: []int{1}, Logits: engine.LogitsLast}
				for b.Loop() {
					if seq.Pos == seq.Cap() {
						seq.Pos = 0
					}
					if err := e.Forward(it); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
			})
		}
	}
}

func BenchmarkPrefill(b *testing.B) {
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			m := load(b, "stories260K.gguf", "").m
			e := newEngine(b, m, threads)
			toks := make([]int, 64)
			for i := range toks {
				toks[i] = (i*37 + 5) % m.Config.Vocab
			}
			for b.Loop() {
				seq, err := e.NewSequence(len(toks))
				if err != nil {
					b.Fatal(err)
				}
				if err := e.Forward(&engine.Item{Seq: seq, Tokens: toks, Logits: engine.LogitsLast}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(toks)*b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}

// BenchmarkBatchStep times one decode step of a continuous batch: n
// sequences, one token each, in one Forward (the last position's logits of
// every item), on the model file named by VERDICT_BENCH_MODEL (skipped
// without it; e.g. a `verdict model synth --preset 110m --type q8_0` file).
// Each sequence holds a prompt of 17 positions and decodes to 80, over and
// over (the depths of `verdict bench --streams` with its defaults), so
// that a step reads the key/value cache a serving step reads.
// tok/s is n tokens per step; compare it across n for the batch's scaling,
// and kv=f16 (the binary16 cache) with the float32 cache.
// tok/cpu-s divides by the process's CPU time instead (steadier on a shared
// machine; with threads=2 it counts both threads).
func BenchmarkBatchStep(b *testing.B) {
	path := os.Getenv("VERDICT_BENCH_MODEL")
	if path == "" {
		b.Skip("VERDICT_BENCH_MODEL not set")
	}
	m, err := model.Load(path, "")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	for _, threads := range []int{1, 2} {
		for _, n := range []int{1, 2, 4, 8, 16} {
			for _, kv := range []engine.KVType{engine.KVF32, engine.KVF16} {
				name := fmt.Sprintf("threads=%d/n=%d", threads, n)
				if kv != engine.KVF32 {
					name += "/kv=" + kv.String()
				}
				b.Run(name, func(b *testing.B) {
					e, err := engine.New(m, engine.Options{Threads: threads, KV: kv})
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(e.Close)
					const prompt, depth = 17, 80
					items := make([]*engine.Item, n)
					for i := range items {
						seq, err := e.NewSequence(depth)
						if err != nil {
							b.Fatal(err)
						}
						toks := make([]int, prompt)
						for j := range toks {
							toks[j] = 1 + (i*prompt+j)%(m.Config.Vocab-1)
						}
						if err := e.Forward(&engine.Item{Seq: seq, Tokens: toks}); err != nil {
							b.Fatal(err)
						}
						items[i] = &engine.Item{Seq: seq, Tokens: []int{1 + i}, Logits: engine.LogitsLast}
					}
					cpu0 := processCPU()
					for b.Loop() {
						for _, it := range items {
							if it.Seq.Pos == it.Seq.Cap() {
								it.Seq.Pos = prompt
							}
						}
						if err := e.Forward(items...); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tok/s")
					if cpu := processCPU() - cpu0; cpu > 0 {
						b.ReportMetric(float64(n*b.N)/cpu.Seconds(), "tok/cpu-s")
					}
				})
			}
		}
	}
}
