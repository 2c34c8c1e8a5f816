package multigw

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/gateway"
)

// stallWriter is a caller that keeps its connection open and reads
// nothing: every flush blocks until the write deadline (for good without
// one), then fails as net/http's would.
type stallWriter struct {
	*httptest.ResponseRecorder
	mu       sync.Mutex
	deadline time.Time
}

func (w *stallWriter) SetWriteDeadline(t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.deadline = t
	return nil
}

func (w *stallWriter) Flush() { _ = w.FlushError() }

func (w *stallWriter) FlushError() error {
	w.mu.Lock()
	d := w.deadline
	w.mu.Unlock()
	if d.IsZero() {
		select {} // no deadline: blocked for good
	}
	time.Sleep(time.Until(d))
	return os.ErrDeadlineExceeded
}

// TestAttackStalledCaller: a streaming caller that keeps its connection
// open and reads nothing blocked the relay's write for good, and with it
// the worker's connection (a goroutine, its buffers and a worker's
// stream each, for as long as the caller liked). Each write to the
// caller now has gateway.StreamWriteTimeout.
func TestAttackStalledCaller(t *testing.T) {
	defer func(d time.Duration) { gateway.StreamWriteTimeout = d }(gateway.StreamWriteTimeout)
	gateway.StreamWriteTimeout = 200 * time.Millisecond
	e := newTestEnv(t)
	req := httptest.NewRequest(http.MethodPost, "/v1/completions", strings.NewReader(`{"model":"tiny","prompt":"hi","stream":true}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e.apiKey)
	w := &stallWriter{ResponseRecorder: httptest.NewRecorder()}
	done := make(chan struct{})
	go func() { defer close(done); e.srv.ServeHTTP(w, req) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the relay to a caller that reads nothing never ended")
	}
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
}
