package gateway

import (
	"bytes"
	"crypto/sha256"
	"net/http"
	"sync"
)

// MaxIdempotencyKeyLen bounds the Idempotency-Key header.
const MaxIdempotencyKeyLen = 255

// idemEntry is one Idempotency-Key's response, or its pending computation.
type idemEntry struct {
	hash   [32]byte // of the method, path and body
	done   chan struct{}
	ok     bool // a stored response exists (else the entry was dropped)
	status int
	header http.Header
	body   []byte
}

// idemCache keeps the responses of the last requests that carried an
// Idempotency-Key, the oldest forgotten first.
type idemCache struct {
	mu    sync.Mutex
	max   int
	m     map[string]*idemEntry
	order []string
}

func newIdemCache(max int) *idemCache {
	if max <= 0 {
		max = 10000
	}
	return &idemCache{max: max, m: make(map[string]*idemEntry)}
}

// begin returns the entry for key: owner is true when the caller must
// compute the response (and call finish), false when another request
// did or is doing it.
func (c *idemCache) begin(key string, h [32]byte) (e *idemEntry, owner bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok {
		return e, false
	}
	for len(c.order) >= c.max {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	e = &idemEntry{hash: h, done: make(chan struct{})}
	c.m[key] = e
	c.order = append(c.order, key)
	return e, true
}

// finish stores the response of an owned entry, or drops the entry when
// the response must not be replayed (server errors, rate limits, requests
// cut short), so that a retry runs again.
func (c *idemCache) finish(key string, e *idemEntry, rec *recorder, complete bool) {
	c.mu.Lock()
	if complete && rec.status < 500 && rec.status != http.StatusTooManyRequests {
		e.ok, e.status, e.header, e.body = true, rec.status, rec.Header().Clone(), rec.buf.Bytes()
	} else if c.m[key] == e {
		delete(c.m, key)
		for i, k := range c.order {
			if k == key {
				c.order = append(c.order[:i], c.order[i+1:]...)
				break
			}
		}
	}
	c.mu.Unlock()
	close(e.done)
}

func requestHash(r *http.Request, body []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(r.Method + " " + r.URL.Path + "\x00"))
	h.Write(body)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// recorder passes a response through and keeps a copy of it.
type recorder struct {
	http.ResponseWriter
	status int
	keep   bool // keep a copy of the body in buf
	buf    bytes.Buffer
	failed bool // a write to the client failed
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.keep {
		r.buf.Write(p)
	}
	n, err := r.ResponseWriter.Write(p)
	if err != nil {
		r.failed = true
	}
	return n, err
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
