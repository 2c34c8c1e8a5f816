package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/mcpserver"
	"github.com/verdictnet/verdict/internal/multigw"
	"github.com/verdictnet/verdict/internal/scheduler"
	"github.com/verdictnet/verdict/internal/worker"
)

func init() {
	register(&command{Name: "gateway", Summary: "serve the OpenAI-compatible API and MCP over HTTP for a local model, or with --node the ledger's workers behind one API", Run: cmdGateway, HoldsModel: true})
	register(&command{Name: "mcp", Summary: "serve verifiable inference as MCP tools over stdio", Run: cmdMCP, HoldsModel: true})
}

// workerFlags are the flags that open a local worker.
type workerFlags struct {
	model, tokenizer, name, key string
	threads, concurrency, queue int
	kvBudgetMiB, prefillChunk   int
	prefixCacheMiB, speculate   int
	maxReplay                   int // --max-replay-positions
	kv                          engine.KVType
	hugeWeights                 bool
}

// kvFlag is the --kv-cache flag: an engine.KVType.
type kvFlag struct{ t *engine.KVType }

func (f kvFlag) String() string {
	if f.t == nil {
		return engine.KVF32.String()
	}
	return f.t.String()
}

func (f kvFlag) Set(s string) error {
	t, err := engine.ParseKVType(s)
	if err != nil {
		return err
	}
	*f.t = t
	return nil
}

// kvCacheUsage is the --kv-cache flag's help.
const kvCacheUsage = "key/value cache precision: f32, or f16 (half the cache memory and attention reads; the model is served under its id for the spec " + engine.SpecKV16 + ", whose receipts replay only under it)"

func (f *workerFlags) register(fs interface {
	StringVar(*string, string, string, string)
	IntVar(*int, string, int, string)
	BoolVar(*bool, string, bool, string)
	Var(flag.Value, string, string)
}) {
	fs.Var(kvFlag{&f.kv}, "kv-cache", kvCacheUsage)
	fs.StringVar(&f.model, "model", "", "model file: GGUF or llama2.c checkpoint (required)")
	fs.StringVar(&f.tokenizer, "tokenizer", "", "tokenizer file (default: from the GGUF, or beside a checkpoint)")
	fs.StringVar(&f.name, "name", "", "model name in the API and on the ledger, where a name holds one model id (default: the model file name without extension, followed by +kv16 with --kv-cache f16)")
	fs.StringVar(&f.key, "key", "", "worker key file that signs receipts (required by verdict worker; gateway and mcp: a fresh key for this run when absent)")
	fs.IntVar(&f.threads, "threads", 0, "engine threads; 0 = one per CPU (never changes results)")
	fs.IntVar(&f.concurrency, "concurrency", scheduler.DefaultMaxBatch, "generations run at once, as one continuous batch (each answer stays identical to its run alone)")
	fs.IntVar(&f.queue, "queue", scheduler.DefaultMaxQueue, "generations that may wait for room in the batch; beyond that requests get 429")
	fs.IntVar(&f.kvBudgetMiB, "kv-budget-mib", 0, "key/value cache shared by the batch, in MiB; each generation holds the pages it has filled (a full one takes room from the latest admitted, which compute theirs again later: same answers) and refuses prompt + max_tokens over it (0: --concurrency full contexts)")
	fs.IntVar(&f.prefillChunk, "prefill-chunk", scheduler.DefaultChunkTokens, "most prompt tokens prefilled per batch step, so a long prompt does not stall the others")
	fs.IntVar(&f.prefixCacheMiB, "prefix-cache-mib", 0, prefixCacheUsage)
	fs.IntVar(&f.speculate, "speculate", 0, speculateUsage)
	fs.BoolVar(&f.hugeWeights, "huge-weights", true, hugeWeightsUsage)
	fs.IntVar(&f.maxReplay, "max-replay-positions", 0, maxReplayUsage)
}

// abandonedPrefillUsage is the --abandoned-prefill flag's help.
var abandonedPrefillUsage = fmt.Sprintf("prompt positions a minute that one caller (its account; without one, its address) may leave computed and unpaid by requests it abandons before their first token; beyond, its requests get 429 rate_limit_exceeded with Retry-After (0: %d full contexts of the model; -1: no limit)", gateway.DefaultAbandonedPrefillContexts)

// maxReplayUsage is the --max-replay-positions flag's help.
const maxReplayUsage = "most positions (prompt and output tokens) of a receipt replayed here; a replay holds its whole key/value cache, so a longer receipt is not replayed (the answer says so; nothing is charged) (0: the model's context length)"

// hugeWeightsUsage is the --huge-weights flag's help.
const hugeWeightsUsage = "copy the model's weights out of the file's mapping into memory in 2 MiB pages (Linux): decode 3-12% faster; the process then holds the weights as its own memory, not shared with another process serving the same file (never changes a result)"

// speculateUsage is the --speculate flag's help.
const speculateUsage = "most draft tokens a generation feeds after each token it samples: those that followed its last tokens where they occurred before in its prompt or output (prompt lookup decoding); each one the sampler picks saves a step, with the same answer and receipt (0: off)"

// prefixCacheUsage is the --prefix-cache-mib flag's help.
const prefixCacheUsage = "most of the key/value cache budget, in MiB, that finished generations keep for prompts starting with their tokens (system prompts, a conversation's earlier turns): those positions are not computed again, with the same answer and receipt; running generations come first (0: a quarter of the budget, at most 1024; -1: off)"

// prefixCacheBytes is a --prefix-cache-mib value as worker.Config.PrefixCache.
func prefixCacheBytes(mib int) int64 {
	if mib < 0 {
		return -1
	}
	return int64(mib) << 20
}

// apply sets the batch knobs of cfg.
func (f *workerFlags) apply(cfg *worker.Config) {
	cfg.MaxConcurrent, cfg.MaxQueue, cfg.ChunkTokens = f.concurrency, f.queue, f.prefillChunk
	cfg.KVBudget = int64(f.kvBudgetMiB) << 20
	cfg.PrefixCache = prefixCacheBytes(f.prefixCacheMiB)
	cfg.Speculate = f.speculate
	cfg.KV = f.kv
	cfg.HugeWeights = f.hugeWeights
	cfg.MaxReplayPositions = f.maxReplay
}

func (f *workerFlags) open(log *slog.Logger) (*worker.Local, error) {
	if f.model == "" {
		return nil, errors.New("--model is required")
	}
	cfg := worker.Config{
		ModelPath: f.model, TokenizerPath: f.tokenizer, Name: f.name, Threads: f.threads,
		Logger: log,
	}
	f.apply(&cfg)
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
	localFlags := map[string]bool{"public-receipts": true, "metrics": true, "abandoned-prefill": true}
	fs.VisitAll(func(f *flag.Flag) { localFlags[f.Name] = true }) // those of the local model (workerFlags)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address (port 0: any free port)")
	apiKeys := fs.String("api-keys", "", "comma-separated API keys callers send as a bearer token (visible in the process list: prefer --api-keys-file or $"+apiKeysEnv+")")
	keysFile := fs.String("api-keys-file", "", "file of API keys, one a line: KEY or KEY ACCOUNT (# starts a comment)")
	noAuth := fs.Bool("no-auth", false, "serve everyone without an API key (the gateway refuses to start without keys otherwise)")
	publicReceipts := fs.Bool("public-receipts", false, "let every caller read every receipt (default: only the caller that paid for it)")
	abandoned := fs.Int("abandoned-prefill", 0, abandonedPrefillUsage)
	metricsAddr := fs.String("metrics", "", "serve /metrics (Prometheus) on this address (default: not served)")
	maxBody := fs.Int64("max-body", 1<<20, "largest request body in bytes")
	verbose := fs.Bool("v", false, "log every request")
	nodeAddr := fs.String("node", "", "ledger node RPC address: serve the workers the ledger lists (discovered from their registration files, routed by score) instead of a local --model")
	accounts := fs.String("accounts", "", "with --node: JSON file mapping API keys to the key files of the ledger accounts that pay the workers (x402 upto escrows the gateway signs per request)")
	refresh := fs.Duration("refresh", 2*time.Second, "with --node: time between discoveries of the workers")
	downFor := fs.Duration("down-for", 15*time.Second, "with --node: how long a worker that failed is skipped")
	maxFee := fs.Uint64("max-fee", 0, "with --node: refuse worker quotes above this fee (0: no limit)")
	headerTimeout := fs.Duration("header-timeout", 5*time.Minute, "with --node: how long a paid worker may take to start its answer (a non-streamed answer starts when it is complete) before it is given up: the request goes to the next worker unless its escrow is on the ledger (then 504)")
	bodyTimeout := fs.Duration("body-timeout", time.Minute, "with --node: how long a worker's non-streamed answer, or a receipt it serves, may take to arrive once its headers came (it is complete when they are sent), waiting for room among the worker's answers in flight included: past it the worker is marked down and the caller gets worker_failed (503 worker_busy when it only waited for room)")
	allowPrivate := fs.Bool("allow-private-workers", false, "with --node: fetch registration files from, and forward requests to, workers at any address, loopback and private networks included (a testnet on one machine or a LAN; default: public addresses only, since any agent chooses its agentURI and endpoint)")
	var lf ledgerFlags
	lf.register(fs, "with --node: ")
	allowNets := fs.String("allow-worker-net", "", "with --node: comma-separated CIDR prefixes of non-public networks the gateway may reach nonetheless (the private network its workers are on, e.g. 10.1.0.0/16)")
	if err := parseFlags(fs, args); err != nil {
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
	if *nodeAddr != "" {
		if wf.model != "" || *apiKeys != "" || *keysFile != "" {
			return errors.New("gateway: --node serves the ledger's workers: --model and --api-keys belong to a gateway with a local model (use --accounts)")
		}
		// The rest of a local model's flags would do nothing here: say so
		// rather than drop them.
		var local []string
		fs.Visit(func(f *flag.Flag) {
			if localFlags[f.Name] {
				local = append(local, "--"+f.Name)
			}
		})
		if len(local) > 0 {
			return fmt.Errorf("gateway: --node serves the ledger's workers: %s belong to a gateway with a local model", strings.Join(local, ", "))
		}
		nets, err := parsePrefixes(*allowNets)
		if err != nil {
			return fmt.Errorf("gateway: --allow-worker-net: %w", err)
		}
		// multigw takes zero (or less) for its default: given on the
		// command line, it is a mistake to say, not to serve with.
		for _, d := range []struct {
			name string
			v    time.Duration
		}{{"refresh", *refresh}, {"down-for", *downFor}, {"header-timeout", *headerTimeout}, {"body-timeout", *bodyTimeout}} {
			if d.v <= 0 {
				return fmt.Errorf("gateway: --%s: want a positive duration, got %s", d.name, d.v)
			}
		}
		return runMultiGateway(ctx, multiGateway{node: *nodeAddr, addr: *addr, accounts: *accounts, noAuth: *noAuth, refresh: *refresh, downFor: *downFor,
			maxFee: *maxFee, maxBody: *maxBody, headerTimeout: *headerTimeout, bodyTimeout: *bodyTimeout, net: multigw.NetPolicy{AllowPrivate: *allowPrivate, Allow: nets},
			ledger: lf, log: log}, stdout)
	}
	if *allowPrivate || *allowNets != "" {
		return errors.New("gateway: --allow-private-workers and --allow-worker-net need --node (a gateway with a local model connects to no worker)")
	}
	if *accounts != "" {
		return errors.New("gateway: --accounts needs --node (a gateway with a local model takes --api-keys-file)")
	}
	if lf.given(fs) {
		return errors.New("gateway: --max-tx-fee and --chain-id need --node (a gateway with a local model signs no ledger transaction)")
	}
	if wf.model == "" {
		return errors.New("gateway: --model is required (or --node RPC for the ledger's workers)")
	}
	keys, err := loadAPIKeys(*apiKeys, *keysFile, os.Getenv(apiKeysEnv))
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	if len(keys) == 0 && !*noAuth {
		return fmt.Errorf("gateway: no API keys: give --api-keys-file FILE or $%s, or --no-auth to serve everyone", apiKeysEnv)
	}
	if len(keys) > 0 && *noAuth {
		return errors.New("gateway: --no-auth with API keys: choose one")
	}
	w, err := wf.open(log)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	defer w.Close()
	opts := gateway.Options{Backend: w, MaxBodyBytes: *maxBody, Logger: log, NoAuth: *noAuth, PublicReceipts: *publicReceipts,
		Registry: prometheus.NewRegistry(), AbandonedPrefill: *abandoned}
	if err := w.Register(opts.Registry); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	if len(keys) > 0 {
		opts.Auth = keys
	}
	opts.MCP = func(g gateway.Gate) http.Handler {
		return mcpserver.HTTPHandler(mcpserver.New(w, mcpserver.Options{Gate: g}))
	}
	srv, err := gateway.New(opts)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	hs := gateway.HTTPServer(srv)
	m := w.Models()[0]
	fmt.Fprintf(stdout, "verdict gateway: listening on http://%s (model %s, id %s, worker %s)\n", ln.Addr(), m.Name, m.ID, w.Key().Address())
	fmt.Fprintf(stdout, "  OpenAI API: http://%s/v1   MCP: http://%s/mcp\n", ln.Addr(), ln.Addr())
	if *noAuth {
		log.Warn("--no-auth: anyone who reaches this address can generate and read every receipt")
	}
	if *apiKeys != "" {
		log.Warn("API keys given with --api-keys show in the process list; prefer --api-keys-file or $" + apiKeysEnv)
	}
	errc := make(chan error, 2)
	if *metricsAddr != "" {
		mln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("gateway: --metrics: %w", err)
		}
		ms := gateway.HTTPServer(gateway.MetricsHandler(opts.Registry))
		defer ms.Close()
		fmt.Fprintf(stdout, "  metrics: http://%s/metrics\n", mln.Addr())
		go func() { errc <- ms.Serve(mln) }()
	}
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

// parsePrefixes parses comma-separated CIDR prefixes ("" is none).
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// apiKeysEnv holds comma-separated API keys for `verdict gateway`.
const apiKeysEnv = "VERDICT_API_KEYS"

// loadAPIKeys gathers the gateway's API keys from --api-keys (flag), the
// keys file and the environment variable's value (env). A key without an
// account name gets "keyN", N counting from 1 in the order read.
func loadAPIKeys(flag, file, env string) (gateway.StaticKeys, error) {
	out := gateway.StaticKeys{}
	add := func(key, acct, where string) error {
		if strings.ContainsAny(key, " \t") {
			return fmt.Errorf("%s: an API key has no spaces", where)
		}
		if _, dup := out[key]; dup {
			return fmt.Errorf("%s: API key %q given twice", where, trunc(key, 8))
		}
		if acct == "" {
			acct = fmt.Sprintf("key%d", len(out)+1)
		}
		out[key] = acct
		return nil
	}
	for _, list := range []struct{ v, where string }{{flag, "--api-keys"}, {env, "$" + apiKeysEnv}} {
		for _, k := range strings.Split(list.v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				if err := add(k, "", list.where); err != nil {
					return nil, err
				}
			}
		}
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--api-keys-file: %w", err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			line, _, _ = strings.Cut(line, "#")
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			if len(f) > 2 {
				return nil, fmt.Errorf("%s:%d: want KEY or KEY ACCOUNT", file, i+1)
			}
			acct := ""
			if len(f) == 2 {
				acct = f[1]
			}
			if err := add(f[0], acct, fmt.Sprintf("%s:%d", file, i+1)); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
