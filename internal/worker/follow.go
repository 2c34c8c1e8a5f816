package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	rpchttp "github.com/cometbft/cometbft/rpc/client/http"

	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/disputegame"
)

// Event is a ledger event with its attributes by key.
type Event struct {
	Height int64
	Type   string
	Attrs  map[string]string
	// Tx is the transaction that emitted it (nil for block events).
	Tx *ledger.Tx
}

// Follower reads the ledger block by block: the events of every
// committed block, in order, each block once.
type Follower struct {
	rpc  *rpchttp.HTTP
	next int64
	// Poll is the wait between looks for a new block (default 200 ms).
	Poll time.Duration
}

// NewFollower follows the node at addr from height from (0: the next
// block after the current one).
func NewFollower(addr string, from int64) (*Follower, error) {
	if !strings.Contains(addr, "://") {
		addr = "tcp://" + addr
	}
	c, err := rpchttp.New(addr, "/websocket")
	if err != nil {
		return nil, fmt.Errorf("ledger follower %s: %w", addr, err)
	}
	return &Follower{rpc: c, next: from, Poll: 200 * time.Millisecond}, nil
}

// Next waits for the next block and returns its height and events (the
// transactions' events, then the block's). Errors talking to the node are
// returned; call again to retry the same block.
func (f *Follower) Next(ctx context.Context) (int64, []Event, error) {
	for {
		st, err := f.rpc.Status(ctx)
		if err != nil {
			return 0, nil, fmt.Errorf("node status: %w", err)
		}
		h := st.SyncInfo.LatestBlockHeight
		if f.next == 0 {
			f.next = h + 1
		}
		if h >= f.next {
			break
		}
		select {
		case <-time.After(f.Poll):
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
	}
	h := f.next
	b, err := f.rpc.Block(ctx, &h)
	if err != nil {
		return 0, nil, fmt.Errorf("block %d: %w", h, err)
	}
	r, err := f.rpc.BlockResults(ctx, &h)
	for i := 0; err != nil && strings.Contains(err.Error(), "could not find results") && i < 50; i++ {
		// The node reports a height before it has saved the block's
		// results: not an error, just early.
		select {
		case <-time.After(f.Poll / 4):
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
		r, err = f.rpc.BlockResults(ctx, &h)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("block results %d: %w", h, err)
	}
	var evs []Event
	for i, tr := range r.TxsResults {
		var tx *ledger.Tx
		if i < len(b.Block.Txs) && tr.Code == 0 {
			tx, _ = ledger.DecodeTx(b.Block.Txs[i])
		}
		if tr.Code != 0 {
			continue
		}
		for _, e := range tr.Events {
			ev := Event{Height: h, Type: e.Type, Attrs: map[string]string{}, Tx: tx}
			for _, a := range e.Attributes {
				ev.Attrs[a.Key] = a.Value
			}
			evs = append(evs, ev)
		}
	}
	for _, e := range r.FinalizeBlockEvents {
		ev := Event{Height: h, Type: e.Type, Attrs: map[string]string{}}
		for _, a := range e.Attributes {
			ev.Attrs[a.Key] = a.Value
		}
		evs = append(evs, ev)
	}
	f.next++
	return h, evs, nil
}

// Player plays one side of a ledger dispute from its trace.
type Player struct {
	Side      ledger.Side
	Setup     disputegame.Setup
	Timeout   uint64 // the chain's moveWindow, for transcripts that do not record it
	Responder *dispute.Responder
	answered  map[string]time.Time
}

// transcript mirrors the dispute game's stored state
// (internal/ledger/disputegame).
type transcript struct {
	Receipt    []byte `json:"receipt"`
	Commitment []byte `json:"commitment"`
	Start      uint64 `json:"start"`
	Timeout    uint64 `json:"timeout,omitempty"`
	Entries    []struct {
		Height uint64      `json:"height"`
		From   ledger.Side `json:"from,omitempty"`
		Msg    []byte      `json:"msg,omitempty"`
	} `json:"entries"`
}

// Move returns the player's answer to the dispute's outstanding query, or
// ok false when there is none or it was answered already.
func (p *Player) Move(d *ledger.Dispute) (msg []byte, ok bool, err error) {
	if d.Status != ledger.DisputeOpen {
		return nil, false, nil
	}
	var t transcript
	if err := json.Unmarshal(d.Game, &t); err != nil {
		return nil, false, fmt.Errorf("dispute %s: transcript: %w", d.DisputeID, err)
	}
	cfg, ref, err := p.Setup(t.Receipt, t.Commitment)
	if err != nil {
		return nil, false, fmt.Errorf("dispute %s: %w", d.DisputeID, err)
	}
	cfg.Timeout = p.Timeout
	if t.Timeout != 0 {
		cfg.Timeout = t.Timeout
	}
	m, _, err := dispute.New(cfg, ref, t.Start)
	if err != nil {
		return nil, false, fmt.Errorf("dispute %s: %w", d.DisputeID, err)
	}
	for i, e := range t.Entries {
		m.Tick(e.Height)
		if len(e.Msg) == 0 {
			continue
		}
		msg, err := dispute.ParseMessage(e.Msg)
		if err != nil {
			return nil, false, fmt.Errorf("dispute %s entry %d: %w", d.DisputeID, i, err)
		}
		if _, err := m.Step(*msg); err != nil && !errors.Is(err, dispute.ErrIgnored) {
			return nil, false, fmt.Errorf("dispute %s entry %d: %w", d.DisputeID, i, err)
		}
	}
	q, ok := m.Query()
	if !ok {
		return nil, false, nil
	}
	qb, _ := q.Marshal()
	key := d.DisputeID.String() + string(qb)
	if at, ok := p.answered[key]; ok && time.Since(at) < 3*time.Second {
		return nil, false, nil
	}
	a, err := p.Responder.Answer(q)
	if err != nil {
		return nil, false, fmt.Errorf("dispute %s: answering: %w", d.DisputeID, err)
	}
	b, err := a.Marshal()
	if err != nil {
		return nil, false, err
	}
	if p.answered == nil {
		p.answered = map[string]time.Time{}
	}
	p.answered[key] = time.Now()
	return b, true, nil
}
