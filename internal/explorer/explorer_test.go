package explorer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/modelid"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/synth"
	"github.com/verdictnet/verdict/internal/tensor"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// fakeLedger answers the explorer's reads from maps.
type fakeLedger struct {
	chain    ledger.ChainInfo
	vals     []ledger.ValidatorUpdate
	accounts map[ledger.Address]ledger.Account
	stakes   map[ledger.Address]ledger.Stake
	models   map[ledger.Hash]ledger.Model
	agents   map[uint64]ledger.Agent
	receipts map[ledger.Hash]ledger.ReceiptRecord
	data     map[ledger.Hash][]byte
	audits   map[ledger.Hash]ledger.Audit
	disputes map[ledger.Hash]ledger.Dispute
	meta     map[string][]byte // answers to agent/ID/metadata/KEY
	down     bool
	// calls counts the reads answered (every method); each waits delay,
	// then for gate when it is set, counted in waiting meanwhile.
	calls   atomic.Int64
	delay   time.Duration
	gate    chan struct{}
	waiting atomic.Int64
}

// hit counts one read of the node.
func (f *fakeLedger) hit() {
	f.calls.Add(1)
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	if f.gate != nil {
		f.waiting.Add(1)
		<-f.gate
		f.waiting.Add(-1)
	}
}

var errDown = errors.New("connection refused")

func newFake() *fakeLedger {
	return &fakeLedger{accounts: map[ledger.Address]ledger.Account{}, stakes: map[ledger.Address]ledger.Stake{},
		models: map[ledger.Hash]ledger.Model{}, agents: map[uint64]ledger.Agent{}, receipts: map[ledger.Hash]ledger.ReceiptRecord{},
		data: map[ledger.Hash][]byte{}, audits: map[ledger.Hash]ledger.Audit{}, disputes: map[ledger.Hash]ledger.Dispute{}, meta: map[string][]byte{}}
}

func (f *fakeLedger) Query(_ context.Context, path string, data []byte) ([]byte, error) {
	f.hit()
	if f.down {
		return nil, errDown
	}
	switch path {
	case "chain":
		return json.Marshal(f.chain)
	case "summary":
		return json.Marshal(ledger.Summary{Count: 2, SummaryValue: "875", SummaryValueDecimals: 1})
	case "validationSummary":
		return json.Marshal(ledger.ValidationSummary{Count: 3, AvgResponse: 100})
	case "agent/1/metadata/name":
		return json.Marshal([]byte("cat " + hostile))
	}
	if v, ok := f.meta[path]; ok {
		return json.Marshal(v)
	}
	return nil, fmt.Errorf("fake ledger: no path %s", path)
}

func (f *fakeLedger) Height(context.Context) (int64, error) {
	f.hit()
	if f.down {
		return 0, errDown
	}
	return int64(f.chain.Height), nil
}

func (f *fakeLedger) Validators(context.Context) ([]ledger.ValidatorUpdate, error) {
	f.hit()
	if f.down {
		return nil, errDown
	}
	return f.vals, nil
}

func (f *fakeLedger) Params(context.Context) (ledger.Params, error) {
	f.hit()
	return ledger.DefaultParams(), nil
}

func lookup[K comparable, V any](f *fakeLedger, m map[K]V, k K) (V, bool, error) {
	f.hit()
	if f.down {
		var v V
		return v, false, errDown
	}
	v, ok := m[k]
	return v, ok, nil
}

func (f *fakeLedger) Account(_ context.Context, a ledger.Address) (ledger.Account, error) {
	v, _, err := lookup(f, f.accounts, a)
	return v, err
}

func (f *fakeLedger) Stake(_ context.Context, a ledger.Address) (ledger.Stake, error) {
	v, _, err := lookup(f, f.stakes, a)
	return v, err
}

func (f *fakeLedger) Model(_ context.Context, id ledger.Hash) (ledger.Model, bool, error) {
	return lookup(f, f.models, id)
}

func (f *fakeLedger) Agent(_ context.Context, id uint64) (ledger.Agent, bool, error) {
	return lookup(f, f.agents, id)
}

func (f *fakeLedger) Receipt(_ context.Context, id ledger.Hash) (ledger.ReceiptRecord, bool, error) {
	return lookup(f, f.receipts, id)
}

func (f *fakeLedger) ReceiptData(_ context.Context, id ledger.Hash) ([]byte, error) {
	v, ok, err := lookup(f, f.data, id)
	if err == nil && !ok {
		err = errors.New("not found")
	}
	return v, err
}

func (f *fakeLedger) Audit(_ context.Context, id ledger.Hash) (ledger.Audit, bool, error) {
	return lookup(f, f.audits, id)
}

func (f *fakeLedger) Dispute(_ context.Context, id ledger.Hash) (ledger.Dispute, bool, error) {
	return lookup(f, f.disputes, id)
}

func key(name string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte("explorer test " + name))
	return ed25519.NewKeyFromSeed(s[:])
}

func addr(name string) ledger.Address { return ledger.Address(key(name).Public().(ed25519.PublicKey)) }

// builtinModel writes and loads the built-in model (the devnet's).
func builtinModel(t testing.TB) (*model.Model, ledger.Hash) {
	t.Helper()
	var buf bytes.Buffer
	if err := synth.GenerateBuiltin("tiny", synth.BuiltinSeed, tensor.F32, &buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(path, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	id, err := modelid.Of(m)
	if err != nil {
		t.Fatal(err)
	}
	return m, ledger.Hash(id)
}

// hostile is text from the ledger that must be shown, never run.
const hostile = `<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">`

// world is a small chain: a model whose name is markup, a worker whose
// agent URI is a javascript: link, a receipt whose prompt is markup, with
// an audit and a dispute the worker lost.
type world struct {
	l       *fakeLedger
	x       *Index
	m       *model.Model
	modelID ledger.Hash
	rid     ledger.Hash
	did     ledger.Hash
	prompt  string
}

func newWorld(t testing.TB) *world {
	t.Helper()
	m, mid := builtinModel(t)
	tk, err := tokenizer.New(m.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{l: newFake(), x: NewIndex(), m: m, modelID: mid, prompt: "Once " + hostile}
	prompt, err := tk.Encode(w.prompt, true)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := tk.Decode(prompt); !strings.Contains(got, hostile) {
		t.Fatalf("the tokenizer does not round-trip the hostile prompt: %q", got)
	}
	out, _ := tk.Encode(" there was a cat", false)
	r := &receipt.Receipt{Version: receipt.Version, Spec: receipt.DefaultSpec, Model: merkle.Hash(mid),
		Sampling: receipt.Sampling{Steps: len(prompt) + len(out)}, Prompt: prompt, Output: out,
		LogitsRoot: merkle.LeafHash([]byte("logits")), TraceRoot: merkle.LeafHash([]byte("trace"))}
	if err := r.Sign(key("worker")); err != nil {
		t.Fatal(err)
	}
	data, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	w.rid = ledger.Hash(r.ID())
	w.did = ledger.Hash(sha256.Sum256([]byte("dispute")))
	wk, req, ver := addr("worker"), addr("requester"), addr("validator")
	l := w.l
	l.chain = ledger.ChainInfo{ChainID: "test", Height: 40, Time: 1_700_000_040}
	l.vals = []ledger.ValidatorUpdate{{PubKey: ver, Power: 10}}
	l.models[mid] = ledger.Model{ModelID: mid, Name: "tiny " + hostile, SpecVersion: 2, Active: true, Attesters: []ledger.Address{ver}}
	hostileURI := `javascript:window.__pwned=1//"><script>window.__pwned=1</script>`
	l.agents[1] = ledger.Agent{AgentID: 1, Owner: wk, AgentURI: hostileURI, AgentWallet: wk}
	l.stakes[wk] = ledger.Stake{Bonded: 900, Slashed: 1, JailedUntil: 140}
	l.accounts[req] = ledger.Account{Balance: 5000, Nonce: 3}
	l.receipts[w.rid] = ledger.ReceiptRecord{ReceiptID: w.rid, Worker: wk, ModelID: mid, Height: 10, WindowEnd: 25,
		Status: ledger.StatusSlashed, Audited: true, Audit: ledger.AuditPassed, DisputeID: w.did}
	l.data[w.rid] = data
	l.audits[w.rid] = ledger.Audit{ReceiptID: w.rid, Seed: ledger.Hash{7}, Cells: 4, Deadline: 20, Status: ledger.AuditPassed}
	l.disputes[w.did] = ledger.Dispute{DisputeID: w.did, ReceiptID: w.rid, Worker: wk, Challenger: ver, Moves: 4,
		Status: ledger.DisputeWorkerLost, WorkerFault: dispute.FaultStateMismatch, Game: game(t)}
	t0 := time.Unix(1_700_000_000, 0)
	escrow := ledger.Hash{9}
	blocks := map[int64][]client.Event{
		1: {ev(ledger.EventModelRegistered, ledger.AttrModelID, mid.String(), ledger.AttrRegistrant, wk.String()),
			ev(ledger.EventRegistered, ledger.AttrAgentID, "1", ledger.AttrAgentURI, hostileURI, ledger.AttrOwner, wk.String()),
			ev(ledger.EventMetadataSet, ledger.AttrAgentID, "1", ledger.AttrMetadataKey, "name"),
			ev(ledger.EventBond, ledger.AttrAccount, wk.String(), ledger.AttrAmount, "900", ledger.AttrBonded, "900")},
		9: {escrowOpened(escrow, req, wk, mid)},
		10: {ev(ledger.EventReceiptPublished, ledger.AttrReceiptID, w.rid.String(), ledger.AttrEscrowID, escrow.String(), ledger.AttrWorker, wk.String(),
			ledger.AttrModelID, mid.String(), ledger.AttrWindowEnd, "25")},
		12: {ev(ledger.EventAuditSelected, ledger.AttrReceiptID, w.rid.String(), ledger.AttrSeed, ledger.Hash{7}.String(), ledger.AttrCells, "4",
			ledger.AttrDeadline, "20", ledger.AttrWorker, wk.String())},
		14: {ev(ledger.EventAuditPassed, ledger.AttrReceiptID, w.rid.String())},
		15: {ev(ledger.EventDisputeOpened, ledger.AttrDisputeID, w.did.String(), ledger.AttrReceiptID, w.rid.String(), ledger.AttrChallenger, ver.String(),
			ledger.AttrWorker, wk.String())},
		16: {ev(ledger.EventDisputeMove, ledger.AttrDisputeID, w.did.String(), ledger.AttrFrom, ledger.SideChallenger.String(), ledger.AttrMove, "1")},
		20: {ev(ledger.EventDisputeSettled, ledger.AttrDisputeID, w.did.String(), ledger.AttrStatus, ledger.DisputeWorkerLost,
			ledger.AttrWorkerFault, string(dispute.FaultStateMismatch), ledger.AttrChallengerFault, "", ledger.AttrVoidFault, "", ledger.AttrReason, "cell 5")},
		// Feedback and a validation of the agent (the fake's summaries
		// answer for them).
		22: {feedback(1, req), ev(ledger.EventValidationResponse, ledger.AttrValidatorAddress, ver.String(), ledger.AttrAgentID, "1",
			ledger.AttrRequestHash, ledger.Hash{5}.String(), ledger.AttrResponse, "100", ledger.AttrResponseURI, "", ledger.AttrResponseHash, ledger.Hash{}.String(), ledger.AttrTag, "")},
	}
	for h := int64(1); h <= 40; h++ {
		w.x.Add(client.Block{Height: h, Time: t0.Add(time.Duration(h) * time.Second), Events: blocks[h]})
	}
	return w
}

// block indexes the next block, with events.
func (w *world) block(events ...client.Event) {
	h, _ := w.x.Height()
	w.x.Add(client.Block{Height: h + 1, Time: time.Unix(1_700_000_000+h+1, 0), Events: events})
	w.l.chain.Height = uint64(h + 1)
}

// ev builds an event as a block holds it: attribute keys and values.
func ev(typ ledger.EventType, kv ...any) client.Event {
	e := client.Event{Event: ledger.Event{Type: typ}}
	for i := 0; i+1 < len(kv); i += 2 {
		e.Attrs = append(e.Attrs, ledger.Attr{Key: kv[i].(ledger.AttrKey), Value: kv[i+1].(string)})
	}
	return e
}

func escrowOpened(id ledger.Hash, requester, worker ledger.Address, model ledger.Hash) client.Event {
	return ev(ledger.EventEscrowOpened, ledger.AttrEscrowID, id.String(), ledger.AttrRequester, requester.String(), ledger.AttrWorker, worker.String(),
		ledger.AttrModelID, model.String(), ledger.AttrFee, "10", ledger.AttrExpires, "100")
}

// feedback is a NewFeedback event: from rated the agent.
func feedback(agent uint64, from ledger.Address) client.Event {
	return ev(ledger.EventNewFeedback, ledger.AttrAgentID, fmt.Sprint(agent), ledger.AttrClientAddress, from.String(), ledger.AttrFeedbackIndex, "1",
		ledger.AttrValue, "1", ledger.AttrValueDecimals, "0", ledger.AttrTag1, "", ledger.AttrTag2, "", ledger.AttrEndpoint, "",
		ledger.AttrFeedbackURI, "", ledger.AttrFeedbackHash, ledger.Hash{}.String())
}

// game is a stored dispute transcript: three node rounds narrowing 16
// cells to one, then the leaf round.
func game(t testing.TB) []byte {
	t.Helper()
	type entry struct {
		Height uint64      `json:"height"`
		From   ledger.Side `json:"from,omitempty"`
		Msg    []byte      `json:"msg,omitempty"`
	}
	var es []entry
	for i, r := range [][2]int{{0, 16}, {0, 8}, {4, 8}, {4, 6}} {
		for _, side := range []ledger.Side{ledger.SideWorker, ledger.SideChallenger} {
			m := dispute.Message{Kind: dispute.Node, From: dispute.Party(side - 1), Round: i + 1, Start: r[0], End: r[1],
				Left: merkle.LeafHash([]byte{byte(i)}), Right: merkle.LeafHash([]byte{byte(side)})}
			b, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			es = append(es, entry{Height: uint64(16 + i), From: side, Msg: b})
		}
	}
	b, err := json.Marshal(map[string]any{"receipt": []byte("r"), "commitment": []byte("c"), "start": 15, "timeout": 8, "entries": es})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (w *world) server(t *testing.T, models bool) *httptest.Server {
	t.Helper()
	// The pages' tests draw more pages, from one address, than a
	// client may: TestAttackClientFlood tests the bound.
	o := Options{Ledger: w.l, Index: w.x, ClientRate: -1}
	if models {
		o.Models = map[ledger.Hash]*model.Model{w.modelID: w.m}
	}
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(e)
	t.Cleanup(ts.Close)
	return ts
}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// TestPages draws every page and checks what it says.
func TestPages(t *testing.T) {
	w := newWorld(t)
	ts := w.server(t, true)
	wk := addr("worker")
	for _, c := range []struct {
		name, path string
		want       []string
	}{
		{"overview", "/explorer/", []string{`id="height">40<`, `id="validators-count">1<`, `id="audits-passed">1<`, `id="audits-failed">0<`,
			`id="open-disputes">0<`, `data-receipt="` + w.rid.String(), `✗ slashed`, `1 receipts in the last 39s`}},
		{"models", "/explorer/models", []string{`data-model="` + w.modelID.String(), `100.0% (1 validators, power 10)`, `data-field="receipts">1<`}},
		{"workers", "/explorer/workers", []string{`data-address="` + wk.String(), `data-field="bonded">900<`, `87.5 (2 feedback)`,
			`validations: 100/100 (3 responses)`, `data-field="agent-name">cat &lt;script&gt;`, `data-field="receipts">1<`, `data-field="audits">1<`, `0 won / 1 lost`, `✗ jailed until block 140`}},
		{"receipt", "/explorer/receipt/" + w.rid.String(), []string{`id="status"><span class="status status-slashed" data-status="slashed">✗ slashed`,
			`<li data-status="published">`, `<li data-status="audited">`, `<li data-status="challenged">`, `<li data-status="slashed">`,
			`4 rounds narrowing 16 cells`, `round 1 (block 16): cells 0 to 15; answered by worker, challenger`, `data-start="4" data-end="6"`,
			`verdict verify receipt-` + w.rid.String() + `.json --model `, `Audit of 4 cells`, `cell `}},
		{"account", "/explorer/account/" + addr("requester").String(), []string{`id="balance">5000<`, `id="nonce">3<`, `data-receipt="` + w.rid.String()}},
		{"worker account", "/explorer/account/" + wk.String(), []string{`id="bonded">900<`, `agent #1 <span data-field="agent-name">cat &lt;script&gt;`, `1 receipts served`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, hdr, body := get(t, ts.URL+c.path)
			if code != 200 {
				t.Fatalf("GET %s: %d\n%s", c.path, code, body)
			}
			if !strings.Contains(hdr.Get("Content-Security-Policy"), "script-src 'self'") {
				t.Errorf("no Content-Security-Policy: %q", hdr.Get("Content-Security-Policy"))
			}
			for _, want := range c.want {
				if !strings.Contains(body, want) {
					t.Errorf("GET %s lacks %q", c.path, want)
				}
			}
			checkEscaped(t, body)
		})
	}
}

// checkEscaped fails when markup from the ledger reached the page as
// markup: the only script element is the explorer's own, no element has
// an inline handler, no link is javascript:.
func checkEscaped(t testing.TB, body string) {
	t.Helper()
	if n := strings.Count(body, "<script"); n != 1 || !strings.Contains(body, `<script src="/explorer/static/app.js" defer></script>`) {
		t.Errorf("%d script elements (want only the explorer's)", n)
	}
	if regexp.MustCompile(`<[^>]*\sonerror=`).MatchString(body) {
		t.Error("an element with an inline handler reached the page")
	}
	if strings.Contains(body, `href="javascript:`) {
		t.Error("a javascript: link reached the page")
	}
}

// TestReceiptDecoded: with the model, the prompt shows as its text
// (escaped); without it, as token ids.
func TestReceiptDecoded(t *testing.T) {
	w := newWorld(t)
	for _, c := range []struct {
		models bool
		want   string
	}{
		{true, `&lt;script&gt;window.__pwned=1&lt;/script&gt;&lt;img src=x onerror=&#34;window.__pwned=1&#34;&gt;`},
		{false, `This explorer does not hold the model, so it shows token ids.`},
	} {
		ts := w.server(t, c.models)
		_, _, body := get(t, ts.URL+"/explorer/receipt/"+w.rid.String())
		if !strings.Contains(body, c.want) {
			t.Errorf("models %v: the receipt page lacks %q", c.models, c.want)
		}
		if c.models && strings.Contains(body, "MODEL.gguf") {
			t.Error("the verify command does not name the held model's file")
		}
		checkEscaped(t, body)
	}
}

// TestBadInput: unknown and malformed ids are 404 pages, a node that does
// not answer a 502 page; never a 500.
func TestBadInput(t *testing.T) {
	w := newWorld(t)
	ts := w.server(t, true)
	unknown := strings.Repeat("ab", 32)
	for _, c := range []struct {
		path   string
		status int
		want   string
	}{
		{"/explorer/receipt/" + unknown, 404, "The ledger has no receipt " + unknown},
		{"/explorer/receipt/" + unknown + "/json", 404, "The ledger has no receipt"},
		{"/explorer/receipt/xyz", 404, "is not a receipt id"},
		{"/explorer/receipt/%3Cscript%3Ealert(1)%3C%2Fscript%3E", 404, "&#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34; is not a receipt id"},
		{"/explorer/receipt/" + strings.ToUpper(w.rid.String()), 404, "lower-case hex"},
		{"/explorer/account/" + unknown, 404, "The ledger has no account " + unknown},
		{"/explorer/account/0x12", 404, "is not an account"},
		{"/explorer/nothing/here", 404, "There is no page /explorer/nothing/here here."},
		{"/explorer/search?q=%3Cb%3E", 404, "&#34;&lt;b&gt;&#34; is neither a receipt id nor an account"},
	} {
		code, hdr, body := get(t, ts.URL+c.path)
		if code != c.status || !strings.Contains(body, c.want) {
			t.Errorf("GET %s: %d, want %d with %q\n%s", c.path, code, c.status, c.want, body)
		}
		if ct := hdr.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", c.path, ct)
		}
		checkEscaped(t, body)
	}
	w.l.down = true
	for _, p := range []string{"/explorer/", "/explorer/models", "/explorer/workers", "/explorer/receipt/" + w.rid.String(), "/explorer/account/" + unknown} {
		code, _, body := get(t, ts.URL+p)
		if code != http.StatusBadGateway || !strings.Contains(body, "The ledger node did not answer") {
			t.Errorf("GET %s with the node down: %d\n%s", p, code, body)
		}
	}
}

// TestReceiptJSON: the download is the ledger's bytes, named for `verdict
// verify`.
func TestReceiptJSON(t *testing.T) {
	w := newWorld(t)
	ts := w.server(t, false)
	code, hdr, body := get(t, ts.URL+"/explorer/receipt/"+w.rid.String()+"/json")
	if code != 200 || body != string(w.l.data[w.rid]) {
		t.Fatalf("download: %d, %d bytes (want the ledger's %d)", code, len(body), len(w.l.data[w.rid]))
	}
	if cd := hdr.Get("Content-Disposition"); cd != `attachment; filename="receipt-`+w.rid.String()+`.json"` {
		t.Errorf("Content-Disposition %q", cd)
	}
	if _, err := receipt.Parse([]byte(body)); err != nil {
		t.Errorf("the download does not parse as a receipt: %v", err)
	}
}

// TestSearch sends an id to its page.
func TestSearch(t *testing.T) {
	w := newWorld(t)
	ts := w.server(t, false)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for q, want := range map[string]string{
		w.rid.String():                        "/explorer/receipt/" + w.rid.String(),
		" " + strings.ToUpper(w.rid.String()): "/explorer/receipt/" + w.rid.String(),
		addr("requester").String():            "/explorer/account/" + addr("requester").String(),
	} {
		resp, err := c.Get(ts.URL + "/explorer/search?q=" + strings.ReplaceAll(q, " ", "+"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
			t.Errorf("search %q: %d to %q, want %q", q, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
}

// TestEvents: the event stream sends one event per block indexed.
func TestEvents(t *testing.T) {
	w := newWorld(t)
	ts := w.server(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/explorer/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	// The block comes as soon as the headers have: the events were
	// watched before they went out (a block read between the headers and
	// the watch was missed).
	w.x.Add(client.Block{Height: 41, Time: time.Unix(1_700_000_041, 0)})
	buf := make([]byte, 0, 256)
	tmp := make([]byte, 256)
	for !strings.Contains(string(buf), "\n\n") || !strings.Contains(string(buf), "event: block") {
		n, err := resp.Body.Read(tmp)
		if err != nil {
			t.Fatalf("read %q: %v", buf, err)
		}
		buf = append(buf, tmp[:n]...)
	}
	if !strings.Contains(string(buf), `event: block`+"\n"+`data: {"height":41,"version":41}`) {
		t.Fatalf("stream %q", buf)
	}
}

// TestIndexOrder: a block already indexed is ignored, and counts follow
// the events.
func TestIndexOrder(t *testing.T) {
	w := newWorld(t)
	before := w.x.snapshot()
	w.x.Add(client.Block{Height: 10, Events: []client.Event{ev(ledger.EventReceiptPublished, ledger.AttrReceiptID, strings.Repeat("cd", 32),
		ledger.AttrEscrowID, ledger.Hash{4}.String(), ledger.AttrWorker, addr("worker").String(), ledger.AttrModelID, w.modelID.String(), ledger.AttrWindowEnd, "30")}})
	after := w.x.snapshot()
	if after.Receipts != before.Receipts || after.Height != 40 {
		t.Fatalf("an old block changed the index: %d receipts, height %d", after.Receipts, after.Height)
	}
	ws := after.Workers[addr("worker")]
	if ws.Receipts != 1 || ws.AuditsAnswered != 1 || ws.DisputesLost != 1 || ws.DisputesWon != 0 {
		t.Fatalf("worker counts %+v", ws)
	}
	// An escrow refunded unclaimed is forgotten.
	w.x.Add(client.Block{Height: 41, Events: []client.Event{escrowOpened(ledger.Hash{3}, addr("requester"), addr("worker"), w.modelID)}})
	if n := len(w.x.escrows); n != 1 {
		t.Fatalf("%d escrows remembered after one opened", n)
	}
	w.x.Add(client.Block{Height: 42, Events: []client.Event{ev(ledger.EventEscrowRefunded, ledger.AttrEscrowID, ledger.Hash{3}.String(),
		ledger.AttrRequester, addr("requester").String(), ledger.AttrFee, "10", ledger.AttrReason, "expired")}})
	if n := len(w.x.escrows); n != 0 {
		t.Fatalf("%d escrows remembered after the refund", n)
	}
}

// TestAgentsFollowEvents: the agents an account page lists, with their
// URIs and names, follow the identity events: registration (the owner
// its wallet), a URI changed, a name set (read again from the ledger),
// a transfer (the wallet cleared), a new wallet. An agent registered
// before the first block indexed is not listed, as before the index kept
// agents (the explorer cannot know its owner).
func TestAgentsFollowEvents(t *testing.T) {
	w := newWorld(t)
	ts := w.server(t, false)
	alice, bob, carol := addr("alice"), addr("bob"), addr("carol")
	w.l.accounts[alice] = ledger.Account{Balance: 1}
	w.l.accounts[carol] = ledger.Account{Balance: 1}
	agents := func(a ledger.Address) string {
		t.Helper()
		code, _, body := get(t, ts.URL+"/explorer/account/"+a.String())
		if code == http.StatusNotFound {
			return ""
		}
		var out []string
		for _, m := range regexp.MustCompile(`<li>agent #(\d+)(?: <span data-field="agent-name">([^<]*)</span>)?: <span class="uri">([^<]*)</span>`).FindAllStringSubmatch(body, -1) {
			out = append(out, m[1]+" "+m[2]+" "+m[3])
		}
		return strings.Join(out, "; ")
	}
	w.block(ev(ledger.EventURIUpdated, ledger.AttrAgentID, "7", ledger.AttrAgentURI, "x", ledger.AttrUpdatedBy, alice.String()), // unknown agent
		ev(ledger.EventRegistered, ledger.AttrAgentID, "2", ledger.AttrAgentURI, "ipfs://a", ledger.AttrOwner, alice.String()))
	if got := agents(alice); got != "2  ipfs://a" {
		t.Errorf("registered: %q", got)
	}
	w.l.meta["agent/2/metadata/name"] = []byte("Ada")
	w.block(ev(ledger.EventURIUpdated, ledger.AttrAgentID, "2", ledger.AttrAgentURI, "ipfs://b", ledger.AttrUpdatedBy, alice.String()),
		ev(ledger.EventMetadataSet, ledger.AttrAgentID, "2", ledger.AttrMetadataKey, "name"))
	if got := agents(alice); got != "2 Ada ipfs://b" {
		t.Errorf("URI and name set: %q", got)
	}
	w.l.meta["agent/2/metadata/name"] = []byte("Ada Lovelace")
	w.block(ev(ledger.EventMetadataSet, ledger.AttrAgentID, "2", ledger.AttrMetadataKey, "description"))
	if got := agents(alice); got != "2 Ada ipfs://b" {
		t.Errorf("another key set: %q (the name is read again only when it is set)", got)
	}
	w.block(ev(ledger.EventMetadataSet, ledger.AttrAgentID, "2", ledger.AttrMetadataKey, "name"))
	if got := agents(alice); got != "2 Ada Lovelace ipfs://b" {
		t.Errorf("name set again: %q", got)
	}
	w.block(ev(ledger.EventAgentTransfer, ledger.AttrFrom, alice.String(), ledger.AttrTo, bob.String(), ledger.AttrTokenID, "2"),
		ev(ledger.EventAgentWalletSet, ledger.AttrAgentID, "2", ledger.AttrAgentWallet, ledger.Address{}.String()))
	if got := agents(alice); got != "" {
		t.Errorf("after the transfer, the old owner lists %q", got)
	}
	if got := agents(bob); got != "2 Ada Lovelace ipfs://b" {
		t.Errorf("after the transfer, the new owner lists %q", got)
	}
	w.block(ev(ledger.EventAgentWalletSet, ledger.AttrAgentID, "2", ledger.AttrAgentWallet, carol.String()))
	if got := agents(carol); got != "2 Ada Lovelace ipfs://b" {
		t.Errorf("the new wallet lists %q", got)
	}
	if got := agents(bob); got != "2 Ada Lovelace ipfs://b" {
		t.Errorf("the owner, with another wallet, lists %q", got)
	}
	// Past accountAgents, the page says how many more there are.
	var reg []client.Event
	for i := range accountAgents + 5 {
		reg = append(reg, ev(ledger.EventRegistered, ledger.AttrAgentID, fmt.Sprint(100+i), ledger.AttrAgentURI, "u", ledger.AttrOwner, carol.String()))
	}
	w.block(reg...)
	_, _, body := get(t, ts.URL+"/explorer/account/"+carol.String())
	if n := strings.Count(body, "<li>agent #"); n != accountAgents || !strings.Contains(body, `id="more-agents">and 6 more agents`) {
		t.Errorf("an account with %d agents lists %d", accountAgents+6, n)
	}
}

// TestRateChart: the bars hold every receipt, each in the interval of its
// block's time.
func TestRateChart(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var blocks []blockStat
	for i := range 41 {
		blocks = append(blocks, blockStat{Height: int64(i + 1), Time: t0.Add(time.Duration(i) * 500 * time.Millisecond), Receipts: i % 3})
	}
	c := rateChart(blocks)
	if len(c.Bars) != rateChartBuckets {
		t.Fatalf("%d bars", len(c.Bars))
	}
	total := 0
	for _, b := range blocks[1:] {
		total += b.Receipts
	}
	if !strings.HasPrefix(c.Label, fmt.Sprintf("%d receipts in the last 20s (41 blocks): %.2f per second", total, float64(total)/20)) {
		t.Fatalf("label %q", c.Label)
	}
	if c := rateChart(blocks[:1]); len(c.Bars) != 0 || c.Label == "" {
		t.Fatalf("one block: %+v", c)
	}
}

// TestGolden keeps the receipt page's markup under review: go test
// -update rewrites testdata/receipt.html.
func TestGolden(t *testing.T) {
	w := newWorld(t)
	ts := w.server(t, true)
	_, _, body := get(t, ts.URL+"/explorer/receipt/"+w.rid.String())
	body = strings.ReplaceAll(body, w.m.Path, "/tmp/tiny.gguf") // a temporary directory
	path := filepath.Join("testdata", "receipt.html")
	if *update {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if body != string(want) {
		t.Errorf("the receipt page changed; review with go test -update and git diff")
	}
}

// FuzzPaths: whatever follows /explorer/, the answer is a page (200, 303,
// 404 or 405), never a 500 or a panic, and nothing from the URL reaches
// the page as markup.
func FuzzPaths(f *testing.F) {
	for _, s := range []string{"", "models", "workers", "workers?page=2", "workers?page=-1", "workers?page=%00", "receipt/xyz", "receipt/" + strings.Repeat("ab", 32), "receipt/" + strings.Repeat("ab", 32) + "/json",
		"account/" + strings.Repeat("0", 64), "account/<script>", "search?q=%3Cimg%20src=x%20onerror=alert(1)%3E", "static/app.js", "static/../../etc/passwd", "%00", "receipt/%ff%fe",
		"models?page=92233720368547760", "workers?page=92233720368547760", "models?page=9223372036854775807"} {
		f.Add(s)
	}
	w := newWorld(f)
	e, err := New(Options{Ledger: w.l, Index: w.x, ClientRate: -1})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, p string) {
		req, err := http.NewRequest("GET", "http://x/explorer/"+p, nil)
		if err != nil {
			return // not a URL a client could send
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		switch rec.Code {
		case 200, 301, 303, 307, 404, 405: // 301 and 307: the mux cleaning the path
		default:
			t.Fatalf("GET /explorer/%s: %d\n%s", p, rec.Code, rec.Body)
		}
		if (rec.Code == 200 || rec.Code == 404) && strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
			checkEscaped(t, rec.Body.String()) // the explorer's pages, not the mux's redirects
		}
	})
}

// blockList feeds Index.Run: an error first (the node away), then blocks,
// then it waits for the end.
type blockList struct {
	errs   int
	blocks []client.Block
}

func (b *blockList) NextBlock(ctx context.Context) (client.Block, error) {
	if b.errs > 0 {
		b.errs--
		return client.Block{}, errDown
	}
	if len(b.blocks) == 0 {
		<-ctx.Done()
		return client.Block{}, ctx.Err()
	}
	next := b.blocks[0]
	b.blocks = b.blocks[1:]
	return next, nil
}

// TestIndexRun: Run retries after an error, indexes every block, and
// when it ends, event streams end with it.
func TestIndexRun(t *testing.T) {
	x := NewIndex()
	src := &blockList{errs: 1, blocks: []client.Block{{Height: 5}, {Height: 6}}}
	ctx, cancel := context.WithCancel(context.Background())
	var errs []error
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx, src, func(err error) { errs = append(errs, err) }) }()
	deadline := time.Now().Add(10 * time.Second)
	for h, _ := x.Height(); h != 6; h, _ = x.Height() {
		if time.Now().After(deadline) {
			t.Fatalf("height %d", h)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, first := x.Height(); first != 5 {
		t.Fatalf("first height %d", first)
	}
	e, err := New(Options{Ledger: newFake(), Index: x})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(e)
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/explorer/events")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) || len(errs) != 1 {
		t.Fatalf("Run returned %v after errors %v", err, errs)
	}
	// The stream ends by itself once the index stopped.
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("event stream: %v", err)
	}
	resp.Body.Close()
}
