package ledger

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/dispute"
)

// checkEvent fails the harness's test when an emitted event is not in
// eventAttrs or does not carry exactly its listed attributes, in order.
func (h *harness) checkEvent(ev Event) {
	h.t.Helper()
	i := slices.IndexFunc(eventAttrs, func(e struct {
		Type  EventType
		Attrs []AttrKey
	}) bool {
		return e.Type == ev.Type
	})
	if i < 0 {
		h.t.Fatalf("height %d: event %q is not listed in eventAttrs", h.height, ev.Type)
	}
	var keys []AttrKey
	for _, a := range ev.Attrs {
		keys = append(keys, a.Key)
	}
	if !slices.Equal(keys, eventAttrs[i].Attrs) {
		h.t.Fatalf("height %d: event %s has attributes %v, eventAttrs lists %v", h.height, ev.Type, keys, eventAttrs[i].Attrs)
	}
	h.events = append(h.events, ev)
}

// TestEventList: eventAttrs lists every EventType constant once, and
// every AttrKey constant is some event's attribute.
func TestEventList(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "eventnames.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string][]string{} // type -> values
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			typ, ok := vs.Type.(*ast.Ident)
			if !ok {
				continue
			}
			for _, v := range vs.Values {
				lit, ok := v.(*ast.BasicLit)
				if !ok {
					t.Fatalf("constant of %s is not a literal", typ.Name)
				}
				s, _ := strconv.Unquote(lit.Value)
				consts[typ.Name] = append(consts[typ.Name], s)
			}
		}
	}
	listed := map[EventType]bool{}
	keys := map[AttrKey]bool{}
	for _, e := range eventAttrs {
		if listed[e.Type] {
			t.Errorf("event %s listed twice", e.Type)
		}
		listed[e.Type] = true
		for _, k := range e.Attrs {
			keys[k] = true
		}
	}
	if len(consts["EventType"]) < 40 || len(consts["AttrKey"]) < 40 {
		t.Fatalf("read %d event types and %d attribute keys from eventnames.go", len(consts["EventType"]), len(consts["AttrKey"]))
	}
	for _, c := range consts["EventType"] {
		if !listed[EventType(c)] {
			t.Errorf("event type %q has no eventAttrs entry", c)
		}
	}
	if len(listed) != len(consts["EventType"]) {
		t.Errorf("eventAttrs lists %d events, eventnames.go declares %d", len(listed), len(consts["EventType"]))
	}
	for _, c := range consts["AttrKey"] {
		if !keys[AttrKey(c)] {
			t.Errorf("attribute key %q is no event's", c)
		}
	}
}

// decodeAll finds the events of type typ in evs and decodes them.
func decodeAll[T any](t *testing.T, evs []Event, typ EventType, decode func(Event) (T, error)) []T {
	t.Helper()
	var out []T
	for _, ev := range evs {
		if ev.Type != typ {
			continue
		}
		v, err := decode(ev)
		if err != nil {
			t.Fatalf("decoding %s: %v", typ, err)
		}
		out = append(out, v)
	}
	return out
}

// TestEventDecoders runs a market through the harness (an agent, two
// receipts, an audit answered, a validation request, a dispute lost by the
// worker) and decodes the events the services read: each decoded field
// is what the transaction or the ledger's records say.
func TestEventDecoders(t *testing.T) {
	p := auditParams()
	h := newHarness(t, p)
	esc := setupMarket(t, h, 300)
	var escrow Escrow
	h.query("escrow/"+esc.String(), &escrow)
	stakeBefore := h.stakeOf("carol").Bonded
	h.ok(h.tx("alice", &MsgSend{To: testAddr("bob"), Amount: 77}))
	rcpt, id := signedReceipt(t, "carol", testModel, 1)
	h.ok(h.tx("carol", &MsgPublishReceipt{EscrowID: esc, Receipt: rcpt}))
	h.block() // audit selection
	id2 := h.publish(2)
	h.block()
	a2 := h.audit(id2)
	h.ok(h.tx("carol", &MsgPostOpenings{ReceiptID: id2, Openings: goodOpenings(a2.Seed, a2.Cells)}))
	h.ok(h.tx("carol", &MsgValidationRequest{ValidatorAddress: testAddr("dave"), AgentID: 1, RequestURI: "verdict:receipt/" + id2.String(), RequestHash: Hash{9}}))
	res := h.ok(h.tx("dave", &MsgOpenDispute{ReceiptID: id, Commitment: []byte("commit")}))
	var did Hash
	for _, ev := range res.Events {
		if ev.Type == EventDisputeOpened {
			v, _ := ev.Attr(AttrDisputeID)
			did, _ = ParseHash(v)
		}
	}
	move := func(who, msg string) []byte {
		return h.tx(who, &MsgDisputeMove{DisputeID: did, Message: []byte(msg)})
	}
	h.ok(move("carol", "bisect"))
	h.ok(move("dave", "referee:challenger"))
	h.blocksUntil(h.receiptRecord(id2).WindowEnd + 1)

	carol, dave := testAddr("carol"), testAddr("dave")
	if got := decodeAll(t, h.events, EventRegistered, DecodeRegistered); len(got) != 1 || got[0] != (Registered{AgentID: 1, AgentURI: "ipfs://carol", Owner: carol}) {
		t.Errorf("Registered: %+v", got)
	}
	pub := decodeAll(t, h.events, EventReceiptPublished, DecodeReceiptPublished)
	r1 := h.receiptRecord(id)
	if len(pub) != 2 || pub[0] != (ReceiptPublished{ReceiptID: id, EscrowID: esc, Worker: carol, ModelID: testModel, WindowEnd: r1.WindowEnd}) || pub[1].ReceiptID != id2 {
		t.Errorf("receipt_published: %+v, want receipt %s on escrow %s, window end %d", pub, id, esc, r1.WindowEnd)
	}
	sel := decodeAll(t, h.events, EventAuditSelected, DecodeAuditSelected)
	a1 := h.audit(id)
	if len(sel) != 2 || sel[0] != (AuditSelected{ReceiptID: id, Seed: a1.Seed, Cells: a1.Cells, Deadline: a1.Deadline, Worker: carol}) ||
		sel[1] != (AuditSelected{ReceiptID: id2, Seed: a2.Seed, Cells: a2.Cells, Deadline: a2.Deadline, Worker: carol}) {
		t.Errorf("audit_selected: %+v, want audits %+v and %+v", sel, a1, a2)
	}
	if got := decodeAll(t, h.events, EventDisputeOpened, DecodeDisputeOpened); len(got) != 1 || got[0] != (DisputeOpened{DisputeID: did, ReceiptID: id, Challenger: dave, Worker: carol}) {
		t.Errorf("dispute_opened: %+v", got)
	}
	var d Dispute
	h.query("dispute/"+did.String(), &d)
	if got := decodeAll(t, h.events, EventDisputeSettled, DecodeDisputeSettled); len(got) != 1 || got[0] != (DisputeSettled{DisputeID: did, Status: DisputeWorkerLost, WorkerFault: dispute.FaultStateMismatch, Reason: "referee"}) ||
		d.WorkerFault != dispute.FaultStateMismatch || d.ChallengerFault != "" || d.VoidFault != "" {
		t.Errorf("dispute_settled: %+v, dispute %+v", got, d)
	}
	if got := decodeAll(t, h.events, EventValidationRequest, DecodeValidationRequest); len(got) != 1 ||
		got[0] != (ValidationRequested{ValidatorAddress: dave, AgentID: 1, RequestURI: "verdict:receipt/" + id2.String(), RequestHash: Hash{9}}) {
		t.Errorf("ValidationRequest: %+v", got)
	}
	if got := decodeAll(t, h.events, EventAuditPassed, DecodeAuditOutcome); len(got) != 1 || got[0] != (AuditOutcome{Type: EventAuditPassed, ReceiptID: id2}) {
		t.Errorf("audit_passed: %+v", got)
	}
	if got := decodeAll(t, h.events, EventAuditMissed, DecodeAuditOutcome); len(got) != 1 || got[0] != (AuditOutcome{Type: EventAuditMissed, ReceiptID: id}) {
		t.Errorf("audit_missed: %+v", got)
	}
	if got, err := DecodeAuditOutcome(Event{Type: EventAuditFailed, Attrs: []Attr{{AttrReceiptID, id.String()}, {AttrError, "bad opening"}}}); err != nil ||
		got != (AuditOutcome{Type: EventAuditFailed, ReceiptID: id, Error: "bad opening"}) {
		t.Errorf("audit_failed: %+v %v", got, err)
	}
	if _, err := DecodeAuditOutcome(Event{Type: EventAuditFailed, Attrs: []Attr{{AttrReceiptID, id.String()}}}); err == nil || !strings.Contains(err.Error(), string(AttrError)) {
		t.Errorf("audit_failed without its error: %v", err)
	}
	fin := decodeAll(t, h.events, EventReceiptFinal, DecodeReceiptFinal)
	if len(fin) != 1 || fin[0] != (ReceiptFinal{ReceiptID: id2, Worker: carol, Fee: 500, ProtocolFee: mulBps(500, p.ProtocolFeeBps)}) {
		t.Errorf("receipt_final: %+v", fin)
	}

	alice, erin := testAddr("alice"), testAddr("erin")
	if got := decodeAll(t, h.events, EventTransfer, DecodeTransfer); len(got) != 1 || got[0] != (Transferred{From: alice, To: testAddr("bob"), Amount: 77}) {
		t.Errorf("transfer: %+v", got)
	}
	txs := decodeAll(t, h.events, EventTx, DecodeTxEvent)
	if !slices.Contains(txs, TxPaid{Kind: "bond", Signer: carol, Nonce: 0, Fee: 1}) || !slices.Contains(txs, TxPaid{Kind: "send", Signer: alice, Nonce: 1, Fee: 1}) {
		t.Errorf("tx events: %+v", txs)
	}
	if got := decodeAll(t, h.events, EventBond, DecodeBond); !slices.Contains(got, Bonded{Account: carol, Amount: 10_000, Bonded: 10_000}) {
		t.Errorf("bond: %+v", got)
	}
	opened := decodeAll(t, h.events, EventEscrowOpened, DecodeEscrowOpened)
	if len(opened) != 2 || opened[0] != (EscrowOpened{EscrowID: esc, Requester: alice, Worker: carol, ModelID: testModel, Fee: 300, Expires: escrow.Expires}) {
		t.Errorf("escrow_opened: %+v, escrow %+v", opened, escrow)
	}
	if got := decodeAll(t, h.events, EventEscrowRefunded, DecodeEscrowRefunded); len(got) != 1 || got[0].EscrowID != esc || got[0].Requester != alice || got[0].Fee != 300 {
		t.Errorf("escrow_refunded: %+v", got)
	}
	moves := decodeAll(t, h.events, EventDisputeMove, DecodeDisputeMove)
	if len(moves) != 2 || moves[0].DisputeID != did || moves[0].From != SideWorker || moves[1].From != SideChallenger || moves[1].Move != moves[0].Move+1 {
		t.Errorf("dispute_move: %+v", moves)
	}
	after := h.stakeOf("carol")
	if got := decodeAll(t, h.events, EventSlash, DecodeSlash); len(got) != 1 || got[0].Account != carol || got[0].Amount != stakeBefore-after.Bonded || got[0].JailedUntil != after.JailedUntil {
		t.Errorf("slash: %+v, stake %d then %+v", got, stakeBefore, after)
	}
	var fees uint64
	for _, r := range decodeAll(t, h.events, EventReward, DecodeReward) {
		if r.Kind == "fees" && r.Account == erin {
			fees += r.Amount
		}
	}
	if paid := uint64(len(txs)); fees == 0 || fees > paid {
		t.Errorf("fee rewards to the proposer: %d, of %d paid in fees", fees, paid)
	}
	if got, err := DecodeUnbondComplete(Event{Type: EventUnbondComplete, Attrs: []Attr{{AttrAccount, carol.String()}, {AttrAmount, "12"}}}); err != nil || got != (UnbondCompleted{Account: carol, Amount: 12}) {
		t.Errorf("unbond_complete: %+v %v", got, err)
	}
	if _, err := DecodeDisputeMove(Event{Type: EventDisputeMove, Attrs: []Attr{{AttrDisputeID, did.String()}, {AttrFrom, "referee"}, {AttrMove, "1"}}}); err == nil {
		t.Error("dispute_move from no side decoded")
	}

	// The agent's own events: its URI changed, its name set, then the
	// agent given to dave (its wallet cleared).
	h.ok(h.tx("carol", &MsgSetAgentURI{AgentID: 1, AgentURI: "ipfs://carol/2"}))
	h.ok(h.tx("carol", &MsgSetMetadata{AgentID: 1, MetadataKey: "name", MetadataValue: []byte("Carol")}))
	h.ok(h.tx("carol", &MsgTransferFrom{From: carol, To: dave, AgentID: 1}))
	if got := decodeAll(t, h.events, EventURIUpdated, DecodeURIUpdated); len(got) != 1 || got[0] != (URIUpdated{AgentID: 1, AgentURI: "ipfs://carol/2", UpdatedBy: carol}) {
		t.Errorf("URIUpdated: %+v", got)
	}
	if got := decodeAll(t, h.events, EventMetadataSet, DecodeMetadataSet); len(got) != 1 || got[0] != (MetadataSet{AgentID: 1, MetadataKey: "name"}) {
		t.Errorf("MetadataSet: %+v", got)
	}
	if got := decodeAll(t, h.events, EventAgentTransfer, DecodeAgentTransfer); len(got) != 1 || got[0] != (AgentTransferred{From: carol, To: dave, AgentID: 1}) {
		t.Errorf("Transfer (agent): %+v", got)
	}
	if got := decodeAll(t, h.events, EventAgentWalletSet, DecodeAgentWalletSet); len(got) != 1 || got[0] != (AgentWalletSet{AgentID: 1}) {
		t.Errorf("AgentWalletSet: %+v", got)
	}
	if _, err := DecodeAgentTransfer(Event{Type: EventTransfer, Attrs: []Attr{{AttrFrom, carol.String()}, {AttrTo, dave.String()}, {AttrAmount, "1"}}}); err == nil {
		t.Error("a token transfer decoded as an agent's")
	}

	// A decoder refuses another event type, a missing attribute and a
	// malformed value, with an error naming what is wrong.
	good := pub[0]
	var ev Event
	for _, e := range h.events {
		if e.Type == EventReceiptPublished {
			ev = e
			break
		}
	}
	if _, err := DecodeAuditSelected(ev); err == nil || !strings.Contains(err.Error(), "is not") {
		t.Errorf("receipt_published decoded as audit_selected: %v", err)
	}
	if _, err := DecodeAuditOutcome(ev); err == nil || !strings.Contains(err.Error(), "is not") {
		t.Errorf("receipt_published decoded as an audit's outcome: %v", err)
	}
	missing := Event{Type: ev.Type, Attrs: slices.DeleteFunc(slices.Clone(ev.Attrs), func(a Attr) bool { return a.Key == AttrWorker })}
	if _, err := DecodeReceiptPublished(missing); err == nil || !strings.Contains(err.Error(), string(AttrWorker)) {
		t.Errorf("no worker attribute: %v", err)
	}
	bad := Event{Type: ev.Type, Attrs: slices.Clone(ev.Attrs)}
	for i := range bad.Attrs {
		if bad.Attrs[i].Key == AttrWindowEnd {
			bad.Attrs[i].Value = "-1"
		}
	}
	if _, err := DecodeReceiptPublished(bad); err == nil || !strings.Contains(err.Error(), string(AttrWindowEnd)) {
		t.Errorf("negative windowEnd: %v", err)
	}
	if got, err := DecodeReceiptPublished(ev); err != nil || got != good {
		t.Errorf("decoding twice: %+v %v", got, err)
	}
}

// FuzzDecodeEvent feeds arbitrary events to every decoder: an error or a
// value, never a panic.
func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"type":"audit_selected","attrs":[{"key":"receiptId","value":"00"},{"key":"cells","value":"99999999999"}]}`))
	f.Add([]byte(`{"type":"receipt_published","attrs":[]}`))
	f.Add([]byte(`{"type":"Registered","attrs":[{"key":"agentId","value":"1"},{"key":"agentURI","value":"x"},{"key":"owner","value":"zz"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var ev Event
		if json.Unmarshal(b, &ev) != nil {
			return
		}
		DecodeAuditSelected(ev)
		DecodeReceiptPublished(ev)
		DecodeReceiptFinal(ev)
		DecodeDisputeOpened(ev)
		DecodeDisputeSettled(ev)
		DecodeRegistered(ev)
		DecodeURIUpdated(ev)
		DecodeMetadataSet(ev)
		DecodeAgentWalletSet(ev)
		DecodeAgentTransfer(ev)
		DecodeValidationRequest(ev)
		DecodeTxEvent(ev)
		DecodeTransfer(ev)
		DecodeEscrowOpened(ev)
		DecodeEscrowRefunded(ev)
		DecodeEscrowSettled(ev)
		DecodeReward(ev)
		DecodeBond(ev)
		DecodeUnbondComplete(ev)
		DecodeSlash(ev)
		DecodeDisputeMove(ev)
		DecodeAuditOutcome(ev)
	})
}

// TestEventsDocumented: docs/ledger.md's event table lists exactly
// eventAttrs, in order, with each event's attributes in order.
func TestEventsDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "ledger.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "| event | attributes, in order | emitted when |\n|---|---|---|\n")
	if !ok {
		t.Fatal("docs/ledger.md has no event table")
	}
	var rows []string
	for line := range strings.Lines(table) {
		if !strings.HasPrefix(line, "|") {
			break
		}
		rows = append(rows, line)
	}
	var want []string
	for _, e := range eventAttrs {
		var ks []string
		for _, k := range e.Attrs {
			ks = append(ks, "`"+string(k)+"`")
		}
		want = append(want, "| `"+string(e.Type)+"` | "+strings.Join(ks, ", ")+" |")
	}
	if len(rows) != len(want) {
		t.Errorf("docs/ledger.md lists %d events, the ledger emits %d", len(rows), len(want))
	}
	for i := range min(len(rows), len(want)) {
		if !strings.HasPrefix(rows[i], want[i]) {
			t.Errorf("docs/ledger.md event row %d: %q, want it to start %q", i, strings.TrimSpace(rows[i]), want[i])
		}
	}
}

// TestFaultsDocumented: docs/ledger.md's table of dispute fault codes,
// the contract an implementation writes into dispute records, lists
// exactly dispute.Faults, in order, each with its kind.
func TestFaultsDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "ledger.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "| code | kind | the game ended because |\n|---|---|---|\n")
	if !ok {
		t.Fatal("docs/ledger.md has no table of fault codes")
	}
	var rows []string
	for line := range strings.Lines(table) {
		if !strings.HasPrefix(line, "|") {
			break
		}
		rows = append(rows, line)
	}
	faults := dispute.Faults()
	if len(rows) != len(faults) {
		t.Errorf("docs/ledger.md lists %d fault codes, dispute.Faults %d", len(rows), len(faults))
	}
	for i := range min(len(rows), len(faults)) {
		kind := "party"
		if faults[i].IsVoid() {
			kind = "void"
		}
		if want := "| `" + string(faults[i]) + "` | " + kind + " | "; !strings.HasPrefix(rows[i], want) {
			t.Errorf("docs/ledger.md fault row %d: %q, want it to start %q", i, strings.TrimSpace(rows[i]), want)
		}
	}
}
