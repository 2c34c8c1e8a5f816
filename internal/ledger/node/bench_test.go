package node

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/receipt"
)

// BenchmarkNodeReceipts measures committed receipts per second on one
// in-process node through its RPC: a requester opens 1000 escrows, then the
// worker (the validator's account) publishes 1000 receipts; the metric is
// receipts published and committed per second (publish phase), and
// escrow+receipt pairs per second over both phases.
func BenchmarkNodeReceipts(b *testing.B) {
	const n = 1000
	for it := 0; it < b.N; it++ {
		b.StopTimer()
		home := tempHome(b)
		o := DefaultOptions()
		o.ChainID = "bench"
		o.BlockInterval = 100 * time.Millisecond
		o.Params.AuditRateBps = 0
		o.Params.ModelQuorumBps = 0 // throughput only: the bench model is active at registration
		o.BasePort = freeRange(b, 2)
		if err := Init(home, o); err != nil {
			b.Fatal(err)
		}
		nd, err := New(home, ledger.Hooks{Receipts: ledger.Receipts{}}, nil)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- nd.Run(ctx) }()
		c, err := client.New(fmt.Sprintf("tcp://127.0.0.1:%d", o.BasePort+1))
		if err != nil {
			b.Fatal(err)
		}
		for h := int64(0); h < 1; {
			time.Sleep(50 * time.Millisecond)
			h, _ = c.Height(ctx)
		}
		runReceiptBench(b, c, home, home, o.ChainID, n)
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}

// runReceiptBench opens n escrows from the faucet (in dir) to the worker
// (the validator of workerHome), publishes n receipts through c and
// reports receipts/s.
func runReceiptBench(b *testing.B, c *client.Client, dir, workerHome, chain string, n int) {
	ctx := context.Background()
	home := workerHome
	fk, err := keys.Load(filepath.Join(dir, FaucetFile))
	if err != nil {
		b.Fatal(err)
	}
	req := ed25519.PrivateKey(fk.Private)
	wk, err := ValidatorKey(home)
	if err != nil {
		b.Fatal(err)
	}
	model := ledger.Hash{7}
	sign := func(k ed25519.PrivateKey, nonce uint64, m ledger.Msg) *ledger.Tx {
		tx := &ledger.Tx{ChainID: chain, Nonce: nonce, Fee: 1, Msg: m}
		tx.Sign(k)
		return tx
	}
	wa := ledger.Address(wk.Public().(ed25519.PublicKey))
	ra := ledger.Address(req.Public().(ed25519.PublicKey))
	escrows := []*ledger.Tx{sign(req, 0, &ledger.MsgRegisterModel{ModelID: model, Name: "bench", SpecVersion: 1})}
	var publishes []*ledger.Tx
	for i := 0; i < n; i++ {
		r := &receipt.Receipt{Version: receipt.Version, Spec: receipt.DefaultSpec, Model: merkle.Hash(model), Nonce: []byte{byte(i), byte(i >> 8)},
			Sampling: receipt.Sampling{TopP: 1, Steps: 6}, Prompt: []int{1, 2, 3}, Output: []int{4, 5, 6, 7}}
		escrows = append(escrows, sign(req, uint64(i+1), &ledger.MsgOpenEscrow{Worker: wa, ModelID: model, Fee: 10, Request: ledger.RequestHash(r)}))
		if err := r.Sign(wk); err != nil {
			b.Fatal(err)
		}
		rb, _ := r.Marshal()
		publishes = append(publishes, sign(wk, uint64(i), &ledger.MsgPublishReceipt{EscrowID: ledger.EscrowID(ra, uint64(i+1)), Receipt: rb}))
	}
	waitNonce := func(a ledger.Address, want uint64) {
		for {
			acct, err := c.Account(ctx, a)
			if err == nil && acct.Nonce >= want {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	send := func(txs []*ledger.Tx) {
		for len(txs) > 0 {
			k := min(len(txs), 100)
			if _, err := c.BroadcastBatch(ctx, txs[:k]); err != nil {
				b.Fatal(err)
			}
			txs = txs[k:]
		}
	}
	b.StartTimer()
	t0 := time.Now()
	send(escrows)
	waitNonce(ra, uint64(len(escrows)))
	t1 := time.Now()
	send(publishes)
	waitNonce(wa, uint64(n))
	t2 := time.Now()
	b.StopTimer()
	var tot ledger.Totals
	if v, err := c.Query(ctx, "totals", nil); err == nil {
		json.Unmarshal(v, &tot)
	}
	b.ReportMetric(float64(n)/t2.Sub(t1).Seconds(), "receipts/s")
	b.ReportMetric(float64(n)/t2.Sub(t0).Seconds(), "escrow+receipt/s")
}

// BenchmarkTestnetReceipts is BenchmarkNodeReceipts on four validators
// running as separate processes; transactions go to validator 0 and the
// worker is validator 1.
func BenchmarkTestnetReceipts(b *testing.B) {
	const n = 1000
	for it := 0; it < b.N; it++ {
		b.StopTimer()
		dir := tempHome(b)
		o := DefaultOptions()
		o.ChainID, o.Validators, o.BlockInterval = "bench4", 4, 100*time.Millisecond
		o.Params.AuditRateBps = 0
		o.Params.ModelQuorumBps = 0 // throughput only: the bench model is active at registration
		o.BasePort = freeRange(b, 32)
		if err := Init(dir, o); err != nil {
			b.Fatal(err)
		}
		homes := Homes(dir, 4)
		var procs []*proc
		for _, h := range homes {
			procs = append(procs, startProc(b, h))
		}
		c, err := client.New(fmt.Sprintf("tcp://127.0.0.1:%d", o.BasePort+1))
		if err != nil {
			b.Fatal(err)
		}
		waitHeight(b, c, 2)
		runReceiptBench(b, c, dir, homes[1], o.ChainID, n)
		for _, p := range procs {
			p.stop(os.Interrupt)
		}
	}
}
