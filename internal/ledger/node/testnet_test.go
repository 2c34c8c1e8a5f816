package node

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/loopport"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/receipt"
)

// nodeHomeEnv makes the test binary run a node instead of tests, so the
// testnet test can start validators as separate processes.
const nodeHomeEnv = "VERDICT_TEST_NODE_HOME"

func TestMain(m *testing.M) {
	if home := os.Getenv(nodeHomeEnv); home != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		n, err := New(home, ledger.Hooks{Receipts: ledger.Receipts{}}, nil)
		if err == nil {
			err = n.Run(ctx)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "node:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// freeRange returns a port p such that p..p+n-1 are free on loopback.
func freeRange(t testing.TB, n int) int {
	p, err := loopport.Range(n)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startProc(t testing.TB, home string) *proc {
	log, err := os.OpenFile(filepath.Join(home, "node.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command(os.Args[0], "-test.run=^$")
	c.Env = append(os.Environ(), nodeHomeEnv+"="+home)
	c.Stdout, c.Stderr = log, log
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: c, done: make(chan struct{})}
	go func() { c.Wait(); log.Close(); close(p.done) }()
	return p
}

func (p *proc) stop(sig os.Signal) {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// TestFourValidators starts four validators as separate processes; four
// requesters open escrows while one validator is SIGKILLed in the middle of
// blocks, and a worker publishes a signed receipt for each; the chain keeps
// committing, the killed validator restarts and catches up, and it shows
// every transaction committed exactly once (nonces, balances, receipts);
// all validators agree on the app hash.
func TestFourValidators(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four validator processes")
	}
	dir := tempHome(t)
	o := DefaultOptions()
	o.ChainID, o.Validators, o.BlockInterval = "verdict-4", 4, 200*time.Millisecond
	o.BasePort = freeRange(t, 32)
	if err := Init(dir, o); err != nil {
		t.Fatal(err)
	}
	homes := Homes(dir, 4)
	procs := make([]*proc, 4)
	for i, h := range homes {
		procs[i] = startProc(t, h)
	}
	defer func() {
		for _, p := range procs {
			p.stop(os.Interrupt)
		}
		if t.Failed() {
			for _, h := range homes {
				b, _ := os.ReadFile(filepath.Join(h, "node.log"))
				if len(b) > 2000 {
					b = b[len(b)-2000:]
				}
				t.Logf("%s:\n%s", h, b)
			}
		}
	}()
	rpc := func(i int) *client.Client {
		c, err := client.New(fmt.Sprintf("tcp://127.0.0.1:%d", o.BasePort+10*i+1))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c0 := rpc(0)
	waitHeight(t, c0, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	faucetKey, err := keys.Load(filepath.Join(dir, FaucetFile))
	if err != nil {
		t.Fatal(err)
	}
	// Fund the requesters and register the model in one or two blocks.
	const senders, perSender = 4, 6
	sk := make([]ed25519.PrivateKey, senders)
	fpriv := ed25519.PrivateKey(faucetKey.Private)
	for i := range sk {
		s := sha256.Sum256([]byte(fmt.Sprint("sender", i)))
		sk[i] = ed25519.NewKeyFromSeed(s[:])
		tx, err := c0.Sign(ctx, fpriv, &ledger.MsgSend{To: ledger.Address(sk[i].Public().(ed25519.PublicKey)), Amount: 1000}, 1, int64(i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c0.BroadcastSync(ctx, tx); err != nil {
			t.Fatal(err)
		}
	}
	model := ledger.Hash{0x4d}
	tx, err := c0.Sign(ctx, fpriv, &ledger.MsgRegisterModel{ModelID: model, Name: "m", SpecVersion: 1}, 1, senders)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c0.BroadcastCommit(ctx, tx); err != nil || r.Code != 0 {
		t.Fatalf("register model: %+v %v", r, err)
	}
	// Validators 0, 2 and 3 (3/4 of the power; 1 is the worker below)
	// attest to holding it, which activates it (these nodes run without
	// models, so nobody attests automatically).
	for _, i := range []int{0, 2, 3} {
		vk, err := ValidatorKey(homes[i])
		if err != nil {
			t.Fatal(err)
		}
		tx, err := c0.Sign(ctx, vk, &ledger.MsgAttestModel{ModelID: model}, 1, -1)
		if err != nil {
			t.Fatal(err)
		}
		if r, err := c0.BroadcastCommit(ctx, tx); err != nil || r.Code != 0 {
			t.Fatalf("attest model: %+v %v", r, err)
		}
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var mrec ledger.Model
		b, err := c0.Query(ctx, "model/"+model.String(), nil)
		if err == nil && json.Unmarshal(b, &mrec) == nil && mrec.Active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("model not active after 3 of 4 attestations: %s %v", b, err)
		}
	}
	wk, err := ValidatorKey(homes[1]) // bonded at genesis: the worker
	if err != nil {
		t.Fatal(err)
	}
	wa := ledger.Address(wk.Public().(ed25519.PublicKey))
	// Each requester opens perSender escrows one after the other through
	// "its" validator (0..2); validator 3 is SIGKILLed meanwhile.
	var wg sync.WaitGroup
	errs := make(chan error, senders*perSender)
	for i := range sk {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := rpc(i % 3)
			for n := 0; n < perSender; n++ {
				tx, err := c.Sign(ctx, sk[i], &ledger.MsgOpenEscrow{Worker: wa, ModelID: model, Fee: 10, Request: ledger.RequestHash(testnetReceipt(model, i, n))}, 1, int64(n))
				if err == nil {
					var r client.Result
					r, err = c.BroadcastCommit(ctx, tx)
					if err == nil && r.Code != 0 {
						err = fmt.Errorf("sender %d tx %d: %s", i, n, r.Log)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}(i)
	}
	time.Sleep(time.Second)
	procs[3].stop(syscall.SIGKILL) // in the middle of blocks
	killedAt, _ := c0.Height(ctx)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The worker publishes one receipt per escrow, in batches, through
	// validator 2.
	var pubs []*ledger.Tx
	var ids []ledger.Hash
	for i := range sk {
		for n := 0; n < perSender; n++ {
			r := testnetReceipt(model, i, n)
			if err := r.Sign(wk); err != nil {
				t.Fatal(err)
			}
			rb, _ := r.Marshal()
			ids = append(ids, r.ID())
			tx := &ledger.Tx{ChainID: o.ChainID, Nonce: uint64(len(pubs)), Fee: 1, Msg: &ledger.MsgPublishReceipt{
				EscrowID: ledger.EscrowID(ledger.Address(sk[i].Public().(ed25519.PublicKey)), uint64(n)), Receipt: rb}}
			tx.Sign(wk)
			pubs = append(pubs, tx)
		}
	}
	c2 := rpc(2)
	for k := 0; k < len(pubs); k += 10 {
		if _, err := c2.BroadcastBatch(ctx, pubs[k:min(k+10, len(pubs))]); err != nil {
			t.Fatal(err)
		}
	}
	for {
		a, err := c0.Account(ctx, wa)
		if err == nil && a.Nonce == uint64(len(pubs)) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("receipts not committed: %+v %v", a, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	after, _ := c0.Height(ctx)
	if after <= killedAt {
		t.Fatalf("chain stopped at %d after a validator was killed", after)
	}
	procs[3] = startProc(t, homes[3])
	c3 := rpc(3)
	waitHeight(t, c3, after+2)

	// Exactly once, read from the restarted validator: every requester's
	// nonce and balance, the worker's nonce, every receipt on the ledger.
	for i, k := range sk {
		a, err := c3.Account(ctx, ledger.Address(k.Public().(ed25519.PublicKey)))
		if err != nil || a.Nonce != perSender || a.Balance != 1000-perSender*11 {
			t.Fatalf("requester %d on the restarted validator: %+v %v", i, a, err)
		}
	}
	if a, err := c3.Account(ctx, wa); err != nil || a.Nonce != uint64(len(pubs)) {
		t.Fatalf("worker: %+v %v", a, err)
	}
	for _, id := range ids {
		v, err := c3.Query(ctx, "receipt/"+id.String(), nil)
		var r ledger.ReceiptRecord
		if err != nil || json.Unmarshal(v, &r) != nil || (r.Status != ledger.StatusPublished && r.Status != ledger.StatusFinal) {
			t.Fatalf("receipt %s: %s %v", id, v, err)
		}
	}
	// All validators agree on the app hash at a common height.
	h := after + 1
	var want string
	for i := 0; i < 4; i++ {
		b, err := rpc(i).Block(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			want = b
		} else if b != want {
			t.Fatalf("validator %d app hash %s at height %d, validator 0 %s", i, b, h, want)
		}
	}
}

// testnetReceipt is the unsigned receipt requester i's escrow n pays for.
func testnetReceipt(model ledger.Hash, i, n int) *receipt.Receipt {
	return &receipt.Receipt{Version: receipt.Version, Spec: receipt.DefaultSpec, Model: merkle.Hash(model), Nonce: []byte{byte(i), byte(n)},
		Sampling: receipt.Sampling{TopP: 1, Steps: 4}, Prompt: []int{1, 2, 3}, Output: []int{4, 5}}
}
