package node

import (
	"context"
	"testing"
	"time"

	abcitypes "github.com/cometbft/cometbft/abci/types"
)

// blockingApp holds FinalizeBlock until release is closed.
type blockingApp struct {
	abcitypes.BaseApplication
	entered, release chan struct{}
}

func (a *blockingApp) FinalizeBlock(context.Context, *abcitypes.RequestFinalizeBlock) (*abcitypes.ResponseFinalizeBlock, error) {
	close(a.entered)
	<-a.release
	return &abcitypes.ResponseFinalizeBlock{}, nil
}

// TestAttackQueryWaitsForBlock: CometBFT's local client creator puts one
// lock over the app's four connections, so every abci_query (the node's
// RPC, open to anyone) waited for the block being executed and a slow
// query held the next block back. The app takes its own locks; the
// connections are locked each on its own: a query is answered while a
// block is executed.
func TestAttackQueryWaitsForBlock(t *testing.T) {
	app := &blockingApp{entered: make(chan struct{}), release: make(chan struct{})}
	defer close(app.release)
	cc := clientCreator(app)
	consensus, err := cc.NewABCIClient()
	if err != nil {
		t.Fatal(err)
	}
	query, err := cc.NewABCIClient()
	if err != nil {
		t.Fatal(err)
	}
	go consensus.FinalizeBlock(context.Background(), &abcitypes.RequestFinalizeBlock{})
	<-app.entered
	done := make(chan error, 1)
	go func() {
		_, err := query.Query(context.Background(), &abcitypes.RequestQuery{Path: "params"})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a query waited for the block being executed")
	}
}
