package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	coretypes "github.com/cometbft/cometbft/rpc/core/types"
	rpctypes "github.com/cometbft/cometbft/rpc/jsonrpc/types"

	"github.com/verdictnet/verdict/internal/ledger"
)

// fuzzNode answers every JSON-RPC call (single or batched) with what the
// current fuzz input says: mode 0 the whole HTTP body, mode 1 the call's
// result, mode 2 an abci_query answer with that value, code and log.
type fuzzNode struct {
	mu   sync.Mutex
	mode byte
	code uint32
	data []byte
}

func (n *fuzzNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	mode, code, data := n.mode%3, n.code, n.data
	n.mu.Unlock()
	if mode == 0 {
		w.Write(data)
		return
	}
	var body json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	answer := func(req rpctypes.RPCRequest) any {
		if mode == 1 {
			return map[string]any{"jsonrpc": "2.0", "id": req.ID, "result": json.RawMessage(data)}
		}
		return rpctypes.NewRPCSuccessResponse(req.ID, &coretypes.ResultABCIQuery{Response: abci.ResponseQuery{Code: code, Log: string(data), Value: data, Height: 1}})
	}
	if b := bytes.TrimSpace(body); len(b) > 0 && b[0] == '[' {
		var reqs []rpctypes.RPCRequest
		json.Unmarshal(body, &reqs)
		out := make([]any, len(reqs))
		for i, req := range reqs {
			out[i] = answer(req)
		}
		if mode == 1 && !json.Valid(data) {
			w.Write(data)
			return
		}
		json.NewEncoder(w).Encode(out)
		return
	}
	var req rpctypes.RPCRequest
	json.Unmarshal(body, &req)
	if mode == 1 && !json.Valid(data) {
		w.Write(data) // not JSON: sent as it is
		return
	}
	json.NewEncoder(w).Encode(answer(req))
}

// FuzzNodeAnswers: no answer of a node makes the client panic or hang;
// what it returns is a value or an error.
func FuzzNodeAnswers(f *testing.F) {
	chain, _ := json.Marshal(ledger.ChainInfo{ChainID: "c", Height: 3})
	agent, _ := json.Marshal(ledger.Agent{AgentID: 1, AgentURI: "https://x"})
	for op := byte(0); op < 9; op++ {
		f.Add(op, byte(2), uint32(0), chain)
		f.Add(op, byte(2), uint32(0), agent)
		f.Add(op, byte(1), uint32(0), []byte(`{"response":{"code":0,"value":"e30=","height":"1"}}`))
		f.Add(op, byte(1), uint32(0), []byte(`{"node_info":{"network":"c"},"sync_info":{"latest_block_height":"9"}}`))
		f.Add(op, byte(1), uint32(0), []byte(`{"block_height":"1","validators":[{"address":"00","pub_key":{"type":"tendermint/PubKeyEd25519","value":"AAAA"},"voting_power":"1"}],"count":"1","total":"1"}`))
		f.Add(op, byte(0), uint32(0), []byte(`[{"jsonrpc":"2.0","id":-1,"result":{}}]`))
		f.Add(op, byte(2), uint32(ledger.Code(ledger.ErrNotFound)), []byte("not\nfound"))
	}
	node := &fuzzNode{}
	ts := httptest.NewServer(node)
	f.Cleanup(ts.Close)
	c, err := New(ts.URL)
	if err != nil {
		f.Fatal(err)
	}
	ids := []ledger.Hash{{1}, {2}}
	f.Fuzz(func(t *testing.T, op, mode byte, code uint32, data []byte) {
		node.mu.Lock()
		node.mode, node.code, node.data = mode, code, data
		node.mu.Unlock()
		c.mu.Lock()
		c.chain = ""
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		switch op % 9 {
		case 0:
			_, err = c.ChainID(ctx)
		case 1:
			_, err = c.Height(ctx)
		case 2:
			_, err = c.Chain(ctx)
		case 3:
			_, err = c.Params(ctx)
		case 4:
			_, _, err = c.Agent(ctx, 1)
		case 5:
			_, err = c.Account(ctx, ledger.Address{1})
		case 6:
			_, err = c.HasReceipts(ctx, ids)
		case 7:
			_, err = c.HasReceipts(ctx, ids[:1])
		case 8:
			_, err = c.Validators(ctx)
		}
		if ctx.Err() != nil {
			t.Fatalf("op %d: no answer within 10 s (%v)", op%9, err)
		}
		if err != nil && strings.TrimSpace(err.Error()) == "" {
			t.Fatalf("op %d: empty error", op%9)
		}
	})
}

// TestQueryErrorMessage: a failed query without a log still says what
// failed (FuzzNodeAnswers found an empty error).
func TestQueryErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		e    QueryError
		want string
	}{
		{QueryError{Code: 4, Log: "query \"x\": invalid: unknown path"}, "query \"x\": invalid: unknown path"},
		{QueryError{Code: 99}, "the ledger refused the query (code 99) without a message"},
		{QueryError{Code: 66, Log: " \n"}, "the ledger refused the query (code 66) without a message"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.e, got, tc.want)
		}
	}
}

// TestValidatorsWithoutKey: a node's validator entry without a key (or
// with one that is not ed25519) is an error, not a nil dereference
// (FuzzNodeAnswers found it); a good entry reads as its account.
func TestValidatorsWithoutKey(t *testing.T) {
	node := &fuzzNode{mode: 1}
	ts := httptest.NewServer(node)
	defer ts.Close()
	c, err := New(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, result, want string }{
		{"no key", `{"block_height":"1","validators":[{}],"count":"1","total":"1"}`, "entry 0 has no ed25519 key"},
		{"short key", `{"block_height":"1","validators":[{"address":"00","pub_key":{"type":"tendermint/PubKeyEd25519","value":"AAAA"},"voting_power":"1"}],"count":"1","total":"1"}`, "entry 0 has no ed25519 key"},
		{"good", `{"block_height":"1","validators":[{"address":"00","pub_key":{"type":"tendermint/PubKeyEd25519","value":"` + strings.Repeat("A", 43) + `="},"voting_power":"7"}],"count":"1","total":"1"}`, ""},
	} {
		node.mu.Lock()
		node.data = []byte(tc.result)
		node.mu.Unlock()
		vs, err := c.Validators(context.Background())
		switch {
		case tc.want == "" && (err != nil || len(vs) != 1 || vs[0].Power != 7 || vs[0].PubKey != (ledger.Address{})):
			t.Errorf("%s: %+v, %v", tc.name, vs, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %+v, %v; want an error about %q", tc.name, vs, err, tc.want)
		}
	}
}
