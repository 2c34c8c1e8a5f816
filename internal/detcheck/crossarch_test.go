package detcheck

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/testutil"
)

// crossPackages hold the golden-bit tests (testdata digests) that must pass
// unchanged on every target.
var crossPackages = []string{"./internal/detmath", "./internal/kernels", "./internal/engine"}

// ledgerRun is the ledger's app-hash determinism test (golden app hashes).
var ledgerRun = []string{"-run", "^TestDeterminism$", "./internal/ledger"}

// receiptRun replays and audits a golden receipt made on amd64.
var receiptRun = []string{"-run", "^TestGoldenReceipt$", "./internal/audit"}

// TestGoldenBitsOnArm64 runs the golden-bit tests of the numeric packages
// built for GOARCH=arm64 under qemu-user: the same digests must come out.
func TestGoldenBitsOnArm64(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-architecture run")
	}
	qemu, err := exec.LookPath("qemu-aarch64-static")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("qemu-aarch64-static not installed (.ci/run installs qemu-user-static)")
		}
		t.Skip("qemu-aarch64-static not installed (apt-get install qemu-user-static)")
	}
	runGoTest(t, []string{"GOARCH=arm64", "CGO_ENABLED=0"}, append([]string{"-exec", qemu}, crossPackages...)...)
	runGoTest(t, []string{"GOARCH=arm64", "CGO_ENABLED=0"}, append([]string{"-exec", qemu}, ledgerRun...)...)
	runGoTest(t, []string{"GOARCH=arm64", "CGO_ENABLED=0"}, append([]string{"-exec", qemu}, receiptRun...)...)
}

// TestGoldenBitsOnAmd64v3 runs the same tests built with GOAMD64=v3, where
// Go would fuse multiply-adds if the code let it.
func TestGoldenBitsOnAmd64v3(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-target run")
	}
	info, err := os.ReadFile("/proc/cpuinfo")
	if err != nil || !hasFlags(string(info), "avx2", "fma", "bmi2", "movbe") {
		t.Skip("this CPU cannot run GOAMD64=v3 code")
	}
	runGoTest(t, []string{"GOARCH=amd64", "GOAMD64=v3"}, crossPackages...)
	runGoTest(t, []string{"GOARCH=amd64", "GOAMD64=v3"}, ledgerRun...)
}

func hasFlags(cpuinfo string, flags ...string) bool {
	for _, line := range strings.Split(cpuinfo, "\n") {
		if !strings.HasPrefix(line, "flags") {
			continue
		}
		have := map[string]bool{}
		for _, f := range strings.Fields(line) {
			have[f] = true
		}
		for _, f := range flags {
			if !have[f] {
				return false
			}
		}
		return true
	}
	return false
}

func runGoTest(t *testing.T, env []string, extra ...string) {
	args := append([]string{"test", "-count=1", "-timeout", "20m"}, extra...)
	cmd := exec.Command("go", args...)
	cmd.Dir = testutil.RepoRoot(t)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	t.Logf("%v go %s:\n%s", env, strings.Join(args, " "), out)
	if err != nil {
		t.Fatalf("golden-bit tests failed for %v: %v", env, err)
	}
}
