package audit

import (
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/merkle"
)

// feedFrom makes the pass's tracer calls for positions [m, end) (layer by
// layer, as the engine does), then their final states.
func (p *tracePass) feedFrom(rec *Recorder, m, end int) {
	T := len(p.final)
	for l := range p.c.Layers {
		for pos := m; pos < end; pos++ {
			i := l*T + pos
			rec.Layer(l, pos, p.x[i], p.k[i], p.v[i], p.attn[i])
		}
	}
	for pos := m; pos < end; pos++ {
		rec.Final(pos, p.final[pos])
	}
}

// TestResumePrefix: a recorder given another's first m positions
// (TracePrefix, ResumePrefix) and traced from position m has the roots of
// one traced from position 0, for m from none to every position of the
// prompt; the copy is the source's no longer (tracing the source on
// changes nothing in it). Bad calls fail with one line and change nothing.
func TestResumePrefix(t *testing.T) {
	c := recorderConfig
	const T, n = 12, 5 // prompt of 8, 5 outputs: positions 0..11
	prompt := []int{1, 2, 3, 4, 5, 6, 7, 8}
	pass := newTracePass(c, T, 7)
	whole := NewRecorder(c, prompt)
	wantL, wantT := pass.roots(t, whole, T, n)

	src := NewRecorder(c, prompt[:6])
	pass.feedFrom(src, 0, 9) // a generation that fed 9 positions
	for _, m := range []int{0, 1, 6, 7} {
		pfx, err := src.TracePrefix(9)
		if err != nil {
			t.Fatal(err)
		}
		rec := NewRecorder(c, prompt)
		if err := rec.ResumePrefix(pfx, m); err != nil {
			t.Fatalf("m %d: %v", m, err)
		}
		pass.feedFrom(rec, m, T)
		for pos, l := range pass.logits {
			rec.Logits(pos, l)
		}
		gotL, gotT, err := rec.Roots(n)
		if err != nil {
			t.Fatalf("m %d: %v", m, err)
		}
		if gotL != wantL || gotT != wantT {
			t.Fatalf("m %d: roots differ from a recorder traced from position 0", m)
		}
		// The prefix is a copy: scribbling on it changes nothing.
		pfx.x[0][0] = merkle.Hash{1}
		if _, tr, _ := rec.Roots(n); tr != wantT {
			t.Fatalf("m %d: the resumed recorder shares the prefix's lists", m)
		}
	}

	// Bad calls.
	if _, err := src.TracePrefix(10); err == nil || !strings.Contains(err.Error(), "recorded for 9 positions, 10 asked") {
		t.Errorf("TracePrefix beyond the positions traced: %v", err)
	}
	pfx, err := src.TracePrefix(9)
	if err != nil {
		t.Fatal(err)
	}
	used := NewRecorder(c, prompt)
	pass.feedFrom(used, 0, 2)
	other := recorderConfig
	other.Layers = 2
	keeping := NewRecorder(c, prompt)
	keeping.got = make(map[leafKey][]byte)
	for _, tc := range []struct {
		rec  *Recorder
		m    int
		want string
	}{
		{NewRecorder(c, prompt), 10, "10 positions asked, the prefix holds 9"},
		{NewRecorder(c, prompt), -1, "-1 positions asked"},
		{used, 3, "has recorded positions"},
		{NewRecorder(other, prompt), 3, "another model's shape"},
		{keeping, 3, "keeps the trace data"},
	} {
		err := tc.rec.ResumePrefix(pfx, tc.m)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ResumePrefix(m %d): %v, want one line with %q", tc.m, err, tc.want)
		}
	}
	if _, err := keeping.TracePrefix(1); err == nil || !strings.Contains(err.Error(), "keeps the trace data") {
		t.Errorf("TracePrefix of a keeping recorder: %v", err)
	}
	if len(used.x[0]) != 2 {
		t.Errorf("a refused resume changed the recorder: %d positions", len(used.x[0]))
	}
}
