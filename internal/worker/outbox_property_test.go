package worker

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/verdictnet/verdict/internal/ledger"
)

// The outbox's escrow protocol (record the signed transaction, then
// broadcast; on every later look settle it with decideEscrow) run against
// a simulated ledger under random schedules: blocks, worker crashes
// (in-memory state lost, the outbox kept; a crash may fall between
// recording a transaction and broadcasting it), node restarts (the
// mempool lost), and a block committed between settleEscrow's two reads.
// For every schedule, once crashes stop, every receipt is published
// exactly once and its request has exactly one escrow: charged once.

type simTx struct {
	nonce uint64
	req   int
}

type simLedger struct {
	nonce     uint64         // the payer's next committed nonce
	escrows   map[uint64]int // by nonce (the escrow id): the request
	published map[int]uint64 // by request: the escrow it was published against
	mempool   []simTx
	pubs      [][2]uint64 // publish transactions: request, escrow nonce
}

func (l *simLedger) mempoolNext() uint64 {
	n := l.nonce
	for _, tx := range l.mempool {
		if tx.nonce == n {
			n++
		}
	}
	return n
}

// broadcast is CheckTx: the next nonce of the mempool's state, once.
func (l *simLedger) broadcast(tx simTx) bool {
	if tx.nonce != l.mempoolNext() {
		return false
	}
	l.mempool = append(l.mempool, tx)
	return true
}

func (l *simLedger) block() {
	slices.SortFunc(l.mempool, func(a, b simTx) int { return int(a.nonce) - int(b.nonce) })
	for _, tx := range l.mempool {
		if tx.nonce == l.nonce {
			l.escrows[tx.nonce] = tx.req
			l.nonce++
		}
	}
	l.mempool = nil
	for _, p := range l.pubs {
		req, n := int(p[0]), p[1]
		if r, ok := l.escrows[n]; ok && r == req {
			if _, done := l.published[req]; !done {
				l.published[req] = n
			}
		}
	}
	l.pubs = nil
}

type simEntry struct {
	req      int
	escrow   *uint64 // EscrowID (its nonce)
	tx       *simTx  // EscrowTx
	attempts int
}

type simWorker struct {
	outbox map[int]*simEntry // on disk
	next   uint64            // the sender's nonce, in memory
	synced bool
}

var (
	simPayer      = ledger.Address{1}
	simWorkerAddr = ledger.Address{2}
)

func simReq(r int) ledger.Hash { return ledger.Hash{byte(r), byte(r >> 8), 9} }

// step is Chain.step's escrow part over the simulation; crashBeforeSend
// stops it between recording and broadcasting, blockBetween commits a
// block between settleEscrow's reads.
func (w *simWorker) step(l *simLedger, e *simEntry, crashBeforeSend, blockBetween bool) (crashed bool) {
	if _, ok := l.published[e.req]; ok {
		delete(w.outbox, e.req)
		return false
	}
	if e.tx != nil {
		acct := l.nonce
		if blockBetween {
			l.block()
		}
		r, found := l.escrows[e.tx.nonce]
		esc := ledger.Escrow{Requester: simPayer, Worker: simWorkerAddr, Request: simReq(r)}
		switch decideEscrow(found, esc, acct, &ledger.Tx{Signer: simPayer, Nonce: e.tx.nonce}, simWorkerAddr, simReq(e.req)) {
		case escrowOpen:
			e.tx = nil
		case escrowLost:
			e.tx, e.escrow = nil, nil
		default:
			l.broadcast(*e.tx)
			return false
		}
	}
	if e.escrow == nil {
		if !w.synced {
			w.next, w.synced = l.nonce, true
		}
		tx := simTx{w.next, e.req}
		n := tx.nonce
		e.tx, e.escrow = &tx, &n // recorded
		if crashBeforeSend {
			return true
		}
		if !l.broadcast(tx) {
			w.synced = false
			e.tx, e.escrow = nil, nil
			e.attempts++
			return false
		}
		w.next++
	}
	l.pubs = append(l.pubs, [2]uint64{uint64(e.req), *e.escrow})
	return false
}

func TestOutboxProperty(t *testing.T) {
	schedules := 3000
	if testing.Short() {
		schedules = 500
	}
	for seed := range schedules {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		l := &simLedger{escrows: map[uint64]int{}, published: map[int]uint64{}}
		w := &simWorker{outbox: map[int]*simEntry{}}
		receipts := 2 + rng.IntN(8)
		submitted := 0
		crash := func() { w.synced = false }
		for ev := 0; ev < 200; ev++ {
			switch x := rng.IntN(100); {
			case x < 15 && submitted < receipts:
				w.outbox[submitted] = &simEntry{req: submitted}
				submitted++
			case x < 55:
				if len(w.outbox) == 0 {
					continue
				}
				keys := make([]int, 0, len(w.outbox))
				for k := range w.outbox {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				e := w.outbox[keys[rng.IntN(len(keys))]]
				if w.step(l, e, rng.IntN(10) == 0, rng.IntN(5) == 0) {
					crash()
				}
			case x < 80:
				l.block()
			case x < 90:
				crash()
			default:
				l.mempool, l.pubs = nil, nil // the node restarted
			}
		}
		for ; submitted < receipts; submitted++ {
			w.outbox[submitted] = &simEntry{req: submitted}
		}
		// Quiet: no more crashes; every entry steps once per block.
		for round := 0; len(w.outbox) > 0; round++ {
			if round > 100 {
				t.Fatalf("schedule %d: %d entries never published: %+v", seed, len(w.outbox), w.outbox)
			}
			keys := make([]int, 0, len(w.outbox))
			for k := range w.outbox {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				w.step(l, w.outbox[k], false, false)
			}
			l.block()
		}
		perReq := map[int]int{}
		for _, r := range l.escrows {
			perReq[r]++
		}
		for r := range receipts {
			if _, ok := l.published[r]; !ok {
				t.Fatalf("schedule %d: receipt %d left the outbox unpublished", seed, r)
			}
			if perReq[r] != 1 {
				t.Fatalf("schedule %d: request %d has %d escrows (charged %d times)", seed, r, perReq[r], perReq[r])
			}
		}
	}
}
