package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/verdictnet/verdict/internal/ledger/client"
)

func init() {
	register(&command{Name: "query", Summary: "read ledger state from a node (accounts, models, agents, receipts, ...)", Run: runQuery})
}

// runQuery implements `verdict query [--node ADDR] [--data JSON] PATH`.
func runQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("query", stderr)
	nodeAddr := fs.String("node", "tcp://127.0.0.1:26657", "node RPC address")
	data := fs.String("data", "", "request JSON for summary and validationSummary")
	if err := parseFlags(fs, reorderFlags(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("query: usage: verdict query [--node ADDR] [--data JSON] PATH " +
			"(chain, params, totals, account/ADDR, stake/ADDR, validator/ADDR, model/ID, agent/ID, agent/ID/metadata/KEY, feedback/AGENT/CLIENT/INDEX, " +
			"lastIndex/AGENT/CLIENT, responseCount/AGENT/CLIENT/INDEX, clients/AGENT, summary, validation/HASH, agentValidations/AGENT, validatorRequests/ADDR, " +
			"validationSummary, escrow/ID, receipt/ID, receiptData/ID, audit/ID, dispute/ID)")
	}
	c, err := client.New(*nodeAddr)
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	v, err := c.Query(ctx, fs.Arg(0), []byte(*data))
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	var out bytes.Buffer
	if json.Indent(&out, v, "", "  ") != nil {
		out.Reset()
		out.Write(v)
	}
	fmt.Fprintf(stdout, "%s\n", out.Bytes())
	return nil
}
