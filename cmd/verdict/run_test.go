package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/testutil"
)

// runCLI runs one verdict command line in-process.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestRunMatchesLlama2C compares stdout with run.c's greedy outputs byte for
// byte, for the llama2.c checkpoint and its GGUF conversions (tokenizer from
// the GGUF).
func TestRunMatchesLlama2C(t *testing.T) {
	models := testutil.Shared(t, "models")
	ref := testutil.Shared(t, "reference/greedy")
	type tc struct {
		model, prompt, want string
		steps               string
	}
	cases := []tc{
		{"stories260K.bin", "Once upon a time", "p1.txt", "64"},
		{"stories260K.bin", "Lily and Tom went to the park", "p2.txt", "64"},
		{"stories260K.bin", "The little dog", "p3.txt", "64"},
		{"stories260K.bin", "", "noprompt_200.txt", "200"},
	}
	for _, m := range []string{"stories260K.gguf", "stories260K-F16.gguf", "stories260K-Q8_0.gguf"} {
		cases = append(cases,
			tc{m, "Once upon a time", "p1.txt", "64"},
			tc{m, "Lily and Tom went to the park", "p2.txt", "64"},
			tc{m, "The little dog", "p3.txt", "64"})
	}
	for _, c := range cases {
		t.Run(c.model+"/"+c.want, func(t *testing.T) {
			args := []string{"run", "--model", models + "/" + c.model, "--prompt", c.prompt, "--steps", c.steps, "--threads", "2"}
			if strings.HasSuffix(c.model, ".bin") {
				args = append(args, "--tokenizer", models+"/tok512.bin")
			}
			code, stdout, stderr := runCLI(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			want, err := os.ReadFile(ref + "/" + c.want)
			if err != nil {
				t.Fatal(err)
			}
			if stdout != string(want) {
				t.Fatalf("stdout differs from run.c:\n got %q\nwant %q", stdout, want)
			}
		})
	}
}

func TestRunDigestLine(t *testing.T) {
	m := testutil.Shared(t, "models/stories260K.gguf")
	var digests []string
	for _, extra := range [][]string{{"--threads", "1"}, {"--threads", "3", "--token-by-token"}} {
		args := append([]string{"run", "--model", m, "--prompt", "The little dog", "--steps", "40", "--digest"}, extra...)
		code, stdout, stderr := runCLI(t, args...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
		last := lines[len(lines)-1]
		if !regexp.MustCompile(`^digest: [0-9a-f]{64}$`).MatchString(last) {
			t.Fatalf("last line %q is not a digest line", last)
		}
		digests = append(digests, last)
	}
	if digests[0] != digests[1] {
		t.Fatalf("digest changed with threads/prefill: %s vs %s", digests[0], digests[1])
	}
}

// TestRunBadInput: each bad input gives exit status 1 and one line on stderr
// that names the problem.
func TestRunBadInput(t *testing.T) {
	models := testutil.Shared(t, "models")
	dir := t.TempDir()
	junk := dir + "/junk.gguf"
	os.WriteFile(junk, []byte("GGUF\x03\x00\x00\x00garbage"), 0o644)
	long := strings.Repeat("once upon a time ", 100)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no model flag", []string{"run", "--prompt", "x"}, "--model is required"},
		{"missing file", []string{"run", "--model", dir + "/nope.gguf"}, "nope.gguf"},
		{"corrupt gguf", []string{"run", "--model", junk}, "junk.gguf"},
		{"prompt longer than context", []string{"run", "--model", models + "/stories260K.gguf", "--prompt", long}, "prompt too long"},
		{"bad temperature", []string{"run", "--model", models + "/stories260K.gguf", "--temperature", "-1"}, "temperature"},
		{"bad top-p", []string{"run", "--model", models + "/stories260K.gguf", "--top-p", "2"}, "top-p"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, c.args...)
			if code == 0 {
				t.Fatal("exit status 0")
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "verdict: ") || !strings.Contains(last, c.want) {
				t.Fatalf("stderr %q does not end in a `verdict: ` line mentioning %q", stderr, c.want)
			}
		})
	}
}

// TestRunMaxTokens: --max-tokens counts generated tokens only (the prompt
// "Once upon a time" is BOS and 4 tokens, so 10 tokens are --steps 14),
// refuses to be combined with --steps, and a request beyond the context
// length is one clear error.
func TestRunMaxTokens(t *testing.T) {
	models := testutil.Shared(t, "models")
	m := models + "/stories260K.gguf"
	code, out1, stderr := runCLI(t, "run", "--model", m, "--prompt", "Once upon a time", "--max-tokens", "10", "--digest")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "generated 10 tokens") {
		t.Errorf("stderr %q does not report 10 generated tokens", stderr)
	}
	code, out2, stderr := runCLI(t, "run", "--model", m, "--prompt", "Once upon a time", "--steps", "14", "--digest")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if out1 != out2 {
		t.Errorf("--max-tokens 10 gave %q, --steps 14 gave %q", out1, out2)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-tokens", "10", "--steps", "14"}, "give one"},
		{[]string{"--max-tokens", "-1"}, "negative"},
		{[]string{"--max-tokens", "125"}, "need 129 positions; the model's context length is 128"},
	} {
		code, _, stderr := runCLI(t, append([]string{"run", "--model", m, "--prompt", "Once upon a time"}, bad.args...)...)
		if code == 0 || !strings.Contains(stderr, bad.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q, want one line mentioning %q", bad.args, code, stderr, bad.want)
		}
	}
}
