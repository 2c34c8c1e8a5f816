package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
)

// TestStoppedNodeReads reads a stopped node's block store the way
// CometBFT's per-peer routines do when they wake after the node stopped
// (they are not waited for: the consensus reactor's maj23 query routine
// sleeps peerQueryMaj23SleepDuration between rounds, then loads a commit
// for a peer catching up; the gossip routines load block parts and
// metas). Such a read used to panic the whole process ("leveldb:
// closed"); now a stopped node's stores read as empty. The node is
// started and stopped several times in this process (run it with -race).
func TestStoppedNodeReads(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a CometBFT node")
	}
	home := tempHome(t)
	o := DefaultOptions()
	o.ChainID = "verdict-stop-test"
	o.BasePort = freeBase(t)
	o.BlockInterval = 50 * time.Millisecond
	if err := Init(home, o); err != nil {
		t.Fatal(err)
	}
	rpc := fmt.Sprintf("tcp://127.0.0.1:%d", o.BasePort+1)
	h := int64(0)
	for round := range 3 {
		n, err := New(home, ledger.Hooks{Receipts: ledger.Receipts{}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Run(ctx) }()
		h = waitFresh(t, rpc, h+3)
		bs := n.cmt.BlockStore()
		meta := bs.LoadBlockMeta(1)
		if meta == nil || bs.LoadBlockByHash(meta.BlockID.Hash) == nil {
			t.Fatalf("round %d: the running node has no block 1", round)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("round %d: reading a stopped node's block store panicked: %v", round, r)
				}
			}()
			// Some of these are answered from the store's caches; the
			// others read the closed database.
			for _, height := range []int64{1, 2, h, h + 1} {
				bs.LoadBlockMeta(height)
				bs.LoadBlockPart(height, 0)
				bs.LoadBlockCommit(height)
				bs.LoadSeenCommit(height)
			}
			if bs.LoadBlockByHash(meta.BlockID.Hash) != nil {
				t.Fatalf("round %d: a stopped node's block store still reads block 1 by its hash", round)
			}
		}()
	}
}

// waitFresh waits until the node at rpc reports height h or more, and
// returns its height. Each look uses a new connection: a connection kept
// alive from before a stop still reaches the stopped node's RPC server
// (CometBFT closes its listener, not its connections).
func waitFresh(t *testing.T, rpc string, h int64) int64 {
	t.Helper()
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var c *client.Client
		if c, err = client.New(rpc); err != nil {
			t.Fatal(err)
		}
		var got int64
		if got, err = c.Height(context.Background()); err == nil && got >= h {
			return got
		}
	}
	t.Fatalf("node %s did not reach height %d: %v", rpc, h, err)
	return 0
}

// TestPeerPortTaken starts a node whose peer-to-peer address another
// program holds. CometBFT serves RPC before it listens for peers, and its
// failed start left that RPC answering at height 0: a four-validator devnet
// whose first validator lost its peer port to a sibling's RPC waited out
// its minute for a first block from a node that was never in consensus
// ("ledger did not start: no block"), while the other three made blocks.
// Now Run returns the listen error and the RPC address is free again; the
// node starts once the port is.
func TestPeerPortTaken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a CometBFT node")
	}
	home := tempHome(t)
	o := DefaultOptions()
	o.ChainID = "verdict-port-test"
	o.BasePort = freeBase(t)
	o.BlockInterval = 50 * time.Millisecond
	if err := Init(home, o); err != nil {
		t.Fatal(err)
	}
	held, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", o.BasePort))
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(home, ledger.Hooks{Receipts: ledger.Receipts{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Run(context.Background()); err == nil || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Run with its peer port taken: %v, want address in use", err)
	}
	rpcAddr := fmt.Sprintf("127.0.0.1:%d", o.BasePort+1)
	l, err := net.Listen("tcp", rpcAddr)
	if err != nil {
		t.Fatalf("the failed node still holds its RPC address: %v", err)
	}
	l.Close()
	held.Close()

	stop := start(t, home)
	defer stop()
	c, err := client.New("tcp://" + rpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	waitHeight(t, c, 1)
}
