package chat_test

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/chat"
	"github.com/verdictnet/verdict/internal/gguf"
	"github.com/verdictnet/verdict/internal/jinja/jinjatest"
	"github.com/verdictnet/verdict/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

type namedTemplate struct {
	name string
	t    *chat.Template
}

// templates returns every template under test: the built-ins, the ones
// written from model cards in testdata/templates, and those shipped in
// ../shared/tokenizers (skipped when absent).
func templates(t *testing.T) []namedTemplate {
	t.Helper()
	var out []namedTemplate
	add := func(name, src, bos, eos string) {
		tp, err := chat.New(name, src, bos, eos)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, namedTemplate{name, tp})
	}
	for _, b := range []string{chat.PlainName, chat.Llama2Name} {
		tp, err := chat.Builtin(b, "<s>", "</s>")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, namedTemplate{b, tp})
	}
	for _, f := range []struct{ file, bos, eos string }{
		{"chatml.jinja", "<s>", "</s>"},
		{"smollm2.jinja", "<|im_start|>", "<|im_end|>"},
		{"mistral-v0.3.jinja", "<s>", "</s>"},
		{"llama3.1.jinja", "<|begin_of_text|>", "<|eot_id|>"},
		{"gemma.jinja", "<bos>", "<eos>"},
		{"phi3.jinja", "<s>", "<|endoftext|>"},
		{"deepseek-r1.jinja", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"},
		{"hermes-macros.jinja", "<|begin_of_text|>", "<|im_end|>"},
	} {
		b, err := os.ReadFile(filepath.Join("testdata", "templates", f.file))
		if err != nil {
			t.Fatal(err)
		}
		add(strings.TrimSuffix(f.file, ".jinja"), string(b), f.bos, f.eos)
	}
	if p := sharedPath(t, "tokenizers/hf/qwen3/tokenizer_config.json"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			ChatTemplate string `json:"chat_template"`
			EOS          string `json:"eos_token"`
		}
		if err := json.Unmarshal(b, &cfg); err != nil {
			t.Fatal(err)
		}
		add("qwen3-hf", cfg.ChatTemplate, "", cfg.EOS)
	}
	for _, g := range []struct{ name, file string }{
		{"qwen3-gguf", "tokenizers/derived/ggml-vocab-qwen2.derived-from-qwen3.gguf"},
		{"llama3-gguf", "tokenizers/derived/ggml-vocab-llama-bpe.derived.gguf"},
	} {
		p := sharedPath(t, g.file)
		if p == "" {
			continue
		}
		src, bos, eos := ggufTemplate(t, p)
		add(g.name, src, bos, eos)
	}
	return out
}

// sharedPath is the path of a file under ../shared, or "" when it is absent
// (outside CI).
func sharedPath(t *testing.T, rel string) string {
	t.Helper()
	p := filepath.Join(testutil.RepoRoot(t), "..", "shared", filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("shared material missing in CI: %v", err)
		}
		return ""
	}
	return p
}

func ggufTemplate(t testing.TB, path string) (src, bos, eos string) {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src, err = f.String("tokenizer.chat_template")
	if err != nil {
		t.Fatal(err)
	}
	// The BOS/EOS texts as a GGUF states them; the vocabulary loader
	// may not know every tokenizer model, so read them directly.
	toks, err := f.Strings("tokenizer.ggml.tokens")
	if err != nil {
		t.Fatal(err)
	}
	get := func(key string) string {
		if !f.Has(key) {
			return ""
		}
		id, err := f.Int64(key)
		if err != nil || id < 0 || id >= int64(len(toks)) {
			t.Fatalf("%s: %v", key, err)
		}
		return toks[id]
	}
	return src, get("tokenizer.ggml.bos_token_id"), get("tokenizer.ggml.eos_token_id")
}

type conversation struct {
	Name    string          `json:"name"`
	Request json.RawMessage `json:"request"`
}

func conversations(t testing.TB) []conversation {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "conversations.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cs []conversation
	if err := json.Unmarshal(b, &cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

type render struct {
	label string
	vars  []byte
	text  string
	err   error
}

// TestTemplates renders every template with every conversation, with and
// without the generation prompt, and checks the text against the reference
// renderer (@huggingface/jinja, one node process) and against the golden
// files in testdata/golden (which pin the rendering where node is missing).
func TestTemplates(t *testing.T) {
	var all []render
	type goldenFile struct {
		name string
		from int
	}
	var files []goldenFile
	for _, nt := range templates(t) {
		files = append(files, goldenFile{nt.name, len(all)})
		for _, c := range conversations(t) {
			for _, agp := range []bool{false, true} {
				var r chat.Request
				if err := json.Unmarshal(c.Request, &r); err != nil {
					t.Fatalf("%s: %v", c.Name, err)
				}
				r.AddGenerationPrompt = agp
				rr := render{label: fmt.Sprintf("%s add_generation_prompt=%v", c.Name, agp)}
				vars, err := nt.t.Vars(&r)
				var fe *chat.FieldError
				if err != nil && !errors.As(err, &fe) {
					t.Fatalf("%s %s: %v", nt.name, rr.label, err)
				}
				rr.vars = vars
				p, err := nt.t.Render(&r)
				if err != nil {
					rr.err = err
				} else {
					rr.text = p.Text()
				}
				all = append(all, rr)
			}
		}
	}
	// Golden files.
	for i, f := range files {
		end := len(all)
		if i+1 < len(files) {
			end = files[i+1].from
		}
		var b strings.Builder
		for _, r := range all[f.from:end] {
			fmt.Fprintf(&b, "=== %s\n", r.label)
			if r.err != nil {
				fmt.Fprintf(&b, "ERROR %v\n", r.err)
			} else {
				b.WriteString(r.text)
				b.WriteString("\n")
			}
		}
		path := filepath.Join("testdata", "golden", f.name+".txt")
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if string(want) != b.String() {
			t.Errorf("%s: rendering differs from %s (run with -update if the change is intended)", f.name, path)
		}
	}
	// The reference renderer, for everything the chat layer accepted.
	var cases []jinjatest.Case
	var idx []int
	var srcs []string
	for i, f := range files {
		end := len(all)
		if i+1 < len(files) {
			end = files[i+1].from
		}
		for j := f.from; j < end; j++ {
			if all[j].vars == nil {
				continue
			}
			srcs = append(srcs, f.name)
			idx = append(idx, j)
			cases = append(cases, jinjatest.Case{Template: templateSource(t, f.name), Vars: all[j].vars})
		}
	}
	ref := jinjatest.Render(t, cases)
	same := 0
	for k, j := range idx {
		r, want := all[j], ref[k]
		switch {
		case !want.OK && r.err == nil:
			t.Errorf("%s %s: the reference fails (%s), we render %q", srcs[k], r.label, want.Error, r.text)
		case want.OK && r.err != nil:
			t.Errorf("%s %s: we fail (%v), the reference renders %q", srcs[k], r.label, r.err, want.Text)
		case want.OK && want.Text != r.text:
			t.Errorf("%s %s:\n got %q\nwant %q", srcs[k], r.label, r.text, want.Text)
		default:
			same++
		}
	}
	t.Logf("%d renders (%d templates), %d agree with @huggingface/jinja", len(all), len(files), same)
}

var sourceCache = map[string]string{}

func templateSource(t *testing.T, name string) string {
	if s, ok := sourceCache[name]; ok {
		return s
	}
	for _, nt := range templates(t) {
		sourceCache[nt.name] = nt.t.Source()
	}
	return sourceCache[name]
}
