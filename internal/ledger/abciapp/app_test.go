package abciapp

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	dbm "github.com/cometbft/cometbft-db"
	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/verdictnet/verdict/internal/ledger"
)

func key(name string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte("abciapp test " + name))
	return ed25519.NewKeyFromSeed(s[:])
}

func addr(name string) ledger.Address {
	var a ledger.Address
	copy(a[:], key(name).Public().(ed25519.PublicKey))
	return a
}

func genesis(t *testing.T) []byte {
	g := ledger.Genesis{ChainID: "abci-test", Params: ledger.DefaultParams(),
		Accounts: []ledger.GenesisAccount{{Address: addr("alice"), Balance: 1000}}}
	b, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func send(nonce uint64, amount uint64) []byte {
	tx := &ledger.Tx{ChainID: "abci-test", Nonce: nonce, Fee: 1, Msg: ledger.Msg{Send: &ledger.MsgSend{To: addr("bob"), Amount: amount}}}
	tx.Sign(key("alice"))
	return tx.Encode()
}

func open(t *testing.T, dir string) (*App, dbm.DB) {
	db, err := dbm.NewGoLevelDB("app", dir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(db, ledger.Hooks{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a, db
}

func finalize(t *testing.T, a *App, h int64, txs ...[]byte) *abci.ResponseFinalizeBlock {
	bh := sha256.Sum256(fmt.Appendf(nil, "%d", h))
	r, err := a.FinalizeBlock(context.Background(), &abci.RequestFinalizeBlock{Height: h, Hash: bh[:], Time: time.Unix(1_700_000_000+h, 0), Txs: txs})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestCrashBetweenFinalizeAndCommit: state persists at Commit only; a node
// that dies after FinalizeBlock reports the last commit and, replaying the
// block, reaches the same app hash.
func TestCrashBetweenFinalizeAndCommit(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, db := open(t, dir)
	if _, err := a.InitChain(ctx, &abci.RequestInitChain{ChainId: "abci-test", AppStateBytes: genesis(t)}); err != nil {
		t.Fatal(err)
	}
	var committed []byte
	for h := int64(1); h <= 3; h++ {
		r := finalize(t, a, h, send(uint64(h-1), 10))
		if r.TxResults[0].Code != 0 {
			t.Fatalf("block %d: %s", h, r.TxResults[0].Log)
		}
		if len(r.TxResults[0].Events) == 0 {
			t.Fatal("no events")
		}
		if _, err := a.Commit(ctx, &abci.RequestCommit{}); err != nil {
			t.Fatal(err)
		}
		committed = r.AppHash
	}
	r4 := finalize(t, a, 4, send(3, 10)) // not committed: the process "dies"
	db.Close()

	b, db2 := open(t, dir)
	defer db2.Close()
	info, err := b.Info(ctx, &abci.RequestInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if info.LastBlockHeight != 3 || string(info.LastBlockAppHash) != string(committed) {
		t.Fatalf("after restart: height %d hash %x, want 3 %x", info.LastBlockHeight, info.LastBlockAppHash, committed)
	}
	q, _ := b.Query(ctx, &abci.RequestQuery{Path: "account/" + addr("bob").String()})
	if string(q.Value) != `{"balance":30,"nonce":0}` {
		t.Fatalf("bob after restart: %s", q.Value)
	}
	replay := finalize(t, b, 4, send(3, 10))
	if string(replay.AppHash) != string(r4.AppHash) {
		t.Fatal("replayed block gives another app hash")
	}
	// A proof of a key against the committed app hash.
	if _, err := b.Commit(ctx, &abci.RequestCommit{}); err != nil {
		t.Fatal(err)
	}
	pq, _ := b.Query(ctx, &abci.RequestQuery{Path: "key/acct/" + addr("bob").String(), Prove: true})
	var p ledger.Proof
	if pq.Code != 0 || json.Unmarshal(pq.ProofOps.Ops[0].Data, &p) != nil {
		t.Fatalf("proof query: %+v", pq)
	}
	var root ledger.Hash
	copy(root[:], replay.AppHash)
	if err := p.Verify(root); err != nil {
		t.Fatal(err)
	}
}

func TestCheckTxAndBadGenesis(t *testing.T) {
	ctx := context.Background()
	a, db := open(t, t.TempDir())
	defer db.Close()
	if _, err := a.InitChain(ctx, &abci.RequestInitChain{ChainId: "other", AppStateBytes: genesis(t)}); err == nil {
		t.Fatal("accepted a genesis for another chain id")
	}
	if _, err := a.InitChain(ctx, &abci.RequestInitChain{ChainId: "abci-test", AppStateBytes: genesis(t)}); err != nil {
		t.Fatal(err)
	}
	r, _ := a.CheckTx(ctx, &abci.RequestCheckTx{Tx: send(0, 5)})
	if r.Code != 0 {
		t.Fatal(r.Log)
	}
	r, _ = a.CheckTx(ctx, &abci.RequestCheckTx{Tx: send(0, 5)})
	if r.Code != ledger.Code(ledger.ErrNonce) {
		t.Fatalf("duplicate nonce in mempool: %d %s", r.Code, r.Log)
	}
	r, _ = a.CheckTx(ctx, &abci.RequestCheckTx{Tx: []byte("junk")})
	if r.Code != ledger.Code(ledger.ErrDecode) || r.Log == "" {
		t.Fatalf("junk: %d %s", r.Code, r.Log)
	}
}
