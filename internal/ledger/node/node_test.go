package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/loopport"
)

// freeBase returns a port p with p and p+1 free on loopback.
func freeBase(t *testing.T) int {
	p, err := loopport.Range(2)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tempHome is a temporary directory removed with retries: a stopped
// CometBFT node's address book may still be written for a moment.
func tempHome(t testing.TB) string {
	dir, err := os.MkdirTemp("", "verdict-node-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 20; i++ {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return dir
}

func waitHeight(t testing.TB, c *client.Client, h int64) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		got, err := c.Height(ctx)
		cancel()
		if err == nil && got >= h {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("node did not reach height %d", h)
}

func start(t *testing.T, home string) (stop func()) {
	n, err := New(home, ledger.Hooks{Receipts: ledger.Receipts{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestSingleNode commits transactions through a real in-process CometBFT
// node's RPC, restarts it and checks that the state survived.
func TestSingleNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a CometBFT node")
	}
	home := tempHome(t)
	o := DefaultOptions()
	o.ChainID = "verdict-node-test"
	o.BasePort = freeBase(t)
	o.BlockInterval = 100 * time.Millisecond
	if err := Init(home, o); err != nil {
		t.Fatal(err)
	}
	if err := Init(home, o); err == nil {
		t.Fatal("init overwrote a home")
	}
	faucet, err := keys.Load(filepath.Join(home, FaucetFile))
	if err != nil {
		t.Fatal(err)
	}
	fkey := ed25519.PrivateKey(faucet.Private)
	var bob ledger.Address
	bob[0] = 0xb0

	stop := start(t, home)
	c, err := client.New(fmt.Sprintf("tcp://127.0.0.1:%d", o.BasePort+1))
	if err != nil {
		t.Fatal(err)
	}
	waitHeight(t, c, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 3; i++ {
		tx, err := c.Sign(ctx, fkey, &ledger.MsgSend{To: bob, Amount: 100}, 1, -1)
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.BroadcastCommit(ctx, tx)
		if err != nil || r.Code != 0 {
			t.Fatalf("tx %d: %+v %v", i, r, err)
		}
		if len(r.Events) == 0 || r.Events[0].Type != ledger.EventTx {
			t.Fatalf("events %+v", r.Events)
		}
	}
	// A replayed transaction is rejected by CheckTx.
	tx, _ := c.Sign(ctx, fkey, &ledger.MsgSend{To: bob, Amount: 1}, 1, 0)
	if _, err := c.BroadcastCommit(ctx, tx); !errors.Is(err, client.ErrRejected) {
		t.Fatalf("replay: %v", err)
	}
	acct, err := c.Account(ctx, bob)
	if err != nil || acct.Balance != 300 {
		t.Fatalf("bob: %+v %v", acct, err)
	}
	// A new account bonds and becomes a (small) validator: CometBFT
	// accepts the update.
	vs := sha256.Sum256([]byte("joining validator"))
	vk := ed25519.NewKeyFromSeed(vs[:])
	va := ledger.Address(vk.Public().(ed25519.PublicKey))
	tx, _ = c.Sign(ctx, fkey, &ledger.MsgSend{To: va, Amount: 5000}, 1, -1)
	if r, err := c.BroadcastCommit(ctx, tx); err != nil || r.Code != 0 {
		t.Fatalf("fund: %+v %v", r, err)
	}
	for i, m := range []ledger.Msg{&ledger.MsgBond{Amount: 2000}, &ledger.MsgSetValidator{Active: true}} {
		tx, _ := c.Sign(ctx, vk, m, 1, int64(i))
		if r, err := c.BroadcastCommit(ctx, tx); err != nil || r.Code != 0 {
			t.Fatalf("join %d: %+v %v", i, r, err)
		}
	}
	h0, _ := c.Height(ctx)
	waitHeight(t, c, h0+3)
	vals, err := c.Validators(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, v := range vals {
		found = found || v.PubKey == va && v.Power == 2
	}
	if len(vals) != 2 || !found {
		t.Fatalf("validator set %+v", vals)
	}
	h, _ := c.Height(ctx)
	stop()

	stop = start(t, home)
	defer stop()
	// A new client: the old one's keep-alive connection belongs to the
	// stopped node's HTTP server.
	if c, err = client.New(fmt.Sprintf("tcp://127.0.0.1:%d", o.BasePort+1)); err != nil {
		t.Fatal(err)
	}
	waitHeight(t, c, h+1)
	acct, err = c.Account(ctx, bob)
	if err != nil || acct.Balance != 300 {
		t.Fatalf("bob after restart: %+v %v", acct, err)
	}
}

// TestJavaScriptClientThroughRPC: the JavaScript implementation of the
// transaction format (../testdata/txclient.mjs, Node's built-in ed25519)
// builds and signs transactions, an agentURI with '&', '<', non-ASCII
// text and U+2028 among them, submits them to a node's RPC and sees them
// committed.
func TestJavaScriptClientThroughRPC(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a CometBFT node")
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node is needed in CI: %v", err)
		}
		t.Skipf("node is missing: %v", err)
	}
	home := tempHome(t)
	o := DefaultOptions()
	o.ChainID = "verdict-js-test"
	o.BasePort = freeBase(t)
	o.BlockInterval = 100 * time.Millisecond
	if err := Init(home, o); err != nil {
		t.Fatal(err)
	}
	faucet, err := keys.Load(filepath.Join(home, FaucetFile))
	if err != nil {
		t.Fatal(err)
	}
	fa := ledger.Address(ed25519.PrivateKey(faucet.Private).Public().(ed25519.PublicKey))
	stop := start(t, home)
	defer stop()
	c, err := client.New(fmt.Sprintf("tcp://127.0.0.1:%d", o.BasePort+1))
	if err != nil {
		t.Fatal(err)
	}
	waitHeight(t, c, 1)
	uri := "https://agent.example/card?a=1&b=<2> é 日本 \u2028"
	uri2 := "ipfs://second?x=<&>"
	var bob ledger.Address
	bob[0] = 0xb0
	in, _ := json.Marshal(map[string]any{
		"rpc": fmt.Sprintf("http://127.0.0.1:%d", o.BasePort+1),
		"build": map[string]any{"chainId": o.ChainID, "seed": hex.EncodeToString(ed25519.PrivateKey(faucet.Private).Seed()), "nonce": 0, "fee": 100,
			"agentURI": uri, "metaKey": "k&<>", "metaValueHex": "00ff10", "agentId": 1, "agentURI2": uri2, "to": bob.String()},
	})
	cmd := exec.Command(nodeBin, filepath.Join("..", "testdata", "txclient.mjs"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var res struct {
		Submitted []struct {
			Error       string
			Check, Code int
			Log         string
		}
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Submitted) != 3 {
		t.Fatalf("node answered %s (%v)", out, err)
	}
	for i, s := range res.Submitted {
		if s.Error != "" || s.Check != 0 || s.Code != 0 {
			t.Fatalf("JavaScript transaction %d: %+v", i, s)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var a ledger.Agent
	b, err := c.Query(ctx, "agent/1", nil)
	if err != nil || json.Unmarshal(b, &a) != nil || a.AgentURI != uri2 || a.Owner != fa {
		t.Fatalf("agent %s %v", b, err)
	}
	if acct, err := c.Account(ctx, bob); err != nil || acct.Balance != 5 {
		t.Fatalf("bob %+v %v", acct, err)
	}
}
