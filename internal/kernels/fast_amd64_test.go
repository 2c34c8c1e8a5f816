//go:build amd64 && !purego

package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestFastPrefillTiles calls every float32 prefill tile directly (each R x P
// of the AVX2 and, where the CPU has it, the AVX-512F set) on every tail
// length, with row strides longer than the rows, against DotRef.
func TestFastPrefillTiles(t *testing.T) {
	needFast(t)
	sets := []struct {
		name  string
		tiles *[7][5]tileFn
	}{{"avx2", &tilesF32}}
	if hasAVX512 {
		sets = append(sets, struct {
			name  string
			tiles *[7][5]tileFn
		}{"avx512", &tilesZ})
	}
	r := rand.New(rand.NewPCG(7, 7))
	for _, set := range sets {
		for R := 1; R <= 6; R++ {
			for P := 1; P <= 4; P++ {
				fn := set.tiles[R][P]
				if fn == nil {
					continue
				}
				for _, n := range []int{1, 5, 15, 16, 17, 31, 32, 33, 48, 63, 100} {
					for _, special := range []bool{false, true} {
						ws, xs := n+r.IntN(5), n+r.IntN(5)
						w := values(r, R*ws, special)
						x := values(r, P*xs, special)
						var res [24]float32
						fn(&w[0], ws, &x[0], xs, n, &res[0])
						for i := 0; i < R; i++ {
							for j := 0; j < P; j++ {
								want := DotRef(w[i*ws:i*ws+n], x[j*xs:j*xs+n])
								if got := res[i*P+j]; !same(got, want) {
									t.Fatalf("%s tile %dx%d n=%d special=%v: sum (%d,%d) = %g (%#08x), DotRef %g (%#08x)",
										set.name, R, P, n, special, i, j, got, math.Float32bits(got), want, math.Float32bits(want))
								}
							}
						}
					}
				}
			}
		}
	}
}
