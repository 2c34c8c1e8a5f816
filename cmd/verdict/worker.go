package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verdictnet/verdict/internal/explorer"
	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/mcpserver"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/multigw"
	"github.com/verdictnet/verdict/internal/worker"
)

func init() {
	register(&command{Name: "worker", Summary: "serve inference on the ledger: register, bond, publish receipts, answer audits and disputes", Run: runWorker, HoldsModel: true})
}

// addrList collects ledger addresses from repeated or comma-separated flags.
type addrList []ledger.Address

func (l *addrList) String() string { return fmt.Sprint(len(*l)) }
func (l *addrList) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		a, err := ledger.ParseAddress(strings.TrimSpace(p))
		if err != nil {
			return err
		}
		*l = append(*l, a)
	}
	return nil
}

// readAccounts reads an accounts file: a JSON object from API key to the
// key file of the ledger account it pays from (relative paths are taken
// from the file's directory).
func readAccounts(path string) (map[string]*keys.Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: want a JSON object from API key to key file: %w", path, err)
	}
	out := map[string]*keys.Key{}
	for k, f := range m {
		if !filepath.IsAbs(f) {
			f = filepath.Join(filepath.Dir(path), f)
		}
		key, err := keys.Load(f)
		if err != nil {
			return nil, fmt.Errorf("%s: API key %q: %w", path, trunc(k, 8), err)
		}
		out[k] = key
	}
	return out, nil
}

// cheatBanner is printed by a worker (or devnet) started with
// --cheat-for-tests.
const cheatBanner = "  CHEATING WORKER (--cheat-for-tests): it computes with attention norms one ulp off and signs under the real model id; expect disputes, a slash, jail and refunds"

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// selfPay is the meter of a worker without caller accounts: every receipt
// is escrowed by the worker itself (fee 0, paid to itself), so it still
// reaches the ledger.
type selfPay struct{ chain *worker.Chain }

func (s selfPay) Reserve(ctx context.Context, account, model string, prompt, maxCompletion int) (gateway.Reservation, error) {
	return s, nil
}
func (selfPay) Release() {}
func (s selfPay) Charge(ctx context.Context, res *worker.Result) error {
	return s.chain.Submit(worker.Pending{ReceiptID: res.ReceiptID, Receipt: res.Receipt})
}

// ReserveReplay implements gateway.ReplayMeter: replays are free, as
// generations are, on a worker without caller accounts.
func (s selfPay) ReserveReplay(ctx context.Context, account string, tokens int) (gateway.ReplayReservation, error) {
	return s, nil
}
func (selfPay) Pay(context.Context) error { return nil }

func runWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var wf workerFlags
	fs := newFlagSet("worker", stderr)
	wf.register(fs)
	home := fs.String("home", "", "worker directory: receipts, outbox, agent id (required)")
	nodeAddr := fs.String("node", "tcp://127.0.0.1:26657", "ledger node RPC address")
	var lf ledgerFlags
	lf.register(fs, "")
	addr := fs.String("addr", "127.0.0.1:8081", "API listen address (OpenAI-compatible, MCP at /mcp)")
	accounts := fs.String("accounts", "", "JSON file mapping API keys to the key files of the ledger accounts that pay; this or --no-auth is required (--no-auth: anyone calls, free of charge, and the worker escrows its receipts itself)")
	noAuth := fs.Bool("no-auth", false, "without --accounts: serve everyone, free of charge (the worker escrows its receipts itself)")
	publicReceipts := fs.Bool("public-receipts", false, "let every caller read every receipt (default: only the account that paid for it)")
	abandoned := fs.Int("abandoned-prefill", 0, abandonedPrefillUsage)
	metricsAddr := fs.String("metrics", "", "serve /metrics (Prometheus) on this address (default: not served)")
	cheat := fs.Bool("cheat-for-tests", false, "make this worker dishonest (its attention norms one ulp off, receipts signed under the real model id) to watch it get caught, slashed and jailed on a test network")
	price := fs.Uint64("price", 1, "price per token charged to callers")
	stake := fs.Uint64("stake", 0, "stake to bond (default: the chain's minimum)")
	maxPending := fs.Int("max-pending", worker.DefaultMaxPending, "outbox bound: with this many receipts waiting to be published, paid requests get 429 with Retry-After")
	var validators addrList
	fs.Var(&validators, "validator", "verifier address asked to validate every receipt (ERC-8004; repeatable)")
	publicURL := fs.String("public-url", "", "URL at which callers reach this API, registered on the ledger as the agent's registration file (default: http:// and --addr, 127.0.0.1 for an unspecified host)")
	agentName := fs.String("agent-name", "", "name in the agent's ERC-8004 registration file (default: verdict worker and the model's name)")
	agentImage := fs.String("agent-image", "", "image URL in the agent's registration file")
	x402 := fs.Bool("x402", false, "with --accounts: also take x402 payments (HTTP 402) from callers without an API key, each paying with an escrow signed by its own ledger key")
	level := fs.String("log-level", "info", "log level")
	withExplorer := fs.Bool("explorer", true, "serve the web explorer at /explorer/ on the API's address (it indexes the ledger from its first block)")
	applyConfig := configFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := applyConfig(); err != nil {
		return fmt.Errorf("%s: %w", "worker", err)
	}
	if *home == "" || wf.key == "" || fs.NArg() > 0 {
		return errors.New("worker: usage: verdict worker --home DIR --node RPC --model PATH --key FILE [--addr HOST:PORT] (--accounts FILE | --no-auth) [--validator ADDR]")
	}
	if *x402 && *accounts == "" {
		return errors.New("worker: --x402 needs --accounts (API keys still guard MCP and the other routes)")
	}
	if (*accounts == "") == !*noAuth {
		return errors.New("worker: give --accounts FILE (callers pay with API keys) or --no-auth (anyone calls, free of charge), not both or neither")
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("worker: --log-level %q: %w", *level, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	store, err := worker.NewFileStore(filepath.Join(*home, "receipts"))
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	k, err := keys.Load(wf.key)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	wcfg := worker.Config{ModelPath: wf.model, TokenizerPath: wf.tokenizer, Name: wf.name, Threads: wf.threads,
		Key: k, Store: store, Logger: log, CheatForTests: *cheat}
	wf.apply(&wcfg)
	w, err := worker.Open(wcfg)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	defer w.Close()
	c, err := lf.dial(*nodeAddr)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	// Listen first: the registration file names the address (a port 0
	// becomes the port given).
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	defer ln.Close()
	base, err := publicBase(*publicURL, ln.Addr().String())
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if u, err := url.Parse(base); err == nil {
		if ip, err := netip.ParseAddr(u.Hostname()); err == nil && multigw.ClassifyAddr(ip) != multigw.AddrPublic {
			log.Warn("the registered URL is at a "+multigw.ClassifyAddr(ip).String()+" address: `verdict gateway --node` reaches this worker only when run with --allow-private-workers or --allow-worker-net (set --public-url to where gateways reach it)", "url", base)
		}
	}
	cc := worker.ChainConfig{Client: c, RPC: *nodeAddr, Dir: *home, Stake: *stake, Validators: validators, Logger: log,
		MaxPending: *maxPending, AgentURI: gateway.RegistrationURI(base)}
	opts := gateway.Options{Backend: w, Logger: log, NoAuth: *noAuth, PublicReceipts: *publicReceipts, AbandonedPrefill: *abandoned}
	var meter *gateway.LedgerMeter
	if *accounts != "" {
		ak, err := readAccounts(*accounts)
		if err != nil {
			return fmt.Errorf("worker: --accounts: %w", err)
		}
		la, err := gateway.NewLedgerAccounts(c, ak)
		if err != nil {
			return fmt.Errorf("worker: %w", err)
		}
		meter = &gateway.LedgerMeter{Accounts: la, PricePerToken: *price}
		opts.Auth = la
		cc.Escrow = worker.EscrowCharges(meter.Escrow)
	}
	var chain *worker.Chain
	if meter == nil {
		cc.Escrow = func(p *worker.Pending, a ledger.Address, m ledger.Hash, agent uint64) (ledger.Msg, *worker.Sender, error) {
			return chain.SelfEscrow(p, a, m, agent)
		}
	}
	if chain, err = worker.NewChain(w, cc); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if meter != nil {
		meter.Submit = chain.SubmitCharge
		meter.Pending = chain.IsPending
		meter.Backlogged = chain.Backlogged
		meter.PayReplay = meter.Accounts.Payer(chain.Address())
		opts.Meter = meter
	} else {
		opts.Meter = selfPay{chain}
	}
	if err := chain.Setup(ctx); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if *x402 {
		params, err := c.Params(ctx)
		if err != nil {
			return fmt.Errorf("worker: the ledger's parameters: %w", err)
		}
		// A paid generation is cut short before its escrow expires.
		opts.X402 = &gateway.X402{Ledger: c, PayTo: chain.Address(), PricePerToken: *price, Submit: chain.SubmitCharge, EscrowTimeout: params.EscrowTimeout, Backlogged: chain.Backlogged}
	}
	if opts.Registration, err = workerRegistration(ctx, c, k, chain.AgentID(), base, *agentName, *agentImage, *x402, *price, w.Models()[0]); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	opts.Registry = prometheus.NewRegistry()
	if err := errors.Join(chain.Register(opts.Registry), w.Register(opts.Registry)); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	opts.Status = gateway.LedgerStatus(c, chain.IsPending)
	if opts.Owners, err = gateway.NewFileOwners(filepath.Join(*home, "owners")); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	opts.MCP = func(g gateway.Gate) http.Handler {
		return mcpserver.HTTPHandler(mcpserver.New(w, mcpserver.Options{Gate: g}))
	}
	if *withExplorer {
		ex, err := explorer.Start(ctx, *nodeAddr, 1, explorer.Options{Logger: log.With("service", "explorer"),
			Models: map[ledger.Hash]*model.Model{ledger.Hash(w.Models()[0].ID): w.Model()}})
		if err != nil {
			return fmt.Errorf("worker: %w", err)
		}
		opts.Explorer = ex
	}
	srv, err := gateway.New(opts)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	hs := gateway.HTTPServer(srv)
	metrics := ""
	var mln net.Listener
	if *metricsAddr != "" {
		if mln, err = net.Listen("tcp", *metricsAddr); err != nil {
			ln.Close()
			return fmt.Errorf("worker: --metrics: %w", err)
		}
		metrics = fmt.Sprintf(", metrics http://%s/metrics", mln.Addr())
	}
	fmt.Fprintf(stdout, "verdict worker %s (agent %d): serving %s on http://%s/v1, ledger %s%s\n", chain.Address(), chain.AgentID(), w.Models()[0].Name, ln.Addr(), *nodeAddr, metrics)
	fmt.Fprintf(stdout, "agent registration file: %s\n", gateway.RegistrationURI(base))
	if *cheat {
		fmt.Fprintln(stdout, cheatBanner)
		log.Warn("this worker cheats (--cheat-for-tests): its receipts will be disputed, it will be slashed and jailed and callers refunded")
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		chain.Run(rctx)
	}()
	errc := make(chan error, 2)
	go func() { errc <- hs.Serve(ln) }()
	var ms *http.Server
	if mln != nil {
		ms = gateway.HTTPServer(gateway.MetricsHandler(opts.Registry))
		go func() { errc <- ms.Serve(mln) }()
	}
	select {
	case err = <-errc:
	case <-ctx.Done():
		sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		hs.Shutdown(sctx)
		if ms != nil {
			ms.Shutdown(sctx)
		}
		c()
		err = nil
	}
	cancel()
	wg.Wait()
	if n := chain.PendingCount(); n > 0 {
		log.Info("receipts left in the outbox; they are published at the next start", "count", n)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("worker: %w", err)
	}
	return nil
}

// publicBase is the base URL of a worker's API: --public-url, or http://
// and the address it listens on (127.0.0.1 for an unspecified host).
func publicBase(public, addr string) (string, error) {
	if public != "" {
		u, err := url.Parse(public)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return "", fmt.Errorf("--public-url %q: want an absolute http(s) URL", public)
		}
		return strings.TrimRight(public, "/"), nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// workerRegistration builds the worker's ERC-8004 registration file and
// points its agentURI on the ledger at it (setAgentURI when an agent
// registered before names another URI); the agent's metadata advertises
// the model served and the price per token (multigw.MetaModel,
// MetaPrice), which `verdict gateway --node` reads.
func workerRegistration(ctx context.Context, c *client.Client, k *keys.Key, agentID uint64, base, name, image string, x402 bool, price uint64, m worker.ModelInfo) (*gateway.AgentRegistration, error) {
	chainID, err := c.ChainID(ctx)
	if err != nil {
		return nil, fmt.Errorf("registration file: %w", err)
	}
	if name == "" {
		name = "verdict worker " + m.Name
	}
	reg, err := gateway.WorkerRegistration{Name: name, Image: image, Base: base, ChainID: chainID, AgentID: agentID, X402: x402,
		Description: fmt.Sprintf("Verdict worker: verifiable inference of %s (model id %s, %s) with signed receipts published on the Verdict ledger, audited and disputable; OpenAI-compatible API and MCP.", m.Name, m.ID, m.Spec),
	}.Build()
	if err != nil {
		return nil, err
	}
	uri := gateway.RegistrationURI(base)
	a, _, err := c.Agent(ctx, agentID)
	if err != nil {
		return nil, fmt.Errorf("registration file: %w", err)
	}
	if a.AgentURI != uri {
		tx, err := c.Sign(ctx, k.Private, &ledger.MsgSetAgentURI{AgentID: agentID, AgentURI: uri}, 1, -1)
		if err != nil {
			return nil, fmt.Errorf("setting the agentURI: %w", err)
		}
		if res, err := c.BroadcastCommit(ctx, tx); err != nil {
			return nil, fmt.Errorf("setting the agentURI: %w", err)
		} else if res.Code != 0 {
			return nil, fmt.Errorf("setting the agentURI: code %d: %s", res.Code, res.Log)
		}
	}
	for _, md := range []ledger.MetadataEntry{
		{MetadataKey: multigw.MetaRole, MetadataValue: []byte(multigw.RoleWorker)},
		{MetadataKey: multigw.MetaModel, MetadataValue: []byte(ledger.Hash(m.ID).String())},
		{MetadataKey: multigw.MetaPrice, MetadataValue: []byte(strconv.FormatUint(price, 10))},
	} {
		var have []byte
		if _, err := client.QueryJSON(ctx, c, fmt.Sprintf("agent/%d/metadata/%s", agentID, md.MetadataKey), &have); err != nil {
			return nil, fmt.Errorf("agent metadata %s: %w", md.MetadataKey, err)
		}
		if string(have) == string(md.MetadataValue) {
			continue
		}
		tx, err := c.Sign(ctx, k.Private, &ledger.MsgSetMetadata{AgentID: agentID, MetadataKey: md.MetadataKey, MetadataValue: md.MetadataValue}, 1, -1)
		if err != nil {
			return nil, fmt.Errorf("setting agent metadata %s: %w", md.MetadataKey, err)
		}
		if res, err := c.BroadcastCommit(ctx, tx); err != nil {
			return nil, fmt.Errorf("setting agent metadata %s: %w", md.MetadataKey, err)
		} else if res.Code != 0 {
			return nil, fmt.Errorf("setting agent metadata %s: code %d: %s", md.MetadataKey, res.Code, res.Log)
		}
	}
	return reg, nil
}
