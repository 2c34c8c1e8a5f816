package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/verdictnet/verdict/internal/ledger/node"
)

func init() {
	register(&command{Name: "testnet", Summary: "write (and optionally run) an N-validator network on loopback", Run: runTestnet})
}

// runTestnet implements `verdict testnet --validators N --out DIR [--start]`.
func runTestnet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("testnet", stderr)
	n := fs.Int("validators", 4, "number of validators")
	out := fs.String("out", "", "directory for the validators' homes (node0, node1, ...) and the faucet key")
	chain := fs.String("chain-id", "verdict-testnet", "chain id")
	port := fs.Int("port", 26656, "first P2P port; validator i uses port+10*i (P2P) and port+10*i+1 (RPC)")
	interval := fs.Duration("block-interval", 500*time.Millisecond, "target time between blocks")
	start := fs.Bool("start", false, "start every validator as a separate process and wait for Ctrl-C")
	var modelFlags nodeModels
	fs.Var(&modelFlags, "model", "with --start: model every validator holds (and attests to holding), PATH or PATH,TOKENIZER (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 0 {
		return fmt.Errorf("testnet: usage: verdict testnet --validators N --out DIR [--start [--model PATH ...]]")
	}
	if len(modelFlags) > 0 && !*start {
		return fmt.Errorf("testnet: --model needs --start (or give --model to each `verdict node start`)")
	}
	o := node.DefaultOptions()
	o.ChainID, o.Validators, o.BasePort, o.BlockInterval = *chain, *n, *port, *interval
	if err := node.Init(*out, o); err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	homes := node.Homes(*out, *n)
	for i, h := range homes {
		fmt.Fprintf(stdout, "validator %d: home %s rpc tcp://127.0.0.1:%d\n", i, h, *port+10*i+1)
	}
	fmt.Fprintf(stdout, "faucet key %s\n", filepath.Join(*out, node.FaucetFile))
	if !*start {
		fmt.Fprintf(stdout, "start each with: verdict node start --home HOME [--model PATH ...]\n")
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	var procs []*exec.Cmd
	for i, h := range homes {
		logf, err := os.Create(filepath.Join(h, "node.log"))
		if err != nil {
			return fmt.Errorf("testnet: %w", err)
		}
		defer logf.Close()
		nargs := []string{"node", "start", "--home", h}
		for _, m := range modelFlags {
			nargs = append(nargs, "--model", m)
		}
		c := exec.Command(self, nargs...)
		c.Stdout, c.Stderr = logf, logf
		if err := c.Start(); err != nil {
			return fmt.Errorf("testnet: start validator %d: %w", i, err)
		}
		procs = append(procs, c)
		fmt.Fprintf(stdout, "validator %d: pid %d, log %s\n", i, c.Process.Pid, logf.Name())
	}
	<-ctx.Done()
	for _, c := range procs {
		_ = c.Process.Signal(os.Interrupt)
	}
	for _, c := range procs {
		_ = c.Wait()
	}
	return nil
}
