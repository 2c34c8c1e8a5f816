package explorer

import (
	"net/http"
	"net/netip"
	"testing"
)

// FuzzClientAddress: whatever a request's remote address and
// X-Forwarded-For say, the client is the remote address unless that is a
// trusted proxy, and behind one the hop the proxy appended: what the
// client wrote before it changes nothing.
func FuzzClientAddress(f *testing.F) {
	for _, s := range [][2]string{
		{"203.0.113.5:1234", ""}, {"10.0.0.1:80", "198.51.100.1"}, {"10.0.0.1:80", "198.51.100.1, 10.0.0.2"},
		{"[2001:db8::1]:443", "1.2.3.4"}, {"[fd00::1]:1", "2001:db8:1:2:3::4, fd00::9"}, {"@", "1.1.1.1"},
		{"10.0.0.1:80", "::ffff:10.1.1.1, [fe80::1%eth0]:9, x"}, {"[::ffff:10.0.0.1]:5", ",,"},
	} {
		f.Add(s[0], s[1])
	}
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	l := newClientLimits(1, 1, trusted)
	const honest = "198.51.100.77"
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		c := l.client(r)
		a, ok := parseHost(remote)
		switch {
		case !ok:
			if c != (netip.Prefix{}) {
				t.Fatalf("remote %q is no address, client %v", remote, c)
			}
			return
		case c.Bits() != 32 && c.Bits() != 64 || c.Addr().Is4() != (c.Bits() == 32) || c.Masked() != c:
			t.Fatalf("client %v is not an IPv4 /32 or IPv6 /64", c)
		case !l.isTrusted(a):
			if want, _ := a.Prefix(c.Bits()); c != want {
				t.Fatalf("remote %q, not a proxy, is client %v", remote, c)
			}
			return
		}
		// Behind a trusted proxy that appended the honest hop.
		r.Header.Set("X-Forwarded-For", xff+", "+honest)
		if c := l.client(r); c != netip.MustParsePrefix(honest+"/32") {
			t.Fatalf("X-Forwarded-For %q, %s: client %v", xff, honest, c)
		}
	})
}
