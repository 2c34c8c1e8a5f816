package main

import (
	"fmt"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/generate"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/sampler"
)

// receiptBuilder collects what a receipt commits to during a run.
// TODO(proofs): replaced by the proofs layer.
type receiptBuilder struct{}

func newReceiptBuilder(keyFile string, m *model.Model, prompt []int, p sampler.Params) (*receiptBuilder, error) {
	return nil, fmt.Errorf("run: receipts are not implemented yet")
}

func (b *receiptBuilder) logits(pos int, logits []float32)              {}
func (b *receiptBuilder) tracer() engine.Tracer                         { return nil }
func (b *receiptBuilder) finish(res generate.Result, path string) error { return nil }
