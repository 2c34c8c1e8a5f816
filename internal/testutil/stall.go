package testutil

import (
	"net/http/httptest"
	"os"
	"sync"
	"time"
)

// StallWriter is the http.ResponseWriter of a client that keeps its
// connection open and stops reading (a zero TCP window): the first Pass
// flushes go through, then every flush blocks until the write deadline
// set with SetWriteDeadline (through http.ResponseController), and fails
// as net/http's would; without a deadline it blocks for good.
type StallWriter struct {
	*httptest.ResponseRecorder
	Pass int

	mu       sync.Mutex
	deadline time.Time
	flushes  int
}

// NewStallWriter returns a StallWriter that lets pass flushes through.
func NewStallWriter(pass int) *StallWriter {
	return &StallWriter{ResponseRecorder: httptest.NewRecorder(), Pass: pass}
}

// SetWriteDeadline implements http.ResponseController's deadline.
func (w *StallWriter) SetWriteDeadline(t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.deadline = t
	return nil
}

// Flush is FlushError, its error dropped.
func (w *StallWriter) Flush() { _ = w.FlushError() }

// FlushError flushes the first Pass times, then stalls until the deadline.
func (w *StallWriter) FlushError() error {
	w.mu.Lock()
	w.flushes++
	n, d := w.flushes, w.deadline
	w.mu.Unlock()
	if n <= w.Pass {
		w.ResponseRecorder.Flush()
		return nil
	}
	if d.IsZero() {
		select {} // no deadline: blocked for good
	}
	time.Sleep(time.Until(d))
	return os.ErrDeadlineExceeded
}
