package multigw

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
)

func TestClassifyAddr(t *testing.T) {
	for _, tc := range []struct {
		ip   string
		want AddrClass
	}{
		{"8.8.8.8", AddrPublic},
		{"1.1.1.1", AddrPublic},
		{"2606:4700:4700::1111", AddrPublic},
		{"0.0.0.0", AddrUnspecified},
		{"0.1.2.3", AddrUnspecified},
		{"::", AddrUnspecified},
		{"127.0.0.1", AddrLoopback},
		{"127.255.255.254", AddrLoopback},
		{"::1", AddrLoopback},
		{"::ffff:127.0.0.1", AddrLoopback},
		{"10.0.0.1", AddrPrivate},
		{"10.255.255.255", AddrPrivate},
		{"11.0.0.1", AddrPublic},
		{"172.15.255.255", AddrPublic},
		{"172.16.0.1", AddrPrivate},
		{"172.31.255.255", AddrPrivate},
		{"172.32.0.0", AddrPublic},
		{"192.168.1.1", AddrPrivate},
		{"::ffff:192.168.1.1", AddrPrivate},
		{"fd00::1", AddrPrivate},
		{"fc00::1", AddrPrivate},
		{"fec0::1", AddrPrivate},
		{"64:ff9b:1::1", AddrPrivate},
		{"169.254.169.254", AddrLinkLocal},
		{"::ffff:169.254.169.254", AddrLinkLocal},
		{"fe80::1", AddrLinkLocal},
		{"fe80::1%eth0", AddrLinkLocal},
		{"100.64.0.1", AddrShared},
		{"100.127.255.255", AddrShared},
		{"100.63.255.255", AddrPublic},
		{"100.128.0.0", AddrPublic},
		{"224.0.0.1", AddrMulticast},
		{"239.255.255.250", AddrMulticast},
		{"ff02::1", AddrMulticast},
		{"ff0e::1", AddrMulticast},
		{"255.255.255.255", AddrReserved},
		{"240.0.0.1", AddrReserved},
		{"198.18.0.1", AddrReserved},
		{"198.19.255.255", AddrReserved},
		{"192.0.0.8", AddrReserved},
		{"192.88.99.1", AddrReserved},
		{"::127.0.0.1", AddrReserved},        // IPv4-compatible
		{"::ffff:0:127.0.0.1", AddrReserved}, // IPv4-translated
		{"100::1", AddrReserved},
		{"2001::1", AddrReserved}, // Teredo
		{"192.0.2.1", AddrDocumentation},
		{"198.51.100.7", AddrDocumentation},
		{"203.0.113.9", AddrDocumentation},
		{"2001:db8::1", AddrDocumentation},
		{"3fff::1", AddrDocumentation},
		// 6to4 and NAT64 hold an IPv4 address: theirs is the class.
		{"2002:7f00:1::", AddrLoopback},
		{"2002:a9fe:a9fe::1", AddrLinkLocal},
		{"2002:808:808::1", AddrPublic},
		{"64:ff9b::10.0.0.1", AddrPrivate},
		{"64:ff9b::127.0.0.1", AddrLoopback},
		{"64:ff9b::8.8.8.8", AddrPublic},
	} {
		ip := netip.MustParseAddr(tc.ip)
		if got := ClassifyAddr(ip); got != tc.want {
			t.Errorf("ClassifyAddr(%s) = %v, want %v", tc.ip, got, tc.want)
		}
	}
	if got := ClassifyAddr(netip.Addr{}); got != AddrInvalid {
		t.Errorf("the zero Addr: %v", got)
	}
}

func TestNetPolicyCheck(t *testing.T) {
	vpc := NetPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00:1::/32")}}
	for _, tc := range []struct {
		p    NetPolicy
		ip   string
		want string // "" when allowed, else the refusal's text
	}{
		{NetPolicy{}, "8.8.8.8", ""},
		{NetPolicy{}, "127.0.0.1", "127.0.0.1 is a loopback address"},
		{NetPolicy{}, "169.254.169.254", "169.254.169.254 is a link-local address"},
		{NetPolicy{}, "::ffff:10.0.0.1", "::ffff:10.0.0.1 is a private address"},
		{NetPolicy{}, "100.64.1.2", "100.64.1.2 is a shared (carrier-grade NAT) address"},
		{NetPolicy{AllowPrivate: true}, "127.0.0.1", ""},
		{NetPolicy{AllowPrivate: true}, "169.254.169.254", ""},
		{NetPolicy{AllowPrivate: true}, "ff02::1", ""},
		{vpc, "10.1.2.3", ""},
		{vpc, "::ffff:10.1.2.3", ""},
		{vpc, "fd00:1::5", ""},
		{vpc, "10.2.0.1", "10.2.0.1 is a private address"},
		{vpc, "fd00:2::5", "fd00:2::5 is a private address"},
		{vpc, "127.0.0.1", "loopback"},
		{vpc, "8.8.4.4", ""},
		{NetPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("::ffff:10.1.0.0/112")}}, "10.1.9.9", ""},
		{NetPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("::ffff:10.1.0.0/112")}}, "10.2.9.9", "10.2.9.9 is a private address"},
	} {
		err := tc.p.Check(netip.MustParseAddr(tc.ip))
		if tc.want == "" {
			if err != nil {
				t.Errorf("%+v %s: %v", tc.p, tc.ip, err)
			}
			continue
		}
		if !errors.Is(err, ErrNonPublic) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v %s: %v, want a refusal with %q", tc.p, tc.ip, err, tc.want)
		}
	}
	if err := (NetPolicy{AllowPrivate: true}).Check(netip.Addr{}); !errors.Is(err, ErrNonPublic) {
		t.Errorf("the zero Addr allowed: %v", err)
	}
}

// FuzzNetPolicyControl: the dialer's hook allows only an IP address and
// port that ClassifyAddr calls public, and never one the standard
// library calls loopback, private, link-local, multicast or unspecified.
func FuzzNetPolicyControl(f *testing.F) {
	for _, s := range []string{"8.8.8.8:80", "127.0.0.1:80", "[::1]:443", "[::ffff:169.254.169.254]:80", "[fe80::1%eth0]:80",
		"[2002:7f00:1::]:80", "[64:ff9b::a00:1]:80", "localhost:80", "", ":80", "1.2.3.4", "[::ffff:8.8.8.8]:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := NetPolicy{}.control("tcp", s, nil)
		if err != nil {
			if !errors.Is(err, ErrNonPublic) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil {
			t.Fatalf("%q allowed, not an address and port: %v", s, perr)
		}
		ip := ap.Addr().Unmap()
		if ClassifyAddr(ip) != AddrPublic || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
			ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() || !ip.IsGlobalUnicast() {
			t.Fatalf("%q allowed", s)
		}
	})
}

// fakeDNS is a resolver whose only server answers, for each name in
// hosts, its address (A or AAAA), and NXDOMAIN for every other name.
func fakeDNS(t *testing.T, hosts map[string]netip.Addr) *net.Resolver {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := dnsAnswer(buf[:n], hosts); resp != nil {
				pc.WriteTo(resp, from)
			}
		}
	}()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
}

// dnsAnswer answers the DNS query q (RFC 1035: header, one question).
func dnsAnswer(q []byte, hosts map[string]netip.Addr) []byte {
	if len(q) < 12 {
		return nil
	}
	i := 12
	var labels []string
	for {
		if i >= len(q) {
			return nil
		}
		n := int(q[i])
		i++
		if n == 0 {
			break
		}
		if n > 63 || i+n > len(q) {
			return nil
		}
		labels = append(labels, string(q[i:i+n]))
		i += n
	}
	if i+4 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i:])
	i += 4
	resp := append([]byte(nil), q[:i]...) // the header and the question
	resp[2] = 0x80 | q[2]&0x01            // a response; recursion desired as asked
	resp[3] = 0x80                        // recursion available, no error
	binary.BigEndian.PutUint16(resp[4:], 1)
	clear(resp[6:12])
	addr, ok := hosts[strings.ToLower(strings.Join(labels, "."))]
	if !ok {
		resp[3] |= 3 // NXDOMAIN
		return resp
	}
	var rr []byte
	switch {
	case qtype == 1 && addr.Is4():
		a := addr.As4()
		rr = a[:]
	case qtype == 28 && addr.Is6():
		a := addr.As16()
		rr = a[:]
	default:
		return resp // no record of that type
	}
	binary.BigEndian.PutUint16(resp[6:], 1)
	resp = append(resp, 0xc0, 12) // the question's name
	resp = binary.BigEndian.AppendUint16(resp, qtype)
	resp = append(resp, 0, 1, 0, 0, 0, 0) // class IN, TTL 0
	resp = binary.BigEndian.AppendUint16(resp, uint16(len(rr)))
	return append(resp, rr...)
}

// addAgent adds a worker agent (stake 1000, price 1) whose agentURI is
// uri and returns its id.
func (l *fakeLedger) addAgent(uri string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	id := uint64(len(l.agents) + 1)
	owner := ledger.Address{byte(id), 0xa7}
	l.agents = append(l.agents, ledger.Agent{AgentID: id, Owner: owner, AgentURI: uri})
	l.meta[fmt.Sprintf("agent/%d/metadata/%s", id, MetaRole)] = []byte(RoleWorker)
	l.meta[fmt.Sprintf("agent/%d/metadata/%s", id, MetaModel)] = []byte(l.model.String())
	l.meta[fmt.Sprintf("agent/%d/metadata/%s", id, MetaPrice)] = []byte("1")
	l.stakes[owner] = ledger.Stake{Bonded: 1000}
	return id
}

// regServer serves, on ln (nil: 127.0.0.1), an agent's (1 by default) good registration
// file (its endpoint base), or with redirect a redirect there; hits counts
// its requests.
type regServer struct {
	srv  *httptest.Server
	hits atomic.Int64
}

func startRegServer(t *testing.T, ln net.Listener, base, redirect string) *regServer {
	return startRegServerFor(t, 1, ln, base, redirect)
}

func startRegServerFor(t *testing.T, agent uint64, ln net.Listener, base, redirect string) *regServer {
	rs := &regServer{}
	rs.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs.hits.Add(1)
		if redirect != "" {
			http.Redirect(w, r, redirect, http.StatusFound)
			return
		}
		reg, _ := gateway.WorkerRegistration{Name: "w", Base: base, ChainID: testChain, AgentID: agent, X402: true}.Build()
		json.NewEncoder(w).Encode(reg)
	}))
	if ln != nil {
		rs.srv.Listener.Close()
		rs.srv.Listener = ln
	}
	rs.srv.Start()
	t.Cleanup(rs.srv.Close)
	return rs
}

func listen(t *testing.T, addr string) net.Listener {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s here: %v", addr, err)
	}
	return ln
}

// errProbe stops a probing dial just before it connects.
var errProbe = errors.New("probe: not connecting")

// probeClient is p's registration client whose connections stop just
// before they connect, after p's check: dialed returns the addresses it
// would have connected to.
func probeClient(p NetPolicy) (hc *http.Client, dialed func() []string) {
	hc = p.registrationClient()
	var mu sync.Mutex
	var got []string
	d := p.Dialer(time.Second)
	d.Control = func(network, address string, c syscall.RawConn) error {
		if err := p.control(network, address, c); err != nil {
			return err
		}
		mu.Lock()
		got = append(got, address)
		mu.Unlock()
		return errProbe
	}
	hc.Transport.(*http.Transport).DialContext = d.DialContext
	return hc, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), got...) }
}

// TestDiscoverRefusesNonPublic is the attack: an agent registers an
// agentURI at loopback, the cloud metadata address, a private network,
// a name resolving to loopback, or a URL that redirects there. Without
// --allow-private-workers the gateway refuses each before connecting,
// the log naming why, and the server there sees no request; with it the
// gateway connects (as it did for every agentURI before): the file is
// fetched and the worker accepted, or, where no server can listen in a
// test, the dial reaches the address itself.
func TestDiscoverRefusesNonPublic(t *testing.T) {
	const path = gateway.RegistrationPath
	const endpoint = "http://worker.example.com:8080" // a name: checked when the gateway connects
	type setup struct {
		uri    string
		hits   func() int64 // requests the non-public server got (nil: probe)
		dialed string       // with probe: the address the gateway dials
		res    *net.Resolver
		allow  []netip.Prefix
	}
	loopback := func(t *testing.T) *regServer { return startRegServer(t, nil, endpoint, "") }
	for _, tc := range []struct {
		name   string
		setup  func(t *testing.T) setup
		reason string
	}{
		{"127.0.0.1", func(t *testing.T) setup {
			rs := loopback(t)
			return setup{uri: rs.srv.URL + path, hits: rs.hits.Load}
		}, "127.0.0.1 is a loopback address"},
		{"[::1]", func(t *testing.T) setup {
			rs := startRegServer(t, listen(t, "[::1]:0"), endpoint, "")
			return setup{uri: rs.srv.URL + path, hits: rs.hits.Load}
		}, "::1 is a loopback address"},
		{"[::ffff:127.0.0.1]", func(t *testing.T) setup {
			rs := loopback(t)
			return setup{uri: "http://[::ffff:127.0.0.1]:" + rs.srv.URL[strings.LastIndexByte(rs.srv.URL, ':')+1:] + path, hits: rs.hits.Load}
		}, "127.0.0.1 is a loopback address"},
		{"localhost", func(t *testing.T) setup {
			rs := loopback(t)
			return setup{uri: strings.Replace(rs.srv.URL, "127.0.0.1", "localhost", 1) + path, hits: rs.hits.Load}
		}, "is a loopback address"},
		{"a name resolving to loopback", func(t *testing.T) setup {
			rs := loopback(t)
			res := fakeDNS(t, map[string]netip.Addr{"registry.example.com": netip.MustParseAddr("127.0.0.1")})
			return setup{uri: strings.Replace(rs.srv.URL, "127.0.0.1", "registry.example.com", 1) + path, hits: rs.hits.Load, res: res}
		}, "127.0.0.1 is a loopback address"},
		// public.example.com stands for a public server: its address
		// (127.0.0.1 here) is allowed, 127.0.0.2 is not.
		{"a public URL redirecting to loopback", func(t *testing.T) setup {
			target := startRegServer(t, listen(t, "127.0.0.2:0"), endpoint, "")
			rs := startRegServer(t, nil, "", target.srv.URL+path)
			res := fakeDNS(t, map[string]netip.Addr{"public.example.com": netip.MustParseAddr("127.0.0.1")})
			return setup{uri: strings.Replace(rs.srv.URL, "127.0.0.1", "public.example.com", 1) + path, hits: target.hits.Load, res: res,
				allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
		}, "redirect: 127.0.0.2 is a loopback address"},
		{"a public URL redirecting to a name resolving to loopback", func(t *testing.T) setup {
			target := startRegServer(t, listen(t, "127.0.0.2:0"), endpoint, "")
			res := fakeDNS(t, map[string]netip.Addr{"public.example.com": netip.MustParseAddr("127.0.0.1"), "intranet.example.com": netip.MustParseAddr("127.0.0.2")})
			rs := startRegServer(t, nil, "", strings.Replace(target.srv.URL, "127.0.0.2", "intranet.example.com", 1)+path)
			return setup{uri: strings.Replace(rs.srv.URL, "127.0.0.1", "public.example.com", 1) + path, hits: target.hits.Load, res: res,
				allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
		}, "127.0.0.2 is a loopback address"},
		{"cloud metadata 169.254.169.254", func(t *testing.T) setup {
			return setup{uri: "http://169.254.169.254/latest/meta-data/", dialed: "169.254.169.254:80"}
		}, "169.254.169.254 is a link-local address"},
		{"[::ffff:169.254.169.254]", func(t *testing.T) setup {
			return setup{uri: "http://[::ffff:a9fe:a9fe]/latest/meta-data/", dialed: "169.254.169.254:80"}
		}, "is a link-local address"},
		{"10.0.0.1", func(t *testing.T) setup { return setup{uri: "http://10.0.0.1:8500/v1/kv/", dialed: "10.0.0.1:8500"} },
			"10.0.0.1 is a private address"},
		{"192.168.1.1", func(t *testing.T) setup { return setup{uri: "https://192.168.1.1/admin", dialed: "192.168.1.1:443"} },
			"192.168.1.1 is a private address"},
		{"100.64.0.1", func(t *testing.T) setup { return setup{uri: "http://100.64.0.1/", dialed: "100.64.0.1:80"} },
			"100.64.0.1 is a shared (carrier-grade NAT) address"},
		{"[fd00::1]", func(t *testing.T) setup { return setup{uri: "http://[fd00::1]/", dialed: "[fd00::1]:80"} },
			"fd00::1 is a private address"},
		{"0.0.0.0", func(t *testing.T) setup { return setup{uri: "http://0.0.0.0:6379/", dialed: "0.0.0.0:6379"} },
			"0.0.0.0 is an unspecified address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.setup(t)
			// Without the flag: refused, the reason logged, nothing reached.
			l := newFakeLedger()
			l.addAgent(s.uri)
			var logs logBuf
			d := &Discovery{Ledger: l, Net: NetPolicy{Resolver: s.res, Allow: s.allow}, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			if s.hits == nil {
				d.HTTP, _ = probeClient(d.Net)
			}
			ws, err := d.Discover(context.Background())
			if err != nil || len(ws) != 0 {
				t.Fatalf("discovered %+v, %v", ws, err)
			}
			if out := logs.String(); strings.Count(out, "worker skipped") != 1 || !strings.Contains(out, tc.reason) {
				t.Fatalf("log, want the refusal %q:\n%s", tc.reason, out)
			}
			if s.hits != nil && s.hits() != 0 {
				t.Fatalf("the non-public server got %d requests", s.hits())
			}
			d.Discover(context.Background())
			if n := strings.Count(logs.String(), "worker skipped"); n != 1 {
				t.Fatalf("the refusal logged %d times", n)
			}
			// With --allow-private-workers: fetched (as without the fix).
			logs = logBuf{}
			d = &Discovery{Ledger: l, Net: NetPolicy{AllowPrivate: true, Resolver: s.res}, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			if s.hits == nil {
				var dialed func() []string
				d.HTTP, dialed = probeClient(d.Net)
				d.Discover(context.Background())
				if got := dialed(); len(got) == 0 || got[0] != s.dialed {
					t.Fatalf("dialed %q, want %s:\n%s", got, s.dialed, logs.String())
				}
				return
			}
			ws, err = d.Discover(context.Background())
			if err != nil || len(ws) != 1 || ws[0].Endpoint != endpoint+"/v1" || s.hits() == 0 {
				t.Fatalf("with the flag: %+v, %v, %d requests:\n%s", ws, err, s.hits(), logs.String())
			}
		})
	}
}

// TestRegistrationRedirects: at most MaxRegistrationRedirects redirects,
// each to an http(s) URL without credentials.
func TestRegistrationRedirects(t *testing.T) {
	const path = gateway.RegistrationPath
	final := startRegServer(t, nil, "http://worker.example.com", "")
	chain := func(n int) string {
		u := final.srv.URL + path
		for range n {
			u = startRegServer(t, nil, "", u).srv.URL + path
		}
		return u
	}
	for _, tc := range []struct {
		name, uri, want string
	}{
		{"three redirects", chain(MaxRegistrationRedirects), ""},
		{"four redirects", chain(MaxRegistrationRedirects + 1), "more than 3 redirects"},
		{"to a file", startRegServer(t, nil, "", "file:///etc/passwd").srv.URL + path, "redirect: \"file:///etc/passwd\" is not an http(s) URL"},
		{"with credentials", startRegServer(t, nil, "", "http://u:p@127.0.0.1:9/x").srv.URL + path, "without credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fetchRegistration(context.Background(), NetPolicy{AllowPrivate: true}.registrationClient(), tc.uri, testChain, 1)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one about %q", err, tc.want)
			}
		})
	}
}

// TestServerRefusesNonPublicWorker is the attack on the forwarding: a
// worker's registration file (on an allowed address) gives an endpoint
// whose name resolves to loopback. Without --allow-private-workers the
// gateway never connects to it (no quote asked, nothing paid), the caller's
// error names the refusal; with it the worker serves. An endpoint at a
// non-public IP address is left out at discovery.
func TestServerRefusesNonPublicWorker(t *testing.T) {
	l := newFakeLedger()
	w := l.addWorkerOn(t, "inside", 500, 1, listen(t, "127.0.0.2:0"))
	port := w.srv.URL[strings.LastIndexByte(w.srv.URL, ':')+1:]
	res := fakeDNS(t, map[string]netip.Addr{"api.example.com": netip.MustParseAddr("127.0.0.2")})
	rs := startRegServer(t, nil, "http://api.example.com:"+port, "")
	l.agents[0].AgentURI = rs.srv.URL + gateway.RegistrationPath
	literal := startRegServerFor(t, 2, nil, "http://10.9.8.7:8080", "")
	literalID := l.addAgent(literal.srv.URL + gateway.RegistrationPath)
	k, err := keys.Generate(t.TempDir() + "/payer.json")
	if err != nil {
		t.Fatal(err)
	}
	post := func(p NetPolicy) (int, string, []Worker) {
		var logs logBuf
		srv, err := New(context.Background(), Options{Ledger: l, Accounts: map[string]*keys.Key{"sk": k}, Net: p,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		gw := httptest.NewServer(srv)
		defer gw.Close()
		req, _ := http.NewRequest(http.MethodPost, gw.URL+"/v1/completions", strings.NewReader(`{"model":"tiny","prompt":"hi","max_tokens":4}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer sk")
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		if !p.AllowPrivate && !strings.Contains(logs.String(), "10.9.8.7 is a private address") {
			t.Errorf("the endpoint at 10.9.8.7 not refused at discovery:\n%s", logs.String())
		}
		return r.StatusCode, string(b), srv.Workers()
	}
	allow := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} // the registration files' server
	code, body, ws := post(NetPolicy{Resolver: res, Allow: allow})
	if len(ws) != 1 || ws[0].AgentID != w.id {
		t.Fatalf("pool %+v", ws)
	}
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "127.0.0.2 is a loopback address") || w.hits.Load() != 0 {
		t.Fatalf("status %d, %s; the worker got %d requests", code, body, w.hits.Load())
	}
	if l.chargedTo(mustAddr(t, k)) != 0 {
		t.Fatal("the payer was charged")
	}
	l.mu.Lock()
	delete(l.meta, fmt.Sprintf("agent/%d/metadata/%s", literalID, MetaRole)) // no test connects to 10.9.8.7
	l.mu.Unlock()
	code, body, _ = post(NetPolicy{AllowPrivate: true, Resolver: res})
	if code != http.StatusOK || w.served.Load() != 1 {
		t.Fatalf("with the flag: status %d, %s; served %d", code, body, w.served.Load())
	}
}

func mustAddr(t *testing.T, k *keys.Key) ledger.Address {
	a, err := ledger.AddressOf(k.Public)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestServerNoWorkerRedirect: a worker whose API redirects is not
// followed (the redirect's target sees nothing) and the request goes to
// the next worker.
func TestServerNoWorkerRedirect(t *testing.T) {
	e := newTestEnv(t)
	var elsewhere atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	t.Cleanup(target.Close)
	to := target.URL
	for _, w := range e.ws[1:] {
		w.redirect.Store(&to)
	}
	for range 6 {
		res, b := e.post(t, `{"model":"tiny","prompt":"hi","max_tokens":4}`)
		if res.StatusCode != http.StatusOK || res.Header.Get(HeaderAgentID) != fmt.Sprint(e.ws[0].id) {
			t.Fatalf("status %d from agent %s: %s", res.StatusCode, res.Header.Get(HeaderAgentID), b)
		}
	}
	if elsewhere.Load() != 0 {
		t.Fatalf("the redirect was followed %d times", elsewhere.Load())
	}
}
