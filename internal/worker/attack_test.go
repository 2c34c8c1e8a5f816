package worker

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	coretypes "github.com/cometbft/cometbft/rpc/core/types"
	rpctypes "github.com/cometbft/cometbft/rpc/jsonrpc/types"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/testutil"
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
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.startDispute(context.Background(), id.String(), rid.String())
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

// A receipt may span up to engine.MaxPositions (2^20), and a replay holds
// the key/value cache and trace of every position it computes: anyone who
// hands a worker or a verifier a long receipt (MCP verify_receipt, a
// receipt published on the ledger) made it compute and hold all of it.
// A receipt longer than the model's context (or --max-replay-positions)
// is now refused before any work, and one at the limit still replays.
func TestAttackLongReceiptReplay(t *testing.T) {
	w := testWorker(t)
	ctx := context.Background()
	res, err := w.Generate(ctx, textReq("Once upon a time", 4), nil)
	if err != nil {
		t.Fatal(err)
	}
	honest, err := receipt.Parse(res.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// forge returns the receipt with its prompt grown to n positions
	// (prompt and output tokens but the last), signed by another key.
	forge := func(n int) []byte {
		r := *honest
		r.Prompt = make([]int, n+1-len(honest.Output))
		copy(r.Prompt, honest.Prompt)
		for i := len(honest.Prompt); i < len(r.Prompt); i++ {
			r.Prompt[i] = honest.Prompt[i%len(honest.Prompt)]
		}
		r.Sampling.Steps = len(r.Prompt) + len(r.Output) - 1
		if err := r.Sign(priv); err != nil {
			t.Fatal(err)
		}
		b, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ctxLen := w.info.ContextLen
	for _, tc := range []struct {
		name      string
		positions int
		replayed  bool
	}{
		{"at the context", ctxLen, true},
		{"past the context", ctxLen + 1, false},
		{"an engine's most", engine.MaxPositions, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := w.Verify(ctx, forge(tc.positions), true)
			if err != nil {
				t.Fatal(err)
			}
			if !v.Signature || v.Replayed != tc.replayed || v.Match {
				t.Fatalf("verification %+v, want replayed %v and no match", v, tc.replayed)
			}
			if !tc.replayed && !strings.Contains(v.Problem, fmt.Sprintf("spans %d positions", tc.positions)) {
				t.Errorf("problem %q does not name the receipt's positions", v.Problem)
			}
		})
	}
}

// Config.MaxReplayPositions sets the bound below the context.
func TestMaxReplayPositions(t *testing.T) {
	m, err := model.Load(testutil.Shared(t, "models/stories260K.gguf"), "")
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(m, Config{Threads: 1, MaxReplayPositions: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		tokens   int
		replayed bool
	}{{4, true}, {5, false}} {
		// The prompt "Once upon a time" is 5 tokens (BOS included): 4 and
		// 5 output tokens span 8 and 9 positions.
		res, err := w.Generate(ctx, textReq("Once upon a time", tc.tokens), nil)
		if err != nil {
			t.Fatal(err)
		}
		v, err := w.Verify(ctx, res.Receipt, true)
		if err != nil {
			t.Fatal(err)
		}
		if v.Replayed != tc.replayed || v.Match != tc.replayed {
			t.Errorf("%d tokens: verification %+v, want replayed %v", tc.tokens, v, tc.replayed)
		}
	}
}

// TestAttackHugePromptEncoded sends a prompt of 4 MiB to a model of a
// 512-token context: it was encoded in full (seconds of CPU with an SPM
// vocabulary, tens of megabytes of tokens) before being refused. The
// lower bound of its tokens (tokenizer.MinTokens) now refuses it first.
func TestAttackHugePromptEncoded(t *testing.T) {
	w := testWorker(t)
	text := strings.Repeat("Once upon a time there was a little dog. ", 4<<20/41)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	_, err := w.Generate(context.Background(), textReq(text, 4), nil)
	runtime.ReadMemStats(&m1)
	if !errors.Is(err, ErrContextLength) || !strings.Contains(err.Error(), "or more") {
		t.Fatalf("a %d-byte prompt: %v, want ErrContextLength", len(text), err)
	}
	if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 4<<20 {
		t.Fatalf("refusing a %d-byte prompt allocated %d MB: it was encoded", len(text), alloc>>20)
	}
	// A prompt the bound lets through is encoded and refused as before.
	long := strings.Repeat("Once upon a time. ", 400)
	if _, err := w.Generate(context.Background(), textReq(long, 4), nil); !errors.Is(err, ErrContextLength) {
		t.Fatalf("a %d-byte prompt: %v, want ErrContextLength", len(long), err)
	}
}

// TestAttackDisputesCrowdAudit: the worker computes at most proofSlots
// openings and traces at a time, and its slots are busy. A challenger
// opens disputes over several of its receipts (minVerifierStake each,
// from any accounts), each dispute's trace waiting for a slot; then the
// ledger selects one of its receipts for an audit, whose openings are
// due sooner than the disputes' first answers. Slots went to the waiters
// in the order they came (a Go channel as a semaphore, no order promised
// at all): the audit's opening waited behind every dispute trace, past
// its deadline, and the honest worker was slashed for a missed audit.
// Now a freed slot goes to the work due first, whatever its kind or
// arrival: a dispute's reload due sooner still (its deadline read from
// the dispute as the ledger holds it at that move), then the audit, then
// the crowd in the order it came.
func TestAttackDisputesCrowdAudit(t *testing.T) {
	w := testWorker(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gen := func(prompt string) ([]byte, *receipt.Receipt) {
		t.Helper()
		res, err := w.Generate(ctx, textReq(prompt, 6), nil)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := parseReceipt(res.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		return res.Receipt, rc
	}
	node := &queryNode{t: t, answers: map[string][]byte{}}
	// dispute records a dispute over a receipt of its own (each needs its
	// own trace), its next answer due by deadline.
	dispute := func(i int, deadline uint64) (ledger.Hash, string) {
		data, rc := gen(fmt.Sprintf("Once upon a time, tale %d", i))
		rid := ledger.Hash(rc.ID())
		id := ledger.Hash(sha256.Sum256(fmt.Append(nil, "dispute ", i)))
		b, _ := json.Marshal(ledger.Dispute{DisputeID: id, ReceiptID: rid, Status: ledger.DisputeOpen, Deadline: deadline})
		node.answers["dispute/"+id.String()] = b
		node.answers["receiptData/"+rid.String()] = data
		return id, rid.String()
	}
	const crowd = 6
	played, playedReceipt := dispute(0, 100) // under way before the crowd came
	var crowdIDs [crowd][2]string
	for i := range crowd {
		id, rid := dispute(1+i, 130)
		crowdIDs[i] = [2]string{id.String(), rid}
	}
	_, audited := gen("Lily and Tom went to the park")
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
	granted := make(chan string, 2*crowd)
	c.onSlot = func(what string, deadline uint64) { granted <- fmt.Sprintf("%s due at %d", what, deadline) }
	queued := func(n int) {
		t.Helper()
		for end := time.Now().Add(20 * time.Second); c.work.Waiting() != n; time.Sleep(time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("%d waiting for a slot, want %d", c.work.Waiting(), n)
			}
		}
	}

	c.startDispute(ctx, played.String(), playedReceipt)
	p := c.disputes.Player(played)
	if p == nil || p.Reload == nil {
		t.Fatal("the dispute under way is not played")
	}
	<-granted
	// Every slot busy (traces of other disputes, say).
	var busy []func()
	for range proofSlots {
		release, err := c.slot(ctx, 1000, "busy")
		if err != nil {
			t.Fatal(err)
		}
		busy = append(busy, release)
		<-granted
	}
	var wg sync.WaitGroup
	for i, d := range crowdIDs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.startDispute(ctx, d[0], d[1])
		}()
		queued(i + 1)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		a := ledger.Audit{ReceiptID: ledger.Hash(audited.ID()), Seed: sha256.Sum256([]byte("seed")), Cells: 4, Deadline: 120, Status: ledger.AuditPending}
		if _, err := c.openings(ctx, audited, a); err != nil {
			t.Errorf("audit openings: %v", err)
		}
	}()
	queued(crowd + 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		// The dispute under way reached the opening of its disputed leaf's
		// inputs, due at 110 by the ledger's record now (100 when it
		// opened).
		if _, err := p.Reload(ctx, &ledger.Dispute{DisputeID: played, Status: ledger.DisputeOpen, Deadline: 110}, []int{0}); err != nil {
			t.Errorf("reload: %v", err)
		}
	}()
	queued(crowd + 2)

	busy[0]() // one slot frees: the work waiting goes through it one at a time
	var order []string
	for range crowd + 2 {
		order = append(order, <-granted)
	}
	wg.Wait()
	for _, release := range busy[1:] {
		release()
	}
	want := []string{"dispute reload due at 110", "audit openings due at 120"}
	for range crowd {
		want = append(want, "dispute trace due at 130")
	}
	if !slices.Equal(order, want) {
		t.Errorf("slots granted in the order\n%s\nwant\n%s", strings.Join(order, "\n"), strings.Join(want, "\n"))
	}
	for _, d := range crowdIDs {
		if id, _ := ledger.ParseHash(d[0]); c.disputes.Player(id) == nil {
			t.Errorf("dispute %s not played", d[0])
		}
	}
}

// TestOverdueWorkSkipped: earliest deadline first serves overdue work
// first; under a backlog each overdue opening computed for nothing (the
// ledger refuses it) made the next piece of work overdue too. Work whose
// deadline passed while it waited gives its slot back at once.
func TestOverdueWorkSkipped(t *testing.T) {
	w := testWorker(t)
	cl, err := client.New("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewChain(w, ChainConfig{Client: cl, RPC: "http://127.0.0.1:1", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c.read.Store(120) // block 120 read: an answer lands at 121 at the soonest
	for _, tc := range []struct {
		deadline uint64
		late     bool
	}{{119, true}, {120, true}, {121, false}} {
		release, err := c.slot(ctx, tc.deadline, "audit openings")
		if late := errors.Is(err, errLate); late != tc.late {
			t.Fatalf("due by %d: %v, want late %v", tc.deadline, err, tc.late)
		}
		if release != nil {
			release()
		}
	}
	// Overdue work held no slot: all of them are free.
	var held []func()
	for range proofSlots {
		release, err := c.slot(ctx, 200, "audit openings")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, release)
	}
	if c.work.Waiting() != 0 {
		t.Fatal("a slot was kept")
	}
	for _, r := range held {
		r()
	}
	// Audits are answered as overdue without openings: an unanswerable
	// audit is not computed.
	rc := receipt.Receipt{}
	if _, err := c.openings(ctx, &rc, ledger.Audit{Deadline: 100}); !errors.Is(err, errLate) {
		t.Fatalf("openings of an overdue audit: %v, want errLate", err)
	}
}

// TestAttackEscrowBeforeAdmission: a paid request's escrow went to the
// ledger (Bind) before the batch looked at it; a request that could never
// fit the key/value budget, or that met a full queue, was then refused,
// its payer's escrow locked until it expired and its fee lost. The batch
// is asked first now: Bind is not called for a request it refuses.
func TestAttackEscrowBeforeAdmission(t *testing.T) {
	m, err := model.Load(testutil.Shared(t, "models/stories260K.gguf"), "")
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(m, engine.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	perPos := e.CacheBytes(1, 1)
	e.Close()
	// Room for 64 positions.
	w, err := New(m, Config{Threads: 1, KVBudget: 64 * perPos, KVPage: 16, MaxConcurrent: 1, MaxQueue: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	bound := 0
	req := textReq("Once upon a time", 100) // 5 + 100 positions
	req.Bind = func(ledger.Hash) error { bound++; return nil }
	if _, err := w.Generate(context.Background(), req, nil); !errors.Is(err, ErrContextLength) {
		t.Fatalf("a request over the budget: %v, want ErrContextLength", err)
	}
	if bound != 0 {
		t.Fatal("the request over the budget was bound to its payment first")
	}
	// A full queue: one request running (held at its first token), one
	// waiting; the next, of the same account, cannot push it out.
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hold := func(Delta) error {
		once.Do(func() { close(started) })
		<-release
		return nil
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); w.Generate(context.Background(), textReq("Once upon a time", 8), hold) }()
	<-started
	go func() { defer wg.Done(); w.Generate(context.Background(), textReq("Once upon a time", 8), nil) }()
	for deadline := time.Now().Add(20 * time.Second); w.BatchStats().Queued < 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second request never queued")
		}
	}
	req = textReq("Once upon a time", 8)
	req.Bind = func(ledger.Hash) error { bound++; return nil }
	_, err = w.Generate(context.Background(), req, nil)
	close(release)
	wg.Wait()
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("a request meeting a full queue: %v, want ErrBusy", err)
	}
	if bound != 0 {
		t.Fatal("the request meeting a full queue was bound to its payment first")
	}
}
