package explorer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/devnet"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/testutil"
)

// Markup that must be shown as text wherever the ledger carries it: in a
// prompt, a model name, an agent's name and its URI.
const (
	hostile    = `<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">`
	hostileURI = `javascript:window.__pwned=1//"><script>window.__pwned=1</script>`
)

// chromium finds the browser: $VERDICT_CHROMIUM, or Debian's chromium
// package. Missing, it skips the test, except in CI, where it fails.
func chromium(t *testing.T) string {
	t.Helper()
	for _, c := range []string{os.Getenv("VERDICT_CHROMIUM"), "chromium", "chromium-browser"} {
		if c == "" {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is needed in CI (apt-get install chromium; .ci/run installs it)")
	}
	t.Skip("chromium is not installed (apt-get install chromium, or set VERDICT_CHROMIUM)")
	return ""
}

// network is what the browser script needs to know of one devnet.
type network struct {
	Gateway      string `json:"gateway"`
	Explorer     string `json:"explorer"`
	RPC          string `json:"rpc"`
	APIKey       string `json:"apiKey"`
	Model        string `json:"model"`
	ModelID      string `json:"modelId"`
	Worker       string `json:"worker"`
	User         string `json:"user"`
	HostileModel string `json:"hostileModel,omitempty"`
}

// startDevnet starts a devnet (from any goroutine: it returns errors) and
// stops it when the test ends.
func startDevnet(t *testing.T, dir string, cheat bool) (*devnet.Devnet, network, error) {
	p := devnet.DevParams()
	if cheat {
		// The verifier's replay catches the worker and its dispute
		// slashes it: no audit, a window long enough for the dispute on a
		// loaded machine (as TestCheatingWorker).
		p.AuditRateBps, p.ChallengeWindow, p.OpeningWindow = 0, 200, 100
	} else {
		// Long enough for the browser to open the page before the
		// receipt is final.
		p.ChallengeWindow = 40
	}
	d, err := devnet.Start(context.Background(), devnet.Options{Dir: dir, Addr: "127.0.0.1:0", Threads: 1,
		BlockInterval: 200 * time.Millisecond, Params: &p, CheatForTests: cheat})
	if err != nil {
		return nil, network{}, err
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("devnet stop: %v", err)
		}
	})
	user, _ := ledger.AddressOf(d.User.Public)
	return d, network{Gateway: d.GatewayURL, Explorer: d.ExplorerURL, RPC: strings.Replace(d.RPC, "tcp://", "http://", 1),
		APIKey: d.APIKey, Model: d.Model.Name, ModelID: ledger.Hash(d.Model.ID).String(), Worker: d.Chain.Address().String(), User: user.String()}, nil
}

// TestBrowser opens the explorer in headless Chromium against two devnets
// and checks what it shows against the ledger: a receipt going published
// to final live, the overview, models, workers and account pages, 404s,
// the phone layout, a cheating worker's receipt going to slashed with its
// dispute rounds drawn, and that no markup from the ledger ran as script.
// Screenshots go to $VERDICT_ARTIFACTS/explorer (or a temporary folder).
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two devnets and a browser")
	}
	chrome := chromium(t)
	node, e2e := testutil.NodeModule(t, "puppeteer-core")
	artifacts := t.TempDir()
	if dir := os.Getenv("VERDICT_ARTIFACTS"); dir != "" {
		artifacts = filepath.Join(dir, "explorer")
		if err := os.MkdirAll(artifacts, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var cheat network
	var cheatErr error
	var wg sync.WaitGroup
	wg.Add(1)
	cheatDir := t.TempDir()
	go func() {
		defer wg.Done()
		_, cheat, cheatErr = startDevnet(t, cheatDir, true)
	}()
	hd, honest, err := startDevnet(t, t.TempDir(), false)
	wg.Wait()
	if err != nil || cheatErr != nil {
		t.Fatalf("devnets: %v, %v", err, cheatErr)
	}

	// Markup in a model name and an agent URI, put on the ledger by the
	// user (anyone may register either).
	ctx := context.Background()
	hm := ledger.Hash(sha256.Sum256([]byte("hostile model")))
	honest.HostileModel = hm.String()
	for _, m := range []ledger.Msg{
		&ledger.MsgRegisterModel{ModelID: hm, Name: hostile, SpecVersion: 2},
		&ledger.MsgRegisterAgent{AgentURI: hostileURI, Metadata: []ledger.MetadataEntry{{MetadataKey: "name", MetadataValue: []byte(hostile)}}},
	} {
		tx, err := hd.Client.Sign(ctx, hd.User.Private, m, 1, -1)
		if err != nil {
			t.Fatal(err)
		}
		res, err := hd.Client.BroadcastCommit(ctx, tx)
		if err != nil || res.Code != 0 {
			t.Fatalf("%s: %v %+v", m.Kind(), err, res)
		}
	}
	waitIndexed(t, hd.Client, honest.Explorer)

	in, _ := json.Marshal(map[string]any{"chromium": chrome, "artifacts": artifacts, "hostile": hostile, "hostileURI": hostileURI,
		"honest": honest, "cheat": cheat})
	inFile := filepath.Join(t.TempDir(), "input.json")
	if err := os.WriteFile(inFile, in, 0o600); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join("testdata", "browser.cjs"))
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, node, script, filepath.Join(e2e, "node_modules", "puppeteer-core"), inFile)
	cmd.Dir = e2e
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	runErr := cmd.Run()
	var out struct {
		Failures []string       `json:"failures"`
		Shots    []string       `json:"shots"`
		Measured map[string]any `json:"measured"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("browser script: %v (%v)\nstdout: %s\nstderr: %s", err, runErr, stdout.String(), stderr.String())
	}
	t.Logf("browser script: %s; measured %v", time.Since(t0).Round(time.Millisecond), out.Measured)
	t.Logf("screenshots: %s", strings.Join(out.Shots, " "))
	for _, f := range out.Failures {
		t.Error(f)
	}
	if runErr != nil {
		t.Errorf("browser script: %v\n%s", runErr, stderr.String())
	}
}

// waitIndexed waits until the explorer has indexed the ledger's current
// height (its first pages then list everything committed so far).
func waitIndexed(t *testing.T, c *client.Client, explorer string) {
	t.Helper()
	h, err := c.Height(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if shown := liveHeight(explorer); shown >= h {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the explorer did not reach height %d", h)
}

var liveRE = regexp.MustCompile(`id="live-height">(\d+)<`)

// liveHeight reads the height the explorer has indexed from its overview
// (0 when it cannot say).
func liveHeight(explorer string) int64 {
	resp, err := http.Get(explorer)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := liveRE.FindSubmatch(b)
	if m == nil {
		return 0
	}
	h, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return h
}
