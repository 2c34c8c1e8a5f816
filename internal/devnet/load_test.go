package devnet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/scheduler"
	"github.com/verdictnet/verdict/internal/worker"
)

// TestLoad sends a bounded burst: 100 chat completions from 8 concurrent
// clients (each with its own seed, so 100 distinct receipts), and repeats
// 10 of them with the same Idempotency-Key. No request is lost, every
// receipt becomes final on the ledger, the user pays exactly the fees of
// the 100 receipts plus one transaction fee per escrow (the repeats cost
// nothing), and the latency percentiles are logged.
func TestLoad(t *testing.T) {
	d := start(t, Options{})
	user, _ := ledger.AddressOf(d.User.Public)
	before := balance(t, d, user)
	const n, conc = 100, 8
	r := burst(t, d, "verdict-tiny", "load-", n, conc, 16)
	if r.wall > 20*time.Second {
		t.Errorf("the burst took %v, more than 20 s", r.wall)
	}
	// Retries with the same key replay the first answer and charge nothing.
	for i := 0; i < 10; i++ {
		code, b := post(t, d, d.APIKey, "/v1/chat/completions", burstBody("verdict-tiny", i, 16), "Idempotency-Key", fmt.Sprint("load-", i))
		var cr chatResponse
		json.Unmarshal(b, &cr)
		if code != 200 || cr.Verdict.ReceiptID != r.ids[i] {
			t.Fatalf("retry %d: status %d, receipt %s, want %s", i, code, cr.Verdict.ReceiptID, r.ids[i])
		}
	}
	ids := map[string]bool{}
	var fees uint64
	for i, id := range r.ids {
		ids[id] = true
		fees += uint64(r.tokens[i])
	}
	t.Log(r)
	tf := time.Now()
	for id := range ids {
		waitStatus(t, d, id, 60*time.Second, ledger.StatusFinal)
	}
	t.Logf("all %d receipts final %v after the burst; worst audit %d blocks from selection to resolution (window %d)", n, time.Since(tf).Round(time.Millisecond),
		d.Chain.Stats().WorstAuditBlocks, DevParams().OpeningWindow)
	if after := balance(t, d, user); before-after != fees+n {
		t.Fatalf("user paid %d, want %d (token fees %d + %d escrow transaction fees)", before-after, fees+n, fees, n)
	}
	if p := d.Chain.PendingCount(); p != 0 {
		t.Fatalf("%d receipts left in the outbox", p)
	}
	// An honest worker answers every audit in time and passes every replay.
	var st ledger.Stake
	worker.QueryJSON(context.Background(), d.Client, "stake/"+d.Chain.Address().String(), &st)
	if st.Slashed != 0 || st.Final != n {
		t.Fatalf("honest worker's record %+v: want %d final, never slashed", st, n)
	}
	if v := d.Verifier.Stats(); v.Mismatches != 0 || v.Replayed == 0 {
		t.Fatalf("verifier %+v", v)
	}
	// The services' metrics are on the gateway's /metrics.
	resp, err := http.Get(d.GatewayURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	bs := d.Worker.BatchStats()
	if bs.PeakBatch < 2 {
		t.Errorf("8 concurrent clients never shared a batch step: %+v", bs)
	}
	for _, want := range []string{"verdict_worker_receipts_published_total 100", "verdict_worker_outbox_pending 0", "verdict_verifier_replays_total ",
		// The continuous batch ran several sequences at once, and let go of them all.
		fmt.Sprintf("verdict_worker_batch_size_peak %d", bs.PeakBatch), fmt.Sprintf("verdict_worker_batch_size_max %d", scheduler.DefaultMaxBatch),
		"verdict_worker_queue_length 0", "verdict_worker_batch_running 0", "verdict_worker_kv_cache_used_bytes 0",
		fmt.Sprintf(`verdict_worker_batch_tokens_total{kind="completion"} %d`, bs.OutputTokens), "verdict_worker_decode_tokens_per_second "} {
		if !strings.Contains(string(mb), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// burstResult is what a burst of chat completions gave.
type burstResult struct {
	n, conc int
	ids     []string // each request's receipt id
	tokens  []int    // each request's prompt and completion tokens
	output  int      // completion tokens, all requests
	lats    []time.Duration
	wall    time.Duration
}

func (r burstResult) String() string {
	lats := slices.Sorted(slices.Values(r.lats))
	pct := func(p int) time.Duration { return lats[(len(lats)-1)*p/100].Round(time.Millisecond) }
	return fmt.Sprintf("%d requests, %d concurrent, in %v (%.1f completion tokens/s): latency p50 %v p90 %v p99 %v max %v", r.n, r.conc, r.wall.Round(time.Millisecond),
		float64(r.output)/r.wall.Seconds(), pct(50), pct(90), pct(99), lats[len(lats)-1].Round(time.Millisecond))
}

// median is the median latency.
func (r burstResult) median() time.Duration {
	lats := slices.Sorted(slices.Values(r.lats))
	return lats[(len(lats)-1)/2]
}

// burstBody is request i of a burst: a chat completion of up to maxTokens
// tokens, seeded by i.
func burstBody(model string, i, maxTokens int) string {
	return fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":%d,"temperature":0.8,"seed":%d}`, model, maxTokens, i)
}

// burst sends n chat completions (burstBody) from conc concurrent clients,
// request i with the Idempotency-Key keyPrefix+i, and fails tb unless
// every one is answered 200 with its own receipt.
func burst(tb testing.TB, d *Devnet, model, keyPrefix string, n, conc, maxTokens int) burstResult {
	tb.Helper()
	r := burstResult{n: n, conc: conc, ids: make([]string, n), tokens: make([]int, n), lats: make([]time.Duration, n)}
	output := make([]int, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	jobs := make(chan int)
	t0 := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				s := time.Now()
				code, b := post(tb, d, d.APIKey, "/v1/chat/completions", burstBody(model, i, maxTokens), "Idempotency-Key", fmt.Sprint(keyPrefix, i))
				if code != 200 {
					errs <- fmt.Errorf("request %d: status %d: %s", i, code, b)
					continue
				}
				var cr chatResponse
				if err := json.Unmarshal(b, &cr); err != nil {
					errs <- err
					continue
				}
				r.ids[i], r.lats[i] = cr.Verdict.ReceiptID, time.Since(s)
				r.tokens[i], output[i] = cr.Usage.PromptTokens+cr.Usage.CompletionTokens, cr.Usage.CompletionTokens
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	r.wall = time.Since(t0)
	close(errs)
	for err := range errs {
		tb.Error(err)
	}
	if tb.Failed() {
		tb.FailNow()
	}
	distinct := map[string]bool{}
	for i, id := range r.ids {
		distinct[id] = true
		r.output += output[i]
	}
	if len(distinct) != n {
		tb.Fatalf("%d distinct receipts for %d requests", len(distinct), n)
	}
	return r
}

// TestBadInput sends requests that must fail: each gets its OpenAI-style
// status and error code, and none changes the ledger (the caller's and
// the worker's accounts keep their balances and nonces).
func TestBadInput(t *testing.T) {
	poor, err := keys.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	d := start(t, Options{APIKeys: map[string]*keys.Key{"vk-poor": poor}})
	poorAddr, _ := ledger.AddressOf(poor.Public)
	user, _ := ledger.AddressOf(d.User.Public)
	ctx := context.Background()
	snapshot := func() string {
		var parts []string
		for _, a := range []ledger.Address{user, poorAddr, d.Chain.Address()} {
			acct, err := d.Client.Account(ctx, a)
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, fmt.Sprintf("%d/%d", acct.Balance, acct.Nonce))
		}
		return strings.Join(parts, " ")
	}
	before := snapshot()
	long := strings.Repeat("Once upon a time there was a little dog. ", 400)
	for _, c := range []struct {
		name, key, body string
		status          int
		code            string
	}{
		{"malformed JSON", d.APIKey, `{"model":"verdict-tiny","messages":[`, http.StatusBadRequest, ""},
		{"wrong type", d.APIKey, `{"model":"verdict-tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":"ten"}`, http.StatusBadRequest, ""},
		{"oversized prompt", d.APIKey, `{"model":"verdict-tiny","messages":[{"role":"user","content":"` + long + `"}]}`, http.StatusBadRequest, "context_length_exceeded"},
		{"unknown model", d.APIKey, `{"model":"gpt-17","messages":[{"role":"user","content":"hi"}]}`, http.StatusNotFound, "model_not_found"},
		{"bad key", "vk-wrong", `{"model":"verdict-tiny","messages":[{"role":"user","content":"hi"}]}`, http.StatusUnauthorized, "invalid_api_key"},
		{"no key", "", `{"model":"verdict-tiny","messages":[{"role":"user","content":"hi"}]}`, http.StatusUnauthorized, "invalid_api_key"},
		{"empty balance", "vk-poor", `{"model":"verdict-tiny","messages":[{"role":"user","content":"hi"}]}`, http.StatusTooManyRequests, "insufficient_quota"},
	} {
		code, b := post(t, d, c.key, "/v1/chat/completions", c.body)
		var e struct {
			Error struct {
				Code *string `json:"code"`
				Type string  `json:"type"`
			} `json:"error"`
		}
		if err := json.Unmarshal(b, &e); err != nil || e.Error.Type == "" {
			t.Errorf("%s: not an OpenAI error: %s", c.name, b)
			continue
		}
		if code != c.status || (c.code != "" && (e.Error.Code == nil || *e.Error.Code != c.code)) {
			t.Errorf("%s: status %d %s, want %d %s", c.name, code, b, c.status, c.code)
		}
	}
	// Give any stray transaction time to land.
	h, _ := d.Client.Height(ctx)
	for h2 := h; h2 < h+3; h2, _ = d.Client.Height(ctx) {
		time.Sleep(50 * time.Millisecond)
	}
	if after := snapshot(); after != before {
		t.Fatalf("the ledger changed: %s -> %s", before, after)
	}
	if p := d.Chain.PendingCount(); p != 0 {
		t.Fatalf("%d receipts in the outbox", p)
	}
	var st ledger.Stake
	worker.QueryJSON(ctx, d.Client, "stake/"+d.Chain.Address().String(), &st)
	if st.Final != 0 {
		t.Fatalf("receipts paid out: %+v", st)
	}
}
