package node

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cometbft/cometbft/mempool"

	"github.com/verdictnet/verdict/internal/ledger"
)

// ModelLister is implemented by a ledger.Hooks.Models value that can list
// the models it holds (proofhooks.Models does). A node whose hooks have
// one attests to holding each of them (see Node.attestLoop).
type ModelLister interface {
	IDs() []ledger.Hash
}

// DefaultAttestInterval is how often a node looks for models to attest.
const DefaultAttestInterval = time.Second

// attestResend is how many blocks a node waits for an attestation it sent
// to be committed before it sends it again.
const attestResend = 5

// attester is a validator node's loop that attests (attestModel, signed
// with the node's validator key) to holding every model it was started
// with that is registered, not active and not yet attested by it, so that
// models become active once validators holding the chain's quorum of
// voting power hold them.
type attester struct {
	app interface {
		Query(context.Context, *abci.RequestQuery) (*abci.ResponseQuery, error)
	}
	mempool func() mempool.Mempool
	key     ed25519.PrivateKey
	addr    ledger.Address
	models  ModelLister
	log     *slog.Logger

	sent        map[ledger.Hash]uint64 // model -> height at which its attestation was sent
	nextNonce   uint64                 // nonce after the last attestation sent
	sentHeight  uint64
	warnedPower bool
}

func (a *attester) run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultAttestInterval
	}
	a.sent = map[ledger.Hash]uint64{}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := a.round(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("attesting models", "err", err)
		}
	}
}

var errNotFound = errors.New("not found")

// query reads the committed state through the application.
func (a *attester) query(ctx context.Context, path string, v any) error {
	r, err := a.app.Query(ctx, &abci.RequestQuery{Path: path})
	if err != nil {
		return fmt.Errorf("query %s: %w", path, err)
	}
	if r.Code == ledger.Code(ledger.ErrNotFound) {
		return errNotFound
	}
	if r.Code != 0 {
		return fmt.Errorf("query %s: %s", path, r.Log)
	}
	if err := json.Unmarshal(r.Value, v); err != nil {
		return fmt.Errorf("query %s: %w", path, err)
	}
	return nil
}

// round sends the attestations due now.
func (a *attester) round(ctx context.Context) error {
	var p ledger.Params
	var ci ledger.ChainInfo
	var v ledger.Validator
	var acct ledger.Account
	for _, q := range []struct {
		path string
		v    any
	}{{"params", &p}, {"chain", &ci}, {"validator/" + a.addr.String(), &v}, {"account/" + a.addr.String(), &acct}} {
		if err := a.query(ctx, q.path, q.v); errors.Is(err, errNotFound) && (q.path == "params" || q.path == "chain") {
			return nil // the genesis state is not committed yet: nothing to attest
		} else if err != nil {
			return err
		}
	}
	if p.ModelQuorumBps == 0 {
		return nil // models are active at registration
	}
	if v.Power == 0 {
		if !a.warnedPower {
			a.log.Debug("not attesting models: this node's key is not a validator with voting power", "account", a.addr.String())
			a.warnedPower = true
		}
		return nil
	}
	a.warnedPower = false
	if acct.Nonce < a.nextNonce && ci.Height < a.sentHeight+attestResend {
		return nil // an attestation sent earlier is not in a block yet
	}
	nonce := acct.Nonce
	for _, id := range a.models.IDs() {
		var m ledger.Model
		switch err := a.query(ctx, "model/"+id.String(), &m); {
		case errors.Is(err, errNotFound):
			continue
		case err != nil:
			return err
		}
		if m.Active || slices.Contains(m.Attesters, a.addr) {
			continue
		}
		if h, ok := a.sent[id]; ok && ci.Height < h+attestResend {
			continue
		}
		tx := &ledger.Tx{ChainID: ci.ChainID, Nonce: nonce, Fee: p.MinFee, Msg: &ledger.MsgAttestModel{ModelID: id}}
		tx.Sign(a.key)
		code, log, err := a.broadcast(ctx, tx.Encode())
		if err != nil {
			return fmt.Errorf("model %s: %w", id, err)
		}
		if code != 0 {
			// Tried again attestResend blocks later (the nonce may have
			// been taken by another transaction of this account, the
			// balance may be topped up).
			a.sent[id] = ci.Height
			a.log.Warn("attestation refused", "modelId", id.String(), "name", m.Name, "code", code, "log", log)
			if code == ledger.Code(ledger.ErrNonce) || code == ledger.Code(ledger.ErrFunds) {
				return nil
			}
			continue
		}
		a.log.Info("attesting that this validator holds the model", "modelId", id.String(), "name", m.Name, "nonce", nonce)
		a.sent[id] = ci.Height
		nonce++
		a.nextNonce, a.sentHeight = nonce, ci.Height
	}
	return nil
}

// broadcast adds tx to the node's mempool (which gossips it) and returns
// CheckTx's answer.
func (a *attester) broadcast(ctx context.Context, tx []byte) (uint32, string, error) {
	res := make(chan *abci.ResponseCheckTx, 1)
	err := a.mempool().CheckTx(tx, func(r *abci.ResponseCheckTx) {
		select {
		case res <- r:
		default:
		}
	}, mempool.TxInfo{})
	if errors.Is(err, mempool.ErrTxInCache) {
		return 0, "", nil // sent before
	}
	if err != nil {
		return 0, "", fmt.Errorf("mempool: %w", err)
	}
	select {
	case r := <-res:
		return r.Code, r.Log, nil
	case <-ctx.Done():
		return 0, "", ctx.Err()
	case <-time.After(10 * time.Second):
		return 0, "", errors.New("mempool: no CheckTx answer within 10 s")
	}
}
