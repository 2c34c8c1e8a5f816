package outbox

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/verdictnet/verdict/internal/ledger"
)

// The outbox's property: the real Machine and the real Store, driven as
// the worker's Chain drives them (every Persist before the actions after
// it), against a simulated ledger, under random schedules of submissions,
// blocks, lost and unanswered broadcasts, node restarts (the mempool
// lost), follower events delivered late or never, blocks committed
// between a query's two reads, and worker crashes at ANY point of the
// driver (the Machine and the senders' nonces dropped, the outbox read
// back from disk). Once crashes stop, every receipt whose Submit returned
// is published exactly once, and every published receipt's request has
// exactly one escrow on the ledger: charged exactly once.

// simTx is a transaction in the simulated ledger.
type simTx struct {
	tx  *ledger.Tx
	raw string
}

type simEscrow struct {
	req      ledger.Hash
	consumed bool
	final    int64 // the height its receipt is final and it is deleted
}

type simLedger struct {
	rng       *rand.Rand
	height    int64
	nonce     map[ledger.Address]uint64
	mempool   []simTx
	escrows   map[ledger.Hash]*simEscrow // by escrow id
	byReq     map[ledger.Hash]int        // escrows opened per request
	receipts  map[string]ledger.Hash     // published: the escrow
	pubs      map[string]int             // publications per receipt
	events    []Event                    // for the follower
	requestOf map[string]ledger.Hash     // receipt id to request
	trace     func(string, ...any)
}

func newSimLedger(rng *rand.Rand) *simLedger {
	return &simLedger{trace: func(string, ...any) {}, rng: rng, height: 1, nonce: map[ledger.Address]uint64{}, escrows: map[ledger.Hash]*simEscrow{},
		byReq: map[ledger.Hash]int{}, receipts: map[string]ledger.Hash{}, pubs: map[string]int{}, requestOf: map[string]ledger.Hash{}}
}

// checkTx is the mempool's CheckTx: the signer's next nonce in the
// mempool's state, and no second publication of a receipt.
func (l *simLedger) checkTx(tx *ledger.Tx) Sent {
	raw := string(tx.Encode())
	next := l.nonce[tx.Signer]
	for _, m := range l.mempool {
		if m.raw == raw {
			return Sent{Outcome: MaybeSent, Log: "tx already exists in cache"}
		}
		if m.tx.Signer == tx.Signer && m.tx.Nonce == next {
			next++
		}
	}
	if tx.Nonce != next {
		return Sent{Outcome: Rejected, Code: ledger.Code(ledger.ErrNonce), Log: "wrong nonce"}
	}
	if p, ok := tx.Msg.(*ledger.MsgPublishReceipt); ok {
		if _, done := l.receipts[receiptID(p.Receipt)]; done {
			return Sent{Outcome: Rejected, Code: ledger.Code(ledger.ErrExists), Log: "already exists"}
		}
	}
	l.mempool = append(l.mempool, simTx{tx, raw})
	return Sent{Outcome: Accepted}
}

func receiptID(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// block commits the mempool: each signer's transactions in nonce order,
// the signers interleaved at random (a proposer may take the worker's
// first). A publication whose escrow is not open (yet) fails; a
// transaction whose nonce is past stays for a later block.
func (l *simLedger) block() {
	l.height++
	bySigner := map[ledger.Address][]simTx{}
	var signers []ledger.Address
	for _, m := range l.mempool {
		if bySigner[m.tx.Signer] == nil {
			signers = append(signers, m.tx.Signer)
		}
		bySigner[m.tx.Signer] = append(bySigner[m.tx.Signer], m)
	}
	var order []simTx
	for len(signers) > 0 {
		i := l.rng.IntN(len(signers))
		s := signers[i]
		order = append(order, bySigner[s][0])
		if bySigner[s] = bySigner[s][1:]; len(bySigner[s]) == 0 {
			signers = slices.Delete(signers, i, i+1)
		}
	}
	var keep []simTx
	for _, m := range order {
		tx := m.tx
		switch {
		case tx.Nonce > l.nonce[tx.Signer]:
			keep = append(keep, m)
			continue
		case tx.Nonce < l.nonce[tx.Signer]:
			continue
		}
		l.nonce[tx.Signer]++
		switch m := tx.Msg.(type) {
		case *ledger.MsgOpenEscrow:
			id := ledger.EscrowID(tx.Signer, tx.Nonce)
			l.trace("block %d: escrow nonce %d req %x", l.height, tx.Nonce, m.Request[:4])
			l.escrows[id] = &simEscrow{req: m.Request}
			l.byReq[m.Request]++
			l.events = append(l.events, EscrowOpened{id})
		case *ledger.MsgPublishReceipt:
			p := m
			rid := receiptID(p.Receipt)
			esc := l.escrows[p.EscrowID]
			if _, done := l.receipts[rid]; done || esc == nil || esc.consumed || esc.req != l.requestOf[rid] {
				l.trace("block %d: publish %s fails (nonce %d)", l.height, rid[:8], tx.Nonce)
				continue // fails in its block
			}
			l.trace("block %d: publish %s against escrow %x (nonce %d)", l.height, rid[:8], p.EscrowID[:4], tx.Nonce)
			esc.consumed, esc.final = true, l.height+3
			l.receipts[rid] = p.EscrowID
			l.pubs[rid]++
			l.events = append(l.events, Published{rid})
		}
	}
	// Final receipts: their escrows are paid out and deleted (the
	// receipts stay).
	for id, e := range l.escrows {
		if e.consumed && e.final <= l.height {
			delete(l.escrows, id)
		}
	}
	// CheckTx runs again on what is left: only the next nonces stay.
	l.mempool = nil
	slices.SortStableFunc(keep, func(a, b simTx) int { return int(a.tx.Nonce) - int(b.tx.Nonce) })
	for _, m := range keep {
		l.checkTx(m.tx)
	}
}

// simSender is a Sender: the next nonce in memory, read again from the
// ledger's committed state when unknown.
type simSender struct {
	key    []byte
	addr   ledger.Address
	next   uint64
	synced bool
}

func (s *simSender) sign(l *simLedger, m ledger.Msg) *ledger.Tx {
	if !s.synced {
		s.next, s.synced = l.nonce[s.addr], true
	}
	tx := &ledger.Tx{ChainID: "sim", Fee: 1, Nonce: s.next, Msg: m}
	tx.Sign(s.key)
	return tx
}

// sent updates the nonce after a broadcast's outcome.
func (s *simSender) sent(o Sent) {
	if o.Outcome == Accepted {
		s.next++
	} else {
		s.synced = false
	}
}

type world struct {
	t        *testing.T
	rng      *rand.Rand
	l        *simLedger
	store    *Store
	dir      string
	m        *Machine
	payer    *simSender
	worker   *simSender
	now      time.Time
	crashP   float64
	answered map[string]bool
	recs     map[string]Record
	crashes  int
	trace    bool
}

func (w *world) logf(format string, args ...any) {
	if w.trace {
		w.t.Logf(format, args...)
	}
}

func (w *world) crash() {
	w.logf("CRASH")
	w.crashes++
	recs, err := w.store.Load()
	if err != nil {
		w.t.Fatal(err)
	}
	w.m = New(Config{Worker: workerA})
	w.payer.synced, w.worker.synced = false, false
	w.l.events = nil // the follower's place is lost too: the queries must do
	w.carry(w.m.Step(Restore{recs}))
}

// point is a crash point: true when the worker crashed there.
func (w *world) point() bool {
	if w.rng.Float64() < w.crashP {
		w.crash()
		return true
	}
	return false
}

// broadcast is the node's answer, sometimes lost on the way (the
// transaction taken or not).
func (w *world) broadcast(tx *ledger.Tx) Sent {
	if w.rng.IntN(10) == 0 {
		if w.rng.IntN(2) == 0 {
			w.l.checkTx(tx)
		}
		return Sent{Outcome: MaybeSent, Log: "timeout"}
	}
	return w.l.checkTx(tx)
}

// carry is the driver: actions in order, answers fed back, a crash
// possible before each.
func (w *world) carry(acts []Action) {
	for len(acts) > 0 {
		a := acts[0]
		acts = acts[1:]
		w.logf("act %s %s", actionName(a), show([]Action{a}))
		if w.point() {
			return
		}
		var ev Event
		switch a := a.(type) {
		case Persist:
			if err := w.store.Save(a.Record); err != nil {
				w.t.Fatal(err)
			}
		case Remove:
			if err := w.store.Remove(a.Record.ReceiptID); err != nil {
				w.t.Fatal(err)
			}
		case GiveUp:
			w.t.Fatalf("receipt %s given up: %s", a.Record.ReceiptID, a.Record.Failed)
		case QueryReceipt:
			_, found := w.l.receipts[a.ID]
			ev = ReceiptState{ID: a.ID, Found: found}
		case QueryEscrow:
			st := EscrowState{ID: a.ID, AccountNonce: w.l.nonce[a.Payer]}
			if w.rng.IntN(5) == 0 {
				w.l.block() // between the two reads
			}
			if e := w.l.escrows[a.Escrow]; e != nil {
				st.Found = true
				st.Escrow = ledger.Escrow{EscrowID: a.Escrow, Requester: payerA, Worker: workerA, Request: e.req}
				if e.consumed {
					st.Escrow.ReceiptID = ledger.Hash{1} // used
				}
			}
			ev = st
		case OpenEscrow:
			req := w.l.requestOf[a.Record.ReceiptID]
			tx := w.payer.sign(w.l, &ledger.MsgOpenEscrow{Worker: workerA, ModelID: ledger.Hash{1}, Fee: a.Record.Fee, Request: req})
			w.logf("  signed nonce %d req %x", tx.Nonce, req[:4])
			// Recorded before it is broadcast, crash points between.
			for _, pa := range w.m.Step(EscrowSigned{a.Record.ReceiptID, tx}) {
				if w.point() {
					return
				}
				if err := w.store.Save(pa.(Persist).Record); err != nil {
					w.t.Fatal(err)
				}
			}
			if w.point() {
				return
			}
			s := w.broadcast(tx)
			w.payer.sent(s)
			s.ID, s.Kind = a.Record.ReceiptID, EscrowTx
			ev = s
		case Broadcast:
			tx, err := ledger.DecodeTx(a.Tx)
			if err != nil {
				w.t.Fatal(err)
			}
			s := w.broadcast(tx)
			s.ID, s.Kind = a.ID, EscrowTx
			ev = s
		case Publish:
			tx := w.worker.sign(w.l, &ledger.MsgPublishReceipt{EscrowID: a.EscrowID, Receipt: a.Receipt})
			s := w.broadcast(tx)
			w.worker.sent(s)
			s.ID, s.Kind = a.ID, PublishTx
			ev = s
		}
		if ev != nil {
			if st, ok := ev.(EscrowState); ok {
				w.logf("  ev escrow %s nonce %d found %v req %x", st.ID[:8], st.AccountNonce, st.Found, st.Escrow.Request[:4])
			} else {
				w.logf("  ev %T %+v", ev, ev)
			}
			acts = append(acts, w.m.Step(ev)...)
		}
	}
}

func actionName(a Action) string {
	switch a := a.(type) {
	case Persist:
		return a.Record.ReceiptID[:8]
	case QueryReceipt:
		return a.ID[:8]
	case QueryEscrow:
		return a.ID[:8]
	case OpenEscrow:
		return a.Record.ReceiptID[:8]
	case Broadcast:
		return a.ID[:8]
	case Publish:
		return a.ID[:8]
	case Remove:
		return a.Record.ReceiptID[:8]
	}
	return ""
}

func (w *world) submit(r Record) {
	w.recs[r.ReceiptID] = r
	w.l.requestOf[r.ReceiptID] = requestOf(w.t, r)
	if w.point() {
		return // before the write: the client got an error
	}
	acts := w.m.Step(Submit{r})
	if len(acts) != 1 {
		w.t.Fatalf("submit: %s", show(acts))
	}
	if err := w.store.Save(acts[0].(Persist).Record); err != nil {
		w.t.Fatal(err)
	}
	if w.point() {
		return // written, the client got an error: published all the same
	}
	w.m.Step(Saved{r.ReceiptID})
	w.answered[r.ReceiptID] = true
}

func (w *world) tick(d time.Duration) {
	w.now = w.now.Add(d)
	w.carry(w.m.Step(Tick{Now: w.now, Height: w.l.height}))
}

// follow delivers the follower's events, some of them.
func (w *world) follow(all bool) {
	evs := w.l.events
	w.l.events = nil
	for _, ev := range evs {
		if all || w.rng.IntN(4) != 0 {
			w.logf("follow %T %+v", ev, ev)
			w.carry(w.m.Step(ev))
		}
	}
}

func TestOutboxProperty(t *testing.T) {
	// Each schedule syncs its writes to disk (about 0.1 s);
	// OUTBOX_SCHEDULES runs more.
	schedules := 60
	if testing.Short() {
		schedules = 20
	}
	if n, err := strconv.Atoi(os.Getenv("OUTBOX_SCHEDULES")); err == nil {
		schedules = n
	}
	// Receipts are signed once and shared by the schedules.
	var pool []Record
	for i := range 8 {
		pool = append(pool, testRecord(t, 100+i))
	}
	var total, crashes int
	for seed := range schedules {
		rng := rand.New(rand.NewPCG(uint64(seed), 13))
		dir := t.TempDir()
		store, err := OpenStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		w := &world{t: t, rng: rng, l: newSimLedger(rng), store: store, dir: dir, m: New(Config{Worker: workerA}),
			payer: &simSender{key: payerKey, addr: payerA}, worker: &simSender{key: workerKey, addr: workerA},
			now: t0, crashP: 0.03, answered: map[string]bool{}, recs: map[string]Record{}, trace: os.Getenv("OUTBOX_TRACE") == fmt.Sprint(seed)}
		if w.trace {
			w.l.trace = t.Logf
		}
		n := 2 + rng.IntN(len(pool)-1)
		next := 0
		for range 150 {
			switch x := rng.IntN(100); {
			case x < 15 && next < n:
				w.submit(pool[next])
				next++
			case x < 45:
				w.tick(time.Duration(100+rng.IntN(900)) * time.Millisecond)
			case x < 70:
				w.l.block()
			case x < 85:
				w.follow(false)
			case x < 90:
				w.crash()
			case x < 95:
				w.l.mempool = nil // the node restarted
			default:
				w.now = w.now.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
			}
		}
		for ; next < n; next++ {
			w.submit(pool[next])
		}
		// Quiet: no more crashes; a block and the follower's events every
		// second.
		w.crashP = 0
		for round := 0; w.m.Len() > 0; round++ {
			if round > 300 {
				t.Fatalf("schedule %d: %d receipts never published", seed, w.m.Len())
			}
			w.tick(time.Second)
			w.l.block()
			w.follow(true)
		}
		left, err := store.Load()
		if err != nil || len(left) != 0 {
			t.Fatalf("schedule %d: the outbox on disk holds %d records (%v)", seed, len(left), err)
		}
		if failed, _ := os.ReadDir(filepath.Join(dir, "failed")); len(failed) != 0 {
			t.Fatalf("schedule %d: %d receipts given up", seed, len(failed))
		}
		for id := range w.answered {
			if w.l.pubs[id] != 1 {
				t.Fatalf("schedule %d: answered receipt %s published %d times", seed, id, w.l.pubs[id])
			}
		}
		for id, r := range w.recs {
			req := requestOf(t, r)
			switch p := w.l.pubs[id]; {
			case p > 1:
				t.Fatalf("schedule %d: receipt %s published %d times", seed, id, p)
			case p == 1 && w.l.byReq[req] != 1:
				t.Fatalf("schedule %d: receipt %s: %d escrows for its request (charged %d times)", seed, id, w.l.byReq[req], w.l.byReq[req])
			case p == 0 && w.l.byReq[req] != 0:
				t.Fatalf("schedule %d: receipt %s unpublished with %d escrows", seed, id, w.l.byReq[req])
			}
		}
		total += len(w.answered)
		crashes += w.crashes
	}
	t.Logf("%d schedules, %d answered receipts, %d crashes", schedules, total, crashes)
}
