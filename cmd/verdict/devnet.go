package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/verdictnet/verdict/internal/devnet"
	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/scheduler"
	"github.com/verdictnet/verdict/internal/worker"
)

func init() {
	register(&command{Name: "devnet", Summary: "run a whole network in one process: ledger, worker, verifier, gateway and MCP", Run: runDevnet})
}

func runDevnet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("devnet", stderr)
	data := fs.String("data", defaultDevnetDir(), "data directory (ledger, keys, receipts); an existing one is resumed")
	modelPath := fs.String("model", "", "model to serve, GGUF or llama2.c (default: the built-in verdict-tiny model)")
	tok := fs.String("tokenizer", "", "tokenizer file (llama2.c checkpoints)")
	addr := fs.String("addr", "127.0.0.1:8080", "gateway listen address (port 0: any free port)")
	interval := fs.Duration("block-interval", 300*time.Millisecond, "time between blocks")
	share := fs.Float64("replay-share", 1, "share of receipts the verifier re-runs in full, 0..1")
	price := fs.Uint64("price", 1, "price per token charged to callers, in base units")
	threads := fs.Int("threads", 0, "engine threads; 0 = one per CPU (never changes results)")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	validators := fs.Int("validators", 1, "validators of a fresh ledger, all in this process (1..16)")
	batch := fs.Int("concurrency", scheduler.DefaultMaxBatch, "generations the worker runs at once, as one continuous batch")
	queue := fs.Int("queue", 256, "generations that may wait for room in the batch; beyond that requests get 429")
	kvMiB := fs.Int("kv-budget-mib", 0, "the worker's key/value cache, in MiB; each generation holds the pages it has filled (0: --concurrency full contexts)")
	prefixMiB := fs.Int("prefix-cache-mib", 0, "the worker's prefix cache: "+prefixCacheUsage)
	speculate := fs.Int("speculate", 0, "the worker's "+speculateUsage)
	var kv engine.KVType
	fs.Var(kvFlag{&kv}, "kv-cache", kvCacheUsage)
	maxPending := fs.Int("max-pending", worker.DefaultMaxPending, "outbox bound: with this many receipts waiting to be published, paid requests get 429 with Retry-After")
	maxTxFee := fs.Uint64("max-tx-fee", client.DefaultMaxFee, maxTxFeeUsage+" (the services sign for the chain id of the devnet's genesis)")
	cheat := fs.Bool("cheat-for-tests", false, "make the worker dishonest (its attention norms one ulp off) to watch it get caught")
	applyConfig := configFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := applyConfig(); err != nil {
		return fmt.Errorf("%s: %w", "devnet", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("devnet: unexpected argument %q", fs.Arg(0))
	}
	if *maxTxFee == 0 {
		return errors.New("devnet: --max-tx-fee must be positive")
	}
	if *validators < 1 || *validators > 16 {
		return fmt.Errorf("devnet: --validators %d is outside 1..16", *validators)
	}
	if *share < 0 || *share > 1 {
		return fmt.Errorf("devnet: --replay-share %v is outside 0..1", *share)
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("devnet: --log-level %q: %w", *level, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	bps := uint32(*share*10000 + 0.5)
	if bps == 0 && *share > 0 {
		bps = 1
	}
	o := devnet.Options{Dir: *data, ModelPath: *modelPath, TokenizerPath: *tok, Addr: *addr, BlockInterval: *interval,
		ReplayShareBps: bps, PricePerToken: *price, Threads: *threads, Validators: *validators, CheatForTests: *cheat, Logger: log,
		MaxBatch: *batch, MaxQueue: *queue, KVBudget: int64(*kvMiB) << 20, PrefixCache: prefixCacheBytes(*prefixMiB), Speculate: *speculate, KV: kv, MaxPending: *maxPending, MaxTxFee: *maxTxFee}
	if *share == 0 {
		o.ReplayShareBps = 0
	}
	d, err := devnet.Start(ctx, o)
	if err != nil {
		return err
	}
	user, _ := ledger.AddressOf(d.User.Public)
	fmt.Fprintf(stdout, "verdict devnet: model %s (id %s), data %s\n", d.Model.Name, d.Model.ID, *data)
	fmt.Fprintf(stdout, "  OpenAI API:  %s/v1\n", d.GatewayURL)
	fmt.Fprintf(stdout, "  MCP:         %s\n", d.MCPURL)
	fmt.Fprintf(stdout, "  explorer:    %s\n", d.ExplorerURL)
	fmt.Fprintf(stdout, "  ledger RPC:  %s\n", d.RPC)
	fmt.Fprintf(stdout, "  API key:     %s (account %s)\n", d.APIKey, user)
	fmt.Fprintf(stdout, "  worker %s (agent %d), verifier %s\n", d.Chain.Address(), d.Chain.AgentID(), d.Verifier.Address())
	if *cheat {
		fmt.Fprintln(stdout, cheatBanner)
	}
	fmt.Fprintf(stdout, "verdict devnet ready: %s/v1 (Ctrl-C stops)\n", d.GatewayURL)
	err = d.Wait()
	fmt.Fprintln(stdout, "verdict devnet stopped")
	return err
}

func defaultDevnetDir() string {
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".verdict", "devnet")
	}
	return ".verdict-devnet"
}
