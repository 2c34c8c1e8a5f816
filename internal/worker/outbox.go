package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/outbox"
	"github.com/verdictnet/verdict/internal/receipt"
)

// The outbox's driver: Chain feeds internal/outbox's Machine events (a
// submission, the clock and the ledger's height, the answers of the
// ledger, the follower's receipt_published) and carries out the actions
// it returns: store writes (each before the actions after it), queries
// and transactions through internal/ledger/client. It decides nothing.

// Submit puts a receipt in the outbox: it is on disk when Submit returns,
// and the worker publishes it (opening its escrow first) however long the
// ledger takes. Submitting the same receipt id again does nothing.
func (c *Chain) Submit(p Pending) error {
	if !outbox.ValidID(p.ReceiptID) {
		return fmt.Errorf("outbox: bad receipt id %q", p.ReceiptID)
	}
	c.mu.Lock()
	if done := c.writing[p.ReceiptID]; done != nil {
		// The same receipt, being written by another call: wait for it.
		c.mu.Unlock()
		<-done
		if !c.IsPending(p.ReceiptID) {
			return fmt.Errorf("outbox: receipt %s could not be written", p.ReceiptID)
		}
		return nil
	}
	if c.box.Has(p.ReceiptID) {
		c.mu.Unlock()
		return nil
	}
	acts := c.box.Step(outbox.Submit{Record: p})
	done := make(chan struct{})
	c.writing[p.ReceiptID] = done
	c.mu.Unlock()
	// Submissions write side by side (their syncs share the disk's
	// flushes); the Machine starts nothing for the receipt until Saved.
	var err error
	var rest []outbox.Action
	for _, a := range acts {
		if pa, ok := a.(outbox.Persist); ok {
			err = c.store.Save(pa.Record)
			continue
		}
		rest = append(rest, a)
	}
	c.mu.Lock()
	if err != nil {
		c.box.Step(outbox.Abandon{ID: p.ReceiptID})
	} else {
		c.box.Step(outbox.Saved{ID: p.ReceiptID})
	}
	delete(c.writing, p.ReceiptID)
	close(done)
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	c.carry(context.Background(), rest) // a receipt that cannot be read is given up
	return nil
}

// PendingCount is the number of receipts in the outbox.
func (c *Chain) PendingCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.box.Len()
}

// DefaultMaxPending is ChainConfig.MaxPending's default.
const DefaultMaxPending = 1024

// Backlogged reports whether the outbox holds MaxPending receipts or more:
// publishing has fallen behind serving, and new requests should wait.
func (c *Chain) Backlogged() bool { return c.PendingCount() >= c.cfg.MaxPending }

// IsPending reports whether a receipt is in the outbox.
func (c *Chain) IsPending(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.box.Has(id)
}

// publish moves the outbox forward once: a Tick with the time and the
// ledger's height, and every action it leads to until none is left.
func (c *Chain) publish(ctx context.Context) {
	h, _ := c.cfg.Client.Height(ctx) // 0 when unknown: the Machine keeps the last
	c.feed(ctx, []outbox.Event{outbox.Tick{Now: time.Now(), Height: h}})
}

// feed steps the Machine through evs and carries out what follows.
func (c *Chain) feed(ctx context.Context, evs []outbox.Event) {
	if len(evs) == 0 {
		return
	}
	var acts []outbox.Action
	c.mu.Lock()
	for _, ev := range evs {
		acts = append(acts, c.box.Step(ev)...)
	}
	c.mu.Unlock()
	c.carry(ctx, acts)
}

// carry carries out actions round by round: a round's answers are fed to
// the Machine, which returns the next round's actions.
func (c *Chain) carry(ctx context.Context, acts []outbox.Action) {
	for len(acts) > 0 {
		evs := c.round(ctx, acts)
		acts = nil
		c.mu.Lock()
		for _, ev := range evs {
			acts = append(acts, c.box.Step(ev)...)
		}
		c.mu.Unlock()
	}
}

// batchSize bounds the queries or transactions of one JSON-RPC batch;
// publishBatch the worker's own (its audit openings and dispute moves
// wait for at most one of them: CheckTx of receipts is slow under load).
const (
	batchSize    = 64
	publishBatch = 32
)

// queriers is how many ledger queries of a round run at once.
const queriers = 8

// actionID is the receipt an action is about.
func actionID(a outbox.Action) string {
	switch a := a.(type) {
	case outbox.Persist:
		return a.Record.ReceiptID
	case outbox.QueryReceipt:
		return a.ID
	case outbox.QueryEscrow:
		return a.ID
	case outbox.OpenEscrow:
		return a.Record.ReceiptID
	case outbox.Broadcast:
		return a.ID
	case outbox.Publish:
		return a.ID
	case outbox.Remove:
		return a.Record.ReceiptID
	case outbox.GiveUp:
		return a.Record.ReceiptID
	}
	return ""
}

// round carries out one round of actions and returns their answers. The
// store work goes first, each receipt's in order, receipts side by side
// (a receipt whose record could not be written does none of its later
// actions: they are answered Failed); then the ledger is asked,
// concurrently: receipt queries in JSON-RPC batches, other queries by a
// pool, new escrows in batches per paying account, publications in
// batches of the worker's account.
func (c *Chain) round(ctx context.Context, acts []outbox.Action) []outbox.Event {
	var (
		mu  sync.Mutex
		evs []outbox.Event
	)
	answer := func(ev outbox.Event) {
		mu.Lock()
		evs = append(evs, ev)
		mu.Unlock()
	}
	var order []string
	local := map[string][]outbox.Action{}
	var io []outbox.Action
	for _, a := range acts {
		switch a.(type) {
		case outbox.Persist, outbox.Remove, outbox.GiveUp:
			id := actionID(a)
			if local[id] == nil {
				order = append(order, id)
			}
			local[id] = append(local[id], a)
		default:
			io = append(io, a)
		}
	}
	stopped := make([]error, len(order))
	parallel(len(order), storeWriters, func(i int) { stopped[i] = c.storeWork(local[order[i]]) })
	failed := map[string]error{}
	for i, err := range stopped {
		if err != nil {
			failed[order[i]] = err
		}
	}
	io = slices.DeleteFunc(io, func(a outbox.Action) bool {
		if err := failed[actionID(a)]; err != nil {
			answer(outbox.Failed{ID: actionID(a), Err: err.Error()})
			return true
		}
		return false
	})
	if ctx.Err() != nil {
		for _, a := range io {
			answer(outbox.Cancelled{ID: actionID(a)})
		}
		return evs
	}
	var jobs []func()
	opens := map[*Sender][]escrowOpen{}
	var pubs []outbox.Publish
	var receipts []string
	for _, a := range io {
		switch a := a.(type) {
		case outbox.OpenEscrow:
			o, s, ev := c.escrowMsg(a.Record)
			if ev != nil {
				answer(ev)
				continue
			}
			opens[s] = append(opens[s], o)
		case outbox.Publish:
			pubs = append(pubs, a)
		case outbox.QueryReceipt:
			receipts = append(receipts, a.ID)
		case outbox.QueryEscrow, outbox.Broadcast:
			jobs = append(jobs, func() { answer(c.ask(ctx, a)) })
		}
	}
	for chunk := range chunks(receipts, batchSize) {
		jobs = append(jobs, func() { c.queryReceipts(ctx, chunk, answer) })
	}
	var wg sync.WaitGroup
	for s, batch := range opens {
		for chunk := range chunks(batch, batchSize) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.openEscrows(ctx, s, chunk, answer)
			}()
		}
	}
	if len(pubs) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// One account: its batches go out one after the other.
			for chunk := range chunks(pubs, publishBatch) {
				c.publishReceipts(ctx, chunk, answer)
			}
		}()
	}
	parallel(len(jobs), queriers, func(i int) { jobs[i]() })
	wg.Wait()
	return evs
}

// storeWriters is how many receipts' records are written at once (each
// write syncs a file: side by side they share the disk's flushes).
const storeWriters = 16

// storeWork carries out one receipt's store actions in order; the error
// is a failed write (its later actions are not carried out).
func (c *Chain) storeWork(acts []outbox.Action) error {
	for _, a := range acts {
		switch a := a.(type) {
		case outbox.Persist:
			if err := c.store.Save(a.Record); err != nil {
				c.log.Error("saving an outbox entry", "receipt", a.Record.ReceiptID, "err", err)
				return err
			}
		case outbox.Remove:
			c.published(a.Record)
		case outbox.GiveUp:
			if err := c.store.Fail(a.Record); err != nil {
				c.log.Error("moving an outbox entry to failed/", "receipt", a.Record.ReceiptID, "err", err)
			}
			c.mu.Lock()
			delete(c.reveals, a.Record.ReceiptID)
			c.mu.Unlock()
			c.failures.Add(1)
			c.log.Error("receipt not published", "receipt", a.Record.ReceiptID, "reason", a.Record.Failed)
		}
	}
	return nil
}

// parallel runs fn(0..n-1) on at most workers goroutines and waits.
func parallel(n, workers int, fn func(int)) {
	if n == 0 {
		return
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(n, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// queryReceipts asks the ledger for a batch of receipts.
func (c *Chain) queryReceipts(ctx context.Context, ids []string, answer func(outbox.Event)) {
	hs := make([]ledger.Hash, len(ids))
	for i, id := range ids {
		hs[i], _ = ledger.ParseHash(id)
	}
	found, err := c.cfg.Client.HasReceipts(ctx, hs)
	for i, id := range ids {
		switch {
		case err == nil:
			answer(outbox.ReceiptState{ID: id, Found: found[i]})
		case ctx.Err() != nil:
			answer(outbox.Cancelled{ID: id})
		default:
			answer(outbox.Failed{ID: id, Err: err.Error()})
		}
	}
}

func chunks[T any](s []T, size int) func(func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			n := min(len(s), size)
			if !yield(s[:n]) {
				return
			}
			s = s[n:]
		}
	}
}

// ask carries out an escrow query or a second broadcast and returns its answer.
func (c *Chain) ask(ctx context.Context, a outbox.Action) outbox.Event {
	cancelled := func(id string, err error) outbox.Event {
		if ctx.Err() != nil {
			return outbox.Cancelled{ID: id}
		}
		return outbox.Failed{ID: id, Err: err.Error()}
	}
	switch a := a.(type) {
	case outbox.QueryEscrow:
		var st outbox.EscrowState
		st.ID = a.ID
		if !a.Payer.IsZero() {
			acct, err := c.cfg.Client.Account(ctx, a.Payer)
			if err != nil {
				return cancelled(a.ID, err)
			}
			st.AccountNonce = acct.Nonce
		}
		esc, found, err := c.cfg.Client.Escrow(ctx, a.Escrow)
		if err != nil {
			return cancelled(a.ID, err)
		}
		st.Found, st.Escrow = found, esc
		return st
	case outbox.Broadcast:
		tx, err := ledger.DecodeTx(a.Tx)
		if err != nil {
			return outbox.Failed{ID: a.ID, Err: err.Error()}
		}
		_, err = c.cfg.Client.BroadcastSync(ctx, tx)
		return sent(a.ID, outbox.EscrowTx, err)
	}
	return nil
}

// sent is the answer to a broadcast that returned err.
func sent(id string, kind outbox.TxKind, err error) outbox.Event {
	if err == nil {
		return outbox.Sent{ID: id, Kind: kind, Outcome: outbox.Accepted}
	}
	var re *client.RejectedError
	if errors.As(err, &re) {
		return outbox.Sent{ID: id, Kind: kind, Outcome: outbox.Rejected, Code: re.Code, Log: re.Log}
	}
	return outbox.Sent{ID: id, Kind: kind, Outcome: outbox.MaybeSent, Log: err.Error()}
}

type escrowOpen struct {
	id  string
	msg ledger.Msg
}

// escrowMsg asks the Escrower for a receipt's escrow message and the
// payer's sender; ev is the answer when there is none.
func (c *Chain) escrowMsg(r outbox.Record) (escrowOpen, *Sender, outbox.Event) {
	id := r.ReceiptID
	if c.cfg.Escrow == nil {
		return escrowOpen{}, nil, outbox.Refused{ID: id, Reason: "no escrow and no way to open one"}
	}
	rc, err := receipt.Parse(r.Receipt)
	if err != nil {
		return escrowOpen{}, nil, outbox.Refused{ID: id, Reason: "unreadable receipt: " + err.Error()}
	}
	msg, s, err := c.cfg.Escrow(&r, c.addr, ledger.Hash(rc.Model), c.agent)
	if errors.Is(err, client.ErrRejected) {
		return escrowOpen{}, nil, outbox.Refused{ID: id, Reason: "opening the escrow: " + err.Error()}
	}
	if err != nil {
		return escrowOpen{}, nil, outbox.Failed{ID: id, Err: "opening the escrow: " + err.Error()}
	}
	return escrowOpen{id, msg}, s, nil
}

// openEscrows signs a batch of escrows of one paying account, records
// each signed transaction (EscrowSigned, and the Persist it returns)
// before the batch is broadcast, and answers each with Sent or Failed.
func (c *Chain) openEscrows(ctx context.Context, s *Sender, batch []escrowOpen, answer func(outbox.Event)) {
	msgs := make([]ledger.Msg, len(batch))
	for i, o := range batch {
		msgs[i] = o.msg
	}
	txs, errs := s.SendBatch(ctx, msgs, func(txs []*ledger.Tx) error {
		var acts []outbox.Action
		c.mu.Lock()
		for i, tx := range txs {
			acts = append(acts, c.box.Step(outbox.EscrowSigned{ID: batch[i].id, Tx: tx})...)
		}
		c.mu.Unlock()
		var recs []outbox.Record
		for _, a := range acts {
			if pa, ok := a.(outbox.Persist); ok {
				recs = append(recs, pa.Record)
			}
		}
		return c.store.SaveAll(recs)
	})
	for i, err := range errs {
		if txs != nil && err == nil {
			if o, ok := batch[i].msg.(*ledger.MsgOpenEscrow); ok && o != nil && !o.AuditCommit.IsZero() {
				// Its secret is revealed after publication (revealAudits).
				c.mu.Lock()
				c.reveals[batch[i].id] = s
				c.mu.Unlock()
			}
		}
		switch {
		case txs != nil && (err == nil || errors.Is(err, client.ErrMaybeSent) || errors.Is(err, client.ErrRejected)):
			answer(sent(batch[i].id, outbox.EscrowTx, err))
		case ctx.Err() != nil:
			answer(outbox.Cancelled{ID: batch[i].id})
		default:
			answer(outbox.Failed{ID: batch[i].id, Err: fmt.Sprintf("opening the escrow: %v", err)})
		}
	}
}

// publishReceipts publishes a batch of receipts from the worker's account
// and answers each with Sent or Failed.
func (c *Chain) publishReceipts(ctx context.Context, ps []outbox.Publish, answer func(outbox.Event)) {
	msgs := make([]ledger.Msg, len(ps))
	for i, p := range ps {
		msgs[i] = &ledger.MsgPublishReceipt{EscrowID: p.EscrowID, Receipt: p.Receipt, RequestSteps: p.RequestSteps}
	}
	txs, errs := c.send.SendBatch(ctx, msgs, nil)
	for i, err := range errs {
		switch {
		case txs != nil && (err == nil || errors.Is(err, client.ErrMaybeSent) || errors.Is(err, client.ErrRejected)):
			answer(sent(ps[i].ID, outbox.PublishTx, err))
		case ctx.Err() != nil:
			answer(outbox.Cancelled{ID: ps[i].ID})
		default:
			answer(outbox.Failed{ID: ps[i].ID, Err: fmt.Sprintf("publishing: %v", err)})
		}
	}
}

// published deletes the record of a receipt the ledger holds, watches it
// and queues its validation requests.
func (c *Chain) published(rec outbox.Record) {
	if err := c.store.Remove(rec.ReceiptID); err != nil {
		c.log.Warn("removing an outbox entry", "receipt", rec.ReceiptID, "err", err)
	}
	if r, err := receipt.Parse(rec.Receipt); err == nil {
		c.mu.Lock()
		c.watch[rec.ReceiptID] = watched{r: r, at: c.read.Load()}
		c.mu.Unlock()
	}
	c.nPublished.Add(1)
	c.log.Debug("receipt published", "receipt", rec.ReceiptID)
	if c.agent == 0 || len(c.cfg.Validators) == 0 {
		return
	}
	select {
	case c.validations <- rec.ReceiptID:
	default:
		c.log.Warn("validation requests queue full; not asking for this receipt's validation", "receipt", rec.ReceiptID)
	}
}
