package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/verdictnet/verdict/internal/mcpserver"
)

// mcpStdin is where `verdict mcp` reads requests (tests replace it).
var mcpStdin io.ReadCloser = os.Stdin

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// cmdMCP serves the MCP tools over stdin and stdout; logs go to stderr.
func cmdMCP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var wf workerFlags
	fs := newFlagSet("mcp", stderr)
	wf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("mcp: unexpected argument %q", fs.Arg(0))
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	w, err := wf.open(log)
	if err != nil {
		return fmt.Errorf("mcp: %w", err)
	}
	defer w.Close()
	s := mcpserver.New(w, mcpserver.Options{})
	t := &mcp.IOTransport{Reader: mcpStdin, Writer: nopWriteCloser{stdout}}
	if err := s.Run(ctx, t); err != nil && ctx.Err() == nil {
		return fmt.Errorf("mcp: %w", err)
	}
	return nil
}
