package e2e

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/mcpserver"
	"github.com/verdictnet/verdict/internal/synth"
	"github.com/verdictnet/verdict/internal/tensor"
	"github.com/verdictnet/verdict/internal/testutil"
	"github.com/verdictnet/verdict/internal/worker"
)

// TestOpenAIClient starts a gateway serving stories260K on a free loopback
// port and runs the node tests against it. Without node or
// e2e/node_modules it skips, except in CI (CI=true), where it fails.
func TestOpenAIClient(t *testing.T) {
	root := testutil.RepoRoot(t)
	dir := filepath.Join(root, "e2e")
	ci := os.Getenv("CI") == "true"
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "openai", "package.json"))
	}
	if err != nil {
		if ci {
			t.Fatalf("end-to-end test cannot run in CI: %v (run `npm ci` in e2e/)", err)
		}
		t.Skipf("node or the openai package is missing (%v); run `npm ci` in e2e/", err)
	}
	w, err := worker.Open(worker.Config{ModelPath: testutil.Shared(t, "models/stories260K.gguf"), Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// /metrics shows the worker's prefix cache at work (openai.test.mjs).
	reg := prometheus.NewRegistry()
	if err := w.Register(reg); err != nil {
		t.Fatal(err)
	}
	srv, err := gateway.New(gateway.Options{Backend: w, NoAuth: true, Registry: reg, ServeMetrics: true, MCP: func(g gateway.Gate) http.Handler {
		return mcpserver.HTTPHandler(mcpserver.New(w, mcpserver.Options{Gate: g}))
	}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := gateway.HTTPServer(srv)
	go hs.Serve(ln)
	defer hs.Close()

	// A second gateway for tool calls and reasoning: a tiny random model
	// with the real Qwen3 vocabulary and chat template (tools, <think>),
	// whose answers are forced to a thought and a tool call.
	toolsModel := filepath.Join(t.TempDir(), "qwen3-tiny.gguf")
	mf, err := os.Create(toolsModel)
	if err != nil {
		t.Fatal(err)
	}
	if err := synth.Generate("tiny", testutil.Shared(t, "tokenizers/derived/ggml-vocab-qwen2.derived-from-qwen3.gguf"), 1, tensor.Q8_0, mf); err != nil {
		t.Fatal(err)
	}
	if err := mf.Close(); err != nil {
		t.Fatal(err)
	}
	tw, err := worker.Open(worker.Config{ModelPath: toolsModel, Threads: 1, ForcedOutputForTests: forcedAnswer})
	if err != nil {
		t.Fatal(err)
	}
	defer tw.Close()
	tsrv, err := gateway.New(gateway.Options{Backend: tw, NoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ths := &http.Server{Handler: tsrv}
	go ths.Serve(tln)
	defer ths.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tests, err := filepath.Glob(filepath.Join(dir, "*.test.mjs"))
	if err != nil || len(tests) == 0 {
		t.Fatalf("no node tests in %s: %v", dir, err)
	}
	cmd := exec.CommandContext(ctx, node, append([]string{"--test"}, tests...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "VERDICT_BASE_URL=http://"+ln.Addr().String()+"/v1", "VERDICT_MODEL=stories260K",
		"VERDICT_TOOLS_BASE_URL=http://"+tln.Addr().String()+"/v1", "VERDICT_TOOLS_MODEL=qwen3-tiny")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil {
		if errors.As(err, &ee) {
			t.Fatalf("node tests failed (exit %d):\n%s", ee.ExitCode(), out)
		}
		t.Fatalf("running node: %v\n%s", err, out)
	}
	t.Logf("node tests:\n%s", out)
}

// forcedAnswer is what the tools gateway's model answers.
const forcedAnswer = "<think>\nWeather.\n</think>\n\nOK.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"
