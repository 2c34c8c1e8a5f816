package abciapp

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
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
	tx := &ledger.Tx{ChainID: "abci-test", Nonce: nonce, Fee: 1, Msg: &ledger.MsgSend{To: addr("bob"), Amount: amount}}
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

// TestQuerySeesOnlyCommitted: between FinalizeBlock and Commit, Query and
// proofs show the last committed block (the height and app hash Info
// reports), never the finalized one; after Commit they show it.
func TestQuerySeesOnlyCommitted(t *testing.T) {
	ctx := context.Background()
	a, db := open(t, t.TempDir())
	defer db.Close()
	if _, err := a.InitChain(ctx, &abci.RequestInitChain{ChainId: "abci-test", AppStateBytes: genesis(t)}); err != nil {
		t.Fatal(err)
	}
	query := func(path string) string {
		t.Helper()
		q, err := a.Query(ctx, &abci.RequestQuery{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		if q.Code != 0 {
			return "code " + fmt.Sprint(q.Code)
		}
		return string(q.Value)
	}
	proveAgainstInfo := func(key string) {
		t.Helper()
		info, _ := a.Info(ctx, &abci.RequestInfo{})
		q, _ := a.Query(ctx, &abci.RequestQuery{Path: "key/" + key, Prove: true})
		var p ledger.Proof
		if q.Code != 0 || q.Height != info.LastBlockHeight || json.Unmarshal(q.ProofOps.Ops[0].Data, &p) != nil {
			t.Fatalf("proof of %s: %+v", key, q)
		}
		var root ledger.Hash
		copy(root[:], info.LastBlockAppHash)
		if err := p.Verify(root); err != nil {
			t.Fatalf("proof of %s against the committed app hash: %v", key, err)
		}
	}
	bob := "account/" + addr("bob").String()
	// Nothing is committed before the first Commit, not even genesis.
	if got := query("chain"); got != "code 7" {
		t.Fatalf("chain before the first commit: %s", got)
	}
	finalize(t, a, 1, send(0, 10))
	if got := query(bob); got != `{"balance":0,"nonce":0}` {
		t.Fatalf("bob before the first commit: %s", got)
	}
	if _, err := a.Commit(ctx, &abci.RequestCommit{}); err != nil {
		t.Fatal(err)
	}
	if got := query(bob); got != `{"balance":10,"nonce":0}` {
		t.Fatalf("bob after commit 1: %s", got)
	}
	proveAgainstInfo("acct/" + addr("bob").String())
	for h := int64(2); h <= 3; h++ {
		finalize(t, a, h, send(uint64(h-1), 10))
		want := fmt.Sprintf(`{"balance":%d,"nonce":0}`, 10*(h-1))
		if got := query(bob); got != want {
			t.Fatalf("bob with block %d finalized, not committed: %s, want %s", h, got, want)
		}
		var ci ledger.ChainInfo
		if err := json.Unmarshal([]byte(query("chain")), &ci); err != nil || ci.Height != uint64(h-1) {
			t.Fatalf("chain with block %d finalized: %+v %v", h, ci, err)
		}
		proveAgainstInfo("acct/" + addr("bob").String())
		proveAgainstInfo("acct/" + addr("alice").String())
		proveAgainstInfo("chain")
		if _, err := a.Commit(ctx, &abci.RequestCommit{}); err != nil {
			t.Fatal(err)
		}
		want = fmt.Sprintf(`{"balance":%d,"nonce":0}`, 10*h)
		if got := query(bob); got != want {
			t.Fatalf("bob after commit %d: %s, want %s", h, got, want)
		}
		proveAgainstInfo("acct/" + addr("bob").String())
	}
}

// fakeReceipts accepts "rcpt:N" as a receipt by alice for model {1} and
// request {2}.
type fakeReceipts struct{}

func (fakeReceipts) VerifyReceipt(b []byte) (ledger.ReceiptInfo, error) {
	return ledger.ReceiptInfo{ID: sha256.Sum256(b), Worker: addr("alice"), ModelID: ledger.Hash{1}, Request: ledger.Hash{2}}, nil
}

type holder bool

func (h holder) Holds(ledger.Hash) bool { return bool(h) }

// TestRefusesToStartWithoutModel: a node restarted without a model whose
// receipts are in their challenge window refuses to start, naming it.
func TestRefusesToStartWithoutModel(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := dbm.NewGoLevelDB("app", dir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(db, ledger.Hooks{Receipts: fakeReceipts{}, Models: holder(false)}, nil)
	if err != nil {
		t.Fatal(err) // nothing is needed yet
	}
	g := ledger.Genesis{ChainID: "abci-test", Params: ledger.DefaultParams(), Accounts: []ledger.GenesisAccount{
		{Address: addr("alice"), Balance: 10_000, Bonded: 10_000}, {Address: addr("bob"), Balance: 10_000}}}
	gb, _ := json.Marshal(g)
	if _, err := a.InitChain(ctx, &abci.RequestInitChain{ChainId: "abci-test", AppStateBytes: gb}); err != nil {
		t.Fatal(err)
	}
	tx := func(who string, nonce uint64, m ledger.Msg) []byte {
		t := &ledger.Tx{ChainID: "abci-test", Nonce: nonce, Fee: 1, Msg: m}
		t.Sign(key(who))
		return t.Encode()
	}
	r := finalize(t, a, 1,
		tx("bob", 0, &ledger.MsgRegisterModel{ModelID: ledger.Hash{1}, Name: "m1", SpecVersion: 1}),
		tx("bob", 1, &ledger.MsgOpenEscrow{Worker: addr("alice"), ModelID: ledger.Hash{1}, Fee: 5, Request: ledger.Hash{2}}),
		tx("alice", 0, &ledger.MsgPublishReceipt{EscrowID: ledger.EscrowID(addr("bob"), 1), Receipt: []byte("rcpt:1")}))
	for i, res := range r.TxResults {
		if res.Code != 0 {
			t.Fatalf("tx %d: %s", i, res.Log)
		}
	}
	if _, err := a.Commit(ctx, &abci.RequestCommit{}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, held := range []bool{false, true} {
		db, err := dbm.NewGoLevelDB("app", dir)
		if err != nil {
			t.Fatal(err)
		}
		_, err = New(db, ledger.Hooks{Receipts: fakeReceipts{}, Models: holder(held)}, nil)
		db.Close()
		if held && err != nil {
			t.Fatalf("holding the model: %v", err)
		}
		if !held && (err == nil || !strings.Contains(err.Error(), ledger.Hash{1}.String()) || !strings.Contains(err.Error(), "--model")) {
			t.Fatalf("started without the model: %v", err)
		}
	}
}

// TestQueryWithoutConsensusLock (attack 8): while the consensus lock is
// held (a long FinalizeBlock), queries and proofs still answer from the
// committed state, and a proof does not rebuild the tree each time.
func TestQueryWithoutConsensusLock(t *testing.T) {
	ctx := context.Background()
	a, db := open(t, t.TempDir())
	defer db.Close()
	if _, err := a.InitChain(ctx, &abci.RequestInitChain{ChainId: "abci-test", AppStateBytes: genesis(t)}); err != nil {
		t.Fatal(err)
	}
	finalize(t, a, 1, send(0, 10))
	if _, err := a.Commit(ctx, &abci.RequestCommit{}); err != nil {
		t.Fatal(err)
	}
	info, _ := a.Info(ctx, &abci.RequestInfo{})
	var root ledger.Hash
	copy(root[:], info.LastBlockAppHash)
	a.mu.Lock() // a block being applied
	done := make(chan error, 1)
	go func() {
		q, err := a.Query(ctx, &abci.RequestQuery{Path: "account/" + addr("bob").String()})
		if err == nil && string(q.Value) != `{"balance":10,"nonce":0}` {
			err = fmt.Errorf("bob: %s", q.Value)
		}
		for i := 0; i < 3 && err == nil; i++ {
			var p ledger.Proof
			q, _ := a.Query(ctx, &abci.RequestQuery{Path: "key/acct/" + addr("bob").String(), Prove: true})
			if q.Code != 0 || json.Unmarshal(q.ProofOps.Ops[0].Data, &p) != nil {
				err = fmt.Errorf("proof: %+v", q)
			} else {
				err = p.Verify(root)
			}
		}
		done <- err
	}()
	select {
	case err := <-done:
		a.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		a.mu.Unlock()
		t.Fatal("a query waited for the consensus lock")
	}
	a.qmu.RLock()
	built := a.snap.Root() == root
	a.qmu.RUnlock()
	if !built {
		t.Fatal("the snapshot's root is not the committed app hash")
	}
}

// TestEvidenceUnknownValidator: CometBFT's evidence of a validator the
// ledger knows slashes it; evidence naming an address the ledger does not
// know (none of its validators, past or present) is logged, not dropped
// in silence, and the block applies.
func TestEvidenceUnknownValidator(t *testing.T) {
	ctx := context.Background()
	var logs strings.Builder
	db := dbm.NewMemDB()
	a, err := New(db, ledger.Hooks{}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	val := addr("val")
	if _, err := a.InitChain(ctx, &abci.RequestInitChain{ChainId: "abci-test", AppStateBytes: genesis(t),
		Validators: []abci.ValidatorUpdate{abci.Ed25519ValidatorUpdate(val[:], 10)}}); err != nil {
		t.Fatal(err)
	}
	consAddr := func(a ledger.Address) []byte { h := sha256.Sum256(a[:]); return h[:20] }
	finalize(t, a, 1)
	if _, err := a.Commit(ctx, &abci.RequestCommit{}); err != nil {
		t.Fatal(err)
	}
	bh := sha256.Sum256([]byte("2"))
	r, err := a.FinalizeBlock(ctx, &abci.RequestFinalizeBlock{Height: 2, Hash: bh[:], Time: time.Unix(1_700_000_002, 0), Misbehavior: []abci.Misbehavior{
		{Type: abci.MisbehaviorType_DUPLICATE_VOTE, Validator: abci.Validator{Address: consAddr(addr("stranger")), Power: 10}, Height: 1},
		{Type: abci.MisbehaviorType_DUPLICATE_VOTE, Validator: abci.Validator{Address: consAddr(val), Power: 10}, Height: 1},
	}})
	if err != nil {
		t.Fatal(err)
	}
	slashed := 0
	for _, e := range r.Events {
		if e.Type == string(ledger.EventSlash) {
			slashed++
		}
	}
	if slashed != 1 {
		t.Errorf("%d slash events, want 1 (the known validator's)", slashed)
	}
	if want := fmt.Sprintf("validator=%X", consAddr(addr("stranger"))); !strings.Contains(logs.String(), "a validator the ledger no longer knows") || !strings.Contains(logs.String(), want) {
		t.Errorf("the unknown validator's evidence was not logged with %s: %q", want, logs.String())
	}
}
