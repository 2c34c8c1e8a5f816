package gateway

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"net/http"
	"strings"
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
	size   int64 // counted against the bounds once stored
}

// idemCache keeps the responses of requests that carried an
// Idempotency-Key, per account: one account's keys never answer
// another's. Stored responses are bounded in bytes, per account (the
// account's oldest go first) and in all (the oldest of the account holding
// the most go first); an entry whose request is still running is never
// evicted.
type idemCache struct {
	mu           sync.Mutex
	max, maxAcct int64
	total        int64
	m            map[idemKey]*idemEntry
	accts        map[string]*idemAccount
}

type idemKey struct{ account, key string }

// idemAccount lists an account's stored (finished) entries, oldest first.
type idemAccount struct {
	order []string
	bytes int64
}

// Defaults of the idempotency cache's bounds.
const (
	DefaultIdempotencyBytes = 64 << 20
)

func newIdemCache(max, maxAcct int64) *idemCache {
	if max <= 0 {
		max = DefaultIdempotencyBytes
	}
	if maxAcct <= 0 {
		maxAcct = max / 8
	}
	return &idemCache{max: max, maxAcct: min(maxAcct, max), m: map[idemKey]*idemEntry{}, accts: map[string]*idemAccount{}}
}

// begin returns the entry for an account's key: owner is true when the
// caller must compute the response (and call finish), false when another
// request did or is doing it.
func (c *idemCache) begin(account, key string, h [32]byte) (e *idemEntry, owner bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := idemKey{account, key}
	if e, ok := c.m[k]; ok {
		return e, false
	}
	e = &idemEntry{hash: h, done: make(chan struct{})}
	c.m[k] = e
	return e, true
}

// entrySize is what an entry counts against the bounds.
func entrySize(key string, header http.Header, body []byte) int64 {
	n := int64(len(key) + len(body) + 128)
	for k, vs := range header {
		n += int64(len(k))
		for _, v := range vs {
			n += int64(len(v))
		}
	}
	return n
}

// finish stores the response of an owned entry, or drops the entry when
// the response must not be replayed (server errors, rate limits, requests
// cut short, and 402s: a quote or a refused payment, which anyone can
// provoke without an API key under an account of a key made for the
// request, and whose thousands of one-entry accounts evicted every paying
// account's entries) or is larger than an account may store, so that a
// retry runs again. Under an x402 payer's scope only a paid answer (2xx
// with its PAYMENT-RESPONSE) is stored: any signature of a key made for
// the request gives such a scope, and its 400s and 404s (a body refused
// before the payment is looked at) evicted paying accounts' entries too.
func (c *idemCache) finish(account, key string, e *idemEntry, rec *recorder, complete bool) {
	c.mu.Lock()
	k := idemKey{account, key}
	header := rec.Header().Clone()
	body := rec.buf.Bytes()
	e.size = entrySize(key, header, body)
	if complete && rec.status < 500 && rec.status != http.StatusTooManyRequests && rec.status != http.StatusPaymentRequired && e.size <= c.maxAcct &&
		(!strings.HasPrefix(account, x402Scope) || rec.status/100 == 2 && header.Get(HeaderPaymentResponse) != "") {
		e.ok, e.status, e.header, e.body = true, rec.status, header, body
		a := c.accts[account]
		if a == nil {
			a = &idemAccount{}
			c.accts[account] = a
		}
		a.order = append(a.order, key)
		a.bytes += e.size
		c.total += e.size
		for a.bytes > c.maxAcct && len(a.order) > 0 {
			c.evictOldest(account, a)
		}
		for c.total > c.max {
			var big string
			var most *idemAccount
			for name, x := range c.accts {
				if most == nil || x.bytes > most.bytes {
					big, most = name, x
				}
			}
			if most == nil {
				break
			}
			c.evictOldest(big, most)
		}
	} else if c.m[k] == e {
		delete(c.m, k)
	}
	c.mu.Unlock()
	close(e.done)
}

// evictOldest forgets an account's oldest stored entry.
func (c *idemCache) evictOldest(account string, a *idemAccount) {
	k := idemKey{account, a.order[0]}
	a.order = a.order[1:]
	if e := c.m[k]; e != nil && e.ok {
		delete(c.m, k)
		a.bytes -= e.size
		c.total -= e.size
	}
	if len(a.order) == 0 {
		delete(c.accts, account)
	}
}

// stored returns the bytes stored, in all and for an account.
func (c *idemCache) stored(account string) (total, acct int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := c.accts[account]; a != nil {
		acct = a.bytes
	}
	return c.total, acct
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

func (r *recorder) Flush() { _ = r.FlushError() }

// FlushError flushes the response underneath and returns its error (a
// write deadline passed: http.ResponseController prefers it to Flush,
// which would lose the error).
func (r *recorder) FlushError() error {
	err := http.NewResponseController(r.ResponseWriter).Flush()
	if err != nil && !errors.Is(err, http.ErrNotSupported) {
		r.failed = true
		return err
	}
	return nil
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
