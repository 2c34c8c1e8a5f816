package devnet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/worker"
)

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

// start runs a devnet for the test on free ports and stops it at cleanup.
func start(t testing.TB, o Options) *Devnet {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	o.Addr = "127.0.0.1:0"
	if o.BlockInterval == 0 {
		o.BlockInterval = 200 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	if o.Threads == 0 {
		o.Threads = 1
	}
	d, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("devnet stop: %v", err)
		}
	})
	// Ready means the ledger runs the model: the validators (each holding
	// it) attested to holding it and it is active.
	var m ledger.Model
	if found, err := worker.QueryJSON(context.Background(), d.Client, "model/"+ledger.Hash(d.Model.ID).String(), &m); !found || err != nil || !m.Active {
		t.Fatalf("devnet ready with its model not active: %+v %v", m, err)
	}
	var p ledger.Params
	worker.QueryJSON(context.Background(), d.Client, "params", &p)
	if p.ModelQuorumBps == 0 || 4*len(m.Attesters) < 3*max(o.Validators, 1) {
		t.Fatalf("model active with %d attesters of %d equal validators (quorum %d bps)", len(m.Attesters), max(o.Validators, 1), p.ModelQuorumBps)
	}
	return d
}

type chatResponse struct {
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Verdict struct {
		ReceiptID string `json:"receipt_id"`
	} `json:"verdict"`
}

// post sends a JSON request to the gateway.
func post(t testing.TB, d *Devnet, key, path, body string, hdr ...string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", d.GatewayURL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// receiptStatus reads GET /v1/receipts/{id}'s status.
func receiptStatus(t testing.TB, d *Devnet, id string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", d.GatewayURL+"/v1/receipts/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+d.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("receipt %s: %v: %s", id, err, b)
	}
	return r.Status
}

// waitStatus waits until a receipt's ledger status is one of want.
func waitStatus(t testing.TB, d *Devnet, id string, limit time.Duration, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	var st string
	for time.Now().Before(deadline) {
		var rec ledger.ReceiptRecord
		found, err := worker.QueryJSON(context.Background(), d.Client, "receipt/"+id, &rec)
		if err != nil {
			t.Fatal(err)
		}
		if found {
			st = rec.Status
			for _, w := range want {
				if st == w {
					return st
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("receipt %s: status %q after %v, want %v", id, st, limit, want)
	return ""
}

func balance(t testing.TB, d *Devnet, a ledger.Address) uint64 {
	t.Helper()
	acct, err := d.Client.Account(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	return acct.Balance
}

// chatReceipt asks the devnet's gateway for a short sampled chat
// completion of its built-in model and returns the answer's receipt id.
func chatReceipt(t *testing.T, d *Devnet) string {
	t.Helper()
	code, body := post(t, d, d.APIKey, "/v1/chat/completions", `{"model":"verdict-tiny","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":12,"seed":3,"temperature":0.8}`)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var r chatResponse
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Verdict.ReceiptID) != 64 {
		t.Fatalf("no receipt id in %s", body)
	}
	return r.Verdict.ReceiptID
}

// TestBuiltinDevnet starts the devnet with its built-in model: a chat
// completion returns a receipt that becomes final on the ledger, with
// the fee paid from the user's escrow.
func TestBuiltinDevnet(t *testing.T) {
	d := start(t, Options{})
	id := chatReceipt(t, d)
	waitStatus(t, d, id, 90*time.Second, ledger.StatusFinal)
	if st := receiptStatus(t, d, id); st != ledger.StatusFinal {
		t.Fatalf("gateway says %q", st)
	}
	fmt.Fprintln(io.Discard, bytes.MinRead)
}

// TestLongReceiptPublished: a worker's receipts go out in batches whose
// fees are estimated before their nonces are known (signed with the
// largest); the ledger refused such an estimate before running its
// message, so the state a publishReceipt writes was not priced, and a
// receipt of more than a fee unit (about 170 tokens at the defaults) was
// refused at CheckTx, retried, given up, and its work went unpaid. With
// fee units of 512 bytes here, a completion of 200 tokens needs several.
func TestLongReceiptPublished(t *testing.T) {
	p := DevParams()
	p.FeeUnitBytes = 512
	d := start(t, Options{Params: &p})
	code, body := post(t, d, d.APIKey, "/v1/completions", `{"model":"verdict-tiny","prompt":"Once upon a time","max_tokens":200,"seed":3,"temperature":0.8}`)
	if code != 200 {
		t.Fatalf("completion: %d %s", code, body)
	}
	var res struct {
		Verdict struct {
			ReceiptID string `json:"receipt_id"`
		} `json:"verdict"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(body, &res); err != nil || res.Verdict.ReceiptID == "" {
		t.Fatalf("completion %s: %v", body, err)
	}
	if res.Usage.CompletionTokens < 100 {
		t.Fatalf("a completion of %d tokens, want a long one", res.Usage.CompletionTokens)
	}
	waitStatus(t, d, res.Verdict.ReceiptID, 90*time.Second, ledger.StatusFinal)
}

// TestCheatingWorker runs a dishonest worker (one weight one ulp off, the
// real model's id in its receipts). The verifier's replay disagrees, it
// opens a dispute, the worker loses the bisection game, is slashed and
// jailed, and the requester gets the fee back. With every receipt audited
// too, the audit's openings fail the ledger's check (or, when the four
// cells it opens miss the changed weight, the dispute catches it).
func TestCheatingWorker(t *testing.T) {
	for _, c := range []struct {
		name      string
		auditBps  uint32
		disputeOK bool
	}{
		{"replay and dispute", 0, true},
		{"audit", 10000, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := DevParams()
			p.AuditRateBps = c.auditBps
			// Room for the verifier to replay and open its dispute even on
			// a loaded CI machine: slashing comes from the dispute or the
			// audit, never from the window's end.
			p.ChallengeWindow = 200
			// A loaded machine must not make the worker miss its openings:
			// the test is about catching the cheat, not about deadlines.
			p.OpeningWindow = 100
			d := start(t, Options{CheatForTests: true, Params: &p})
			user, _ := ledger.AddressOf(d.User.Public)
			before := balance(t, d, user)
			var st0 ledger.Stake
			worker.QueryJSON(context.Background(), d.Client, "stake/"+d.Chain.Address().String(), &st0)
			code, body := post(t, d, d.APIKey, "/v1/completions", `{"model":"verdict-tiny","prompt":"Once upon a time","max_tokens":10,"temperature":0}`)
			if code != 200 {
				t.Fatalf("status %d: %s", code, body)
			}
			var r chatResponse
			json.Unmarshal(body, &r)
			id := r.Verdict.ReceiptID
			waitStatus(t, d, id, 90*time.Second, ledger.StatusSlashed)
			if st := receiptStatus(t, d, id); st != ledger.StatusSlashed {
				t.Fatalf("gateway says %q, the ledger slashed", st)
			}
			var rec ledger.ReceiptRecord
			worker.QueryJSON(context.Background(), d.Client, "receipt/"+id, &rec)
			if c.disputeOK {
				var dis ledger.Dispute
				if found, _ := worker.QueryJSON(context.Background(), d.Client, "dispute/"+rec.DisputeID.String(), &dis); !found || dis.Status != ledger.DisputeWorkerLost {
					t.Fatalf("dispute %+v, want worker_lost", dis)
				}
				if s := d.Verifier.Stats(); s.Disputes != 1 || s.Mismatches != 1 {
					t.Fatalf("verifier stats %+v", s)
				}
			} else {
				// The audit opens four random cells: those that do not
				// depend on the changed weight pass, and then the
				// verifier's replay and dispute catch the worker.
				var a ledger.Audit
				worker.QueryJSON(context.Background(), d.Client, "audit/"+id, &a)
				var dis ledger.Dispute
				worker.QueryJSON(context.Background(), d.Client, "dispute/"+rec.DisputeID.String(), &dis)
				if a.Status != ledger.AuditFailed && dis.Status != ledger.DisputeWorkerLost {
					t.Fatalf("audit %+v, dispute %+v: neither caught the worker", a, dis)
				}
				t.Logf("caught by: audit %s, dispute %q", a.Status, dis.Status)
			}
			var st ledger.Stake
			worker.QueryJSON(context.Background(), d.Client, "stake/"+d.Chain.Address().String(), &st)
			if st.Slashed != st0.Slashed+1 || st.Bonded >= st0.Bonded || st.JailedUntil == 0 {
				t.Fatalf("worker stake %+v before %+v: not slashed and jailed", st, st0)
			}
			// Refund: the user paid only transaction fees (1 per tx: the escrow).
			if after := balance(t, d, user); after != before-1 {
				t.Fatalf("user balance %d -> %d, want the fee refunded (only the escrow tx fee of 1 spent)", before, after)
			}
			// The jailed worker gets no more requests.
			deadline := time.Now().Add(10 * time.Second)
			for {
				code, body := post(t, d, d.APIKey, "/v1/completions", `{"model":"verdict-tiny","prompt":"Once","max_tokens":2}`)
				if code == http.StatusServiceUnavailable && strings.Contains(string(body), "no_worker_available") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("a jailed worker still serves: %d %s", code, body)
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
}

// TestResume stops a devnet and starts it again on the same directory:
// the chain continues from its height with the same model id, worker and
// agent, the final receipt is still final, and a new request is served
// and published. The ledger RPC address is the one it had.
func TestResume(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, Addr: "127.0.0.1:0", BlockInterval: 200 * time.Millisecond, Threads: 1, Logger: testLogger(t)}
	d, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	code, body := post(t, d, d.APIKey, "/v1/completions", `{"model":"verdict-tiny","prompt":"The cat","max_tokens":8}`)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var r chatResponse
	json.Unmarshal(body, &r)
	waitStatus(t, d, r.Verdict.ReceiptID, 90*time.Second, ledger.StatusFinal)
	h1, _ := d.Client.Height(context.Background())
	id1, w1, a1, key1, rpc1 := d.Model.ID, d.Chain.Address(), d.Chain.AgentID(), d.APIKey, d.RPC
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}

	d2 := start(t, o)
	if d2.RPC != rpc1 {
		t.Errorf("ledger RPC %s after the restart, was %s", d2.RPC, rpc1)
	}
	h2, _ := d2.Client.Height(context.Background())
	if h2 < h1 {
		t.Fatalf("height %d after restart, was %d", h2, h1)
	}
	if d2.Model.ID != id1 || d2.Chain.Address() != w1 || d2.Chain.AgentID() != a1 || d2.APIKey != key1 {
		t.Fatalf("identity changed across restart: model %s/%s worker %s/%s agent %d/%d", id1, d2.Model.ID, w1, d2.Chain.Address(), a1, d2.Chain.AgentID())
	}
	if st := receiptStatus(t, d2, r.Verdict.ReceiptID); st != ledger.StatusFinal {
		t.Fatalf("old receipt is %q after restart", st)
	}
	code, body = post(t, d2, d2.APIKey, "/v1/completions", `{"model":"verdict-tiny","prompt":"The dog","max_tokens":8}`)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	json.Unmarshal(body, &r)
	waitStatus(t, d2, r.Verdict.ReceiptID, 90*time.Second, ledger.StatusPublished, ledger.StatusFinal)
}

// TestCheatingWorkerFourValidators is the cheating-worker test on a
// four-validator ledger (all in this process): the verifier's dispute is
// refereed by every validator, the worker is slashed and the requester
// refunded, and the validators agree on the app hash.
func TestCheatingWorkerFourValidators(t *testing.T) {
	if testing.Short() {
		t.Skip("runs four CometBFT validators")
	}
	p := DevParams()
	p.AuditRateBps = 0
	p.ChallengeWindow = 200 // slashing comes from the dispute, never from the window's end
	d := start(t, Options{CheatForTests: true, Params: &p, Validators: 4, BlockInterval: 300 * time.Millisecond})
	if len(d.ValidatorRPCs) != 3 {
		t.Fatalf("%d other validators", len(d.ValidatorRPCs))
	}
	user, _ := ledger.AddressOf(d.User.Public)
	before := balance(t, d, user)
	code, body := post(t, d, d.APIKey, "/v1/completions", `{"model":"verdict-tiny","prompt":"Once upon a time","max_tokens":10,"temperature":0}`)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var r chatResponse
	json.Unmarshal(body, &r)
	waitStatus(t, d, r.Verdict.ReceiptID, 90*time.Second, ledger.StatusSlashed)
	var rec ledger.ReceiptRecord
	worker.QueryJSON(context.Background(), d.Client, "receipt/"+r.Verdict.ReceiptID, &rec)
	var dis ledger.Dispute
	if found, _ := worker.QueryJSON(context.Background(), d.Client, "dispute/"+rec.DisputeID.String(), &dis); !found || dis.Status != ledger.DisputeWorkerLost {
		t.Fatalf("dispute %+v, want worker_lost", dis)
	}
	if after := balance(t, d, user); after != before-1 {
		t.Fatalf("user balance %d -> %d, want the fee refunded", before, after)
	}
	// Every validator has the same app hash at a height all have passed.
	h, err := d.Client.Height(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want, err := d.Client.Block(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	for _, rpc := range d.ValidatorRPCs {
		c, err := client.New(rpc)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, err := c.Block(context.Background(), h)
			if err == nil {
				if got != want {
					t.Fatalf("validator %s: app hash %s at height %d, node0 has %s", rpc, got, h, want)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("validator %s: %v", rpc, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// TestStopReleases checks a clean stop: after Stop, the gateway's and the
// node's ports refuse connections and the goroutines the devnet started
// are gone (CometBFT and leveldb may leave a few behind briefly, hence
// the wait).
func TestStopReleases(t *testing.T) {
	http.DefaultClient.CloseIdleConnections()
	base := runtime.NumGoroutine() // the test's own
	o := Options{Dir: t.TempDir(), Addr: "127.0.0.1:0", BlockInterval: 200 * time.Millisecond, Threads: 1, Logger: testLogger(t)}
	d, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	code, body := post(t, d, d.APIKey, "/v1/completions", `{"model":"verdict-tiny","prompt":"The cat","max_tokens":4}`)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	running := runtime.NumGoroutine()
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	http.DefaultClient.CloseIdleConnections()
	for _, a := range []string{strings.TrimPrefix(d.GatewayURL, "http://"), strings.TrimPrefix(d.RPC, "tcp://")} {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections", a)
		}
	}
	// ours counts the goroutines that are not CometBFT's own (v0.38 leaves
	// its ABCI client watcher and the WAL's autofile routines running after
	// a node stops) or the runtime's signal loop.
	ours := func() (int, string) {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		n := 0
		var left []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "github.com/cometbft/cometbft/") || strings.Contains(g, "os/signal.signal_recv") {
				continue
			}
			n++
			left = append(left, g)
		}
		return n, strings.Join(left, "\n\n")
	}
	deadline := time.Now().Add(10 * time.Second)
	n, stacks := ours()
	if testing.Verbose() && n > base {
		t.Logf("right after stop:\n%s", stacks)
	}
	for n > base && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		n, stacks = ours()
	}
	t.Logf("goroutines: %d before, %d running, %d of ours after stop", base, running, n)
	if n > base {
		t.Fatalf("%d goroutines left after stop (%d before start):\n%s", n, base, stacks)
	}
}

// TestStartFails makes the last step of Start fail (the gateway's
// address cannot be listened on): Start stops what it started and returns
// the error (it used to panic stopping the worker, the devnet being nil
// by then), and the same directory starts afterwards.
func TestStartFails(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, Addr: "127.0.0.1:-1", BlockInterval: 200 * time.Millisecond, Threads: 1, Logger: testLogger(t)}
	d, err := Start(context.Background(), o)
	if err == nil || d != nil || !strings.Contains(err.Error(), "gateway") {
		t.Fatalf("Start on a bad address: %v %v", d, err)
	}
	start(t, Options{Dir: dir})
}

// TestAuditSecretRevealed: the gateway's escrows commit to an audit secret
// of the requester and the worker reveals it after publication, so that
// the chain's sampling rate decides the audit (an escrow without one, or
// an unrevealed secret, means an audit). At a rate of 1 in 10,000, the
// receipts become final unaudited (a missing reveal would audit them all).
func TestAuditSecretRevealed(t *testing.T) {
	p := DevParams()
	p.AuditRateBps = 1
	d := start(t, Options{Params: &p})
	var ids []string
	for i := 0; i < 3; i++ {
		code, body := post(t, d, d.APIKey, "/v1/completions", fmt.Sprintf(`{"model":"verdict-tiny","prompt":"Once upon a time","max_tokens":6,"seed":%d,"temperature":0.8}`, i))
		if code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
		var r struct {
			Verdict struct {
				ReceiptID string `json:"receipt_id"`
			} `json:"verdict"`
		}
		if err := json.Unmarshal(body, &r); err != nil || len(r.Verdict.ReceiptID) != 64 {
			t.Fatalf("no receipt id in %s", body)
		}
		ids = append(ids, r.Verdict.ReceiptID)
	}
	for _, id := range ids {
		waitStatus(t, d, id, 60*time.Second, ledger.StatusFinal)
		// Only a revealed secret leaves a receipt unaudited while audits
		// are on (the escrow is gone once the receipt is paid).
		var rec ledger.ReceiptRecord
		if _, err := worker.QueryJSON(context.Background(), d.Client, "receipt/"+id, &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Audited {
			t.Fatalf("receipt %s was audited: its audit secret was not committed or not revealed", id)
		}
	}
}
