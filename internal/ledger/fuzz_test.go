package ledger

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func seedTxs(t testing.TB) [][]byte {
	h := newHarness(t, testParams())
	rcpt, id := signedReceipt(t, "carol", testModel, 1)
	msgs := []Msg{
		&MsgSend{To: testAddr("bob"), Amount: 1},
		&MsgRegisterModel{ModelID: testModel, Name: "m", SpecVersion: 1},
		&MsgRegisterAgent{AgentURI: "ipfs://x", Metadata: []MetadataEntry{{MetadataKey: "k", MetadataValue: []byte{0, 1}}}},
		&MsgSetAgentURI{AgentID: 1, AgentURI: "u"},
		&MsgSetMetadata{AgentID: 1, MetadataKey: "k"},
		&MsgSetAgentWallet{AgentID: 1, NewWallet: testAddr("bob"), Deadline: 5, Signature: make([]byte, 64)},
		&MsgGiveFeedback{AgentID: 1, Value: "-3", ValueDecimals: 2, Tag1: "a", Tag2: "b"},
		&MsgRevokeFeedback{AgentID: 1, FeedbackIndex: 1},
		&MsgAppendResponse{AgentID: 1, ClientAddress: testAddr("bob"), FeedbackIndex: 1},
		&MsgValidationRequest{ValidatorAddress: testAddr("dave"), AgentID: 1, RequestHash: Hash{1}},
		&MsgValidationResponse{RequestHash: Hash{1}, Response: 50},
		&MsgBond{Amount: 5},
		&MsgUnbond{Amount: 5},
		&MsgUnjail{},
		&MsgOpenEscrow{Worker: testAddr("carol"), ModelID: testModel, Fee: 3, Request: testRequest(1)},
		&MsgPublishReceipt{EscrowID: Hash{2}, Receipt: rcpt},
		&MsgPostOpenings{ReceiptID: id, Openings: []byte("o")},
		&MsgOpenDispute{ReceiptID: id, Commitment: []byte("commit")},
		&MsgDisputeMove{DisputeID: Hash{3}, Message: []byte("bisect")},
		&MsgTransferFrom{From: testAddr("alice"), To: testAddr("bob"), AgentID: 1},
		&MsgAttestModel{ModelID: testModel},
		&MsgRevealAudit{ReceiptID: id, Secret: make([]byte, 32)},
	}
	var out [][]byte
	for _, m := range msgs {
		out = append(out, h.tx("alice", m))
	}
	// A validator's attestation (of a model that FuzzCheckTx registers).
	out = append(out, h.tx(testValidator, &MsgAttestModel{ModelID: testModel}))
	return out
}

func FuzzDecodeTx(f *testing.F) {
	for _, s := range seedTxs(f) {
		f.Add(s)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"chainId":"x","signer":"00","nonce":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tx, err := DecodeTx(b)
		if err != nil {
			if Code(err) == 0 || Code(err) == 255 || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error without a class, or of several lines: %q", err)
			}
			return
		}
		if !bytes.Equal(tx.Encode(), b) {
			t.Fatal("accepted a non-canonical encoding")
		}
		if tx.Msg.Kind() == "" {
			t.Fatal("accepted a transaction without exactly one message")
		}
	})
}

func FuzzCheckTx(f *testing.F) {
	for _, s := range seedTxs(f) {
		f.Add(s)
	}
	h := newHarness(f, testParams())
	h.registerModel("bob", testModel, "m")
	root := h.l.AppHash()
	f.Fuzz(func(t *testing.T, b []byte) {
		c := NewChecker(h.l)
		r := c.Check(b)
		if r.Code != 0 && (r.Log == "" || strings.Contains(r.Log, "\n")) {
			t.Fatalf("rejection without a one-line message: %q", r.Log)
		}
		if h.l.AppHash() != root {
			t.Fatal("CheckTx changed the state")
		}
	})
}

// fuzzSigners are the accounts FuzzHandlers signs for: the fuzzer picks
// one with its first byte, so every message reaches its handler with a
// valid signature, nonce and fee.
var fuzzSigners = []string{"alice", "bob", "carol", "dave", "erin", testValidator}

// fuzzState is a chain with something for every handler to act on: an
// active model, bonded worker and verifier, an agent with feedback and a
// validation request, an audited receipt and an open dispute over another.
func fuzzState(tb testing.TB) *harness {
	h := newHarness(tb, auditParams())
	setupMarket(nil, h, 300)
	h.ok(h.tx("bob", &MsgGiveFeedback{AgentID: 1, Value: "5"}))
	h.ok(h.tx("carol", &MsgValidationRequest{ValidatorAddress: testAddr("dave"), AgentID: 1, RequestHash: Hash{1}}))
	h.publish(1)
	id := h.publish(2)
	h.ok(h.tx("dave", &MsgOpenDispute{ReceiptID: id, Commitment: []byte("commit")}))
	return h
}

// FuzzHandlers runs fuzzed messages, signed by known keys, through the
// handlers against fuzzState (in a scratch store): every outcome is a
// classified result, never a panic, and the same twice.
func FuzzHandlers(f *testing.F) {
	h := fuzzState(f)
	for i, raw := range seedTxs(f) {
		tx, err := DecodeTx(raw)
		if err != nil {
			f.Fatal(err)
		}
		b, _ := json.Marshal(tx.wire().Msg) // {"<kind>": {...}}
		f.Add(byte(i), b)
	}
	f.Add(byte(3), []byte(`{"disputeMove":{"disputeId":"`+strings.Repeat("0", 64)+`","message":"YmlzZWN0"}}`))
	f.Add(byte(2), []byte(`{"postOpenings":{"receiptId":"`+strings.Repeat("0", 64)+`","openings":"eA=="}}`))
	f.Fuzz(func(t *testing.T, who byte, msg []byte) {
		r1, ok := fuzzDeliver(h, who, msg)
		if !ok {
			return
		}
		root := h.l.AppHash()
		r2, _ := fuzzDeliver(h, who, msg)
		if r1.Code == 255 || r1.Code != 0 && r1.Log == "" {
			t.Fatalf("unclassified result %d %q", r1.Code, r1.Log)
		}
		if r1.Code != r2.Code || r1.Log != r2.Log || len(r1.Events) != len(r2.Events) {
			t.Fatalf("two runs differ: %+v / %+v", r1, r2)
		}
		if len(r1.Events) == 0 || r1.Events[0].Type != "tx" {
			t.Fatalf("the envelope stopped a valid transaction: %s", r1.Log)
		}
		if h.l.AppHash() != root {
			t.Fatal("a scratch run changed the state")
		}
	})
}

// fuzzDeliver signs msg (JSON of a Msg) for fuzzSigners[who] with its next
// nonce and a fee that covers any state growth, and runs it through the
// handlers in a scratch store over h's state; ok is false when msg is not
// one valid message.
func fuzzDeliver(h *harness, who byte, msg []byte) (Result, bool) {
	m, err := decodeMsg(msg)
	if err != nil || m.validate() != nil {
		return Result{}, false
	}
	name := fuzzSigners[int(who)%len(fuzzSigners)]
	var acct Account
	get(h.l.Store(), keyAccount(testAddr(name)), &acct)
	tx := &Tx{ChainID: testChain, Nonce: acct.Nonce, Fee: 10_000, Msg: m}
	tx.Sign(testKey(name))
	raw := tx.Encode()
	if len(raw) > MaxTxBytes {
		return Result{}, false
	}
	ci := h.l.Info()
	ctx := BlockContext{Height: ci.Height + 1, Time: ci.Time + 5, Hash: blockHash(ci.Height + 1), Proposer: testAddr("erin")}
	return h.l.deliver(newCache(h.l.Store()), ctx, raw), true
}

// TestFuzzHandlersReach: every seed of FuzzHandlers gets past the envelope
// (signature, nonce, fee) into its handler, and some succeed, which
// FuzzCheckTx's random bytes almost never do (attack 9).
func TestFuzzHandlersReach(t *testing.T) {
	h := fuzzState(t)
	ok := 0
	for i, raw := range seedTxs(t) {
		tx, err := DecodeTx(raw)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(tx.wire().Msg) // {"<kind>": {...}}
		r, valid := fuzzDeliver(h, byte(i), b)
		if !valid || len(r.Events) == 0 || r.Events[0].Type != "tx" {
			t.Fatalf("seed %d (%s) did not reach its handler: %+v", i, tx.Msg.Kind(), r)
		}
		if r.Code == 0 {
			ok++
		}
	}
	if ok < 5 {
		t.Fatalf("only %d seeds succeeded in their handlers", ok)
	}
}
