package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/worker"
)

// TestWorkerVerifierCLI runs the network the way an operator does: `verdict
// node start` holding stories260K, `verdict worker` with an accounts file
// and `verdict verifier` (re-running every receipt). A paid chat
// completion's receipt becomes final on the ledger, the verifier's ERC-8004
// validation response for it says 100, the worker's metrics count it, a
// second worker without caller accounts gets its receipts on the ledger
// too, and every service stops cleanly.
func TestWorkerVerifierCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a CometBFT node")
	}
	stories := filepath.Join(sharedModelsDir(t), "stories260K.gguf")
	home, err := os.MkdirTemp("", "verdict-cli-worker-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 20 && os.RemoveAll(home) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	port := ledgerPortBase(t)
	rpc := fmt.Sprintf("tcp://127.0.0.1:%d", port+1)
	var errb syncBuffer
	if code := run(context.Background(), []string{"node", "init", "--home", home, "--port", fmt.Sprint(port), "--block-interval", "100ms"}, io.Discard, &errb); code != 0 {
		t.Fatalf("node init: %s", errb.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type proc struct {
		name string
		done chan int
	}
	var procs []proc
	start := func(name string, out io.Writer, args ...string) {
		done := make(chan int, 1)
		go func() { done <- run(ctx, args, out, &errb) }()
		procs = append(procs, proc{name, done})
	}
	defer func() {
		cancel()
		for i := len(procs) - 1; i >= 0; i-- {
			select {
			case code := <-procs[i].done:
				if code != 0 {
					t.Errorf("%s exited %d: %s", procs[i].name, code, errb.String())
				}
			case <-time.After(30 * time.Second):
				t.Errorf("%s did not stop", procs[i].name)
			}
		}
	}()
	start("node", io.Discard, "node", "start", "--home", home, "--log-level", "error", "--model", stories)
	c, err := client.New(rpc)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for h, err := c.Height(ctx); err != nil || h < 1; h, err = c.Height(ctx) {
		if time.Now().After(deadline) {
			t.Fatalf("node did not come up: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	kdir := t.TempDir()
	faucet := filepath.Join(home, "faucet.json")
	addrs := map[string]string{}
	for _, n := range []string{"worker", "verifier", "user", "solo"} {
		k, err := keys.Generate(filepath.Join(kdir, n+".json"))
		if err != nil {
			t.Fatal(err)
		}
		addrs[n] = k.Address()
		var out syncBuffer
		if code := run(ctx, []string{"tx", "--node", rpc, "--key", faucet, "send", "--to", k.Address(), "--amount", "100000"}, &out, &errb); code != 0 {
			t.Fatalf("funding %s: %s", n, errb.String())
		}
	}
	os.WriteFile(filepath.Join(kdir, "accounts.json"), []byte(`{"vk-test-user":"user.json"}`), 0o600)

	start("verifier", io.Discard, "verifier", "--metrics", "127.0.0.1:0", "--node", rpc, "--model", stories, "--key", filepath.Join(kdir, "verifier.json"), "--replay-share", "1", "--threads", "1", "--log-level", "error")
	wr, ww := io.Pipe()
	start("worker", ww, "worker", "--home", filepath.Join(kdir, "w"), "--node", rpc, "--model", stories, "--key", filepath.Join(kdir, "worker.json"),
		"--addr", "127.0.0.1:0", "--accounts", filepath.Join(kdir, "accounts.json"), "--validator", addrs["verifier"], "--threads", "1", "--log-level", "error",
		"--metrics", "127.0.0.1:0", "--x402")
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(wr)
		for sc.Scan() {
			select {
			case line <- sc.Text():
			default:
			}
		}
	}()
	var base, metrics, firstLine string
	select {
	case l := <-line:
		firstLine = l
		i, j := strings.Index(l, "http://"), strings.Index(l, "metrics http://")
		if i < 0 || j < 0 {
			t.Fatalf("worker said %q", l)
		}
		base = strings.Fields(l[i:])[0]
		base = strings.TrimSuffix(strings.TrimSuffix(base, ","), "/v1")
		metrics = strings.Fields(l[j:])[1]
	case <-time.After(30 * time.Second):
		t.Fatalf("worker did not start: %s", errb.String())
	}
	// The agentURI on the ledger is the worker's registration file.
	var agentID uint64
	if _, err := fmt.Sscanf(firstLine[strings.Index(firstLine, "(agent "):], "(agent %d)", &agentID); err != nil {
		t.Fatalf("no agent id in %q: %v", firstLine, err)
	}
	var agent ledger.Agent
	if _, err := worker.QueryJSON(ctx, c, fmt.Sprintf("agent/%d", agentID), &agent); err != nil {
		t.Fatal(err)
	}
	if agent.AgentURI != base+gateway.RegistrationPath {
		t.Fatalf("agentURI %q, want %q", agent.AgentURI, base+gateway.RegistrationPath)
	}
	resp, err := http.Get(agent.AgentURI)
	if err != nil {
		t.Fatal(err)
	}
	var regf gateway.AgentRegistration
	err = json.NewDecoder(resp.Body).Decode(&regf)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", agent.AgentURI, resp.StatusCode, err)
	}
	if regf.Type != gateway.RegistrationType || len(regf.Registrations) != 1 || regf.Registrations[0].AgentID != agentID ||
		len(regf.Services) != 2 || regf.Services[0].Endpoint != base+"/v1" || regf.Services[1].Endpoint != base+"/mcp" || !regf.X402Support {
		t.Fatalf("registration file %+v", regf)
	}
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(`{"model":"stories260K","messages":[{"role":"user","content":"Lily"}],"max_tokens":10,"seed":5}`))
	req.Header.Set("Authorization", "Bearer vk-test-user")
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Verdict struct {
			ReceiptID string `json:"receipt_id"`
		} `json:"verdict"`
	}
	json.NewDecoder(resp.Body).Decode(&r)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(r.Verdict.ReceiptID) != 64 {
		t.Fatalf("status %d, receipt %q", resp.StatusCode, r.Verdict.ReceiptID)
	}
	rid, _ := ledger.ParseHash(r.Verdict.ReceiptID)
	va, _ := ledger.ParseAddress(addrs["verifier"])
	deadline = time.Now().Add(40 * time.Second)
	for {
		var rec ledger.ReceiptRecord
		var val ledger.Validation
		worker.QueryJSON(ctx, c, "receipt/"+rid.String(), &rec)
		worker.QueryJSON(ctx, c, "validation/"+worker.ValidationRequestHash(rid, va).String(), &val)
		if rec.Status == ledger.StatusFinal && val.HasResponse {
			if val.Response != 100 {
				t.Fatalf("validation response %d, want 100", val.Response)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("receipt %s: status %q, validation %+v after 40 s: %s", rid, rec.Status, val, errb.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if resp, err := http.Get(base + "/metrics"); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != 404 {
		t.Fatalf("the API address serves /metrics: %d", resp.StatusCode)
	}
	resp, err = http.Get(metrics)
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(mb), "verdict_worker_receipts_published_total 1") {
		t.Fatalf("worker metrics lack the published receipt:\n%s", mb)
	}

	// x402: a caller without an API key pays with an escrow signed by its
	// own key, as a maximum (upto); the worker publishes the receipt
	// against it and the ledger returns what its tokens did not cost.
	x402Body := `{"model":"stories260K","prompt":"Tom","max_tokens":40,"temperature":0,"stop":["."]}`
	resp, err = http.Post(base+"/v1/completions", "application/json", strings.NewReader(x402Body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	qb, _ := base64.StdEncoding.DecodeString(resp.Header.Get(gateway.HeaderPaymentRequired))
	var quote gateway.PaymentRequired
	if err := json.Unmarshal(qb, &quote); err != nil || resp.StatusCode != 402 || len(quote.Accepts) != 2 || quote.Accepts[1].Scheme != gateway.SchemeUpto {
		t.Fatalf("x402 quote: %d %s %v", resp.StatusCode, qb, err)
	}
	acc := quote.Accepts[1]
	uk, err := keys.Load(filepath.Join(kdir, "user.json"))
	if err != nil {
		t.Fatal(err)
	}
	payer, _ := ledger.ParseAddress(uk.Address())
	amount, _ := strconv.ParseUint(acc.Amount, 10, 64)
	payTo, _ := ledger.ParseAddress(acc.PayTo)
	mid, _ := ledger.ParseHash(acc.Extra.ModelID)
	rh, _ := ledger.ParseHash(acc.Extra.RequestHash)
	price, _ := strconv.ParseUint(acc.Extra.PricePerToken, 10, 64)
	var before ledger.Account
	worker.QueryJSON(ctx, c, "account/"+payer.String(), &before)
	etx, err := c.Sign(ctx, uk.Private, &ledger.MsgOpenEscrow{Worker: payTo, ModelID: mid, Fee: amount, Request: rh, PricePerToken: price}, 1, -1)
	if err != nil {
		t.Fatal(err)
	}
	pp := gateway.PaymentPayload{X402Version: 2, Accepted: acc}
	pp.Payload.Transaction = base64.StdEncoding.EncodeToString(etx.Encode())
	ppb, _ := json.Marshal(pp)
	req, _ = http.NewRequest("POST", base+"/v1/completions", strings.NewReader(x402Body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(gateway.HeaderPaymentSignature, base64.StdEncoding.EncodeToString(ppb))
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&r)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(r.Verdict.ReceiptID) != 64 || resp.Header.Get(gateway.HeaderPaymentResponse) == "" {
		t.Fatalf("x402 payment: status %d, receipt %q, PAYMENT-RESPONSE %q: %s", resp.StatusCode, r.Verdict.ReceiptID, resp.Header.Get(gateway.HeaderPaymentResponse), errb.String())
	}
	sb, _ := base64.StdEncoding.DecodeString(resp.Header.Get(gateway.HeaderPaymentResponse))
	var settle gateway.SettleResponse
	json.Unmarshal(sb, &settle)
	escID, _ := settle.Extra["escrowId"].(string)
	var esc ledger.Escrow
	due, _ := strconv.ParseUint(settle.Amount, 10, 64)
	// The escrow holds the amount until the receipt is published, then
	// what the receipt costs.
	if found, err := worker.QueryJSON(ctx, c, "escrow/"+escID, &esc); !found || err != nil || esc.Requester != payer || (esc.Fee != amount && esc.Fee != due) || esc.Request != rh ||
		esc.PricePerToken != price || !settle.Success || settle.Extra["receiptId"] != r.Verdict.ReceiptID || due == 0 || due > amount {
		t.Fatalf("x402: settlement %s, escrow %+v (found %v, %v), want requester %s fee %d", sb, esc, found, err, payer, amount)
	}
	deadline = time.Now().Add(40 * time.Second)
	for {
		var rec ledger.ReceiptRecord
		worker.QueryJSON(ctx, c, "receipt/"+r.Verdict.ReceiptID, &rec)
		if rec.Status == ledger.StatusFinal {
			if rec.EscrowID.String() != escID {
				t.Fatalf("x402 receipt published against escrow %s, want the payer's %s", rec.EscrowID, escID)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("x402 receipt %s: status %q after 40 s: %s", r.Verdict.ReceiptID, rec.Status, errb.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	var after ledger.Account
	worker.QueryJSON(ctx, c, "account/"+payer.String(), &after)
	if after.Balance != before.Balance-due-1 || due >= amount {
		t.Errorf("x402 upto: the payer had %d and has %d; the receipt cost %d of the %d authorised (and a transaction fee of 1)", before.Balance, after.Balance, due, amount)
	}
	t.Logf("x402 upto on the ledger: authorised %d, charged %d, returned %d", amount, due, amount-due)

	// A worker without caller accounts escrows its receipts itself, so they
	// still reach the ledger and become final.
	sr, sw := io.Pipe()
	start("solo worker", sw, "worker", "--home", filepath.Join(kdir, "solo"), "--node", rpc, "--model", stories, "--key", filepath.Join(kdir, "solo.json"),
		"--addr", "127.0.0.1:0", "--threads", "1", "--log-level", "error", "--no-auth")
	sline := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(sr)
		for sc.Scan() {
			select {
			case sline <- sc.Text():
			default:
			}
		}
	}()
	var solo string
	select {
	case l := <-sline:
		i := strings.Index(l, "http://")
		if i < 0 {
			t.Fatalf("solo worker said %q", l)
		}
		solo = strings.TrimSuffix(strings.TrimSuffix(strings.Fields(l[i:])[0], ","), "/v1")
	case <-time.After(30 * time.Second):
		t.Fatalf("solo worker did not start: %s", errb.String())
	}
	resp, err = http.Post(solo+"/v1/completions", "application/json", strings.NewReader(`{"model":"stories260K","prompt":"Tom","max_tokens":6}`))
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&r)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(r.Verdict.ReceiptID) != 64 {
		t.Fatalf("solo worker: status %d, receipt %q", resp.StatusCode, r.Verdict.ReceiptID)
	}
	deadline = time.Now().Add(40 * time.Second)
	for {
		var rec ledger.ReceiptRecord
		worker.QueryJSON(ctx, c, "receipt/"+r.Verdict.ReceiptID, &rec)
		if rec.Status == ledger.StatusFinal {
			if rec.Worker.String() != addrs["solo"] {
				t.Fatalf("receipt published by %s, want the solo worker %s", rec.Worker, addrs["solo"])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("solo receipt %s: status %q after 40 s: %s", r.Verdict.ReceiptID, rec.Status, errb.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
