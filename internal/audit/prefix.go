package audit

import (
	"errors"
	"fmt"

	"github.com/verdictnet/verdict/internal/merkle"
)

// TracePrefix is the trace a Recorder holds of a generation's first
// positions: every position's state, key/value and attention leaves (the
// logit leaves, which start at the last prompt position, are not part of
// it). A position's leaves depend only on the tokens up to it, so a
// generation whose prompt starts with the same tokens has the same leaves
// there (Recorder.ResumePrefix).
type TracePrefix struct {
	n     int
	x     [][]merkle.Hash   // [layer][p], Layers+1 layers
	kv, a [][][]merkle.Hash // [layer][head][p]
}

// Positions is the number of positions p holds.
func (p *TracePrefix) Positions() int { return p.n }

// TracePrefix returns copies of the leaves r recorded for positions [0,
// m): every one must have been recorded (the positions fed so far). It
// fails for a recorder that keeps the trace's data for openings (a copy
// of the leaves would not carry it).
func (r *Recorder) TracePrefix(m int) (*TracePrefix, error) {
	if r.got != nil {
		return nil, errors.New("trace prefix: the recorder keeps the trace data")
	}
	if r.err != nil {
		return nil, fmt.Errorf("trace prefix: %w", r.err)
	}
	r.wait()
	var zero merkle.Hash
	take := func(s []merkle.Hash, what string, l int) ([]merkle.Hash, error) {
		if len(s) < m {
			return nil, fmt.Errorf("trace prefix: %s of layer %d recorded for %d positions, %d asked", what, l, len(s), m)
		}
		for p, h := range s[:m] {
			if h == zero {
				return nil, fmt.Errorf("trace prefix: %s of layer %d position %d missing", what, l, p)
			}
		}
		return append([]merkle.Hash(nil), s[:m]...), nil
	}
	p := &TracePrefix{n: m, x: make([][]merkle.Hash, len(r.x)), kv: make([][][]merkle.Hash, len(r.kv)), a: make([][][]merkle.Hash, len(r.a))}
	var err error
	for l := range r.x {
		if p.x[l], err = take(r.x[l], "state", l); err != nil {
			return nil, err
		}
	}
	for l := range r.kv {
		p.kv[l], p.a[l] = make([][]merkle.Hash, len(r.kv[l])), make([][]merkle.Hash, len(r.a[l]))
		for h := range r.kv[l] {
			if p.kv[l][h], err = take(r.kv[l][h], "key/value", l); err != nil {
				return nil, err
			}
			if p.a[l][h], err = take(r.a[l][h], "attention", l); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// ResumePrefix gives r, which has recorded nothing yet, the leaves of
// positions [0, m) from p: what tracing a forward pass over the same m
// tokens would record. The rest of the generation is traced as usual
// from position m. It fails (and changes nothing) for a prefix of another
// model shape or fewer positions, and for a recorder that keeps the
// trace's data or has recorded a position.
func (r *Recorder) ResumePrefix(p *TracePrefix, m int) error {
	switch {
	case r.got != nil:
		return errors.New("resuming a trace prefix: the recorder keeps the trace data")
	case r.async != nil:
		return errors.New("resuming a trace prefix: the recorder hashes on goroutines of its own")
	case m < 0 || m > p.n:
		return fmt.Errorf("resuming a trace prefix: %d positions asked, the prefix holds %d", m, p.n)
	case len(p.x) != len(r.x) || len(p.kv) != len(r.kv) || len(p.kv) > 0 && len(p.kv[0]) != len(r.kv[0]):
		return errors.New("resuming a trace prefix: another model's shape")
	}
	for l := range r.x {
		if len(r.x[l]) > 0 {
			return errors.New("resuming a trace prefix: the recorder has recorded positions")
		}
	}
	for l := range r.x {
		r.x[l] = append(make([]merkle.Hash, 0, max(m, setMinCap)), p.x[l][:m]...)
	}
	for l := range r.kv {
		for h := range r.kv[l] {
			r.kv[l][h] = append(make([]merkle.Hash, 0, max(m, setMinCap)), p.kv[l][h][:m]...)
			r.a[l][h] = append(make([]merkle.Hash, 0, max(m, setMinCap)), p.a[l][h][:m]...)
		}
	}
	return nil
}
