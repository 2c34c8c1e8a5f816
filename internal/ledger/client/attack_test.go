package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cometbft/cometbft/p2p"
	coretypes "github.com/cometbft/cometbft/rpc/core/types"
	rpctypes "github.com/cometbft/cometbft/rpc/jsonrpc/types"

	"github.com/verdictnet/verdict/internal/ledger"
)

// hostileNode is a node's JSON-RPC as a compromised node answers it: its
// chain id is chain, and its fee estimates ask fee whatever the
// transaction. It records every transaction broadcast to it.
type hostileNode struct {
	t     *testing.T
	chain string
	fee   uint64

	mu   sync.Mutex
	sent []*ledger.Tx
}

func (n *hostileNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if b := bytes.TrimSpace(body); len(b) > 0 && b[0] == '[' {
		var reqs []rpctypes.RPCRequest
		if err := json.Unmarshal(body, &reqs); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		out := make([]rpctypes.RPCResponse, len(reqs))
		for i, req := range reqs {
			out[i] = n.answer(req)
		}
		_ = json.NewEncoder(w).Encode(out)
		return
	}
	var req rpctypes.RPCRequest
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	_ = json.NewEncoder(w).Encode(n.answer(req))
}

func (n *hostileNode) answer(req rpctypes.RPCRequest) rpctypes.RPCResponse {
	var p struct {
		Path string `json:"path"`
		Tx   []byte `json:"tx"`
	}
	_ = json.Unmarshal(req.Params, &p)
	switch req.Method {
	case "status":
		return rpctypes.NewRPCSuccessResponse(req.ID, &coretypes.ResultStatus{NodeInfo: p2p.DefaultNodeInfo{Network: n.chain}})
	case "abci_query":
		var v []byte
		switch {
		case p.Path == "fee":
			v, _ = json.Marshal(ledger.FeeEstimate{RequiredFee: n.fee})
		case p.Path == "chain":
			v, _ = json.Marshal(ledger.ChainInfo{ChainID: n.chain, Height: 1})
		case len(p.Path) > 8 && p.Path[:8] == "account/":
			v, _ = json.Marshal(ledger.Account{Balance: 1_000_000, Nonce: 7})
		default:
			return rpctypes.NewRPCSuccessResponse(req.ID, &coretypes.ResultABCIQuery{Response: abci.ResponseQuery{Code: ledger.Code(ledger.ErrNotFound), Log: "not found", Height: 1}})
		}
		return rpctypes.NewRPCSuccessResponse(req.ID, &coretypes.ResultABCIQuery{Response: abci.ResponseQuery{Value: v, Height: 1}})
	case "broadcast_tx_sync", "broadcast_tx_commit":
		tx, err := ledger.DecodeTx(p.Tx)
		if err != nil {
			n.t.Errorf("broadcast of an undecodable transaction: %v", err)
		}
		n.mu.Lock()
		n.sent = append(n.sent, tx)
		n.mu.Unlock()
		if req.Method == "broadcast_tx_commit" {
			return rpctypes.NewRPCSuccessResponse(req.ID, &coretypes.ResultBroadcastTxCommit{Hash: []byte{1}, Height: 2})
		}
		return rpctypes.NewRPCSuccessResponse(req.ID, &coretypes.ResultBroadcastTx{Hash: []byte{1}})
	}
	n.t.Errorf("unexpected RPC call %s", req.Method)
	return rpctypes.RPCInternalError(req.ID, errors.New("unexpected"))
}

func (n *hostileNode) broadcast() []*ledger.Tx {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*ledger.Tx(nil), n.sent...)
}

func testKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestAttackNodeInflatesFee: the node a worker, verifier or gateway talks
// to answers every fee estimate with the account's whole balance. The
// client re-signed with whatever the estimate asked, so every path that
// sends a transaction (Sign, Sender.Send, Commit, SendBatch) paid it.
// Now a fee above the client's MaxFee is refused with a
// *FeeTooHighError and nothing is signed with it or broadcast; an
// estimate within MaxFee is still paid.
func TestAttackNodeInflatesFee(t *testing.T) {
	ctx := context.Background()
	msg := func() ledger.Msg { return &ledger.MsgSend{To: ledger.Address{1}, Amount: 5} }
	for _, tc := range []struct {
		name   string
		maxFee uint64 // 0: DefaultMaxFee
		fee    uint64 // the node's estimate
		ok     bool
	}{
		{"whole balance", 0, 1_000_000, false},
		{"one above the default", 0, DefaultMaxFee + 1, false},
		{"at the default", 0, DefaultMaxFee, true},
		{"above a set maximum", 50, 51, false},
		{"within a set maximum", 50, 50, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			paths := map[string]func(c *Client, s *Sender) error{
				"Sign": func(c *Client, s *Sender) error {
					tx, err := c.Sign(ctx, testKey(t), msg(), 1, 0)
					if err == nil && tx.Fee != tc.fee {
						t.Errorf("Sign: fee %d, want the estimate %d", tx.Fee, tc.fee)
					}
					if err != nil && tx != nil {
						t.Errorf("Sign refused (%v) yet returned a transaction", err)
					}
					return err
				},
				"Send": func(c *Client, s *Sender) error { _, err := s.Send(ctx, msg()); return err },
				"Commit": func(c *Client, s *Sender) error {
					_, err := s.Commit(ctx, msg())
					return err
				},
				"SendBatch": func(c *Client, s *Sender) error {
					txs, errs := s.SendBatch(ctx, []ledger.Msg{msg(), msg(), msg()}, func(txs []*ledger.Tx) error {
						for _, tx := range txs {
							if tx.Fee > c.MaxFee() {
								t.Errorf("recorded a transaction with fee %d", tx.Fee)
							}
						}
						return nil
					})
					if len(errs) != 3 {
						t.Fatalf("%d errors for 3 messages", len(errs))
					}
					for i, err := range errs[1:] {
						if (err == nil) != (errs[0] == nil) || !errors.Is(err, ErrFeeTooHigh) && errs[0] != nil {
							t.Errorf("message %d: %v after %v", i+1, err, errs[0])
						}
					}
					if errs[0] != nil && txs != nil {
						t.Errorf("SendBatch refused (%v) yet returned %d transactions", errs[0], len(txs))
					}
					return errs[0]
				},
			}
			for name, send := range paths {
				node := &hostileNode{t: t, chain: "verdict-dev", fee: tc.fee}
				srv := httptest.NewServer(node)
				c, err := NewWithOptions(srv.URL, Options{MaxFee: tc.maxFee})
				if err != nil {
					t.Fatal(err)
				}
				s, err := NewSender(c, testKey(t), 1)
				if err != nil {
					t.Fatal(err)
				}
				err = send(c, s)
				srv.Close()
				sent := node.broadcast()
				if tc.ok {
					if err != nil {
						t.Errorf("%s: %v", name, err)
					}
					if name != "Sign" && len(sent) == 0 {
						t.Errorf("%s: nothing broadcast", name)
					}
					for _, tx := range sent {
						if tx.Fee != tc.fee {
							t.Errorf("%s: broadcast with fee %d, want %d", name, tx.Fee, tc.fee)
						}
					}
					continue
				}
				var fe *FeeTooHighError
				if !errors.Is(err, ErrFeeTooHigh) || !errors.As(err, &fe) || fe.Fee != tc.fee || fe.Max != c.MaxFee() || !fe.Estimated || fe.Kind != "send" {
					t.Errorf("%s: err %v (%+v), want a FeeTooHighError for the estimate %d above %d", name, err, fe, tc.fee, c.MaxFee())
				}
				if len(sent) != 0 {
					t.Errorf("%s: %d transactions broadcast, the first with fee %d", name, len(sent), sent[0].Fee)
				}
			}
		})
	}
}

// TestFeeAboveMaxGiven: a fee the caller gives above MaxFee is refused
// as the node's would be (`verdict tx --fee` above --max-tx-fee).
func TestFeeAboveMaxGiven(t *testing.T) {
	node := &hostileNode{t: t, chain: "verdict-dev", fee: 1}
	srv := httptest.NewServer(node)
	defer srv.Close()
	c, err := NewWithOptions(srv.URL, Options{MaxFee: 10})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Sign(context.Background(), testKey(t), &ledger.MsgSend{To: ledger.Address{1}, Amount: 5}, 11, 0)
	var fe *FeeTooHighError
	if !errors.As(err, &fe) || fe.Estimated || fe.Fee != 11 || fe.Max != 10 {
		t.Fatalf("err %v, want a FeeTooHighError for the given fee 11", err)
	}
}

// TestDefaultMaxFee: the default ceiling covers the largest transaction
// the ledger takes with as much state growth again, three times over,
// under the default parameters.
func TestDefaultMaxFee(t *testing.T) {
	need := ledger.DefaultParams().RequiredFee(ledger.MaxTxBytes+ledger.FeeMargin, ledger.MaxTxBytes)
	if DefaultMaxFee < 3*need {
		t.Fatalf("DefaultMaxFee %d is below three times %d", DefaultMaxFee, need)
	}
}

// TestAttackNodeWrongChain: a node on another chain (a testnet's node
// given to a mainnet worker by mistake, or one that lies) named the chain
// id every transaction was signed for. A client pinned to its chain id
// (Options.ChainID, the CLI's --chain-id) now refuses the node with a
// *WrongChainError and signs and sends nothing; one pinned to the node's
// chain works as before.
func TestAttackNodeWrongChain(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, pin, node string
		ok              bool
	}{
		{"other chain", "verdict-main", "verdict-evil", false},
		{"pinned, same chain", "verdict-main", "verdict-main", true},
		{"not pinned", "", "verdict-evil", true},
		{"empty chain id", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node := &hostileNode{t: t, chain: tc.node, fee: 1}
			srv := httptest.NewServer(node)
			defer srv.Close()
			c, err := NewWithOptions(srv.URL, Options{ChainID: tc.pin})
			if err != nil {
				t.Fatal(err)
			}
			s, err := NewSender(c, testKey(t), 1)
			if err != nil {
				t.Fatal(err)
			}
			_, sendErr := s.Send(ctx, &ledger.MsgSend{To: ledger.Address{1}, Amount: 5})
			_, batchErrs := s.SendBatch(ctx, []ledger.Msg{&ledger.MsgSend{To: ledger.Address{1}, Amount: 5}}, nil)
			chain, chainErr := c.ChainID(ctx)
			info, infoErr := c.Chain(ctx) // the state's chain id (multigw checks quotes against it)
			sent := node.broadcast()
			if tc.ok {
				if sendErr != nil || batchErrs[0] != nil || chainErr != nil || chain != tc.node || infoErr != nil || info.ChainID != tc.node {
					t.Fatalf("Send %v, SendBatch %v, ChainID %q %v, Chain %+v %v", sendErr, batchErrs[0], chain, chainErr, info, infoErr)
				}
				for _, tx := range sent {
					if tx.ChainID != tc.node {
						t.Errorf("signed for %q", tx.ChainID)
					}
				}
				return
			}
			errs := []error{sendErr, batchErrs[0], chainErr}
			if tc.pin != "" {
				errs = append(errs, infoErr)
			}
			for _, err := range errs {
				var we *WrongChainError
				if tc.pin != "" && (!errors.Is(err, ErrWrongChain) || !errors.As(err, &we) || we.Got != tc.node || we.Want != tc.pin) {
					t.Errorf("err %v, want a WrongChainError", err)
				}
				if err == nil {
					t.Errorf("no error for chain %q", tc.node)
				}
			}
			if chain != "" || len(sent) != 0 {
				t.Errorf("ChainID %q; %d transactions broadcast", chain, len(sent))
			}
		})
	}
}
