package engine_test

import (
	"path/filepath"
	"testing"

	"github.com/verdictnet/verdict/internal/detmath"
	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/gguf"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/synth"
	"github.com/verdictnet/verdict/internal/testutil"
)

// TestSynthModelsConfident checks that the presets' output gain makes
// random models confident, as comparisons with llama.cpp need: over a
// real vocabulary (151936 Qwen tokens, 128256 Llama 3 tokens, 32000
// SentencePiece tokens), teacher-forced over pseudo-random tokens, the top
// token's probability exceeds 0.3 at no fewer than 80% of the positions.
// The spread of the logits does not depend on the hidden size (it is the
// gain over sqrt(3) whatever the dimension), so the small presets stand for
// the real shapes.
func TestSynthModelsConfident(t *testing.T) {
	for _, tc := range []struct{ preset, vocab string }{
		{"tiny-qwen3", "tokenizers/derived/ggml-vocab-qwen2.derived-from-qwen3.gguf"},
		{"tiny-qwen2", "tokenizers/derived/ggml-vocab-qwen2.derived-from-qwen3.gguf"},
		{"tiny-llama3", "tokenizers/derived/ggml-vocab-llama-bpe.derived.gguf"},
		{"tiny-qwen3", "models/ggml-vocab-llama-spm.gguf"},
	} {
		t.Run(tc.preset+"/"+filepath.Base(tc.vocab), func(t *testing.T) {
			vocab := testutil.Shared(t, tc.vocab)
			path := filepath.Join(t.TempDir(), "m.gguf")
			if err := synth.WriteFile(path, synth.Options{Preset: tc.preset, Vocab: vocab, Seed: 7, Type: "q8_0"}); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			m, err := model.FromGGUF(f, false) // the engine needs no tokenizer
			if err != nil {
				t.Fatal(err)
			}
			e := newEngine(t, m, 2)
			const n = 96
			toks := make([]int, n)
			for i := range toks {
				toks[i] = int(uint64(i+1) * 0x9E3779B97F4A7C15 >> 40 % uint64(m.Config.Vocab))
			}
			seq, err := e.NewSequence(n)
			if err != nil {
				t.Fatal(err)
			}
			it := &engine.Item{Seq: seq, Tokens: toks, Logits: engine.LogitsAll}
			if err := e.Forward(it); err != nil {
				t.Fatal(err)
			}
			confident := 0
			var sum float64
			for _, lg := range it.Out {
				p := topProb(lg)
				sum += p
				if p > 0.3 {
					confident++
				}
			}
			t.Logf("vocab %d: top probability > 0.3 at %d of %d positions, mean top probability %.3f", m.Config.Vocab, confident, n, sum/n)
			if confident < n*8/10 {
				t.Errorf("top probability > 0.3 at only %d of %d positions", confident, n)
			}
		})
	}
}

// topProb is the largest softmax probability of logits.
func topProb(lg []float32) float64 {
	m := lg[0]
	for _, v := range lg {
		m = max(m, v)
	}
	var s float64
	for _, v := range lg {
		s += float64(detmath.Exp32(v - m))
	}
	return 1 / s
}
