package client

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verdictnet/verdict/internal/ledger"
)

// ErrMaybeSent is returned (wrapped) by Send when the node could not be
// asked or did not answer: the transaction, whose nonce Send returns, may
// or may not be in the mempool.
var ErrMaybeSent = errors.New("transaction outcome unknown")

// Sender signs and broadcasts one account's ledger transactions in nonce
// order. Send returns once the node's mempool accepted the transaction
// (CheckTx runs against the mempool's state, so a transaction may depend
// on one sent just before); callers learn the outcome from the ledger's
// state, which makes every step idempotent.
type Sender struct {
	c    *Client
	key  ed25519.PrivateKey
	addr ledger.Address
	fee  uint64

	mu     sync.Mutex
	next   uint64
	synced bool
	// urgent counts the single transactions (Send, Commit) waiting for
	// mu: a batch lets them go first, so that an audit's openings or a
	// dispute move wait for one batch at most, not for a queue of them.
	urgent atomic.Int32
}

// lockUrgent takes mu ahead of waiting batches.
func (s *Sender) lockUrgent() {
	s.urgent.Add(1)
	s.mu.Lock()
	s.urgent.Add(-1)
}

// NewSender returns a sender for key paying fee per transaction.
func NewSender(c *Client, key ed25519.PrivateKey, fee uint64) (*Sender, error) {
	a, err := ledger.AddressOf(key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	if fee == 0 {
		fee = 1
	}
	return &Sender{c: c, key: key, addr: a, fee: fee}, nil
}

// Address is the account the sender signs for.
func (s *Sender) Address() ledger.Address { return s.addr }

// AuditSecret is the audit secret the account commits to in an escrow for
// the receipt with id (MsgOpenEscrow.AuditCommit is its SHA-256) and
// reveals after the receipt is published (MsgRevealAudit): SHA-256 of
// "verdict/audit-secret/v1" and the account's ed25519 signature of that
// tag followed by the receipt id. Deterministic, so it is derived again
// from the key when revealed; unknown to anyone without the key, the
// worker included when it is not the requester.
func (s *Sender) AuditSecret(receiptID ledger.Hash) []byte {
	const tag = "verdict/audit-secret/v1"
	sig := ed25519.Sign(s.key, append([]byte(tag), receiptID[:]...))
	h := sha256.Sum256(append([]byte(tag), sig...))
	return h[:]
}

// AuditCommit is SHA-256 of AuditSecret(receiptID).
func (s *Sender) AuditCommit(receiptID ledger.Hash) ledger.Hash {
	return ledger.Hash(sha256.Sum256(s.AuditSecret(receiptID)))
}

// Client is the sender's ledger client.
func (s *Sender) Client() *Client { return s.c }

// Send signs m with the account's next nonce and broadcasts it. It returns
// the nonce used. A transaction the mempool rejects for its nonce (another
// process used the account, or a transaction was dropped) is retried after
// the nonce is read again, for up to about ten seconds; other rejections
// are returned (wrapping ErrRejected) and use no nonce. When the
// node does not answer, the error wraps ErrMaybeSent and the nonce is the
// one the transaction carried.
func (s *Sender) Send(ctx context.Context, m ledger.Msg) (uint64, error) {
	return s.SendRecorded(ctx, m, nil)
}

// SendRecorded is Send with a record step: record (when not nil) gets each
// signed transaction before it is broadcast, so that a caller can keep it
// durably and, after a crash, find it committed or send the same bytes
// again instead of signing another transaction for the same purpose. A
// record error stops Send before anything is broadcast. When a rejection
// for the nonce makes Send sign again, record sees the new transaction,
// which replaces the old one (the old one was not taken).
func (s *Sender) SendRecorded(ctx context.Context, m ledger.Msg, record func(*ledger.Tx) error) (uint64, error) {
	s.lockUrgent()
	defer s.mu.Unlock()
	var last error
	for attempt := 0; attempt < 40; attempt++ {
		if !s.synced {
			acct, err := s.c.Account(ctx, s.addr)
			if err != nil {
				return 0, err
			}
			s.next, s.synced = acct.Nonce, true
		}
		tx, err := s.c.Sign(ctx, s.key, m, s.fee, int64(s.next))
		if err != nil {
			s.synced = false
			return 0, err
		}
		if record != nil {
			if err := record(tx); err != nil {
				s.synced = false
				return 0, fmt.Errorf("recording transaction %d: %w", tx.Nonce, err)
			}
		}
		_, err = s.c.BroadcastSync(ctx, tx)
		if err == nil {
			s.next++
			return tx.Nonce, nil
		}
		if !errors.Is(err, ErrRejected) {
			s.synced = false // the node may or may not have it: read the nonce again
			return tx.Nonce, fmt.Errorf("%w: %w", ErrMaybeSent, err)
		}
		if code, _ := RejectionCode(err); code != ledger.Code(ledger.ErrNonce) {
			return 0, err
		}
		last = err
		s.synced = false
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return 0, fmt.Errorf("account %s: %w", s.addr, last)
}

// Commit sends m and waits until it is in a block; a message that failed
// in its block is an error (a *FailedError). A rejection for the
// nonce (a transaction of the account still in the mempool) is retried
// with the nonce read again, as Send does.
func (s *Sender) Commit(ctx context.Context, m ledger.Msg) (Result, error) {
	s.lockUrgent()
	defer s.mu.Unlock()
	for attempt := 0; ; attempt++ {
		acct, err := s.c.Account(ctx, s.addr)
		if err != nil {
			return Result{}, err
		}
		s.next, s.synced = acct.Nonce, true
		tx, err := s.c.Sign(ctx, s.key, m, s.fee, int64(s.next))
		if err != nil {
			return Result{}, err
		}
		res, err := s.c.BroadcastCommit(ctx, tx)
		s.synced = false
		if code, ok := RejectionCode(err); ok && code == ledger.Code(ledger.ErrNonce) && attempt < 40 {
			select {
			case <-time.After(250 * time.Millisecond):
				continue
			case <-ctx.Done():
				return Result{}, ctx.Err()
			}
		}
		if err != nil {
			return res, err
		}
		if res.Code != 0 {
			return res, &FailedError{Height: res.Height, Code: res.Code, Log: res.Log}
		}
		return res, nil
	}
}

// QueryJSON runs a ledger query and decodes its answer into v. found is
// false when the ledger answered "not found".
func QueryJSON(ctx context.Context, c *Client, path string, v any) (found bool, err error) {
	b, err := c.Query(ctx, path, nil)
	if err != nil {
		var qe *QueryError
		if errors.As(err, &qe) && qe.Code == ledger.Code(ledger.ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("query %s: %w", path, err)
	}
	return true, nil
}

// get runs query path and decodes its answer; found is false when the
// ledger answered "not found".
func get[T any](ctx context.Context, c *Client, path string) (T, bool, error) {
	var v T
	found, err := QueryJSON(ctx, c, path, &v)
	return v, found, err
}

// Params returns the chain's parameters.
func (c *Client) Params(ctx context.Context) (ledger.Params, error) {
	p, _, err := get[ledger.Params](ctx, c, "params")
	return p, err
}

// Chain returns the last block the state has applied (its height and time)
// and the chain id the state names. A client pinned to a chain id
// (Options.ChainID) returns a *WrongChainError when the state names
// another: multigw checks workers' quotes and registrations against it.
func (c *Client) Chain(ctx context.Context) (ledger.ChainInfo, error) {
	ch, _, err := get[ledger.ChainInfo](ctx, c, "chain")
	if err != nil {
		return ch, err
	}
	if c.o.ChainID != "" && ch.ChainID != c.o.ChainID {
		return ledger.ChainInfo{}, &WrongChainError{Want: c.o.ChainID, Got: ch.ChainID}
	}
	return ch, nil
}

// Model returns a registered model (found false: not registered).
func (c *Client) Model(ctx context.Context, id ledger.Hash) (ledger.Model, bool, error) {
	return get[ledger.Model](ctx, c, "model/"+id.String())
}

// Agent returns an ERC-8004 agent.
func (c *Client) Agent(ctx context.Context, id uint64) (ledger.Agent, bool, error) {
	return get[ledger.Agent](ctx, c, "agent/"+strconv.FormatUint(id, 10))
}

// Stake returns an account's stake (zero when it never bonded).
func (c *Client) Stake(ctx context.Context, a ledger.Address) (ledger.Stake, error) {
	s, _, err := get[ledger.Stake](ctx, c, "stake/"+a.String())
	return s, err
}

// Receipt returns a published receipt's record.
func (c *Client) Receipt(ctx context.Context, id ledger.Hash) (ledger.ReceiptRecord, bool, error) {
	return get[ledger.ReceiptRecord](ctx, c, "receipt/"+id.String())
}

// ReceiptData returns a published receipt's canonical bytes.
func (c *Client) ReceiptData(ctx context.Context, id ledger.Hash) ([]byte, error) {
	return c.Query(ctx, "receiptData/"+id.String(), nil)
}

// Escrow returns an escrow (found false: never opened, or refunded).
func (c *Client) Escrow(ctx context.Context, id ledger.Hash) (ledger.Escrow, bool, error) {
	return get[ledger.Escrow](ctx, c, "escrow/"+id.String())
}

// Audit returns a receipt's audit.
func (c *Client) Audit(ctx context.Context, receipt ledger.Hash) (ledger.Audit, bool, error) {
	return get[ledger.Audit](ctx, c, "audit/"+receipt.String())
}

// Dispute returns a dispute.
func (c *Client) Dispute(ctx context.Context, id ledger.Hash) (ledger.Dispute, bool, error) {
	return get[ledger.Dispute](ctx, c, "dispute/"+id.String())
}

// SendBatch signs msgs with the account's next nonces, consecutive, hands
// the signed transactions to record (when not nil: an error stops it
// before anything is broadcast) and broadcasts them in one JSON-RPC batch,
// in order: several transactions of the account in one block. It returns
// the transactions (nil when none was signed) and one error per message:
// nil (the mempool took it), a *RejectedError (nothing was taken; after a
// refusal the later transactions of the batch are refused for their
// nonce), an error wrapping ErrMaybeSent (no answer), or any other error
// (not broadcast). A message whose fee (the node's estimate) is above the
// client's MaxFee gets a *FeeTooHighError and is not signed, nor are the
// messages after it (their errors wrap it): the transactions returned are
// those before it. Unlike Send it does not retry a refusal for the nonce:
// the caller tries again later. Single transactions (Send, Commit)
// waiting for the sender go first.
func (s *Sender) SendBatch(ctx context.Context, msgs []ledger.Msg, record func([]*ledger.Tx) error) ([]*ledger.Tx, []error) {
	return s.sendBatch(ctx, msgs, record, false)
}

// SendBatchUrgent is SendBatch for transactions with a deadline as close
// as a single transaction's (an audit secret's reveal window): it takes
// its turn among the single transactions instead of waiting for them all.
func (s *Sender) SendBatchUrgent(ctx context.Context, msgs []ledger.Msg, record func([]*ledger.Tx) error) ([]*ledger.Tx, []error) {
	return s.sendBatch(ctx, msgs, record, true)
}

func (s *Sender) sendBatch(ctx context.Context, msgs []ledger.Msg, record func([]*ledger.Tx) error, urgent bool) ([]*ledger.Tx, []error) {
	// The fees are asked before the sender is taken: a batch holds it
	// only to sign, record and broadcast.
	fees := s.c.EstimateFees(ctx, s.key, msgs, s.fee)
	chain, err := s.c.ChainID(ctx)
	if urgent {
		s.lockUrgent()
	} else {
		for s.urgent.Load() > 0 && ctx.Err() == nil {
			time.Sleep(time.Millisecond) // single transactions first
		}
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	errs := make([]error, len(msgs))
	all := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	if len(msgs) == 0 {
		return nil, errs
	}
	if err != nil {
		return nil, all(err)
	}
	if !s.synced {
		acct, err := s.c.Account(ctx, s.addr)
		if err != nil {
			return nil, all(err)
		}
		s.next, s.synced = acct.Nonce, true
	}
	// A fee above the client's MaxFee (a node inflating its estimates)
	// is not signed, nor is anything after it: the nonces are
	// consecutive.
	txs := make([]*ledger.Tx, 0, len(msgs))
	for i, m := range msgs {
		if err := s.c.checkFee(m, fees[i], fees[i] != s.fee); err != nil {
			errs[i] = err
			for j := i + 1; j < len(msgs); j++ {
				errs[j] = fmt.Errorf("not signed after message %d of the batch: %w", i, err)
			}
			break
		}
		tx := &ledger.Tx{ChainID: chain, Fee: fees[i], Nonce: s.next + uint64(i), Msg: m}
		tx.Sign(s.key)
		txs = append(txs, tx)
	}
	if len(txs) == 0 {
		return nil, errs
	}
	// Errors from here on are the signed transactions' (the first
	// len(txs)); the refused ones keep theirs.
	signed := func(err error) []error {
		for i := range txs {
			errs[i] = err
		}
		return errs
	}
	if record != nil {
		if err := record(txs); err != nil {
			s.synced = false
			return txs, signed(fmt.Errorf("recording transactions %d-%d: %w", txs[0].Nonce, txs[len(txs)-1].Nonce, err))
		}
	}
	res, err := s.c.BroadcastEach(ctx, txs)
	if err != nil {
		s.synced = false
		return txs, signed(fmt.Errorf("%w: %w", ErrMaybeSent, err))
	}
	copy(errs, res)
	for i, err := range res {
		if err == nil {
			s.next = txs[i].Nonce + 1
			continue
		}
		if code, _ := RejectionCode(err); code == ledger.Code(ledger.ErrNonce) {
			s.synced = false
		}
		break
	}
	return txs, errs
}
