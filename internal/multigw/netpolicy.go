package multigw

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// AddrClass is what kind of address an IP address is, for the gateway's
// outbound connections: AddrPublic or one of the non-public kinds the
// gateway refuses by default (ClassifyAddr).
type AddrClass uint8

// The classes of addresses. Every class but AddrPublic is refused unless
// NetPolicy allows it.
const (
	AddrPublic        AddrClass = iota
	AddrInvalid                 // not an IP address
	AddrUnspecified             // 0.0.0.0/8 ("this network": 0.0.0.0 reaches the host itself), ::
	AddrLoopback                // 127.0.0.0/8, ::1
	AddrPrivate                 // 10/8, 172.16/12, 192.168/16 (RFC 1918), fc00::/7 (ULA), fec0::/10 (site-local)
	AddrLinkLocal               // 169.254/16 (cloud metadata at 169.254.169.254), fe80::/10
	AddrShared                  // 100.64/10, carrier-grade NAT (RFC 6598)
	AddrMulticast               // 224/4, ff00::/8
	AddrReserved                // 192.0.0/24, 192.88.99/24, 198.18/15, 240/4 (and 255.255.255.255), IPv6 special-purpose blocks
	AddrDocumentation           // 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20
)

var addrClassNames = [...]string{
	AddrPublic: "public", AddrInvalid: "invalid", AddrUnspecified: "unspecified", AddrLoopback: "loopback",
	AddrPrivate: "private", AddrLinkLocal: "link-local", AddrShared: "shared (carrier-grade NAT)",
	AddrMulticast: "multicast", AddrReserved: "reserved", AddrDocumentation: "documentation",
}

func (c AddrClass) String() string {
	if int(c) < len(addrClassNames) {
		return addrClassNames[c]
	}
	return fmt.Sprintf("AddrClass(%d)", uint8(c))
}

type classPrefix struct {
	p netip.Prefix
	c AddrClass
}

// nonPublic lists the IANA special-purpose blocks the gateway does not
// connect to (IPv4-mapped, 6to4 and NAT64 addresses are classified by the
// IPv4 address they hold, before this list).
var nonPublic = func() []classPrefix {
	var out []classPrefix
	for _, e := range []struct {
		c  AddrClass
		ps []string
	}{
		{AddrUnspecified, []string{"0.0.0.0/8", "::/128"}},
		{AddrLoopback, []string{"127.0.0.0/8", "::1/128"}},
		{AddrPrivate, []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fec0::/10", "64:ff9b:1::/48"}},
		{AddrLinkLocal, []string{"169.254.0.0/16", "fe80::/10"}},
		{AddrShared, []string{"100.64.0.0/10"}},
		{AddrMulticast, []string{"224.0.0.0/4", "ff00::/8"}},
		{AddrDocumentation, []string{"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20"}},
		// IETF protocol assignments, the 6to4 relay anycast, benchmarking,
		// class E and broadcast; IPv4-compatible and IPv4-translated IPv6,
		// discard-only, and IETF protocol assignments (Teredo among them).
		{AddrReserved, []string{"192.0.0.0/24", "192.88.99.0/24", "198.18.0.0/15", "240.0.0.0/4",
			"::/96", "::ffff:0:0:0/96", "100::/64", "2001::/23"}},
	} {
		for _, s := range e.ps {
			out = append(out, classPrefix{netip.MustParsePrefix(s), e.c})
		}
	}
	return out
}()

var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// ClassifyAddr says what kind of address ip is. An IPv4 address in IPv6
// form (IPv4-mapped ::ffff:a.b.c.d, 6to4 2002:AABB:CCDD::/48, NAT64
// 64:ff9b::a.b.c.d) is classified by the IPv4 address it holds; a zone
// does not change the class.
func ClassifyAddr(ip netip.Addr) AddrClass {
	if !ip.IsValid() {
		return AddrInvalid
	}
	ip = ip.WithZone("").Unmap()
	if ip.Is6() {
		b := ip.As16()
		switch {
		case nat64Prefix.Contains(ip):
			return ClassifyAddr(netip.AddrFrom4([4]byte(b[12:16])))
		case sixToFour.Contains(ip):
			return ClassifyAddr(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	for _, e := range nonPublic {
		if e.p.Contains(ip) {
			return e.c
		}
	}
	return AddrPublic
}

// ErrNonPublic is wrapped by every refusal of a connection to an address
// the NetPolicy does not allow (errors.Is).
var ErrNonPublic = errors.New("non-public address")

// AddrError is a connection refused by the NetPolicy: Addr is of Class.
type AddrError struct {
	Addr  netip.Addr
	Class AddrClass
}

func (e *AddrError) Error() string {
	a := "a"
	if e.Class == AddrInvalid || e.Class == AddrUnspecified {
		a = "an"
	}
	return fmt.Sprintf("%s is %s %s address: the gateway connects to public addresses only (--allow-private-workers, --allow-worker-net)", e.Addr, a, e.Class)
}

// Is makes an AddrError ErrNonPublic.
func (e *AddrError) Is(target error) bool { return target == ErrNonPublic }

// MaxRegistrationRedirects bounds the redirects followed to one
// registration file; each hop is checked as the agentURI was. A worker's
// API is never followed through a redirect.
const MaxRegistrationRedirects = 3

// Timeouts of the gateway's outbound connections.
const (
	DialTimeout         = 5 * time.Second
	TLSHandshakeTimeout = 10 * time.Second
	// RegistrationTimeout bounds a registration file's fetch, redirects
	// and body included.
	RegistrationTimeout = 5 * time.Second
)

// NetPolicy is where the gateway may connect to: the registration files
// at agents' agentURIs and the workers' APIs (quotes, paid requests,
// receipts). Its zero value allows public addresses only (ClassifyAddr).
// The check is made on the address each connection is actually made to,
// in the dialer's Control hook, after the name was resolved: a name that
// resolves (or rebinds) to a non-public address is refused as the address
// itself is. The default clients use no HTTP proxy (a proxy would dial in
// the gateway's stead).
type NetPolicy struct {
	// AllowPrivate allows every address: loopback, private networks and
	// the rest (a testnet on one machine: `verdict gateway
	// --allow-private-workers`).
	AllowPrivate bool
	// Allow lists non-public prefixes allowed nonetheless (the private
	// network the workers are on: `--allow-worker-net`). An IPv4 prefix
	// also matches the IPv4-mapped form of its addresses, and an
	// IPv4-mapped prefix (::ffff:10.0.0.0/104) the IPv4 addresses.
	Allow []netip.Prefix
	// Resolver resolves names (default net.DefaultResolver).
	Resolver *net.Resolver
}

// Check returns nil when the policy allows ip, else an *AddrError.
func (p NetPolicy) Check(ip netip.Addr) error {
	c := ClassifyAddr(ip)
	if c == AddrPublic || (p.AllowPrivate && c != AddrInvalid) {
		return nil
	}
	u := ip.WithZone("").Unmap()
	for _, a := range p.Allow {
		if a.Addr().Is4In6() && a.Bits() >= 96 {
			a = netip.PrefixFrom(a.Addr().Unmap(), a.Bits()-96)
		}
		if a.Contains(u) {
			return nil
		}
	}
	return &AddrError{Addr: ip, Class: c}
}

// control is the dialer's Control hook: address is the IP address and
// port about to be connected to.
func (p NetPolicy) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not an IP address and port", ErrNonPublic, network, address)
	}
	return p.Check(ap.Addr())
}

// Dialer returns a dialer that connects only where the policy allows.
func (p NetPolicy) Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Resolver: p.Resolver, Control: p.control}
}

// checkHost refuses, before any connection, a URL whose host is an IP
// address the policy does not allow (a name is checked once resolved, as
// it is dialled).
func (p NetPolicy) checkHost(u *url.URL) error {
	ip, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		return nil
	}
	return p.Check(ip)
}

// registrationClient fetches registration files: at most
// MaxRegistrationRedirects redirects, each to an http(s) URL checked as
// the agentURI is, within RegistrationTimeout, where the policy allows.
func (p NetPolicy) registrationClient() *http.Client {
	return &http.Client{
		Timeout: RegistrationTimeout,
		Transport: &http.Transport{
			DialContext:            p.Dialer(DialTimeout).DialContext,
			TLSHandshakeTimeout:    TLSHandshakeTimeout,
			MaxResponseHeaderBytes: MaxRegistrationBytes,
			MaxIdleConnsPerHost:    2,
			IdleConnTimeout:        90 * time.Second,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > MaxRegistrationRedirects {
				return fmt.Errorf("more than %d redirects", MaxRegistrationRedirects)
			}
			if _, err := checkURL(req.URL.String()); err != nil {
				return fmt.Errorf("redirect: %w", err)
			}
			if err := p.checkHost(req.URL); err != nil {
				return fmt.Errorf("redirect: %w", err)
			}
			return nil
		},
	}
}

// MaxWorkerHeaderBytes bounds the response headers of a worker's API.
const MaxWorkerHeaderBytes = 64 << 10

// errRedirect is a worker's API answering with a redirect.
var errRedirect = errors.New("the gateway follows no redirect of a worker")

// workerClient reaches the workers' APIs where the policy allows, never
// following a redirect; headerTimeout bounds the wait for response
// headers.
func (p NetPolicy) workerClient(headerTimeout time.Duration) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:           p.Dialer(DialTimeout).DialContext,
			TLSHandshakeTimeout:   TLSHandshakeTimeout,
			ResponseHeaderTimeout: headerTimeout,
			// A worker's headers are a few short lines; the default
			// allowed 10 MiB of them (a receipt id of megabytes).
			MaxResponseHeaderBytes: MaxWorkerHeaderBytes,
			// Go's transparent gzip let a worker's 64 KiB inflate to as
			// many MiB as an answer may hold: the gateway asks for no
			// encoding, and readWorker refuses an answer that has one.
			DisableCompression:  true,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			return fmt.Errorf("redirected to %q: %w", trunc(req.URL.Redacted(), 120), errRedirect)
		},
	}
}
