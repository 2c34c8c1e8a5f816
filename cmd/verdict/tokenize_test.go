package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/testutil"
)

func TestTokenize(t *testing.T) {
	qwen := testutil.Shared(t, "tokenizers/derived/ggml-vocab-qwen2.derived-from-qwen3.gguf")
	llama3 := testutil.Shared(t, "tokenizers/derived/ggml-vocab-llama-bpe.derived.gguf")
	spm := filepath.Join(sharedModelsDir(t), "ggml-vocab-llama-spm.gguf")
	tests := []struct {
		args []string
		want []int
	}{
		// Expected ids: node-llama-cpp 3.21.1 (llama.cpp), with the
		// vocabulary's BOS in front where add_special adds it.
		// Qwen adds no BOS; the control token is text without --special.
		{[]string{"--model", qwen, "--text", "<|im_start|>user\nHello"}, []int{27, 91, 318, 4906, 91, 29, 872, 198, 9707}},
		{[]string{"--model", qwen, "--special", "--text", "<|im_start|>user\nHello"}, []int{151644, 872, 198, 9707}},
		// Llama 3 adds <|begin_of_text|> unless --no-bos.
		{[]string{"--model", llama3, "--text", "Hello world"}, []int{128000, 9906, 1917}},
		{[]string{"--model", llama3, "--no-bos", "--text", "Hello world"}, []int{9906, 1917}},
		{[]string{"--model", llama3, "--no-bos", "--special", "--text", "<|eot_id|>"}, []int{128009}},
		{[]string{"--model", spm, "--text", "Hello world"}, []int{1, 15043, 3186}},
		{[]string{"--model", spm, "--no-bos", "--text", ""}, []int{}},
		{[]string{"--text", "-5", "--model", spm, "--no-bos"}, []int{448, 29945}},
	}
	for _, tc := range tests {
		code, out, errs := verdict(append([]string{"tokenize"}, tc.args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errs)
		}
		var got []int
		if err := json.Unmarshal([]byte(out), &got); err != nil || !strings.HasSuffix(out, "]\n") || strings.Count(out, "\n") != 1 {
			t.Fatalf("%v: output %q is not one JSON array line: %v", tc.args, out, err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%v: %v, want %v", tc.args, got, tc.want)
		}
	}
	for _, args := range [][]string{
		{"tokenize", "--model", spm},
		{"tokenize", "--text", "x"},
		{"tokenize", "--model", filepath.Join(t.TempDir(), "missing.gguf"), "--text", "x"},
		{"tokenize", "--model", spm, "--text", "x", "extra"},
	} {
		code, _, errs := verdict(args...)
		if code == 0 || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want one error line", args, code, errs)
		}
	}
}

func TestInspectBPEVocab(t *testing.T) {
	qwen := testutil.Shared(t, "tokenizers/derived/ggml-vocab-qwen2.derived-from-qwen3.gguf")
	code, out, errs := verdict("model", "inspect", qwen)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, w := range []string{"flavor:        bpe", "pre-tokenizer: qwen2", "merges:        151387", `151645 "<|im_end|>"`,
		`end of gen.:   128247 "</s>", 151643 "<|endoftext|>", 151645 "<|im_end|>"`} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q", w)
		}
	}
}
