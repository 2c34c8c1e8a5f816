package worker

import (
	"context"
	"encoding/binary"

	"github.com/verdictnet/verdict/internal/audit"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/tensor"
)

// Open answers an audit of receipt r: the openings of k cells chosen by
// seed, computed on this worker's engine. Audits, traces and retraces have
// deadlines on the ledger, so they do not queue behind generations (the
// engine is safe for concurrent use).
func (w *Local) Open(ctx context.Context, r *receipt.Receipt, seed uint64, k int) (*audit.Openings, error) {
	return audit.Open(ctx, w.e, r, seed, k)
}

// Trace regenerates the whole trace of a receipt this worker produced (it
// fails when the engine does not reproduce the receipt's roots). It stops
// within one pass of the engine (audit.Regenerate) once ctx ends, with
// ctx's error wrapped, so that a worker shutting down does not wait for
// a long receipt's whole forward pass.
func (w *Local) Trace(ctx context.Context, r *receipt.Receipt) (*audit.Trace, error) {
	return audit.Regenerate(ctx, w.e, r)
}

// TraceLeaves is Trace keeping the values of the given leaves only (the
// whole tree): audit.RegenerateLeaves.
func (w *Local) TraceLeaves(ctx context.Context, r *receipt.Receipt, leaves []int) (*audit.Trace, error) {
	return audit.RegenerateLeaves(ctx, w.e, r, leaves)
}

// RetraceLeaves is Retrace keeping the values of the given leaves only
// (the whole tree): audit.RetraceLeaves.
func (w *Local) RetraceLeaves(ctx context.Context, r *receipt.Receipt, leaves []int) (*audit.Trace, error) {
	return audit.RetraceLeaves(ctx, w.e, r, leaves)
}

// Retrace computes this worker's own trace of another worker's receipt,
// whatever its roots: a challenger's side of a dispute. ctx ends it as it
// ends Trace.
func (w *Local) Retrace(ctx context.Context, r *receipt.Receipt) (*audit.Trace, error) {
	return audit.Retrace(ctx, w.e, r)
}

// ModelID returns the id of the served model.
func (w *Local) ModelID() merkle.Hash { return w.info.ID }

// Model returns the served model (as loaded, whatever CheatForTests says).
func (w *Local) Model() *model.Model { return w.m }

// cheatModel returns a shallow copy of m whose attention norms have one
// element raised by one ulp in every layer (a silent weight change).
func cheatModel(m *model.Model) *model.Model {
	c := *m
	c.Layers = append([]model.Layer(nil), m.Layers...)
	for i := range c.Layers {
		l := &c.Layers[i]
		t := *l.AttnNorm
		t.Data = append([]byte(nil), t.Data...)
		if t.Type == tensor.F32 && len(t.Data) >= 8 {
			binary.LittleEndian.PutUint32(t.Data[4:], binary.LittleEndian.Uint32(t.Data[4:])+1)
		}
		l.AttnNorm = &t
	}
	return &c
}
