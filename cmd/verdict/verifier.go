package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/verifier"
	"github.com/verdictnet/verdict/internal/worker"
)

func init() {
	register(&command{Name: "verifier", Summary: "follow the ledger, re-run receipts, check audits, dispute cheats", Run: runVerifier, HoldsModel: true})
}

func runVerifier(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("verifier", stderr)
	nodeAddr := fs.String("node", "tcp://127.0.0.1:26657", "ledger node RPC address")
	var lf ledgerFlags
	lf.register(fs, "")
	modelPath := fs.String("model", "", "model whose receipts are checked (required)")
	tok := fs.String("tokenizer", "", "tokenizer file (llama2.c checkpoints)")
	keyFile := fs.String("key", "", "verifier key file: its ledger account (required)")
	share := fs.Float64("replay-share", 0.1, "share of receipts re-run in full, 0..1")
	stake := fs.Uint64("stake", 0, "stake to bond (default: the chain's minimum for verifiers)")
	from := fs.Int64("from", 0, "first block height to read (0: the next one)")
	threads := fs.Int("threads", 0, "engine threads; 0 = one per CPU")
	maxReplay := fs.Int("max-replay-positions", 0, maxReplayUsage)
	var kv engine.KVType
	fs.Var(kvFlag{&kv}, "kv-cache", "key/value cache precision of the receipts checked: f32, or f16 (those of workers run with --kv-cache f16: the model's id for the spec "+engine.SpecKV16+")")
	metricsAddr := fs.String("metrics", "", "serve /metrics (Prometheus) and /healthz on this address (default: none)")
	level := fs.String("log-level", "info", "log level")
	applyConfig := configFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := applyConfig(); err != nil {
		return fmt.Errorf("%s: %w", "verifier", err)
	}
	if *modelPath == "" || *keyFile == "" || fs.NArg() > 0 {
		return errors.New("verifier: usage: verdict verifier --node RPC --model PATH --key FILE [--replay-share 0.1]")
	}
	if *share < 0 || *share > 1 {
		return fmt.Errorf("verifier: --replay-share %v is outside 0..1", *share)
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("verifier: --log-level %q: %w", *level, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	k, err := keys.Load(*keyFile)
	if err != nil {
		return fmt.Errorf("verifier: %w", err)
	}
	w, err := worker.Open(worker.Config{ModelPath: *modelPath, TokenizerPath: *tok, Threads: *threads, Key: k, Logger: log, KV: kv, MaxReplayPositions: *maxReplay})
	if err != nil {
		return fmt.Errorf("verifier: %w", err)
	}
	defer w.Close()
	c, err := lf.dial(*nodeAddr)
	if err != nil {
		return fmt.Errorf("verifier: %w", err)
	}
	v, err := verifier.New(verifier.Config{Client: c, RPC: *nodeAddr, Key: k, Worker: w, ReplayShareBps: uint32(*share*10000 + 0.5), From: *from, Stake: *stake, Logger: log})
	if err != nil {
		return fmt.Errorf("verifier: %w", err)
	}
	if err := v.Setup(ctx); err != nil {
		return fmt.Errorf("verifier: %w", err)
	}
	if *metricsAddr != "" {
		reg := prometheus.NewRegistry()
		if err := v.Register(reg); err != nil {
			return fmt.Errorf("verifier: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"status":"ok"}`+"\n") })
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			return fmt.Errorf("verifier: --metrics: %w", err)
		}
		hs := gateway.HTTPServer(mux)
		go hs.Serve(ln)
		defer hs.Close()
		fmt.Fprintf(stdout, "verdict verifier: metrics on http://%s/metrics\n", ln.Addr())
	}
	fmt.Fprintf(stdout, "verdict verifier %s: model %s, ledger %s\n", v.Address(), w.Models()[0].ID, *nodeAddr)
	err = v.Run(ctx)
	s := v.Stats()
	log.Info("verifier stopped", "replayed", s.Replayed, "mismatches", s.Mismatches, "openings_checked", s.OpeningsChecked, "disputes", s.Disputes, "won", s.DisputesWon)
	return err
}
