package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/verdictnet/verdict/internal/testutil"
	"github.com/verdictnet/verdict/internal/worker"
)

// fakeClock is a settable Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// The bucket of abandoned prompt positions: each abandonment adds its
// positions, the bucket drains at the budget a minute, and a caller is
// refused while it holds more than the budget, with the time until it is
// back under.
func TestPrefillBudget(t *testing.T) {
	type op struct {
		after   time.Duration // the clock moves first
		abandon int           // then positions abandoned (0: an admission)
		retry   time.Duration // an admission's refusal's wait (0: admitted)
	}
	const budget = 600 // positions a minute: 10 a second
	for _, tc := range []struct {
		name   string
		caller string
		limit  int
		ops    []op
	}{
		{"under the budget", "account a", budget, []op{{abandon: 300}, {}, {abandon: 300}, {}}},
		{"over it", "account a", budget, []op{{abandon: 500}, {abandon: 400}, {retry: 30 * time.Second}}},
		{"drains", "account a", budget, []op{{abandon: 900}, {after: 20 * time.Second, retry: 10 * time.Second}, {after: 10 * time.Second}}},
		{"drains to empty, not below", "account a", budget, []op{{abandon: 100}, {after: time.Hour}, {abandon: 700}, {retry: 10 * time.Second}}},
		{"one position over", "address 192.0.2.1", budget, []op{{abandon: 601}, {retry: 100 * time.Millisecond}}},
		{"no limit", "account a", -1, []op{{abandon: 1 << 30}, {}}},
		{"unidentified callers are not limited", "", budget, []op{{abandon: 1 << 30}, {}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{t: time.Unix(1e9, 0)}
			b := newPrefillBudget(func() int { return tc.limit }, clock.Now)
			for i, o := range tc.ops {
				clock.add(o.after)
				if o.abandon > 0 {
					b.abandon(tc.caller, o.abandon)
					continue
				}
				err := b.admit(tc.caller)
				if o.retry == 0 {
					if err != nil {
						t.Fatalf("op %d: refused: %v", i, err)
					}
					continue
				}
				pr, ok := err.(*prefillRefusal)
				if !ok {
					t.Fatalf("op %d: %v, want a refusal", i, err)
				}
				if d := pr.retry - o.retry; d < -time.Millisecond || d > time.Millisecond {
					t.Errorf("op %d: retry in %v, want %v", i, pr.retry, o.retry)
				}
				if ae := backendError(err, "prompt"); ae.Status != http.StatusTooManyRequests || *ae.Code != codeRateLimit || ae.RetryAfter != retrySeconds(o.retry) {
					t.Errorf("op %d: %+v", i, ae)
				}
			}
			// Another caller is never refused for this one's.
			if err := b.admit(tc.caller + "-other"); err != nil && tc.caller != "" {
				t.Errorf("another caller: %v", err)
			}
		})
	}
}

// TestAttackPrefillBurn: a caller hangs up before the first output token,
// again and again, each time with a long prompt of its own. No receipt
// exists without an output token, so nobody paid for any of the prompts
// the worker computed, and nothing bounded how many. Now the positions so
// abandoned count against the caller (over HTTP and MCP alike), and once
// they pass its budget its requests are refused (429 rate_limit_exceeded
// with Retry-After, a tool error over MCP) before anything is computed,
// while another caller is served; once the bucket drains it is served
// again, and the prompt it abandoned first was kept by the prefix cache.
func TestAttackPrefillBurn(t *testing.T) {
	const prompt = 100 // positions of each attack prompt, of 128 in the context
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	var mu sync.Mutex
	prefilled := map[string]int{} // account -> prompts computed in full
	var hold string               // the account whose generations wait for a hang-up
	held := make(chan struct{}, 1)
	w, err := worker.Open(worker.Config{ModelPath: testutil.Shared(t, "models/stories260K.gguf"), Threads: 1,
		PrefilledForTests: func(ctx context.Context, account string) {
			mu.Lock()
			prefilled[account]++
			wait := account == hold
			mu.Unlock()
			if wait {
				held <- struct{}{}
				<-ctx.Done()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	b := newBilled(t, map[string]uint64{"sk-a": 1e6, "sk-b": 1e6}, func(o *Options) {
		o.Backend = w
		o.Now = clock.Now
		o.AbandonedPrefill = 2 * prompt // two long prompts a minute
	})
	attacker := b.addr["sk-a"].String()
	mu.Lock()
	hold = attacker
	mu.Unlock()
	count := func(a string) int {
		mu.Lock()
		defer mu.Unlock()
		return prefilled[a]
	}
	// tokens is an attack prompt: BOS, then tokens of its own from the
	// second on, so that no two share a cached prefix.
	tokens := func(i int) string {
		ts := []string{"1"}
		for j := 1; j < prompt; j++ {
			ts = append(ts, strconv.Itoa(3+(i*7+j*13)%500))
		}
		return "[" + strings.Join(ts, ",") + "]"
	}
	body := func(i int) string {
		return fmt.Sprintf(`{"model":"stories260K","prompt":%s,"max_tokens":20,"temperature":0,"stream":true}`, tokens(i))
	}
	// hangUp sends attack prompt i and hangs up once it is computed,
	// before its first token; it returns once the gateway counted it.
	hangUp := func(i int) {
		t.Helper()
		before := counter(b.srv.m.abandonedPrefill)
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "POST", b.ts.URL+"/v1/completions", strings.NewReader(body(i)))
		req.Header.Set("Authorization", "Bearer sk-a")
		req.Header.Set("Content-Type", "application/json")
		done := make(chan error, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				rb, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				err = fmt.Errorf("%d %s", resp.StatusCode, rb)
			}
			done <- err
		}()
		select {
		case <-held:
		case err := <-done:
			t.Fatalf("attack %d answered: %v", i, err)
		}
		cancel() // hang up
		<-done
		waitFor(t, func() bool { return counter(b.srv.m.abandonedPrefill) >= before+prompt })
	}
	// An MCP caller that cancels its call before the first token.
	cs := mcpSession(t, b.ts.URL, "sk-a")
	text := strings.Repeat("Once upon a time there was a little dog. ", 5)
	mcpPrompt := promptTokens(t, text)
	mcpHangUp := func() {
		t.Helper()
		before := counter(b.srv.m.abandonedPrefill)
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-held; cancel() }()
		if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "generate", Arguments: map[string]any{"prompt": text, "max_tokens": 20, "temperature": 0}}); err == nil {
			t.Fatal("the cancelled MCP call returned a result")
		}
		cancel()
		waitFor(t, func() bool { return counter(b.srv.m.abandonedPrefill) >= before+float64(mcpPrompt) })
	}

	// Two long prompts abandoned over HTTP reach the budget, one over MCP
	// goes past it: each was computed in full, none charged.
	hangUp(0)
	hangUp(1)
	mcpHangUp()
	if n := count(attacker); n != 3 {
		t.Fatalf("%d prompts computed, want 3", n)
	}
	if held, owed := b.meter.Held(b.addr["sk-a"]); held != 0 || owed != 0 {
		t.Fatalf("after the abandoned prompts: %d held, %d owed", held, owed)
	}
	abandoned := 2*prompt + mcpPrompt
	if got := counter(b.srv.m.abandonedPrefill); got != float64(abandoned) {
		t.Errorf("verdict_gateway_abandoned_prefill_positions_total %v, want %d", got, abandoned)
	}
	// Over its budget: refused before anything runs (were one run, it
	// would now answer), over HTTP...
	mu.Lock()
	hold = ""
	mu.Unlock()
	wantRetry := retrySeconds(time.Duration(float64(mcpPrompt) / (2 * prompt) * float64(time.Minute)))
	for i := 2; i < 5; i++ {
		resp, rb := post(t, b.ts.URL+"/v1/completions", body(i), "Authorization", "Bearer sk-a")
		if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(rb), `"rate_limit_exceeded"`) {
			t.Fatalf("attack %d: %d %s", i, resp.StatusCode, rb)
		}
		if ra := resp.Header.Get("Retry-After"); ra != strconv.Itoa(wantRetry) {
			t.Errorf("attack %d: Retry-After %q, want %d", i, ra, wantRetry)
		}
	}
	// ... and over MCP.
	if _, e := toolCall(t, cs, "generate", map[string]any{"prompt": text, "max_tokens": 20}); !strings.Contains(e, ErrAbandonedPrefill.Error()) || !strings.Contains(e, "retry in") {
		t.Errorf("an MCP call over the budget: %q", e)
	}
	if n := count(attacker); n != 3 {
		t.Errorf("%d prompts computed, want 3: the refused ones ran", n)
	}
	if got := counter(b.srv.m.prefillRefused); got != 4 {
		t.Errorf("verdict_gateway_abandoned_prefill_refusals_total %v, want 4", got)
	}
	// Another caller is served meanwhile.
	resp, rb := post(t, b.ts.URL+"/v1/completions", strings.Replace(body(0), `"stream":true`, `"stream":false`, 1), "Authorization", "Bearer sk-b")
	if resp.StatusCode != 200 {
		t.Fatalf("another caller: %d %s", resp.StatusCode, rb)
	}
	other := decodeCompletion(t, rb)
	if other.Usage.PromptTokensDetails.CachedTokens != 0 {
		t.Errorf("another account took the attacker's cached prompt: %+v", other.Usage)
	}
	// Once the bucket has drained below the budget (after Retry-After),
	// the caller is served again: its first abandoned prompt was kept by
	// the prefix cache, so that only its last position is computed again,
	// and the answer is the other caller's (the cache never changes bits).
	clock.add(time.Duration(wantRetry) * time.Second)
	resp, rb = post(t, b.ts.URL+"/v1/completions", strings.Replace(body(0), `"stream":true`, `"stream":false`, 1), "Authorization", "Bearer sk-a")
	if resp.StatusCode != 200 {
		t.Fatalf("after Retry-After: %d %s", resp.StatusCode, rb)
	}
	again := decodeCompletion(t, rb)
	if again.Usage.PromptTokensDetails.CachedTokens != prompt-1 {
		t.Errorf("the retry of an abandoned prompt took %d cached positions, want %d", again.Usage.PromptTokensDetails.CachedTokens, prompt-1)
	}
	if again.Choices[0].Text != other.Choices[0].Text || again.Usage.CompletionTokens != other.Usage.CompletionTokens {
		t.Errorf("the retry answered %q, the same prompt computed in full %q", again.Choices[0].Text, other.Choices[0].Text)
	}
	var rc struct {
		Receipt json.RawMessage `json:"receipt"`
	}
	_, rrb := getAuth(t, b.ts.URL+"/v1/receipts/"+again.Verdict.ReceiptID, "sk-a")
	if err := json.Unmarshal(rrb, &rc); err != nil {
		t.Fatal(err)
	}
	if v, err := w.Verify(context.Background(), rc.Receipt, true); err != nil || !v.Match {
		t.Errorf("the retry's receipt does not replay: %+v %v", v, err)
	}
}

func decodeCompletion(t *testing.T, b []byte) completionResponse {
	t.Helper()
	var r completionResponse
	if err := json.Unmarshal(b, &r); err != nil || len(r.Choices) != 1 || r.Usage == nil || r.Verdict == nil {
		t.Fatalf("response %s: %v", b, err)
	}
	return r
}

// counter reads a counter.
func counter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// waitFor waits until cond holds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func getAuth(t *testing.T, url, key string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}
