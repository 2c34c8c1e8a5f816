package main

import (
	"strings"
	"testing"
)

// TestHelp: -h works for every command and subcommand (exit 0, usage
// printed), and `verdict tx -h` lists every transaction kind with its
// flags.
func TestHelp(t *testing.T) {
	var lines [][]string
	for name := range commands {
		lines = append(lines, []string{name, "-h"}, []string{name, "--help"})
	}
	for _, sub := range [][]string{{"keys", "new"}, {"keys", "show"}, {"model", "inspect"}, {"model", "synth"}, {"model", "id"},
		{"node", "init"}, {"node", "start"}, {"tx", "send"}, {"tx", "open-escrow"}} {
		lines = append(lines, append(sub, "-h"))
	}
	for _, args := range lines {
		code, stdout, stderr := verdict(args...)
		if code != 0 || !strings.Contains(strings.ToLower(stdout+stderr), "usage") {
			t.Errorf("verdict %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, stdout, stderr)
		}
	}
	_, stdout, stderr := verdict("tx", "-h")
	for kind := range txKinds {
		if !strings.Contains(stdout+stderr, "\n  "+kind+" ") {
			t.Errorf("tx -h does not list %s", kind)
		}
	}
	var escrowLine string
	for _, l := range strings.Split(stdout+stderr, "\n") {
		if strings.HasPrefix(l, "  open-escrow ") {
			escrowLine = l
		}
	}
	for _, f := range []string{"--agent-id UINT", "--amount UINT", "--model-id STRING", "--request STRING", "--worker STRING"} {
		if !strings.Contains(escrowLine, " "+f) {
			t.Errorf("tx -h does not give open-escrow's flag %s:\n%s", f, stdout+stderr)
		}
	}
	if _, stdout, stderr := verdict("worker", "-h"); !strings.Contains(stdout+stderr, "-cheat-for-tests") || !strings.Contains(stdout+stderr, "-no-auth") {
		t.Errorf("worker -h lacks --cheat-for-tests or --no-auth")
	}
}
