package worker

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/verdictnet/verdict/internal/chat"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/sampler"
	"github.com/verdictnet/verdict/internal/testutil"
)

var (
	sharedOnce sync.Once
	sharedW    *Local
	sharedErr  error
)

// testWorker returns a worker serving stories260K.gguf, shared by the tests.
func testWorker(t testing.TB) *Local {
	t.Helper()
	path := testutil.Shared(t, "models/stories260K.gguf")
	sharedOnce.Do(func() { sharedW, sharedErr = Open(Config{ModelPath: path, Threads: 1}) })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedW
}

func textReq(prompt string, maxTokens int) Request {
	return Request{Model: "stories260K", Segments: []chat.Segment{{Text: prompt, BOS: true}}, MaxTokens: maxTokens}
}

// The greedy texts of run.c (../shared/reference/greedy, 64 steps) are the
// oracle: 64 positions with a 5-token prompt is 60 new tokens.
func TestGenerateMatchesRunC(t *testing.T) {
	w := testWorker(t)
	for _, tc := range []struct{ file, prompt string }{
		{"p1.txt", "Once upon a time"},
		{"p2.txt", "Lily and Tom went to the park"},
		{"p3.txt", "The little dog"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			ref, err := os.ReadFile(filepath.Join(testutil.Shared(t, "reference/greedy"), tc.file))
			if err != nil {
				t.Fatal(err)
			}
			want, ok := strings.CutPrefix(strings.TrimSuffix(string(ref), "\n"), tc.prompt)
			if !ok {
				t.Fatalf("%s does not start with the prompt", tc.file)
			}
			req := textReq(tc.prompt, 0)
			prompt, err := w.Prompt(&req)
			if err != nil {
				t.Fatal(err)
			}
			req.MaxTokens = 64 - len(prompt) + 1
			var streamed strings.Builder
			res, err := w.Generate(context.Background(), req, func(d Delta) error {
				streamed.WriteString(d.Text)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Text != want {
				t.Errorf("text = %q\nwant   %q", res.Text, want)
			}
			if streamed.String() != res.Text {
				t.Errorf("streamed %q, result %q", streamed.String(), res.Text)
			}
			if res.FinishReason != FinishLength || res.CompletionTokens != req.MaxTokens || res.PromptTokens != len(prompt) {
				t.Errorf("finish %q, %d+%d tokens", res.FinishReason, res.PromptTokens, res.CompletionTokens)
			}
		})
	}
}

func TestGenerateReceiptReplays(t *testing.T) {
	w := testWorker(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		req  Request
	}{
		{"greedy", textReq("Once upon a time", 20)},
		{"sampled", func() Request {
			r := textReq("The little dog", 30)
			r.Sampler = sampler.Params{Temperature: 0.9, TopP: 0.9, Seed: 42}
			r.Nonce = []byte("n1")
			return r
		}()},
		{"stop string", func() Request {
			r := textReq("Once upon a time", 60)
			r.Stop = []string{"Lily."}
			return r
		}()},
		{"to the context end", textReq("Once upon a time", 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := w.Generate(ctx, tc.req, nil)
			if err != nil {
				t.Fatal(err)
			}
			r, err := receipt.Parse(res.Receipt)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Output) != res.CompletionTokens || r.Model != w.info.ID {
				t.Errorf("receipt has %d output tokens, result %d", len(r.Output), res.CompletionTokens)
			}
			stored, err := w.Receipt(ctx, res.ReceiptID)
			if err != nil || string(stored) != string(res.Receipt) {
				t.Errorf("stored receipt %q, %v", stored, err)
			}
			v, err := w.Verify(ctx, res.Receipt, true)
			if err != nil {
				t.Fatal(err)
			}
			if !v.Signature || !v.Replayed || !v.Match || v.ID != res.ReceiptID {
				t.Errorf("verification %+v", v)
			}
		})
	}
}

func TestStopString(t *testing.T) {
	w := testWorker(t)
	full, err := w.Generate(context.Background(), textReq("Once upon a time", 60), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, stop := range []string{"Lily.", "park", "d", "ball", "\n"} {
		i := strings.Index(full.Text, stop)
		if i < 0 {
			t.Fatalf("%q not in %q", stop, full.Text)
		}
		req := textReq("Once upon a time", 60)
		req.Stop = []string{"never there", stop}
		var streamed strings.Builder
		res, err := w.Generate(context.Background(), req, func(d Delta) error { streamed.WriteString(d.Text); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if res.Text != full.Text[:i] || streamed.String() != res.Text || res.FinishReason != FinishStop {
			t.Errorf("stop %q: text %q (streamed %q, %s), want %q", stop, res.Text, streamed.String(), res.FinishReason, full.Text[:i])
		}
	}
}

// Delta.Tokens counts the tokens sampled since the previous delta: over a
// generation cut by its length they add up to the completion tokens; a
// stop string leaves the tokens after its start uncounted; with logprobs
// each delta counts its entries.
func TestDeltaTokens(t *testing.T) {
	w := testWorker(t)
	for _, tc := range []struct {
		name     string
		stop     []string
		logprobs bool
	}{{"length", nil, false}, {"stop string", []string{"park"}, false}, {"logprobs", nil, true}} {
		req := textReq("Once upon a time", 40)
		req.Stop, req.Logprobs = tc.stop, tc.logprobs
		sum, deltas := 0, 0
		res, err := w.Generate(context.Background(), req, func(d Delta) error {
			deltas++
			sum += d.Tokens
			if d.Text != "" && d.Tokens == 0 {
				t.Errorf("%s: text %q for no token", tc.name, d.Text)
			}
			if tc.logprobs && d.Tokens != len(d.Logprobs) {
				t.Errorf("%s: %d tokens, %d logprobs", tc.name, d.Tokens, len(d.Logprobs))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case res.FinishReason == FinishLength && sum != res.CompletionTokens:
			t.Errorf("%s: deltas count %d tokens, %d generated", tc.name, sum, res.CompletionTokens)
		case res.FinishReason == FinishStop && (sum >= res.CompletionTokens || sum == 0):
			t.Errorf("%s: deltas count %d tokens of %d generated before the stop string", tc.name, sum, res.CompletionTokens)
		case deltas < 2:
			t.Errorf("%s: %d deltas", tc.name, deltas)
		}
		if tc.stop != nil && res.FinishReason != FinishStop {
			t.Errorf("%s: finished by %s", tc.name, res.FinishReason)
		}
	}
}

func TestDeterminism(t *testing.T) {
	w := testWorker(t)
	gen := func(seed uint64) *Result {
		r := textReq("Lily", 40)
		r.Sampler = sampler.Params{Temperature: 1, Seed: seed}
		res, err := w.Generate(context.Background(), r, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	a, b, c := gen(7), gen(7), gen(8)
	if a.Text != b.Text || a.ReceiptID != b.ReceiptID {
		t.Errorf("same seed, different results: %q / %q", a.Text, b.Text)
	}
	if a.Text == c.Text {
		t.Errorf("seeds 7 and 8 gave the same text %q", a.Text)
	}
}

func TestLogprobs(t *testing.T) {
	w := testWorker(t)
	req := textReq("Once upon a time", 8)
	req.Logprobs, req.TopLogprobs = true, 5
	res, err := w.Generate(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Logprobs) != res.CompletionTokens {
		t.Fatalf("%d logprobs for %d tokens", len(res.Logprobs), res.CompletionTokens)
	}
	var text strings.Builder
	for i, e := range res.Logprobs {
		text.WriteString(e.Text)
		if len(e.Top) != 5 {
			t.Fatalf("token %d: %d alternatives", i, len(e.Top))
		}
		// Greedy: the chosen token is the most likely one.
		if e.Top[0].Token != e.Token || e.Top[0].Logprob != e.Logprob {
			t.Errorf("token %d: chosen %+v, top %+v", i, e.Alt, e.Top[0])
		}
		if !(e.Logprob <= 0) || !(e.Logprob > -20) {
			t.Errorf("token %d: logprob %v", i, e.Logprob)
		}
		for j := 1; j < len(e.Top); j++ {
			if e.Top[j].Logprob > e.Top[j-1].Logprob {
				t.Errorf("token %d: alternatives out of order: %+v", i, e.Top)
			}
		}
	}
	if text.String() != res.Text {
		t.Errorf("token texts %q, text %q", text.String(), res.Text)
	}
}

// The top-k selection is checked against a full sort.
func TestTop(t *testing.T) {
	var lp logprobs
	lp.p = []float32{0.1, 0.3, 0.1, 0.3, 0, 0.2, float32(math.NaN()), 0.05}
	ids := make([]int, len(lp.p))
	for i := range ids {
		ids[i] = i
	}
	slices.SortStableFunc(ids, func(a, b int) int {
		pa, pb := lp.p[a], lp.p[b]
		if pa != pa {
			pa = -1
		}
		if pb != pb {
			pb = -1
		}
		switch {
		case pa > pb:
			return -1
		case pa < pb:
			return 1
		}
		return 0
	})
	for k := 0; k <= 7; k++ {
		if got := lp.top(k); !slices.Equal(got, ids[:k]) && !(k == 0 && got == nil) {
			t.Errorf("top(%d) = %v, want %v", k, got, ids[:k])
		}
	}
	if logOf(0) != MinLogprob || logOf(1) != 0 || math.Abs(logOf(0.5)-math.Log(0.5)) > 1e-6 {
		t.Errorf("logOf: %v %v %v", logOf(0), logOf(1), logOf(0.5))
	}
}

func TestStopMatcher(t *testing.T) {
	tests := []struct {
		stops  []string
		pushes []string
		want   []string // emitted per push
		hit    int      // push index that hits, -1 none
		rest   string
	}{
		{[]string{"END"}, []string{"abc", "E", "N", "x"}, []string{"abc", "", "", "ENx"}, -1, ""},
		{[]string{"END"}, []string{"abE", "ND tail"}, []string{"ab", ""}, 1, ""},
		{[]string{"END"}, []string{"abEN"}, []string{"ab"}, -1, "EN"},
		{[]string{"xy", "b"}, []string{"axyb"}, []string{"a"}, 0, ""},
		{[]string{"aaa"}, []string{"aa", "aa"}, []string{"", ""}, 1, ""},
		{nil, []string{"abc"}, []string{"abc"}, -1, ""},
	}
	for i, tc := range tests {
		m := &stopMatcher{stops: tc.stops}
		hitAt := -1
		for j, p := range tc.pushes {
			got, hit := m.push(p)
			if got != tc.want[j] {
				t.Errorf("case %d push %d: emitted %q, want %q", i, j, got, tc.want[j])
			}
			if hit {
				hitAt = j
				break
			}
		}
		if hitAt != tc.hit {
			t.Errorf("case %d: hit at %d, want %d", i, hitAt, tc.hit)
		}
		if r := m.flush(); r != tc.rest {
			t.Errorf("case %d: rest %q, want %q", i, r, tc.rest)
		}
	}
}

func TestGenerateErrors(t *testing.T) {
	w := testWorker(t)
	long := strings.Repeat("Once upon a time there was a dog. ", 40)
	tests := []struct {
		name string
		req  Request
		want error
	}{
		{"unknown model", Request{Model: "gpt-4", Segments: []chat.Segment{{Text: "a", BOS: true}}}, ErrUnknownModel},
		{"too long", textReq(long, 1), ErrContextLength},
		{"bad temperature", func() Request { r := textReq("a", 1); r.Sampler.Temperature = -1; return r }(), ErrInvalid},
		{"empty tokens", Request{Model: "stories260K"}, ErrInvalid},
		{"token out of range", Request{Model: "stories260K", Tokens: []int{1, 512}}, ErrInvalid},
		{"empty stop", func() Request { r := textReq("a", 1); r.Stop = []string{""}; return r }(), ErrInvalid},
		{"top logprobs", func() Request { r := textReq("a", 1); r.Logprobs, r.TopLogprobs = true, 21; return r }(), ErrInvalid},
	}
	for _, tc := range tests {
		if _, err := w.Generate(context.Background(), tc.req, nil); !errors.Is(err, tc.want) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := w.Receipt(context.Background(), strings.Repeat("0", 64)); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown receipt: %v", err)
	}
}

func TestVerifyTampered(t *testing.T) {
	w := testWorker(t)
	res, err := w.Generate(context.Background(), textReq("The little dog", 5), nil)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(res.Receipt), `"seed":"0"`, `"seed":"1"`, 1)
	if bad == string(res.Receipt) {
		t.Fatal("seed field not found")
	}
	v, err := w.Verify(context.Background(), []byte(bad), true)
	if err != nil {
		t.Fatal(err)
	}
	if v.Signature || v.Match || v.Problem == "" {
		t.Errorf("tampered receipt verified: %+v", v)
	}
	if _, err := w.Verify(context.Background(), []byte("{"), false); !errors.Is(err, ErrInvalid) {
		t.Errorf("garbage: %v", err)
	}
}

func TestMemStoreEvicts(t *testing.T) {
	s := NewMemStore(2)
	for _, id := range []string{"a", "b", "a", "c"} {
		if err := s.Put(id, []byte(id)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Get("a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a not evicted: %v", err)
	}
	for _, id := range []string{"b", "c"} {
		if d, err := s.Get(id); err != nil || string(d) != id {
			t.Errorf("Get(%s) = %q, %v", id, d, err)
		}
	}
}
