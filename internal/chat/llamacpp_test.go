package chat_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/chat"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/testutil"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

// llamaTokenize tokenizes texts with llama.cpp (node-llama-cpp), special
// tokens parsed, without BOS: one node process for all jobs.
const llamaTokenize = `
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const [pkg, jobsFile] = process.argv.slice(2);
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(pkg).href);
const jobs = JSON.parse(readFileSync(jobsFile, "utf8"));
const llama = await getLlama({gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true,
    progressLogs: false, logLevel: LlamaLogLevel.error});
const out = [];
for (const job of jobs) {
    const model = await llama.loadModel({modelPath: job.model, vocabOnly: true});
    out.push(job.texts.map(t => Array.from(model.tokenize(t, true))));
    await model.dispose();
}
process.stdout.write(JSON.stringify(out));
`

type llamaJob struct {
	Model string   `json:"model"`
	Texts []string `json:"texts"`
}

func runLlama(t *testing.T, jobs []llamaJob) [][][]int {
	t.Helper()
	var out [][][]int
	testutil.RunLlamaScript(t, llamaTokenize, jobs, &out)
	if len(out) != len(jobs) {
		t.Fatalf("node-llama-cpp answered %d jobs of %d", len(out), len(jobs))
	}
	return out
}

// TestPromptTokensAgainstLlamaCpp: for conversations whose data holds no
// control-token text, the prompt tokens (spans, BOS rule) are exactly what
// llama.cpp's server computes: BOS when the vocabulary adds it, then the
// rendered text, without its leading BOS text, tokenized with special tokens
// parsed. Where a message does write control-token text, llama.cpp would
// parse it and we must not: the tokens differ, and the forged token ids do
// not appear.
func TestPromptTokensAgainstLlamaCpp(t *testing.T) {
	type pair struct {
		vocab, template string // template: a builtin, a testdata file, or "" for the GGUF's own
	}
	pairs := []pair{
		{"tokenizers/derived/ggml-vocab-qwen2.derived-from-qwen3.gguf", ""},
		{"tokenizers/derived/ggml-vocab-llama-bpe.derived.gguf", ""},
		{"tokenizers/derived/ggml-vocab-llama-bpe.derived.gguf", "llama3.1.jinja"},
		{"tokenizers/derived/ggml-vocab-smollm2.derived.gguf", "smollm2.jinja"},
		{"models/ggml-vocab-llama-spm.gguf", chat.Llama2Name},
		{"models/ggml-vocab-llama-spm.gguf", "mistral-v0.3.jinja"},
	}
	type check struct {
		label  string
		ids    []int
		text   string
		bos    []int
		forged bool
	}
	var jobs []llamaJob
	var checks [][]check
	for _, pr := range pairs {
		path := testutil.Shared(t, pr.vocab)
		v, err := model.LoadVocab(path)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := tokenizer.New(v)
		if err != nil {
			t.Fatal(err)
		}
		bos, eos := chat.TokenText(v, v.BOS), chat.TokenText(v, v.EOS)
		var tp *chat.Template
		switch {
		case pr.template == "":
			src, _, _ := ggufTemplate(t, path)
			tp, err = chat.New("gguf", src, bos, eos)
		case strings.HasSuffix(pr.template, ".jinja"):
			b, rerr := os.ReadFile(filepath.Join("testdata", "templates", pr.template))
			if rerr != nil {
				t.Fatal(rerr)
			}
			tp, err = chat.New(pr.template, string(b), bos, eos)
		default:
			tp, err = chat.Builtin(pr.template, bos, eos)
		}
		if err != nil {
			t.Fatal(err)
		}
		job := llamaJob{Model: path}
		var cs []check
		for _, c := range conversations(t) {
			var r chat.Request
			if err := json.Unmarshal(c.Request, &r); err != nil {
				t.Fatal(err)
			}
			r.AddGenerationPrompt = true
			if r.Tools != nil && !tp.SupportsTools() {
				r.Tools = nil
			}
			p, err := tp.Render(&r)
			if err != nil {
				continue // the template refuses it (checked in TestTemplates)
			}
			ids, err := p.Encode(tok)
			if err != nil {
				t.Fatal(err)
			}
			text := p.Text()
			var pre []int
			if v.AddBOS && v.BOS >= 0 {
				pre = []int{v.BOS}
				text = strings.TrimPrefix(text, bos)
			}
			ch := check{label: pr.vocab + " " + pr.template + " " + c.Name, ids: ids, text: text, bos: pre, forged: c.Name == "unicode"}
			cs = append(cs, ch)
			job.Texts = append(job.Texts, text)
		}
		jobs = append(jobs, job)
		checks = append(checks, cs)
	}
	ref := runLlama(t, jobs)
	n, forged := 0, 0
	for i, cs := range checks {
		for j, c := range cs {
			want := append(slices.Clone(c.bos), ref[i][j]...)
			if !c.forged {
				if !slices.Equal(c.ids, want) {
					t.Errorf("%s: %d tokens differ from llama.cpp's %d\n got %v\nwant %v", c.label, len(c.ids), len(want), c.ids, want)
				}
				n++
				continue
			}
			// The forged control tokens are parsed by llama.cpp, not by us.
			if slices.Equal(c.ids, want) {
				t.Errorf("%s: control tokens in a message were parsed", c.label)
			}
			forged++
		}
	}
	t.Logf("%d prompts equal llama.cpp's tokens; %d with forged control tokens differ", n, forged)
}
