package disputegame

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/merkle"
)

// The toy computation: cell i's state is a hash of the previous state.
func cell(i int, in []byte) []byte {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(i))
	h := sha256.Sum256(append(append([]byte{}, in...), b[:]...))
	return h[:16]
}

// referee recomputes cell i from cell i-1 (or the agreed input for cell 0).
type referee struct{}

func (referee) Inputs(i int) []int {
	if i == 0 {
		return nil
	}
	return []int{i - 1}
}

func (referee) Recompute(i int, ins [][]byte) ([]byte, error) {
	in := input
	if i > 0 {
		if len(ins) != 1 {
			return nil, errors.New("want one input")
		}
		in = ins[0]
	}
	if len(in) != 16 {
		return nil, errors.New("input is not a state")
	}
	return cell(i, in), nil
}

var input = []byte("agreed input....")

const cells = 37

func trace(lieAt int) [][]byte {
	s := make([][]byte, cells)
	prev := input
	for i := range s {
		s[i] = cell(i, prev)
		if i == lieAt {
			s[i][0] ^= 1
		}
		prev = s[i]
	}
	return s
}

// In these tests a receipt is "receipt:WORKER:ROOT" and a commitment the
// challenger's root in hex.
func toyReceipt(worker ledger.Address, root merkle.Hash) []byte {
	return fmt.Appendf(nil, "receipt:%s:%s", worker, ledger.Hash(root))
}

func setup(receipt, commitment []byte) (dispute.Config, dispute.Referee, error) {
	parts := strings.Split(string(receipt), ":")
	if len(parts) != 3 {
		return dispute.Config{}, nil, errors.New("bad receipt")
	}
	a, err1 := ledger.ParseHash(parts[2])
	b, err2 := ledger.ParseHash(string(commitment))
	if err := errors.Join(err1, err2); err != nil {
		return dispute.Config{}, nil, err
	}
	return dispute.Config{Cells: cells, Roots: [2]merkle.Hash{merkle.Hash(a), merkle.Hash(b)}}, referee{}, nil
}

type receipts struct{}

func (receipts) VerifyReceipt(b []byte) (ledger.ReceiptInfo, error) {
	parts := strings.Split(string(b), ":")
	if len(parts) != 3 {
		return ledger.ReceiptInfo{}, errors.New("bad receipt")
	}
	w, err := ledger.ParseAddress(parts[1])
	return ledger.ReceiptInfo{ID: sha256.Sum256(b), Worker: w, ModelID: ledger.Hash{1}, Request: ledger.Hash{2}}, err
}

func key(name string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte("disputegame " + name))
	return ed25519.NewKeyFromSeed(s[:])
}

func addr(name string) ledger.Address { return ledger.Address(key(name).Public().(ed25519.PublicKey)) }

// chain drives a ledger with the real dispute machine.
type chain struct {
	t      *testing.T
	l      *ledger.Ledger
	h      uint64
	nonces map[string]uint64
}

func (c *chain) block(txs ...[]byte) ledger.BlockResult {
	c.t.Helper()
	c.h++
	res, err := c.l.FinalizeBlock(ledger.BlockContext{Height: c.h, Time: int64(c.h), Hash: sha256.Sum256(fmt.Append(nil, c.h))}, txs)
	if err != nil {
		c.t.Fatal(err)
	}
	return res
}

func (c *chain) send(name string, m ledger.Msg) ledger.Result {
	c.t.Helper()
	tx := &ledger.Tx{ChainID: "dg", Nonce: c.nonces[name], Fee: 1, Msg: m}
	c.nonces[name]++
	tx.Sign(key(name))
	return c.block(tx.Encode()).TxResults[0]
}

func (c *chain) ok(name string, m ledger.Msg) ledger.Result {
	c.t.Helper()
	r := c.send(name, m)
	if r.Code != 0 {
		c.t.Fatalf("height %d: %s", c.h, r.Log)
	}
	return r
}

func (c *chain) query(path string, v any) {
	c.t.Helper()
	b, err := c.l.Query(path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		c.t.Fatal(err)
	}
}

// TestLedgerDispute plays the real bisection game through ledger
// transactions: the worker lies at one cell (or the challenger does, or
// the worker falls silent) and the liar loses.
func TestLedgerDispute(t *testing.T) {
	for _, c := range []struct {
		name                 string
		workerLie, challLie  int
		workerSilent         bool
		wantStatus, wantRcpt string
		wantFaults           [2]dispute.Fault // the record's [worker, challenger]
	}{
		{"worker lies", 20, -1, false, ledger.DisputeWorkerLost, ledger.StatusSlashed, [2]dispute.Fault{dispute.FaultStateMismatch, ""}},
		{"challenger lies", -1, 3, false, ledger.DisputeChallengerLost, ledger.StatusPublished, [2]dispute.Fault{"", dispute.FaultStateMismatch}},
		{"worker silent", -1, 3, true, ledger.DisputeWorkerLost, ledger.StatusSlashed, [2]dispute.Fault{dispute.FaultTimeout, ""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := ledger.DefaultParams()
			p.AuditRateBps, p.ChallengeWindow = 0, 200
			ch, rid, did, players := openToyDispute(t, p, setup, trace(c.workerLie), trace(c.challLie))
			// Each round, read the outstanding query from the stored
			// transcript by replaying it, and answer as each party.
			game := Game{Setup: setup, Timeout: p.MoveWindow}
			for round := 0; round < 20; round++ {
				var d ledger.Dispute
				ch.query("dispute/"+did.String(), &d)
				if d.Status != ledger.DisputeOpen {
					break
				}
				_, m, err := game.replay(d.Game)
				if err != nil {
					t.Fatal(err)
				}
				q, ok := m.Query()
				if !ok {
					t.Fatal("open dispute without a query")
				}
				answered := false
				for _, who := range []string{"worker", "verifier"} {
					if who == "worker" && c.workerSilent {
						continue
					}
					a, err := players[who].Answer(q)
					if err != nil {
						t.Fatal(err)
					}
					b, _ := a.Marshal()
					r := ch.send(who, &ledger.MsgDisputeMove{DisputeID: did, Message: b})
					answered = answered || r.Code == 0
				}
				if !answered || c.workerSilent {
					for ch.h <= d.Deadline+1 {
						ch.block()
					}
				}
			}
			var d ledger.Dispute
			ch.query("dispute/"+did.String(), &d)
			var r ledger.ReceiptRecord
			ch.query("receipt/"+rid.String(), &r)
			if d.Status != c.wantStatus || r.Status != c.wantRcpt || [2]dispute.Fault{d.WorkerFault, d.ChallengerFault} != c.wantFaults || d.VoidFault != "" {
				t.Fatalf("dispute %+v, receipt %s; want %s %v, %s", d, r.Status, c.wantStatus, c.wantFaults, c.wantRcpt)
			}
			lie := max(c.workerLie, c.challLie)
			if c.workerSilent {
				lie = -1 // the game ends in its first round
			}
			checkAnswers(t, d.Game, lie)
		})
	}
}

// checkAnswers reads a finished game's transcript with Answers: the node
// answers' ranges start at every cell and narrow round by round (each
// inside the one before) down to the cell where the traces differ.
func checkAnswers(t *testing.T, state []byte, lieAt int) {
	t.Helper()
	start, answers, err := Answers(state)
	if err != nil {
		t.Fatal(err)
	}
	if start == 0 || len(answers) == 0 {
		t.Fatalf("start %d, %d answers", start, len(answers))
	}
	lo, hi, round := 0, cells, 0
	last := -1
	for _, a := range answers {
		m := a.Msg
		if m.Round < round || a.Height < start {
			t.Fatalf("answer %+v out of order (round %d, start %d)", m, round, start)
		}
		round = m.Round
		if m.Start < lo || m.End > hi {
			t.Fatalf("round %d range [%d,%d) is outside [%d,%d)", m.Round, m.Start, m.End, lo, hi)
		}
		lo, hi = m.Start, m.End
		if m.Kind == dispute.LeafValues {
			last = m.Start
		}
	}
	if lieAt < 0 {
		if last != -1 || lo != 0 || hi != cells {
			t.Fatalf("a game ended by silence narrowed to [%d,%d), leaf %d", lo, hi, last)
		}
		return
	}
	if last != lieAt || hi-lo != 1 {
		t.Fatalf("the rounds end at [%d,%d), leaf %d; the traces differ at %d", lo, hi, last, lieAt)
	}
	if _, _, err := Answers([]byte("{not json")); err == nil {
		t.Fatal("Answers accepted a malformed transcript")
	}
}

func TestStepRejects(t *testing.T) {
	g := Game{Setup: setup, Timeout: 5}
	wtree := merkle.NewTreeFromData(trace(-1))
	st, err := g.Start(toyReceipt(addr("w"), wtree.Root()), []byte(ledger.Hash(merkle.NewTreeFromData(trace(4)).Root()).String()), 10, 5)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Step(st, ledger.SideWorker, []byte("{}"), 11); err == nil {
		t.Fatal("accepted a malformed message")
	}
	_, m, _ := g.replay(st)
	q, _ := m.Query()
	a, _ := (&dispute.Responder{Party: dispute.B, Tree: wtree, Value: func(i int) ([]byte, error) { return trace(-1)[i], nil }}).Answer(q)
	b, _ := a.Marshal()
	if _, err := g.Step(st, ledger.SideWorker, b, 11); err == nil {
		t.Fatal("worker sent the challenger's message")
	}
	if _, err := g.Start([]byte("junk"), nil, 1, 5); err == nil {
		t.Fatal("started a game on a bad receipt")
	}
}

// chainReferee is a toy computation whose leaf i reads every leaf before
// it (as an attention leaf reads every key and value): leaf i is
// cell(i, c), c chaining SHA-256 over the leaves before it in two passes,
// read in parts of 5 (dispute.Folder).
type chainReferee struct{}

func (chainReferee) Inputs(i int) []int {
	ins := make([]int, i)
	for j := range ins {
		ins[j] = j
	}
	return ins
}

func chainStep(state, v []byte, pass int) []byte {
	h := sha256.New()
	h.Write(state)
	h.Write([]byte{byte(pass)})
	h.Write(v)
	return h.Sum(nil)
}

func (chainReferee) Recompute(i int, ins [][]byte) ([]byte, error) {
	var s []byte
	for pass := 0; pass < 2; pass++ {
		for _, v := range ins {
			s = chainStep(s, v, pass)
		}
	}
	return cell(i, s), nil
}

func (chainReferee) Parts(d int) (passes, size int) { return 2, 5 }

func (chainReferee) Fold(d, pass, part int, values [][]byte, state []byte) ([]byte, error) {
	for _, v := range values {
		state = chainStep(state, v, pass)
	}
	return state, nil
}

func (chainReferee) Finish(d int, state []byte) ([]byte, error) { return cell(d, state), nil }

func chainTrace(lieAt int) [][]byte {
	s := make([][]byte, cells)
	for i := range s {
		s[i], _ = chainReferee{}.Recompute(i, s[:i])
		if i == lieAt {
			s[i][0] ^= 1
		}
	}
	return s
}

func chainSetup(receipt, commitment []byte) (dispute.Config, dispute.Referee, error) {
	cfg, _, err := setup(receipt, commitment)
	return cfg, chainReferee{}, err
}

// TestLedgerDisputeInParts plays, through ledger transactions, games whose
// disputed leaf reads more inputs than one answer carries: the inputs are
// opened part by part, one transaction each, by whichever party answers
// (the other's late copy is refused); the liar loses, and the stored
// transcript keeps each part as its round and only the latest referee
// state, never the values.
func TestLedgerDisputeInParts(t *testing.T) {
	for _, c := range []struct {
		name                string
		workerLie, challLie int
		partsBy             string // who opens the parts
		wantStatus          string
		wantFaults          [2]dispute.Fault
	}{
		{"worker lies, challenger opens", 30, -1, "verifier", ledger.DisputeWorkerLost, [2]dispute.Fault{dispute.FaultStateMismatch, ""}},
		{"worker lies and opens", 33, -1, "worker", ledger.DisputeWorkerLost, [2]dispute.Fault{dispute.FaultStateMismatch, ""}},
		{"challenger lies, worker opens", -1, 36, "worker", ledger.DisputeChallengerLost, [2]dispute.Fault{"", dispute.FaultStateMismatch}},
		{"both open", 25, -1, "both", ledger.DisputeWorkerLost, [2]dispute.Fault{dispute.FaultStateMismatch, ""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := ledger.DefaultParams()
			p.AuditRateBps, p.ChallengeWindow = 0, 400
			game := Game{Setup: chainSetup, Timeout: p.MoveWindow}
			ch, _, did, players := openToyDispute(t, p, chainSetup, chainTrace(c.workerLie), chainTrace(c.challLie))
			parts, refused := 0, 0
			var d ledger.Dispute
			for round := 0; round < 60; round++ {
				ch.query("dispute/"+did.String(), &d)
				if d.Status != ledger.DisputeOpen {
					break
				}
				_, m, err := game.replay(d.Game)
				if err != nil {
					t.Fatal(err)
				}
				q, _ := m.Query()
				inParts := m.InParts()
				var txs [][]byte
				for _, who := range []string{"worker", "verifier"} {
					if inParts && c.partsBy != "both" && who != c.partsBy {
						continue
					}
					a, err := players[who].Answer(q)
					if err != nil {
						t.Fatal(err)
					}
					b, _ := a.Marshal()
					tx := &ledger.Tx{ChainID: "dg", Nonce: ch.nonces[who], Fee: 1, Msg: &ledger.MsgDisputeMove{DisputeID: did, Message: b}}
					ch.nonces[who]++
					tx.Sign(key(who))
					txs = append(txs, tx.Encode())
				}
				for _, r := range ch.block(txs...).TxResults {
					if r.Code != 0 {
						if !inParts {
							t.Fatalf("round %d: %s", round, r.Log)
						}
						refused++
					}
				}
				if inParts {
					parts++
				}
			}
			if d.Status != c.wantStatus || [2]dispute.Fault{d.WorkerFault, d.ChallengerFault} != c.wantFaults {
				t.Fatalf("dispute %s (faults %q %q), want %s %v", d.Status, d.WorkerFault, d.ChallengerFault, c.wantStatus, c.wantFaults)
			}
			lie := max(c.workerLie, c.challLie)
			if want := 2 * ((lie + 4) / 5); parts != want {
				t.Fatalf("%d parts, want %d", parts, want)
			}
			if c.partsBy == "both" && refused != parts {
				t.Fatalf("%d late copies of %d parts refused", refused, parts)
			}
			var tr transcript
			if err := json.Unmarshal(d.Game, &tr); err != nil {
				t.Fatal(err)
			}
			stored, folds := 0, 0
			for _, e := range tr.Entries {
				if e.Round > 0 {
					stored++
					if len(e.Msg) > 0 {
						t.Fatal("a part kept its values")
					}
				}
				if e.Fold != nil {
					folds++
				}
			}
			if stored != parts || folds != 1 {
				t.Fatalf("transcript: %d parts stored of %d, %d states", stored, parts, folds)
			}
		})
	}
}

// FuzzAnswers: any stored state decodes to answers or an error, never a
// panic; every answer it returns is a well-formed message from its side.
func FuzzAnswers(f *testing.F) {
	m := dispute.Message{Kind: dispute.Node, From: dispute.A, Round: 1, Start: 0, End: 4, Left: merkle.LeafHash([]byte("l")), Right: merkle.LeafHash([]byte("r"))}
	msg, _ := m.Marshal()
	good, _ := json.Marshal(transcript{Receipt: []byte("r"), Commitment: []byte("c"), Start: 3, Entries: []entry{{Height: 4}, {Height: 5, From: ledger.SideWorker, Msg: msg}}})
	for _, s := range [][]byte{good, []byte(`{}`), []byte(`{"entries":[{"height":1,"from":2,"msg":"e30="}]}`), []byte(`not json`), nil} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, state []byte) {
		_, answers, err := Answers(state)
		if err != nil {
			return
		}
		for _, a := range answers {
			if a.Msg == nil || (a.From != ledger.SideWorker && a.From != ledger.SideChallenger) {
				t.Fatalf("answer %+v", a)
			}
			if _, err := a.Msg.Marshal(); err != nil {
				t.Fatalf("answer does not re-encode: %v", err)
			}
		}
	})
}

// openToyDispute starts a ledger whose disputes play the Game of setup,
// has the worker publish a toy receipt committing to its trace wt and the
// verifier dispute it with the trace vt, and returns the chain, the
// receipt and dispute ids and each party's responder.
func openToyDispute(t *testing.T, p ledger.Params, setup Setup, wt, vt [][]byte) (*chain, ledger.Hash, ledger.Hash, map[string]*dispute.Responder) {
	t.Helper()
	l := ledger.New(ledger.NewMemStore(), ledger.Hooks{Receipts: receipts{}, Disputes: Game{Setup: setup, Timeout: p.MoveWindow}})
	g := ledger.Genesis{ChainID: "dg", Params: p}
	for _, n := range []string{"req", "worker", "verifier"} {
		g.Accounts = append(g.Accounts, ledger.GenesisAccount{Address: addr(n), Balance: 1_000_000, Bonded: 10_000})
	}
	if err := l.InitGenesis(g); err != nil {
		t.Fatal(err)
	}
	ch := &chain{t: t, l: l, nonces: map[string]uint64{}}
	ch.ok("req", &ledger.MsgRegisterModel{ModelID: ledger.Hash{1}, Name: "toy", SpecVersion: 1})
	ch.ok("req", &ledger.MsgOpenEscrow{Worker: addr("worker"), ModelID: ledger.Hash{1}, Fee: 100, Request: ledger.Hash{2}})
	wtree, vtree := merkle.NewTreeFromData(wt), merkle.NewTreeFromData(vt)
	rcpt := toyReceipt(addr("worker"), wtree.Root())
	ch.ok("worker", &ledger.MsgPublishReceipt{EscrowID: ledger.EscrowID(addr("req"), 1), Receipt: rcpt})
	rid := ledger.Hash(sha256.Sum256(rcpt))
	res := ch.ok("verifier", &ledger.MsgOpenDispute{ReceiptID: rid, Commitment: []byte(ledger.Hash(vtree.Root()).String())})
	var did ledger.Hash
	for _, e := range res.Events {
		if d, err := ledger.DecodeDisputeOpened(e); err == nil {
			did = d.DisputeID
		}
	}
	players := map[string]*dispute.Responder{
		"worker":   {Party: dispute.A, Tree: wtree, Value: func(i int) ([]byte, error) { return wt[i], nil }},
		"verifier": {Party: dispute.B, Tree: vtree, Value: func(i int) ([]byte, error) { return vt[i], nil }},
	}
	return ch, rid, did, players
}

// failingReferee is the toy referee, except that it cannot recompute a
// cell: it fails with err, as an engine or a model file may, in words
// that differ from one version to the next.
type failingReferee struct {
	referee
	err error
}

func (f failingReferee) Recompute(int, [][]byte) ([]byte, error) { return nil, f.err }

// TestRecordIgnoresRefereeWords: two chains play the same game whose
// referee fails at the disputed cell, with different error texts (a
// wrapped library error whose wording changed). The dispute record and
// the app hash are the same on both: the record keeps the code
// referee_failed, and the words go only to the dispute_settled event.
// (With the referee's error text in the record, the chains forked.)
func TestRecordIgnoresRefereeWords(t *testing.T) {
	type run struct {
		record  []byte
		appHash ledger.Hash
		event   ledger.DisputeSettled
	}
	play := func(refErr error) run {
		failing := func(receipt, commitment []byte) (dispute.Config, dispute.Referee, error) {
			cfg, _, err := setup(receipt, commitment)
			return cfg, failingReferee{err: refErr}, err
		}
		p := ledger.DefaultParams()
		p.AuditRateBps, p.ChallengeWindow = 0, 200
		ch, _, did, players := openToyDispute(t, p, failing, trace(20), trace(-1))
		game := Game{Setup: failing, Timeout: p.MoveWindow}
		var settled []ledger.DisputeSettled
		for round := 0; round < 20; round++ {
			var d ledger.Dispute
			ch.query("dispute/"+did.String(), &d)
			if d.Status != ledger.DisputeOpen {
				break
			}
			q, ok, err := game.Outstanding(d.Game)
			if err != nil || !ok {
				t.Fatalf("outstanding query: %v (ok %v)", err, ok)
			}
			for _, who := range []string{"worker", "verifier"} {
				a, err := players[who].Answer(q)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := a.Marshal()
				r := ch.send(who, &ledger.MsgDisputeMove{DisputeID: did, Message: b})
				for _, e := range r.Events {
					if s, err := ledger.DecodeDisputeSettled(e); err == nil {
						settled = append(settled, s)
					}
				}
			}
		}
		rec, ok := ch.l.Store().Get("dispute/" + did.String())
		if !ok || len(settled) != 1 {
			t.Fatalf("dispute record %v, %d dispute_settled events", ok, len(settled))
		}
		return run{record: rec, appHash: ch.l.AppHash(), event: settled[0]}
	}
	a := play(errors.New("engine: tensor blk.3.attn_q.weight: unsupported type 14"))
	b := play(fmt.Errorf("loading the model: %w", errors.New("gguf: truncated file at offset 123456")))
	if a.event.Status != ledger.DisputeVoid || a.event.VoidFault != dispute.FaultRefereeFailed || a.event.WorkerFault != "" || a.event.ChallengerFault != "" {
		t.Fatalf("settled %+v, want void with referee_failed", a.event)
	}
	if !strings.Contains(a.event.Reason, "unsupported type 14") || !strings.Contains(b.event.Reason, "truncated file") {
		t.Fatalf("the event's words lost the referee's error: %q, %q", a.event.Reason, b.event.Reason)
	}
	if string(a.record) != string(b.record) || a.appHash != b.appHash {
		t.Fatalf("the referee's words reached the state:\n%s\n%s\napp hashes %s, %s", a.record, b.record, a.appHash, b.appHash)
	}
	var d ledger.Dispute
	if err := json.Unmarshal(a.record, &d); err != nil || d.VoidFault != dispute.FaultRefereeFailed {
		t.Fatalf("record %s: %v", a.record, err)
	}
}
