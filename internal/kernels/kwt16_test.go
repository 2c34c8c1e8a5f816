//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/verdictnet/verdict/internal/tensor"
)

// TestKWT16 calls the 16-row tiles (kwt4W16, kwt6W16) directly on every
// pair of whole groups and every tile of 16 weight rows, for checkKWT's
// inputs at 16 to 48 activation rows and 1 to 4 super-blocks: each result
// must equal the specification (specDot) and the P8 tile's, bit for bit,
// and the tile must write its 16 x 16 results and nothing else.
func TestKWT16(t *testing.T) {
	needVNNI(t)
	r := rand.New(rand.NewPCG(35, 36))
	for _, typ := range []tensor.Type{tensor.Q4_K, tensor.Q6_K} {
		ti := kwtIndex(typ)
		t16 := kwt16Tiles[ti]
		if t16 == nil {
			t.Fatalf("%s: no 16-row tile", typ)
		}
		for _, n := range []int{16, 17, 24, 32, 33, 48} {
			for _, mode := range []string{"prepared", "dense", "special", "anyint8", "maxweights"} {
				t.Run(fmt.Sprintf("%s/n=%d/%s", typ, n, mode), func(t *testing.T) {
					nb := 1 + r.IntN(4)
					rows, cols := 16*(1+r.IntN(3)), 256*nb
					w, a := kwtInputs(t, r, typ, rows, cols, n, mode)
					gs := kwtP * nb * kwtRow
					rs := w.RowSize()
					ld := rows + r.IntN(3)
					scr := new([kwtScratch]byte)
					const guard = float32(-12345.5)
					for g := 0; g+1 < n/kwtP; g += 2 {
						for r0 := 0; r0 < rows; r0 += kwtRows {
							got := make([]float32, n*ld)
							p8 := make([]float32, n*ld)
							for i := range got {
								got[i], p8[i] = guard, guard
							}
							for i := range scr {
								scr[i] = byte(r.Uint32())
							}
							t16(&w.Data[r0*rs], rs, &a.pkKW[g*gs], gs, nb, &got[kwtP*g*ld+r0], ld, &scr[0])
							for h := 0; h < 2; h++ {
								kwtTiles[ti][kwtP](&w.Data[r0*rs], rs, &a.pkKW[(g+h)*gs], nb, &p8[kwtP*(g+h)*ld+r0], ld, &scr[0])
							}
							for p := 0; p < n; p++ {
								for i := 0; i < ld; i++ {
									v := got[p*ld+i]
									if p < kwtP*g || p >= kwtP*(g+2) || i < r0 || i >= r0+kwtRows {
										if math.Float32bits(v) != math.Float32bits(guard) {
											t.Fatalf("rows [%d,%d) groups %d,%d: wrote out[%d*ld+%d] = %g", r0, r0+16, g, g+1, p, i, v)
										}
										continue
									}
									want := specDot(typ, w.Row(i), a.KQ[p*cols:(p+1)*cols], a.KD[p*cols/256:])
									if !same(v, want) || !same(v, p8[p*ld+i]) {
										t.Fatalf("%s %s %dx%d n=%d: row %d act %d: %g (%#08x), spec %g (%#08x), P8 tile %g",
											typ, mode, rows, cols, n, i, p, v, math.Float32bits(v), want, math.Float32bits(want), p8[p*ld+i])
									}
								}
							}
						}
					}
				})
			}
		}
	}
}

// BenchmarkKWT16Tile times one 16-row tile call (kwt4W16, kwt6W16) against
// the two kwt P8 calls it replaces, on 32 weight rows of 2048 columns that
// stay in the cache (the tiles' own rate, without the memory stream of
// BenchmarkKBatch): cpu-GMAC/s per CPU second of the benchmark's thread.
func BenchmarkKWT16Tile(b *testing.B) {
	if !hasVNNI || !useVNNI {
		b.Skip("no AVX-512 VNNI")
	}
	r := rand.New(rand.NewPCG(1, 1))
	for _, typ := range []tensor.Type{tensor.Q4_K, tensor.Q6_K} {
		const nb = 8
		const cols = 256 * nb
		w := weights(r, typ, 32, cols, false)
		var a Acts
		a.Prepare(typ, values(r, 16*cols, false), 16, cols)
		out := make([]float32, 16*32)
		scr := new([kwtScratch]byte)
		ti := kwtIndex(typ)
		gs := kwtP * nb * kwtRow
		for _, path := range []string{"w16", "p8x2"} {
			b.Run(fmt.Sprintf("%s/%s", typ, path), func(b *testing.B) {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				cpu0 := threadCPU()
				for b.Loop() {
					if path == "w16" {
						kwt16Tiles[ti](&w.Data[0], w.RowSize(), &a.pkKW[0], gs, nb, &out[0], 32, &scr[0])
						continue
					}
					kwtTiles[ti][kwtP](&w.Data[0], w.RowSize(), &a.pkKW[0], nb, &out[0], 32, &scr[0])
					kwtTiles[ti][kwtP](&w.Data[0], w.RowSize(), &a.pkKW[gs], nb, &out[kwtP*32], 32, &scr[0])
				}
				cpu := threadCPU() - cpu0
				b.ReportMetric(16*16*float64(cols)*float64(b.N)/cpu.Seconds()/1e9, "cpu-GMAC/s")
			})
		}
	}
}
