package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/node"
	"github.com/verdictnet/verdict/internal/loopport"
)

// ledgerPortBase returns a port p with p and p+1 free on loopback.
func ledgerPortBase(t *testing.T) int {
	p, err := loopport.Range(2)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLedgerCLI runs `verdict node init`, `node start`, `tx` and `query`
// against a single in-process node.
func TestLedgerCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a CometBFT node")
	}
	home, err := os.MkdirTemp("", "verdict-cli-node-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 20 && os.RemoveAll(home) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	port := ledgerPortBase(t)
	rpc := fmt.Sprintf("tcp://127.0.0.1:%d", port+1)
	cli := func(ctx context.Context, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(ctx, args, &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, _, stderr := cli(context.Background(), "node", "init", "--home", home, "--chain-id", "cli-test", "--port", fmt.Sprint(port), "--block-interval", "100ms"); code != 0 {
		t.Fatalf("node init: %s", stderr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		code, _, _ := cli(ctx, "node", "start", "--home", home, "--log-level", "error")
		done <- code
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("node start exited %d", code)
		}
	}()
	faucet := filepath.Join(home, "faucet.json")
	bob, err := keys.Generate(filepath.Join(t.TempDir(), "bob.json"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, _, _ := cli(context.Background(), "query", "--node", rpc, "chain")
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node did not come up")
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, out, stderr := cli(context.Background(), "tx", "--node", rpc, "--key", faucet, "send", "--to", bob.Address(), "--amount", "777")
	if code != 0 || !strings.Contains(out, `"type": "`+string(ledger.EventTransfer)+`"`) {
		t.Fatalf("tx send: %d %s %s", code, out, stderr)
	}
	code, out, stderr = cli(context.Background(), "query", "--node", rpc, "account/"+bob.Address())
	if code != 0 || !strings.Contains(out, `"balance": 777`) {
		t.Fatalf("query: %d %s %s", code, out, stderr)
	}
	// --chain-id pins the chain: the node's own is taken, another refused;
	// --max-tx-fee refuses a fee above it; both in one line, nothing sent.
	if code, out, stderr := cli(context.Background(), "tx", "--node", rpc, "--chain-id", "cli-test", "--key", faucet, "send", "--to", bob.Address(), "--amount", "1"); code != 0 {
		t.Fatalf("tx --chain-id cli-test: %d %s %s", code, out, stderr)
	}
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--chain-id", "other-chain"}, `node is on another chain: it reports chain id "cli-test", want "other-chain"`},
		{[]string{"--fee", "5", "--max-tx-fee", "4"}, "fee above the client's maximum: a send transaction's fee 5 (given) is above 4; not signed"},
		{[]string{"--max-tx-fee", "0"}, "--max-tx-fee must be positive"},
	} {
		args := append(append([]string{"tx", "--node", rpc, "--key", faucet}, tc.flags...), "send", "--to", bob.Address(), "--amount", "1000")
		code, _, stderr := cli(context.Background(), args...)
		if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: %d %q, want %q", tc.flags, code, stderr, tc.want)
		}
	}
	code, out, stderr = cli(context.Background(), "query", "--node", rpc, "account/"+bob.Address())
	if code != 0 || !strings.Contains(out, `"balance": 778`) {
		t.Fatalf("after the refused transactions: %d %s %s", code, out, stderr)
	}
	// ERC-8004 identity: register an agent, then transfer it to bob.
	fk, err := keys.Load(faucet)
	if err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := cli(context.Background(), "tx", "--node", rpc, "--key", faucet, "register-agent", "--agent-uri", "https://example.org/agent.json"); code != 0 {
		t.Fatalf("register-agent: %d %s %s", code, out, stderr)
	}
	if code, out, stderr := cli(context.Background(), "tx", "--node", rpc, "--key", faucet, "transfer-agent", "--agent-id", "1", "--from", fk.Address(), "--to", bob.Address()); code != 0 {
		t.Fatalf("transfer-agent: %d %s %s", code, out, stderr)
	}
	code, out, stderr = cli(context.Background(), "query", "--node", rpc, "agent/1")
	if code != 0 || !strings.Contains(out, bob.Address()) || strings.Contains(out, fk.Address()) {
		t.Fatalf("agent after transfer: %d %s %s", code, out, stderr)
	}
	// A registered model takes escrows only once validators attested to
	// holding it: this node runs without --model, so the operator attests
	// by hand with the validator key.
	model := strings.Repeat("4d", 32)
	if code, out, stderr := cli(context.Background(), "tx", "--node", rpc, "--key", faucet, "register-model", "--model-id", model, "--name", "m"); code != 0 {
		t.Fatalf("register-model: %d %s %s", code, out, stderr)
	}
	escrow := []string{"tx", "--node", rpc, "--key", faucet, "open-escrow", "--worker", bob.Address(), "--model-id", model, "--amount", "5", "--request", strings.Repeat("5e", 32)}
	code, _, stderr = cli(context.Background(), escrow...)
	if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "model not active") {
		t.Fatalf("escrow for an inactive model: %d %q", code, stderr)
	}
	if code, out, stderr := cli(context.Background(), "tx", "--node", rpc, "--validator-home", home, "attest-model", "--model-id", model); code != 0 || !strings.Contains(out, string(ledger.EventModelActive)) {
		t.Fatalf("attest-model: %d %s %s", code, out, stderr)
	}
	vk, err := node.ValidatorKey(home)
	if err != nil {
		t.Fatal(err)
	}
	va := ledger.Address(vk.Public().(ed25519.PublicKey)).String()
	code, out, stderr = cli(context.Background(), "query", "--node", rpc, "model/"+model)
	if code != 0 || !strings.Contains(out, `"active": true`) || !strings.Contains(out, va) {
		t.Fatalf("model after attestation: %d %s %s", code, out, stderr)
	}
	if code, out, stderr := cli(context.Background(), escrow...); code != 0 {
		t.Fatalf("escrow for the active model: %d %s %s", code, out, stderr)
	}
	if code, _, stderr := cli(context.Background(), "tx", "--node", rpc, "--validator-home", home, "attest-model", "--model-id", model); code != 1 || !strings.Contains(stderr, "already") {
		t.Fatalf("second attestation: %d %q", code, stderr)
	}
	// Failures are one line and exit 1.
	code, _, stderr = cli(context.Background(), "tx", "--node", rpc, "--key", faucet, "send", "--to", "nothex", "--amount", "1")
	if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "--to") {
		t.Fatalf("bad address: %d %q", code, stderr)
	}
	code, _, stderr = cli(context.Background(), "tx", "--node", rpc, "--key", filepath.Join(home, "faucet.json"), "bond", "--amount", "0")
	if code != 1 || !strings.Contains(stderr, "rejected") {
		t.Fatalf("zero bond: %d %q", code, stderr)
	}
	code, _, stderr = cli(context.Background(), "query", "--node", rpc, "model/"+strings.Repeat("ab", 32))
	if code != 1 || !strings.Contains(stderr, "not found") {
		t.Fatalf("missing model: %d %q", code, stderr)
	}
}

// TestTestnetCommand writes a 3-validator network and checks that the
// homes share one genesis listing three validators, with distinct ports.
func TestTestnetCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "net")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"testnet", "--validators", "3", "--out", dir, "--port", "36656"}, &out, &errb); code != 0 {
		t.Fatalf("testnet: %s", errb.String())
	}
	var gen []byte
	for i := 0; i < 3; i++ {
		home := filepath.Join(dir, fmt.Sprintf("node%d", i))
		g, err := os.ReadFile(filepath.Join(home, "config", "genesis.json"))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			gen = g
		} else if !bytes.Equal(g, gen) {
			t.Fatalf("node%d has another genesis", i)
		}
		if !strings.Contains(out.String(), fmt.Sprintf("rpc tcp://127.0.0.1:%d", 36657+10*i)) {
			t.Fatalf("output lacks validator %d's RPC: %s", i, out.String())
		}
	}
	if n := strings.Count(string(gen), `"power": "1000"`); n != 3 {
		t.Fatalf("genesis lists %d validators", n)
	}
	if code := run(context.Background(), []string{"testnet", "--validators", "3", "--out", dir}, &out, &errb); code != 1 {
		t.Fatal("testnet overwrote an existing network")
	}
	if code := run(context.Background(), []string{"testnet", "--validators", "0", "--out", t.TempDir()}, &out, &errb); code != 1 {
		t.Fatal("accepted 0 validators")
	}
}
