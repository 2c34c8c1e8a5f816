// Command vnnipeak measures the machine's peak rate of 8-bit integer
// multiply-adds (AVX-512 VNNI, VPDPBUSD on 512-bit registers), the physical
// limit of prefill and of exact replay on quantised weights, as membw
// measures the limit of decode:
//
//	go run ./bench/vnnipeak [-threads "1 2"] [-runs 5] [-iters 200000000]
//
// Each of T goroutines, locked to its OS thread, runs a loop of sixteen
// independent VPDPBUSD instructions on registers (no memory operands, no
// dependency between them within an iteration, so neither latency nor
// memory bounds it). It prints the best of -runs passes as GMAC/s (1e9 byte
// multiply-adds per second) for each thread count, in total and per thread.
// A quantised matrix tile cannot do better than this: it also unpacks
// nibbles, applies block scales and converts sums to float.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	threads := flag.String("threads", "1 2", "thread counts to measure, space-separated")
	runs := flag.Int("runs", 5, "passes per thread count (the best is printed)")
	iters := flag.Int("iters", 100_000_000, "loop iterations per thread and pass")
	flag.Parse()
	if !supported() {
		fmt.Fprintln(os.Stderr, "vnnipeak: this CPU has no AVX-512 VNNI")
		os.Exit(1)
	}
	for _, f := range strings.Fields(*threads) {
		t, err := strconv.Atoi(f)
		if err != nil || t < 1 {
			fmt.Fprintf(os.Stderr, "vnnipeak: bad thread count %q\n", f)
			os.Exit(2)
		}
		best := 0.0
		for r := 0; r < *runs; r++ {
			var wg sync.WaitGroup
			start := time.Now()
			for i := 0; i < t; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					dots(*iters)
				}()
			}
			wg.Wait()
			rate := float64(t) * float64(*iters) * macsPerIter / time.Since(start).Seconds() / 1e9
			if rate > best {
				best = rate
			}
		}
		fmt.Printf("threads %d: %.0f GMAC/s (%.0f per thread)\n", t, best, best/float64(t))
	}
}
