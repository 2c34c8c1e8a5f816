package devnet

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/ledger/node"
)

// TestLedgerPortsDistinct resumes a two-validator ledger whose
// configuration names one port for the first validator's RPC and the
// second's peers (an edited file, or two fresh picks the kernel happened
// to repeat): each port used to be checked free on its own and both kept,
// and the later node to listen failed. Every address gets its own port.
func TestLedgerPortsDistinct(t *testing.T) {
	dir := t.TempDir()
	o := Options{Validators: 2, BlockInterval: 100 * time.Millisecond}
	homes, err := initLedger(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	c0, err := node.LoadConfig(homes[0])
	if err != nil {
		t.Fatal(err)
	}
	c1, err := node.LoadConfig(homes[1])
	if err != nil {
		t.Fatal(err)
	}
	c1.P2P.ListenAddress = c0.RPC.ListenAddress
	b, err := json.MarshalIndent(c1, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(homes[1], node.ConfigFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := initLedger(dir, o); err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for i, h := range homes {
		c, err := node.LoadConfig(h)
		if err != nil {
			t.Fatal(err)
		}
		for name, a := range map[string]string{"peer": c.P2P.ListenAddress, "rpc": c.RPC.ListenAddress} {
			who := name + " of validator " + string(rune('0'+i))
			if other, ok := seen[a]; ok {
				t.Fatalf("%s and %s both listen on %s", other, who, a)
			}
			seen[a] = who
		}
	}
	if c, _ := node.LoadConfig(homes[0]); c.RPC.ListenAddress != c0.RPC.ListenAddress {
		t.Errorf("validator 0's free RPC address moved: %s, was %s", c.RPC.ListenAddress, c0.RPC.ListenAddress)
	}
}

// TestWaitReadyFailed: a validator that failed to start ends the wait for
// the first block at once, with its error; one that never fails but makes
// no block ends it after startWait, saying where each validator stands.
func TestWaitReadyFailed(t *testing.T) {
	boom := errors.New("validator 2: listen tcp 127.0.0.1:1: bind: address already in use")
	t0 := time.Now()
	if err := waitReady(context.Background(), nil, nil, func() error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("waitReady after a validator failed: %v", err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Fatalf("waitReady took %v to see the failure", d)
	}

	homes, err := initLedger(t.TempDir(), Options{Validators: 2, BlockInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var nodes []*node.Node
	for _, h := range homes {
		n, err := node.New(h, ledger.Hooks{Receipts: ledger.Receipts{}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	defer func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for _, n := range nodes {
			n.Run(ctx) // starts and stops: closes the stores
		}
	}()
	c, err := client.New(nodes[0].RPCAddress()) // not started: refused
	if err != nil {
		t.Fatal(err)
	}
	defer func(w time.Duration) { startWait = w }(startWait)
	startWait = 300 * time.Millisecond
	err = waitReady(context.Background(), c, nodes, func() error { return nil })
	if err == nil || !strings.Contains(err.Error(), "after 300ms (validator 0: height 0, 0 peers, catching up; validator 1: height 0, 0 peers, catching up)") {
		t.Fatalf("waitReady on validators that never ran: %v", err)
	}
}
