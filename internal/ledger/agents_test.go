package ledger

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestIdentityRegistry(t *testing.T) {
	h := newHarness(t, testParams())
	h.ok(h.tx("alice", &MsgRegisterAgent{AgentURI: "ipfs://a", Metadata: []MetadataEntry{{MetadataKey: "name", MetadataValue: []byte("Alice")}}}))
	h.ok(h.tx("bob", &MsgRegisterAgent{AgentURI: "ipfs://b"}))
	var a1, a2 Agent
	h.query("agent/1", &a1)
	h.query("agent/2", &a2)
	if a1.Owner != testAddr("alice") || a1.AgentWallet != testAddr("alice") || a1.AgentURI != "ipfs://a" || a2.AgentID != 2 || a2.Owner != testAddr("bob") {
		t.Fatalf("agents %+v %+v", a1, a2)
	}
	var name []byte
	h.query("agent/1/metadata/name", &name)
	if string(name) != "Alice" {
		t.Fatalf("metadata %q", name)
	}
	h.fails(h.tx("bob", &MsgSetAgentURI{AgentID: 1, AgentURI: "ipfs://evil"}), ErrUnauthorized)
	h.ok(h.tx("alice", &MsgSetAgentURI{AgentID: 1, AgentURI: "ipfs://a2"}))
	h.fails(h.tx("alice", &MsgSetMetadata{AgentID: 1, MetadataKey: "agentWallet", MetadataValue: []byte("x")}), ErrInvalid)
	h.fails(h.tx("alice", &MsgRegisterAgent{Metadata: []MetadataEntry{{MetadataKey: "agentWallet"}}}), ErrInvalid)
	h.fails(h.tx("alice", &MsgSetMetadata{AgentID: 9, MetadataKey: "k"}), ErrNotFound)

	// setAgentWallet needs the new wallet's signature before the deadline.
	deadline := int64(1_700_000_000 + 1000)
	walletSig := func(signer string, agent uint64, wallet Address, dl int64) []byte {
		return ed25519.Sign(testKey(signer), AgentWalletMessage(testChain, agent, wallet, dl))
	}
	dave := testAddr("dave")
	for _, c := range []struct {
		name string
		m    MsgSetAgentWallet
		by   string
		want error
	}{
		{"signed by owner not wallet", MsgSetAgentWallet{AgentID: 1, NewWallet: dave, Deadline: deadline, Signature: walletSig("alice", 1, dave, deadline)}, "alice", ErrSignature},
		{"signed for another agent", MsgSetAgentWallet{AgentID: 1, NewWallet: dave, Deadline: deadline, Signature: walletSig("dave", 2, dave, deadline)}, "alice", ErrSignature},
		{"expired", MsgSetAgentWallet{AgentID: 1, NewWallet: dave, Deadline: 1_600_000_000, Signature: walletSig("dave", 1, dave, 1_600_000_000)}, "alice", ErrDeadline},
		{"not owner", MsgSetAgentWallet{AgentID: 1, NewWallet: dave, Deadline: deadline, Signature: walletSig("dave", 1, dave, deadline)}, "bob", ErrUnauthorized},
	} {
		m := c.m
		h.fails(h.tx(c.by, &m), c.want)
	}
	h.ok(h.tx("alice", &MsgSetAgentWallet{AgentID: 1, NewWallet: dave, Deadline: deadline, Signature: walletSig("dave", 1, dave, deadline)}))
	h.query("agent/1", &a1)
	if a1.AgentWallet != dave || a1.AgentURI != "ipfs://a2" {
		t.Fatalf("agent after updates %+v", a1)
	}
	var w []byte
	h.query("agent/1/metadata/agentWallet", &w)
	if Address(w) != dave {
		t.Fatalf("agentWallet metadata %x", w)
	}
}

func TestReputationRegistry(t *testing.T) {
	h := newHarness(t, testParams())
	h.ok(h.tx("alice", &MsgRegisterAgent{AgentURI: "ipfs://a"}))
	fb := func(v Int128, dec uint8, tag1 string) Msg {
		return &MsgGiveFeedback{AgentID: 1, Value: v, ValueDecimals: dec, Tag1: tag1, Tag2: "t2", Endpoint: "https://a/v1", FeedbackURI: "ipfs://f"}
	}
	h.fails(h.tx("alice", fb("90", 0, "starred")), ErrUnauthorized) // self-feedback
	h.fails(h.tx("bob", &MsgGiveFeedback{AgentID: 7, Value: "1"}), ErrNotFound)
	h.ok(h.tx("bob", fb("90", 0, "starred")))
	h.ok(h.tx("bob", fb("80", 0, "starred")))
	h.ok(h.tx("carol", fb("9977", 2, "uptime")))
	h.ok(h.tx("carol", fb("-5", 0, "starred")))
	var f Feedback
	h.query("feedback/1/"+testAddr("bob").String()+"/2", &f)
	if f.FeedbackIndex != 2 || f.Value != "80" || f.ClientAddress != testAddr("bob") {
		t.Fatalf("feedback %+v", f)
	}
	var last uint64
	h.query("lastIndex/1/"+testAddr("carol").String(), &last)
	if last != 2 {
		t.Fatalf("carol's last index %d", last)
	}
	var clients []Address
	h.query("clients/1", &clients)
	if len(clients) != 2 {
		t.Fatalf("clients %v", clients)
	}
	sum := func(req SummaryRequest) Summary {
		s, err := h.l.Summary(req)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Hand-computed: starred = 90, 80, -5 -> mean 55; all four with the
	// largest decimals (2): (9000+8000+9977-500)/4 = 6619.25 -> 6619.
	if s := sum(SummaryRequest{AgentID: 1, Tag1: "starred"}); s != (Summary{3, "55", 0}) {
		t.Fatalf("starred summary %+v", s)
	}
	if s := sum(SummaryRequest{AgentID: 1}); s != (Summary{4, "6619", 2}) {
		t.Fatalf("overall summary %+v", s)
	}
	if s := sum(SummaryRequest{AgentID: 1, ClientAddresses: []Address{testAddr("bob")}}); s != (Summary{2, "85", 0}) {
		t.Fatalf("bob's summary %+v", s)
	}
	// Responses: anyone may append to an existing entry.
	h.fails(h.tx("alice", &MsgAppendResponse{AgentID: 1, ClientAddress: testAddr("bob"), FeedbackIndex: 9}), ErrNotFound)
	h.ok(h.tx("alice", &MsgAppendResponse{AgentID: 1, ClientAddress: testAddr("bob"), FeedbackIndex: 2, ResponseURI: "ipfs://r"}))
	h.ok(h.tx("dave", &MsgAppendResponse{AgentID: 1, ClientAddress: testAddr("bob"), FeedbackIndex: 2}))
	var nresp uint64
	h.query("responseCount/1/"+testAddr("bob").String()+"/2", &nresp)
	if nresp != 2 {
		t.Fatalf("response count %d", nresp)
	}
	// Revocation: only by the client, only once, and it leaves the summary.
	h.fails(h.tx("carol", &MsgRevokeFeedback{AgentID: 1, FeedbackIndex: 3}), ErrNotFound)
	h.ok(h.tx("bob", &MsgRevokeFeedback{AgentID: 1, FeedbackIndex: 1}))
	h.fails(h.tx("bob", &MsgRevokeFeedback{AgentID: 1, FeedbackIndex: 1}), ErrWrongState)
	if s := sum(SummaryRequest{AgentID: 1, Tag1: "starred"}); s != (Summary{2, "37", 0}) { // (80-5)/2 = 37.5
		t.Fatalf("after revoke %+v", s)
	}
	b, err := h.l.Query("summary", []byte(`{"agentId":1,"clientAddresses":[],"tag1":"uptime","tag2":""}`))
	if err != nil || string(b) != `{"count":1,"summaryValue":"9977","summaryValueDecimals":2}` {
		t.Fatalf("summary query: %s %v", b, err)
	}
}

func TestFeedbackValueChecks(t *testing.T) {
	for _, c := range []struct {
		v   Int128
		dec uint8
		ok  bool
	}{
		{"170141183460469231731687303715884105727", 0, true},
		{"-170141183460469231731687303715884105728", 18, true},
		{"170141183460469231731687303715884105728", 0, false},
		{"007", 0, false}, {"+7", 0, false}, {"-0", 0, false}, {"", 0, false}, {"1.5", 0, false},
		{"1", 19, false},
	} {
		m := &MsgGiveFeedback{AgentID: 1, Value: c.v, ValueDecimals: c.dec}
		if err := m.validate(); (err == nil) != c.ok {
			t.Errorf("value %q decimals %d: err %v, want ok=%v", c.v, c.dec, err, c.ok)
		}
	}
}

func TestValidationRegistry(t *testing.T) {
	h := newHarness(t, testParams())
	h.ok(h.tx("alice", &MsgRegisterAgent{AgentURI: "ipfs://a"}))
	rh := Hash{1, 2, 3}
	req := &MsgValidationRequest{ValidatorAddress: testAddr("dave"), AgentID: 1, RequestURI: "ipfs://req", RequestHash: rh}
	h.fails(h.tx("bob", req), ErrUnauthorized) // not the owner
	h.ok(h.tx("alice", req))
	h.fails(h.tx("alice", req), ErrExists)
	resp := func(v uint8, tag string) Msg {
		return &MsgValidationResponse{RequestHash: rh, Response: v, Tag: tag}
	}
	h.fails(h.tx("bob", resp(100, "x")), ErrUnauthorized) // wrong validator
	h.fails(h.tx("dave", &MsgValidationResponse{RequestHash: Hash{9}, Response: 1}), ErrNotFound)
	h.fails(h.tx("dave", resp(101, "x")), ErrDecode)
	h.ok(h.tx("dave", resp(40, "soft")))
	h.ok(h.tx("dave", resp(100, "hard"))) // repeatable
	var v Validation
	h.query("validation/"+rh.String(), &v)
	if !v.HasResponse || v.Response != 100 || v.Tag != "hard" || v.LastUpdate != h.height {
		t.Fatalf("validation %+v", v)
	}
	var list []Hash
	h.query("agentValidations/1", &list)
	if len(list) != 1 || list[0] != rh {
		t.Fatalf("agent validations %v", list)
	}
	h.query("validatorRequests/"+testAddr("dave").String(), &list)
	if len(list) != 1 {
		t.Fatalf("validator requests %v", list)
	}
	b, err := h.l.Query("validationSummary", []byte(`{"agentId":1,"validatorAddresses":[],"tag":"hard"}`))
	var s ValidationSummary
	if err != nil || json.Unmarshal(b, &s) != nil || s != (ValidationSummary{1, 100}) {
		t.Fatalf("validation summary %s %v", b, err)
	}
	// Named validators: the one that answered among 1023 others counts;
	// more than 1024 names are refused (each request was compared with
	// every name: 10,000 requests and a 12 MiB list of names took seconds
	// of the node's CPU a query).
	names := []Address{testAddr("dave")}
	for i := range 1023 {
		names = append(names, testAddr(fmt.Sprint("nobody ", i)))
	}
	q := func(names []Address) ([]byte, error) {
		d, _ := json.Marshal(ValidationSummaryRequest{AgentID: 1, ValidatorAddresses: names, Tag: "hard"})
		return h.l.Query("validationSummary", d)
	}
	if b, err := q(names); err != nil || json.Unmarshal(b, &s) != nil || s != (ValidationSummary{1, 100}) {
		t.Fatalf("validation summary of 1024 named validators %s %v", b, err)
	}
	if _, err := q(append(names, testAddr("one too many"))); err == nil || !strings.Contains(err.Error(), "limit 1024") {
		t.Fatalf("validation summary of 1025 named validators: %v", err)
	}
}

// TestTransferAgent: the owner transfers an agent (ERC-721 transferFrom);
// the agentWallet is cleared, only the new owner may then manage it (and
// set a wallet with that wallet's signature), the old owner may give it
// feedback, the new owner may not.
func TestTransferAgent(t *testing.T) {
	h := newHarness(t, testParams())
	alice, bob, carol, dave := testAddr("alice"), testAddr("bob"), testAddr("carol"), testAddr("dave")
	h.ok(h.tx("alice", &MsgRegisterAgent{AgentURI: "ipfs://a"}))
	for _, c := range []struct {
		name string
		by   string
		m    MsgTransferFrom
		want error
	}{
		{"not the owner", "bob", MsgTransferFrom{From: alice, To: bob, AgentID: 1}, ErrUnauthorized},
		{"from is not the owner", "alice", MsgTransferFrom{From: carol, To: bob, AgentID: 1}, ErrUnauthorized},
		{"unknown agent", "alice", MsgTransferFrom{From: alice, To: bob, AgentID: 2}, ErrNotFound},
		{"to the zero address", "alice", MsgTransferFrom{From: alice, AgentID: 1}, ErrDecode},
	} {
		m := c.m
		h.fails(h.tx(c.by, &m), c.want)
	}
	var a Agent
	h.query("agent/1", &a)
	if a.Owner != alice || a.AgentWallet != alice {
		t.Fatalf("agent changed by failed transfers: %+v", a)
	}
	r := h.ok(h.tx("alice", &MsgTransferFrom{From: alice, To: bob, AgentID: 1}))
	if ev := r.Events[1]; ev.Type != "Transfer" || ev.Attrs[0].Value != alice.String() || ev.Attrs[1].Value != bob.String() || ev.Attrs[2].Value != "1" {
		t.Fatalf("transfer event %+v", ev)
	}
	h.query("agent/1", &a)
	if a.Owner != bob || !a.AgentWallet.IsZero() || a.AgentURI != "ipfs://a" {
		t.Fatalf("after transfer %+v", a)
	}
	var w []byte
	h.query("agent/1/metadata/agentWallet", &w)
	if Address(w) != (Address{}) {
		t.Fatalf("agentWallet after transfer %x", w)
	}
	h.fails(h.tx("alice", &MsgSetAgentURI{AgentID: 1, AgentURI: "ipfs://old"}), ErrUnauthorized)
	h.fails(h.tx("alice", &MsgTransferFrom{From: alice, To: alice, AgentID: 1}), ErrUnauthorized)
	h.ok(h.tx("bob", &MsgSetAgentURI{AgentID: 1, AgentURI: "ipfs://b"}))
	h.fails(h.tx("bob", &MsgGiveFeedback{AgentID: 1, Value: "1"}), ErrUnauthorized)
	h.ok(h.tx("alice", &MsgGiveFeedback{AgentID: 1, Value: "1"}))
	deadline := int64(1_700_000_000 + 1000)
	sig := ed25519.Sign(testKey("dave"), AgentWalletMessage(testChain, 1, dave, deadline))
	h.fails(h.tx("alice", &MsgSetAgentWallet{AgentID: 1, NewWallet: dave, Deadline: deadline, Signature: sig}), ErrUnauthorized)
	h.ok(h.tx("bob", &MsgSetAgentWallet{AgentID: 1, NewWallet: dave, Deadline: deadline, Signature: sig}))
	h.query("agent/1", &a)
	if a.Owner != bob || a.AgentWallet != dave {
		t.Fatalf("after setAgentWallet %+v", a)
	}
	h.fails(h.tx("dave", &MsgGiveFeedback{AgentID: 1, Value: "1"}), ErrUnauthorized)
}
