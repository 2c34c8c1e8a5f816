package node

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cometbft/cometbft/libs/service"

	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
)

// heldModels is a ledger.ModelHolder that lists its models (ModelLister).
type heldModels []ledger.Hash

func (h heldModels) Holds(id ledger.Hash) bool { return slices.Contains(h, id) }
func (h heldModels) IDs() []ledger.Hash        { return h }

// TestNodeAttestsModels: a validator node started with models attests to
// holding each one once it is registered, which (as the only validator)
// activates it; a registered model it does not hold stays inactive and
// gets no escrow.
func TestNodeAttestsModels(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a CometBFT node")
	}
	home := tempHome(t)
	o := DefaultOptions()
	o.ChainID = "verdict-attest-test"
	o.BasePort = freeBase(t)
	o.BlockInterval = 100 * time.Millisecond
	if err := Init(home, o); err != nil {
		t.Fatal(err)
	}
	faucet, err := keys.Load(filepath.Join(home, FaucetFile))
	if err != nil {
		t.Fatal(err)
	}
	fkey := ed25519.PrivateKey(faucet.Private)
	held, notHeld, neverRegistered := ledger.Hash{0xa1}, ledger.Hash{0xa2}, ledger.Hash{0xa3}
	n, err := New(home, ledger.Hooks{Receipts: ledger.Receipts{}, Models: heldModels{held, neverRegistered}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n.AttestInterval = 50 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- n.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	c, err := client.New(fmt.Sprintf("tcp://127.0.0.1:%d", o.BasePort+1))
	if err != nil {
		t.Fatal(err)
	}
	waitHeight(t, c, 1)
	for i, id := range []ledger.Hash{held, notHeld} {
		tx, err := c.Sign(ctx, fkey, &ledger.MsgRegisterModel{ModelID: id, Name: fmt.Sprint("m", i), SpecVersion: 1}, 1, -1)
		if err != nil {
			t.Fatal(err)
		}
		if r, err := c.BroadcastCommit(ctx, tx); err != nil || r.Code != 0 {
			t.Fatalf("register: %+v %v", r, err)
		}
	}
	vk, err := ValidatorKey(home)
	if err != nil {
		t.Fatal(err)
	}
	va := ledger.Address(vk.Public().(ed25519.PublicKey))
	model := func(id ledger.Hash) ledger.Model {
		var m ledger.Model
		b, err := c.Query(ctx, "model/"+id.String(), nil)
		if err != nil || json.Unmarshal(b, &m) != nil {
			t.Fatalf("model %s: %s %v", id, b, err)
		}
		return m
	}
	for !model(held).Active {
		if ctx.Err() != nil {
			t.Fatal("the node did not attest its model")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if m := model(held); len(m.Attesters) != 1 || m.Attesters[0] != va {
		t.Fatalf("attesters %v, want the validator %s", m.Attesters, va)
	}
	h, _ := c.Height(ctx)
	waitHeight(t, c, h+3)
	if m := model(notHeld); m.Active || len(m.Attesters) != 0 {
		t.Fatalf("a model the node does not hold: %+v", m)
	}
	// The validator attested once: one transaction from its account.
	if acct, err := c.Account(ctx, va); err != nil || acct.Nonce != 1 {
		t.Fatalf("validator account %+v %v", acct, err)
	}
	tx, _ := c.Sign(ctx, fkey, &ledger.MsgOpenEscrow{Worker: va, ModelID: notHeld, Fee: 5, Request: ledger.Hash{1}}, 1, -1)
	if _, err := c.BroadcastSync(ctx, tx); !errors.Is(err, client.ErrRejected) || !strings.Contains(err.Error(), ledger.ErrModelInactive.Error()) {
		t.Fatalf("escrow for an inactive model: %v", err)
	}
	tx, _ = c.Sign(ctx, fkey, &ledger.MsgOpenEscrow{Worker: va, ModelID: held, Fee: 5, Request: ledger.Hash{1}}, 1, -1)
	if r, err := c.BroadcastCommit(ctx, tx); err != nil || r.Code != 0 {
		t.Fatalf("escrow for the active model: %+v %v", r, err)
	}
}

// emptyApp answers every query as an application before its genesis state
// is committed does: not found.
type emptyApp struct{}

func (emptyApp) Query(context.Context, *abci.RequestQuery) (*abci.ResponseQuery, error) {
	return &abci.ResponseQuery{Code: ledger.Code(ledger.ErrNotFound), Log: "not found"}, nil
}

// TestAttestBeforeGenesis: a node whose state is not committed yet has
// nothing to attest, which is no error (it used to log a warning,
// `attesting models err="not found"`, on every healthy start).
func TestAttestBeforeGenesis(t *testing.T) {
	a := &attester{app: emptyApp{}, models: heldModels{{0xa1}}, sent: map[ledger.Hash]uint64{}}
	if err := a.round(context.Background()); err != nil {
		t.Errorf("round before genesis: %v", err)
	}
}

// TestCometLogLevels: CometBFT's errors about services stopped twice or
// never started (a clean stop) are debug lines, a peer that went away and
// a validator refusing to sign a step it passed before a crash are
// warnings, and anything else stays an error.
func TestCometLogLevels(t *testing.T) {
	var buf strings.Builder
	a := slogAdapter{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, tc := range []struct {
		msg  string
		kv   []any
		want string
	}{
		{"error while stopping peer", []any{"error", service.ErrAlreadyStopped}, "level=DEBUG"},
		{"Error stopping consensus state", []any{"err", fmt.Errorf("x: %w", service.ErrNotStarted)}, "level=DEBUG"},
		{"Not stopping State service -- has not been started yet", []any{"impl", "ConsensusState"}, "level=DEBUG"},
		{"Stopping peer for error", []any{"peer", "p", "err", io.EOF}, `level=WARN msg="peer disconnected"`},
		{"Stopping peer for error", []any{"peer", "p", "err", errors.New("bad block")}, "level=ERROR"},
		{"CONSENSUS FAILURE!!!", []any{"err", "panic"}, "level=ERROR"},
		// After a SIGKILL: the validator refuses to sign a step it passed.
		{"failed signing vote", []any{"height", 32, "err", errors.New("error signing vote: step regression at height 32 round 0. Got 2, last step 3")}, "level=WARN"},
		{"failed signing vote", []any{"height", 32, "err", errors.New("error signing vote: remote signer unreachable")}, "level=ERROR"},
	} {
		buf.Reset()
		a.Error(tc.msg, tc.kv...)
		if !strings.Contains(buf.String(), tc.want) {
			t.Errorf("%q: logged %q, want %s", tc.msg, buf.String(), tc.want)
		}
	}
}
