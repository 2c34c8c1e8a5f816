package explorer

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
)

// addAgents registers n agents at the next block, all by the attacker
// (about a fee unit each on a real chain), their ids from 2 on; with
// spread, the next block gives each to an account of its own.
func (w *world) addAgents(n int, spread bool) []ledger.Address {
	attacker := addr("attacker")
	var reg, moved []client.Event
	var owners []ledger.Address
	for i := range n {
		id := uint64(i + 2)
		owner := attacker
		if spread {
			owner = addr(fmt.Sprint("owner ", i))
			owners = append(owners, owner)
			moved = append(moved, ev(ledger.EventAgentTransfer, ledger.AttrFrom, attacker.String(), ledger.AttrTo, owner.String(), ledger.AttrTokenID, fmt.Sprint(id)),
				ev(ledger.EventAgentWalletSet, ledger.AttrAgentID, fmt.Sprint(id), ledger.AttrAgentWallet, ledger.Address{}.String()))
		}
		uri := fmt.Sprintf("https://agent-%d.example/", id)
		w.l.agents[id] = ledger.Agent{AgentID: id, Owner: owner, AgentURI: uri}
		reg = append(reg, ev(ledger.EventRegistered, ledger.AttrAgentID, fmt.Sprint(id), ledger.AttrAgentURI, uri, ledger.AttrOwner, attacker.String()))
	}
	w.block(reg...)
	if spread {
		w.block(moved...)
	}
	return owners
}

// queries returns the node reads that fn made.
func (w *world) queries(fn func()) int64 {
	before := w.l.calls.Load()
	fn()
	return w.l.calls.Load() - before
}

// TestAttackAgentFlood: the account page of an unknown account and the
// workers page ask the node the same number of questions with 10 agents
// registered as with 3000. They asked for every agent ever registered, one
// query each: a curl loop on /explorer/account/<random> made the worker's
// own node answer thousands of queries per request.
func TestAttackAgentFlood(t *testing.T) {
	cost := map[int][2]int64{}
	for _, n := range []int{10, 3000} {
		w := newWorld(t)
		w.addAgents(n, false)
		ts := w.server(t, false)
		random := strings.Repeat("5a", 32)
		var acct, workers int64
		acct = w.queries(func() {
			if code, _, body := get(t, ts.URL+"/explorer/account/"+random); code != http.StatusNotFound {
				t.Fatalf("%d agents: unknown account: %d\n%s", n, code, body)
			}
		})
		workers = w.queries(func() {
			code, _, body := get(t, ts.URL+"/explorer/workers")
			if code != http.StatusOK {
				t.Fatalf("%d agents: workers: %d\n%s", n, code, body)
			}
			// The attacker's row lists its agents, from the index.
			if !strings.Contains(body, `data-address="`+addr("attacker").String()) || !strings.Contains(body, fmt.Sprintf("#%d ", n+1)) {
				t.Errorf("%d agents: the attacker's agents are not listed", n)
			}
		})
		cost[n] = [2]int64{acct, workers}
		t.Logf("%d agents: %d queries for an unknown account, %d for the workers page", n, acct, workers)
	}
	if cost[10] != cost[3000] {
		t.Errorf("queries (unknown account, workers) grow with the agents: %v with 10, %v with 3000", cost[10], cost[3000])
	}
	// An unknown account: account, stake, height, validators.
	if c := cost[3000]; c[0] > 4 || c[1] > 8 {
		t.Errorf("%d queries for an unknown account (want at most 4), %d for the workers page (want at most 8)", c[0], c[1])
	}
}

// TestAttackWorkersPaged: with an agent given to each of 250 accounts, the
// workers page lists 100 rows a page, by stake, with links to the others;
// once drawn, it is drawn again at a later block asking the node for the
// height alone, and then for the stake and name that changed.
func TestAttackWorkersPaged(t *testing.T) {
	w := newWorld(t)
	owners := w.addAgents(250, true)
	ts := w.server(t, false)
	first := w.queries(func() {
		code, _, body := get(t, ts.URL+"/explorer/workers")
		if code != http.StatusOK {
			t.Fatalf("workers: %d\n%s", code, body)
		}
		if n := strings.Count(body, "<tr data-address="); n != workersPerPage {
			t.Errorf("page 1 has %d rows, want %d", n, workersPerPage)
		}
		for _, want := range []string{`Workers 1 to 100 of 251 (page 1 of 3)`, `href="/explorer/workers?page=2" rel="next"`,
			`href="/explorer/workers?page=3" rel="last"`, `data-address="` + addr("worker").String(), `data-field="bonded">900<`} {
			if !strings.Contains(body, want) {
				t.Errorf("page 1 lacks %q", want)
			}
		}
	})
	// Once: each row's stake, and the named and rated agent's name and
	// summaries.
	t.Logf("first drawing: %d queries", first)
	_, _, last := get(t, ts.URL+"/explorer/workers?page=3")
	if n := strings.Count(last, "<tr data-address="); n != 51 || !strings.Contains(last, `rel="prev"`) || strings.Contains(last, `rel="next"`) {
		t.Errorf("page 3 has %d rows (want 51) or wrong links", n)
	}
	for _, p := range []string{"4", "0", "-1", "x", "99999999999999999999", "92233720368547760"} {
		if code, _, _ := get(t, ts.URL+"/explorer/workers?page="+p); code != http.StatusNotFound {
			t.Errorf("page %s: %d, want 404", p, code)
		}
	}

	w.block()
	if n := w.queries(func() { get(t, ts.URL+"/explorer/workers") }); n != 1 {
		t.Errorf("a block with no event: the workers page made %d queries, want 1 (the height)", n)
	}
	// One owner bonds (to the top of the list) and names its agent.
	o := owners[7]
	w.l.stakes[o] = ledger.Stake{Bonded: 5000}
	w.block(ev(ledger.EventBond, ledger.AttrAccount, o.String(), ledger.AttrAmount, "5000", ledger.AttrBonded, "5000"),
		ev(ledger.EventMetadataSet, ledger.AttrAgentID, "9", ledger.AttrMetadataKey, "name"))
	n := w.queries(func() {
		_, _, body := get(t, ts.URL+"/explorer/workers")
		if !strings.Contains(body, `data-field="bonded">5000<`) {
			t.Error("the new bond is not shown")
		}
	})
	if n != 3 {
		t.Errorf("a bond and a name set: the workers page made %d queries, want 3 (height, stake, name)", n)
	}
}

// TestAttackPageDrawnOnce: a page asked for again in the same block, or by
// many at once, is drawn once; the next block draws it again.
func TestAttackPageDrawnOnce(t *testing.T) {
	w := newWorld(t)
	ts := w.server(t, true)
	path := ts.URL + "/explorer/account/" + addr("worker").String()
	get(t, path) // names, models: read once for good
	w.block()
	once := w.queries(func() { get(t, path) })
	if once == 0 {
		t.Fatal("the account page made no query")
	}
	if n := w.queries(func() { get(t, path) }); n != 0 {
		t.Errorf("the same page in the same block made %d queries, want 0", n)
	}
	for _, p := range []string{"/explorer/", "/explorer/models", "/explorer/workers", "/explorer/receipt/" + w.rid.String()} {
		get(t, ts.URL+p)
		if n := w.queries(func() { get(t, ts.URL+p) }); n != 0 {
			t.Errorf("%s again in the same block: %d queries", p, n)
		}
	}

	// 16 browsers refreshing at once at the next block: one drawing.
	w.block()
	w.l.delay = 5 * time.Millisecond
	var wg sync.WaitGroup
	codes := make([]int, 16)
	n := w.queries(func() {
		for i := range codes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := http.Get(path)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				codes[i] = resp.StatusCode
			}()
		}
		wg.Wait()
	})
	if n != once {
		t.Errorf("16 requests at once made %d queries, one drawing makes %d", n, once)
	}
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("request %d: %d", i, c)
		}
	}
}

// TestAttackDrawingBounded: with every slot drawing a page (the node
// slow), another page is refused at once, 503 with Retry-After, rather
// than adding its queries to the node's.
func TestAttackDrawingBounded(t *testing.T) {
	w := newWorld(t)
	w.l.gate = make(chan struct{})
	e, err := New(Options{Ledger: w.l, Index: w.x, MaxBuilds: 2})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(e)
	defer ts.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(w.l.gate) // lets the slow pages end
	for _, p := range []string{"/explorer/models", "/explorer/account/" + addr("worker").String()} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := http.Get(ts.URL + p); err == nil {
				resp.Body.Close()
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for w.l.waiting.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the two pages did not reach the node")
		}
		time.Sleep(5 * time.Millisecond)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	for _, p := range []string{"/explorer/", "/explorer/search?q=" + w.rid.String(), "/explorer/receipt/" + w.rid.String() + "/json"} {
		resp, err := c.Get(ts.URL + p)
		if err != nil {
			t.Fatalf("%s while every slot is taken: %v (want a 503 at once)", p, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s while every slot is taken: %d, Retry-After %q", p, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	if n := w.l.waiting.Load(); n != 2 {
		t.Errorf("%d reads at the node, want the 2 pages'", n)
	}
}

// TestAttackEventStreams: event streams beyond MaxStreams are refused with
// 503 and Retry-After; one closed makes room for another.
func TestAttackEventStreams(t *testing.T) {
	w := newWorld(t)
	e, err := New(Options{Ledger: w.l, Index: w.x, MaxStreams: 3})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(e)
	defer ts.Close()
	open := func() (*http.Response, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/explorer/events", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusOK {
			// The stream is open once its first line came.
			if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
				t.Fatal(err)
			}
		}
		return resp, cancel
	}
	var cancels []context.CancelFunc
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	for i := range 3 {
		resp, cancel := open()
		cancels = append(cancels, cancel)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d: %d", i, resp.StatusCode)
		}
	}
	resp, cancel := open()
	cancel()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a fourth stream: %d, Retry-After %q (want 503)", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	cancels[0]()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, cancel := open()
		cancels = append(cancels, cancel)
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a stream closed made no room: %d", resp.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// addModels registers n models at the next block, all by the attacker
// (a ledger fee each on a real chain).
func (w *world) addModels(n int) {
	var reg []client.Event
	for i := range n {
		id := ledger.Hash(sha256.Sum256([]byte(fmt.Sprint("flood model ", i))))
		w.l.models[id] = ledger.Model{ModelID: id, Name: fmt.Sprint("flood ", i), SpecVersion: 2}
		reg = append(reg, ev(ledger.EventModelRegistered, ledger.AttrModelID, id.String(), ledger.AttrRegistrant, addr("attacker").String()))
	}
	w.block(reg...)
}

// TestAttackModelsFlood: with 3000 models registered by an attacker, the
// models page lists 100 a page, in the order they were registered (the
// chain's own model first), asking the node for the validators and the
// page's models alone; at a later block with no model event, for the
// validators alone. It drew every model, reading each of them once: 3000
// rows of markup at every block, for every open browser.
func TestAttackModelsFlood(t *testing.T) {
	w := newWorld(t)
	w.addModels(3000)
	ts := w.server(t, false)
	first := w.queries(func() {
		code, _, body := get(t, ts.URL+"/explorer/models")
		if code != http.StatusOK {
			t.Fatalf("models: %d\n%s", code, body)
		}
		if n := strings.Count(body, "<tr data-model="); n != modelsPerPage {
			t.Errorf("page 1 has %d rows, want %d", n, modelsPerPage)
		}
		for _, want := range []string{`Models 1 to 100 of 3001 (page 1 of 31)`, `href="/explorer/models?page=2" rel="next"`,
			`href="/explorer/models?page=31" rel="last"`, `<tr data-model="` + w.modelID.String()} {
			if !strings.Contains(body, want) {
				t.Errorf("page 1 lacks %q", want)
			}
		}
	})
	if first > 1+modelsPerPage {
		t.Errorf("the first drawing made %d queries, want at most %d (the validators, the page's models)", first, 1+modelsPerPage)
	}
	_, _, last := get(t, ts.URL+"/explorer/models?page=31")
	if n := strings.Count(last, "<tr data-model="); n != 1 || !strings.Contains(last, `rel="prev"`) || strings.Contains(last, `rel="next"`) ||
		!strings.Contains(last, `data-field="name">flood 2999<`) {
		t.Errorf("page 31 has %d rows (want 1, the last model registered) or wrong links", n)
	}
	for _, p := range []string{"32", "0", "-1", "x", "99999999999999999999", "92233720368547760"} {
		if code, _, _ := get(t, ts.URL+"/explorer/models?page="+p); code != http.StatusNotFound {
			t.Errorf("page %s: %d, want 404", p, code)
		}
	}
	w.block()
	if n := w.queries(func() { get(t, ts.URL+"/explorer/models") }); n != 1 {
		t.Errorf("a block with no event: the models page made %d queries, want 1 (the validators)", n)
	}
}

// TestAttackBusyAccount: the page of an account with many receipts (the
// attacker pays for 60 small ones) lists 50, asking the node for each
// one's status once: in the same block the page costs nothing, at a
// later block the account's four reads (account, stake, height,
// validators) and then only the status of a receipt an event changed;
// the overview likewise reads the chain and the validators alone. They
// read every listed status at every block: a busy account's page, open
// in a browser or fetched in a loop, made the worker's node answer 54
// queries per block.
func TestAttackBusyAccount(t *testing.T) {
	w := newWorld(t)
	ts := w.server(t, false)
	busy, wk := addr("busy"), addr("worker")
	var evs []client.Event
	var ids []ledger.Hash
	for i := range 60 {
		id := ledger.Hash(sha256.Sum256([]byte(fmt.Sprint("busy receipt ", i))))
		escrow := ledger.Hash(sha256.Sum256([]byte(fmt.Sprint("busy escrow ", i))))
		ids = append(ids, id)
		w.l.receipts[id] = ledger.ReceiptRecord{ReceiptID: id, Worker: wk, ModelID: w.modelID, Status: ledger.StatusPublished}
		evs = append(evs, escrowOpened(escrow, busy, wk, w.modelID),
			ev(ledger.EventReceiptPublished, ledger.AttrReceiptID, id.String(), ledger.AttrEscrowID, escrow.String(), ledger.AttrWorker, wk.String(),
				ledger.AttrModelID, w.modelID.String(), ledger.AttrWindowEnd, "100"))
	}
	w.block(evs...)
	path := ts.URL + "/explorer/account/" + busy.String()
	first := w.queries(func() {
		code, _, body := get(t, path)
		if code != http.StatusOK {
			t.Fatalf("the busy account: %d\n%s", code, body)
		}
		if n := strings.Count(body, "<tr data-receipt="); n != 50 {
			t.Errorf("%d receipts listed, want 50", n)
		}
	})
	t.Logf("first drawing: %d queries", first)
	for i := range 3 {
		if n := w.queries(func() { get(t, path) }); n != 0 {
			t.Errorf("view %d in the same block: %d queries, want 0", i+2, n)
		}
	}
	get(t, ts.URL+"/explorer/") // the overview's 20 statuses, read once
	w.block()
	if n := w.queries(func() { get(t, path) }); n != 4 {
		t.Errorf("a block with no event: the busy account's page made %d queries, want 4 (account, stake, height, validators)", n)
	}
	if n := w.queries(func() { get(t, ts.URL+"/explorer/") }); n != 2 {
		t.Errorf("a block with no event: the overview made %d queries, want 2 (chain, validators)", n)
	}
	// The newest receipt is paid out: its status alone is read again.
	last := ids[len(ids)-1]
	rec := w.l.receipts[last]
	rec.Status = ledger.StatusFinal
	w.l.receipts[last] = rec
	w.block(ev(ledger.EventReceiptFinal, ledger.AttrReceiptID, last.String(), ledger.AttrWorker, wk.String(), ledger.AttrFee, "10", ledger.AttrProtocolFee, "0"))
	n := w.queries(func() {
		_, _, body := get(t, path)
		row := regexp.MustCompile(`<tr data-receipt="` + last.String() + `">.*?</tr>`).FindString(body)
		if !strings.Contains(row, `data-status="final"`) {
			t.Errorf("the receipt paid out is not shown final: %q", row)
		}
	})
	if n != 5 {
		t.Errorf("a receipt paid out: the busy account's page made %d queries, want 5 (the four, its status)", n)
	}
}

// serve answers one request from the address remote (with its
// X-Forwarded-For header, when not empty).
func serve(e *Explorer, remote, xff, path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", "http://explorer.test"+path, nil)
	req.RemoteAddr = remote
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

// unknownAccount is the page of an account nobody has: a 404 drawn
// anew each time, four queries.
func unknownAccount(i int) string {
	return "/explorer/account/" + ledger.Hash(sha256.Sum256([]byte(fmt.Sprint("unknown ", i)))).String()
}

// TestAttackClientFlood: one client asking for distinct pages as fast as
// it can (each drawn anew: four queries for an unknown account) is
// answered 429 with Retry-After past its burst, however it varies its
// port, its X-Forwarded-For header or its address inside its IPv6 /64,
// and another client's pages are drawn meanwhile. With every request
// going to the node, the flood took all MaxBuilds slots, and the other
// client's page was refused (503). Behind a trusted proxy, the clients
// are the addresses the proxy appends to X-Forwarded-For, not what a
// client wrote there.
func TestAttackClientFlood(t *testing.T) {
	w := newWorld(t)
	const burst = 5
	proxy := netip.MustParsePrefix("10.0.0.1/32")
	// A token every 1000 s: none comes back during the test.
	e, err := New(Options{Ledger: w.l, Index: w.x, ClientRate: 0.001, ClientBurst: burst, TrustedProxies: []netip.Prefix{proxy}})
	if err != nil {
		t.Fatal(err)
	}
	victim := "198.51.100.9:4000"
	limited := func(name string, n int, req func(i int) *httptest.ResponseRecorder) {
		t.Helper()
		before := w.l.calls.Load()
		for i := range n {
			rec := req(i)
			if i < burst {
				if rec.Code == http.StatusTooManyRequests {
					t.Errorf("%s: request %d refused within the burst", name, i)
				}
				continue
			}
			if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
				t.Fatalf("%s: request %d past the burst: %d, Retry-After %q (want 429)", name, i, rec.Code, rec.Header().Get("Retry-After"))
			}
		}
		if q := w.l.calls.Load() - before; q > 4*burst {
			t.Errorf("%s: %d requests made %d queries, want at most %d (its burst's)", name, n, q, 4*burst)
		}
	}
	// One address, its ports and the header it writes varied.
	limited("one address", 100, func(i int) *httptest.ResponseRecorder {
		return serve(e, fmt.Sprintf("203.0.113.7:%d", 1000+i), fmt.Sprintf("192.0.2.%d", i), unknownAccount(i))
	})
	// Searches and receipt downloads query the node too.
	for _, p := range []string{"/explorer/search?q=" + w.rid.String(), "/explorer/receipt/" + w.rid.String() + "/json"} {
		if rec := serve(e, "203.0.113.7:1", "", p); rec.Code != http.StatusTooManyRequests {
			t.Errorf("%s past the burst: %d, want 429", p, rec.Code)
		}
	}
	// Addresses of one IPv6 /64.
	limited("one /64", 100, func(i int) *httptest.ResponseRecorder {
		return serve(e, fmt.Sprintf("[2001:db8:1:2::%x]:443", i+1), "", unknownAccount(1000+i))
	})
	// The victim's pages are drawn, searches and downloads answered.
	for _, p := range []string{"/explorer/", "/explorer/models", "/explorer/account/" + addr("requester").String(),
		"/explorer/search?q=" + w.rid.String()} {
		if rec := serve(e, victim, "", p); rec.Code != http.StatusOK && rec.Code != http.StatusSeeOther {
			t.Errorf("the other client's %s: %d", p, rec.Code)
		}
	}
	// A page drawn in this block costs the flooder nothing: it gets the
	// copy.
	if rec := serve(e, "203.0.113.7:1", "", "/explorer/models"); rec.Code != http.StatusOK {
		t.Errorf("a page drawn already, to the flooder: %d, want 200 (no query)", rec.Code)
	}

	// Behind the trusted proxy, the flooder writes the victim's address
	// first; the proxy appends the flooder's.
	limited("behind the proxy", 50, func(i int) *httptest.ResponseRecorder {
		return serve(e, "10.0.0.1:5000", "198.51.100.20, 203.0.113.99", unknownAccount(2000+i))
	})
	if rec := serve(e, "10.0.0.1:5000", "198.51.100.20", unknownAccount(3000)); rec.Code != http.StatusNotFound {
		t.Errorf("the victim behind the proxy: %d, want its 404 page", rec.Code)
	}
	// An untrusted address writing the header is itself the client.
	limited("an untrusted proxy", 50, func(i int) *httptest.ResponseRecorder {
		return serve(e, "10.0.0.2:5000", fmt.Sprintf("198.51.100.%d", i), unknownAccount(4000+i))
	})

	// Concurrently, with the node slow: the flood takes no more slots
	// than its burst, and the other client's page is drawn.
	w.block()
	w.l.gate = make(chan struct{})
	release := sync.OnceFunc(func() { close(w.l.gate) })
	defer release()
	var wg sync.WaitGroup
	defer wg.Wait()
	var answered atomic.Int64
	const flood = 50
	for i := range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			serve(e, "203.0.113.50:1", "", unknownAccount(5000+i))
			answered.Add(1)
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for answered.Load()+w.l.waiting.Load() < flood {
		if time.Now().After(deadline) {
			t.Fatal("the flood's requests neither reached the node nor were answered")
		}
		time.Sleep(5 * time.Millisecond)
	}
	held := w.l.waiting.Load()
	code := make(chan int, 1)
	go func() { code <- serve(e, victim, "", "/explorer/account/"+addr("worker").String()).Code }()
	for w.l.waiting.Load() <= held && len(code) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the other client's page neither reached the node nor was answered")
		}
		time.Sleep(5 * time.Millisecond)
	}
	release()
	got := <-code
	if held > burst {
		t.Errorf("the flood held %d slots at the node, want at most %d", held, burst)
	}
	if got != http.StatusOK {
		t.Errorf("the other client's page during the flood: %d, want 200", got)
	}
}
