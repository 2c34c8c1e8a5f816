package gateway

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/worker"
)

// LedgerAccounts ties API keys to ledger accounts whose keys the gateway
// holds (a custodial gateway: it signs the callers' escrows). The account
// name a request runs under is the account's address in hex.
type LedgerAccounts struct {
	c      *client.Client
	byKey  map[string]ledger.Address
	sender map[ledger.Address]*worker.Sender
}

// NewLedgerAccounts maps each API key to the account of its key.
func NewLedgerAccounts(c *client.Client, apiKeys map[string]*keys.Key) (*LedgerAccounts, error) {
	a := &LedgerAccounts{c: c, byKey: map[string]ledger.Address{}, sender: map[ledger.Address]*worker.Sender{}}
	for k, key := range apiKeys {
		if k == "" || key == nil {
			return nil, errors.New("ledger accounts: empty API key or account key")
		}
		s, err := worker.NewSender(c, key.Private, 1)
		if err != nil {
			return nil, err
		}
		a.byKey[k] = s.Address()
		if _, ok := a.sender[s.Address()]; !ok {
			a.sender[s.Address()] = s
		}
	}
	return a, nil
}

// Authenticate implements Authenticator.
func (a *LedgerAccounts) Authenticate(r *http.Request) (string, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return "", errors.New("missing API key: send it as Authorization: Bearer <key>")
	}
	for k, addr := range a.byKey {
		if subtle.ConstantTimeCompare([]byte(k), []byte(tok)) == 1 {
			return addr.String(), nil
		}
	}
	return "", errors.New("incorrect API key provided")
}

// LedgerMeter charges callers per token from escrow on the ledger. Check
// refuses an account whose balance cannot pay the smallest request;
// Charge puts the receipt in the worker's outbox with the fee, and the
// worker opens the escrow (through Escrow) and publishes the receipt
// against it. A receipt is charged once, whatever retries happen.
type LedgerMeter struct {
	Accounts *LedgerAccounts
	// PricePerToken is charged for every prompt and completion token
	// (default 1); the chain's minimum transaction fee is added once.
	PricePerToken uint64
	// Submit hands a charged receipt to the worker (worker.Chain.Submit).
	Submit func(worker.Pending) error

	mu      sync.Mutex
	charged map[string]bool
	order   []string
}

// maxCharged bounds the receipt ids a meter remembers; older ones are
// protected by the worker's outbox and the ledger, which take a receipt
// id once.
const maxCharged = 100000

// Fee is what a generation costs.
func (m *LedgerMeter) Fee(res *worker.Result) uint64 {
	p := m.PricePerToken
	if p == 0 {
		p = 1
	}
	return p * uint64(res.PromptTokens+res.CompletionTokens)
}

// Check implements Meter.
func (m *LedgerMeter) Check(ctx context.Context, account, model string) error {
	a, err := ledger.ParseAddress(account)
	if err != nil {
		return fmt.Errorf("%w: account %q is not a ledger account", ErrInsufficientQuota, account)
	}
	acct, err := m.Accounts.c.Account(ctx, a)
	if err != nil {
		return err
	}
	// One token and the escrow transaction's fee at least.
	if need := max(m.PricePerToken, 1) + 1; acct.Balance < need {
		return fmt.Errorf("%w: account %s has %d, a request needs at least %d", ErrInsufficientQuota, a, acct.Balance, need)
	}
	return nil
}

// Charge implements Meter.
func (m *LedgerMeter) Charge(ctx context.Context, account string, res *worker.Result) error {
	m.mu.Lock()
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
	m.mu.Unlock()
	err := m.Submit(worker.Pending{ReceiptID: res.ReceiptID, Receipt: res.Receipt, Requester: account, Fee: m.Fee(res)})
	if err != nil {
		m.mu.Lock()
		delete(m.charged, res.ReceiptID)
		m.mu.Unlock()
	}
	return err
}

// Escrow implements worker.Escrower: it opens the escrow for a pending
// receipt with its requester's key.
func (m *LedgerMeter) Escrow(ctx context.Context, p *worker.Pending, w ledger.Address, model ledger.Hash, agentID uint64) (ledger.Hash, error) {
	a, err := ledger.ParseAddress(p.Requester)
	if err != nil {
		return ledger.Hash{}, fmt.Errorf("%w: requester %q is not a ledger account", client.ErrRejected, p.Requester)
	}
	s := m.Accounts.sender[a]
	if s == nil {
		return ledger.Hash{}, fmt.Errorf("%w: no key for requester %s", client.ErrRejected, a)
	}
	req, err := ledger.ReceiptRequest(p.Receipt)
	if err != nil {
		return ledger.Hash{}, fmt.Errorf("%w: %v", client.ErrRejected, err)
	}
	nonce, err := s.Send(ctx, ledger.Msg{OpenEscrow: &ledger.MsgOpenEscrow{Worker: w, ModelID: model, Fee: p.Fee, Request: req, AgentID: agentID}})
	if errors.Is(err, worker.ErrMaybeSent) {
		return ledger.EscrowID(a, nonce), err // the worker looks for it before retrying
	}
	if err != nil {
		return ledger.Hash{}, err
	}
	return ledger.EscrowID(a, nonce), nil
}

// LedgerStatus returns a StatusFunc reading a receipt's status from the
// ledger: "pending" while it waits in the worker's outbox (pending may be
// nil), then the ledger's status as ReceiptRecord.Shown maps it
// (published, audited once its audit passed, challenged, final, slashed).
func LedgerStatus(c *client.Client, pending func(id string) bool) StatusFunc {
	return func(ctx context.Context, id string) (string, error) {
		var r ledger.ReceiptRecord
		found, err := worker.QueryJSON(ctx, c, "receipt/"+id, &r)
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
