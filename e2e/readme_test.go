package e2e

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/testutil"
)

// readmeBlock returns the first ```sh block after heading in README.md.
func readmeBlock(t *testing.T, root, heading string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, heading)
	if i < 0 {
		t.Fatalf("README.md has no %q", heading)
	}
	a := strings.Index(s[i:], "```sh\n")
	if a < 0 {
		t.Fatalf("no sh block after %q", heading)
	}
	s = s[i+a+len("```sh\n"):]
	end := strings.Index(s, "```")
	if end < 0 {
		t.Fatalf("unterminated sh block after %q", heading)
	}
	return s[:end]
}

// readmeChecks runs after the README's testnet block, in its shell: a
// request's receipt becomes final, the validator that was stopped and
// restarted catches up, and the nodes warned of nothing on the way.
const readmeChecks = `
RID=$(curl -s http://127.0.0.1:8081/v1/chat/completions -H 'Authorization: Bearer vk-alice' -H 'Content-Type: application/json' \
  -d '{"model":"stories260K","messages":[{"role":"user","content":"Tom"}],"max_tokens":8}' | sed -n 's/.*"receipt_id":"\([0-9a-f]*\)".*/\1/p')
[ ${#RID} = 64 ] || { echo "no receipt id"; exit 1; }
for i in $(seq 120); do
  curl -s http://127.0.0.1:8081/v1/receipts/$RID -H 'Authorization: Bearer vk-alice' | grep -q '"status":"final"' && break
  sleep 1
done
curl -s http://127.0.0.1:8081/v1/receipts/$RID -H 'Authorization: Bearer vk-alice' | grep -q '"status":"final"' || { echo "receipt $RID not final"; exit 1; }
height() { verdict query --node $1 chain | sed -n 's/.*"height": *\([0-9]*\).*/\1/p'; }
H0=$(height tcp://127.0.0.1:26657)
for i in $(seq 60); do [ "$(height tcp://127.0.0.1:26667)" -ge "$H0" ] 2>/dev/null && break; sleep 1; done
[ "$(height tcp://127.0.0.1:26667)" -ge "$H0" ] || { echo "the restarted validator did not catch up to $H0"; exit 1; }
! grep -h 'level=WARN' NETDIR/node*.log | grep -v 'module=cometbft' || { echo "unexpected warnings"; exit 1; }
echo README-TESTNET-OK receipt $RID final
`

// TestREADMETestnet runs the README's testnet walkthrough as written (4
// validator processes, a worker with a paying account, a verifier, a
// request, a validator stopped and restarted), its network directory
// moved from /tmp/net to a temporary one, then checks that a receipt
// becomes final and the restarted validator catches up. It needs the
// walkthrough's fixed ports (26656-26687, 8081, 9101) free and curl, and
// takes about a minute: skipped with -short.
func TestREADMETestnet(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a four-validator testnet")
	}
	testutil.Shared(t, "models/stories260K.gguf")
	for _, tool := range []string{"bash", "curl", "sed", "awk"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is needed: %v", tool, err)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
	for _, port := range []string{"26656", "26657", "26667", "26677", "26687", "8081", "9101"} {
		ln, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			t.Skipf("port %s is taken: %v", port, err)
		}
		ln.Close()
	}
	root := testutil.RepoRoot(t)
	netDir := filepath.Join(t.TempDir(), "net")
	block := readmeBlock(t, root, "### A worker and a verifier against a testnet")
	if strings.Count(block, "/tmp/net") < 5 {
		t.Fatalf("the walkthrough no longer uses /tmp/net:\n%s", block)
	}
	script := "set -e\ntrap 'kill $(jobs -p) 2> /dev/null; wait' EXIT\n" + block + strings.ReplaceAll(readmeChecks, "NETDIR", "/tmp/net")
	script = strings.ReplaceAll(script, "/tmp/net", netDir)
	// The block builds ./verdict in the repository's root; leave no binary.
	bin := filepath.Join(root, "verdict")
	if _, err := os.Stat(bin); err == nil {
		t.Skipf("%s exists; the walkthrough would overwrite it", bin)
	}
	defer os.Remove(bin)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "README-TESTNET-OK") || !strings.Contains(string(out), `"receipt_id"`) {
		var ee *exec.ExitError
		errors.As(err, &ee)
		logs, _ := exec.Command("bash", "-c", "tail -n 20 "+netDir+"/node*.log "+netDir+"/run/*.log").CombinedOutput()
		t.Fatalf("the README walkthrough failed (%v):\n%s\nlogs:\n%s", err, out, logs)
	}
	t.Logf("README walkthrough in %v", time.Since(t0).Round(time.Second))
}
