package gateway

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/verdictnet/verdict/internal/inference"
	"github.com/verdictnet/verdict/internal/ledger"
)

// countingVerifier counts replays.
type countingVerifier struct {
	inference.Verifier
	replays atomic.Int64
}

func (c *countingVerifier) Verify(ctx context.Context, data []byte, replay bool) (*inference.Verification, error) {
	if replay {
		c.replays.Add(1)
	}
	return c.Verifier.Verify(ctx, data, replay)
}

// payReplay is the ledger's side of a replay's payment: the fee and the
// transaction fee leave the balance at once (the send is committed).
func (f *fakeLedger) payReplay(_ context.Context, a ledger.Address, fee uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.balance[a] < fee+escrowTxFee {
		return errors.New("insufficient funds")
	}
	f.balance[a] -= fee + escrowTxFee
	f.replayFees += fee + escrowTxFee
	return nil
}

// The attack: MCP verify_receipt replays a receipt, as costly as the
// generation, and nobody paid for it, so one generation bought an endless
// loop of replays. Now a replay is billed like a generation of the
// receipt's size: the loop runs until the account cannot pay, every replay
// that ran was paid, and nothing more ran. The signature check alone
// (replay false) stays free.
func TestReplayLoopIsBilled(t *testing.T) {
	const maxTokens = 20
	// A generation of 5+20 tokens costs 26 with its escrow transaction;
	// each replay of its receipt 26 too: the balance pays the generation
	// and three replays.
	const balance = 26 * 4
	v := &countingVerifier{Verifier: testWorker(t)}
	b := newBilled(t, map[string]uint64{"sk-a": balance}, func(o *Options) { o.Verifier = v })
	b.meter.PayReplay = b.ledger.payReplay
	cs := mcpSession(t, b.ts.URL, "sk-a")
	out, e := toolCall(t, cs, "generate", map[string]any{"prompt": "Once upon a time", "max_tokens": maxTokens, "temperature": 0})
	if e != "" {
		t.Fatal(e)
	}
	if n := out["prompt_tokens"].(float64) + out["completion_tokens"].(float64); n != 5+maxTokens {
		t.Fatalf("the generation has %v tokens, want %d (the balance is sized for it)", n, 5+maxTokens)
	}
	id := out["receipt_id"].(string)
	b.ledger.publishAll() // its escrow is on the ledger: the balance shows it
	ran, refused := 0, 0
	for i := range 10 {
		res, e := toolCall(t, cs, "verify_receipt", map[string]any{"id": id})
		switch {
		case e == "" && res["match"] == true:
			ran++
		case strings.Contains(e, "insufficient quota"):
			refused++
		default:
			t.Fatalf("replay %d: %v %q", i, res, e)
		}
	}
	a := b.addr["sk-a"]
	b.ledger.mu.Lock()
	left, paid := b.ledger.balance[a], b.ledger.replayFees
	b.ledger.mu.Unlock()
	if ran != 3 || refused != 7 || v.replays.Load() != 3 || paid != 3*26 || left != balance-4*26 {
		t.Errorf("%d replays ran (%d by the verifier), %d refused, %d paid, %d left; want 3, 7, %d, %d", ran, v.replays.Load(), refused, paid, left, 3*26, balance-4*26)
	}
	if held, _ := b.meter.Held(a); held != 0 {
		t.Errorf("%d still held", held)
	}
	// The signature check alone is free, even with nothing left.
	if res, e := toolCall(t, cs, "verify_receipt", map[string]any{"id": id, "replay": false}); e != "" || res["signature_valid"] != true {
		t.Errorf("signature check: %v %q", res, e)
	}
	if v.replays.Load() != 3 {
		t.Errorf("a signature check replayed")
	}
	// A meter that cannot bill replays refuses them.
	b.meter.PayReplay = nil
	if _, e := toolCall(t, cs, "verify_receipt", map[string]any{"id": id}); !strings.Contains(e, "does not bill replays") {
		t.Errorf("replay without a payer: %q", e)
	}
	t.Logf("balance %d: 1 generation and %d replays paid (%d), %d refused", balance, ran, paid, refused)
}
