package client

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	coretypes "github.com/cometbft/cometbft/rpc/core/types"

	"github.com/verdictnet/verdict/internal/ledger"
)

// Client is a connection to one node's RPC.
type Client struct {
	rpc *rpchttp.HTTP

	mu    sync.Mutex
	chain string // the chain id, once read (it never changes)
}

// New connects to a node's RPC address ("tcp://127.0.0.1:26657" or
// "http://...").
func New(addr string) (*Client, error) {
	if !strings.Contains(addr, "://") {
		addr = "tcp://" + addr
	}
	c, err := rpchttp.New(addr, "/websocket")
	if err != nil {
		return nil, fmt.Errorf("ledger client %s: %w", addr, err)
	}
	return &Client{rpc: c}, nil
}

// ChainID returns the node's chain id (read once, then remembered).
func (c *Client) ChainID(ctx context.Context) (string, error) {
	c.mu.Lock()
	chain := c.chain
	c.mu.Unlock()
	if chain != "" {
		return chain, nil
	}
	st, err := c.rpc.Status(ctx)
	if err != nil {
		return "", fmt.Errorf("node status: %w", err)
	}
	c.mu.Lock()
	c.chain = st.NodeInfo.Network
	c.mu.Unlock()
	return st.NodeInfo.Network, nil
}

// Height returns the node's latest committed height.
func (c *Client) Height(ctx context.Context) (int64, error) {
	st, err := c.rpc.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("node status: %w", err)
	}
	return st.SyncInfo.LatestBlockHeight, nil
}

// QueryError is a query the ledger answered with a failure.
type QueryError struct {
	Code uint32
	Log  string
}

func (e *QueryError) Error() string { return e.Log }

// Query runs a ledger query (see ledger.Ledger.Query for the paths) and
// returns its JSON answer.
func (c *Client) Query(ctx context.Context, path string, data []byte) ([]byte, error) {
	r, err := c.rpc.ABCIQuery(ctx, path, data)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", path, err)
	}
	if r.Response.Code != 0 {
		return nil, &QueryError{Code: r.Response.Code, Log: r.Response.Log}
	}
	return r.Response.Value, nil
}

// Account returns an account's balance and next nonce.
func (c *Client) Account(ctx context.Context, a ledger.Address) (ledger.Account, error) {
	var acct ledger.Account
	b, err := c.Query(ctx, "account/"+a.String(), nil)
	if err != nil {
		return acct, err
	}
	if err := json.Unmarshal(b, &acct); err != nil {
		return acct, fmt.Errorf("account %s: %w", a, err)
	}
	return acct, nil
}

// Result is the outcome of a committed transaction.
type Result struct {
	Hash   string         `json:"hash"`
	Height int64          `json:"height"`
	Code   uint32         `json:"code"`
	Log    string         `json:"log,omitempty"`
	Events []ledger.Event `json:"events"`
}

// ErrRejected is returned (wrapped) when CheckTx rejects a transaction.
var ErrRejected = errors.New("transaction rejected")

// RejectedError is CheckTx's refusal of a transaction, with its result code
// (ledger.Code); it wraps ErrRejected.
type RejectedError struct {
	Code uint32
	Log  string
}

func (e *RejectedError) Error() string { return ErrRejected.Error() + ": " + e.Log }

// Unwrap makes errors.Is(err, ErrRejected) hold.
func (e *RejectedError) Unwrap() error { return ErrRejected }

// RejectionCode returns the CheckTx result code of a rejection (see
// ledger.Code), and false when err is no RejectedError.
func RejectionCode(err error) (uint32, bool) {
	var re *RejectedError
	if errors.As(err, &re) {
		return re.Code, true
	}
	return 0, false
}

// FailedError is a transaction that was committed and whose message
// failed in its block, with its result code (ledger.Code).
type FailedError struct {
	Height int64
	Code   uint32
	Log    string
}

func (e *FailedError) Error() string {
	return fmt.Sprintf("transaction failed in block %d: code %d: %s", e.Height, e.Code, e.Log)
}

// ErrorCode returns the ledger.Code of a transaction that CheckTx rejected
// (RejectedError) or that failed in its block (FailedError), and false for
// any other error (the node could not be asked, for one).
func ErrorCode(err error) (uint32, bool) {
	if code, ok := RejectionCode(err); ok {
		return code, true
	}
	var fe *FailedError
	if errors.As(err, &fe) {
		return fe.Code, true
	}
	return 0, false
}

// Sign fills in the chain id and, when nonce is negative, the signer's next
// nonce, and signs m with key.
func (c *Client) Sign(ctx context.Context, key ed25519.PrivateKey, m ledger.Msg, fee uint64, nonce int64) (*ledger.Tx, error) {
	chain, err := c.ChainID(ctx)
	if err != nil {
		return nil, err
	}
	tx := &ledger.Tx{ChainID: chain, Fee: fee, Msg: m}
	if nonce < 0 {
		a, err := ledger.AddressOf(key.Public().(ed25519.PublicKey))
		if err != nil {
			return nil, err
		}
		acct, err := c.Account(ctx, a)
		if err != nil {
			return nil, err
		}
		tx.Nonce = acct.Nonce
	} else {
		tx.Nonce = uint64(nonce)
	}
	tx.Sign(key)
	// The fee pays for the transaction's bytes and the state it grows
	// (ledger.Params.RequiredFee): ask the node, and re-sign with more
	// when fee is short. A node that cannot say leaves fee as given.
	if est, err := c.EstimateFee(ctx, tx); err == nil && est.RequiredFee > tx.Fee {
		tx.Fee = est.RequiredFee
		tx.Sign(key)
	}
	return tx, nil
}

// EstimateFee asks the node what tx needs in fees (ledger.Checker.EstimateFee
// against its mempool state).
func (c *Client) EstimateFee(ctx context.Context, tx *ledger.Tx) (ledger.FeeEstimate, error) {
	var est ledger.FeeEstimate
	b, err := c.Query(ctx, "fee", tx.Encode())
	if err != nil {
		return est, err
	}
	if err := json.Unmarshal(b, &est); err != nil {
		return est, fmt.Errorf("fee estimate: %w", err)
	}
	return est, nil
}

// BroadcastCommit sends a signed transaction and waits until it is in a
// block. A transaction CheckTx rejects returns an error wrapping
// ErrRejected; one that fails in its block returns a Result with Code != 0.
func (c *Client) BroadcastCommit(ctx context.Context, tx *ledger.Tx) (Result, error) {
	r, err := c.rpc.BroadcastTxCommit(ctx, tx.Encode())
	if err != nil {
		return Result{}, fmt.Errorf("broadcast: %w", err)
	}
	if r.CheckTx.Code != 0 {
		return Result{}, &RejectedError{Code: r.CheckTx.Code, Log: r.CheckTx.Log}
	}
	res := Result{Hash: r.Hash.String(), Height: r.Height, Code: r.TxResult.Code, Log: r.TxResult.Log}
	for _, e := range r.TxResult.Events {
		res.Events = append(res.Events, EventOf(r.Height, e, nil).Event)
	}
	return res, nil
}

// BroadcastSync sends a signed transaction and returns once CheckTx
// accepted it (not yet committed); it returns the transaction hash.
func (c *Client) BroadcastSync(ctx context.Context, tx *ledger.Tx) (string, error) {
	r, err := c.rpc.BroadcastTxSync(ctx, tx.Encode())
	if err != nil {
		return "", fmt.Errorf("broadcast: %w", err)
	}
	if r.Code != 0 {
		return "", &RejectedError{Code: r.Code, Log: r.Log}
	}
	return r.Hash.String(), nil
}

// Block returns the app hash (hex) recorded in the block at height h: the
// state after block h-1.
func (c *Client) Block(ctx context.Context, h int64) (string, error) {
	b, err := c.rpc.Block(ctx, &h)
	if err != nil {
		return "", fmt.Errorf("block %d: %w", h, err)
	}
	return b.Block.AppHash.String(), nil
}

// BroadcastBatch sends signed transactions in one JSON-RPC batch, in order,
// and returns once the mempool has answered each; it returns the first
// rejection (wrapping ErrRejected) with the number accepted before it.
func (c *Client) BroadcastBatch(ctx context.Context, txs []*ledger.Tx) (int, error) {
	b := c.rpc.NewBatch()
	results := make([]*coretypes.ResultBroadcastTx, len(txs))
	for i, tx := range txs {
		r, err := b.BroadcastTxSync(ctx, tx.Encode())
		if err != nil {
			return 0, fmt.Errorf("broadcast batch: %w", err)
		}
		results[i] = r // filled in by Send
	}
	if _, err := b.Send(ctx); err != nil {
		return 0, fmt.Errorf("broadcast batch: %w", err)
	}
	for i, r := range results {
		if r.Code != 0 {
			return i, fmt.Errorf("%w: transaction %d of the batch: %s", ErrRejected, i, r.Log)
		}
	}
	return len(results), nil
}

// Validators returns the consensus validator set at the latest height: each
// validator's account (its ed25519 key) and voting power.
func (c *Client) Validators(ctx context.Context) ([]ledger.ValidatorUpdate, error) {
	perPage := 100
	r, err := c.rpc.Validators(ctx, nil, nil, &perPage)
	if err != nil {
		return nil, fmt.Errorf("validators: %w", err)
	}
	var out []ledger.ValidatorUpdate
	for _, v := range r.Validators {
		var a ledger.Address
		copy(a[:], v.PubKey.Bytes())
		out = append(out, ledger.ValidatorUpdate{PubKey: a, Power: v.VotingPower})
	}
	return out, nil
}
