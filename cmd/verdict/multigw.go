package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/verdictnet/verdict/internal/explorer"
	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/multigw"
)

// multiGateway is `verdict gateway --node RPC`: the gateway in front of
// the workers the ledger lists (package multigw).
type multiGateway struct {
	node, addr, accounts string
	noAuth               bool
	refresh, downFor     time.Duration
	headerTimeout        time.Duration
	bodyTimeout          time.Duration
	maxFee               uint64
	maxBody              int64
	ledger               ledgerFlags
	net                  multigw.NetPolicy
	log                  *slog.Logger
}

// runMultiGateway runs g (tests replace it to see the flags' values).
var runMultiGateway = func(ctx context.Context, g multiGateway, stdout io.Writer) error { return g.run(ctx, stdout) }

// options are the multigw.Options of g's flags, reading the ledger at l.
func (g multiGateway) options(l multigw.Ledger) multigw.Options {
	return multigw.Options{Ledger: l, NoAuth: g.noAuth, Refresh: g.refresh, DownFor: g.downFor, MaxFee: g.maxFee, MaxBodyBytes: g.maxBody,
		HeaderTimeout: g.headerTimeout, BodyTimeout: g.bodyTimeout, Net: g.net, Logger: g.log}
}

func (g multiGateway) run(ctx context.Context, stdout io.Writer) error {
	if (g.accounts == "") == !g.noAuth {
		return errors.New("gateway: with --node give --accounts FILE (callers pay the workers from their ledger accounts) or --no-auth (workers that serve for free), not both or neither")
	}
	c, err := g.ledger.dial(g.node)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	o := g.options(c)
	if g.accounts != "" {
		if o.Accounts, err = readAccounts(g.accounts); err != nil {
			return fmt.Errorf("gateway: --accounts: %w", err)
		}
	}
	if _, err := c.ChainID(ctx); err != nil {
		return fmt.Errorf("gateway: ledger %s: %w", g.node, err)
	}
	// The explorer's index and the refresh loop stop when run returns.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ex, err := explorer.Start(rctx, g.node, 1, explorer.Options{Logger: g.log.With("service", "explorer")})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	o.Explorer = ex
	srv, err := multigw.New(ctx, o)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	ln, err := net.Listen("tcp", g.addr)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	hs := gateway.HTTPServer(srv)
	ws := srv.Workers()
	fmt.Fprintf(stdout, "verdict gateway: listening on http://%s (ledger %s, %d workers)\n", ln.Addr(), g.node, len(ws))
	fmt.Fprintf(stdout, "  OpenAI API: http://%s/v1   MCP: http://%s%s   workers: http://%s/v1/workers   explorer: http://%s%s\n", ln.Addr(), ln.Addr(), multigw.MCPPath, ln.Addr(), ln.Addr(), gateway.ExplorerPath)
	if g.net.AllowPrivate {
		g.log.Warn("--allow-private-workers: any agent on the ledger can make this gateway fetch from, and forward to, loopback and private addresses")
	}
	for _, w := range ws {
		g.log.Info("worker", "agent", w.AgentID, "address", w.Address, "endpoint", w.Endpoint, "model", w.ModelName, "price", w.Price, "stake", w.Stake, "jailed", w.Jailed)
	}
	go srv.Run(rctx)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("gateway: %w", err)
	case <-ctx.Done():
	}
	g.log.Info("shutting down")
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("gateway: shutdown: %w", err)
	}
	return nil
}
