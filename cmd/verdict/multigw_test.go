package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/verdictnet/verdict/internal/devnet"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/multigw"
	"github.com/verdictnet/verdict/internal/synth"
)

// mgwProc is a `verdict` command run in this process.
type mgwProc struct {
	cancel context.CancelFunc
	done   chan int
	line   chan string // its first line of output
	errb   *syncBuffer
}

func startProc(t *testing.T, args ...string) *mgwProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &mgwProc{cancel: cancel, done: make(chan int, 1), line: make(chan string, 1), errb: &syncBuffer{}}
	r, w := io.Pipe()
	go func() {
		code := run(ctx, args, w, p.errb)
		w.Close()
		p.done <- code
	}()
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			select {
			case p.line <- sc.Text():
			default:
			}
		}
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *mgwProc) stop(t *testing.T) {
	p.cancel()
	select {
	case code, ok := <-p.done:
		if ok && code != 0 {
			t.Errorf("exit %d: %s", code, p.errb.String())
		}
		if ok {
			close(p.done)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("did not stop")
	}
}

// url waits for the first output line and returns its first http URL.
func (p *mgwProc) url(t *testing.T) (string, string) {
	t.Helper()
	select {
	case l := <-p.line:
		i := strings.Index(l, "http://")
		if i < 0 {
			t.Fatalf("first line %q", l)
		}
		u := strings.TrimSuffix(strings.TrimSuffix(strings.Fields(l[i:])[0], ","), "/v1")
		return u, l
	case code := <-p.done:
		t.Fatalf("exited %d: %s", code, p.errb.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("did not start: %s", p.errb.String())
	}
	return "", ""
}

type mgwAnswer struct {
	status    int
	agent     uint64
	receipt   string
	tokens    uint64
	workerHdr string
}

// mgwPost sends one completion (chat or plain, streamed or not) through
// the gateway and checks that the answer names the worker.
func mgwPost(t *testing.T, gw, key string, i int) mgwAnswer {
	t.Helper()
	stream := i%3 == 2
	path, body := "/v1/completions", fmt.Sprintf(`{"model":"verdict-tiny","prompt":"Once upon a time %d","max_tokens":3,"temperature":0,"stream":%v,"stream_options":%s}`, i, stream, map[bool]string{true: `{"include_usage":true}`, false: "null"}[stream])
	if i%2 == 1 {
		path, body = "/v1/chat/completions", fmt.Sprintf(`{"model":"verdict-tiny","messages":[{"role":"user","content":"Tell %d"}],"max_tokens":3,"temperature":0,"stream":%v,"stream_options":%s}`, i, stream, map[bool]string{true: `{"include_usage":true}`, false: "null"}[stream])
	}
	req, _ := http.NewRequest(http.MethodPost, gw+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	a := mgwAnswer{status: res.StatusCode, workerHdr: res.Header.Get(multigw.HeaderWorker)}
	if res.StatusCode != 200 {
		t.Logf("request %d: status %d: %s", i, res.StatusCode, b)
		return a
	}
	type verdict struct {
		ReceiptID string `json:"receipt_id"`
		AgentID   uint64 `json:"agent_id"`
		Worker    string `json:"worker"`
	}
	var v verdict
	var usage struct {
		TotalTokens uint64 `json:"total_tokens"`
	}
	if stream {
		for _, l := range strings.Split(string(b), "\n") {
			d, ok := strings.CutPrefix(l, "data: {")
			if !ok {
				continue
			}
			var c struct {
				Verdict *verdict
				Usage   *struct {
					TotalTokens uint64 `json:"total_tokens"`
				}
			}
			if err := json.Unmarshal([]byte("{"+d), &c); err != nil {
				t.Fatalf("request %d: event %q: %v", i, l, err)
			}
			if c.Verdict != nil {
				v = *c.Verdict
			}
			if c.Usage != nil {
				usage.TotalTokens = c.Usage.TotalTokens
			}
		}
		if !strings.Contains(string(b), "data: [DONE]") {
			t.Fatalf("request %d: stream without [DONE]: %s", i, b)
		}
	} else {
		var c struct {
			Verdict verdict
			Usage   struct {
				TotalTokens uint64 `json:"total_tokens"`
			}
		}
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("request %d: %v: %s", i, err, b)
		}
		v, usage.TotalTokens = c.Verdict, c.Usage.TotalTokens
	}
	if v.AgentID == 0 || v.Worker == "" || v.ReceiptID == "" || res.Header.Get(multigw.HeaderAgentID) != strconv.FormatUint(v.AgentID, 10) || a.workerHdr != v.Worker || usage.TotalTokens == 0 {
		t.Fatalf("request %d (stream %v, %s): verdict %+v, usage %d, headers %v", i, stream, path, v, usage.TotalTokens, res.Header)
	}
	a.agent, a.receipt, a.tokens = v.AgentID, v.ReceiptID, usage.TotalTokens
	return a
}

// TestGatewayNodeManyWorkers runs `verdict gateway --node` in front of
// three `verdict worker`s of different stake and price on a 4-validator
// ledger:
//
//  1. 45 requests (chat and completions, streamed and not) are shared by
//     the workers' scores, stake/price 4000/1, 2000/1 and 3000/2 (8:4:3):
//     the gateway's smooth weighted round-robin keeps each count within
//     two of its share (24, 12, 9), where routing that ignored the scores
//     (15 each) or took the top worker only (45, 0, 0) is off by 9 or more;
//  2. a killed worker's traffic moves to the others at once, no request
//     lost, and the payer's balance on the ledger is exactly its opening
//     balance less one escrow transaction fee per request and the tokens
//     of each answer at its worker's price (nothing charged twice);
//  3. a cheating worker (--cheat-for-tests) with the largest stake gets
//     traffic until its receipt is slashed and it is jailed, and none
//     after;
//  4. a gateway run without --allow-private-workers takes none of these
//     workers, all on 127.0.0.1.
func TestGatewayNodeManyWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs four CometBFT validators, four workers and a gateway")
	}
	dir, err := os.MkdirTemp("", "verdict-multigw-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 20 && os.RemoveAll(dir) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	p := devnet.DevParams()
	p.AuditRateBps = 0      // workers killed by the test are not slashed for missed audits
	p.ChallengeWindow = 200 // the cheater is slashed by the dispute, never at the window's end
	p.JailBlocks = 100000   // and stays jailed
	d, err := devnet.Start(context.Background(), devnet.Options{Dir: filepath.Join(dir, "net"), Addr: "127.0.0.1:0", Validators: 4, Params: &p,
		BlockInterval: 300 * time.Millisecond, Threads: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	ctx := context.Background()
	modelPath := filepath.Join(dir, "net", "models", synth.BuiltinName+".gguf")

	kdir := filepath.Join(dir, "keys")
	os.MkdirAll(kdir, 0o700)
	key := func(name string, amount uint64) *keys.Key {
		k, err := keys.Generate(filepath.Join(kdir, name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		to, _ := ledger.AddressOf(k.Public)
		tx, err := d.Client.Sign(ctx, d.Faucet.Private, &ledger.MsgSend{To: to, Amount: amount}, 1, -1)
		if err != nil {
			t.Fatal(err)
		}
		if res, err := d.Client.BroadcastCommit(ctx, tx); err != nil || res.Code != 0 {
			t.Fatalf("funding %s: %v %+v", name, err, res)
		}
		return k
	}
	payer := key("payer", 1_000_000)
	key("payer2", 1_000_000)
	os.WriteFile(filepath.Join(kdir, "none.json"), []byte(`{}`), 0o600)
	os.WriteFile(filepath.Join(kdir, "accounts.json"), []byte(`{"sk-one":"payer.json","sk-two":"payer2.json"}`), 0o600)

	type wk struct {
		name         string
		stake, price uint64
		cheat        bool
		proc         *mgwProc
		agent        uint64
		addr, base   string
	}
	startWorker := func(w *wk, more ...string) {
		key(w.name, 100_000)
		args := []string{"worker", "--home", filepath.Join(dir, w.name), "--node", d.RPC, "--model", modelPath, "--name", synth.BuiltinName,
			"--key", filepath.Join(kdir, w.name+".json"), "--addr", "127.0.0.1:0", "--accounts", filepath.Join(kdir, "none.json"), "--x402",
			"--stake", fmt.Sprint(w.stake), "--price", fmt.Sprint(w.price), "--threads", "1", "--log-level", "error", "--explorer=" + fmt.Sprint(w.name == "a")}
		if w.cheat {
			args = append(args, "--cheat-for-tests")
		}
		args = append(args, more...)
		w.proc = startProc(t, args...)
		var l string
		w.base, l = w.proc.url(t)
		if _, err := fmt.Sscanf(l, "verdict worker %s (agent %d)", &w.addr, &w.agent); err != nil {
			t.Fatalf("worker line %q: %v", l, err)
		}
	}
	ws := []*wk{{name: "a", stake: 4000, price: 1}, {name: "b", stake: 2000, price: 1}, {name: "c", stake: 3000, price: 2}}
	// Worker c is reached through a proxy that can cut its streams.
	proxy := newCutProxy(t)
	for _, w := range ws {
		if w.name == "c" {
			startWorker(w, "--public-url", proxy.srv.URL)
			proxy.setUpstream(t, w.base)
			continue
		}
		startWorker(w)
	}
	gwp := startProc(t, "gateway", "--node", d.RPC, "--addr", "127.0.0.1:0", "--accounts", filepath.Join(kdir, "accounts.json"), "--refresh", "500ms", "--down-for", "60s",
		"--allow-private-workers") // every worker is on 127.0.0.1
	gw, _ := gwp.url(t)
	// Without the flag a gateway reaches none of them: each is refused,
	// the log naming the address.
	strict := startProc(t, "gateway", "--node", d.RPC, "--addr", "127.0.0.1:0", "--no-auth")
	if _, line := strict.url(t); !strings.Contains(line, ", 0 workers)") || !strings.Contains(strict.errb.String(), "127.0.0.1 is a loopback address") {
		t.Fatalf("a gateway without --allow-private-workers: %s\n%s", line, strict.errb.String())
	}
	strict.stop(t)
	byAgent := map[uint64]*wk{}
	for _, w := range ws {
		byAgent[w.agent] = w
	}
	payerAddr, _ := ledger.AddressOf(payer.Public)
	before, err := d.Client.Account(ctx, payerAddr)
	if err != nil {
		t.Fatal(err)
	}
	var spent uint64 // the tokens of every answer at its worker's price
	var receipts []string
	answer := func(key string, i int) mgwAnswer {
		a := mgwPost(t, gw, key, i)
		if a.status != 200 {
			t.Fatalf("request %d: status %d", i, a.status)
		}
		if w := byAgent[a.agent]; w != nil && key == "sk-one" {
			spent += a.tokens * w.price
			receipts = append(receipts, a.receipt)
			if a.workerHdr != w.addr {
				t.Fatalf("request %d: worker %s, agent %d is %s", i, a.workerHdr, a.agent, w.addr)
			}
		}
		return a
	}

	// 1. Shares follow the scores.
	const n = 45
	count := map[uint64]int{}
	for i := 0; i < n; i++ {
		count[answer("sk-one", i).agent]++
	}
	total := 0.0
	for _, w := range ws {
		total += float64(w.stake) / float64(w.price)
	}
	for _, w := range ws {
		share := n * float64(w.stake) / float64(w.price) / total
		t.Logf("worker %s (agent %d, stake %d, price %d): %d of %d requests, share %.1f", w.name, w.agent, w.stake, w.price, count[w.agent], n, share)
		if math.Abs(float64(count[w.agent])-share) > 2 {
			t.Errorf("worker %s served %d of %d, its score's share is %.1f", w.name, count[w.agent], n, share)
		}
	}

	// 2. Worker b dies (once its receipts are on the ledger: the balance
	// check needs them published); the others take its traffic at once.
	waitPublished(t, d.Client, receipts)
	// Receipts and models through the gateway.
	var rc struct {
		ID      string          `json:"id"`
		Status  string          `json:"status"`
		Receipt json.RawMessage `json:"receipt"`
	}
	getJSON(t, gw+"/v1/receipts/"+receipts[0], &rc)
	if rc.ID != receipts[0] || rc.Status != ledger.ShownPublished || len(rc.Receipt) < 100 {
		t.Errorf("receipt through the gateway: %+v", rc)
	}
	req, _ := http.NewRequest(http.MethodGet, gw+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer sk-one")
	if res, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		var models struct {
			Data []struct {
				ID      string
				Verdict struct {
					Workers int
				}
			}
		}
		json.NewDecoder(res.Body).Decode(&models)
		res.Body.Close()
		if len(models.Data) != 1 || models.Data[0].ID != synth.BuiltinName || models.Data[0].Verdict.Workers != 3 {
			t.Errorf("models: %+v", models)
		}
	}
	ws[1].proc.stop(t)
	killed := time.Now()
	var firstOK time.Duration
	for i := n; i < n+15; i++ {
		a := answer("sk-one", i)
		if a.agent == ws[1].agent {
			t.Fatalf("request %d served by the dead worker", i)
		}
		if firstOK == 0 {
			firstOK = time.Since(killed)
		}
	}
	t.Logf("worker b killed: the first request after it was served in %s", firstOK)
	// A dead worker's refused connection fails over at once; waiting for
	// it (HeaderTimeout: 5 minutes) would take far longer than this
	// bound, which leaves room for a loaded machine.
	if firstOK > 30*time.Second {
		t.Errorf("the first request after the kill took %s", firstOK)
	}
	var pool struct {
		Data []struct {
			AgentID  uint64 `json:"agent_id"`
			Down     bool   `json:"down"`
			Eligible bool   `json:"eligible"`
			Jailed   bool   `json:"jailed"`
		}
	}
	getJSON(t, gw+"/v1/workers", &pool)
	for _, w := range pool.Data {
		if w.AgentID == ws[1].agent && !w.Down {
			t.Errorf("the dead worker is not marked down: %+v", pool.Data)
		}
	}
	// Worker c dies mid-stream (its proxy cuts the connection after the
	// first event): the caller gets an error event and no [DONE], and pays
	// at most what the receipt c published for that escrow costs
	// (nothing if none: the escrow returns at its deadline).
	proxy.cut.Store(true)
	var cuts []ledger.Hash
	for i := n + 15; len(cuts) < 2 && i < n+40; i++ {
		body := fmt.Sprintf(`{"model":"verdict-tiny","prompt":"Cut %d","max_tokens":40,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}`, i)
		req, _ := http.NewRequest(http.MethodPost, gw+"/v1/completions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer sk-one")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.Header.Get(multigw.HeaderAgentID) != strconv.FormatUint(ws[2].agent, 10) {
			if res.StatusCode != 200 || !strings.Contains(string(b), "data: [DONE]") {
				t.Fatalf("request %d: status %d: %s", i, res.StatusCode, b)
			}
			// Served whole by worker a: priced as any answer.
			if res.Header.Get(multigw.HeaderAgentID) != strconv.FormatUint(ws[0].agent, 10) {
				t.Fatalf("request %d served by agent %s", i, res.Header.Get(multigw.HeaderAgentID))
			}
			var receipt string
			var tokens uint64
			for _, l := range strings.Split(string(b), "\n") {
				d, ok := strings.CutPrefix(l, "data: {")
				if !ok {
					continue
				}
				var ev struct {
					Verdict *struct {
						ReceiptID string `json:"receipt_id"`
					}
					Usage *struct {
						TotalTokens uint64 `json:"total_tokens"`
					}
				}
				json.Unmarshal([]byte("{"+d), &ev)
				if ev.Verdict != nil {
					receipt = ev.Verdict.ReceiptID
				}
				if ev.Usage != nil {
					tokens = ev.Usage.TotalTokens
				}
			}
			if receipt == "" || tokens == 0 {
				t.Fatalf("request %d: no receipt or usage: %s", i, b)
			}
			receipts = append(receipts, receipt)
			spent += tokens * ws[0].price
			continue
		}
		if strings.Contains(string(b), "data: [DONE]") || !strings.Contains(string(b), `"code":"worker_failed"`) {
			t.Fatalf("request %d cut mid-stream: %s", i, b)
		}
		var pr struct {
			Extra struct {
				EscrowID string `json:"escrowId"`
			}
		}
		if err := decodeHeaderJSON(res.Header.Get("PAYMENT-RESPONSE"), &pr); err != nil {
			t.Fatalf("request %d: PAYMENT-RESPONSE: %v", i, err)
		}
		id, err := ledger.ParseHash(pr.Extra.EscrowID)
		if err != nil {
			t.Fatal(err)
		}
		cuts = append(cuts, id)
	}
	proxy.cut.Store(false)
	if len(cuts) == 0 {
		t.Fatal("no stream went to worker c")
	}
	for _, id := range cuts {
		cost, published := settledEscrow(t, d.Client, id)
		t.Logf("escrow %s of a stream cut mid-way: receipt published %v, cost %d", id, published, cost)
		spent += cost
	}
	waitPublished(t, d.Client, receipts)
	after, err := d.Client.Account(ctx, payerAddr)
	if err != nil {
		t.Fatal(err)
	}
	escrows := after.Nonce - before.Nonce
	t.Logf("payer: %d requests, %d escrows, balance %d -> %d (tokens paid %d)", len(receipts), escrows, before.Balance, after.Balance, spent)
	if escrows != uint64(len(receipts)+len(cuts)) || after.Balance != before.Balance-escrows-spent {
		t.Errorf("payer balance %d -> %d over %d escrows for %d answers costing %d: want %d", before.Balance, after.Balance, escrows, len(receipts), spent, before.Balance-escrows-spent)
	}

	// 3. A cheater with the largest stake takes traffic until slashed and
	// jailed, then none.
	cheat := &wk{name: "d", stake: 8000, price: 1, cheat: true}
	startWorker(cheat)
	byAgent[cheat.agent] = cheat
	deadline := time.Now().Add(20 * time.Second)
	var cheated string
	for i := 1000; cheated == "" && time.Now().Before(deadline); i++ {
		if a := answer("sk-two", i); a.agent == cheat.agent {
			cheated = a.receipt
		}
	}
	if cheated == "" {
		t.Fatal("the cheating worker got no traffic")
	}
	cheatAddr, _ := ledger.ParseAddress(cheat.addr)
	deadline = time.Now().Add(150 * time.Second)
	for {
		st, err := d.Client.Stake(ctx, cheatAddr)
		h, _ := d.Client.Height(ctx)
		if err == nil && st.Slashed > 0 && uint64(h) < st.JailedUntil {
			t.Logf("cheater slashed and jailed at height %d", h)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cheater was not slashed: %+v", st)
		}
		time.Sleep(300 * time.Millisecond)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		getJSON(t, gw+"/v1/workers", &pool)
		out := false
		for _, w := range pool.Data {
			if w.AgentID == cheat.agent && w.Jailed && !w.Eligible {
				out = true
			}
		}
		if out {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway still counts the jailed cheater: %+v", pool.Data)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i := 2000; i < 2010; i++ {
		if a := answer("sk-two", i); a.agent == cheat.agent {
			t.Fatalf("request %d went to the jailed cheater", i)
		}
	}
	// MCP on the gateway: generate is routed and paid like /v1 (here from
	// sk-two's account) and names its worker; the receipt it returns is
	// the one on the ledger, and verify_receipt checks its signature.
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "multigw-test", Version: "0"}, nil).Connect(ctx,
		&mcp.StreamableClientTransport{Endpoint: gw + multigw.MCPPath, HTTPClient: &http.Client{Transport: bearer{"sk-two", http.DefaultTransport}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "generate", Arguments: map[string]any{"model": synth.BuiltinName, "prompt": "Once upon a time", "max_tokens": 8, "temperature": 0}})
	if err != nil || res.IsError {
		t.Fatalf("MCP generate: %v %+v", err, res)
	}
	b, _ := json.Marshal(res.StructuredContent)
	var gen struct {
		ReceiptID string `json:"receipt_id"`
		Receipt   string `json:"receipt"`
		AgentID   uint64 `json:"agent_id"`
		Worker    string `json:"worker"`
		Text      string `json:"text"`
	}
	json.Unmarshal(b, &gen)
	if w := byAgent[gen.AgentID]; w == nil || w == ws[1] || w == cheat || w.addr != gen.Worker || gen.ReceiptID == "" || gen.Receipt == "" || gen.Text == "" {
		t.Fatalf("MCP generate: %s", b)
	}
	if data, err := d.Client.ReceiptData(ctx, mustHash(t, gen.ReceiptID)); err != nil || string(data) != gen.Receipt {
		t.Fatalf("MCP generate's receipt %q, the ledger's %q (%v)", gen.Receipt, data, err)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "verify_receipt", Arguments: map[string]any{"id": gen.ReceiptID, "replay": false}})
	if b, _ = json.Marshal(res.StructuredContent); err != nil || res.IsError || !strings.Contains(string(b), `"signature_valid":true`) {
		t.Fatalf("MCP verify_receipt: %v %s", err, b)
	}
	cs.Close()
	// The explorer is served by the gateway and by worker a.
	for _, u := range []string{gw + "/explorer/", ws[0].base + "/explorer/"} {
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: status %d %s", u, res.StatusCode, res.Header.Get("Content-Type"))
		}
	}
}

// cutProxy forwards to a worker and, while cut is set, breaks every
// stream after its first read.
type cutProxy struct {
	srv      *httptest.Server
	upstream atomic.Pointer[url.URL]
	cut      atomic.Bool
}

func newCutProxy(t *testing.T) *cutProxy {
	p := &cutProxy{}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(p.upstream.Load()) },
		FlushInterval: -1,
		ErrorLog:      log.New(io.Discard, "", 0),
		ModifyResponse: func(res *http.Response) error {
			if p.cut.Load() && strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
				res.Body = &cutBody{ReadCloser: res.Body}
			}
			return nil
		},
	}
	p.srv = httptest.NewServer(rp)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *cutProxy) setUpstream(t *testing.T, base string) {
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	p.upstream.Store(u)
}

// cutBody passes its first read, at most cutFirst bytes of it, then fails
// (and hangs up on the worker). The limit keeps a stream that the worker
// wrote whole before the proxy's first read from passing whole.
type cutBody struct {
	io.ReadCloser
	n int
}

// cutFirst is the most bytes of a cut stream that pass.
const cutFirst = 16

func (b *cutBody) Read(p []byte) (int, error) {
	if b.n > 0 {
		b.ReadCloser.Close()
		return 0, errors.New("cut")
	}
	b.n++
	return b.ReadCloser.Read(p[:min(len(p), cutFirst)])
}

func decodeHeaderJSON(h string, v any) error {
	b, err := base64.StdEncoding.DecodeString(h)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// settledEscrow waits until escrow id has a receipt published against it
// (its cost: the escrow's fee once published) or is refunded at its
// deadline (cost 0).
func settledEscrow(t *testing.T, c *client.Client, id ledger.Hash) (uint64, bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		esc, found, err := c.Escrow(context.Background(), id)
		if err == nil && found && !esc.ReceiptID.IsZero() {
			return esc.Fee, true
		}
		if err == nil && !found {
			return 0, false
		}
		if time.Now().After(deadline) {
			t.Fatalf("escrow %s neither used nor refunded: %+v %v", id, esc, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// waitPublished waits until every receipt is on the ledger.
func waitPublished(t *testing.T, c *client.Client, ids []string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for _, id := range ids {
		h, _ := ledger.ParseHash(id)
		for {
			_, found, err := c.Receipt(context.Background(), h)
			if err == nil && found {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("receipt %s not published: %v", id, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

func mustHash(t *testing.T, s string) ledger.Hash {
	t.Helper()
	h, err := ledger.ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
