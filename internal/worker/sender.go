package worker

import (
	"context"
	"crypto/ed25519"

	"github.com/verdictnet/verdict/internal/ledger/client"
)

// The ledger client's sending and following live in internal/ledger/client;
// these names stay for the worker's callers.

// Sender is client.Sender.
type Sender = client.Sender

// ErrMaybeSent is client.ErrMaybeSent.
var ErrMaybeSent = client.ErrMaybeSent

// NewSender is client.NewSender.
func NewSender(c *client.Client, key ed25519.PrivateKey, fee uint64) (*Sender, error) {
	return client.NewSender(c, key, fee)
}

// QueryJSON is client.QueryJSON.
func QueryJSON(ctx context.Context, c *client.Client, path string, v any) (bool, error) {
	return client.QueryJSON(ctx, c, path, v)
}

// Follower is client.Follower.
type Follower = client.Follower

// Event is client.Event.
type Event = client.Event

// NewFollower is client.NewFollower.
func NewFollower(addr string, from int64) (*Follower, error) { return client.NewFollower(addr, from) }
