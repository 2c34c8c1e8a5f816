package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	osexec "os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// txVector is one test vector of the transaction format: the ed25519 seed
// of its signer and its canonical encoding (signature included).
type txVector struct {
	Name string `json:"name"`
	Seed string `json:"seed"`
	Tx   string `json:"tx"`
}

func testSeed(name string) []byte {
	s := sha256.Sum256([]byte("ledger test key " + name))
	return s[:]
}

// trickyURI holds what encoders disagree on: '&', '<', '>', quotes,
// backslashes, control characters, non-ASCII text and U+2028.
const trickyURI = "https://agent.example/card?a=1&b=<2>&c=\"q\"\\ \t\n\x01\x7f é 日本 \u2028\u2029 🙂"

// vectorTxs are the transactions of testdata/txvectors.json.
func vectorTxs() []struct {
	name, signer string
	tx           Tx
} {
	return []struct {
		name, signer string
		tx           Tx
	}{
		{"send", "alice", Tx{ChainID: testChain, Nonce: 0, Fee: 1, Msg: &MsgSend{To: testAddr("bob"), Amount: 5}}},
		{"register", "alice", Tx{ChainID: testChain, Nonce: 1, Fee: 3, Msg: &MsgRegisterAgent{AgentURI: trickyURI,
			Metadata: []MetadataEntry{{MetadataKey: "x<y&z", MetadataValue: []byte{0, 1, 2, 0xfe, 0xff}}}}}},
		{"openEscrow", "bob", Tx{ChainID: testChain, Nonce: 9007199254740991, Fee: 2, Msg: &MsgOpenEscrow{Worker: testAddr("carol"), ModelID: testModel,
			Fee: 1000, Request: Hash{1, 2, 3}, AuditCommit: Hash{4}, AgentID: 7}}},
		{"giveFeedback", "carol", Tx{ChainID: testChain, Nonce: 3, Fee: 1, Msg: &MsgGiveFeedback{AgentID: 1, Value: "-170141183460469231731687303715884105728", ValueDecimals: 18, Tag1: "<b>", Tag2: "ok", Endpoint: "https://x.example/?q=a&r=b", FeedbackURI: "ipfs://f", FeedbackHash: Hash{9}}}},
		{"disputeMove", "dave", Tx{ChainID: testChain, Nonce: 4, Fee: 2, Msg: &MsgDisputeMove{DisputeID: Hash{5}, Message: []byte(`{"open":[1,2]}`)}}},
		{"unjail", "erin", Tx{ChainID: testChain, Nonce: 0, Fee: 1, Msg: &MsgUnjail{}}},
		{"openEscrow upto", "bob", Tx{ChainID: testChain, Nonce: 10, Fee: 1, Msg: &MsgOpenEscrow{Worker: testAddr("carol"), ModelID: testModel,
			Fee: 400, Request: Hash{1, 2, 3}, PricePerToken: 2}}},
		{"publishReceipt requestSteps", "carol", Tx{ChainID: testChain, Nonce: 5, Fee: 1, Msg: &MsgPublishReceipt{EscrowID: Hash{6}, Receipt: []byte(`{"version":1}`), RequestSteps: 199}}},
	}
}

// TestTxVectors pins the canonical encoding and signatures of a few
// transactions (testdata/txvectors.json, rewritten with -update): the
// vectors docs/ledger.md's "Transaction format" points implementers to.
func TestTxVectors(t *testing.T) {
	var got []txVector
	for _, v := range vectorTxs() {
		tx := v.tx
		tx.Sign(testKey(v.signer))
		raw := tx.Encode()
		if _, err := DecodeTx(raw); err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		got = append(got, txVector{Name: v.name, Seed: hex.EncodeToString(testSeed(v.signer)), Tx: string(raw)})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(got); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	path := filepath.Join("testdata", "txvectors.json")
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(want, b) {
		t.Fatalf("transaction vectors differ from %s:\n%s", path, b)
	}
	// What the format spells out by hand.
	raw := got[1].Tx
	for _, s := range []string{`&b=<2>&c=\"q\"\\ \t\n\u0001`, "\x7f é 日本 \\u2028\\u2029 🙂", `"metadataValue":"AAEC/v8="`} {
		if !bytes.Contains([]byte(raw), []byte(s)) {
			t.Fatalf("register vector lacks %q: %s", s, raw)
		}
	}
}

// TestJavaScriptClient runs a second implementation of the transaction
// format (testdata/txclient.mjs, Node's built-in ed25519 only): it
// re-encodes and re-signs every vector byte for byte, and builds and signs
// transactions (an agentURI with '&', '<', non-ASCII text and U+2028)
// that this ledger decodes, verifies and commits.
func TestJavaScriptClient(t *testing.T) {
	node, err := osexec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node is needed in CI: %v", err)
		}
		t.Skipf("node is missing: %v", err)
	}
	var vectors []txVector
	b, err := os.ReadFile(filepath.Join("testdata", "txvectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &vectors); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, testParams())
	h.ok(h.tx("bob", &MsgRegisterAgent{AgentURI: "first"})) // agent 1; alice's will be 2
	var acct Account
	h.query("account/"+testAddr("alice").String(), &acct)
	uri2 := "ipfs://second?x=<&>\u2028"
	build := map[string]any{"chainId": testChain, "seed": hex.EncodeToString(testSeed("alice")), "nonce": acct.Nonce, "fee": 20,
		"agentURI": trickyURI, "metaKey": "k&<>", "metaValueHex": "00ff10", "agentId": 2, "agentURI2": uri2, "to": testAddr("bob").String()}
	in, _ := json.Marshal(map[string]any{"vectors": vectors, "build": build})
	cmd := osexec.Command(node, filepath.Join("testdata", "txclient.mjs"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var res struct {
		Vectors []struct {
			Name                     string
			Same, Verified, Resigned bool
		}
		Built []string
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	if len(res.Vectors) != len(vectors) || len(res.Built) != 3 {
		t.Fatalf("node answered %+v", res)
	}
	for _, v := range res.Vectors {
		if !v.Same || !v.Verified || !v.Resigned {
			t.Errorf("vector %s in JavaScript: re-encoded identically %v, signature verified %v, re-signed identically %v", v.Name, v.Same, v.Verified, v.Resigned)
		}
	}
	var txs [][]byte
	for _, s := range res.Built {
		if _, err := DecodeTx([]byte(s)); err != nil {
			t.Fatalf("a JavaScript transaction: %v\n%s", err, s)
		}
		txs = append(txs, []byte(s))
	}
	for i, r := range h.block(txs...).TxResults {
		if r.Code != 0 {
			t.Fatalf("JavaScript transaction %d: %s", i, r.Log)
		}
	}
	var a Agent
	h.query("agent/2", &a)
	if a.AgentURI != uri2 || a.Owner != testAddr("alice") {
		t.Fatalf("agent %+v", a)
	}
	var md []byte
	h.query("agent/2/metadata/k&<>", &md)
	if !bytes.Equal(md, []byte{0, 0xff, 0x10}) {
		t.Fatalf("metadata %x", md)
	}
}

// TestMessageKinds: every field of msgWire (the wire form of Msg) holds a
// message type whose Kind is the field's JSON name, a Tx holding it is
// written under that name alone, and decoding finds it again.
func TestMessageKinds(t *testing.T) {
	typ := reflect.TypeFor[msgWire]()
	seen := map[string]bool{}
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		m, ok := reflect.New(f.Type.Elem()).Interface().(Msg)
		if !ok {
			t.Fatalf("field %s: %s is not a Msg", f.Name, f.Type)
		}
		want := strings.TrimSuffix(f.Tag.Get("json"), ",omitempty")
		if got := m.Kind(); got != want || seen[want] {
			t.Errorf("field %s: kind %q, JSON name %q (seen before: %v)", f.Name, got, want, seen[want])
		}
		seen[want] = true
		w := (&Tx{Msg: m}).wire()
		if v := reflect.ValueOf(w.Msg).Field(i); v.IsNil() || v.Interface() != m {
			t.Errorf("field %s does not hold its message in the wire form", f.Name)
		}
		if one, err := w.Msg.one(); err != nil || one != m {
			t.Errorf("field %s: one() = %v, %v", f.Name, one, err)
		}
	}
}

// TestMsgEnvelope: encoding/json writes a Tx (or a value holding one) in
// its canonical encoding, and json.Unmarshal and DecodeTx refuse a msg with
// no message or with two, as the wire form allows.
func TestMsgEnvelope(t *testing.T) {
	tx := &Tx{ChainID: testChain, Fee: 1, Msg: &MsgRegisterAgent{AgentURI: trickyURI}}
	tx.Sign(testKey("alice"))
	raw := tx.Encode()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(struct{ Tx *Tx }{tx}); err != nil || buf.String() != `{"Tx":`+string(raw)+"}\n" {
		t.Fatalf("encoding/json: %v\n%s\n%s", err, buf.Bytes(), raw)
	}
	var back Tx
	if err := json.Unmarshal(raw, &back); err != nil || !bytes.Equal(back.Encode(), raw) {
		t.Fatalf("json.Unmarshal: %v", err)
	}
	for name, b := range map[string][]byte{
		"none": []byte(`{"chainId":"` + testChain + `","signer":"` + testAddr("alice").String() + `","nonce":0,"fee":1,"msg":{}}`),
		"two":  bytes.Replace(raw, []byte(`"msg":{`), []byte(`"msg":{"bond":{"amount":1},`), 1),
	} {
		if err := json.Unmarshal(b, &back); err == nil || !strings.Contains(err.Error(), "exactly one message") {
			t.Errorf("%s: json.Unmarshal of %s: %v", name, b, err)
		}
		if _, err := DecodeTx(b); Code(err) != Code(ErrDecode) || !strings.Contains(err.Error(), "msg must hold exactly one message") {
			t.Errorf("%s: DecodeTx of %s: %v", name, b, err)
		}
	}
}
