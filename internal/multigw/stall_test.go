package multigw

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/testutil"
)

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
	w := testutil.NewStallWriter(0)
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
