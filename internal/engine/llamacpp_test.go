package engine_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/sampler"
	"github.com/verdictnet/verdict/internal/testutil"
)

// TestQuantTypesAgreeWithLlamaCpp checks the new tensor types (their GGML
// layouts and element order) against llama.cpp, which defines what a GGUF
// means: llama.cpp generates greedily from BOS on the tiny256 synthetic
// model in each type, and Verdict, teacher-forced on that sequence, must
// rank each of llama.cpp's tokens first, or within a near-tie (0.05 in
// logits) of its first. A misplaced element scrambles the logits (their
// spread here is about 0.6), which no tolerance of that size would hide.
// llama.cpp also quantises activations to Q8_K (and Q8_0/Q8_1) for these
// types; what differs is its order of float sums, fused multiply-adds and
// its F16 key/value cache.
func TestQuantTypesAgreeWithLlamaCpp(t *testing.T) {
	if testing.Short() {
		t.Skip("runs llama.cpp")
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("llama.cpp runs on the host; the arm64 run checks the golden digests instead")
	}
	node, dir := testutil.NodeModule(t, "node-llama-cpp")
	const steps = 24
	types := []string{"f32", "q4_k", "q5_k", "q6_k", "q4_1", "q5_0", "q5_1", "mix"}
	paths := make([]string, len(types))
	for i, typ := range types {
		paths[i] = synthModel(t, "synth:tiny256:"+typ)
	}
	pj, _ := json.Marshal(paths)
	// A script file, not standard input: node-llama-cpp forks node to test
	// its binary, and a child started with the parent's --input-type=module
	// and no input fails. It imports the package by its file URL.
	entry := (&url.URL{Scheme: "file", Path: filepath.Join(dir, "node_modules", "node-llama-cpp", "dist", "index.js")}).String()
	script := fmt.Sprintf(`import { getLlama, LlamaLogLevel } from %q;
const paths = %s;
const llama = await getLlama({gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true,
	progressLogs: false, logLevel: LlamaLogLevel.error, maxThreads: 2});
const out = [];
for (const p of paths) {
	const model = await llama.loadModel({modelPath: p, gpuLayers: 0});
	const ctx = await model.createContext({contextSize: 64, batchSize: 64, sequences: 1, threads: 2});
	const seq = ctx.getSequence();
	const toks = [];
	for await (const t of seq.evaluate([model.tokens.bos ?? 1], {temperature: 0})) {
		toks.push(t);
		if (toks.length === %d) break;
	}
	out.push(toks);
	await ctx.dispose();
	await model.dispose();
}
console.log(JSON.stringify(out));
await llama.dispose();
`, entry, pj, steps)
	sp := filepath.Join(t.TempDir(), "agree.mjs")
	if err := os.WriteFile(sp, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, sp)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s%s", err, outb, stderr.String())
	}
	var seqs [][]int
	if err := json.Unmarshal(outb[strings.LastIndex(string(outb[:len(outb)-1]), "\n")+1:], &seqs); err != nil {
		t.Fatalf("llama.cpp output %q: %v", outb, err)
	}
	for i, typ := range types {
		t.Run(typ, func(t *testing.T) {
			ref := seqs[i]
			if len(ref) != steps {
				t.Fatalf("llama.cpp gave %d tokens", len(ref))
			}
			l := load(t, "synth:tiny256:"+typ, "")
			e := newEngine(t, l.m, 2)
			seq, err := e.NewSequence(steps + 1)
			if err != nil {
				t.Fatal(err)
			}
			it := &engine.Item{Seq: seq, Tokens: append([]int{l.m.Vocab.BOS}, ref[:steps-1]...), Logits: engine.LogitsAll}
			if err := e.Forward(it); err != nil {
				t.Fatal(err)
			}
			exact := 0
			for p, logits := range it.Out {
				top := sampler.Argmax(logits)
				if top == ref[p] {
					exact++
					continue
				}
				if gap := logits[top] - logits[ref[p]]; gap > 0.05 {
					t.Errorf("position %d: llama.cpp chose %d, Verdict ranks it %g below its top %d", p, ref[p], gap, top)
				}
			}
			t.Logf("%s: %d of %d positions agree exactly", typ, exact, steps)
			if exact < steps*3/4 {
				t.Errorf("only %d of %d positions agree", exact, steps)
			}
		})
	}
}
