package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/mcpserver"
	"github.com/verdictnet/verdict/internal/worker"
)

func init() {
	register(&command{Name: "gateway", Summary: "serve the OpenAI-compatible API and MCP over HTTP", Run: cmdGateway})
	register(&command{Name: "mcp", Summary: "serve verifiable inference as MCP tools over stdio", Run: cmdMCP})
}

// workerFlags are the flags that open a local worker.
type workerFlags struct {
	model, tokenizer, name, key string
	threads, concurrency, queue int
}

func (f *workerFlags) register(fs interface {
	StringVar(*string, string, string, string)
	IntVar(*int, string, int, string)
}) {
	fs.StringVar(&f.model, "model", "", "model file: GGUF or llama2.c checkpoint (required)")
	fs.StringVar(&f.tokenizer, "tokenizer", "", "tokenizer file (default: from the GGUF, or beside a checkpoint)")
	fs.StringVar(&f.name, "name", "", "model name in the API (default: the model file name without extension)")
	fs.StringVar(&f.key, "key", "", "worker key file that signs receipts (default: a fresh key for this run)")
	fs.IntVar(&f.threads, "threads", 0, "engine threads; 0 = one per CPU (never changes results)")
	fs.IntVar(&f.concurrency, "concurrency", 2, "generations run at once")
	fs.IntVar(&f.queue, "queue", 64, "generations that may wait; beyond that requests get 429")
}

func (f *workerFlags) open(log *slog.Logger) (*worker.Local, error) {
	if f.model == "" {
		return nil, errors.New("--model is required")
	}
	cfg := worker.Config{
		ModelPath: f.model, TokenizerPath: f.tokenizer, Name: f.name, Threads: f.threads,
		MaxConcurrent: f.concurrency, MaxQueue: f.queue, Logger: log,
	}
	if f.key != "" {
		k, err := keys.Load(f.key)
		if err != nil {
			return nil, err
		}
		cfg.Key = k
	}
	w, err := worker.Open(cfg)
	if err != nil {
		return nil, err
	}
	if f.key == "" {
		log.Warn("no --key: receipts are signed with a key that lives only as long as this process", "worker", w.Key().Address())
	}
	return w, nil
}

func cmdGateway(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var wf workerFlags
	fs := newFlagSet("gateway", stderr)
	wf.register(fs)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address (port 0: any free port)")
	apiKeys := fs.String("api-keys", "", "comma-separated API keys callers must send as a bearer token (default: no authentication)")
	maxBody := fs.Int64("max-body", 1<<20, "largest request body in bytes")
	verbose := fs.Bool("v", false, "log every request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("gateway: unexpected argument %q", fs.Arg(0))
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	w, err := wf.open(log)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	defer w.Close()
	opts := gateway.Options{Backend: w, MaxBodyBytes: *maxBody, Logger: log}
	if *apiKeys != "" {
		keys := gateway.StaticKeys{}
		for i, k := range strings.Split(*apiKeys, ",") {
			if k = strings.TrimSpace(k); k != "" {
				keys[k] = fmt.Sprintf("key%d", i)
			}
		}
		opts.Auth = keys
	}
	opts.MCP = mcpserver.HTTPHandler(mcpserver.New(w, mcpserver.Options{}))
	srv, err := gateway.New(opts)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	m := w.Models()[0]
	fmt.Fprintf(stdout, "verdict gateway: listening on http://%s (model %s, id %s, worker %s)\n", ln.Addr(), m.Name, m.ID, w.Key().Address())
	fmt.Fprintf(stdout, "  OpenAI API: http://%s/v1   MCP: http://%s/mcp   metrics: http://%s/metrics\n", ln.Addr(), ln.Addr(), ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("gateway: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("gateway: shutdown: %w", err)
	}
	return nil
}
