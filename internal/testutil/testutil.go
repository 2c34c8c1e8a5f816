package testutil

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RepoRoot returns the directory holding go.mod, searching upwards from the
// working directory.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Shared returns the path of rel inside ../shared beside the repository,
// skipping the test when the shared material is absent.
func Shared(tb testing.TB, rel string) string {
	tb.Helper()
	p := filepath.Join(RepoRoot(tb), "..", "shared", rel)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("shared material missing in CI: %v", err)
		}
		tb.Skipf("shared material not available: %v", err)
	}
	return p
}

// NodeModule returns the path of node and of e2e/, whose node_modules holds
// the reference implementations the tests compare against (the openai
// client, node-llama-cpp, @huggingface/jinja; see e2e/package.json). A
// script fed to `node --input-type=module` on standard input, with its
// working directory in e2e/, imports them by name (a script file elsewhere
// would resolve imports from its own folder). node-llama-cpp is the
// exception: it forks node to test its prebuilt binary, and the child
// inherits --input-type=module and fails (NoBinaryFoundError); feed it a
// CommonJS script with a dynamic import instead (internal/refcheck/llama.cjs).
// Without node or the package it skips the test, except in CI (CI=true),
// where it fails: the reference comparisons are part of the contract.
func NodeModule(tb testing.TB, pkg string) (node, dir string) {
	tb.Helper()
	dir = filepath.Join(RepoRoot(tb), "e2e")
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", filepath.FromSlash(pkg), "package.json"))
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("node package %s is needed in CI: %v (run `npm ci` in e2e/)", pkg, err)
		}
		tb.Skipf("node or the node package %s is missing (%v); run `npm ci` in e2e/", pkg, err)
	}
	return node, dir
}

// RunLlamaScript runs an ES-module script against llama.cpp through
// node-llama-cpp (skipping or failing as NodeModule does) and decodes its
// standard output, one JSON value, into out. The script is written to a
// file (see NodeModule for why not standard input) and called as
// `node SCRIPT ENTRY INPUT`: ENTRY is the path of node-llama-cpp's entry
// module, for a dynamic import, and INPUT a file holding in as JSON.
func RunLlamaScript(tb testing.TB, script string, in, out any) {
	tb.Helper()
	node, dir := NodeModule(tb, "node-llama-cpp")
	data, err := json.Marshal(in)
	if err != nil {
		tb.Fatal(err)
	}
	tmp := tb.TempDir()
	inFile, scriptFile := filepath.Join(tmp, "input.json"), filepath.Join(tmp, "script.mjs")
	if err := os.WriteFile(inFile, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(scriptFile, []byte(script), 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(node, scriptFile, filepath.Join(dir, "node_modules", "node-llama-cpp", "dist", "index.js"), inFile)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("node-llama-cpp: %v\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		tb.Fatalf("node-llama-cpp output: %v\n%s", err, stderr.String())
	}
}
