package refcheck

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strings"
)

//go:embed llama.cjs
var llamaScript string

// Request says what to run through llama.cpp.
type Request struct {
	Model     string // GGUF file
	Vocab     int    // vocabulary size of the model (every distribution has this many entries)
	Text      string // tokenized by llama.cpp itself, BOS first where the vocabulary asks for it
	Positions int    // teacher-forced positions: the first Positions tokens of Text
	Threads   int    // llama.cpp's threads (for the prompt batch and for single tokens)
	Batch     int    // llama.cpp's batch and micro-batch size; >= Positions gives one batch
	GenPrompt int    // greedy generation starts from the first GenPrompt tokens of Text
	GenTokens int    // and generates at most this many tokens (fewer when an end-of-generation token comes)
	GenTop    int    // how many of llama.cpp's most probable tokens to keep per generated token
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
	Tokens []int       // the teacher-forced tokens (llama.cpp's tokenization of the text)
	Probs  [][]float32 // Probs[i][t]: probability that token t follows Tokens[:i+1]
	Top1   []int       // llama.cpp's own most probable token at each position
	Gen    []int       // greedy tokens after Tokens[:GenPrompt]
	GenTop [][]TokenProb
	Settings
}

// RunLlama runs llama.cpp on req with the node at node, from dir (a
// directory whose node_modules holds node-llama-cpp).
func RunLlama(ctx context.Context, node, dir string, req Request) (*Llama, error) {
	if req.Vocab <= 0 || req.Positions <= 0 || req.Threads <= 0 || req.Batch <= 0 {
		return nil, fmt.Errorf("refcheck: incomplete request %+v", req)
	}
	cfg, err := json.Marshal(map[string]any{
		"model": req.Model, "vocab": req.Vocab, "text": req.Text, "positions": req.Positions, "threads": req.Threads,
		"batch": req.Batch, "genPrompt": req.GenPrompt, "genTokens": req.GenTokens, "genTop": req.GenTop,
	})
	if err != nil {
		return nil, err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer pr.Close()
	cmd := exec.CommandContext(ctx, node)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "REFCHECK_CONFIG="+string(cfg))
	cmd.Stdin = strings.NewReader(llamaScript)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.ExtraFiles = []*os.File{pw} // fd 3: the distributions
	if err := cmd.Start(); err != nil {
		pw.Close()
		return nil, fmt.Errorf("refcheck: starting node: %w", err)
	}
	pw.Close()
	type readResult struct {
		probs [][]float32
		err   error
	}
	done := make(chan readResult, 1)
	go func() {
		p, err := readProbs(pr, req.Vocab)
		done <- readResult{p, err}
	}()
	werr := cmd.Wait()
	pr.Close()
	rr := <-done
	if werr != nil {
		return nil, fmt.Errorf("refcheck: llama.cpp on %s: %w: %s", req.Model, werr, lastLines(stderr.String(), 12))
	}
	if rr.err != nil && !errors.Is(rr.err, os.ErrClosed) {
		return nil, fmt.Errorf("refcheck: reading llama.cpp's distributions: %w", rr.err)
	}
	var out struct {
		Tokens []int `json:"tokens"`
		Top1   []int `json:"top1"`
		Gen    struct {
			Tokens []int         `json:"tokens"`
			Top    [][]TokenProb `json:"top"`
		} `json:"gen"`
		Settings Settings `json:"settings"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, fmt.Errorf("refcheck: llama.cpp's result: %w (stderr: %s)", err, lastLines(stderr.String(), 12))
	}
	if len(rr.probs) != len(out.Tokens) || len(out.Top1) != len(out.Tokens) {
		return nil, fmt.Errorf("refcheck: llama.cpp gave %d distributions and %d top tokens for %d positions", len(rr.probs), len(out.Top1), len(out.Tokens))
	}
	return &Llama{Tokens: out.Tokens, Probs: rr.probs, Top1: out.Top1, Gen: out.Gen.Tokens, GenTop: out.Gen.Top, Settings: out.Settings}, nil
}

// readProbs reads distributions of vocab little-endian float32 values until
// EOF.
func readProbs(r io.Reader, vocab int) ([][]float32, error) {
	var all [][]float32
	buf := make([]byte, 4*vocab)
	for {
		if _, err := io.ReadFull(r, buf); err != nil {
			if err == io.EOF {
				return all, nil
			}
			return all, err
		}
		p := make([]float32, vocab)
		for i := range p {
			p[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
		}
		all = append(all, p)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
