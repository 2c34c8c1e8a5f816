package sha256x16

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// threadCPU is the CPU time of the calling thread.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// BenchmarkThreadCPU compares the kernel (all 16 lanes run, whatever the
// count) with crypto/sha256 one message at a time by the CPU time of the
// benchmark's thread, which other processes on a loaded machine do not
// enter as they enter the wall clock: each iteration alternates the two on
// every shape, and the best GB/s of each over the iterations is reported
// (use -benchtime 5x).
func BenchmarkThreadCPU(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	type shape struct{ n, L int }
	shapes := []shape{{16, 65}, {16, 257}, {16, 1028}, {16, 4096}, {16, 65536}, {16, 513024}, {3, 257}, {4, 257}, {6, 257}, {8, 257}}
	r := rand.New(rand.NewPCG(1, 1))
	msgs := make([][][]byte, len(shapes))
	for i, s := range shapes {
		for range s.n {
			msgs[i] = append(msgs[i], randBytes(r, s.L))
		}
	}
	best := make([][2]float64, len(shapes))
	for range b.N {
		for i, s := range shapes {
			out := make([][Size]byte, s.n)
			for v := range 2 {
				iters := max(1, 60<<20/(s.n*s.L))
				t0 := threadCPU()
				for range iters {
					if v == 0 && hasKernel {
						sum16(out, nil, msgs[i], 1)
					} else {
						sumEach(out, nil, msgs[i], 1)
					}
				}
				gbs := float64(iters*s.n*s.L) / float64((threadCPU() - t0).Nanoseconds())
				best[i][v] = max(best[i][v], gbs)
			}
		}
	}
	for i, s := range shapes {
		b.ReportMetric(best[i][0], fmt.Sprintf("x16-GB/s-%dx%d", s.n, s.L))
		b.ReportMetric(best[i][1], fmt.Sprintf("sha256-GB/s-%dx%d", s.n, s.L))
	}
}
