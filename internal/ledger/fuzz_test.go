package ledger

import (
	"bytes"
	"testing"
)

func seedTxs(t testing.TB) [][]byte {
	h := newHarness(t, testParams())
	rcpt, id := signedReceipt(t, "carol", testModel, 1)
	msgs := []Msg{
		{Send: &MsgSend{To: testAddr("bob"), Amount: 1}},
		{RegisterModel: &MsgRegisterModel{ModelID: testModel, Name: "m", SpecVersion: 1}},
		{RegisterAgent: &MsgRegisterAgent{AgentURI: "ipfs://x", Metadata: []MetadataEntry{{MetadataKey: "k", MetadataValue: []byte{0, 1}}}}},
		{SetAgentURI: &MsgSetAgentURI{AgentID: 1, AgentURI: "u"}},
		{SetMetadata: &MsgSetMetadata{AgentID: 1, MetadataKey: "k"}},
		{SetAgentWallet: &MsgSetAgentWallet{AgentID: 1, NewWallet: testAddr("bob"), Deadline: 5, Signature: make([]byte, 64)}},
		{GiveFeedback: &MsgGiveFeedback{AgentID: 1, Value: "-3", ValueDecimals: 2, Tag1: "a", Tag2: "b"}},
		{RevokeFeedback: &MsgRevokeFeedback{AgentID: 1, FeedbackIndex: 1}},
		{AppendResponse: &MsgAppendResponse{AgentID: 1, ClientAddress: testAddr("bob"), FeedbackIndex: 1}},
		{ValidationRequest: &MsgValidationRequest{ValidatorAddress: testAddr("dave"), AgentID: 1, RequestHash: Hash{1}}},
		{ValidationResponse: &MsgValidationResponse{RequestHash: Hash{1}, Response: 50}},
		{Bond: &MsgBond{Amount: 5}},
		{Unbond: &MsgUnbond{Amount: 5}},
		{Unjail: &MsgUnjail{}},
		{OpenEscrow: &MsgOpenEscrow{Worker: testAddr("carol"), ModelID: testModel, Fee: 3, Request: testRequest(1)}},
		{PublishReceipt: &MsgPublishReceipt{EscrowID: Hash{2}, Receipt: rcpt}},
		{PostOpenings: &MsgPostOpenings{ReceiptID: id, Openings: []byte("o")}},
		{OpenDispute: &MsgOpenDispute{ReceiptID: id, Commitment: []byte("commit")}},
		{DisputeMove: &MsgDisputeMove{DisputeID: Hash{3}, Message: []byte("bisect")}},
		{TransferFrom: &MsgTransferFrom{From: testAddr("alice"), To: testAddr("bob"), AgentID: 1}},
		{AttestModel: &MsgAttestModel{ModelID: testModel}},
	}
	var out [][]byte
	for _, m := range msgs {
		out = append(out, h.tx("alice", m))
	}
	// A validator's attestation (of a model that FuzzCheckTx registers).
	out = append(out, h.tx(testValidator, Msg{AttestModel: &MsgAttestModel{ModelID: testModel}}))
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
			if Code(err) == 0 || Code(err) == 255 {
				t.Fatalf("error without a class: %v", err)
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
		if r.Code != 0 && r.Log == "" {
			t.Fatal("rejection without a message")
		}
		if h.l.AppHash() != root {
			t.Fatal("CheckTx changed the state")
		}
	})
}
