// Command membw measures the machine's memory read bandwidth, the physical
// limit of decode (every weight is read once per token):
//
//	go run ./bench/membw [-mib 1024] [-threads "1 2"] [-runs 5]
//
// It fills a buffer much larger than the caches, then each of T goroutines
// sums its own contiguous share of it as uint64 words (eight independent
// accumulators, so that the loop is bound by memory, not by the adder), and
// prints the best of -runs passes as GB/s (1e9 bytes per second) for each
// thread count, with the median.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

func sum(b []uint64) uint64 {
	var s0, s1, s2, s3, s4, s5, s6, s7 uint64
	for len(b) >= 8 {
		s0 += b[0]
		s1 += b[1]
		s2 += b[2]
		s3 += b[3]
		s4 += b[4]
		s5 += b[5]
		s6 += b[6]
		s7 += b[7]
		b = b[8:]
	}
	return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7
}

func main() {
	mib := flag.Int("mib", 1024, "buffer size in MiB")
	threadList := flag.String("threads", "1 2", "thread counts")
	runs := flag.Int("runs", 5, "passes per thread count")
	flag.Parse()
	buf := make([]uint64, *mib<<20/8)
	for i := range buf {
		buf[i] = uint64(i)
	}
	var sink uint64
	for _, f := range strings.Fields(*threadList) {
		t, err := strconv.Atoi(f)
		if err != nil || t <= 0 {
			fmt.Fprintf(os.Stderr, "membw: bad thread count %q\n", f)
			os.Exit(2)
		}
		runtime.GOMAXPROCS(max(t, runtime.NumCPU()))
		var rates []float64
		for r := 0; r < *runs; r++ {
			var wg sync.WaitGroup
			sums := make([]uint64, t)
			chunk := len(buf) / t
			start := time.Now()
			for k := 0; k < t; k++ {
				wg.Add(1)
				go func(k int) {
					defer wg.Done()
					sums[k] = sum(buf[k*chunk : (k+1)*chunk])
				}(k)
			}
			wg.Wait()
			rates = append(rates, float64(chunk*t*8)/time.Since(start).Seconds()/1e9)
			for _, s := range sums {
				sink += s
			}
		}
		sort.Float64s(rates)
		fmt.Printf("threads %d: read %.1f GB/s best, %.1f median (%d passes over %d MiB)\n", t, rates[len(rates)-1], rates[len(rates)/2], *runs, *mib)
	}
	if sink == 42 {
		fmt.Println()
	}
}
