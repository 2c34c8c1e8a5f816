package tokenizer_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/testutil"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

// benchText is about 4,000 tokens of story text (with either shared
// vocabulary) built from the reference greedy outputs.
func benchText(b *testing.B) string {
	dir := testutil.Shared(b, ".")
	var sb strings.Builder
	for sb.Len() < 16000 {
		for _, p := range []string{"p1", "p2", "p3", "noprompt_200"} {
			data, err := os.ReadFile(filepath.Join(dir, "reference/greedy", p+".txt"))
			if err != nil {
				b.Fatal(err)
			}
			sb.Write(data)
		}
	}
	return sb.String()
}

// BenchmarkEncode encodes about 4k tokens (x1) and 32k tokens (x8): the
// time per byte must stay nearly flat (O(n log n)).
func BenchmarkEncode(b *testing.B) {
	for _, f := range []string{"models/tok512.bin", "models/ggml-vocab-llama-spm.gguf"} {
		for _, k := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/x%d", filepath.Base(f), k), func(b *testing.B) {
				tok := load(b, f)
				text := strings.Repeat(benchText(b), k)
				ids, err := tok.Encode(text, true)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(text)))
				for b.Loop() {
					if _, err := tok.Encode(text, true); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(ids)), "tokens")
			})
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	tok := load(b, "models/tok512.bin")
	ids, err := tok.Encode(benchText(b), true)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := tok.Decode(ids); err != nil {
			b.Fatal(err)
		}
	}
}

// bpeBenchText is about 64 KB of mixed text: English stories, code,
// multilingual prose and numbers.
func bpeBenchText(b *testing.B) string {
	var sb strings.Builder
	story := benchText(b)
	extra := strings.Join(codeSnippets, "\n") +
		"\nLe café est très bon. Der Straßenverkehr ist laut. Быстрая лиса. 中文文本处理很有趣。日本語の文章。한국어 문장입니다. " +
		"مرحبا بالعالم. שלום עולם. 1234567890 3.14159 2026-12-03 🦙👨‍👩‍👧 don't it's we'll\n"
	for sb.Len() < 64000 {
		sb.WriteString(story[:min(len(story), 4000)])
		sb.WriteString(extra)
	}
	return sb.String()
}

// bpeBenchVocabs are the BPE vocabularies the encoding benchmarks use.
var bpeBenchVocabs = []string{
	"tokenizers/derived/ggml-vocab-llama-bpe.derived.gguf",
	"tokenizers/derived/ggml-vocab-qwen2.derived-from-qwen3.gguf",
	"tokenizers/llama.cpp/ggml-vocab-gpt-2.gguf",
	"tokenizers/llama.cpp/ggml-vocab-deepseek-llm.gguf",
	"models/ggml-vocab-llama-spm.gguf",
}

// BenchmarkEncodeBPE measures encoding throughput (bytes/s) of the mixed
// text; BenchmarkLlamaCppEncode measures llama.cpp on the same text.
func BenchmarkEncodeBPE(b *testing.B) {
	text := bpeBenchText(b)
	for _, f := range bpeBenchVocabs {
		b.Run(filepath.Base(f), func(b *testing.B) {
			tok := load(b, f)
			ids, err := tok.Encode(text, false)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(text)))
			cpu0, n := cpuTime(b), 0
			for b.Loop() {
				if _, err := tok.Encode(text, false); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(n), "cpu-ns/op")
			b.ReportMetric(float64(len(ids)), "tokens")
		})
	}
}

// llamaBenchScript times llama.cpp's tokenizer (node-llama-cpp, no BOS,
// no special tokens) on a text: arguments are the package entry, the
// text file, the iteration count and the vocabularies; it prints one JSON
// object per vocabulary: {"ns_per_op": ..., "cpu_ns_per_op": ...,
// "tokens": ...} (wall-clock and CPU time per encoding).
const llamaBenchScript = `
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const [pkg, textFile, itersArg, ...vocabs] = process.argv.slice(2);
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(pkg).href);
const text = readFileSync(textFile, "utf8");
const iters = Number(itersArg);
const llama = await getLlama({gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true,
    progressLogs: false, logLevel: LlamaLogLevel.error});
for (const v of vocabs) {
    const model = await llama.loadModel({modelPath: v, vocabOnly: true});
    const n = model.tokenize(text, false).length;
    const t0 = process.hrtime.bigint(), c0 = process.cpuUsage();
    for (let i = 0; i < iters; i++) model.tokenize(text, false);
    const ns = Number(process.hrtime.bigint() - t0) / iters;
    const c = process.cpuUsage(c0);
    console.log(JSON.stringify({ns_per_op: ns, cpu_ns_per_op: (c.user + c.system) * 1000 / iters, tokens: n}));
}
`

// BenchmarkLlamaCppEncode runs llama.cpp's tokenizer through node on the
// text of BenchmarkEncodeBPE and reports its time per encoding (the
// ns/op column is that of the node run as a whole; read llama-ns/op,
// llama-cpu-ns/op and llama-MB/s). On a busy machine compare CPU times:
// cpu-ns/op of BenchmarkEncodeBPE with llama-cpu-ns/op.
func BenchmarkLlamaCppEncode(b *testing.B) {
	node, dir := testutil.NodeModule(b, "node-llama-cpp")
	text := bpeBenchText(b)
	tmp := b.TempDir()
	textFile, script := filepath.Join(tmp, "text.txt"), filepath.Join(tmp, "bench.mjs")
	if err := os.WriteFile(textFile, []byte(text), 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(script, []byte(llamaBenchScript), 0o600); err != nil {
		b.Fatal(err)
	}
	shared := testutil.Shared(b, ".")
	for _, f := range bpeBenchVocabs {
		b.Run(filepath.Base(f), func(b *testing.B) {
			var res struct {
				NsPerOp    float64 `json:"ns_per_op"`
				CPUNsPerOp float64 `json:"cpu_ns_per_op"`
				Tokens     int     `json:"tokens"`
			}
			for b.Loop() {
				cmd := exec.Command(node, script, filepath.Join(dir, "node_modules/node-llama-cpp/dist/index.js"),
					textFile, "20", filepath.Join(shared, f))
				cmd.Dir = dir
				out, err := cmd.Output()
				if err != nil {
					b.Fatalf("node: %v", err)
				}
				if err := json.Unmarshal(out, &res); err != nil {
					b.Fatalf("node output %q: %v", out, err)
				}
			}
			b.ReportMetric(res.NsPerOp, "llama-ns/op")
			b.ReportMetric(res.CPUNsPerOp, "llama-cpu-ns/op")
			b.ReportMetric(float64(len(text))/res.NsPerOp*1e3, "llama-MB/s")
			b.ReportMetric(float64(res.Tokens), "tokens")
		})
	}
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkNew builds a tokenizer from a loaded vocabulary and reports
// the heap it keeps (kept-bytes: live heap after a collection with the
// tokenizer, less that without it).
func BenchmarkNew(b *testing.B) {
	for _, f := range bpeBenchVocabs {
		b.Run(filepath.Base(f), func(b *testing.B) {
			v, err := model.LoadVocab(filepath.Join(testutil.Shared(b, "."), f))
			if err != nil {
				b.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			tok, err := tokenizer.New(v)
			if err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(tok)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := tokenizer.New(v); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(after.HeapAlloc)-float64(before.HeapAlloc), "kept-bytes")
		})
	}
}
