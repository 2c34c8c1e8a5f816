package explorer

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of Options.ClientRate and Options.ClientBurst: a browser
// refreshes each open page at most once a second, and most refreshes are
// served from the page cache.
const (
	DefaultClientRate  = 5
	DefaultClientBurst = 20
)

// maxClients bounds the buckets kept: beyond, those back at full are
// forgotten (a full bucket is a new one), at most once a second, and
// while every one is in use the clients not listed share one bucket.
const maxClients = 8192

// clientLimits is a token bucket per client for the work that queries
// the node: drawing a page, a search, a receipt download. Pages served
// from the page cache cost nothing.
type clientLimits struct {
	rate    rate.Limit
	burst   int
	trusted []netip.Prefix

	mu       sync.Mutex
	buckets  map[netip.Prefix]*rate.Limiter
	overflow *rate.Limiter
	swept    time.Time
}

// newClientLimits returns the buckets, or nil (no bound) for a negative
// rate.
func newClientLimits(r float64, burst int, trusted []netip.Prefix) *clientLimits {
	if r < 0 {
		return nil
	}
	if r == 0 {
		r = DefaultClientRate
	}
	if burst <= 0 {
		burst = DefaultClientBurst
	}
	return &clientLimits{rate: rate.Limit(r), burst: burst, trusted: trusted,
		buckets: map[netip.Prefix]*rate.Limiter{}, overflow: rate.NewLimiter(rate.Limit(r), burst)}
}

// client names the client of a request: the connection's remote address,
// or, when that is a trusted proxy, the address its X-Forwarded-For names
// (the last hop not itself a trusted proxy: a client writes what it likes
// at the header's start, a proxy appends the address it was called
// from). IPv4 addresses are clients of their own, IPv6 ones by /64 (a
// host is handed a /64 of addresses). A request from no IP address (a
// Unix socket) is the zero prefix: all of them are one client.
func (l *clientLimits) client(r *http.Request) netip.Prefix {
	a, ok := parseHost(r.RemoteAddr)
	if !ok {
		return netip.Prefix{}
	}
	if l.isTrusted(a) {
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			h, ok := parseHost(strings.TrimSpace(hops[i]))
			if !ok {
				break // not an address: the last one read stands
			}
			a = h
			if !l.isTrusted(h) {
				break
			}
		}
	}
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// parseHost reads an address, with or without a port.
func parseHost(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

func (l *clientLimits) isTrusted(a netip.Addr) bool {
	for _, p := range l.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// allow takes a token of the request's client, or says how long until it
// has one.
func (l *clientLimits) allow(r *http.Request) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	c := l.client(r)
	now := time.Now()
	l.mu.Lock()
	b := l.buckets[c]
	if b == nil {
		if len(l.buckets) >= maxClients && now.Sub(l.swept) >= time.Second {
			l.swept = now
			for k, v := range l.buckets {
				if v.TokensAt(now) >= float64(l.burst) {
					delete(l.buckets, k)
				}
			}
		}
		if len(l.buckets) < maxClients {
			b = rate.NewLimiter(l.rate, l.burst)
			l.buckets[c] = b
		} else {
			b = l.overflow
		}
	}
	l.mu.Unlock()
	res := b.ReserveN(now, 1)
	if !res.OK() {
		return false, time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// retryAfter is a Retry-After header's seconds for a wait of d: at
// least 1.
func retryAfter(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}
