package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/explorer"
	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/modelid"
)

func init() {
	register(&command{Name: "explorer", Summary: "serve the web explorer of a ledger node (overview, models, workers, receipts, accounts)", Run: runExplorer})
}

// runExplorer implements `verdict explorer --node RPC --addr A [--model
// PATH[,PATH...]] [--from H] [--client-rate R] [--client-burst B]
// [--trusted-proxy CIDR,...]`.
func runExplorer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("explorer", stderr)
	nodeAddr := fs.String("node", "tcp://127.0.0.1:26657", "ledger node RPC address")
	addr := fs.String("addr", "127.0.0.1:8090", "listen address (port 0: any free port)")
	models := fs.String("model", "", "models to decode prompts and outputs with, comma-separated (GGUF or llama2.c; default: none, tokens are shown as ids)")
	tok := fs.String("tokenizer", "", "tokenizer file (llama2.c checkpoints)")
	from := fs.Int64("from", 1, "first block to index: receipt timelines and worker counts start there")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	clientRate := fs.Float64("client-rate", explorer.DefaultClientRate, "pages each client (an IP address, an IPv6 /64) may make the explorer draw per second, with searches and receipt downloads; beyond, 429 (pages already drawn in the block are free; -1: no bound)")
	clientBurst := fs.Int("client-burst", explorer.DefaultClientBurst, "pages a client may have drawn at once before --client-rate applies")
	proxies := fs.String("trusted-proxy", "", "reverse proxies, CIDR prefixes comma-separated (10.0.0.1/32), whose X-Forwarded-For names the client; default none: the client is the connection's address")
	if err := parseFlags(fs, reorderFlags(args)); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("explorer: unexpected argument %q (usage: verdict explorer --node RPC --addr HOST:PORT [--model PATH])", fs.Arg(0))
	}
	if *from < 1 {
		return fmt.Errorf("explorer: --from %d: heights start at 1", *from)
	}
	if math.IsNaN(*clientRate) || math.IsInf(*clientRate, 0) || *clientRate == 0 || *clientRate < 0 && *clientRate != -1 {
		return fmt.Errorf("explorer: --client-rate %v: a number of pages per second above 0, or -1 for no bound", *clientRate)
	}
	if *clientBurst < 1 {
		return fmt.Errorf("explorer: --client-burst %d: at least 1", *clientBurst)
	}
	trusted, err := parsePrefixes(*proxies)
	if err != nil {
		return fmt.Errorf("explorer: --trusted-proxy: %w", err)
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("explorer: --log-level %q: %w", *level, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	held := map[ledger.Hash]*model.Model{}
	files := 0
	for _, p := range strings.Split(*models, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		m, err := model.Load(p, *tok)
		if err != nil {
			return fmt.Errorf("explorer: %w", err)
		}
		defer m.Close()
		// Held under its id for each spec (workers run with --kv-cache
		// f16 serve it under its verdict-det/2+kv16 id).
		cs, err := modelid.ComputeSpecs(m, engine.SpecVersion, engine.SpecKV16)
		if err != nil {
			return fmt.Errorf("explorer: %s: %w", p, err)
		}
		for _, c := range cs {
			held[ledger.Hash(c.Root)] = m
		}
		files++
	}
	ex, err := explorer.Start(ctx, *nodeAddr, *from, explorer.Options{Models: held, Logger: log,
		ClientRate: *clientRate, ClientBurst: *clientBurst, TrustedProxies: trusted})
	if err != nil {
		return fmt.Errorf("explorer: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(gateway.ExplorerPath, ex)
	mux.Handle("GET /{$}", http.RedirectHandler(gateway.ExplorerPath, http.StatusFound))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("explorer: %w", err)
	}
	hs := gateway.HTTPServer(mux)
	fmt.Fprintf(stdout, "verdict explorer: http://%s%s (ledger %s, %d models held)\n", ln.Addr(), gateway.ExplorerPath, *nodeAddr, files)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("explorer: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("explorer: shutdown: %w", err)
	}
	return nil
}
