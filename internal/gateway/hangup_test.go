package gateway

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/verdictnet/verdict/internal/inference"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/testutil"
)

// slowStream delays every token, as a large model does, so that a client
// has time to hang up mid-generation.
type slowStream struct {
	Backend
	delay time.Duration
	// hold (nil or 0: none) is how many tokens a generation streams
	// before it waits for its caller to go away, so that a hang-up comes
	// mid-generation however slowly the machine runs the test; held, if
	// not nil, is told when a generation begins to wait.
	hold *atomic.Int64
	held chan struct{}
}

func (b slowStream) Generate(ctx context.Context, req inference.Request, f func(inference.Delta) error) (*inference.Result, error) {
	var hold, n int64
	if b.hold != nil {
		hold = b.hold.Load()
	}
	return b.Backend.Generate(ctx, req, func(d inference.Delta) error {
		time.Sleep(b.delay)
		if n++; n == hold+1 && hold > 0 {
			if b.held != nil {
				b.held <- struct{}{}
			}
			<-ctx.Done()
		}
		if f == nil {
			return nil
		}
		return f(d)
	})
}

// waitSubmitted waits until the outbox holds n receipts.
func (f *fakeLedger) waitSubmitted(t *testing.T, n int) []inference.Charge {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		f.mu.Lock()
		got := slices.Clone(f.submitted)
		f.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d receipts in the outbox, want %d", len(got), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkPartial checks a receipt of a generation cut short: a proper
// prefix of the full output, its step count lowered to the positions fed,
// charged for exactly its tokens, and replaying to the same tokens.
func checkPartial(t *testing.T, p inference.Charge, full []int) int {
	t.Helper()
	r, err := receipt.Parse(p.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	n := len(r.Output)
	if n == 0 || n >= len(full) || !slices.Equal(r.Output, full[:n]) {
		t.Errorf("receipt %s: output %v is not a proper prefix of %v", p.ReceiptID, r.Output, full)
	}
	if r.Sampling.Steps != len(r.Prompt)+n-1 {
		t.Errorf("receipt %s: %d steps for %d+%d tokens", p.ReceiptID, r.Sampling.Steps, len(r.Prompt), n)
	}
	if p.Fee != uint64(len(r.Prompt)+n) {
		t.Errorf("receipt %s: charged %d for %d+%d tokens", p.ReceiptID, p.Fee, len(r.Prompt), n)
	}
	v, err := testWorker(t).Verify(context.Background(), p.Receipt, true)
	if err != nil || !v.Match {
		t.Errorf("receipt %s does not replay: %+v %v", p.ReceiptID, v, err)
	}
	return n
}

// The attack: a client streams a completion, reads a few chunks and hangs
// up, again and again, so that the worker computes tokens nobody pays for
// and whose receipts never reach the ledger. Now each hang-up is charged
// for the tokens generated (OpenAI bills generated tokens; the receipt,
// which the caller can read, holds every one), its receipt, for exactly
// that prefix, goes to the outbox and replays, the rest of the
// reservation is released, and no receipt is charged twice. An MCP call
// the client cancels is charged the same way.
func TestHangUpMidStreamIsCharged(t *testing.T) {
	const maxTokens, hangUps = 200, 4
	var hold atomic.Int64
	held := make(chan struct{}, 1)
	b := newBilled(t, map[string]uint64{"sk-a": 100000}, func(o *Options) {
		o.Backend = slowStream{Backend: o.Backend, delay: 3 * time.Millisecond, hold: &hold, held: held}
	})
	a := b.addr["sk-a"]
	body := fmt.Sprintf(`{"model":"stories260K","prompt":"Once upon a time","max_tokens":%d,"temperature":0%s}`, maxTokens, "%s")
	resp, rb := post(t, b.ts.URL+"/v1/completions", fmt.Sprintf(body, ""), "Authorization", "Bearer sk-a")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, rb)
	}
	fr, err := receipt.Parse(b.ledger.waitSubmitted(t, 1)[0].Receipt)
	if err != nil {
		t.Fatal(err)
	}
	full := fr.Output
	// From here each generation streams 5 tokens, then waits for its
	// caller to hang up.
	hold.Store(5)
	for i := range hangUps {
		req, _ := http.NewRequest("POST", b.ts.URL+"/v1/completions", strings.NewReader(fmt.Sprintf(body, `,"stream":true`)))
		req.Header.Set("Authorization", "Bearer sk-a")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(resp.Body)
		for chunks := 0; chunks < 3 && sc.Scan(); {
			if strings.HasPrefix(sc.Text(), "data: {") {
				chunks++
			}
		}
		<-held
		resp.Body.Close() // hang up
		got := b.ledger.waitSubmitted(t, 2+i)
		n := checkPartial(t, got[1+i], full)
		t.Logf("hang-up %d: charged %d for %d of up to %d tokens", i, got[1+i].Fee, n, len(full))
	}
	// An MCP client that cancels its call.
	cs := mcpSession(t, b.ts.URL, "sk-a")
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-held; cancel() }()
	_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "generate", Arguments: map[string]any{"prompt": "Once upon a time", "max_tokens": maxTokens, "temperature": 0}})
	cancel()
	if err == nil {
		t.Fatal("the cancelled MCP call returned a result")
	}
	got := b.ledger.waitSubmitted(t, 2+hangUps)
	n := checkPartial(t, got[1+hangUps], full)
	t.Logf("cancelled MCP call: charged %d for %d tokens", got[1+hangUps].Fee, n)

	ids := map[string]bool{}
	var fees uint64
	for _, p := range got {
		if ids[p.ReceiptID] || p.Requester != a.String() {
			t.Errorf("receipt %s charged twice or to %s", p.ReceiptID, p.Requester)
		}
		ids[p.ReceiptID] = true
		fees += p.Fee + escrowTxFee
	}
	if held, owed := b.meter.Held(a); held != 0 || owed != fees {
		t.Errorf("after the hang-ups: %d held, %d owed, want 0 and %d", held, owed, fees)
	}
	// The payer reads the receipt of a stream it hung up on: the tokens
	// it paid for are there.
	req, _ := http.NewRequest("GET", b.ts.URL+"/v1/receipts/"+got[1].ReceiptID, nil)
	req.Header.Set("Authorization", "Bearer sk-a")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("reading a hung-up stream's receipt: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(b.ledger.waitSubmitted(t, 0)); n != len(got) {
		t.Errorf("%d receipts in the outbox, want %d", n, len(got))
	}
}

// TestAttackStalledStreamHoldsSlot: a streaming client that stops reading
// but keeps its connection open blocked the generation's write, on the
// generation's own goroutine, for good: it held its batch slot and cache,
// every batch step waited for it, and it was charged nothing (the request
// never ended). Each write now has StreamWriteTimeout; the stalled
// stream ends as a hang-up, charged for the tokens generated.
func TestAttackStalledStreamHoldsSlot(t *testing.T) {
	defer func(d time.Duration) { StreamWriteTimeout = d }(StreamWriteTimeout)
	StreamWriteTimeout = 200 * time.Millisecond
	b := newBilled(t, map[string]uint64{"sk-a": 100000}, nil)
	a := b.addr["sk-a"]
	req := httptest.NewRequest("POST", "/v1/completions", strings.NewReader(`{"model":"stories260K","prompt":"Once upon a time","max_tokens":100,"temperature":0,"stream":true}`))
	req.Header.Set("Authorization", "Bearer sk-a")
	req.Header.Set("Content-Type", "application/json")
	w := testutil.NewStallWriter(3)
	done := make(chan struct{})
	go func() { defer close(done); b.srv.ServeHTTP(w, req) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the stalled stream's request never ended")
	}
	got := b.ledger.waitSubmitted(t, 1)
	if got[0].Requester != a.String() || got[0].Fee == 0 {
		t.Fatalf("the stalled stream was charged %d to %s", got[0].Fee, got[0].Requester)
	}
	r, err := receipt.Parse(got[0].Receipt)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Output) == 0 || len(r.Output) >= 100 {
		t.Fatalf("the stalled stream's receipt has %d tokens, want it cut short", len(r.Output))
	}
}
