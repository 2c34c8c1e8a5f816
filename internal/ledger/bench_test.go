package ledger

import (
	"crypto/ed25519"
	"syscall"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/receipt"
)

// BenchmarkReceiptBlocks measures the state machine alone: blocks of 500
// escrow+publish pairs from distinct requesters (so 1000 txs per block),
// including signature checks, receipt verification and the app hash.
// It reports receipts per second.
func BenchmarkReceiptBlocks(b *testing.B) {
	const perBlock = 500
	p := testParams()
	p.MinWorkerStake = 1
	g := Genesis{ChainID: testChain, Params: p}
	worker := testKey("worker")
	wa := testAddr("worker")
	g.Accounts = append(g.Accounts, GenesisAccount{Address: wa, Balance: 1 << 40, Bonded: 1000})
	reqs := make([]ed25519.PrivateKey, perBlock)
	for i := range reqs {
		reqs[i] = testKey(string(rune('a'+i%26)) + string(rune(i)))
		g.Accounts = append(g.Accounts, GenesisAccount{Address: Address(reqs[i].Public().(ed25519.PublicKey)), Balance: 1 << 40})
	}
	l := New(NewMemStore(), testHooks)
	if err := l.InitGenesis(g); err != nil {
		b.Fatal(err)
	}
	mk := func(priv ed25519.PrivateKey, nonce uint64, m Msg) []byte {
		tx := &Tx{ChainID: testChain, Nonce: nonce, Fee: 1, Msg: m}
		tx.Sign(priv)
		return tx.Encode()
	}
	model := Hash{9}
	if r := l.DeliverTx(BlockContext{Height: 1}, mk(worker, 0, &MsgRegisterModel{ModelID: model, Name: "m", SpecVersion: 1})); r.Code != 0 {
		b.Fatal(r.Log)
	}
	// Prebuild the transactions of every block.
	type blk struct{ escrows, publishes [][]byte }
	blocks := make([]blk, b.N)
	wnonce := uint64(1)
	for n := range blocks {
		for i, rk := range reqs {
			r := &receipt.Receipt{Version: receipt.Version, Spec: receipt.DefaultSpec, Model: merkle.Hash(model), Nonce: []byte{byte(n), byte(n >> 8), byte(n >> 16), byte(i), byte(i >> 8)},
				Sampling: receipt.Sampling{TopP: 1, Steps: 6}, Prompt: []int{1, 2, 3}, Output: []int{4, 5, 6, 7}}
			blocks[n].escrows = append(blocks[n].escrows, mk(rk, uint64(n), &MsgOpenEscrow{Worker: wa, ModelID: model, Fee: 10, Request: RequestHash(r)}))
			if err := r.Sign(worker); err != nil {
				b.Fatal(err)
			}
			rb, _ := r.Marshal()
			esc := EscrowID(Address(rk.Public().(ed25519.PublicKey)), uint64(n))
			blocks[n].publishes = append(blocks[n].publishes, mk(worker, wnonce, &MsgPublishReceipt{EscrowID: esc, Receipt: rb}))
			wnonce++
		}
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	h := uint64(0)
	for n := 0; n < b.N; n++ {
		h++
		txs := append(append([][]byte{}, blocks[n].escrows...), blocks[n].publishes...)
		res, err := l.FinalizeBlock(BlockContext{Height: h, Time: int64(h), Hash: blockHash(h)}, txs)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res.TxResults {
			if r.Code != 0 {
				b.Fatal(r.Log)
			}
		}
	}
	b.ReportMetric(float64(b.N*perBlock)/b.Elapsed().Seconds(), "receipts/s")
	// Per second of this process's CPU time: what a shared machine's
	// other load does not change much.
	b.ReportMetric(float64(b.N*perBlock)/(cpuTime()-cpu0).Seconds(), "receipts/cpu-s")
	b.ReportMetric(float64(l.Store().Len()), "keys")
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
