package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/chat"
	"github.com/verdictnet/verdict/internal/gguf"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/testutil"
	"github.com/verdictnet/verdict/internal/worker"
)

// vocabWithTemplate copies a vocabulary-only GGUF, adding a chat template.
func vocabWithTemplate(t *testing.T, src, tmpl string) string {
	t.Helper()
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kvs := append(slices.Clone(f.KV), gguf.KV{Key: "tokenizer.chat_template", Value: gguf.String(tmpl)})
	dst := filepath.Join(t.TempDir(), "vocab-chat.gguf")
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := gguf.Write(out, kvs, nil); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestChatRender(t *testing.T) {
	stories := testutil.Shared(t, "models/stories260K.gguf")
	vocab := vocabWithTemplate(t, testutil.Shared(t, "models/ggml-vocab-llama-spm.gguf"),
		"{{ bos_token }}{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}{% if tools %}{{ tools | length }} tools{% endif %}{% if add_generation_prompt %}>{% endif %}{% if enable_thinking is false %} no-think{% endif %}")
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	basic := write("basic.json", `{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi </s>"}],"temperature":0}`)
	tools := write("tools.json", `{"messages":[{"role":"user","content":"w?"}],"tools":[{"type":"function","function":{"name":"f"}}],"chat_template_kwargs":{"enable_thinking":false},"add_generation_prompt":false}`)
	badRole := write("role.json", `{"messages":[{"role":"robot","content":"x"}]}`)
	tests := []struct {
		name string
		args []string
		code int
		want string // exact stdout, or a part of stderr when code != 0
	}{
		{"plain", []string{"--model", stories, "--request", basic}, 0, "<s>Be brief.\nHi </s>"},
		{"vocab-only with template", []string{"--model", vocab, "--request", basic}, 0, "<s>[INST] Be brief. [/INST][INST] Hi </s> [/INST]>"},
		{"tools and kwargs", []string{"--model", vocab, "--request", tools}, 0, "<s>[INST] w? [/INST]1 tools no-think"},
		{"tools refused", []string{"--model", stories, "--request", tools}, 1, "cannot show tools"},
		{"unknown role", []string{"--model", stories, "--request", badRole}, 1, `unsupported role "robot"`},
		{"missing request", []string{"--model", stories}, 2, "Usage"},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"chat", "render"}, tc.args...), &out, &errb)
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d (stderr %q)", tc.name, code, tc.code, errb.String())
			continue
		}
		if code == 0 && out.String() != tc.want {
			t.Errorf("%s: printed %q, want %q", tc.name, out.String(), tc.want)
		}
		if code != 0 && !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%s: stderr %q, want %q", tc.name, errb.String(), tc.want)
		}
	}
	// --tokens: the template's BOS is the only BOS and the user's "</s>"
	// is text.
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"chat", "render", "--model", vocab, "--request", basic, "--tokens"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var ids []int
	if err := json.Unmarshal(out.Bytes(), &ids); err != nil {
		t.Fatal(err)
	}
	if ids[0] != 1 || slices.Contains(ids[1:], 1) || slices.Contains(ids, 2) {
		t.Errorf("tokens %v: want one BOS (1) first and no EOS (2)", ids)
	}
}

// A receipt of a chat request names its template rendering: `verify
// --request` re-renders the request and checks it against the receipt.
func TestVerifyChatRequest(t *testing.T) {
	stories := testutil.Shared(t, "models/stories260K.gguf")
	w, err := worker.Open(worker.Config{ModelPath: stories, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	body := `{"model":"stories260K","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":8}`
	req, err := chat.ParseRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	p, err := w.Models()[0].Template.Render(req)
	if err != nil {
		t.Fatal(err)
	}
	res, err := w.Generate(context.Background(), worker.Request{Model: "stories260K", Chat: p, MaxTokens: 8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := receipt.Parse(res.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	if rc.ChatTemplate != merkle.Hash(p.Digest) || rc.ChatTemplate == (merkle.Hash{}) {
		t.Fatalf("receipt chat_template %s, want %x", rc.ChatTemplate, p.Digest)
	}
	dir := t.TempDir()
	rpath, good, other := filepath.Join(dir, "r.json"), filepath.Join(dir, "req.json"), filepath.Join(dir, "other.json")
	for path, data := range map[string]string{rpath: string(res.Receipt), good: body,
		other: strings.Replace(body, `"max_tokens":8`, `"max_tokens":8,"add_generation_prompt":false,"chat_template_kwargs":{"x":1}`, 1)} {
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"verify", rpath, "--model", stories, "--request", good}, &out, &errb); code != 0 || !strings.Contains(out.String(), "re-renders to the receipt's chat_template") {
		t.Fatalf("verify: exit %d\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"verify", rpath, "--model", stories, "--request", other}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "but the request renders to") {
		t.Fatalf("verify with another request: exit %d\n%s%s", code, out.String(), errb.String())
	}
}
