package devnet

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	cfg "github.com/cometbft/cometbft/config"
	"github.com/cometbft/cometbft/p2p"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/explorer"
	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
	"github.com/verdictnet/verdict/internal/ledger/node"
	"github.com/verdictnet/verdict/internal/ledger/proofhooks"
	"github.com/verdictnet/verdict/internal/loopport"
	"github.com/verdictnet/verdict/internal/mcpserver"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/synth"
	"github.com/verdictnet/verdict/internal/tensor"
	"github.com/verdictnet/verdict/internal/verifier"
	"github.com/verdictnet/verdict/internal/worker"
)

// Options configure a devnet.
type Options struct {
	// Dir holds all state: ledger/ (the node's home), keys/, worker/
	// (receipts and outbox), models/ and api-key. An existing Dir is
	// resumed.
	Dir string
	// ModelPath is the model served; empty: the built-in model.
	ModelPath, TokenizerPath string
	// Addr is the gateway's listen address (default 127.0.0.1:8080; port 0
	// picks a free one).
	Addr string
	// BlockInterval is the time between blocks (default 300 ms).
	BlockInterval time.Duration
	// Params are the chain's parameters for a fresh ledger (default:
	// DevParams).
	Params *ledger.Params
	// ReplayShareBps is the verifier's replay share (default 10000: every
	// receipt, cheap on small models).
	ReplayShareBps uint32
	// PricePerToken charged to callers (default 1).
	PricePerToken uint64
	// Threads per engine (0: one per CPU).
	Threads int
	// Validators is the number of validators of a fresh ledger (default
	// 1), all run in this process; the services talk to the first.
	Validators int
	// APIKeys are more callers: API key to the key of the ledger account
	// that pays (not funded by the devnet).
	APIKeys map[string]*keys.Key
	// MaxBatch, MaxQueue and KVBudget bound the worker's continuous batch
	// (worker.Config's MaxConcurrent, MaxQueue, KVBudget; defaults: 16
	// sequences, 256 waiting, 16 full contexts of cache).
	MaxBatch, MaxQueue int
	KVBudget           int64
	// PrefixCache bounds the worker's prefix cache
	// (worker.Config.PrefixCache; default a quarter of KVBudget up to 1 GiB, negative
	// none).
	PrefixCache int64
	// Speculate is the worker's draft tokens per step
	// (worker.Config.Speculate; default none).
	Speculate int
	// KV is the worker's and the verifier's key/value cache precision
	// (worker.Config's KV; default engine.KVF32).
	KV engine.KVType
	// MaxPending bounds the worker's outbox (worker.ChainConfig's
	// MaxPending, default worker.DefaultMaxPending): past it the gateway
	// answers new paid requests 429 until publishing catches up.
	MaxPending int
	// MaxTxFee is the largest fee of a transaction the services sign
	// (client.Options.MaxFee; default client.DefaultMaxFee).
	MaxTxFee uint64
	// CheatForTests makes the worker dishonest (see worker.Config).
	CheatForTests bool
	Logger        *slog.Logger
}

// DevParams are the ledger parameters of a devnet: receipts become final
// 36 blocks after publication (about 11 s at the default 300 ms), audits
// are due within 30 blocks and dispute answers within 20.
//
// The answer windows are at least twice the worst an honest worker took
// in TestCrashSIGKILL (300 ms blocks, the load the worker admits, SIGKILLs
// and restarts) under the race detector on a loaded two-core machine: 18
// blocks of 200 ms (3.6 s, 12 blocks of 300 ms) from an audit's selection
// to its openings committed, right after a restart, when the worker
// catches up (with the former window of 10 it missed audits there and was
// slashed), and 13 of 200 ms (2.6 s, 9 of 300 ms) from a dispute's opening
// to the worker's answer. The test fails when either passes half its
// window.
func DevParams() ledger.Params {
	p := ledger.DefaultParams()
	p.ChallengeWindow = 36 // at least 3 + RevealWindow + OpeningWindow
	p.OpeningWindow = 30
	p.MoveWindow = 20
	p.EscrowTimeout = 60
	p.JailBlocks = 100
	p.UnbondingBlocks = 20
	p.RevealWindow = 2
	p.EvidenceMaxAgeBlocks = 10
	return p
}

// Devnet is a running network.
type Devnet struct {
	// ValidatorRPCs are the other validators' RPC addresses (Validators
	// > 1).
	ValidatorRPCs []string
	// GatewayURL is the OpenAI API's base (http://host:port/v1 is the
	// OpenAI base URL); MCPURL the MCP endpoint; RPC the ledger node's.
	GatewayURL, MCPURL, RPC string
	// ExplorerURL is the web explorer's, on the gateway's address.
	ExplorerURL string
	// APIKey authenticates the demo user, whose account pays.
	APIKey string
	User   *keys.Key
	Faucet *keys.Key
	Model  worker.ModelInfo

	Worker   *worker.Local
	Chain    *worker.Chain
	Verifier *verifier.Verifier
	Client   *client.Client
	// Pool routes requests among the workers (here, the one).
	Pool *gateway.Pool

	log      *slog.Logger
	cancel   context.CancelFunc
	done     chan struct{}
	mu       sync.Mutex
	firstErr error
}

// Start brings the network up and returns once every service is ready.
// The network stops when ctx ends or Stop is called; Wait waits for that.
func Start(ctx context.Context, o Options) (_ *Devnet, err error) {
	if o.Dir == "" {
		return nil, errors.New("devnet: no data directory")
	}
	if o.Addr == "" {
		o.Addr = "127.0.0.1:8080"
	}
	if o.BlockInterval <= 0 {
		o.BlockInterval = 300 * time.Millisecond
	}
	if o.ReplayShareBps == 0 {
		o.ReplayShareBps = 10000
	}
	if o.PricePerToken == 0 {
		o.PricePerToken = 1
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}
	modelPath := o.ModelPath
	if modelPath == "" {
		if modelPath, err = builtinModel(o.Dir); err != nil {
			return nil, err
		}
	}
	homes, err := initLedger(filepath.Join(o.Dir, "ledger"), o)
	if err != nil {
		return nil, err
	}
	models := &proofhooks.Models{}
	if _, err := models.Add(modelPath, o.TokenizerPath); err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}
	var nodes []*node.Node
	for i, h := range homes {
		n, err := node.New(h, proofhooks.Hooks(models), log.With("service", "node", "validator", i))
		if err != nil {
			models.Close()
			return nil, fmt.Errorf("devnet: %w", err)
		}
		// Each validator attests to holding the model once it is
		// registered (the worker registers it below).
		n.AttestInterval = o.BlockInterval
		nodes = append(nodes, n)
	}
	rctx, cancel := context.WithCancel(context.Background())
	// d is not the named result: a failed start returns nil while the
	// closers and the node goroutines, which use d, stop what started.
	d := &Devnet{RPC: nodes[0].RPCAddress(), log: log, cancel: cancel, done: make(chan struct{})}
	for _, n := range nodes[1:] {
		d.ValidatorRPCs = append(d.ValidatorRPCs, n.RPCAddress())
	}
	nodeCtx, stopNode := context.WithCancel(context.Background())
	nodeDone := make(chan struct{})
	var nodeWG sync.WaitGroup
	for _, n := range nodes {
		nodeWG.Add(1)
		go func() {
			defer nodeWG.Done()
			if err := n.Run(nodeCtx); err != nil {
				d.fail(err)
			}
		}()
	}
	go func() {
		nodeWG.Wait()
		models.Close()
		close(nodeDone)
	}()
	var svc sync.WaitGroup
	var closers []func()
	// stopAll stops the services, then the node.
	stopAll := func() {
		cancel()
		svc.Wait()
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
		stopNode()
		<-nodeDone
	}
	defer func() {
		if err != nil {
			stopAll()
		}
	}()
	// The services sign for the chain of the devnet's own genesis, and
	// for no other a node on this address might report.
	if d.Client, err = client.NewWithOptions(d.RPC, client.Options{MaxFee: o.MaxTxFee, ChainID: nodes[0].ChainID()}); err != nil {
		return nil, err
	}
	if err := waitReady(ctx, d.Client, nodes, d.failed); err != nil {
		return nil, fmt.Errorf("devnet: ledger did not start: %w", err)
	}

	params, err := d.Client.Params(ctx)
	if err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}

	// Keys and money.
	kdir := filepath.Join(o.Dir, "keys")
	wk, err1 := loadOrGenerate(filepath.Join(kdir, "worker.json"))
	vk, err2 := loadOrGenerate(filepath.Join(kdir, "verifier.json"))
	uk, err3 := loadOrGenerate(filepath.Join(kdir, "user.json"))
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}
	d.User = uk
	if d.Faucet, err = keys.Load(filepath.Join(o.Dir, "ledger", node.FaucetFile)); err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}
	if err := fund(ctx, d.Client, d.Faucet, map[*keys.Key]uint64{wk: 1_000_000, vk: 1_000_000, uk: 1_000_000_000}); err != nil {
		return nil, fmt.Errorf("devnet: funding: %w", err)
	}
	if d.APIKey, err = apiKey(filepath.Join(o.Dir, "api-key")); err != nil {
		return nil, err
	}

	// Worker.
	store, err := worker.NewFileStore(filepath.Join(o.Dir, "worker", "receipts"))
	if err != nil {
		return nil, err
	}
	name := ""
	if o.ModelPath == "" {
		name = synth.BuiltinName
	}
	d.Worker, err = worker.Open(worker.Config{ModelPath: modelPath, TokenizerPath: o.TokenizerPath, Name: name, Threads: o.Threads,
		Key: wk, Store: store, Logger: log.With("service", "worker"), CheatForTests: o.CheatForTests,
		MaxConcurrent: o.MaxBatch, MaxQueue: cmp.Or(o.MaxQueue, 256), KVBudget: o.KVBudget, PrefixCache: o.PrefixCache, Speculate: o.Speculate, KV: o.KV})
	if err != nil {
		return nil, fmt.Errorf("devnet: worker: %w", err)
	}
	closers = append(closers, func() { d.Worker.Close() })
	d.Model = d.Worker.Models()[0]
	callers := map[string]*keys.Key{d.APIKey: uk}
	for k, v := range o.APIKeys {
		callers[k] = v
	}
	accounts, err := gateway.NewLedgerAccounts(d.Client, callers)
	if err != nil {
		return nil, err
	}
	meter := &gateway.LedgerMeter{Accounts: accounts, PricePerToken: o.PricePerToken}
	vaddr, _ := ledger.AddressOf(vk.Public)
	d.Chain, err = worker.NewChain(d.Worker, worker.ChainConfig{Client: d.Client, RPC: d.RPC, Dir: filepath.Join(o.Dir, "worker"),
		Validators: []ledger.Address{vaddr}, Escrow: worker.EscrowCharges(meter.Escrow), Stake: 10 * params.MinWorkerStake, MaxPending: o.MaxPending,
		Logger: log.With("service", "worker")})
	if err != nil {
		return nil, err
	}
	meter.Submit = d.Chain.SubmitCharge
	meter.Pending = d.Chain.IsPending
	meter.Backlogged = d.Chain.Backlogged
	meter.PayReplay = accounts.Payer(d.Chain.Address())
	if err := d.Chain.Setup(ctx); err != nil {
		return nil, err
	}
	// The ledger takes escrows for the model only once the validators
	// holding the quorum of voting power attested to holding it (each node
	// here does so by itself, within a block or two): the devnet is not
	// ready before.
	actx, acancel := context.WithTimeout(ctx, 60*time.Second)
	err = d.Chain.WaitModelsActive(actx, o.BlockInterval/2)
	acancel()
	if err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}

	// Verifier, on its own copy of the model.
	vw, err := worker.Open(worker.Config{ModelPath: modelPath, TokenizerPath: o.TokenizerPath, Name: name, Threads: o.Threads, Key: vk,
		Logger: log.With("service", "verifier"), KV: o.KV})
	if err != nil {
		return nil, fmt.Errorf("devnet: verifier: %w", err)
	}
	closers = append(closers, func() { vw.Close() })
	d.Verifier, err = verifier.New(verifier.Config{Client: d.Client, RPC: d.RPC, Key: vk, Worker: vw, ReplayShareBps: o.ReplayShareBps,
		Logger: log.With("service", "verifier")})
	if err != nil {
		return nil, err
	}
	if err := d.Verifier.Setup(ctx); err != nil {
		return nil, err
	}

	// Gateway with MCP.
	status := gateway.LedgerStatus(d.Client, d.Chain.IsPending)
	// Workers are chosen by stake, reputation and price; a jailed worker
	// gets no requests.
	d.Pool = gateway.NewPool(d.Client, params.MinWorkerStake, gateway.Candidate{Backend: d.Worker, Address: d.Chain.Address(), Price: o.PricePerToken})
	d.Pool.Refresh = time.Second
	reg := prometheus.NewRegistry()
	if err := errors.Join(d.Chain.Register(reg), d.Verifier.Register(reg), d.Worker.Register(reg)); err != nil {
		return nil, err
	}
	// MCP callers are billed like API callers, each to the account of its
	// API key; /metrics is served on the gateway's (loopback) address.
	owners, err := gateway.NewFileOwners(filepath.Join(o.Dir, "worker", "owners"))
	if err != nil {
		return nil, err
	}
	// The explorer reads the chain from its first block; it holds the
	// served model, so it shows prompts and outputs as text.
	follower, err := client.NewFollower(d.RPC, 1)
	if err != nil {
		return nil, err
	}
	index := explorer.NewIndex()
	ex, err := explorer.New(explorer.Options{Ledger: d.Client, Index: index, Logger: log.With("service", "explorer"),
		Models: map[ledger.Hash]*model.Model{ledger.Hash(d.Model.ID): d.Worker.Model()}})
	if err != nil {
		return nil, err
	}
	srv, err := gateway.New(gateway.Options{Backend: d.Pool, Registry: reg, Auth: accounts, Status: status, Meter: meter,
		Owners: owners, Explorer: ex,
		MCP: func(g gateway.Gate) http.Handler {
			return mcpserver.HTTPHandler(mcpserver.New(d.Pool, mcpserver.Options{Gate: g}))
		},
		ServeMetrics: true, Logger: log.With("service", "gateway")})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("devnet: gateway: %w", err)
	}
	// Requests still running when Shutdown's grace ends have their
	// contexts cancelled and are waited for: none outlives Stop (a
	// late one would write its receipt into a store already closed, or
	// into a directory the caller is removing).
	hctx, hcancel := context.WithCancel(context.Background())
	var (
		hmu      sync.Mutex
		hclosed  bool
		inflight sync.WaitGroup
	)
	hs := gateway.HTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hmu.Lock()
		if hclosed {
			hmu.Unlock()
			http.Error(w, "the devnet is stopping", http.StatusServiceUnavailable)
			return
		}
		inflight.Add(1)
		hmu.Unlock()
		defer inflight.Done()
		srv.ServeHTTP(w, r)
	}))
	hs.BaseContext = func(net.Listener) context.Context { return hctx }
	d.GatewayURL = "http://" + ln.Addr().String()
	d.MCPURL = d.GatewayURL + "/mcp"
	d.ExplorerURL = d.GatewayURL + gateway.ExplorerPath

	run := func(name string, f func(context.Context) error) {
		svc.Add(1)
		go func() {
			defer svc.Done()
			if err := f(rctx); err != nil && rctx.Err() == nil {
				d.fail(fmt.Errorf("%s: %w", name, err))
			}
		}()
	}
	run("explorer", func(ctx context.Context) error {
		return index.Run(ctx, follower, func(err error) { log.Warn("explorer: reading the ledger", "err", err) })
	})
	run("worker", d.Chain.Run)
	run("verifier", d.Verifier.Run)
	run("gateway", func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() { errc <- hs.Serve(ln) }()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
		}
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		if err := hs.Shutdown(sctx); err != nil {
			log.Warn("gateway: requests still running after the shutdown grace: cancelled", "err", err)
		}
		hcancel()
		hs.Close()
		hmu.Lock()
		hclosed = true
		hmu.Unlock()
		inflight.Wait()
		<-errc
		return nil
	})
	go func() {
		select {
		case <-ctx.Done():
		case <-rctx.Done():
		}
		stopAll()
		close(d.done)
	}()
	log.Info("devnet ready", "gateway", d.GatewayURL, "explorer", d.ExplorerURL, "rpc", d.RPC, "model", d.Model.Name, "modelId", d.Model.ID.String())
	return d, nil
}

// Stop stops the network and waits for it.
func (d *Devnet) Stop() error {
	d.cancel()
	return d.Wait()
}

// Wait waits until the network has stopped and returns the first error a
// service failed with.
func (d *Devnet) Wait() error {
	<-d.done
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.firstErr
}

// failed returns the first error a service failed with, nil while none has.
func (d *Devnet) failed() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.firstErr
}

func (d *Devnet) fail(err error) {
	d.mu.Lock()
	if d.firstErr == nil {
		d.firstErr = err
	}
	d.mu.Unlock()
	d.log.Error("devnet service failed", "err", err)
	d.cancel()
}

// builtinModel writes the built-in model under dir/models (when absent or
// different) and returns its path.
func builtinModel(dir string) (string, error) {
	var buf bytes.Buffer
	if err := synth.GenerateBuiltin("tiny", synth.BuiltinSeed, tensor.F32, &buf); err != nil {
		return "", fmt.Errorf("devnet: built-in model: %w", err)
	}
	path := filepath.Join(dir, "models", synth.BuiltinName+".gguf")
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, buf.Bytes()) {
		return path, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("devnet: %w", err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("devnet: %w", err)
	}
	return path, nil
}

// initLedger creates the validators' homes under dir when absent (dir
// itself for one validator, dir/node0... otherwise), and points their
// listen addresses at loopback ports and their peers at each other. A
// fresh ledger gets free ports; a resumed one keeps the ports its
// configuration names (so the ledger RPC address stays the same across
// restarts), except a port another program holds now, which is replaced
// by a free one. It returns the homes.
func initLedger(dir string, o Options) ([]string, error) {
	n := max(o.Validators, 1)
	homes := node.Homes(dir, n)
	fresh := false
	if _, err := os.Stat(filepath.Join(homes[0], node.ConfigFile)); errors.Is(err, os.ErrNotExist) {
		fresh = true
		no := node.DefaultOptions()
		no.Validators = n
		no.BlockInterval = o.BlockInterval
		if o.Params != nil {
			no.Params = *o.Params
		} else {
			no.Params = DevParams()
		}
		if err := node.Init(dir, no); err != nil {
			return nil, fmt.Errorf("devnet: %w", err)
		}
	}
	confs := make([]*cfg.Config, n)
	peers := make([]string, n)
	var ports portPicker
	defer ports.release()
	for i, h := range homes {
		conf, err := node.LoadConfig(h)
		if err != nil {
			return nil, fmt.Errorf("devnet: %w", err)
		}
		p2pPort, err1 := ports.take(conf.P2P.ListenAddress, !fresh)
		rpc, err2 := ports.take(conf.RPC.ListenAddress, !fresh)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("devnet: %w", err)
		}
		nk, err := p2p.LoadNodeKey(conf.NodeKeyFile())
		if err != nil {
			return nil, fmt.Errorf("devnet: %s: %w", h, err)
		}
		conf.P2P.ListenAddress = fmt.Sprintf("tcp://127.0.0.1:%d", p2pPort)
		conf.RPC.ListenAddress = fmt.Sprintf("tcp://127.0.0.1:%d", rpc)
		conf.Consensus.TimeoutCommit = o.BlockInterval
		peers[i] = fmt.Sprintf("%s@127.0.0.1:%d", nk.ID(), p2pPort)
		confs[i] = conf
	}
	for i, conf := range confs {
		var others []string
		for j, p := range peers {
			if j != i {
				others = append(others, p)
			}
		}
		conf.P2P.PersistentPeers = strings.Join(others, ",")
		b, err := json.MarshalIndent(conf, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("devnet: %w", err)
		}
		if err := os.WriteFile(filepath.Join(homes[i], node.ConfigFile), b, 0o644); err != nil {
			return nil, fmt.Errorf("devnet: %w", err)
		}
	}
	return homes, nil
}

// portPicker hands out loopback ports, each held open until release, so
// that it never hands out one port twice: a listener closed at once is
// free to be handed out again, and two of a ledger's addresses could come
// out the same (the later node to listen then failing to start), as could
// two a resumed ledger's configuration names alike.
type portPicker struct{ held []net.Listener }

// take returns the port of a configured listen address (tcp://host:port)
// when keep is true and it is free on loopback, a free port otherwise.
func (p *portPicker) take(addr string, keep bool) (int, error) {
	if keep {
		if _, port, err := net.SplitHostPort(strings.TrimPrefix(addr, "tcp://")); err == nil {
			if ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port)); err == nil {
				p.held = append(p.held, ln)
				return ln.Addr().(*net.TCPAddr).Port, nil
			}
		}
	}
	// Below the ephemeral range: between release and the node's bind no
	// outgoing connection can take it (loopport).
	ln, err := loopport.Listen()
	if err != nil {
		return 0, err
	}
	p.held = append(p.held, ln)
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// release lets the ports go, for the nodes to listen on.
func (p *portPicker) release() {
	for _, ln := range p.held {
		ln.Close()
	}
	p.held = nil
}

// startWait is how long the ledger may take to make its first block.
var startWait = 60 * time.Second

// waitReady waits for the ledger's first block. It gives up at once when a
// validator failed (failed returns its error) and after startWait otherwise,
// saying where each validator's consensus stands.
func waitReady(ctx context.Context, c *client.Client, nodes []*node.Node, failed func() error) error {
	deadline := time.Now().Add(startWait)
	for {
		if err := failed(); err != nil {
			return err
		}
		h, err := c.Height(ctx)
		if err == nil && h >= 1 {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("no block")
			}
			var where []string
			for i, n := range nodes {
				where = append(where, fmt.Sprintf("validator %d: %v", i, n.Status()))
			}
			return fmt.Errorf("%w after %v (%s)", err, startWait, strings.Join(where, "; "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func loadOrGenerate(path string) (*keys.Key, error) {
	if k, err := keys.Load(path); err == nil {
		return k, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	return keys.Generate(path)
}

// fund tops up accounts from the faucet to at least the given balances,
// and waits until the ledger shows them.
func fund(ctx context.Context, c *client.Client, faucet *keys.Key, want map[*keys.Key]uint64) error {
	s, err := worker.NewSender(c, faucet.Private, 1)
	if err != nil {
		return err
	}
	type topup struct {
		a    ledger.Address
		want uint64
	}
	var todo []topup
	for k, amt := range want {
		a, _ := ledger.AddressOf(k.Public)
		acct, err := c.Account(ctx, a)
		if err != nil {
			return err
		}
		if acct.Balance < amt/2 {
			if _, err := s.Send(ctx, &ledger.MsgSend{To: a, Amount: amt - acct.Balance}); err != nil {
				return err
			}
			todo = append(todo, topup{a, amt / 2})
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, t := range todo {
		for {
			acct, err := c.Account(ctx, t.a)
			if err == nil && acct.Balance >= t.want {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("account %s not funded in time", t.a)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// apiKey reads or creates the demo user's API key.
func apiKey(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		if k := strings.TrimSpace(string(b)); k != "" {
			return k, nil
		}
	}
	var r [16]byte
	rand.Read(r[:])
	k := "vk-dev-" + hex.EncodeToString(r[:])
	if err := os.WriteFile(path, []byte(k+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("devnet: %w", err)
	}
	return k, nil
}
