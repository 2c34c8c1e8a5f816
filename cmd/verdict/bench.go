package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/kernels"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/sampler"
)

func init() {
	register(&command{Name: "bench", Summary: "time prefill and decode of a model (tokens/s, GB/s of weights)", Run: cmdBench, HoldsModel: true})
}

// benchResult is what `verdict bench --json` prints (one line).
type benchResult struct {
	Model          string  `json:"model"`
	Threads        int     `json:"threads"`
	FastPath       string  `json:"fast_path"`
	LoadSecs       float64 `json:"load_s"`   // model.Load (header, tensor index, vocabulary, mmap) and engine.New: wall seconds
	WarmupSecs     float64 `json:"warmup_s"` // the first forward pass of one token, which touches every weight of the mapping
	PromptTokens   int     `json:"prompt_tokens"`
	PrefillSecs    float64 `json:"prefill_s"`
	PrefillTokS    float64 `json:"prefill_tok_s"`
	PrefillCPUSecs float64 `json:"prefill_cpu_s"` // user+system CPU time of the process during the prefill
	DecodeTokens   int     `json:"decode_tokens"`
	DecodeAt       int     `json:"decode_at,omitempty"` // tokens in the KV cache before the first timed decode step
	DecodeSecs     float64 `json:"decode_s"`
	DecodeTokS     float64 `json:"decode_tok_s"`
	DecodeCPUSecs  float64 `json:"decode_cpu_s"` // user+system CPU time of the process during the decode
	WeightBytes    int64   `json:"weight_bytes_per_token"`
	DecodeGBs      float64 `json:"decode_weight_gb_s"`
	PeakRSSBytes   int64   `json:"peak_rss_bytes"`
	FileBytes      int64   `json:"file_bytes"`
	KVCacheBytes   int64   `json:"kv_cache_bytes"`
	KVCache        string  `json:"kv_cache"` // the cache's precision: f32 or f16
	LastToken      int     `json:"last_token"`
	ScalarKernels  bool    `json:"scalar_kernels,omitempty"`
	ChunkRows      int     `json:"chunk_rows"`
}

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", stderr)
	path := fs.String("model", "", "model file: GGUF or llama2.c checkpoint (required)")
	threads := fs.Int("threads", 0, "threads; 0 = one per CPU")
	promptN := fs.Int("prompt-tokens", 256, "tokens in the timed prefill (one forward pass); 0 = skip")
	decodeN := fs.Int("decode-tokens", 64, "tokens in the timed greedy decode, one forward pass each; 0 = skip")
	decodeAt := fs.Int("decode-at", 0, "position of the first timed decode step: the KV cache first holds this many tokens (an untimed prefill); 0 = decode right after BOS")
	chunkRows := fs.Int("chunk-rows", 0, "rows per pass through the layers (a longer prefill runs in chunks); 0 = sized to the engine's activation budget")
	asJSON := fs.Bool("json", false, "print one JSON object instead of text")
	scalar := fs.Bool("scalar", false, "use the scalar reference kernels (same bits, slower)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the timed part to this file")
	memProfile := fs.String("memprofile", "", "write a heap profile (live objects at the last collection, and every allocation) to this file at the end")
	streams := fs.String("streams", "", "serving benchmark instead: for each count N in this list (e.g. 1,4,16,32), N concurrent greedy generations of --decode-tokens each through a worker's continuous batch; aggregate tok/s, time to first token and per output token, answers that differ from the same request alone")
	streamPrompt := fs.Int("stream-prompt", 16, "with --streams: prompt tokens per stream after BOS (each stream its own)")
	sharedPrefix := fs.Int("shared-prefix", 0, "with --streams: tokens every stream's prompt starts with after BOS (a system prompt), before its own --stream-prompt tokens")
	coldPrefix := fs.Bool("cold-prefix", false, "with --streams and --shared-prefix: each round's streams start with shared tokens the worker has not seen (a burst with a new system prompt: none in its prefix cache), and are run alone after it for the comparison")
	speculate := fs.Int("speculate", 0, "with --streams: the worker's draft tokens per step ("+speculateUsage+")")
	hugeWeights := fs.Bool("huge-weights", true, "as verdict worker: "+hugeWeightsUsage)
	kvBudgetMiB := fs.Int("kv-budget-mib", 0, "with --streams: the worker's key/value cache budget, in MiB (0: one full context a stream); a tighter one makes generations wait, or give up their caches to earlier ones and compute them again (preemptions)")
	prefixMiB := fs.Int("prefix-cache-mib", -1, "with --streams: the worker's prefix cache ("+prefixCacheUsage+"); off by default, so that every prompt is prefilled, as llama.cpp's side does")
	var kv engine.KVType
	fs.Var(kvFlag{&kv}, "kv-cache", "key/value cache precision: f32, or f16 (the spec "+engine.SpecKV16+": half the cache's memory and reads)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	if *path == "" {
		return fmt.Errorf("bench: --model is required")
	}
	if *promptN < 0 || *decodeN < 0 || *threads < 0 || *decodeAt < 0 || *chunkRows < 0 {
		return fmt.Errorf("bench: --prompt-tokens, --decode-tokens, --decode-at, --chunk-rows and --threads must not be negative")
	}
	if *memProfile != "" {
		runtime.MemProfileRate = 4096
	}
	if *scalar {
		defer kernels.UseFast(kernels.UseFast(false))
	}
	loadStart := time.Now()
	m, err := model.Load(*path, "")
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer m.Close()
	if *hugeWeights {
		m.CopyToHugePages()
	}
	if *streams != "" {
		ns, err := parseStreams(*streams)
		if err != nil {
			return err
		}
		if *streamPrompt < 0 || *sharedPrefix < 0 || *decodeN < 1 {
			return fmt.Errorf("bench: --streams needs --stream-prompt >= 0, --shared-prefix >= 0 and --decode-tokens >= 1")
		}
		if *coldPrefix && *sharedPrefix == 0 {
			return fmt.Errorf("bench: --cold-prefix needs --shared-prefix")
		}
		// The profile covers the concurrent runs only, not the runs
		// of every stream alone that come first.
		profile := func() (stop func(), err error) { return func() {}, nil }
		if *cpuProfile != "" {
			profile = func() (func(), error) {
				f, err := os.Create(*cpuProfile)
				if err != nil {
					return nil, fmt.Errorf("bench: %w", err)
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					f.Close()
					return nil, fmt.Errorf("bench: %w", err)
				}
				return func() { pprof.StopCPUProfile(); f.Close() }, nil
			}
		}
		sp := streamsPrompts{own: *streamPrompt, shared: *sharedPrefix, prefixCache: prefixCacheBytes(*prefixMiB), speculate: *speculate, kvBudget: int64(*kvBudgetMiB) << 20, cold: *coldPrefix}
		if err := benchStreams(ctx, m, *path, *threads, kv, ns, sp, *decodeN, *asJSON, profile, stdout, stderr); err != nil {
			return err
		}
		if *memProfile != "" {
			if err := writeHeapProfile(*memProfile); err != nil {
				return fmt.Errorf("bench: %w", err)
			}
		}
		return nil
	}
	c := m.Config
	// The KV cache holds the prompt, or the warm-up token and the decoded tokens.
	maxPos := max(*promptN, 1+*decodeAt+*decodeN)
	if maxPos > c.ContextLen {
		return fmt.Errorf("bench: %s: %d positions exceed the context length %d", *path, maxPos, c.ContextLen)
	}
	e, err := engine.New(m, engine.Options{Threads: *threads, ChunkRows: *chunkRows, KV: kv})
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer e.Close()
	loadSecs := time.Since(loadStart).Seconds()
	res := benchResult{Model: *path, Threads: e.Threads(), KVCache: kv.String(), FastPath: kernels.FastPath, ScalarKernels: *scalar, LoadSecs: loadSecs,
		PromptTokens: *promptN, DecodeTokens: *decodeN, DecodeAt: *decodeAt, WeightBytes: weightBytesPerToken(m), ChunkRows: e.ChunkRows()}
	if st, err := os.Stat(*path); err == nil {
		res.FileBytes = st.Size()
	}
	res.KVCacheBytes = e.KVBytesPerPosition() * int64(maxPos)

	// Warm-up: one token touches every weight once (page faults of the
	// mapping are not part of the timings; they are in warmup_s).
	warmStart := time.Now()
	if err := benchForward(e, []int{bosOr(m, 1)}, 1); err != nil {
		return err
	}
	res.WarmupSecs = time.Since(warmStart).Seconds()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if *promptN > 0 {
		toks := benchTokens(c.Vocab, *promptN)
		seq, err := e.NewSequence(*promptN)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		it := &engine.Item{Seq: seq, Tokens: toks, Logits: engine.LogitsLast}
		cpu0 := cpuSeconds()
		start := time.Now()
		if err := e.Forward(it); err != nil {
			return fmt.Errorf("bench: prefill: %w", err)
		}
		res.PrefillSecs = time.Since(start).Seconds()
		res.PrefillCPUSecs = cpuSeconds() - cpu0
		res.PrefillTokS = float64(*promptN) / res.PrefillSecs
		seq.Release() // the decode's cache reuses it
	}
	if *decodeN > 0 {
		seq, err := e.NewSequence(1 + *decodeAt + *decodeN)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		// BOS and, with --decode-at, that many tokens before it (untimed,
		// in batches of 512 to bound the activation buffers).
		fill := append([]int{bosOr(m, 1)}, benchTokens(c.Vocab, *decodeAt)...)
		it := &engine.Item{Seq: seq, Logits: engine.LogitsLast}
		for len(fill) > 0 {
			n := min(len(fill), 512)
			it.Tokens, fill = fill[:n], fill[n:]
			if err := e.Forward(it); err != nil {
				return fmt.Errorf("bench: decode: %w", err)
			}
		}
		next := sampler.Argmax(it.Out[0])
		cpu0 := cpuSeconds()
		start := time.Now()
		for i := 0; i < *decodeN; i++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			it.Tokens = []int{next}
			if err := e.Forward(it); err != nil {
				return fmt.Errorf("bench: decode: %w", err)
			}
			next = sampler.Argmax(it.Out[0])
		}
		res.DecodeSecs = time.Since(start).Seconds()
		res.DecodeCPUSecs = cpuSeconds() - cpu0
		res.DecodeTokS = float64(*decodeN) / res.DecodeSecs
		res.DecodeGBs = float64(res.WeightBytes) * res.DecodeTokS / 1e9
		res.LastToken = next
		seq.Release()
	}
	res.PeakRSSBytes = peakRSS()
	if *memProfile != "" {
		if err := writeHeapProfile(*memProfile); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	if *asJSON {
		b, err := json.Marshal(res)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	w := bufio.NewWriter(stdout)
	fmt.Fprintf(w, "model    %s (%d layers, dim %d, %.1f MiB of weights read per token)\n", *path, c.Layers, c.Dim, float64(res.WeightBytes)/(1<<20))
	fp := res.FastPath
	if fp == "" {
		fp = "scalar"
	}
	fmt.Fprintf(w, "threads  %d, kernels %s, %d rows per pass\n", res.Threads, fp, res.ChunkRows)
	fmt.Fprintf(w, "load     %.3f s (open, parse and map the file, build the engine), first token %.3f s (touches every weight)\n", res.LoadSecs, res.WarmupSecs)
	if *promptN > 0 {
		fmt.Fprintf(w, "prefill  %d tokens in %.3f s: %.1f tok/s (%.1f per CPU-second)\n", *promptN, res.PrefillSecs, res.PrefillTokS, float64(*promptN)/res.PrefillCPUSecs)
	}
	if *decodeN > 0 {
		fmt.Fprintf(w, "decode   %d tokens in %.3f s: %.2f tok/s, %.2f GB/s of weights", *decodeN, res.DecodeSecs, res.DecodeTokS, res.DecodeGBs)
		if *decodeAt > 0 {
			fmt.Fprintf(w, " (from position %d)", 1+*decodeAt)
		}
		fmt.Fprintln(w)
	}
	if res.PeakRSSBytes > 0 {
		fmt.Fprintf(w, "peak RSS %.1f MiB (file %.1f MiB, KV cache %.1f MiB)\n", float64(res.PeakRSSBytes)/(1<<20), float64(res.FileBytes)/(1<<20), float64(res.KVCacheBytes)/(1<<20))
	}
	return w.Flush()
}

// writeHeapProfile writes the heap profile (pprof's "heap": live objects as
// of the last collection, and every allocation since the start) to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC() // the profile is as of the last collection
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func benchForward(e *engine.Engine, toks []int, n int) error {
	seq, err := e.NewSequence(n)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer seq.Release()
	if err := e.Forward(&engine.Item{Seq: seq, Tokens: toks, Logits: engine.LogitsLast}); err != nil {
		return fmt.Errorf("bench: warm-up: %w", err)
	}
	return nil
}

func bosOr(m *model.Model, def int) int {
	if m.Vocab != nil && m.Vocab.BOS >= 0 && m.Vocab.BOS < m.Config.Vocab {
		return m.Vocab.BOS
	}
	return def
}

// benchTokens returns n fixed pseudo-random token ids in [3, vocab): the
// speed of a forward pass does not depend on which tokens it sees.
func benchTokens(vocab, n int) []int {
	t := make([]int, n)
	x := uint32(12345)
	for i := range t {
		x = x*1664525 + 1013904223
		t[i] = 3 + int(x>>8)%max(vocab-3, 1)
		if t[i] >= vocab {
			t[i] = vocab - 1
		}
	}
	return t
}

// weightBytesPerToken is the number of weight bytes one decode step reads:
// every layer tensor, the output norm and the classifier, one embedding row.
func weightBytesPerToken(m *model.Model) int64 {
	var n int64
	for _, t := range m.Tensors() {
		if t == m.TokenEmbd {
			continue
		}
		n += int64(len(t.Data))
	}
	if m.Output == m.TokenEmbd && m.Output != nil {
		n += int64(len(m.Output.Data))
	}
	if m.TokenEmbd != nil {
		n += int64(m.TokenEmbd.RowSize())
	}
	return n
}

// cpuSeconds is the user and system CPU time of the process so far; 0 where
// getrusage is missing.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// peakRSS reads the peak resident set size (VmHWM) from /proc; 0 where
// there is none.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return kb * 1024
				}
			}
		}
	}
	return 0
}
