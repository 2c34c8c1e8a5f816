package worker

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	coretypes "github.com/cometbft/cometbft/rpc/core/types"
	rpctypes "github.com/cometbft/cometbft/rpc/jsonrpc/types"

	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
)

// queryNode answers abci_query from fixed answers (missing: not found),
// the only RPC call it expects.
type queryNode struct {
	t       *testing.T
	answers map[string][]byte
}

func (n *queryNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req rpctypes.RPCRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if req.Method != "abci_query" {
		n.t.Errorf("unexpected RPC call %s", req.Method)
	}
	var p struct {
		Path string `json:"path"`
	}
	_ = json.Unmarshal(req.Params, &p)
	v, ok := n.answers[p.Path]
	q := abci.ResponseQuery{Value: v}
	if !ok {
		q = abci.ResponseQuery{Code: uint32(ledger.Code(ledger.ErrNotFound)), Log: "not found"}
	}
	_ = json.NewEncoder(w).Encode(rpctypes.NewRPCSuccessResponse(req.ID, &coretypes.ResultABCIQuery{Response: q}))
}

// TestAttackDisputesShareTrace: a challenger opens several disputes over
// one receipt of an honest worker in one block (each needs only
// minVerifierStake, from any account). The worker regenerated the
// receipt's whole trace for each and kept a tree per dispute: for a long
// receipt of a large model, GBs times the disputes, enough to exhaust its
// memory (and, restarted, to crash it again on the disputes it resumes),
// losing every dispute on time. Now the disputes over one receipt share
// one tree, regenerated once.
func TestAttackDisputesShareTrace(t *testing.T) {
	w := testWorker(t)
	res, err := w.Generate(context.Background(), textReq("Once upon a time", 6), nil)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := parseReceipt(res.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	rid := ledger.Hash(rc.ID())
	node := &queryNode{t: t, answers: map[string][]byte{"receiptData/" + rid.String(): res.Receipt}}
	const n = 4
	var ids []ledger.Hash
	for i := range n {
		id := ledger.Hash(sha256.Sum256(fmt.Append(nil, "dispute ", i)))
		b, _ := json.Marshal(ledger.Dispute{DisputeID: id, ReceiptID: rid, Status: ledger.DisputeOpen})
		node.answers["dispute/"+id.String()] = b
		ids = append(ids, id)
	}
	srv := httptest.NewServer(node)
	defer srv.Close()
	cl, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewChain(w, ChainConfig{Client: cl, RPC: srv.URL, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	c.params = ledger.DefaultParams()
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.startDispute(context.Background(), sem, id.String(), rid.String())
		}()
	}
	wg.Wait()
	trees := map[any]bool{}
	for _, id := range ids {
		p := c.disputes.Player(id)
		if p == nil {
			t.Fatalf("dispute %s not played", id)
		}
		trees[p.Responder.Tree] = true
	}
	if len(trees) != 1 {
		t.Errorf("%d disputes over one receipt hold %d trace trees, want one shared", n, len(trees))
	}
}
