package refcheck

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

//go:embed llama.cjs
var llamaScript string

// Request says what to run through llama.cpp.
type Request struct {
	Model     string // GGUF file
	Text      string // tokenized by llama.cpp itself, BOS first where the vocabulary asks for it
	Positions int    // teacher-forced positions: the first Positions tokens of Text
	TopK      int    // how many of llama.cpp's most probable tokens to keep per position
	Threads   int    // llama.cpp's threads (for the prompt batch and for single tokens)
	Batch     int    // llama.cpp's batch and micro-batch size; >= Positions gives one batch
	GenPrompt int    // greedy generation starts from the first GenPrompt tokens of Text
	GenTokens int    // and generates at most this many tokens (fewer when an end-of-generation token comes)
	GenTop    int    // how many of llama.cpp's most probable tokens to keep per generated token
	// Self: the teacher-forced evaluation again, once per variant, each in
	// a fresh context that differs from the first only in how the work is
	// cut: llama.cpp against itself (see CompareTops).
	Self []Variant
}

// Variant is a llama.cpp setting that changes only the rounding of its
// arithmetic, not what it computes: the batch and micro-batch size (1 is
// token by token, llama.cpp's decode path: its matrix products then run
// matrix-vector kernels, with more rows its matrix-matrix kernels — tinyBLAS
// (llamafile's sgemm) or the repacked-weight kernels of CPU_REPACK, which sum
// in other orders) and the thread count.
type Variant struct {
	Batch   int `json:"batch"`
	Threads int `json:"threads"`
}

// SelfRun is llama.cpp's teacher-forced answer under a Variant: Top as in
// Llama.Top, over the same tokens.
type SelfRun struct {
	Variant
	Top [][]TokenProb `json:"top"`
}

// TokenProb is one token's probability.
type TokenProb struct {
	Token int
	Prob  float64
}

// UnmarshalJSON reads the [token, probability] pairs the script writes.
func (tp *TokenProb) UnmarshalJSON(b []byte) error {
	var pair [2]float64
	if err := json.Unmarshal(b, &pair); err != nil {
		return err
	}
	tp.Token, tp.Prob = int(pair[0]), pair[1]
	return nil
}

// Settings are the llama.cpp settings the script ran with, as
// node-llama-cpp reports them, with llama.cpp's own log lines that show the
// KV cache types, flash attention, batch sizes and weight buffers.
type Settings struct {
	FlashAttention bool     `json:"flash_attention"`
	ContextSize    int      `json:"context_size"`
	BatchSize      int      `json:"batch_size"`
	Threads        int      `json:"threads"`
	CPUMathCores   int      `json:"cpu_math_cores"`
	Log            []string `json:"log"`
}

// KVCacheF32 reports whether llama.cpp's log says its KV cache holds keys
// and values as F32.
func (s Settings) KVCacheF32() bool {
	for _, l := range s.Log {
		if strings.HasPrefix(l, "llama_kv_cache: size") {
			return strings.Contains(l, "K (f32)") && strings.Contains(l, "V (f32)")
		}
	}
	return false
}

// Llama is llama.cpp's answer to a Request.
type Llama struct {
	Tokens []int // the teacher-forced tokens (llama.cpp's tokenization of the text)
	// Top[i]: llama.cpp's TopK most probable tokens to follow Tokens[:i+1],
	// most probable first, with their probabilities renormalised over
	// those TopK tokens.
	Top    [][]TokenProb
	Gen    []int         // greedy tokens after Tokens[:GenPrompt]
	GenTop [][]TokenProb // llama.cpp's GenTop most probable tokens at each step (full softmax)
	Self   []SelfRun     // one per Request.Self variant, in that order
	CPU    time.Duration // user and system CPU time of the node process
	Settings
}

// RunLlama runs llama.cpp on req with the node at node, from dir (a
// directory whose node_modules holds node-llama-cpp).
func RunLlama(ctx context.Context, node, dir string, req Request) (*Llama, error) {
	if req.TopK <= 0 || req.Positions <= 0 || req.Threads <= 0 || req.Batch <= 0 {
		return nil, fmt.Errorf("refcheck: incomplete request %+v", req)
	}
	for _, v := range req.Self {
		if v.Batch <= 0 || v.Threads <= 0 {
			return nil, fmt.Errorf("refcheck: incomplete variant %+v", v)
		}
	}
	cfg, err := json.Marshal(map[string]any{
		"model": req.Model, "text": req.Text, "positions": req.Positions, "topK": req.TopK, "threads": req.Threads,
		"batch": req.Batch, "genPrompt": req.GenPrompt, "genTokens": req.GenTokens, "genTop": req.GenTop,
		"self": req.Self,
	})
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, node)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "REFCHECK_CONFIG="+string(cfg))
	cmd.Stdin = strings.NewReader(llamaScript)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if os.Getenv("REFCHECK_DEBUG") != "" { // the script's timings and llama.cpp's warnings as they come
		cmd.Stderr = io.MultiWriter(&stderr, os.Stderr)
	}
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("refcheck: llama.cpp on %s: %w: %s", req.Model, err, lastLines(stderr.String(), 12))
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	var out struct {
		Tokens []int         `json:"tokens"`
		Top    [][]TokenProb `json:"top"`
		Gen    struct {
			Tokens []int         `json:"tokens"`
			Top    [][]TokenProb `json:"top"`
		} `json:"gen"`
		Settings Settings  `json:"settings"`
		Self     []SelfRun `json:"self"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, fmt.Errorf("refcheck: llama.cpp's result: %w (stderr: %s)", err, lastLines(stderr.String(), 12))
	}
	if len(out.Top) != len(out.Tokens) {
		return nil, fmt.Errorf("refcheck: llama.cpp gave %d distributions for %d positions", len(out.Top), len(out.Tokens))
	}
	if len(out.Self) != len(req.Self) {
		return nil, fmt.Errorf("refcheck: llama.cpp ran %d of the %d variants asked for", len(out.Self), len(req.Self))
	}
	for i, sr := range out.Self {
		if sr.Variant != req.Self[i] {
			return nil, fmt.Errorf("refcheck: llama.cpp ran variant %+v where %+v was asked for", sr.Variant, req.Self[i])
		}
		if len(sr.Top) != len(out.Tokens) {
			return nil, fmt.Errorf("refcheck: llama.cpp gave %d distributions for %d positions in variant %+v", len(sr.Top), len(out.Tokens), sr.Variant)
		}
	}
	return &Llama{Tokens: out.Tokens, Top: out.Top, Gen: out.Gen.Tokens, GenTop: out.Gen.Top, Self: out.Self, Settings: out.Settings, CPU: cpu}, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
