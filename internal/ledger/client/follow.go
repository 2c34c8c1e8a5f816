package client

import (
	"context"
	"fmt"
	"strings"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	rpchttp "github.com/cometbft/cometbft/rpc/client/http"

	"github.com/verdictnet/verdict/internal/ledger"
)

// Event is a ledger event as a block holds it: read it with its typed
// decoder (ledger.DecodeAuditSelected...) by its Type.
type Event struct {
	ledger.Event
	Height int64
	// Tx is the transaction that emitted it (nil for block events).
	Tx *ledger.Tx
}

// EventOf converts an event of CometBFT's block or transaction results
// (tx: the transaction that emitted it, or nil), for readers of raw block
// results; Follower.Next returns events converted by it.
func EventOf(h int64, e abci.Event, tx *ledger.Tx) Event {
	ev := Event{Height: h, Tx: tx, Event: ledger.Event{Type: ledger.EventType(e.Type)}}
	for _, a := range e.Attributes {
		ev.Attrs = append(ev.Attrs, ledger.Attr{Key: ledger.AttrKey(a.Key), Value: a.Value})
	}
	return ev
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

// Block is one committed block as a Follower reads it.
type Block struct {
	Height int64
	// Time is the block's time (its header's, agreed by the validators).
	Time time.Time
	// Events are the transactions' events, then the block's.
	Events []Event
}

// Next waits for the next block and returns its height and events (the
// transactions' events, then the block's). Errors talking to the node are
// returned; call again to retry the same block.
func (f *Follower) Next(ctx context.Context) (int64, []Event, error) {
	b, err := f.NextBlock(ctx)
	return b.Height, b.Events, err
}

// NextBlock is Next with the block's time.
func (f *Follower) NextBlock(ctx context.Context) (Block, error) {
	for {
		// The application's last committed height, not the block store's:
		// a block is stored before it is executed, and asking for its
		// results in between makes the node log an ERROR
		// ("failed to LoadFinalizeBlockResponse"); once the application
		// committed a block its results are saved.
		info, err := f.rpc.ABCIInfo(ctx)
		if err != nil {
			return Block{}, fmt.Errorf("node info: %w", err)
		}
		h := info.Response.LastBlockHeight
		if f.next == 0 {
			f.next = h + 1
		}
		if h >= f.next {
			break
		}
		select {
		case <-time.After(f.Poll):
		case <-ctx.Done():
			return Block{}, ctx.Err()
		}
	}
	h := f.next
	b, err := f.rpc.Block(ctx, &h)
	if err != nil {
		return Block{}, fmt.Errorf("block %d: %w", h, err)
	}
	// The application committed block h (ABCIInfo above), so its results
	// are saved: CometBFT saves them before it calls Commit.
	r, err := f.rpc.BlockResults(ctx, &h)
	if err != nil {
		return Block{}, fmt.Errorf("block results %d: %w", h, err)
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
			evs = append(evs, EventOf(h, e, tx))
		}
	}
	for _, e := range r.FinalizeBlockEvents {
		evs = append(evs, EventOf(h, e, nil))
	}
	f.next++
	return Block{Height: h, Time: b.Block.Time, Events: evs}, nil
}
