package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/verdictnet/verdict/internal/ledger/client"
)

// ledgerFlags are what a command that signs ledger transactions through
// the node it is given (--node) holds against that node, whose fee
// estimates and chain id it would otherwise take as they come.
type ledgerFlags struct {
	maxFee  uint64
	chainID string
}

// maxTxFeeUsage and chainIDUsage are the flags' help.
const (
	maxTxFeeUsage = "largest fee of a ledger transaction this process signs, given or asked by the node's fee estimate: a node asking more is refused (nothing signed)"
	chainIDUsage  = "the ledger's chain id: refuse a node that reports another (default: whatever the node reports)"
)

func (f *ledgerFlags) register(fs *flag.FlagSet, prefix string) {
	fs.Uint64Var(&f.maxFee, "max-tx-fee", client.DefaultMaxFee, prefix+maxTxFeeUsage)
	fs.StringVar(&f.chainID, "chain-id", "", prefix+chainIDUsage)
}

// given reports whether either flag was set on fs.
func (f *ledgerFlags) given(fs *flag.FlagSet) bool {
	set := false
	fs.Visit(func(fl *flag.Flag) { set = set || fl.Name == "max-tx-fee" || fl.Name == "chain-id" })
	return set
}

// dial connects to the node at addr with the flags' options.
func (f *ledgerFlags) dial(addr string) (*client.Client, error) {
	if f.maxFee == 0 {
		return nil, errors.New("--max-tx-fee must be positive")
	}
	c, err := client.NewWithOptions(addr, client.Options{MaxFee: f.maxFee, ChainID: f.chainID})
	if err != nil {
		return nil, fmt.Errorf("--node: %w", err)
	}
	return c, nil
}
