package worker

import "strings"

// stopMatcher finds stop strings in streamed text. It holds back the end of
// the text that could be the start of a stop string, so no part of a stop
// string is ever emitted.
type stopMatcher struct {
	stops   []string
	pending string
}

// push adds text and returns what is safe to emit; hit reports that a stop
// string was found (emit is then everything before it, and the rest is
// dropped).
func (m *stopMatcher) push(s string) (emit string, hit bool) {
	m.pending += s
	best := -1
	for _, st := range m.stops {
		if i := strings.Index(m.pending, st); i >= 0 && (best < 0 || i < best) {
			best = i
		}
	}
	if best >= 0 {
		emit = m.pending[:best]
		m.pending = ""
		return emit, true
	}
	hold := 0
	for _, st := range m.stops {
		for k := min(len(st)-1, len(m.pending)); k > hold; k-- {
			if strings.HasSuffix(m.pending, st[:k]) {
				hold = k
				break
			}
		}
	}
	emit = m.pending[:len(m.pending)-hold]
	m.pending = m.pending[len(m.pending)-hold:]
	return emit, false
}

// flush returns the text held back.
func (m *stopMatcher) flush() string {
	s := m.pending
	m.pending = ""
	return s
}
