package verifier

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cometbft/cometbft/p2p"
	coretypes "github.com/cometbft/cometbft/rpc/core/types"
	rpctypes "github.com/cometbft/cometbft/rpc/jsonrpc/types"

	"github.com/verdictnet/verdict/internal/audit"
	"github.com/verdictnet/verdict/internal/chat"
	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/ledger/disputeplay"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/testutil"
	"github.com/verdictnet/verdict/internal/worker"
)

// fakeNode answers the few CometBFT RPC calls a verifier makes (status,
// abci_query, broadcast_tx_sync) from fixed query answers, and records
// the transactions broadcast to it.
type fakeNode struct {
	t       *testing.T
	mu      sync.Mutex
	answers map[string][]byte // query path -> value (missing: not found)
	queries []string          // the query paths asked, in order
	reject  bool              // refuse every broadcast (CheckTx)
	txs     []*ledger.Tx
	// hold keeps a query's answer until its channel is closed.
	hold map[string]chan struct{}
}

func (n *fakeNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req rpctypes.RPCRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var res any
	switch req.Method {
	case "status":
		res = &coretypes.ResultStatus{NodeInfo: p2p.DefaultNodeInfo{Network: "verdict-test"}}
	case "abci_query":
		var p struct {
			Path string `json:"path"`
		}
		_ = json.Unmarshal(req.Params, &p)
		n.mu.Lock()
		v, ok := n.answers[p.Path]
		n.queries = append(n.queries, p.Path)
		hold := n.hold[p.Path]
		n.mu.Unlock()
		if hold != nil {
			<-hold
		}
		q := abci.ResponseQuery{Value: v}
		if !ok {
			q = abci.ResponseQuery{Code: uint32(ledger.Code(ledger.ErrNotFound)), Log: "not found"}
		}
		res = &coretypes.ResultABCIQuery{Response: q}
	case "broadcast_tx_sync":
		var p struct {
			Tx string `json:"tx"`
		}
		_ = json.Unmarshal(req.Params, &p)
		b, _ := base64.StdEncoding.DecodeString(p.Tx)
		tx, err := ledger.DecodeTx(b)
		if err != nil {
			n.t.Errorf("broadcast of an undecodable transaction: %v", err)
		} else {
			n.mu.Lock()
			n.txs = append(n.txs, tx)
			n.mu.Unlock()
		}
		res = &coretypes.ResultBroadcastTx{}
		if n.reject {
			res = &coretypes.ResultBroadcastTx{Code: uint32(ledger.Code(ledger.ErrWrongState)), Log: "refused"}
		}
	default:
		n.t.Errorf("unexpected RPC call %s", req.Method)
	}
	_ = json.NewEncoder(w).Encode(rpctypes.NewRPCSuccessResponse(req.ID, res))
}

// newFakeVerifier returns a verifier replaying on w against node, whose
// account the node funds.
func newFakeVerifier(t *testing.T, w *worker.Local, node *fakeNode) *Verifier {
	t.Helper()
	vk, err := keys.New([]byte(strings.Repeat("v", 32)))
	if err != nil {
		t.Fatal(err)
	}
	va, _ := ledger.AddressOf(vk.Public)
	node.mu.Lock()
	node.answers["account/"+va.String()] = []byte(`{"balance":1000000,"nonce":0}`)
	node.mu.Unlock()
	srv := httptest.NewServer(node)
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	v, err := New(Config{Client: c, RPC: srv.URL, Key: vk, Worker: w, ReplayShareBps: 10000})
	if err != nil {
		t.Fatal(err)
	}
	v.params = ledger.DefaultParams()
	return v
}

func openWorker(t *testing.T) *worker.Local {
	t.Helper()
	w, err := worker.Open(worker.Config{ModelPath: testutil.Shared(t, "models/stories260K.gguf"), Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func (n *fakeNode) broadcast() []*ledger.Tx {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*ledger.Tx(nil), n.txs...)
}

// TestAttackForeignModelValidation: anyone may address an ERC-8004
// validation request to a verifier naming any receipt. A receipt of a
// model the verifier does not serve was "not replayed" (Match false), so
// the verifier answered it 0 (a false mismatch against an honest worker)
// and opened a dispute over it with a trace computed on its own model:
// a dispute it could neither play (its referee setup refuses the other
// model) nor win, losing slashDisputeBps of its stake each time, for the
// price of one validation request. Now a receipt the verifier did not
// replay gets neither an answer nor a dispute.
func TestAttackForeignModelValidation(t *testing.T) {
	w := openWorker(t)
	// An honest receipt of another model (its own trace root), whose
	// tokens the verifier's model can run.
	r := &receipt.Receipt{Version: receipt.Version, Spec: receipt.DefaultSpec, Model: merkle.Hash(sha256.Sum256([]byte("another model"))),
		Sampling: receipt.Sampling{Steps: 4}, Prompt: []int{1, 2, 3}, Output: []int{4, 5},
		TraceRoot: merkle.Hash(sha256.Sum256([]byte("its trace"))), LogitsRoot: merkle.Hash(sha256.Sum256([]byte("its logits")))}
	_, id, node, v := servedReceipt(t, w, r)
	// The validation request names the verifier and the foreign receipt
	// (what the follow loop records for an EventValidationRequest).
	v.requests[id] = ledger.Hash(sha256.Sum256([]byte("request")))
	v.check(context.Background(), id)
	for _, tx := range node.broadcast() {
		switch m := tx.Msg.(type) {
		case *ledger.MsgOpenDispute:
			t.Errorf("the verifier opened a dispute over receipt %s of a model it does not serve", m.ReceiptID)
		case *ledger.MsgValidationResponse:
			t.Errorf("the verifier answered %d for receipt %s of a model it does not serve", m.Response, id)
		default:
			t.Errorf("unexpected transaction %s", tx.Msg.Kind())
		}
	}
	if st := v.Stats(); st.Mismatches != 0 || st.Disputes != 0 {
		t.Errorf("stats %+v: a receipt not replayed counted as a mismatch", st)
	}
	// The request will get no answer: it is not kept (anyone may address
	// such requests to the verifier, each kept for good before).
	if n := len(v.requests); n != 0 {
		t.Errorf("%d validation requests kept for a receipt not replayed", n)
	}
}

// TestAttackTraceLeak: a worker publishes receipts of the verifier's
// model with a forged trace root. The verifier challenges each with its
// own trace, which it kept in memory for good: after its dispute opened
// and settled, and when the openDispute was refused. A worker losing
// disputes grew the verifier's memory by a trace tree each time (about
// 100 MB for a 4096-position receipt of an 8B model). Now the trace goes
// to the dispute's player, and is dropped when the dispute is not opened.
func TestAttackTraceLeak(t *testing.T) {
	w := openWorker(t)
	res, err := w.Generate(context.Background(), worker.Request{Model: "stories260K",
		Segments: []chat.Segment{{Text: "Once upon a time", BOS: true}}, MaxTokens: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	forged := func(tag string) (ledger.Hash, []byte) {
		r, err := receipt.Parse(res.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		r.TraceRoot = merkle.Hash(sha256.Sum256([]byte(tag)))
		wk, _ := keys.New(make([]byte, 32))
		if err := r.Sign(wk.Private); err != nil {
			t.Fatal(err)
		}
		b, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return ledger.Hash(r.ID()), b
	}
	a, ad := forged("forged a")
	b, bd := forged("forged b")
	node := &fakeNode{t: t, answers: map[string][]byte{"receiptData/" + a.String(): ad, "receiptData/" + b.String(): bd}}
	v := newFakeVerifier(t, w, node)
	kept := func() int {
		v.mu.Lock()
		defer v.mu.Unlock()
		return len(v.traces)
	}
	// a: the dispute opens, is played and settles.
	v.check(context.Background(), a)
	if st := v.Stats(); st.Disputes != 1 {
		t.Fatalf("stats %+v: want the forged receipt disputed", st)
	}
	did := ledger.Hash(sha256.Sum256([]byte("dispute a")))
	v.joinDispute(did, a)
	if !v.disputes.Remove(did) {
		t.Fatal("the verifier does not play its dispute")
	}
	if n := kept(); n != 0 {
		t.Errorf("%d traces kept after the dispute opened and settled", n)
	}
	// b: the ledger refuses the openDispute.
	node.mu.Lock()
	node.reject = true
	node.mu.Unlock()
	v.check(context.Background(), b)
	if n := kept(); n != 0 {
		t.Errorf("%d traces kept after the dispute was refused", n)
	}
}

// TestAttackValidationFlood: validation requests bypass the replay
// sampling, and anyone may address any number of them to a verifier
// (a transaction fee each). A worker filled the verifier's one replay
// queue with requests naming other receipts (long honest ones replay for
// minutes), so that its own forged receipt, sampled, waited behind them
// past the challenge window or was dropped from the full queue. Now the
// sampled receipts have a queue of their own and go first.
func TestAttackValidationFlood(t *testing.T) {
	w := openWorker(t)
	node := &fakeNode{t: t, answers: map[string][]byte{}}
	v := newFakeVerifier(t, w, node)
	model := ledger.Hash(w.ModelID())
	hash := func(s string, i int) ledger.Hash { return ledger.Hash(sha256.Sum256(fmt.Append(nil, s, i))) }
	// The flood, in the block before the forged receipt's: receipts the
	// verifier does not sample, named by requests addressed to it.
	const flood = 64
	v.cfg.ReplayShareBps = 0 // sampled: the forged receipt below alone
	for i := 0; i < flood; i++ {
		rid := hash("flood ", i)
		uri := "verdict:receipt/" + rid.String()
		rh := hash("request ", i)
		v.handle(context.Background(), model, client.Event{Event: ledger.Event{Type: ledger.EventValidationRequest, Attrs: []ledger.Attr{
			{Key: ledger.AttrValidatorAddress, Value: v.addr.String()}, {Key: ledger.AttrAgentID, Value: "1"},
			{Key: ledger.AttrRequestURI, Value: uri}, {Key: ledger.AttrRequestHash, Value: rh.String()}}},
			Tx: &ledger.Tx{Msg: &ledger.MsgValidationRequest{ValidatorAddress: v.addr, AgentID: 1, RequestURI: uri, RequestHash: rh}}})
	}
	v.cfg.ReplayShareBps = 10000
	forged := hash("forged ", 0)
	v.handle(context.Background(), model, client.Event{Event: ledger.Event{Type: ledger.EventReceiptPublished, Attrs: []ledger.Attr{
		{Key: ledger.AttrReceiptID, Value: forged.String()}, {Key: ledger.AttrEscrowID, Value: hash("escrow ", 0).String()},
		{Key: ledger.AttrWorker, Value: hash("worker ", 0).String()}, {Key: ledger.AttrModelID, Value: model.String()},
		{Key: ledger.AttrWindowEnd, Value: "100"}}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		v.replayLoop(ctx)
	}()
	want := "receiptData/" + forged.String()
	deadline := time.Now().Add(10 * time.Second)
	var first int
	for first = -1; first < 0 && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		node.mu.Lock()
		for i, q := range node.queries {
			if q == want {
				first = i
			}
		}
		node.mu.Unlock()
	}
	cancel()
	<-done
	if first != 0 {
		t.Errorf("the sampled receipt was fetched for replay after %d receipts named by validation requests, want first", first)
	}
}

// TestAttackForeignOpeningsFetched: every audit's openings on the chain
// made the verifier fetch the audited receipt's whole data (up to
// megabytes), in its follow loop, before it looked at the model: a
// worker of another model posting openings slowed every verifier's
// following. Now the receipt's record, which names the model, is read
// first, and another model's receipt is not fetched.
func TestAttackForeignOpeningsFetched(t *testing.T) {
	w := openWorker(t)
	node := &fakeNode{t: t, answers: map[string][]byte{}}
	v := newFakeVerifier(t, w, node)
	model := ledger.Hash(w.ModelID())
	rid := ledger.Hash(sha256.Sum256([]byte("foreign receipt")))
	other := ledger.Hash(sha256.Sum256([]byte("another model")))
	audit, _ := json.Marshal(ledger.Audit{ReceiptID: rid, Cells: 2})
	rec, _ := json.Marshal(ledger.ReceiptRecord{ReceiptID: rid, ModelID: other})
	node.mu.Lock()
	node.answers["audit/"+rid.String()] = audit
	node.answers["receipt/"+rid.String()] = rec
	node.answers["receiptData/"+rid.String()] = []byte(`{}`)
	node.mu.Unlock()
	v.handle(context.Background(), model, client.Event{Event: ledger.Event{Type: ledger.EventAuditPassed},
		Tx: &ledger.Tx{Msg: &ledger.MsgPostOpenings{ReceiptID: rid, Openings: []byte("{}")}}})
	c := <-v.openings // what openingsLoop does
	v.checkOpenings(context.Background(), c.msg, c.passed)
	node.mu.Lock()
	defer node.mu.Unlock()
	if slices.Contains(node.queries, "receiptData/"+rid.String()) || !slices.Contains(node.queries, "receipt/"+rid.String()) {
		t.Fatalf("queries %v: the foreign receipt's data fetched, or its record not read", node.queries)
	}
}

// TestAttackSlowMoveStallsFollowing: a challenger's dispute move can
// take seconds (its Reload recomputes part of a trace, a forward pass of
// a large model), and the verifier played its moves inside its follow
// loop, which read no block meanwhile: a worker holding a dispute open
// with the verifier slowed its replays and its other disputes' moves.
// Now the moves are played off the loop (playLoop): a block is handled
// while a move waits.
func TestAttackSlowMoveStallsFollowing(t *testing.T) {
	w := openWorker(t)
	release := make(chan struct{})
	did := ledger.Hash(sha256.Sum256([]byte("a slow dispute")))
	node := &fakeNode{t: t, answers: map[string][]byte{}, hold: map[string]chan struct{}{"dispute/" + did.String(): release}}
	v := newFakeVerifier(t, w, node)
	model := ledger.Hash(w.ModelID())
	v.disputes.Add(did, &disputeplay.Player{Side: ledger.SideChallenger})
	ctx, cancel := context.WithCancel(context.Background())
	play := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() { defer close(done); v.playLoop(ctx, play) }()
	defer func() { close(release); cancel(); <-done }()
	v.block(ctx, model, nil, play)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		node.mu.Lock()
		moving := slices.Contains(node.queries, "dispute/"+did.String())
		node.mu.Unlock()
		if moving {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the dispute's move never started")
		}
	}
	// The next block, while the move waits: a receipt to replay.
	rid := ledger.Hash(sha256.Sum256([]byte("next receipt")))
	handled := make(chan struct{})
	go func() {
		defer close(handled)
		v.block(ctx, model, []client.Event{{Event: ledger.Event{Type: ledger.EventReceiptPublished, Attrs: []ledger.Attr{
			{Key: ledger.AttrReceiptID, Value: rid.String()}, {Key: ledger.AttrEscrowID, Value: did.String()},
			{Key: ledger.AttrWorker, Value: did.String()}, {Key: ledger.AttrModelID, Value: model.String()},
			{Key: ledger.AttrWindowEnd, Value: "100"}}}}}, play)
	}()
	select {
	case <-handled:
	case <-time.After(10 * time.Second):
		t.Fatal("the next block waited for a dispute move")
	}
	if got := <-v.queue; got != rid {
		t.Fatalf("queued %s, want the block's receipt", got)
	}
}

// TestAttackSlowOpeningsStallFollowing: posted openings were checked in
// the follow loop, three queries to the node (the audit, the receipt's
// record, its data) and the cells' recomputation each, so that a block
// full of audits, or a slow node, delayed the next block's receipts.
// They are checked off the loop now.
func TestAttackSlowOpeningsStallFollowing(t *testing.T) {
	w := openWorker(t)
	release := make(chan struct{})
	rid := ledger.Hash(sha256.Sum256([]byte("an audited receipt")))
	node := &fakeNode{t: t, answers: map[string][]byte{}, hold: map[string]chan struct{}{"audit/" + rid.String(): release}}
	v := newFakeVerifier(t, w, node)
	model := ledger.Hash(w.ModelID())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); v.openingsLoop(ctx) }()
	defer func() { close(release); cancel(); <-done }()
	audited := client.Event{Event: ledger.Event{Type: ledger.EventAuditPassed}, Tx: &ledger.Tx{Msg: &ledger.MsgPostOpenings{ReceiptID: rid, Openings: []byte("{}")}}}
	next := ledger.Hash(sha256.Sum256([]byte("next receipt")))
	published := client.Event{Event: ledger.Event{Type: ledger.EventReceiptPublished, Attrs: []ledger.Attr{
		{Key: ledger.AttrReceiptID, Value: next.String()}, {Key: ledger.AttrEscrowID, Value: next.String()},
		{Key: ledger.AttrWorker, Value: next.String()}, {Key: ledger.AttrModelID, Value: model.String()},
		{Key: ledger.AttrWindowEnd, Value: "100"}}}}
	handled := make(chan struct{})
	go func() {
		defer close(handled)
		v.block(ctx, model, []client.Event{audited}, make(chan struct{}, 1))
		v.block(ctx, model, []client.Event{published}, make(chan struct{}, 1))
	}()
	select {
	case <-handled:
	case <-time.After(10 * time.Second):
		t.Fatal("the next block waited for an audit's openings to be checked")
	}
	if got := <-v.queue; got != next {
		t.Fatalf("queued %s, want the next block's receipt", got)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		node.mu.Lock()
		checking := slices.Contains(node.queries, "audit/"+rid.String())
		node.mu.Unlock()
		if checking {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the openings were never checked")
		}
	}
}

// TestSettledDisputeStopsItsMove: a dispute's move may take long (a
// Reload is a forward pass over the receipt; here the node holds the
// move's first query), and the moves of every dispute are played one
// after another. A dispute that settles meanwhile (removed from the book
// by its dispute_settled event) kept its move running and the other
// disputes' moves waiting for it; its move's context now ends.
func TestSettledDisputeStopsItsMove(t *testing.T) {
	w := openWorker(t)
	release := make(chan struct{})
	defer close(release)
	did := ledger.Hash(sha256.Sum256([]byte("a dispute that settles")))
	node := &fakeNode{t: t, answers: map[string][]byte{}, hold: map[string]chan struct{}{"dispute/" + did.String(): release}}
	v := newFakeVerifier(t, w, node)
	v.disputes.Add(did, &disputeplay.Player{Side: ledger.SideChallenger})
	played := make(chan struct{})
	go func() { defer close(played); v.playDisputes(context.Background()) }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		node.mu.Lock()
		moving := slices.Contains(node.queries, "dispute/"+did.String())
		node.mu.Unlock()
		if moving {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the dispute's move never started")
		}
	}
	if !v.disputes.Remove(did) {
		t.Fatal("the dispute was not in the book")
	}
	select {
	case <-played:
	case <-time.After(10 * time.Second):
		t.Fatal("the settled dispute's move went on")
	}
}

// servedReceipt signs r with a throwaway key and returns its bytes, its
// id, a node that serves them and a verifier of w's model on that node.
func servedReceipt(t *testing.T, w *worker.Local, r *receipt.Receipt) ([]byte, ledger.Hash, *fakeNode, *Verifier) {
	t.Helper()
	wk, err := keys.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Sign(wk.Private); err != nil {
		t.Fatal(err)
	}
	data, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	id := ledger.Hash(r.ID())
	node := &fakeNode{t: t, answers: map[string][]byte{"receiptData/" + id.String(): data}}
	return data, id, node, newFakeVerifier(t, w, node)
}

// forgedReceipt generates a short honest receipt, lets forge change it,
// signs it again with a throwaway key, and has a verifier check it against
// a node that serves it: it returns the receipt's bytes, the verifier and
// the commitment of the dispute it opened over it (nil: none).
func forgedReceipt(t *testing.T, forge func(w *worker.Local, r *receipt.Receipt)) ([]byte, *worker.Local, *Verifier, []byte) {
	t.Helper()
	w := openWorker(t)
	res, err := w.Generate(context.Background(), worker.Request{Model: "stories260K",
		Segments: []chat.Segment{{Text: "Once upon a time", BOS: true}}, MaxTokens: 6}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := receipt.Parse(res.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Output) < 2 {
		t.Fatalf("output of %d tokens", len(r.Output))
	}
	forge(w, r)
	data, id, node, v := servedReceipt(t, w, r)
	v.check(context.Background(), id)
	var commit []byte
	for _, tx := range node.broadcast() {
		if m, ok := tx.Msg.(*ledger.MsgOpenDispute); ok && m.ReceiptID == id {
			commit = m.Commitment
		}
	}
	return data, w, v, commit
}

// TestAttackStopRuleEscapesVerifier: a worker signs a receipt that breaks
// its own stopping rule (tokens after a stop token, or more than its steps
// allow: an "upto" escrow pays by the token) over the exact trace of its
// tokens. The verifier's replay rejected it, but its retrace had the
// receipt's root, so it opened no dispute ("the mismatch is in
// sampling"): only an audit could catch the worker. Now it opens one,
// which the worker forfeits at its setup (audit.Impossible).
func TestAttackStopRuleEscapesVerifier(t *testing.T) {
	_, _, v, commit := forgedReceipt(t, func(_ *worker.Local, r *receipt.Receipt) {
		r.Sampling.Stop = append(r.Sampling.Stop, r.Output[0]) // the generation went on past a stop token
	})
	if st := v.Stats(); commit == nil || st.Mismatches != 1 || st.Disputes != 1 {
		t.Fatalf("stats %+v, dispute opened %v: want the receipt that breaks its stopping rule disputed", st, commit != nil)
	}
}

// TestAttackSamplingEscapesVerifier: a worker computes honestly but signs
// another last output token than the one it samples (the trace and
// logits roots stay exact). The verifier's replay found the mismatch but
// its trace had the receipt's root: it opened no dispute ("the mismatch is
// in sampling"). Now it opens one with a sampling-fault commitment, which
// the worker forfeits at its setup.
func TestAttackSamplingEscapesVerifier(t *testing.T) {
	data, w, v, commit := forgedReceipt(t, func(w *worker.Local, r *receipt.Receipt) {
		O := len(r.Output)
		r.Sampling.Steps = len(r.Prompt) + O - 1
		forged := (r.Output[O-1] + 1) % w.Model().Config.Vocab
		for slices.Contains(r.Sampling.Stop, forged) {
			forged = (forged + 1) % w.Model().Config.Vocab
		}
		r.Output[O-1] = forged
	})
	if st := v.Stats(); commit == nil || st.Mismatches != 1 || st.Disputes != 1 {
		t.Fatalf("stats %+v: want the receipt with a forged token disputed", st)
	}
	cfg, ref, err := audit.DisputeSetup(w.Model(), w.ModelID(), data, commit)
	if err != nil || ref != nil || cfg.Forfeit[0].Fault != dispute.FaultImpossibleReceipt {
		t.Fatalf("setup of the verifier's dispute: %+v, %v", cfg.Forfeit, err)
	}
}
