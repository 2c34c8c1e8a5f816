package kernels

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/tensor"
)

// BenchmarkMatMul times one weight matrix of the 110m shape (768 x 2048)
// against 1 (decode) and 64 (prefill) activation rows, fast and reference.
// The reported GB/s is weight bytes read per second.
func BenchmarkMatMul(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const rows, cols = 2048, 768
	for _, typ := range []tensor.Type{tensor.F32, tensor.F16, tensor.Q8_0, tensor.Q4_0} {
		w := weights(r, typ, rows, cols, false)
		for _, n := range []int{1, 64} {
			x := values(r, n*cols, false)
			var a Acts
			a.Prepare(typ, x, n, cols)
			out := make([]float32, n*rows)
			for _, fast := range []bool{true, false} {
				if fast && FastPath == "" {
					continue
				}
				name := fmt.Sprintf("%s/n=%d/fast=%v", typ, n, fast)
				b.Run(name, func(b *testing.B) {
					for b.Loop() {
						if !fast || !fastMatMul(w, &a, out, rows, 0, rows) {
							MatMulRef(w, &a, out, rows, 0, rows)
						}
					}
					b.ReportMetric(float64(len(w.Data))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
					b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
				})
			}
		}
	}
}

func BenchmarkDot64(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	x, y := values(r, 64, false), values(r, 64, false)
	var s float32
	for b.Loop() {
		s += Dot(x, y)
	}
	_ = s
}

// BenchmarkMatVecDRAM streams a 32000 x 768 float32 matrix (98 MB, larger
// than the caches) against one vector: the decode bandwidth of the kernel.
func BenchmarkMatVecDRAM(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const rows, cols = 32000, 768
	w := weights(r, tensor.F32, rows, cols, false)
	x := values(r, cols, false)
	var a Acts
	a.Prepare(tensor.F32, x, 1, cols)
	out := make([]float32, rows)
	b.SetBytes(int64(len(w.Data)))
	for b.Loop() {
		MatMul(w, &a, out, rows, 0, rows)
	}
}

// BenchmarkPrefillF32 times the float32 prefill tiles (110m shape, 64
// activation rows) with the AVX2 and, where the CPU has them, the AVX-512F
// tiles.
func BenchmarkPrefillF32(b *testing.B) {
	if FastPath == "" {
		b.Skip("no fast path on this CPU")
	}
	r := rand.New(rand.NewPCG(1, 1))
	const rows, cols, n = 2048, 768, 64
	w := weights(r, tensor.F32, rows, cols, false)
	x := values(r, n*cols, false)
	var a Acts
	a.Prepare(tensor.F32, x, n, cols)
	out := make([]float32, n*rows)
	was := setAVX512(false)
	defer setAVX512(was)
	for _, z := range []bool{false, true} {
		if z && !hasAVX512 {
			continue
		}
		setAVX512(z)
		name := "avx2"
		if z {
			name = "avx512"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				MatMul(w, &a, out, rows, 0, rows)
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkMatVecK times decode (one activation row) on the llama3.2-1b FFN
// shape, 2048 x 8192, for the K types and, for comparison, Q8_0 and Q4_0:
// six copies of the matrix are cycled (over 50 MB, beyond the L3 cache), so
// the weights stream from memory as in a real decode step. threads=2 splits
// the rows between two goroutines, as the engine does. GB/s is weight bytes
// read per second.
func BenchmarkMatVecK(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const rows, cols, copies = 8192, 2048, 6
	for _, typ := range []tensor.Type{tensor.Q4_K, tensor.Q5_K, tensor.Q6_K, tensor.Q8_0, tensor.Q4_0, tensor.Q4_1, tensor.Q5_0, tensor.Q5_1} {
		ws := make([]*tensor.Tensor, copies)
		for i := range ws {
			ws[i] = weights(r, typ, rows, cols, false)
		}
		var a Acts
		a.Prepare(typ, values(r, cols, false), 1, cols)
		out := make([]float32, rows)
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads=%d", typ, threads), func(b *testing.B) {
				i := 0
				for b.Loop() {
					w := ws[i%copies]
					i++
					matMulHalves(w, &a, out, rows, threads)
				}
				b.ReportMetric(float64(len(ws[0].Data))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
		}
	}
}

// BenchmarkPrefillK times prefill (64 activation rows) on a 2048 x 2048
// matrix of each K type, fast and reference.
func BenchmarkPrefillK(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const rows, cols, n = 2048, 2048, 64
	for _, typ := range []tensor.Type{tensor.Q4_K, tensor.Q5_K, tensor.Q6_K, tensor.Q8_0} {
		w := weights(r, typ, rows, cols, false)
		var a Acts
		a.Prepare(typ, values(r, n*cols, false), n, cols)
		out := make([]float32, n*rows)
		for _, fast := range []bool{true, false} {
			if fast && FastPath == "" || !fast && typ == tensor.Q8_0 {
				continue
			}
			b.Run(fmt.Sprintf("%s/fast=%v", typ, fast), func(b *testing.B) {
				for b.Loop() {
					if !fast || !fastMatMul(w, &a, out, rows, 0, rows) {
						MatMulRef(w, &a, out, rows, 0, rows)
					}
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			})
		}
	}
}

// BenchmarkMatMulSmallN times the few-row case of continuous batching: a
// 3072 x 768 matrix (the 110m FFN, L2-resident) against n = 1..16
// activation rows. ns/row is the time per activation row: with each weight
// block read once for all n rows it falls as n grows.
func BenchmarkMatMulSmallN(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const rows, cols = 3072, 768
	for _, typ := range []tensor.Type{tensor.Q8_0, tensor.Q4_0, tensor.Q5_0, tensor.Q4_K, tensor.Q6_K} {
		w := weights(r, typ, rows, cols, false)
		for _, n := range []int{1, 2, 3, 4, 8, 16} {
			x := values(r, n*cols, false)
			out := make([]float32, n*rows)
			b.Run(fmt.Sprintf("%s/n=%d", typ, n), func(b *testing.B) {
				var a Acts
				a.Prepare(typ, x, n, cols)
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				cpu0 := threadCPU()
				for b.Loop() {
					MatMul(w, &a, out, rows, 0, rows)
				}
				cpu := threadCPU() - cpu0
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/row")
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// BenchmarkMatMulSmallNDRAM is BenchmarkMatMulSmallN with the weights
// streaming from memory, as in a decode step of a real model: four copies
// of an 8192 x 2048 matrix (the llama3.2-1b FFN shape) are cycled. cpu-GB/s
// is weight bytes per CPU second of the benchmark's thread.
func BenchmarkMatMulSmallNDRAM(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const rows, cols, copies = 8192, 2048, 4
	for _, typ := range []tensor.Type{tensor.Q8_0, tensor.Q4_0, tensor.Q5_0, tensor.Q4_K, tensor.Q5_K, tensor.Q6_K} {
		ws := make([]*tensor.Tensor, copies)
		for i := range ws {
			ws[i] = weights(r, typ, rows, cols, false)
		}
		for _, n := range []int{1, 2, 4, 8, 16} {
			x := values(r, n*cols, false)
			out := make([]float32, n*rows)
			b.Run(fmt.Sprintf("%s/n=%d", typ, n), func(b *testing.B) {
				var a Acts
				a.Prepare(typ, x, n, cols)
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				cpu0 := threadCPU()
				i := 0
				for b.Loop() {
					MatMul(ws[i%copies], &a, out, rows, 0, rows)
					i++
				}
				cpu := threadCPU() - cpu0
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
				b.ReportMetric(float64(len(ws[0].Data))*float64(b.N)/cpu.Seconds()/1e9, "cpu-GB/s")
			})
		}
	}
}

// matMulHalves runs MatMul over the rows of w on one thread, or on two
// (the first half on the helper, halfHelper), for the streaming
// benchmarks.
func matMulHalves(w *tensor.Tensor, a *Acts, out []float32, rows, threads int) {
	if threads == 1 {
		MatMul(w, a, out, rows, 0, rows)
		return
	}
	halfOnce.Do(func() {
		half = &halfHelper{wake: make(chan struct{})}
		go half.run()
	})
	half.give(w, a, out, rows)
	MatMul(w, a, out, rows, rows/2, rows)
	for half.state.Load() != halfDone {
	}
	half.state.Store(halfIdle)
}

// halfHelper is the second thread of matMulHalves: a goroutine that polls
// for its half, as the engine's pool threads poll through a forward pass.
// A goroutine started for each call (or woken through a channel) began
// its half up to half a millisecond late on the 2-core virtual machine of
// 2026-12-05, 0.5 ms of a 1.5 ms 16-row product, and made two threads look
// little faster than one. It polls while the calls come; after idleFor
// without one it sleeps until the next.
type halfHelper struct {
	state atomic.Int32 // halfIdle, halfGiven, halfDone or halfAsleep
	wake  chan struct{}
	w     *tensor.Tensor
	a     *Acts
	out   []float32
	rows  int
}

const (
	halfIdle = iota
	halfGiven
	halfDone
	halfAsleep
)

const idleFor = 50 * time.Millisecond

var (
	halfOnce sync.Once
	half     *halfHelper
)

// give hands the helper the first half of a product, waking it if it
// sleeps.
func (h *halfHelper) give(w *tensor.Tensor, a *Acts, out []float32, rows int) {
	h.w, h.a, h.out, h.rows = w, a, out, rows
	for {
		if h.state.CompareAndSwap(halfIdle, halfGiven) {
			return
		}
		if h.state.CompareAndSwap(halfAsleep, halfGiven) {
			h.wake <- struct{}{}
			return
		}
	}
}

func (h *halfHelper) run() {
	runtime.LockOSThread()
	last := time.Now()
	for i := 0; ; i++ {
		if h.state.Load() == halfGiven {
			MatMul(h.w, h.a, h.out, h.rows, 0, h.rows/2)
			h.state.Store(halfDone)
			last = time.Now()
			continue
		}
		if i&1023 == 0 && time.Since(last) > idleFor && h.state.CompareAndSwap(halfIdle, halfAsleep) {
			<-h.wake
			last = time.Now()
		}
	}
}

// BenchmarkF32Batch times float32 weights against a few activation rows
// (n = 2..32: the decode step of a continuous batch, a short prefill
// chunk) on the 110m shapes 768 x 768 (attention), 2048 x 768 (FFN up)
// and 768 x 2048 (FFN down),
// with the weights streaming from memory as in a real step: copies of the
// matrix, over 32 MB in all (beyond the L3 cache), are cycled. threads=2
// splits the rows between two goroutines (matMulHalves). GB/s is weight
// bytes per second, GMAC/s multiply-add pairs per second (both wall
// clock); cpu-GB/s (one thread) is weight bytes per CPU second of the
// benchmark's thread, steadier on a shared machine.
func BenchmarkF32Batch(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const total = 40 << 20
	for _, sh := range [][2]int{{768, 768}, {2048, 768}, {768, 2048}} {
		rows, cols := sh[0], sh[1]
		bytes := rows * cols * 4
		ws := make([]*tensor.Tensor, (total+bytes-1)/bytes)
		for i := range ws {
			ws[i] = weights(r, tensor.F32, rows, cols, false)
		}
		for _, n := range []int{2, 4, 8, 16, 32} {
			x := values(r, n*cols, false)
			var a Acts
			a.Prepare(tensor.F32, x, n, cols)
			out := make([]float32, n*rows)
			for _, threads := range []int{1, 2} {
				b.Run(fmt.Sprintf("%dx%d/n=%d/threads=%d", rows, cols, n, threads), func(b *testing.B) {
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					cpu0 := threadCPU()
					i := 0
					for b.Loop() {
						matMulHalves(ws[i%len(ws)], &a, out, rows, threads)
						i++
					}
					cpu := threadCPU() - cpu0
					sec := b.Elapsed().Seconds()
					b.ReportMetric(float64(bytes)*float64(b.N)/sec/1e9, "GB/s")
					b.ReportMetric(float64(rows*cols*n)*float64(b.N)/sec/1e9, "GMAC/s")
					if threads == 1 {
						b.ReportMetric(float64(bytes)*float64(b.N)/cpu.Seconds()/1e9, "cpu-GB/s")
						b.ReportMetric(float64(rows*cols*n)*float64(b.N)/cpu.Seconds()/1e9, "cpu-GMAC/s")
					}
				})
			}
		}
	}
}

// BenchmarkF32BatchCached is BenchmarkF32Batch's n = 16 on one thread with
// a 96 x 768 matrix (288 KB) that stays in the L2 cache: the arithmetic
// ceiling of the tiles, without the memory stream.
func BenchmarkF32BatchCached(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const rows, cols, n = 96, 768, 16
	w := weights(r, tensor.F32, rows, cols, false)
	x := values(r, n*cols, false)
	var a Acts
	a.Prepare(tensor.F32, x, n, cols)
	out := make([]float32, n*rows)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0 := threadCPU()
	for b.Loop() {
		MatMul(w, &a, out, rows, 0, rows)
	}
	cpu := threadCPU() - cpu0
	b.ReportMetric(float64(rows*cols*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
	b.ReportMetric(float64(rows*cols*n)*float64(b.N)/cpu.Seconds()/1e9, "cpu-GMAC/s")
}

// benchCycled times MatMul of the weights ws, taken in turn (copies that
// together exceed the caches, so that they stream from memory), against
// the n rows of a, on one locked thread, and reports multiply-adds per
// CPU second of that thread.
func benchCycled(b *testing.B, ws []*tensor.Tensor, a *Acts, out []float32, rows, cols, n int) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0 := threadCPU()
	i := 0
	for b.Loop() {
		MatMul(ws[i%len(ws)], a, out, rows, 0, rows)
		i++
	}
	cpu := threadCPU() - cpu0
	b.ReportMetric(float64(rows*cols*n)*float64(b.N)/cpu.Seconds()/1e9, "cpu-GMAC/s")
}

// BenchmarkPrepareTypes times the activation preparation of a decode
// batch on the 110m shapes (the Q, K and V products' input, 768 columns
// for three Q8_0 matrices; the down product's, 2048), one thread: the
// quantisation and whatever packing the fast paths make for these rows.
func BenchmarkPrepareTypes(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 3))
	for _, cols := range []int{768, 2048} {
		for _, n := range []int{1, 16, 32, 64} {
			x := values(r, n*cols, false)
			ts := []tensor.Type{tensor.Q8_0, tensor.Q8_0, tensor.Q8_0}
			b.Run(fmt.Sprintf("cols=%d/n=%d", cols, n), func(b *testing.B) {
				var a Acts
				for b.Loop() {
					a.PrepareTypes(ts, x, n, cols, nil)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/row")
			})
		}
	}
}

// BenchmarkQ8RowsDRAM times a Q8_0 product of a few activation rows (a
// decode batch of 1 to 16 sequences) with the weights streaming from
// memory: six 8192 x 2048 matrices (100 MB, beyond what the L3 cache
// keeps) cycled, on one thread and split between two (matMulHalves). GB/s
// is weight bytes per second of wall clock: the rate a decode step of that
// many sequences reads its weights at.
func BenchmarkQ8RowsDRAM(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const rows, cols = q8DRAMRows, q8DRAMCols
	ws := q8DRAMCopies(r)
	for _, threads := range []int{1, 2} {
		for _, n := range []int{1, 2, 4, 6, 8, 16} {
			x := values(r, n*cols, false)
			out := make([]float32, n*rows)
			b.Run(fmt.Sprintf("threads=%d/n=%d", threads, n), func(b *testing.B) {
				var a Acts
				a.Prepare(tensor.Q8_0, x, n, cols)
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				i := 0
				for b.Loop() {
					matMulHalves(ws[i%len(ws)], &a, out, rows, threads)
					i++
				}
				b.ReportMetric(float64(len(ws[0].Data))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
		}
	}
}

// The Q8_0 matrices the decode benchmarks stream from memory: six of 8192
// x 2048 (100 MB, beyond what the L3 cache keeps), cycled.
const q8DRAMRows, q8DRAMCols = 8192, 2048

func q8DRAMCopies(r *rand.Rand) []*tensor.Tensor {
	ws := make([]*tensor.Tensor, 6)
	for i := range ws {
		ws[i] = weights(r, tensor.Q8_0, q8DRAMRows, q8DRAMCols, false)
	}
	return ws
}
