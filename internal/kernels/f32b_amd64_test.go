//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/verdictnet/verdict/internal/tensor"
)

// TestF32BatchTiles calls every prefetching float32 tile (f32ZB6x{P}L{L})
// directly on every tail length, with row strides longer than the rows and
// prefetch cursors that point inside, before and far past the weights
// (a prefetch never faults), against DotRef: in one call, and in calls on
// column slices (each a multiple of 16 long but the last) that carry the
// raw accumulators in memory (modes f32bStore, f32bLoad), where only the
// last call may write, and only the 6 x P sums at out[j*ld+i] (a random
// stride ld >= 6); and all that again with the calls starting 8 elements
// into the rows, the first 8 peeled (f32bPeel).
func TestF32BatchTiles(t *testing.T) {
	needFast(t)
	if !hasAVX512 {
		t.Skip("no AVX-512F")
	}
	r := rand.New(rand.NewPCG(7, 8))
	const R = 6
	for li := range tilesZB {
		for P, fn := range tilesZB[li] {
			if fn == nil {
				continue
			}
			for _, n := range []int{1, 5, 15, 16, 17, 31, 32, 33, 48, 63, 100} {
				for _, special := range []bool{false, true} {
					ws, xs := n+r.IntN(5), n+r.IntN(5)
					w := values(r, R*ws, special)
					x := values(r, P*xs, special)
					for _, v := range []int{0, 1, 2, 3} {
						split, peel := v&1 != 0, v&2 != 0
						// peel: the calls start 8 elements in (f32bPeel
						// takes the first 8).
						off := 0
						if peel {
							if n < 8 {
								continue
							}
							off = 8
						}
						// Slice boundaries: multiples of 16 inside (off, n).
						cuts := []int{off}
						for c := off + 16; split && c < n; c += 16 {
							if r.IntN(2) == 0 {
								cuts = append(cuts, c)
							}
						}
						if split && len(cuts) == 1 {
							continue
						}
						cuts = append(cuts, n)
						// Sum (i, j) goes to buf[pad+j*ld+i]; every other
						// element of buf must keep its sentinel.
						const pad, sentinel = 32, -7
						ld := R + r.IntN(5)
						buf := make([]float32, pad+P*ld+pad)
						acc := make([]float32, 24*16+16)
						for k := range acc {
							acc[k] = float32(math.NaN())
						}
						for c := 0; c+1 < len(cuts); c++ {
							mode := 0
							if c > 0 {
								mode |= f32bLoad
							} else if peel {
								mode |= f32bPeel
							}
							if c+2 < len(cuts) {
								mode |= f32bStore
							}
							for k := range buf {
								buf[k] = sentinel
							}
							c0, c1 := cuts[c], cuts[c+1]
							pf := uintptr(unsafe.Pointer(&w[0])) + uintptr(r.IntN(1<<20)) - 1<<19
							fn(&w[c0], ws, &x[c0], xs, c1-c0, &buf[pad], ld, pf, 64*r.IntN(7), &acc[0], mode)
							if acc[24*16] == acc[24*16] {
								t.Fatalf("tile 6x%dL%d: wrote past the accumulators", P, f32bL[li])
							}
							for k, v := range buf {
								k0 := k - pad
								if mode&f32bStore == 0 && k0 >= 0 && k0/ld < P && k0%ld < R {
									continue
								}
								if v != sentinel {
									t.Fatalf("tile 6x%dL%d n=%d ld=%d cuts %v: call %d (mode %d) wrote buf[%d] (out[%d])", P, f32bL[li], n, ld, cuts, c, mode, k, k0)
								}
							}
						}
						for i := 0; i < R; i++ {
							for j := 0; j < P; j++ {
								want := DotRef(w[i*ws:i*ws+n], x[j*xs:j*xs+n])
								if got := buf[pad+j*ld+i]; !same(got, want) {
									t.Fatalf("tile 6x%dL%d n=%d special=%v peel=%v cuts %v: sum (%d,%d) = %g (%#08x), DotRef %g (%#08x)",
										P, f32bL[li], n, special, peel, cuts, i, j, got, math.Float32bits(got), want, math.Float32bits(want))
								}
							}
						}
					}
				}
			}
		}
	}
}

// TestF32BatchMatMul runs float32 (and F16) matrices against 2 to 40
// activation rows, with row ranges that end inside a weight block, through
// the fast path, against MatMulRef: every tile shape and every edge of
// matF32Batch's blocks, prefetch cursors and activation chunks.
func TestF32BatchMatMul(t *testing.T) {
	needFast(t)
	prefillPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, typ := range []tensor.Type{tensor.F32, tensor.F16} {
			for _, cols := range []int{8, 16, 33, 64, 100, 768, 1025, 1040, 2048, 3000} {
				for _, n := range []int{2, 4, 6, 8, 11, 16, 17, 24, 32, 33, 40} {
					t.Run(fmt.Sprintf("%s/cols=%d/n=%d", typ, cols, n), func(t *testing.T) {
						checkMatMul(t, r, typ, 1+r.IntN(40), cols, n, r.IntN(4) == 0)
					})
				}
			}
		}
	})
}

// TestF32BatchMisaligned is TestF32BatchMatMul with the weights 32 bytes
// past a cache line (as in a GGUF file aligned to 32 bytes), where
// matF32Batch peels the first 8 elements of each row and runs against
// activation rows copied to the same offset (by Prepare, or, for Acts
// without that copy, by matF32Batch).
func TestF32BatchMisaligned(t *testing.T) {
	needFast(t)
	if !hasAVX512 || prefillTiles != &tilesZ || !useF32B {
		t.Skip("no AVX-512F batch path")
	}
	r := rand.New(rand.NewPCG(5, 6))
	for _, cols := range []int{16, 32, 48, 768, 1024, 1040, 2048, 3008, 4096} {
		for _, n := range []int{2, 4, 5, 8, 16, 17, 32, 40} {
			for _, special := range []bool{false, true} {
				rows := 1 + r.IntN(40)
				w := weights(r, tensor.F32, rows, cols, special)
				buf := make([]byte, len(w.Data)+128)
				a := (96 - int(uintptr(unsafe.Pointer(&buf[0]))%64)) % 64
				w.Data = buf[a : a+copy(buf[a:], w.Data)]
				if uintptr(unsafe.Pointer(&w.Data[0]))%64 != 32 {
					t.Fatal("weights not 32 bytes past a line")
				}
				x := values(r, n*cols, special)
				var acts Acts
				acts.Prepare(tensor.F32, x, n, cols)
				r0 := r.IntN(rows)
				r1 := r0 + 1 + r.IntN(rows-r0)
				ld := rows + r.IntN(3)
				if !acts.hasF32o {
					t.Fatalf("%dx%d n=%d: Prepare made no copy at 32 bytes past a line", rows, cols, n)
				}
				want := make([]float32, n*ld)
				MatMulRef(w, &acts, want, ld, r0, r1)
				// With Prepare's copy of the activations, and with a copy
				// per call (Acts without one).
				for _, prepared := range []bool{true, false} {
					acts.hasF32o = prepared
					got := make([]float32, n*ld)
					if !fastMatMul(w, &acts, got, ld, r0, r1) {
						t.Fatalf("fast path declined %dx%d n=%d", rows, cols, n)
					}
					for i := range got {
						if !same(got[i], want[i]) {
							t.Fatalf("rows [%d,%d) of %dx%d, n=%d, special=%v, prepared=%v: out[%d] = %g (%#08x), reference %g (%#08x)",
								r0, r1, rows, cols, n, special, prepared, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
						}
					}
				}
			}
		}
	}
}

// BenchmarkF32BatchOff runs BenchmarkF32Batch and BenchmarkF32BatchCached
// with the tiles that ran before the prefetching ones (f32Z), for
// comparison.
func BenchmarkF32BatchOff(b *testing.B) {
	was := useF32B
	useF32B = false
	defer func() { useF32B = was }()
	b.Run("Stream", BenchmarkF32Batch)
	b.Run("Cached", BenchmarkF32BatchCached)
}

// BenchmarkF32BatchMisaligned is BenchmarkF32Batch (one thread, n = 16 and
// 32) with the weights 32 bytes past a cache line, as every tensor of a
// GGUF file aligned to 32 bytes may be (all of the 110m F32 file's are):
// the peeled path of matF32Batch. cpu-GMAC/s is multiply-add pairs per CPU
// second of the benchmark's thread.
func BenchmarkF32BatchMisaligned(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const total = 40 << 20
	for _, sh := range [][2]int{{768, 768}, {2048, 768}, {768, 2048}} {
		rows, cols := sh[0], sh[1]
		bytes := rows * cols * 4
		ws := make([]*tensor.Tensor, (total+bytes-1)/bytes)
		for i := range ws {
			w := weights(r, tensor.F32, rows, cols, false)
			buf := make([]byte, bytes+128)
			a := (96 - int(uintptr(unsafe.Pointer(&buf[0]))%64)) % 64
			w.Data = buf[a : a+copy(buf[a:], w.Data)]
			ws[i] = w
		}
		for _, n := range []int{16, 32} {
			x := values(r, n*cols, false)
			var a Acts
			a.Prepare(tensor.F32, x, n, cols)
			out := make([]float32, n*rows)
			b.Run(fmt.Sprintf("%dx%d/n=%d", rows, cols, n), func(b *testing.B) { benchCycled(b, ws, &a, out, rows, cols, n) })
		}
	}
}

// BenchmarkF32BatchMisalignedOff is BenchmarkF32BatchMisaligned as the
// tiles ran before the padded activation copies (f32bPadX), the finer
// prefetch stride (f32bPfFine) and whole long rows against more than 4
// activation groups (f32bSliceGroups), for comparison.
func BenchmarkF32BatchMisalignedOff(b *testing.B) {
	pad, fine, groups := f32bPadX, f32bPfFine, f32bSliceGroups
	f32bPadX, f32bPfFine, f32bSliceGroups = false, false, 1<<30
	defer func() { f32bPadX, f32bPfFine, f32bSliceGroups = pad, fine, groups }()
	BenchmarkF32BatchMisaligned(b)
}

// BenchmarkF32BatchMisalignedNoPad is BenchmarkF32BatchMisaligned with the
// activation copies at the rows' own stride (f32bPadX off), for
// comparison.
func BenchmarkF32BatchMisalignedNoPad(b *testing.B) {
	was := f32bPadX
	f32bPadX = false
	defer func() { f32bPadX = was }()
	BenchmarkF32BatchMisaligned(b)
}

// TestF32BPrefetch checks f32bPrefetch's strides against a simulation of
// the tiles' prefetches (f32bL[li] lines at the cursor each step, which
// starts on a line and advances by pfs bytes): the lines prefetched have
// no hole, and the steps together cover the block's bytes to within half
// of 32 bytes a step, or as much of them as 6 lines a step do. The steps
// are those of 1 to 8 activation groups (matF32Batch's chunks of up to 32
// rows) on rows of cols columns, peeled or not.
func TestF32BPrefetch(t *testing.T) {
	for _, cols := range []int{16, 48, 256, 768, 1024, 2048, 3008, 4096} {
		var stepsList []int
		for calls := 1; calls <= 8; calls++ {
			stepsList = append(stepsList, calls*(cols/16), calls*((cols-8)/16))
		}
		for _, steps := range stepsList {
			if steps == 0 {
				continue
			}
			bytes := 6 * cols * 4
			li, pfs := f32bPrefetch(bytes, steps)
			L := f32bL[li]
			if pfs <= 0 || pfs%32 != 0 {
				t.Fatalf("%d bytes over %d steps: stride %d", bytes, steps, pfs)
			}
			covered := map[int]bool{}
			for k := range steps {
				for j := range L {
					covered[(k*pfs+64*j)/64] = true
				}
			}
			for line := 0; line <= (steps*pfs-1)/64; line++ {
				if !covered[line] {
					t.Fatalf("%d bytes over %d steps (stride %d, %d lines a step): line %d not prefetched", bytes, steps, pfs, L, line)
				}
			}
			if d := steps*pfs - bytes; pfs < 64*L && (d > 16*steps || d < -16*steps) {
				t.Fatalf("%d bytes over %d steps (stride %d, %d lines a step): the steps cover %d bytes", bytes, steps, pfs, L, steps*pfs)
			}
			if pfs == 64*L && steps*pfs < bytes-16*steps && L != 6 {
				t.Fatalf("%d bytes over %d steps: %d lines a step cover only %d bytes", bytes, steps, L, steps*pfs)
			}
		}
	}
}
