// Package jinjatest renders templates with the reference renderer, npm
// @huggingface/jinja, for differential tests: one node process renders a
// whole batch of cases.
package jinjatest

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"testing"

	"github.com/verdictnet/verdict/internal/testutil"
)

// Case is one render: a template and its variables as JSON.
type Case struct {
	Template string          `json:"template"`
	Vars     json.RawMessage `json:"vars"`
}

// Result is the reference's answer: the rendered text, or the error it threw.
type Result struct {
	OK    bool   `json:"ok"`
	Text  string `json:"text"`
	Error string `json:"error"`
}

const script = `
import { Template } from "@huggingface/jinja";
let input = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) input += chunk;
const cases = JSON.parse(input);
const out = cases.map((c) => {
  try {
    return { ok: true, text: new Template(c.template).render(c.vars) };
  } catch (e) {
    return { ok: false, error: String(e && e.message || e) };
  }
});
process.stdout.write(JSON.stringify(out));
`

// Render renders every case with @huggingface/jinja in one node process. It
// skips the test outside CI when node or the package is missing.
func Render(tb testing.TB, cases []Case) []Result {
	tb.Helper()
	node, dir := testutil.NodeModule(tb, "@huggingface/jinja")
	in, err := json.Marshal(cases)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(node, "--input-type=module", "-e", script)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("node @huggingface/jinja: %v\n%s", err, stderr.String())
	}
	var res []Result
	if err := json.Unmarshal(out, &res); err != nil {
		tb.Fatalf("node output: %v", err)
	}
	if len(res) != len(cases) {
		tb.Fatalf("node rendered %d cases, want %d", len(res), len(cases))
	}
	return res
}
