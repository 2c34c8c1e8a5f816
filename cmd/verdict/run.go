package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/verdictnet/verdict/internal/audit"
	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/generate"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/sampler"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

func init() {
	register(&command{Name: "run", Summary: "generate text from a prompt, deterministically", Run: cmdRun, HoldsModel: true})
}

// runFlags are the flags of `verdict run`.
type runFlags struct {
	model, tokenizer, prompt string
	steps, maxTokens         int
	temperature, topP        float64
	topK                     int
	seed                     uint64
	threads                  int
	digest, tokenByToken     bool
	keyFile, receiptOut      string
	kv                       engine.KVType
}

func parseRunFlags(args []string, stderr io.Writer) (*runFlags, error) {
	f := &runFlags{}
	fs := newFlagSet("run", stderr)
	fs.StringVar(&f.model, "model", "", "model file: GGUF or llama2.c checkpoint (required)")
	fs.StringVar(&f.tokenizer, "tokenizer", "", "llama2.c tokenizer file (default: from the GGUF, or tokenizer.bin beside a checkpoint)")
	fs.StringVar(&f.prompt, "prompt", "", "prompt text")
	fs.IntVar(&f.steps, "steps", 256, "positions to run, BOS and prompt included (as llama2.c -n); 0 = context length")
	fs.IntVar(&f.maxTokens, "max-tokens", 0, "generate at most this many tokens, the prompt not counted (as the OpenAI API's max_tokens); replaces --steps")
	fs.Float64Var(&f.temperature, "temperature", 0, "sampling temperature; 0 = greedy")
	fs.IntVar(&f.topK, "top-k", 0, "keep the k most likely tokens; 0 = all")
	fs.Float64Var(&f.topP, "top-p", 0, "nucleus sampling mass in (0,1); 0 = off")
	fs.Uint64Var(&f.seed, "seed", 0, "sampling seed")
	fs.IntVar(&f.threads, "threads", 0, "threads; 0 = one per CPU (never changes the result)")
	fs.BoolVar(&f.digest, "digest", false, "print a line 'digest: HEX', a SHA-256 over every logit vector computed")
	fs.BoolVar(&f.tokenByToken, "token-by-token", false, "feed the prompt one position at a time instead of one prefill pass (same result)")
	fs.StringVar(&f.keyFile, "key", "", "worker key file to sign a receipt with")
	fs.StringVar(&f.receiptOut, "receipt", "", "write a signed receipt to this file (needs --key)")
	fs.Var(kvFlag{&f.kv}, "kv-cache", "key/value cache precision: f32, or f16 (the spec "+engine.SpecKV16+": other logits, and a receipt under that spec)")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("run: unexpected argument %q", fs.Arg(0))
	}
	if f.model == "" {
		return nil, fmt.Errorf("run: --model is required")
	}
	stepsSet := false
	fs.Visit(func(fl *flag.Flag) { stepsSet = stepsSet || fl.Name == "steps" })
	switch {
	case f.maxTokens < 0:
		return nil, fmt.Errorf("run: --max-tokens %d is negative", f.maxTokens)
	case f.maxTokens > 0 && stepsSet:
		return nil, fmt.Errorf("run: --max-tokens and --steps count the same thing differently; give one")
	}
	if (f.keyFile == "") != (f.receiptOut == "") {
		return nil, fmt.Errorf("run: --key and --receipt go together")
	}
	return f, nil
}

// loadModel opens a model and its tokenizer.
func loadModel(path, tokPath string) (*model.Model, *tokenizer.Tokenizer, error) {
	m, err := model.Load(path, tokPath)
	if err != nil {
		return nil, nil, err
	}
	if m.Vocab == nil {
		m.Close()
		return nil, nil, fmt.Errorf("%s: no tokenizer", path)
	}
	tok, err := tokenizer.New(m.Vocab)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("%s: tokenizer: %w", path, err)
	}
	return m, tok, nil
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseRunFlags(args, stderr)
	if err != nil {
		return err
	}
	m, tok, err := loadModel(f.model, f.tokenizer)
	if err != nil {
		return err
	}
	defer m.Close()
	prompt, err := tok.Encode(f.prompt, true)
	if err != nil {
		return fmt.Errorf("run: encoding the prompt: %w", err)
	}
	if f.maxTokens > 0 {
		// Positions 0..steps-1 are fed and the token after the last is
		// emitted too: steps = prompt + max tokens - 1 yields max tokens.
		f.steps = len(prompt) + f.maxTokens - 1
		if f.steps > m.Config.ContextLen {
			return fmt.Errorf("run: a prompt of %d tokens and --max-tokens %d need %d positions; the model's context length is %d", len(prompt), f.maxTokens, f.steps, m.Config.ContextLen)
		}
	}
	e, err := engine.New(m, engine.Options{Threads: f.threads, KV: f.kv})
	if err != nil {
		return err
	}
	defer e.Close()
	params := sampler.Params{Temperature: float32(f.temperature), TopK: f.topK, TopP: float32(f.topP), Seed: f.seed}
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	// Print like llama2.c: the prompt pieces after BOS, then each new token.
	pr := newPiecePrinter(tok, out)
	for _, t := range prompt[1:] {
		if err := pr.print(t); err != nil {
			return fmt.Errorf("run: %w", err)
		}
	}
	out.Flush()
	digest := generate.NewDigest()
	bos := m.Vocab.BOS
	// Generation stops on BOS, as llama2.c's does; byte-level BPE models
	// (Llama 3, Qwen) also stop on their end-of-generation tokens (EOS,
	// <|eot_id|>, <|im_end|>, ...), as llama.cpp's do.
	stops := []int{bos}
	if m.Vocab.Flavor == tokenizer.BPE {
		for _, t := range tok.EOG() {
			if !slices.Contains(stops, t) {
				stops = append(stops, t)
			}
		}
		slices.Sort(stops)
	}
	var rec *audit.Builder
	if f.receiptOut != "" {
		if rec, err = audit.NewBuilder(f.keyFile, m, e.Spec(), prompt, params, f.steps, stops); err != nil {
			return fmt.Errorf("run: %w", err)
		}
	}
	start := time.Now()
	req := generate.Request{
		Prompt: prompt, Steps: f.steps, Sampler: params, StopTokens: stops,
		TokenByToken: f.tokenByToken,
		// The prompt positions' logits only for the digest: a receipt
		// commits to the output tokens' alone, and a prefill's logits are
		// one vector per position (0.5 MB each with a 128k vocabulary).
		OutputLogitsOnly: !f.digest,
		OnLogits: func(pos int, logits []float32) error {
			if f.digest {
				digest.Add(logits)
			}
			if rec != nil {
				rec.Logits(pos, logits)
			}
			return nil
		},
		OnToken: func(pos, t int) error {
			if slices.Contains(stops, t) {
				return nil
			}
			if err := pr.print(t); err != nil {
				return err
			}
			return out.Flush()
		},
	}
	if rec != nil {
		req.Trace = rec.Tracer()
	}
	res, err := generate.Run(ctx, e, req)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	pr.flush()
	out.WriteString("\n")
	if f.digest {
		fmt.Fprintf(out, "digest: %s\n", digest.Hex())
	}
	out.Flush()
	el := time.Since(start)
	fmt.Fprintf(stderr, "generated %d tokens in %v (%.1f tok/s, %d threads)\n",
		len(res.Output), el.Round(time.Millisecond), float64(len(prompt)+len(res.Output)-1)/el.Seconds(), e.Threads())
	if rec != nil {
		if _, err := rec.Finish(res.Output, f.receiptOut); err != nil {
			return fmt.Errorf("run: %w", err)
		}
		fmt.Fprintf(stderr, "receipt written to %s\n", f.receiptOut)
	}
	return nil
}

// piecePrinter writes generated text. For llama2.c vocabularies it copies
// run.c's output byte for byte (its safe_printf drops lone non-printable
// bytes); for GGUF vocabularies it decodes UTF-8 split across byte tokens.
type piecePrinter struct {
	tok    *tokenizer.Tokenizer
	w      io.Writer
	prev   int
	stream *tokenizer.StreamDecoder
}

func newPiecePrinter(tok *tokenizer.Tokenizer, w io.Writer) *piecePrinter {
	p := &piecePrinter{tok: tok, w: w, prev: tok.Vocab().BOS}
	if tok.Vocab().Flavor != tokenizer.Llama2C {
		p.stream = tok.NewStreamDecoder()
		if _, err := p.stream.Next(p.prev); err != nil {
			p.stream = nil
		}
	}
	return p
}

func (p *piecePrinter) print(t int) error {
	if p.stream != nil {
		b, err := p.stream.Next(t)
		if err != nil {
			return err
		}
		_, err = p.w.Write(b)
		return err
	}
	piece, err := p.tok.Piece(p.prev, t)
	if err != nil {
		return err
	}
	p.prev = t
	if tokenizer.Llama2CPrintable(piece) {
		_, err = p.w.Write(piece)
	}
	return err
}

func (p *piecePrinter) flush() {
	if p.stream != nil {
		p.w.Write(p.stream.Flush())
	}
}
