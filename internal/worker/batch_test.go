package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/sampler"
	"github.com/verdictnet/verdict/internal/testutil"
)

// batchCase is one request of TestBatchBitExact; cancelAfter > 0 hangs up
// after that many streamed deltas.
type batchCase struct {
	req         Request
	cancelAfter int
}

type batchOutcome struct {
	res     *Result
	err     error
	streams string
}

func (c batchCase) run(w *Local) batchOutcome {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var o batchOutcome
	var sb strings.Builder
	n := 0
	o.res, o.err = w.Generate(ctx, c.req, func(d Delta) error {
		sb.WriteString(d.Text)
		n++
		if n == c.cancelAfter {
			cancel()
		}
		return nil
	})
	o.streams = sb.String()
	return o
}

var words = strings.Fields("Once upon a time there was a little dog named Tom who liked to play in the park with Lily and the big red ball")

// batchCases returns n requests: prompts of 1 to 60 words, greedy and
// seeded sampling (temperature, top-p, top-k), logprobs, stop strings that
// end some early, max_tokens from 1 up, and some callers who hang up.
func batchCases(n int, r *rand.Rand) []batchCase {
	var cs []batchCase
	for i := range n {
		var p []string
		for range 1 + r.IntN(60) {
			p = append(p, words[r.IntN(len(words))])
		}
		req := textReq(strings.Join(p, " "), 1+r.IntN(80))
		req.Nonce = []byte(fmt.Sprint("n", i))
		switch i % 4 {
		case 1:
			req.Sampler = sampler.Params{Temperature: 0.9, Seed: uint64(i)}
		case 2:
			req.Sampler = sampler.Params{Temperature: 1, TopP: 0.9, Seed: uint64(100 + i)}
			req.Logprobs, req.TopLogprobs = true, 3
		case 3:
			req.Sampler = sampler.Params{Temperature: 0.8, TopK: 20, Seed: uint64(7 * i)}
		}
		c := batchCase{req: req}
		switch i % 5 {
		case 1:
			c.req.Stop = []string{"the", "."}
		case 3:
			c.cancelAfter = 3
		}
		cs = append(cs, c)
	}
	return cs
}

// TestBatchBitExact runs N requests at once through one worker, arriving in
// a shuffled order, and compares every answer with the same request run
// alone: text, finish reason, token counts, logprobs and the signed receipt
// byte for byte (tokens, logits root, trace root). A verifier replaying each
// receipt alone accepts it.
//
// With the binary16 key/value cache (engine.SpecKV16) the same holds, for
// 16 requests.
//
// With draft tokens (Config.Speculate, prompt lookup decoding) the same
// holds, for 16 requests, and some drafts are taken.
//
// With a key/value budget that holds a few of them (pages of 8 positions),
// so that generations take each other's room and compute their caches
// again, the same holds, for 16 requests, and some were preempted.
func TestBatchBitExact(t *testing.T) {
	testBatchBitExact(t, Config{}, []int{1, 4, 16})
	t.Run("kv=f16", func(t *testing.T) { testBatchBitExact(t, Config{KV: engine.KVF16}, []int{16}) })
	t.Run("speculate", func(t *testing.T) { testBatchBitExact(t, Config{Speculate: 4}, []int{16}) })
	// 200 positions of 1280 bytes: the longest request and a few pages.
	t.Run("preempt", func(t *testing.T) { testBatchBitExact(t, Config{KVPage: 8, KVBudget: 200 * 1280}, []int{16}) })
}

// testBatchBitExact is TestBatchBitExact for a worker with batch's
// KV, Speculate, KVPage and KVBudget, for N in ns.
func testBatchBitExact(t *testing.T, batch Config, ns []int) {
	kv, speculate := batch.KV, batch.Speculate
	path := testutil.Shared(t, "models/stories260K.gguf")
	key, err := keys.GenerateKey(rand.NewChaCha8([32]byte{15}))
	if err != nil {
		t.Fatal(err)
	}
	alone, err := Open(Config{ModelPath: path, Name: "stories260K", Threads: 1, Key: key, MaxConcurrent: 1, KV: kv, PrefixCache: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer alone.Close()
	// A batch smaller than N, a small prefill chunk: requests queue, and
	// prompts are fed over several steps beside the others' decoding.
	w, err := Open(Config{ModelPath: path, Name: "stories260K", Threads: 2, Key: key, MaxConcurrent: 6, ChunkTokens: 16, KV: kv, Speculate: speculate, KVPage: batch.KVPage, KVBudget: batch.KVBudget})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.info.Spec != kv.Spec() {
		t.Fatalf("worker serves spec %q, want %q", w.info.Spec, kv.Spec())
	}
	for _, n := range ns {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(n), 15))
			cs := batchCases(n, r)
			want := make([]batchOutcome, n)
			for i, c := range cs {
				want[i] = c.run(alone)
			}
			got := runShuffled(w, cs, r)
			for i := range cs {
				if err := sameOutcome(got[i], want[i]); err != nil {
					t.Errorf("request %d: %v", i, err)
					continue
				}
				if got[i].err != nil {
					continue
				}
				v, err := w.Verify(context.Background(), got[i].res.Receipt, true)
				if err != nil || !v.Match {
					t.Errorf("request %d: replay %+v, %v", i, v, err)
				}
			}
			if n >= 16 && w.BatchStats().PeakBatch < 2 {
				t.Errorf("never more than one sequence in a step: %+v", w.BatchStats())
			}
			if st := w.BatchStats(); speculate > 0 && st.Accepted == 0 {
				t.Errorf("no draft token taken: %d fed", st.Drafted)
			}
			if st := w.BatchStats(); batch.KVBudget > 0 {
				if st.Preempted == 0 {
					t.Errorf("no generation preempted: %+v", st)
				}
				t.Logf("%d preemptions, %d tokens computed again", st.Preempted, st.Recomputed)
			}
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
				st := w.BatchStats()
				if st.Running == 0 && st.KVUsed == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("slots not freed: %+v", st)
				}
			}
		})
	}
}

// TestPrefixCacheReceipts: conversations through a worker whose prefix
// cache is on (the default) — a shared opening, then follow-up turns that
// send an earlier turn's prompt and answer again with a few words more,
// arriving together — give every text, logprob and receipt, byte for byte,
// of a worker without one; a verifier replaying each receipt alone
// accepts it; and the follow-ups took cached prefixes, in cache pages
// of 8 positions shared with the cache rather than copied.
func TestPrefixCacheReceipts(t *testing.T) {
	path := testutil.Shared(t, "models/stories260K.gguf")
	key, err := keys.GenerateKey(rand.NewChaCha8([32]byte{16}))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := Open(Config{ModelPath: path, Name: "stories260K", Threads: 1, Key: key, MaxConcurrent: 1, PrefixCache: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	w, err := Open(Config{ModelPath: path, Name: "stories260K", Threads: 2, Key: key, MaxConcurrent: 6, ChunkTokens: 16, KVPage: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r := rand.New(rand.NewPCG(4, 16))
	opening := "Once upon a time there was a little dog named Tom who liked to play in the park."
	turn := func(prompts []string) []batchCase {
		var cs []batchCase
		for i, p := range prompts {
			req := textReq(p, 8+r.IntN(24))
			req.Nonce = []byte(fmt.Sprint("turn", len(p), i))
			if i%2 == 1 {
				req.Sampler = sampler.Params{Temperature: 0.8, Seed: uint64(i)}
				req.Logprobs, req.TopLogprobs = true, 2
			}
			if i%3 == 2 {
				req.Stop = []string{"."} // a stop string ends it: still cached
			}
			cs = append(cs, batchCase{req: req})
		}
		return cs
	}
	// runTurn runs cs through w at once (held: admitted together, all
	// in the batch's first step) and checks each answer against plain's.
	runTurn := func(cs []batchCase, held bool) []batchOutcome {
		want := make([]batchOutcome, len(cs))
		for i, c := range cs {
			want[i] = c.run(plain)
		}
		var got []batchOutcome
		if held {
			release := w.sched.HoldSteps()
			ran := make(chan struct{})
			go func() { got = runShuffled(w, cs, r); close(ran) }()
			for deadline := time.Now().Add(10 * time.Second); w.sched.Stats().Ready != len(cs); time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					release()
					<-ran
					t.Fatalf("the requests never met: %+v", w.sched.Stats())
				}
			}
			release()
			<-ran
		} else {
			got = runShuffled(w, cs, r)
		}
		for i := range cs {
			if err := sameOutcome(got[i], want[i]); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			v, err := plain.Verify(context.Background(), got[i].res.Receipt, true)
			if err != nil || !v.Match {
				t.Fatalf("request %d: replay %+v, %v", i, v, err)
			}
		}
		return got
	}
	// A cold burst: 6 requests whose prompts start with a story of 60
	// words that no cache holds, at once: one computes it, the others
	// wait for its pages and share them (their traces taken from its).
	story := ""
	for range 60 {
		story += words[r.IntN(len(words))] + " "
	}
	burst := make([]string, 6)
	for i := range burst {
		burst[i] = story + words[r.IntN(len(words))] + " " + words[r.IntN(len(words))]
	}
	before := w.BatchStats()
	runTurn(turn(burst), true)
	if st := w.BatchStats(); st.PrefixJoinedTokens == before.PrefixJoinedTokens {
		t.Errorf("the cold burst shared no running request's pages: %+v", st)
	}
	prompts := make([]string, 6)
	for i := range prompts {
		prompts[i] = opening + " " + words[r.IntN(len(words))] + " " + words[r.IntN(len(words))]
	}
	runTurn(turn(prompts[:1]), false) // the opening, cached
	first := runTurn(turn(prompts), false)
	for i := range prompts {
		prompts[i] += first[i].res.Text + " " + words[r.IntN(len(words))]
	}
	before = w.BatchStats()
	runTurn(turn(prompts), false)
	st := w.BatchStats()
	if st.PrefixHits < before.PrefixHits+3 || st.PrefixTokens == before.PrefixTokens {
		t.Errorf("follow-ups took %d cached prefixes (%d tokens), want at least 3", st.PrefixHits-before.PrefixHits, st.PrefixTokens-before.PrefixTokens)
	}
	// Pages of 8 positions: the follow-ups share most of what they take.
	if st.PrefixSharedTokens == before.PrefixSharedTokens {
		t.Errorf("follow-ups shared no cached page: %+v", st)
	}
	t.Logf("%d requests took a cached prefix, %d prompt tokens not computed (%d of them from running requests' pages); %d caches kept (%d bytes of %d)", st.PrefixHits, st.PrefixTokens, st.PrefixJoinedTokens, st.PrefixEntries, st.PrefixBytes, st.PrefixCap)
}

// runShuffled runs every case through w at once, each on its own
// goroutine, started in a shuffled order a few hundred microseconds apart.
func runShuffled(w *Local, cs []batchCase, r *rand.Rand) []batchOutcome {
	got := make([]batchOutcome, len(cs))
	var wg sync.WaitGroup
	for _, i := range r.Perm(len(cs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = cs[i].run(w)
		}()
		time.Sleep(time.Duration(r.IntN(300)) * time.Microsecond)
	}
	wg.Wait()
	return got
}

func sameOutcome(got, want batchOutcome) error {
	if errors.Is(want.err, context.Canceled) {
		if !errors.Is(got.err, context.Canceled) {
			return fmt.Errorf("error %v, alone %v", got.err, want.err)
		}
		if got.streams != want.streams {
			return fmt.Errorf("streamed %q before hanging up, alone %q", got.streams, want.streams)
		}
		return nil
	}
	if got.err != nil || want.err != nil {
		return fmt.Errorf("error %v, alone %v", got.err, want.err)
	}
	g, a := got.res, want.res
	switch {
	case g.Text != a.Text || got.streams != want.streams:
		return fmt.Errorf("text %q, alone %q", g.Text, a.Text)
	case g.FinishReason != a.FinishReason || g.PromptTokens != a.PromptTokens || g.CompletionTokens != a.CompletionTokens:
		return fmt.Errorf("finish %s %d+%d, alone %s %d+%d", g.FinishReason, g.PromptTokens, g.CompletionTokens, a.FinishReason, a.PromptTokens, a.CompletionTokens)
	case !reflect.DeepEqual(g.Logprobs, a.Logprobs):
		return fmt.Errorf("logprobs differ")
	case g.ReceiptID != a.ReceiptID || !bytes.Equal(g.Receipt, a.Receipt):
		rg, _ := receipt.Parse(g.Receipt)
		ra, _ := receipt.Parse(a.Receipt)
		if rg != nil && ra != nil {
			return fmt.Errorf("receipt %s (logits %s trace %s), alone %s (logits %s trace %s)", g.ReceiptID, rg.LogitsRoot, rg.TraceRoot, a.ReceiptID, ra.LogitsRoot, ra.TraceRoot)
		}
		return fmt.Errorf("receipt %s, alone %s", g.ReceiptID, a.ReceiptID)
	}
	return nil
}

// A request that could never fit in the KV cache budget is refused with
// ErrContextLength (a 400 at the gateway) naming the budget; one that fits
// runs.
func TestKVBudget(t *testing.T) {
	// stories260K: 5 layers, keys of 32 floats: 1280 bytes a position; 40
	// positions.
	w, err := Open(Config{ModelPath: testutil.Shared(t, "models/stories260K.gguf"), Threads: 1, KVBudget: 51200})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	st := w.BatchStats()
	if st.KVBudget != 51200 || st.MaxBatch != 16 {
		t.Errorf("stats %+v", st)
	}
	long := textReq(strings.Repeat("Once upon a time ", 12), 10)
	_, err = w.Generate(context.Background(), long, nil)
	if !errors.Is(err, ErrContextLength) || !strings.Contains(err.Error(), "budget is 51200 bytes (40 positions)") {
		t.Errorf("prompt over the budget: %v", err)
	}
	if _, err := w.Generate(context.Background(), textReq("Once upon a time", 0), nil); !errors.Is(err, ErrContextLength) || !strings.Contains(err.Error(), "ask for fewer tokens") {
		t.Errorf("the whole context over the budget: %v", err)
	}
	if _, err := w.Generate(context.Background(), textReq("Once upon a time", 10), nil); err != nil {
		t.Errorf("a request that fits: %v", err)
	}
}

// With the binary16 cache a position takes half the bytes: the same budget
// holds twice the positions, and the request TestKVBudget refuses runs.
func TestKVBudgetKV16(t *testing.T) {
	// stories260K: 5 layers, keys of 32 binary16 values: 640 bytes a
	// position; 80 positions.
	w, err := Open(Config{ModelPath: testutil.Shared(t, "models/stories260K.gguf"), Name: "stories260K", Threads: 1, KVBudget: 51200, KV: engine.KVF16})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	long := textReq(strings.Repeat("Once upon a time ", 12), 10)
	if _, err := w.Generate(context.Background(), long, nil); err != nil {
		t.Errorf("a request of about 60 positions in 80: %v", err)
	}
	longer := textReq(strings.Repeat("Once upon a time ", 24), 10)
	if _, err := w.Generate(context.Background(), longer, nil); !errors.Is(err, ErrContextLength) || !strings.Contains(err.Error(), "budget is 51200 bytes (80 positions)") {
		t.Errorf("prompt over the budget: %v", err)
	}
}
