package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/verdictnet/verdict/internal/ledger/node"
	"github.com/verdictnet/verdict/internal/ledger/proofhooks"
)

func init() {
	register(&command{Name: "node", Summary: "initialize and run a ledger node (CometBFT in-process)", Run: runNode})
}

// runNode implements `verdict node init --home DIR` and
// `verdict node start --home DIR`.
func runNode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("node: want a subcommand: `node init --home DIR` or `node start --home DIR`")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, "usage:\n  verdict node init --home DIR [--chain-id ID] [--port N] [--block-interval D]\n  verdict node start --home DIR [--model PATH ...]\nRun `verdict node init -h` or `verdict node start -h` for the flags.")
		return nil
	case "init":
		fs := newFlagSet("node init", stderr)
		home := fs.String("home", "", "home directory to create (config, keys, genesis, data)")
		chain := fs.String("chain-id", "verdict-dev", "chain id")
		port := fs.Int("port", 26656, "P2P port; the RPC listens on port+1 (loopback)")
		interval := fs.Duration("block-interval", 500*time.Millisecond, "target time between blocks")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *home == "" || fs.NArg() != 0 {
			return fmt.Errorf("node init: usage: verdict node init --home DIR [--chain-id ID] [--port N]")
		}
		o := node.DefaultOptions()
		o.ChainID, o.BasePort, o.BlockInterval = *chain, *port, *interval
		if err := node.Init(*home, o); err != nil {
			return fmt.Errorf("node %w", err)
		}
		fmt.Fprintf(stdout, "initialized %s (chain %s)\nfaucet key %s\nrpc tcp://127.0.0.1:%d\nstart with: verdict node start --home %s\n",
			*home, *chain, filepath.Join(*home, node.FaucetFile), *port+1, *home)
		return nil
	case "start":
		fs := newFlagSet("node start", stderr)
		home := fs.String("home", "", "home directory written by 'verdict node init'")
		level := fs.String("log-level", "info", "log level: debug, info, warn or error")
		var modelFlags nodeModels
		fs.Var(&modelFlags, "model", "model this validator holds for audits and disputes, PATH or PATH,TOKENIZER (repeatable); a validator attests to holding each (attestModel) once it is registered")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *home == "" || fs.NArg() != 0 {
			return fmt.Errorf("node start: usage: verdict node start --home DIR [--model PATH ...]")
		}
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(*level)); err != nil {
			return fmt.Errorf("node start: --log-level %q: %w", *level, err)
		}
		log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
		models := &proofhooks.Models{}
		defer models.Close()
		for _, mf := range modelFlags {
			path, tok, _ := strings.Cut(mf, ",")
			id, err := models.Add(path, tok)
			if err != nil {
				return fmt.Errorf("node start: --model %s: %w", path, err)
			}
			log.Info("model loaded", "path", path, "modelId", id.String())
		}
		n, err := node.New(*home, proofhooks.Hooks(models), log)
		if err != nil {
			return err
		}
		log.Info("node starting", "home", *home, "rpc", n.RPCAddress())
		return n.Run(ctx)
	}
	return fmt.Errorf("node: unknown subcommand %q (want init or start)", args[0])
}

// nodeModels collects repeated --model flags.
type nodeModels []string

func (m *nodeModels) String() string     { return strings.Join(*m, " ") }
func (m *nodeModels) Set(s string) error { *m = append(*m, s); return nil }
