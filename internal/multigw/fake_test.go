package multigw

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/receipt"
)

const testChain = "verdict-test"

// testNet lets the gateway reach the fake workers, all on 127.0.0.1.
var testNet = NetPolicy{AllowPrivate: true}

// fakeLedger is a ledger in memory: agents with metadata, stakes,
// accounts whose nonce advances with every escrow a fake worker takes.
type fakeLedger struct {
	mu       sync.Mutex
	height   uint64
	agents   []ledger.Agent // agent i+1
	meta     map[string][]byte
	stakes   map[ledger.Address]ledger.Stake
	nonces   map[ledger.Address]uint64
	model    ledger.Hash
	minStake uint64
	// escrows open (fee) and what each payer was charged by receipts
	// published against them.
	escrows map[ledger.Hash]uint64
	charged map[ledger.Address]uint64
	// burned counts each payer's nonces used by the gateway's sends to
	// the payer itself; onBroadcast, when set, runs before a broadcast.
	burned      map[ledger.Address]uint64
	onBroadcast func()
	// failAgents are the agents whose reads fail, as a node's query can.
	failAgents map[uint64]bool
}

func newFakeLedger() *fakeLedger {
	return &fakeLedger{height: 10, meta: map[string][]byte{}, stakes: map[ledger.Address]ledger.Stake{}, nonces: map[ledger.Address]uint64{},
		escrows: map[ledger.Hash]uint64{}, charged: map[ledger.Address]uint64{}, burned: map[ledger.Address]uint64{}, model: ledger.Hash{1, 2, 3}, minStake: 100}
}

func (l *fakeLedger) Chain(context.Context) (ledger.ChainInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return ledger.ChainInfo{ChainID: testChain, Height: l.height, NextAgent: uint64(len(l.agents)) + 1}, nil
}
func (l *fakeLedger) Params(context.Context) (ledger.Params, error) {
	p := ledger.DefaultParams()
	p.MinWorkerStake = l.minStake
	return p, nil
}
func (l *fakeLedger) Agent(_ context.Context, id uint64) (ledger.Agent, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failAgents[id] {
		return ledger.Agent{}, false, fmt.Errorf("agent %d: the node did not answer", id)
	}
	if id == 0 || id > uint64(len(l.agents)) {
		return ledger.Agent{}, false, nil
	}
	return l.agents[id-1], true, nil
}
func (l *fakeLedger) Model(_ context.Context, id ledger.Hash) (ledger.Model, bool, error) {
	return ledger.Model{ModelID: id, Name: "tiny", Active: true}, id == l.model, nil
}
func (l *fakeLedger) Stake(_ context.Context, a ledger.Address) (ledger.Stake, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stakes[a], nil
}
func (l *fakeLedger) Query(_ context.Context, path string, _ []byte) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a, ok := strings.CutPrefix(path, "account/"); ok {
		addr, _ := ledger.ParseAddress(a)
		return json.Marshal(ledger.Account{Balance: 1 << 40, Nonce: l.nonces[addr]})
	}
	v, ok := l.meta[path]
	if !ok {
		return nil, &client.QueryError{Code: ledger.Code(ledger.ErrNotFound), Log: "not found"}
	}
	return json.Marshal(v)
}
func (l *fakeLedger) Sign(_ context.Context, key ed25519.PrivateKey, m ledger.Msg, fee uint64, nonce int64) (*ledger.Tx, error) {
	a, _ := ledger.AddressOf(key.Public().(ed25519.PublicKey))
	l.mu.Lock()
	n := l.nonces[a]
	l.mu.Unlock()
	if nonce >= 0 {
		n = uint64(nonce)
	}
	tx := &ledger.Tx{ChainID: testChain, Fee: fee, Nonce: n, Msg: m}
	tx.Sign(key)
	return tx, nil
}
func (l *fakeLedger) Receipt(context.Context, ledger.Hash) (ledger.ReceiptRecord, bool, error) {
	return ledger.ReceiptRecord{}, false, nil
}
func (l *fakeLedger) ReceiptData(context.Context, ledger.Hash) ([]byte, error) {
	return nil, fmt.Errorf("not found")
}

// BroadcastCommit takes the gateway's own transactions: a send of 1 from
// a payer to itself, which uses its nonce. A nonce already used is
// refused as CheckTx refuses it.
func (l *fakeLedger) BroadcastCommit(_ context.Context, tx *ledger.Tx) (client.Result, error) {
	l.mu.Lock()
	hook := l.onBroadcast
	l.mu.Unlock()
	if hook != nil {
		hook()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if m, ok := tx.Msg.(*ledger.MsgSend); !ok || m.To != tx.Signer || m.Amount != 1 || !ed25519.Verify(tx.Signer[:], tx.SignBytes(), tx.Sig) {
		return client.Result{}, fmt.Errorf("unexpected transaction %+v", tx)
	}
	if tx.Nonce != l.nonces[tx.Signer] {
		return client.Result{}, &client.RejectedError{Code: ledger.Code(ledger.ErrNonce), Log: fmt.Sprintf("wrong nonce: sent %d, expected %d", tx.Nonce, l.nonces[tx.Signer])}
	}
	l.nonces[tx.Signer]++
	l.burned[tx.Signer]++
	return client.Result{Height: int64(l.height)}, nil
}

// escrowsOf is how many of a's nonces went to escrows (not burned).
func (l *fakeLedger) escrowsOf(a ledger.Address) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nonces[a] - l.burned[a]
}

// take records a paid escrow: the payer's nonce advances, the escrow
// opens (once: its id is the payer's and the nonce's).
func (l *fakeLedger) take(tx *ledger.Tx) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if tx.Nonce != l.nonces[tx.Signer] {
		return fmt.Errorf("nonce %d, want %d", tx.Nonce, l.nonces[tx.Signer])
	}
	l.nonces[tx.Signer]++
	l.escrows[ledger.EscrowID(tx.Signer, tx.Nonce)] = tx.Msg.(*ledger.MsgOpenEscrow).Fee
	return nil
}

// publish charges the payer of an open escrow amount (at most its fee)
// for a receipt, and closes it.
func (l *fakeLedger) publish(tx *ledger.Tx, amount uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	id := ledger.EscrowID(tx.Signer, tx.Nonce)
	fee, ok := l.escrows[id]
	if !ok {
		return fmt.Errorf("no escrow %s", id)
	}
	delete(l.escrows, id)
	l.charged[tx.Signer] += min(amount, fee)
	return nil
}

func (l *fakeLedger) chargedTo(a ledger.Address) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.charged[a]
}

// fakeWorker serves x402 quotes and paid completions like a worker.
type fakeWorker struct {
	t      *testing.T
	l      *fakeLedger
	key    ed25519.PrivateKey
	addr   ledger.Address
	id     uint64
	price  uint64
	srv    *httptest.Server
	served atomic.Int64
	hits   atomic.Int64 // requests of any kind
	// redirect, when set, makes the worker's API redirect there.
	redirect atomic.Pointer[string]
	// cut, when set, makes the worker die mid-answer after n bytes.
	cut atomic.Bool
	// free: the worker serves without payment (--no-auth).
	free bool
	// dieAfterPay: the worker broadcasts the escrow (it lands 300 ms
	// later) and dies before answering.
	dieAfterPay bool
	// flood: the worker streams one endless line.
	flood bool
	// amount, if set, is the amount the worker quotes (else 100).
	amount string
	// stall: the worker takes the escrow (after stalling, with
	// stallFirst), stalls, then publishes a partial receipt (cost
	// partialCost) for it whatever became of the request; stalled is
	// closed once it has tried. With release not nil it stalls until
	// release is closed instead (a test then decides what came first).
	stall      time.Duration
	stallFirst bool
	stalled    chan struct{}
	release    chan struct{}
	// answer, when set, writes the worker's answer to a paid request
	// once it has taken the escrow and published its receipt.
	answer func(rw http.ResponseWriter)
	// keep, when set, gets the signed escrow of a paid request, which
	// the worker keeps without submitting it, hanging up.
	keep chan *ledger.Tx
	// beforeTake, when set, runs before the worker submits an escrow;
	// with mayRefuse an escrow the ledger refuses is refused with a 402
	// (else it fails the test).
	beforeTake func()
	mayRefuse  bool

	mu       sync.Mutex
	receipts map[string][]byte // id -> signed receipt, as served
}

// sign makes the worker's signed receipt for its nth answer and keeps it.
func (w *fakeWorker) sign(n int64) string {
	r := &receipt.Receipt{Version: receipt.Version, Spec: receipt.DefaultSpec, Model: merkle.Hash(w.l.model), Worker: w.key.Public().(ed25519.PublicKey),
		Nonce: []byte(fmt.Sprint(n)), Sampling: receipt.Sampling{Steps: 5}, Prompt: []int{1, 2}, Output: []int{3, 4, 5}}
	if err := r.Sign(w.key); err != nil {
		w.t.Error(err)
	}
	b, err := r.Marshal()
	if err != nil {
		w.t.Error(err)
	}
	id := r.ID()
	rid := hex.EncodeToString(id[:])
	w.mu.Lock()
	if w.receipts == nil {
		w.receipts = map[string][]byte{}
	}
	w.receipts[rid] = b
	w.mu.Unlock()
	return rid
}

// Receipt costs in the fake: an answer, and a receipt cut short.
const (
	fullCost    = 10
	partialCost = 4
)

func (l *fakeLedger) addWorker(t *testing.T, name string, stake, price uint64) *fakeWorker {
	return l.addWorkerOn(t, name, stake, price, nil)
}

// addWorkerOn adds a worker serving on ln (nil: httptest's 127.0.0.1).
func (l *fakeLedger) addWorkerOn(t *testing.T, name string, stake, price uint64, ln net.Listener) *fakeWorker {
	seed := make([]byte, ed25519.SeedSize)
	copy(seed, name)
	k := ed25519.NewKeyFromSeed(seed)
	a, _ := ledger.AddressOf(k.Public().(ed25519.PublicKey))
	w := &fakeWorker{t: t, l: l, key: k, addr: a, price: price}
	w.srv = httptest.NewUnstartedServer(http.HandlerFunc(w.serve))
	if ln != nil {
		w.srv.Listener.Close()
		w.srv.Listener = ln
	}
	w.srv.Start()
	t.Cleanup(w.srv.Close)
	l.mu.Lock()
	l.agents = append(l.agents, ledger.Agent{AgentID: uint64(len(l.agents) + 1), Owner: a, AgentURI: w.srv.URL + gateway.RegistrationPath})
	w.id = uint64(len(l.agents))
	l.meta[fmt.Sprintf("agent/%d/metadata/%s", w.id, MetaRole)] = []byte(RoleWorker)
	l.meta[fmt.Sprintf("agent/%d/metadata/%s", w.id, MetaModel)] = []byte(l.model.String())
	l.meta[fmt.Sprintf("agent/%d/metadata/%s", w.id, MetaPrice)] = []byte(strconv.FormatUint(price, 10))
	l.stakes[a] = ledger.Stake{Bonded: stake}
	l.mu.Unlock()
	return w
}

// agentIDs returns the agent ids of ws, in order.
func agentIDs(ws []Worker) []uint64 {
	var ids []uint64
	for _, w := range ws {
		ids = append(ids, w.AgentID)
	}
	return ids
}

func (w *fakeWorker) serve(rw http.ResponseWriter, r *http.Request) {
	w.hits.Add(1)
	if to := w.redirect.Load(); to != nil && r.URL.Path != gateway.RegistrationPath {
		http.Redirect(rw, r, *to+r.URL.Path, http.StatusTemporaryRedirect)
		return
	}
	if r.URL.Path == gateway.RegistrationPath {
		reg, _ := gateway.WorkerRegistration{Name: "fake", Base: w.srv.URL, ChainID: testChain, AgentID: w.id, X402: true}.Build()
		json.NewEncoder(rw).Encode(reg)
		return
	}
	if id, ok := strings.CutPrefix(r.URL.Path, "/v1/receipts/"); ok {
		w.mu.Lock()
		b := w.receipts[id]
		w.mu.Unlock()
		if b == nil {
			http.NotFound(rw, r)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(rw, `{"id":%q,"object":"receipt","status":"published","receipt":%s}`, id, b)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var req struct {
		Model     string `json:"model"`
		Stream    bool   `json:"stream"`
		MaxTokens *int   `json:"max_tokens"`
	}
	json.Unmarshal(body, &req)
	if req.Model != w.l.model.String() {
		w.t.Errorf("worker got model %q, want the id", req.Model)
	}
	if req.MaxTokens != nil && *req.MaxTokens < 1 { // refused as a worker does, before any payment
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(http.StatusBadRequest)
		io.WriteString(rw, `{"error":{"message":"max_tokens must be at least 1","type":"invalid_request_error","param":"max_tokens","code":"invalid_value"}}`)
		return
	}
	sig := r.Header.Get(gateway.HeaderPaymentSignature)
	if w.free {
		if sig != "" || r.Header.Get("Authorization") != "" {
			w.t.Errorf("a free worker got credentials")
		}
		w.served.Add(1)
		rw.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(rw, `{"choices":[{"text":"free"}],"verdict":{"receipt_id":%q}}`, w.sign(w.served.Load()))
		return
	}
	if sig == "" {
		amount := cmp.Or(w.amount, "100")
		q := gateway.PaymentRequirements{Scheme: gateway.SchemeUpto, Network: gateway.CAIP2Network(testChain), Asset: gateway.X402Asset, Amount: amount,
			PayTo: w.addr.String(), Extra: gateway.X402QuoteExtra{RequestHash: ledger.Hash{9}.String(), Nonce: "AA==", ModelID: w.l.model.String(), ChainID: testChain,
				PricePerToken: strconv.FormatUint(w.price, 10)}}
		b, _ := json.Marshal(gateway.PaymentRequired{X402Version: 2, Error: "payment_required", Accepts: []gateway.PaymentRequirements{q}})
		rw.Header().Set(gateway.HeaderPaymentRequired, base64.StdEncoding.EncodeToString(b))
		rw.WriteHeader(http.StatusPaymentRequired)
		return
	}
	var p gateway.PaymentPayload
	if err := decodeB64JSON(sig, &p); err != nil {
		w.t.Errorf("payment: %v", err)
		return
	}
	raw, _ := base64.StdEncoding.DecodeString(p.Payload.Transaction)
	tx, err := ledger.DecodeTx(raw)
	if err != nil {
		w.t.Errorf("payment transaction: %v", err)
		return
	}
	if m, ok := tx.Msg.(*ledger.MsgOpenEscrow); !ok || m.Worker != w.addr || m.PricePerToken != w.price || strconv.FormatUint(m.Fee, 10) != cmp.Or(w.amount, "100") {
		w.t.Errorf("escrow %+v", tx.Msg)
	}
	if w.stall > 0 || w.release != nil {
		defer close(w.stalled)
		stall := func() {
			if w.release != nil {
				<-w.release
			} else {
				time.Sleep(w.stall)
			}
		}
		if w.stallFirst {
			stall()
		}
		if err := w.l.take(tx); err != nil {
			return // the ledger refused the escrow: no receipt can be paid
		}
		if !w.stallFirst {
			stall()
		}
		if err := w.l.publish(tx, partialCost); err != nil {
			w.t.Errorf("publishing: %v", err)
		}
		return
	}
	if w.keep != nil {
		w.keep <- tx
		panic(http.ErrAbortHandler)
	}
	if w.dieAfterPay {
		go func() {
			time.Sleep(300 * time.Millisecond)
			if err := w.l.take(tx); err != nil {
				w.t.Errorf("escrow: %v", err)
			}
		}()
		panic(http.ErrAbortHandler)
	}
	if w.beforeTake != nil {
		w.beforeTake()
	}
	if err := w.l.take(tx); err != nil {
		if !w.mayRefuse {
			w.t.Errorf("escrow: %v", err)
		}
		b, _ := json.Marshal(gateway.PaymentRequired{X402Version: 2, Error: "escrow refused: " + err.Error()})
		rw.Header().Set(gateway.HeaderPaymentRequired, base64.StdEncoding.EncodeToString(b))
		rw.WriteHeader(http.StatusPaymentRequired)
		return
	}
	if err := w.l.publish(tx, fullCost); err != nil {
		w.t.Errorf("publishing: %v", err)
	}
	w.served.Add(1)
	if w.answer != nil {
		w.answer(rw)
		return
	}
	rid := w.sign(w.served.Load())
	settle, _ := json.Marshal(gateway.SettleResponse{Success: true, Payer: tx.Signer.String(), Transaction: "tx", Network: p.Accepted.Network, Amount: strconv.Itoa(fullCost)})
	rw.Header().Set(gateway.HeaderPaymentResponse, base64.StdEncoding.EncodeToString(settle))
	if !req.Stream {
		if w.cut.Load() {
			rw.Header().Set("Content-Length", "1000")
			rw.WriteHeader(http.StatusOK)
			rw.Write([]byte(`{"id":"x","choices":[{"text":"half`))
			return // the connection closes short of its length
		}
		rw.Header().Set("Content-Type", "application/json")
		rw.Header().Set("X-Verdict-Receipt", rid)
		if r.URL.Path == "/v1/chat/completions" {
			fmt.Fprintf(rw, `{"id":"chat","object":"chat.completion","system_fingerprint":"fp_x","choices":[{"message":{"role":"assistant","content":"chat from %d"},"finish_reason":"stop"}],"usage":{"prompt_tokens":2,"completion_tokens":3},"verdict":{"receipt_id":%q}}`, w.id, rid)
			return
		}
		fmt.Fprintf(rw, `{"id":"cmpl","object":"text_completion","choices":[{"text":"from %d <b>"}],"verdict":{"receipt_id":%q}}`, w.id, rid)
		return
	}
	rw.Header().Set("Content-Type", "text/event-stream")
	rw.Header().Set("Trailer", "X-Verdict-Receipt")
	rw.WriteHeader(http.StatusOK)
	fmt.Fprintf(rw, "data: {\"choices\":[{\"text\":\"from %d\"}]}\n\n", w.id)
	rw.(http.Flusher).Flush()
	if w.cut.Load() {
		panic(http.ErrAbortHandler) // dies mid-stream
	}
	if w.flood {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for i := 0; i < 2*MaxEventBytes/len(chunk); i++ {
			if _, err := rw.Write(chunk); err != nil {
				return
			}
		}
		return
	}
	fmt.Fprintf(rw, "data: {\"choices\":[],\"verdict\":{\"receipt_id\":%q}}\n\ndata: [DONE]\n\n", rid)
	rw.Header().Set("X-Verdict-Receipt", rid)
}
