package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/testutil"
)

func TestBenchCommand(t *testing.T) {
	m := testutil.Shared(t, "models/stories260K.gguf")
	var out, errb bytes.Buffer
	args := []string{"--model", m, "--threads", "2", "--prompt-tokens", "16", "--decode-tokens", "8", "--json"}
	if err := cmdBench(context.Background(), args, &out, &errb); err != nil {
		t.Fatalf("bench: %v (%s)", err, errb.String())
	}
	var r benchResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("bench --json printed %q: %v", out.String(), err)
	}
	if r.Threads != 2 || r.PromptTokens != 16 || r.DecodeTokens != 8 || !(r.PrefillTokS > 0) || !(r.DecodeTokS > 0) || r.WeightBytes <= 0 ||
		!(r.LoadSecs > 0) || !(r.WarmupSecs > 0) {
		t.Errorf("bench result %+v", r)
	}
	// The greedy decode is deterministic: the scalar kernels reach the same
	// last token.
	out.Reset()
	if err := cmdBench(context.Background(), append(args, "--scalar"), &out, &errb); err != nil {
		t.Fatal(err)
	}
	var s benchResult
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	if s.LastToken != r.LastToken || s.FastPath != "" {
		t.Errorf("scalar run: last token %d (fast path %q), fast run %d", s.LastToken, s.FastPath, r.LastToken)
	}
	out.Reset()
	if err := cmdBench(context.Background(), []string{"--model", m, "--prompt-tokens", "100", "--decode-tokens", "20"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "prefill  100 tokens") || !strings.Contains(out.String(), "load     ") || !strings.Contains(out.String(), "decode   20 tokens") {
		t.Errorf("text output:\n%s", out.String())
	}
	// --decode-at 100: the timed decode starts at position 101 (after 100
	// untimed tokens) and reaches a last token of its own.
	out.Reset()
	if err := cmdBench(context.Background(), []string{"--model", m, "--prompt-tokens", "0", "--decode-tokens", "8", "--decode-at", "100", "--json"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	var at benchResult
	if err := json.Unmarshal(out.Bytes(), &at); err != nil {
		t.Fatal(err)
	}
	if at.DecodeAt != 100 || !(at.DecodeTokS > 0) || at.KVCacheBytes != r.KVCacheBytes/16*109 {
		t.Errorf("--decode-at 100: %+v (KV cache bytes of the 16-position run %d)", at, r.KVCacheBytes)
	}
	for _, bad := range [][]string{{}, {"--model", m, "--decode-tokens", "-1"}, {"--model", m, "--prompt-tokens", "100000"}, {"--model", m, "extra"},
		{"--model", m, "--decode-at", "-1"}, {"--model", m, "--decode-at", "120", "--decode-tokens", "8"}} {
		if err := cmdBench(context.Background(), bad, &out, &errb); err == nil {
			t.Errorf("bench %q: no error", bad)
		}
	}
}

// The serving benchmark runs N streams through the continuous batch; every
// answer equals the same stream's run alone.
func TestBenchStreams(t *testing.T) {
	m := testutil.Shared(t, "models/stories260K.gguf")
	var out, errb bytes.Buffer
	args := []string{"--model", m, "--threads", "2", "--streams", "1,3,8", "--stream-prompt", "5", "--decode-tokens", "12", "--json"}
	if err := cmdBench(context.Background(), args, &out, &errb); err != nil {
		t.Fatalf("bench: %v (%s)", err, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d result lines:\n%s", len(lines), out.String())
	}
	for i, n := range []int{1, 3, 8} {
		var r streamsResult
		if err := json.Unmarshal([]byte(lines[i]), &r); err != nil {
			t.Fatal(err)
		}
		if r.Streams != n || r.Differ != 0 || r.OutputTokens == 0 || !(r.AggTokS > 0) || r.PromptTokens != 6 || r.PeakBatch < 1 ||
			r.Steps < 12 || !(r.ForwardMs > 0) || !(r.GapMs > 0) || r.DecodeTokS < 0 || (n == 1 && !(r.DecodeTokS > 0 && r.DecodeSecs > 0)) {
			// (On this tiny model streams started one after another
			// may finish before the last one starts: no span where
			// all decode, a decode rate of 0.)
			t.Errorf("streams %d: %+v", n, r)
		}
		if r.SharedPrefix != 0 || r.PrefixCacheTokens != 0 {
			t.Errorf("streams %d: prefix cache off by default, yet %+v", n, r)
		}
	}
	// A shared system prompt of 20 tokens with the prefix cache on: every
	// timed stream takes at least those from the cache, and every answer
	// still equals its run alone.
	out.Reset()
	args = []string{"--model", m, "--threads", "2", "--streams", "4", "--stream-prompt", "5", "--shared-prefix", "20", "--prefix-cache-mib", "0", "--decode-tokens", "6", "--json"}
	if err := cmdBench(context.Background(), args, &out, &errb); err != nil {
		t.Fatalf("bench: %v (%s)", err, errb.String())
	}
	var r streamsResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Differ != 0 || r.PromptTokens != 26 || r.SharedPrefix != 20 || r.PrefixCacheTokens < 4*20 {
		t.Errorf("--shared-prefix 20 --prefix-cache-mib 0: %+v", r)
	}
	// A cold burst, twice: each round's shared prompt is new, and every
	// answer equals its run alone (the scheduler's and the worker's tests
	// check that streams take the pages of the one computing it: this
	// model's context is shorter than a page).
	out.Reset()
	args = []string{"--model", m, "--threads", "2", "--streams", "4,4", "--stream-prompt", "5", "--shared-prefix", "60", "--cold-prefix", "--prefix-cache-mib", "0", "--decode-tokens", "6", "--json"}
	if err := cmdBench(context.Background(), args, &out, &errb); err != nil {
		t.Fatalf("bench: %v (%s)", err, errb.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		r = streamsResult{}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if r.Differ != 0 || !r.ColdPrefix || r.SharedPrefix != 60 || r.PrefixCacheTokens >= 4*60 {
			t.Errorf("--shared-prefix 60 --cold-prefix: %+v", r)
		}
	}
	for _, bad := range [][]string{{"--model", m, "--streams", "0"}, {"--model", m, "--streams", "1,x"}, {"--model", m, "--streams", "2", "--decode-tokens", "0"},
		{"--model", m, "--streams", "2", "--shared-prefix", "-1"}, {"--model", m, "--streams", "2", "--cold-prefix"}} {
		if err := cmdBench(context.Background(), bad, &out, &errb); err == nil {
			t.Errorf("bench %q: no error", bad)
		}
	}
}

// decodeRate counts the tokens that arrive while every stream decodes:
// after the latest first delta, up to the earliest last one.
func TestDecodeRate(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms ...int) []time.Time {
		var ts []time.Time
		for _, m := range ms {
			ts = append(ts, t0.Add(time.Duration(m)*time.Millisecond))
		}
		return ts
	}
	for _, tc := range []struct {
		name       string
		runs       []streamRun
		rate, secs float64
	}{
		{"one stream", []streamRun{{times: at(10, 20, 30, 40), counts: []int{1, 1, 1, 1}}}, 3 / 0.03, 0.03},
		// From 20 (b's first) to 40 (b's last): a's 30 and 40 (1+2), b's 30 and 40 (1+1).
		{"two", []streamRun{{times: at(10, 20, 30, 40, 50), counts: []int{1, 1, 1, 2, 1}}, {times: at(20, 30, 40), counts: []int{1, 1, 1}}}, 5 / 0.02, 0.02},
		{"no overlap", []streamRun{{times: at(10, 20), counts: []int{1, 1}}, {times: at(30, 40), counts: []int{1, 1}}}, 0, 0},
		{"a stream without deltas", []streamRun{{times: at(10, 20), counts: []int{1, 1}}, {}}, 0, 0},
		{"none", nil, 0, 0},
	} {
		rate, secs := decodeRate(tc.runs)
		if math.Abs(rate-tc.rate) > 1e-9*tc.rate || math.Abs(secs-tc.secs) > 1e-12 {
			t.Errorf("%s: %v tok/s over %v s, want %v over %v", tc.name, rate, secs, tc.rate, tc.secs)
		}
	}
}
