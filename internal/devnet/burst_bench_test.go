package devnet

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/scheduler"
	"github.com/verdictnet/verdict/internal/synth"
)

// BenchmarkBurst runs TestLoad's burst (100 chat completions of up to 16
// tokens from 8 concurrent clients, through the gateway, escrows and
// ledger) on a model whose forward pass is not a sliver of a request: the
// synthetic 110m preset in Q8_0 (VERDICT_BURST_PRESET and
// VERDICT_BURST_TYPE choose another), written into a temporary directory
// (VERDICT_BURST_MODEL=FILE serves that file instead).
// The worker's continuous batch runs at its default size and limited to
// one sequence (the --concurrency knob), VERDICT_BURST_ROUNDS times
// alternated (default 1), each on its own devnet (2 engine threads,
// VERDICT_BURST_THREADS; 300 ms blocks; the verifier replays 1 receipt in
// 10000, so that replays do not compete with the burst). It reports the
// burst's wall time, completion tokens per second and median latency, and
// the largest batch. Run with -bench Burst -benchtime 1x; skipped with
// -short. VERDICT_BURST_PROFILE=DIR writes a CPU profile and an execution
// trace of each burst alone (not the devnet's start) into DIR (go tool
// trace -pprof=syscall, sync or net shows where requests wait).
func BenchmarkBurst(b *testing.B) {
	if testing.Short() {
		b.Skip("synthesises a 110m model and runs devnets")
	}
	preset := cmp.Or(os.Getenv("VERDICT_BURST_PRESET"), "110m")
	typ := cmp.Or(os.Getenv("VERDICT_BURST_TYPE"), "q8_0")
	rounds, _ := strconv.Atoi(os.Getenv("VERDICT_BURST_ROUNDS"))
	threads, _ := strconv.Atoi(os.Getenv("VERDICT_BURST_THREADS"))
	name := "burst-" + preset + "-" + typ
	path := filepath.Join(b.TempDir(), name+".gguf")
	if p := os.Getenv("VERDICT_BURST_MODEL"); p != "" {
		path, name = p, strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
	} else {
		t0 := time.Now()
		if err := synth.WriteFile(path, synth.Options{Preset: preset, Type: typ, Seed: 1}); err != nil {
			b.Fatal(err)
		}
		b.Logf("%s written in %v", path, time.Since(t0).Round(time.Millisecond))
	}
	for round := range max(rounds, 1) {
		for _, batch := range []int{scheduler.DefaultMaxBatch, 1} {
			b.Run(fmt.Sprintf("round=%d/batch=%d", round+1, batch), func(b *testing.B) {
				d := start(b, Options{ModelPath: path, MaxBatch: batch, Threads: cmp.Or(threads, 2), BlockInterval: 300 * time.Millisecond, ReplayShareBps: 1})
				for i := range b.N {
					stop := profile(b, os.Getenv("VERDICT_BURST_PROFILE"), fmt.Sprintf("%d-%d-%d", round+1, batch, i))
					r := burst(b, d, name, fmt.Sprintf("bench-%d-", i), 100, 8, 16)
					stop()
					b.ReportMetric(r.wall.Seconds(), "s/burst")
					b.ReportMetric(float64(r.output)/r.wall.Seconds(), "tok/s")
					b.ReportMetric(r.median().Seconds()*1000, "ms-p50")
					b.Logf("%v; largest batch %d; load average %s", r, d.Worker.BatchStats().PeakBatch, loadAverage())
				}
				b.ReportMetric(float64(d.Worker.BatchStats().PeakBatch), "peak-batch")
			})
		}
	}
}

// profile starts a CPU profile (dir/cpu-NAME.pprof) and an execution trace
// (dir/trace-NAME.out) when dir is set, and returns what stops them.
func profile(tb testing.TB, dir, name string) (stop func()) {
	if dir == "" {
		return func() {}
	}
	cpu, err1 := os.Create(filepath.Join(dir, "cpu-"+name+".pprof"))
	tr, err2 := os.Create(filepath.Join(dir, "trace-"+name+".out"))
	if err := cmp.Or(err1, err2); err != nil {
		tb.Fatal(err)
	}
	if err := cmp.Or(pprof.StartCPUProfile(cpu), trace.Start(tr)); err != nil {
		tb.Fatal(err)
	}
	return func() {
		trace.Stop()
		pprof.StopCPUProfile()
		cpu.Close()
		tr.Close()
	}
}

// loadAverage is the machine's load average (/proc/loadavg's first three
// fields), or "?" where there is none.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}
