package main

import (
	"strings"
	"testing"
)

// TestFlagErrors: a flag with a bad value, without its value, or not
// defined is one line on stderr naming the command and the flag, with
// exit status 2; the flag package printed its error, then the whole
// usage, and run the error again. -h still prints the usage.
func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"gateway", "--node", "x", "--body-timeout", "soon"}, `verdict: gateway: invalid value "soon" for flag -body-timeout: parse error`},
		{[]string{"bench", "--threads", "x"}, `verdict: bench: invalid value "x" for flag -threads: parse error`},
		{[]string{"worker", "--no-auth=maybe"}, `verdict: worker: invalid boolean value "maybe" for -no-auth: parse error`},
		{[]string{"explorer", "--addr"}, `verdict: explorer: flag needs an argument: -addr`},
		{[]string{"tx", "--fee", "-1", "send"}, `verdict: tx: invalid value "-1" for flag -fee: parse error`},
		{[]string{"tx", "send", "--amount", "lots"}, `verdict: tx send: invalid value "lots" for flag -amount: parse error`},
		{[]string{"keys", "new", "--bogus"}, `verdict: keys new: flag provided but not defined: -bogus`},
		{[]string{"model", "id", "--bogus", "m.gguf"}, `verdict: model id: flag provided but not defined: -bogus`},
		{[]string{"node", "init", "--port", "x"}, `verdict: node init: invalid value "x" for flag -port: parse error`},
		{[]string{"chat", "render", "--bogus"}, `verdict: chat render: flag provided but not defined: -bogus`},
	} {
		code, stdout, stderr := verdict(tc.args...)
		if code != 2 || stdout != "" || stderr != tc.want+"\n" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
	// Every command and subcommand alike.
	var lines [][]string
	for name := range commands {
		lines = append(lines, []string{name, "--no-such-flag"})
	}
	for _, sub := range [][]string{{"keys", "new"}, {"keys", "show"}, {"model", "inspect"}, {"model", "synth"}, {"model", "id"},
		{"node", "init"}, {"node", "start"}, {"tx", "open-escrow"}, {"chat", "render"}} {
		lines = append(lines, append(sub, "--no-such-flag"))
	}
	for _, args := range lines {
		code, stdout, stderr := verdict(args...)
		if code == 0 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "verdict: ") {
			t.Errorf("verdict %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, stdout, stderr)
		}
	}
	// -h prints the usage, flags and all, and exits 0.
	for _, args := range [][]string{{"gateway", "-h"}, {"tx", "send", "--help"}, {"chat", "render", "-h"}} {
		code, stdout, stderr := verdict(args...)
		if code != 0 || !strings.Contains(strings.ToLower(stdout+stderr), "usage") || strings.Count(stdout+stderr, "\n") < 3 {
			t.Errorf("verdict %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, stdout, stderr)
		}
	}
	if _, stdout, stderr := verdict("gateway", "-h"); !strings.Contains(stdout+stderr, "-body-timeout") {
		t.Errorf("gateway -h does not list -body-timeout: %s", stdout+stderr)
	}
}
