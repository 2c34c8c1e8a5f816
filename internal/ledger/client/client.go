package client

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"

	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	coretypes "github.com/cometbft/cometbft/rpc/core/types"

	"github.com/verdictnet/verdict/internal/ledger"
)

// Client is a connection to one node's RPC.
type Client struct {
	rpc *rpchttp.HTTP
	o   Options

	mu    sync.Mutex
	chain string // the chain id, once read (it never changes)
}

// Options are what a client holds against its node: the node answers the
// chain id and the fee estimates, and a node that is not the operator's
// own (a remote RPC, one compromised) could answer anything.
type Options struct {
	// MaxFee is the largest fee the client signs a transaction for,
	// whether given by the caller or asked by the node's fee estimate
	// (0: DefaultMaxFee). A larger one is refused with a
	// *FeeTooHighError, nothing signed.
	MaxFee uint64
	// ChainID, when not empty, is the only chain the client signs for:
	// ChainID (and so every signing) fails with a *WrongChainError when
	// the node reports another.
	ChainID string
}

// DefaultMaxFee is the fee ceiling of a client given none. The largest
// transaction the ledger takes (MaxTxBytes, 6 MiB) growing the state by as
// much again needs 3,073 under DefaultParams (minFee 1 per 4096 bytes);
// the ceiling is over three times that, and bounds what a node inflating
// its fee estimates takes from the account per transaction. A chain with a
// larger minFee or a smaller feeUnitBytes needs a larger Options.MaxFee
// (the CLI's --max-tx-fee).
const DefaultMaxFee uint64 = 10_000

// ErrFeeTooHigh is returned (wrapped, in a *FeeTooHighError) when a
// transaction's fee exceeds the client's MaxFee.
var ErrFeeTooHigh = errors.New("fee above the client's maximum")

// FeeTooHighError is a transaction the client refused to sign: its fee
// (Fee: the caller's, or the node's estimate when Estimated) exceeds the
// client's maximum (Max). It wraps ErrFeeTooHigh.
type FeeTooHighError struct {
	Fee, Max  uint64
	Estimated bool   // the fee is the node's estimate, not the caller's
	Kind      string // the message's kind (ledger.Msg.Kind)
}

func (e *FeeTooHighError) Error() string {
	by := "given"
	if e.Estimated {
		by = "asked by the node's fee estimate"
	}
	return fmt.Sprintf("%s: a %s transaction's fee %d (%s) is above %d; not signed", ErrFeeTooHigh, e.Kind, e.Fee, by, e.Max)
}

// Unwrap makes errors.Is(err, ErrFeeTooHigh) hold.
func (e *FeeTooHighError) Unwrap() error { return ErrFeeTooHigh }

// ErrWrongChain is returned (wrapped, in a *WrongChainError) when the node
// reports a chain id other than the one the client is pinned to.
var ErrWrongChain = errors.New("node is on another chain")

// WrongChainError is a node reporting chain id Got to a client pinned to
// Want (Options.ChainID). It wraps ErrWrongChain.
type WrongChainError struct{ Want, Got string }

func (e *WrongChainError) Error() string {
	return fmt.Sprintf("%s: it reports chain id %q, want %q", ErrWrongChain, e.Got, e.Want)
}

// Unwrap makes errors.Is(err, ErrWrongChain) hold.
func (e *WrongChainError) Unwrap() error { return ErrWrongChain }

// New connects to a node's RPC address ("tcp://127.0.0.1:26657" or
// "http://...") with the default Options: fees up to DefaultMaxFee, the
// chain id the node reports.
func New(addr string) (*Client, error) { return NewWithOptions(addr, Options{}) }

// NewWithOptions is New with Options.
func NewWithOptions(addr string, o Options) (*Client, error) {
	if !strings.Contains(addr, "://") {
		addr = "tcp://" + addr
	}
	c, err := rpchttp.New(addr, "/websocket")
	if err != nil {
		return nil, fmt.Errorf("ledger client %s: %w", addr, err)
	}
	if o.MaxFee == 0 {
		o.MaxFee = DefaultMaxFee
	}
	return &Client{rpc: c, o: o}, nil
}

// MaxFee is the largest fee the client signs a transaction for.
func (c *Client) MaxFee() uint64 { return c.o.MaxFee }

// checkFee refuses a fee above the client's maximum.
func (c *Client) checkFee(m ledger.Msg, fee uint64, estimated bool) error {
	if fee <= c.o.MaxFee {
		return nil
	}
	kind := "?"
	if m != nil {
		kind = m.Kind()
	}
	return &FeeTooHighError{Fee: fee, Max: c.o.MaxFee, Estimated: estimated, Kind: kind}
}

// ChainID returns the node's chain id (read once, then remembered). A
// client pinned to a chain id (Options.ChainID) returns a
// *WrongChainError for a node that reports another.
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
	got := st.NodeInfo.Network
	if c.o.ChainID != "" && got != c.o.ChainID {
		return "", &WrongChainError{Want: c.o.ChainID, Got: got}
	}
	if got == "" {
		return "", errors.New("node status: no chain id")
	}
	c.mu.Lock()
	c.chain = got
	c.mu.Unlock()
	return got, nil
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

// Error is the ledger's message; a node that sent a failure without one
// gets its code said, not an empty error.
func (e *QueryError) Error() string {
	if strings.TrimSpace(e.Log) == "" {
		return fmt.Sprintf("the ledger refused the query (code %d) without a message", e.Code)
	}
	return e.Log
}

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
// nonce, and signs m with key, paying fee or the more the node's fee
// estimate asks. A fee (given or asked) above the client's MaxFee is a
// *FeeTooHighError, and nothing is returned signed with it.
func (c *Client) Sign(ctx context.Context, key ed25519.PrivateKey, m ledger.Msg, fee uint64, nonce int64) (*ledger.Tx, error) {
	if err := c.checkFee(m, fee, false); err != nil {
		return nil, err
	}
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
	// when fee is short. A node that cannot say leaves fee as given; one
	// that asks more than the client's MaxFee is refused (nothing signed
	// with its fee).
	if est, err := c.EstimateFee(ctx, tx); err == nil && est.RequiredFee > tx.Fee {
		if err := c.checkFee(m, est.RequiredFee, true); err != nil {
			return nil, err
		}
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
	for i, v := range r.Validators {
		// A node's answer: an entry without a key (nil, which Bytes
		// dereferenced) or with another kind of key names no account.
		if v.PubKey == nil || len(v.PubKey.Bytes()) != len(ledger.Address{}) {
			return nil, fmt.Errorf("validators: the node's entry %d has no ed25519 key", i)
		}
		out = append(out, ledger.ValidatorUpdate{PubKey: ledger.Address(v.PubKey.Bytes()), Power: v.VotingPower})
	}
	return out, nil
}

// EstimateFees returns the fee each of msgs needs when key signs it: fee,
// or more where the node asks for more. The estimates are asked in one
// JSON-RPC batch, each for the message signed with the largest nonce (the
// longest encoding: a transaction signed with any nonce needs no more); a
// node that cannot say leaves fee, as Sign does. The fees are the node's
// answers, unchecked: the signer refuses those above the client's MaxFee
// (Sender.SendBatch does).
func (c *Client) EstimateFees(ctx context.Context, key ed25519.PrivateKey, msgs []ledger.Msg, fee uint64) []uint64 {
	fees := make([]uint64, len(msgs))
	for i := range fees {
		fees[i] = fee
	}
	chain, err := c.ChainID(ctx)
	if err != nil {
		return fees
	}
	paths := make([]string, len(msgs))
	data := make([][]byte, len(msgs))
	for i, m := range msgs {
		tx := &ledger.Tx{ChainID: chain, Fee: fee, Nonce: math.MaxUint64, Msg: m}
		tx.Sign(key)
		paths[i], data[i] = "fee", tx.Encode()
	}
	results, err := c.queryBatch(ctx, paths, data)
	if err != nil {
		return fees
	}
	for i, r := range results {
		var est ledger.FeeEstimate
		if r == nil || r.Response.Code != 0 || json.Unmarshal(r.Response.Value, &est) != nil {
			continue
		}
		fees[i] = max(fee, est.RequiredFee)
	}
	return fees
}

// BroadcastEach sends signed transactions in one JSON-RPC batch, in order,
// and returns CheckTx's answer to each: nil (in the mempool) or a
// *RejectedError. An error means the batch got no answer (any of them
// may be in the mempool).
func (c *Client) BroadcastEach(ctx context.Context, txs []*ledger.Tx) ([]error, error) {
	out := make([]error, len(txs))
	if len(txs) == 1 {
		// CometBFT answers a batch of one as a single call, which the
		// batch client does not decode: send it alone.
		if _, err := c.BroadcastSync(ctx, txs[0]); err != nil {
			if !errors.Is(err, ErrRejected) {
				return nil, err
			}
			out[0] = err
		}
		return out, nil
	}
	b := c.rpc.NewBatch()
	results := make([]*coretypes.ResultBroadcastTx, len(txs))
	for i, tx := range txs {
		r, err := b.BroadcastTxSync(ctx, tx.Encode())
		if err != nil {
			return nil, fmt.Errorf("broadcast batch: %w", err)
		}
		results[i] = r
	}
	if _, err := b.Send(ctx); err != nil {
		return nil, fmt.Errorf("broadcast batch: %w", err)
	}
	for i, r := range results {
		switch {
		case len(r.Hash) == 0:
			// The call failed inside the batch (its result left empty):
			// the node may or may not have the transaction.
			out[i] = fmt.Errorf("%w: transaction %d of the batch got no answer", ErrMaybeSent, i)
		case r.Code != 0:
			out[i] = &RejectedError{Code: r.Code, Log: r.Log}
		}
	}
	return out, nil
}

// queryBatch runs ledger queries in one JSON-RPC batch. A query that
// failed inside the batch has a nil result.
func (c *Client) queryBatch(ctx context.Context, paths []string, data [][]byte) ([]*coretypes.ResultABCIQuery, error) {
	results := make([]*coretypes.ResultABCIQuery, len(paths))
	if len(paths) == 1 {
		// A batch of one is answered as a single call: send it alone.
		r, err := c.rpc.ABCIQuery(ctx, paths[0], data[0])
		if err != nil {
			return nil, fmt.Errorf("query %s: %w", paths[0], err)
		}
		results[0] = r
		return results, nil
	}
	b := c.rpc.NewBatch()
	for i, path := range paths {
		r, err := b.ABCIQuery(ctx, path, data[i])
		if err != nil {
			return nil, fmt.Errorf("query batch: %w", err)
		}
		results[i] = r
	}
	if _, err := b.Send(ctx); err != nil {
		return nil, fmt.Errorf("query batch: %w", err)
	}
	for i, r := range results {
		// Every answer of the ledger carries the height it was read at;
		// an empty one is a call that failed inside the batch.
		if r.Response.Height == 0 && r.Response.Code == 0 {
			results[i] = nil
		}
	}
	return results, nil
}

// HasReceipts reports, for each id, whether the ledger holds the receipt,
// asked in one JSON-RPC batch.
func (c *Client) HasReceipts(ctx context.Context, ids []ledger.Hash) ([]bool, error) {
	paths := make([]string, len(ids))
	for i, id := range ids {
		paths[i] = "receipt/" + id.String()
	}
	results, err := c.queryBatch(ctx, paths, make([][]byte, len(ids)))
	if err != nil {
		return nil, fmt.Errorf("receipt queries: %w", err)
	}
	out := make([]bool, len(ids))
	for i, r := range results {
		if r == nil {
			return nil, fmt.Errorf("receipt query %s: no answer", ids[i])
		}
		switch r.Response.Code {
		case 0:
			out[i] = true
		case ledger.Code(ledger.ErrNotFound):
		default:
			return nil, fmt.Errorf("receipt query %s: %w", ids[i], &QueryError{Code: r.Response.Code, Log: r.Response.Log})
		}
	}
	return out, nil
}
