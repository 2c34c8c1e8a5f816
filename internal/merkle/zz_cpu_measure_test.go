package merkle

import (
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func threadCPU() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}

func TestZZCPU(t *testing.T) {
	if os.Getenv("SHA_CPU") == "" {
		t.Skip()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	hs := testLeaves(1 << 16)
	out := make([]Hash, len(hs)/2)
	best := [2]float64{1e9, 1e9}
	for range 5 {
		for b := range 2 {
			t0 := threadCPU()
			for range 10 {
				if b == 0 {
					NodeHashes(out, hs)
				} else {
					for j := range out {
						out[j] = NodeHash(hs[2*j], hs[2*j+1])
					}
				}
			}
			ns := float64((threadCPU() - t0).Nanoseconds()) / float64(10*len(out))
			best[b] = min(best[b], ns)
		}
	}
	t.Logf("NodeHashes %.1f ns/node, NodeHash %.1f ns/node, ratio %.2f", best[0], best[1], best[1]/best[0])
}
