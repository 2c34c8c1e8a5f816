package abciapp

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	dbm "github.com/cometbft/cometbft-db"
	abci "github.com/cometbft/cometbft/abci/types"
	cmtcrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"

	"github.com/verdictnet/verdict/internal/ledger"
)

// Version is reported by Info.
const Version = "verdict-ledger/1"

// Database keys: state keys under "s/", metadata under "m/".
var (
	keyHeight  = []byte("m/height")
	keyAppHash = []byte("m/apphash")
)

// App is the ABCI application.
type App struct {
	abci.BaseApplication

	mu       sync.Mutex // the consensus lock: Info, InitChain, CheckTx, FinalizeBlock, Commit
	db       dbm.DB
	hooks    ledger.Hooks
	ledger   *ledger.Ledger
	checker  *ledger.Checker
	log      *slog.Logger
	height   int64  // last committed height
	appHash  []byte // last committed app hash
	finalize []byte // app hash of the finalized, not yet committed block

	// Queries read the committed database and snapshot under qmu alone
	// (read-locked), which Commit write-locks only while it writes them:
	// a query never waits for a block to be applied, nor delays one.
	qmu     sync.RWMutex
	qheight int64            // committed height, as queries see it
	snap    *ledger.Snapshot // committed key order and leaf hashes, for proofs
}

// New loads the committed state from db (empty for a new chain).
func New(db dbm.DB, hooks ledger.Hooks, log *slog.Logger) (*App, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st := ledger.NewMemStore()
	it, err := db.Iterator([]byte("s/"), []byte("s0"))
	if err != nil {
		return nil, fmt.Errorf("load ledger state: %w", err)
	}
	for ; it.Valid(); it.Next() {
		st.Load(string(it.Key()[2:]), append([]byte{}, it.Value()...))
	}
	if err := it.Error(); err != nil {
		it.Close()
		return nil, fmt.Errorf("load ledger state: %w", err)
	}
	it.Close()
	a := &App{db: db, hooks: hooks, log: log, snap: st.Snapshot()}
	a.ledger = ledger.New(st, hooks)
	a.checker = ledger.NewChecker(a.ledger)
	hb, err := db.Get(keyHeight)
	if err != nil {
		return nil, fmt.Errorf("load ledger height: %w", err)
	}
	if len(hb) == 8 {
		a.height = int64(binary.BigEndian.Uint64(hb))
	}
	a.qheight = a.height
	if a.appHash, err = db.Get(keyAppHash); err != nil {
		return nil, fmt.Errorf("load ledger app hash: %w", err)
	}
	if a.height > 0 {
		if root := a.ledger.AppHash(); !equal(root[:], a.appHash) {
			return nil, fmt.Errorf("load ledger state: stored app hash %x does not match the state's %x (corrupt database)", a.appHash, root)
		}
	}
	if hooks.Models != nil {
		if missing := a.ledger.MissingModels(hooks.Models.Holds); len(missing) > 0 {
			var names []string
			for _, m := range missing {
				names = append(names, fmt.Sprintf("%s (%q)", m.ModelID, m.Name))
			}
			return nil, fmt.Errorf("ledger: this node does not hold %s, which has receipts in their challenge window; every validator must hold every audited model: start the node with --model PATH for each", strings.Join(names, ", "))
		}
	}
	log.Info("ledger loaded", "height", a.height, "keys", st.Len(), "appHash", fmt.Sprintf("%x", a.appHash))
	return a, nil
}

func equal(a, b []byte) bool { return string(a) == string(b) }

// Ledger returns the state machine (for tests and in-process readers).
func (a *App) Ledger() *ledger.Ledger { return a.ledger }

// Info reports the last committed height and app hash.
func (a *App) Info(context.Context, *abci.RequestInfo) (*abci.ResponseInfo, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return &abci.ResponseInfo{Data: "verdict", Version: Version, AppVersion: 1, LastBlockHeight: a.height, LastBlockAppHash: a.appHash}, nil
}

// InitChain writes the genesis state from the genesis file's app_state.
func (a *App) InitChain(_ context.Context, req *abci.RequestInitChain) (*abci.ResponseInitChain, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var g ledger.Genesis
	d := json.NewDecoder(strings.NewReader(string(req.AppStateBytes)))
	d.DisallowUnknownFields()
	if err := d.Decode(&g); err != nil {
		return nil, fmt.Errorf("genesis app_state: %w", err)
	}
	if g.ChainID != req.ChainId {
		return nil, fmt.Errorf("genesis app_state: chainId %q differs from the chain's %q", g.ChainID, req.ChainId)
	}
	if err := a.ledger.InitGenesis(g); err != nil {
		return nil, err
	}
	var vals []ledger.GenesisValidator
	for i, v := range req.Validators {
		pk := v.PubKey.GetEd25519()
		if len(pk) != 32 {
			return nil, fmt.Errorf("genesis validator %d: want an ed25519 key", i)
		}
		vals = append(vals, ledger.GenesisValidator{PubKey: ledger.Address(pk), Power: v.Power})
	}
	if err := a.ledger.SetValidators(vals); err != nil {
		return nil, err
	}
	root := a.ledger.AppHash()
	a.log.Info("genesis", "chainId", g.ChainID, "accounts", len(g.Accounts), "validators", len(vals))
	return &abci.ResponseInitChain{AppHash: root[:]}, nil
}

// CheckTx validates a transaction for the mempool without changing state.
func (a *App) CheckTx(_ context.Context, req *abci.RequestCheckTx) (*abci.ResponseCheckTx, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.checker.Check(req.Tx)
	return &abci.ResponseCheckTx{Code: r.Code, Log: r.Log, Codespace: codespace(r.Code)}, nil
}

func codespace(code uint32) string {
	if code == 0 {
		return ""
	}
	return "verdict"
}

// PrepareProposal chooses the block's transactions from the whole mempool
// (the chain runs with block.max_bytes -1, so CometBFT hands it all):
// deadline transactions first, at most maxBlockBytes (ledger.Propose).
func (a *App) PrepareProposal(_ context.Context, req *abci.RequestPrepareProposal) (*abci.ResponsePrepareProposal, error) {
	a.mu.Lock()
	limit := int64(a.ledger.Params().MaxBlockBytes)
	a.mu.Unlock()
	return &abci.ResponsePrepareProposal{Txs: ledger.Propose(req.Txs, min(limit, req.MaxTxBytes))}, nil
}

// ProcessProposal rejects a proposal with more than maxBlockBytes of
// transactions.
func (a *App) ProcessProposal(_ context.Context, req *abci.RequestProcessProposal) (*abci.ResponseProcessProposal, error) {
	a.mu.Lock()
	limit := a.ledger.Params().MaxBlockBytes
	a.mu.Unlock()
	var n uint64
	for _, tx := range req.Txs {
		n += uint64(len(tx))
	}
	if n > limit {
		a.log.Warn("rejecting a proposal over maxBlockBytes", "height", req.Height, "bytes", n, "limit", limit)
		return &abci.ResponseProcessProposal{Status: abci.ResponseProcessProposal_REJECT}, nil
	}
	return &abci.ResponseProcessProposal{Status: abci.ResponseProcessProposal_ACCEPT}, nil
}

// FinalizeBlock applies a decided block in memory and returns the app hash.
func (a *App) FinalizeBlock(_ context.Context, req *abci.RequestFinalizeBlock) (*abci.ResponseFinalizeBlock, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if req.Height <= 0 {
		return nil, fmt.Errorf("finalize block: height %d", req.Height)
	}
	var bh ledger.Hash
	copy(bh[:], req.Hash)
	ctx := ledger.BlockContext{Height: uint64(req.Height), Time: req.Time.Unix(), Hash: bh, Proposer: a.ledger.ProposerAccount(req.ProposerAddress)}
	for _, m := range req.Misbehavior {
		v := a.ledger.ProposerAccount(m.Validator.Address)
		if v.IsZero() {
			// The ledger keeps a validator's entry for
			// evidenceMaxAgeBlocks after it leaves; CometBFT's own
			// evidence age (consensus params) may be longer.
			a.log.Warn("evidence of misbehaviour by a validator the ledger no longer knows: not slashed", "height", req.Height, "evidence_height", m.Height, "validator", fmt.Sprintf("%X", m.Validator.Address), "type", m.Type.String())
			continue
		}
		ctx.Misbehaving = append(ctx.Misbehaving, ledger.Misbehaviour{Validator: v, Height: uint64(max(m.Height, 0))})
	}
	res, err := a.ledger.FinalizeBlock(ctx, req.Txs)
	if err != nil {
		if errors.Is(err, ledger.ErrModelUnavailable) {
			a.log.Error("cannot apply block: a model it needs is not held; stopping rather than diverging; restart with --model for it", "height", req.Height, "error", err)
		}
		return nil, err
	}
	out := &abci.ResponseFinalizeBlock{AppHash: res.AppHash[:], Events: events(res.Events)}
	for _, u := range res.ValidatorUpdates {
		out.ValidatorUpdates = append(out.ValidatorUpdates, abci.Ed25519ValidatorUpdate(u.PubKey[:], u.Power))
	}
	for _, r := range res.TxResults {
		out.TxResults = append(out.TxResults, &abci.ExecTxResult{Code: r.Code, Log: r.Log, Codespace: codespace(r.Code), Events: events(r.Events)})
	}
	a.finalize = res.AppHash[:]
	return out, nil
}

func events(evs []ledger.Event) []abci.Event {
	out := make([]abci.Event, 0, len(evs))
	for _, e := range evs {
		ae := abci.Event{Type: string(e.Type)}
		for _, at := range e.Attrs {
			ae.Attributes = append(ae.Attributes, abci.EventAttribute{Key: string(at.Key), Value: at.Value, Index: true})
		}
		out = append(out, ae)
	}
	return out
}

// Commit persists the state changed since the last commit in one synced
// batch.
func (a *App) Commit(context.Context, *abci.RequestCommit) (*abci.ResponseCommit, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.finalize == nil {
		return nil, errors.New("commit without a finalized block")
	}
	height := int64(a.ledger.Info().Height)
	b := a.db.NewBatch()
	defer b.Close()
	changes := a.ledger.Store().TakeDirty()
	snap := a.ledger.Store().Snapshot()
	for _, c := range changes {
		k := append([]byte("s/"), c.Key...)
		var err error
		if c.Value == nil {
			err = b.Delete(k)
		} else {
			err = b.Set(k, c.Value)
		}
		if err != nil {
			return nil, fmt.Errorf("commit height %d: %w", height, err)
		}
	}
	if err := b.Set(keyHeight, binary.BigEndian.AppendUint64(nil, uint64(height))); err != nil {
		return nil, fmt.Errorf("commit height %d: %w", height, err)
	}
	if err := b.Set(keyAppHash, a.finalize); err != nil {
		return nil, fmt.Errorf("commit height %d: %w", height, err)
	}
	a.qmu.Lock()
	err := b.WriteSync()
	if err == nil {
		a.qheight, a.snap = height, snap
	}
	a.qmu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("commit height %d: %w", height, err)
	}
	a.height, a.appHash, a.finalize = height, a.finalize, nil
	a.checker.Reset()
	return &abci.ResponseCommit{}, nil
}

// Query answers ledger.Query paths from the committed state only (a block
// finalized but not yet committed is not shown: CometBFT may replay it
// after a crash); with a path that names one state key ("key/KEY"), it
// returns the value with a Merkle proof against the app hash of the last
// committed block, which Info reports.
//
// Queries do not take the consensus lock: they read the committed
// database, and proofs come from the snapshot of the committed tree taken
// at Commit (its tree built once, on the first proof), so a busy explorer
// does not slow block production. Only the fee query ("fee", data a
// signed transaction: ledger.Checker.EstimateFee) runs against the
// mempool's state under the consensus lock.
func (a *App) Query(_ context.Context, req *abci.RequestQuery) (*abci.ResponseQuery, error) {
	if req.Path == "fee" {
		a.mu.Lock()
		est := a.checker.EstimateFee(req.Data)
		h := a.height
		a.mu.Unlock()
		v, _ := json.Marshal(est)
		return &abci.ResponseQuery{Height: h, Value: v}, nil
	}
	a.qmu.RLock()
	defer a.qmu.RUnlock()
	resp := &abci.ResponseQuery{Height: a.qheight}
	st := committedDB{a.db}
	if key, ok := strings.CutPrefix(req.Path, "key/"); ok {
		v, found := st.Get(key)
		var p ledger.Proof
		var err error
		if !found {
			err = fmt.Errorf("prove %q: %w", key, ledger.ErrNotFound)
		} else {
			p, err = a.snap.Prove(key, v)
		}
		if err != nil {
			resp.Code, resp.Log = ledger.Code(err), err.Error()
			return resp, nil
		}
		resp.Key, resp.Value = []byte(key), p.Value
		pb, _ := json.Marshal(p)
		resp.ProofOps = &cmtcrypto.ProofOps{Ops: []cmtcrypto.ProofOp{{Type: "verdict/rfc6962", Key: []byte(key), Data: pb}}}
		return resp, nil
	}
	v, err := ledger.QueryState(st, req.Path, req.Data)
	if err != nil {
		resp.Code, resp.Log = ledger.Code(err), err.Error()
		return resp, nil
	}
	resp.Value = v
	return resp, nil
}

// committedDB reads the committed state from the application's database
// (state key K is stored under "s/K"). It is read-only.
type committedDB struct{ db dbm.DB }

func (c committedDB) Get(key string) ([]byte, bool) {
	v, err := c.db.Get(append([]byte("s/"), key...))
	if err != nil || v == nil {
		return nil, false
	}
	return v, true
}

func (committedDB) Set(key string, _ []byte) {
	panic("abciapp: write to the committed database view: " + key)
}
func (committedDB) Delete(key string) { panic("abciapp: write to the committed database view: " + key) }
