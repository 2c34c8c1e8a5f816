package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/verdictnet/verdict/internal/audit"
	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/modelid"
	"github.com/verdictnet/verdict/internal/receipt"
)

func init() {
	register(&command{Name: "verify", Summary: "check a receipt by exact replay", Run: runVerify, HoldsModel: true})
}

// proofModel is a model opened for checking receipts.
type proofModel struct {
	m  *model.Model
	id merkle.Hash
	e  *engine.Engine
}

func (p *proofModel) Close() {
	if p.e != nil {
		p.e.Close()
	}
	p.m.Close()
}

// openProofModel opens the model at path for checking receipts made under
// the determinism specification spec: its id under spec, and with
// withEngine an engine implementing spec. A spec the engine does not
// implement opens it under engine.SpecVersion (the receipt's check then
// names the mismatch).
func openProofModel(path, tok, spec string, threads int, withEngine bool) (*proofModel, error) {
	if path == "" {
		return nil, errors.New("--model is required")
	}
	kv, err := engine.KVTypeOf(spec)
	if err != nil {
		kv = engine.KVF32
	}
	m, err := model.Load(path, tok)
	if err != nil {
		return nil, err
	}
	id, err := modelid.OfSpec(m, kv.Spec())
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p := &proofModel{m: m, id: id}
	if withEngine {
		if p.e, err = engine.New(m, engine.Options{Threads: threads, KV: kv}); err != nil {
			m.Close()
			return nil, err
		}
	}
	return p, nil
}

func readReceipt(path string) (*receipt.Receipt, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > receipt.MaxSize {
		return nil, fmt.Errorf("%s: %d bytes is too large for a receipt", path, st.Size())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// Any JSON spelling (`jq .receipt` pretty-prints it): the canonical
	// form, which the signature and the id cover, is derived from it.
	r, err := receipt.ParseAnySpelling(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("verify", stderr)
	modelPath := fs.String("model", "", "model file the receipt names")
	tok := fs.String("tokenizer", "", "tokenizer file (llama2.c checkpoints)")
	threads := fs.Int("threads", 0, "threads (0: one per CPU); never changes a result")
	reqPath := fs.String("request", "", "the OpenAI chat request the receipt answered: re-render it and check the prompt tokens and chat_template")
	if err := parseFlags(fs, reorderFlags(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("verify: usage: verdict verify RECEIPT --model PATH [--tokenizer PATH] [--request REQ.json]")
	}
	r, err := readReceipt(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	pm, err := openProofModel(*modelPath, *tok, r.Spec, *threads, true)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer pm.Close()
	if *reqPath != "" {
		if err := checkChatRequest(pm.m, r, *reqPath); err != nil {
			return fmt.Errorf("verify: %s: %w", fs.Arg(0), err)
		}
	}
	if err := audit.Replay(ctx, pm.e, r, pm.id); err != nil {
		return fmt.Errorf("verify: %s: %w", fs.Arg(0), err)
	}
	id := r.ID()
	if *reqPath != "" {
		fmt.Fprintf(stdout, "ok: the request re-renders to the receipt's chat_template %s and its %d prompt tokens\n", r.ChatTemplate, len(r.Prompt))
	}
	fmt.Fprintf(stdout, "ok: receipt %x: %d prompt and %d output tokens replayed exactly; signed by %x\n", id, len(r.Prompt), len(r.Output), []byte(r.Worker))
	return nil
}
