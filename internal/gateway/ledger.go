package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/verdictnet/verdict/internal/inference"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
)

// LedgerAccounts ties API keys to ledger accounts whose keys the gateway
// holds (a custodial gateway: it signs the callers' escrows). The account
// name a request runs under is the account's address in hex.
type LedgerAccounts struct {
	c      *client.Client
	keys   keyTable
	sender map[ledger.Address]*client.Sender
}

// NewLedgerAccounts maps each API key to the account of its key.
func NewLedgerAccounts(c *client.Client, apiKeys map[string]*keys.Key) (*LedgerAccounts, error) {
	a := &LedgerAccounts{c: c, sender: map[ledger.Address]*client.Sender{}}
	for k, key := range apiKeys {
		if k == "" || key == nil {
			return nil, errors.New("ledger accounts: empty API key or account key")
		}
		s, err := client.NewSender(c, key.Private, 1)
		if err != nil {
			return nil, err
		}
		a.keys.add(k, s.Address().String())
		if _, ok := a.sender[s.Address()]; !ok {
			a.sender[s.Address()] = s
		}
	}
	return a, nil
}

// Authenticate implements Authenticator; keys are compared in constant
// time.
func (a *LedgerAccounts) Authenticate(r *http.Request) (string, error) {
	tok, err := bearer(r)
	if err != nil {
		return "", err
	}
	acct, ok := a.keys.lookup(tok)
	if !ok {
		return "", errors.New("incorrect API key provided")
	}
	return acct, nil
}

// Balances reads ledger accounts (a *client.Client does).
type Balances interface {
	Account(ctx context.Context, a ledger.Address) (ledger.Account, error)
}

// ErrBacklog is a refusal because the worker publishes receipts slower
// than it is asked for them (its outbox passed its bound); the HTTP API
// answers 429 rate_limit_exceeded with Retry-After (RetryAfterBacklog).
var ErrBacklog = errors.New("publishing backlog")

// LedgerMeter charges callers per token from escrow on the ledger.
//
// Reserve holds, in this process, the most a request can cost (its prompt
// and its most completion tokens at PricePerToken, and the escrow
// transaction's fee) and refuses a request that the account's balance,
// less what its running requests hold and less the fees of its receipts
// still in the worker's outbox (their escrows are not on the ledger yet),
// cannot pay: concurrent requests cannot overdraw an account. Charge puts
// the receipt in the worker's outbox with the fee of the tokens delivered
// and releases the rest; the worker opens the escrow (through Escrow) and
// publishes the receipt against it. A receipt is charged once, whatever
// retries happen.
type LedgerMeter struct {
	Accounts *LedgerAccounts
	// Ledger reads balances; nil: the accounts' ledger client.
	Ledger Balances
	// PricePerToken is charged for every prompt and completion token
	// (default 1); the chain's minimum transaction fee is added once.
	PricePerToken uint64
	// Submit hands a charged receipt to the worker's ledger side
	// (worker.Chain.SubmitCharge).
	Submit func(inference.Charge) error
	// Pending reports whether a charged receipt is still in the worker's
	// outbox (worker.Chain.IsPending); until it is not, its fee counts
	// against its account. nil: charged fees are assumed on the ledger at
	// once, which lets an account overdraw while its escrows wait.
	Pending func(id string) bool
	// Backlogged reports that the worker's outbox is past its bound
	// (worker.Chain.Backlogged): new requests are refused (429 with
	// Retry-After, ErrBacklog) rather than served and left unpublished.
	// nil: never.
	Backlogged func() bool
	// PayReplay charges a replay (MCP verify_receipt): account pays fee
	// to the worker on the ledger, committed before it returns
	// (LedgerAccounts.Payer). nil: replays are refused.
	PayReplay func(ctx context.Context, account ledger.Address, fee uint64) error

	mu      sync.Mutex
	charged map[string]bool
	order   []string
	held    map[ledger.Address]uint64            // by running requests
	owed    map[ledger.Address]map[string]uint64 // charged, escrow maybe not on the ledger
}

// maxCharged bounds the receipt ids a meter remembers; older ones are
// protected by the worker's outbox and the ledger, which take a receipt
// id once.
const maxCharged = 100000

// escrowTxFee is the fee of the escrow transaction a charge costs.
const escrowTxFee = 1

func (m *LedgerMeter) price() uint64 { return max(m.PricePerToken, 1) }

// Fee is what a generation costs.
func (m *LedgerMeter) Fee(res *inference.Result) uint64 {
	return m.price() * uint64(res.PromptTokens+res.CompletionTokens)
}

// Reserve implements Meter.
func (m *LedgerMeter) Reserve(ctx context.Context, account, model string, promptTokens, maxCompletion int) (Reservation, error) {
	a, err := ledger.ParseAddress(account)
	if err != nil {
		return nil, fmt.Errorf("%w: account %q is not a ledger account", ErrInsufficientQuota, account)
	}
	if m.Backlogged != nil && m.Backlogged() {
		return nil, fmt.Errorf("%w: the worker's receipts wait to be published on the ledger", ErrBacklog)
	}
	need := m.price()*uint64(promptTokens+maxCompletion) + escrowTxFee
	// Drop the owed fees of receipts that left the outbox before reading
	// the balance, so that each fee is counted in the balance, as owed, or
	// both, never neither.
	m.mu.Lock()
	if m.Pending != nil {
		for id := range m.owed[a] {
			if !m.Pending(id) {
				delete(m.owed[a], id)
			}
		}
	}
	m.mu.Unlock()
	bal := m.Ledger
	if bal == nil {
		bal = m.Accounts.c
	}
	acct, err := bal.Account(ctx, a)
	if err != nil {
		return nil, fmt.Errorf("reading account %s: %w", a, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var owed uint64
	for _, f := range m.owed[a] {
		owed += f
	}
	busy := m.held[a] + owed
	if acct.Balance < busy || acct.Balance-busy < need {
		return nil, fmt.Errorf("%w: account %s has %d, of which %d is held by its running requests and unpublished receipts; this request may cost up to %d (%d prompt tokens and up to %d completion tokens at %d, and the escrow's fee): lower max_tokens or add funds",
			ErrInsufficientQuota, a, acct.Balance, busy, need, promptTokens, maxCompletion, m.price())
	}
	if m.held == nil {
		m.held = map[ledger.Address]uint64{}
	}
	m.held[a] += need
	return &ledgerReservation{m: m, account: a, held: need}, nil
}

// ReserveReplay implements ReplayMeter: a replay of a receipt of tokens
// tokens holds, as a generation of that size does, price x tokens and the
// transaction fee of its payment; Pay sends that fee from the account to
// the worker (PayReplay) and releases the hold.
func (m *LedgerMeter) ReserveReplay(ctx context.Context, account string, tokens int) (ReplayReservation, error) {
	if m.PayReplay == nil {
		return nil, ErrReplayNotBilled
	}
	r, err := m.Reserve(ctx, account, "", tokens, 0)
	if err != nil {
		return nil, err
	}
	lr := r.(*ledgerReservation)
	return &replayReservation{r: lr, fee: m.price() * uint64(tokens)}, nil
}

type replayReservation struct {
	r   *ledgerReservation
	fee uint64
}

func (r *replayReservation) Release() { r.r.Release() }

func (r *replayReservation) Pay(ctx context.Context) error {
	defer r.r.Release() // once paid, the balance shows it
	return r.r.m.PayReplay(ctx, r.r.account, r.fee)
}

// Payer returns a LedgerMeter.PayReplay that sends the fee from the
// account (with the key the gateway holds for it) to the worker and waits
// for its block.
func (a *LedgerAccounts) Payer(worker ledger.Address) func(ctx context.Context, account ledger.Address, fee uint64) error {
	return func(ctx context.Context, account ledger.Address, fee uint64) error {
		s := a.sender[account]
		if s == nil {
			return fmt.Errorf("no key for account %s", account)
		}
		if _, err := s.Commit(ctx, &ledger.MsgSend{To: worker, Amount: fee}); err != nil {
			return fmt.Errorf("paying %d to %s: %w", fee, worker, err)
		}
		return nil
	}
}

// Held returns what an account's running requests hold and what its
// charged, unpublished receipts owe.
func (m *LedgerMeter) Held(account ledger.Address) (held, owed uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range m.owed[account] {
		owed += f
	}
	return m.held[account], owed
}

type ledgerReservation struct {
	m       *LedgerMeter
	account ledger.Address
	held    uint64
	done    bool
}

// release returns the held amount; m.mu is held.
func (r *ledgerReservation) release() bool {
	if r.done {
		return false
	}
	r.done = true
	r.m.held[r.account] -= r.held
	if r.m.held[r.account] == 0 {
		delete(r.m.held, r.account)
	}
	return true
}

// Release implements Reservation.
func (r *ledgerReservation) Release() {
	r.m.mu.Lock()
	r.release()
	r.m.mu.Unlock()
}

// Charge implements Reservation.
func (r *ledgerReservation) Charge(ctx context.Context, res *inference.Result) error {
	m := r.m
	fee := m.Fee(res)
	m.mu.Lock()
	if !r.release() {
		m.mu.Unlock()
		return errors.New("reservation already charged or released")
	}
	if m.charged == nil {
		m.charged = map[string]bool{}
	}
	if m.charged[res.ReceiptID] {
		m.mu.Unlock()
		return nil
	}
	m.charged[res.ReceiptID] = true
	m.order = append(m.order, res.ReceiptID)
	if len(m.order) > maxCharged {
		delete(m.charged, m.order[0])
		m.order = m.order[1:]
	}
	if m.Pending != nil {
		if m.owed == nil {
			m.owed = map[ledger.Address]map[string]uint64{}
		}
		if m.owed[r.account] == nil {
			m.owed[r.account] = map[string]uint64{}
		}
		m.owed[r.account][res.ReceiptID] = fee + escrowTxFee
	}
	m.mu.Unlock()
	err := m.Submit(inference.Charge{ReceiptID: res.ReceiptID, Receipt: res.Receipt, Requester: r.account.String(), Fee: fee})
	if err != nil {
		m.mu.Lock()
		delete(m.charged, res.ReceiptID)
		delete(m.owed[r.account], res.ReceiptID)
		m.mu.Unlock()
	}
	return err
}

// Escrow opens the escrow for a charged receipt with its requester's key
// (worker.EscrowCharges makes it the worker's Escrower; the worker
// records the signed transaction before it sends it).
func (m *LedgerMeter) Escrow(p *inference.Charge, w ledger.Address, model ledger.Hash, agentID uint64) (ledger.Msg, *client.Sender, error) {
	a, err := ledger.ParseAddress(p.Requester)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: requester %q is not a ledger account", client.ErrRejected, p.Requester)
	}
	s := m.Accounts.sender[a]
	if s == nil {
		return nil, nil, fmt.Errorf("%w: no key for requester %s", client.ErrRejected, a)
	}
	req, err := ledger.ReceiptRequest(p.Receipt)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", client.ErrRejected, err)
	}
	rid, err := ledger.ParseHash(p.ReceiptID)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: receipt id: %w", client.ErrRejected, err)
	}
	// The requester's audit commitment (its secret derived from its key,
	// revealed by the worker's Chain through this sender after
	// publication): an escrow without one is always audited.
	return &ledger.MsgOpenEscrow{Worker: w, ModelID: model, Fee: p.Fee, Request: req, AuditCommit: s.AuditCommit(rid), AgentID: agentID}, s, nil
}

// LedgerStatus returns a StatusFunc reading a receipt's status from the
// ledger: "pending" while it waits in the worker's outbox (pending may be
// nil), then the ledger's status as ReceiptRecord.Shown maps it
// (published, audited once its audit passed, challenged, final, slashed).
func LedgerStatus(c *client.Client, pending func(id string) bool) StatusFunc {
	return func(ctx context.Context, id string) (string, error) {
		rid, err := ledger.ParseHash(id)
		if err != nil {
			return "unpublished", nil
		}
		r, found, err := c.Receipt(ctx, rid)
		if err != nil {
			return "", err
		}
		if !found {
			if pending != nil && pending(id) {
				return "pending", nil
			}
			return "unpublished", nil
		}
		return r.Shown(), nil
	}
}
