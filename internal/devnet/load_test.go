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
	type result struct {
		id     string
		tokens int
		lat    time.Duration
	}
	results := make([]result, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	jobs := make(chan int)
	t0 := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				body := fmt.Sprintf(`{"model":"verdict-tiny","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":16,"temperature":0.8,"seed":%d}`, i)
				s := time.Now()
				code, b := post(t, d, d.APIKey, "/v1/chat/completions", body, "Idempotency-Key", fmt.Sprint("load-", i))
				if code != 200 {
					errs <- fmt.Errorf("request %d: status %d: %s", i, code, b)
					continue
				}
				var r chatResponse
				if err := json.Unmarshal(b, &r); err != nil {
					errs <- err
					continue
				}
				results[i] = result{r.Verdict.ReceiptID, r.Usage.PromptTokens + r.Usage.CompletionTokens, time.Since(s)}
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	burst := time.Since(t0)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	if burst > 20*time.Second {
		t.Errorf("the burst took %v, more than 20 s", burst)
	}
	// Retries with the same key replay the first answer and charge nothing.
	for i := 0; i < 10; i++ {
		body := fmt.Sprintf(`{"model":"verdict-tiny","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":16,"temperature":0.8,"seed":%d}`, i)
		code, b := post(t, d, d.APIKey, "/v1/chat/completions", body, "Idempotency-Key", fmt.Sprint("load-", i))
		var r chatResponse
		json.Unmarshal(b, &r)
		if code != 200 || r.Verdict.ReceiptID != results[i].id {
			t.Fatalf("retry %d: status %d, receipt %s, want %s", i, code, r.Verdict.ReceiptID, results[i].id)
		}
	}
	ids := map[string]bool{}
	var lats []time.Duration
	var fees uint64
	for _, r := range results {
		ids[r.id] = true
		lats = append(lats, r.lat)
		fees += uint64(r.tokens)
	}
	if len(ids) != n {
		t.Fatalf("%d distinct receipts for %d requests", len(ids), n)
	}
	slices.Sort(lats)
	pct := func(p int) time.Duration { return lats[(len(lats)-1)*p/100] }
	t.Logf("%d requests, %d concurrent, in %v: latency p50 %v p90 %v p99 %v max %v", n, conc, burst.Round(time.Millisecond),
		pct(50).Round(time.Millisecond), pct(90).Round(time.Millisecond), pct(99).Round(time.Millisecond), lats[n-1].Round(time.Millisecond))
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
	if st := d.Worker.BatchStats(); st.PeakBatch < 2 {
		t.Errorf("8 concurrent clients never shared a batch step: %+v", st)
	}
	for _, want := range []string{"verdict_worker_receipts_published_total 100", "verdict_worker_outbox_pending 0", "verdict_verifier_replays_total ",
		// The continuous batch ran several sequences at once, and let go of them all.
		"verdict_worker_queue_length 0", "verdict_worker_batch_running 0", "verdict_worker_kv_cache_used_bytes 0"} {
		if !strings.Contains(string(mb), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
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
