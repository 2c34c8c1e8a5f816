package node

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	dbm "github.com/cometbft/cometbft-db"
	abcitypes "github.com/cometbft/cometbft/abci/types"
	cfg "github.com/cometbft/cometbft/config"
	cmtlog "github.com/cometbft/cometbft/libs/log"
	"github.com/cometbft/cometbft/libs/service"
	cmtnode "github.com/cometbft/cometbft/node"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/privval"
	"github.com/cometbft/cometbft/proxy"
	"github.com/cometbft/cometbft/types"

	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/abciapp"
)

// ConfigFile is the node's configuration, relative to its home: CometBFT's
// config.Config as JSON (durations in nanoseconds). Start overlays it on
// CometBFT's defaults, so a field left out keeps its default.
const ConfigFile = "config/node.json"

// FaucetFile holds the key of the account that genesis funds for tests and
// demos, relative to the network directory (or the single node's home).
const FaucetFile = "faucet.json"

// Options configure Init.
type Options struct {
	ChainID    string
	Validators int // number of validator homes (1 for a single node)
	BasePort   int // first port; node i uses BasePort+10*i (p2p) and +1 (rpc)
	Params     ledger.Params
	Faucet     uint64 // genesis balance of the faucet account
	Stake      uint64 // genesis balance and bond of each validator's account
	// BlockInterval is the target time between blocks (timeout_commit).
	BlockInterval time.Duration
}

// DefaultOptions returns the options of a local development network.
func DefaultOptions() Options {
	return Options{ChainID: "verdict-dev", Validators: 1, BasePort: 26656, Params: ledger.DefaultParams(),
		Faucet: 1_000_000_000_000, Stake: 1_000_000, BlockInterval: 500 * time.Millisecond}
}

// Homes returns the home directories Init creates under dir: dir itself for
// one validator, dir/node0 ... otherwise.
func Homes(dir string, n int) []string {
	if n == 1 {
		return []string{dir}
	}
	out := make([]string, n)
	for i := range out {
		out[i] = filepath.Join(dir, fmt.Sprintf("node%d", i))
	}
	return out
}

// Init writes the homes of a network of o.Validators validators on loopback
// under dir, with one shared genesis, and the faucet key in dir. It refuses
// to overwrite an existing configuration.
func Init(dir string, o Options) error {
	if o.Validators < 1 || o.Validators > 64 {
		return fmt.Errorf("init: %d validators, want 1..64", o.Validators)
	}
	if o.BasePort < 1024 || o.BasePort+10*o.Validators > 65535 {
		return fmt.Errorf("init: base port %d out of range", o.BasePort)
	}
	if err := o.Params.Validate(); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	homes := Homes(dir, o.Validators)
	for _, h := range homes {
		if _, err := os.Stat(filepath.Join(h, ConfigFile)); err == nil {
			return fmt.Errorf("init: %s already holds a node (remove it first)", h)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	faucet, err := keys.Generate(filepath.Join(dir, FaucetFile))
	if err != nil {
		return fmt.Errorf("init: faucet key: %w", err)
	}
	fa, err := ledger.AddressOf(faucet.Public)
	if err != nil {
		return fmt.Errorf("init: faucet key: %w", err)
	}
	gen := ledger.Genesis{ChainID: o.ChainID, Params: o.Params, Accounts: []ledger.GenesisAccount{{Address: fa, Balance: o.Faucet}}}
	doc := &types.GenesisDoc{GenesisTime: time.Now().UTC().Truncate(time.Second), ChainID: o.ChainID, InitialHeight: 1,
		ConsensusParams: types.DefaultConsensusParams()}
	// -1: CometBFT hands PrepareProposal the whole mempool, which chooses
	// at most maxBlockBytes with deadline transactions first
	// (ledger.Propose), so that a flood cannot push them out.
	doc.ConsensusParams.Block.MaxBytes = -1
	// CometBFT keeps evidence while it is younger than either bound; the
	// ledger slashes only for evidence at most evidenceMaxAgeBlocks old
	// (unbonding outlasts it), so the block bound is the one that counts.
	doc.ConsensusParams.Evidence.MaxAgeNumBlocks = int64(o.Params.EvidenceMaxAgeBlocks)
	doc.ConsensusParams.Evidence.MaxAgeDuration = time.Second
	var peers []string
	confs := make([]*cfg.Config, len(homes))
	for i, h := range homes {
		conf := cfg.DefaultConfig()
		conf.SetRoot(h)
		cfg.EnsureRoot(h)
		conf.Moniker = fmt.Sprintf("verdict-%d", i)
		p2pPort, rpcPort := o.BasePort+10*i, o.BasePort+10*i+1
		conf.P2P.ListenAddress = fmt.Sprintf("tcp://127.0.0.1:%d", p2pPort)
		conf.RPC.ListenAddress = fmt.Sprintf("tcp://127.0.0.1:%d", rpcPort)
		conf.P2P.AllowDuplicateIP = true
		conf.P2P.AddrBookStrict = false
		// Every validator dials the others (persistent peers): no
		// address exchange. (CometBFT's address book, which PEX starts,
		// writes config/addrbook.json once more after the node has
		// stopped, on a goroutine the node does not wait for: a devnet
		// test's cleanup then found its config directory not empty.)
		conf.P2P.PexReactor = false
		conf.ProxyApp = "" // the application runs in-process
		conf.Consensus.TimeoutCommit = o.BlockInterval
		conf.Mempool.MaxTxBytes = ledger.MaxTxBytes
		conf.Mempool.MaxTxsBytes = 64 * ledger.MaxTxBytes
		conf.RPC.MaxBodyBytes = 2 * ledger.MaxTxBytes
		conf.RPC.MaxRequestBatchSize = 500
		conf.Instrumentation.Prometheus = false
		confs[i] = conf
		pv := privval.GenFilePV(conf.PrivValidatorKeyFile(), conf.PrivValidatorStateFile())
		pv.Save()
		nk, err := p2p.LoadOrGenNodeKey(conf.NodeKeyFile())
		if err != nil {
			return fmt.Errorf("init %s: node key: %w", h, err)
		}
		peers = append(peers, fmt.Sprintf("%s@127.0.0.1:%d", nk.ID(), p2pPort))
		pub := pv.Key.PubKey
		power := int64(min(o.Stake/o.Params.PowerUnit, ledger.MaxPower))
		if power == 0 {
			return fmt.Errorf("init: validator stake %d is below one unit of power (%d)", o.Stake, o.Params.PowerUnit)
		}
		doc.Validators = append(doc.Validators, types.GenesisValidator{Address: pub.Address(), PubKey: pub, Power: power, Name: conf.Moniker})
		va := ledger.Address(pub.Bytes())
		gen.Accounts = append(gen.Accounts, ledger.GenesisAccount{Address: va, Balance: o.Stake, Bonded: o.Stake})
	}
	app, err := json.MarshalIndent(gen, "", "  ")
	if err != nil {
		return fmt.Errorf("init: genesis: %w", err)
	}
	doc.AppState = app
	if err := doc.ValidateAndComplete(); err != nil {
		return fmt.Errorf("init: genesis: %w", err)
	}
	for i, conf := range confs {
		var others []string
		for j, p := range peers {
			if j != i {
				others = append(others, p)
			}
		}
		conf.P2P.PersistentPeers = strings.Join(others, ",")
		if err := doc.SaveAs(conf.GenesisFile()); err != nil {
			return fmt.Errorf("init: %w", err)
		}
		b, err := json.MarshalIndent(conf, "", "  ")
		if err != nil {
			return fmt.Errorf("init: config: %w", err)
		}
		if err := os.WriteFile(filepath.Join(conf.RootDir, ConfigFile), b, 0o644); err != nil {
			return fmt.Errorf("init: %w", err)
		}
	}
	return nil
}

// LoadConfig reads a home's configuration.
func LoadConfig(home string) (*cfg.Config, error) {
	path := filepath.Join(home, ConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("node config: %w (run `verdict node init --home %s` first)", err, home)
	}
	conf := cfg.DefaultConfig()
	if err := json.Unmarshal(b, conf); err != nil {
		return nil, fmt.Errorf("node config %s: %w", path, err)
	}
	conf.SetRoot(home)
	if err := conf.ValidateBasic(); err != nil {
		return nil, fmt.Errorf("node config %s: %w", path, err)
	}
	return conf, nil
}

// Node is a running node.
type Node struct {
	// AttestInterval is how often a node whose hooks list the models it
	// holds (ModelLister) looks for registered, inactive models among them
	// to attest (default DefaultAttestInterval). Set it before Run.
	AttestInterval time.Duration

	cmt *cmtnode.Node
	app *abciapp.App
	db  dbm.DB
	dbs *dbTracker
	att *attester // nil: the hooks list no models
}

// dbTracker remembers the databases CometBFT opens so that all of them are
// closed at stop (CometBFT v0.38 leaves the tx index open, which keeps its
// lock and stops a restart in the same process).
type dbTracker struct {
	mu  sync.Mutex
	dbs []dbm.DB
}

func (t *dbTracker) provide(c *cfg.DBContext) (dbm.DB, error) {
	db, err := cfg.DefaultDBProvider(c)
	if err != nil {
		return nil, err
	}
	sdb := &stoppingDB{db: db}
	t.mu.Lock()
	t.dbs = append(t.dbs, sdb)
	t.mu.Unlock()
	return sdb, nil
}

// errStopped is what a write to a stopped node's database returns.
var errStopped = errors.New("node stopped: database closed")

// stoppingDB is a CometBFT database that a stopping node can close while
// CometBFT's own goroutines still read it. CometBFT v0.38 does not wait
// for its per-peer routines when it stops: the consensus reactor's maj23
// query routine sleeps peerQueryMaj23SleepDuration (2 s by default)
// between rounds and the gossip routines peerGossipSleepDuration, and
// each reads the block store when it wakes before it checks that the node
// stopped; the block store panics on any read error, so a routine woken
// after the node closed its databases took the whole process down
// ("leveldb: closed"), which in a process that runs nodes in-process (the
// devnet, tests) means every later stop could crash it. Closing waits for
// the reads in progress (so that none runs into a closed leveldb) and
// closes the database at once (its file lock is released for a restart in
// the same process); reads after that find nothing (a stopped node has no
// blocks to gossip, and the routines return at their next check) and
// writes fail with errStopped.
type stoppingDB struct {
	mu     sync.RWMutex
	closed bool
	db     dbm.DB
}

var emptyDB = dbm.NewMemDB()

func (s *stoppingDB) read() bool {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return false
	}
	return true
}

func (s *stoppingDB) Get(k []byte) ([]byte, error) {
	if !s.read() {
		return nil, nil
	}
	defer s.mu.RUnlock()
	return s.db.Get(k)
}

func (s *stoppingDB) Has(k []byte) (bool, error) {
	if !s.read() {
		return false, nil
	}
	defer s.mu.RUnlock()
	return s.db.Has(k)
}

func (s *stoppingDB) Iterator(start, end []byte) (dbm.Iterator, error) {
	if !s.read() {
		return emptyDB.Iterator(start, end)
	}
	defer s.mu.RUnlock()
	return s.db.Iterator(start, end)
}

func (s *stoppingDB) ReverseIterator(start, end []byte) (dbm.Iterator, error) {
	if !s.read() {
		return emptyDB.ReverseIterator(start, end)
	}
	defer s.mu.RUnlock()
	return s.db.ReverseIterator(start, end)
}

func (s *stoppingDB) write(f func() error) error {
	if !s.read() {
		return errStopped
	}
	defer s.mu.RUnlock()
	return f()
}

func (s *stoppingDB) Set(k, v []byte) error { return s.write(func() error { return s.db.Set(k, v) }) }
func (s *stoppingDB) SetSync(k, v []byte) error {
	return s.write(func() error { return s.db.SetSync(k, v) })
}
func (s *stoppingDB) Delete(k []byte) error { return s.write(func() error { return s.db.Delete(k) }) }
func (s *stoppingDB) DeleteSync(k []byte) error {
	return s.write(func() error { return s.db.DeleteSync(k) })
}
func (s *stoppingDB) Print() error { return s.write(s.db.Print) }
func (s *stoppingDB) Compact(start, end []byte) error {
	return s.write(func() error { return s.db.Compact(start, end) })
}

func (s *stoppingDB) Stats() map[string]string {
	if !s.read() {
		return map[string]string{}
	}
	defer s.mu.RUnlock()
	return s.db.Stats()
}

func (s *stoppingDB) NewBatch() dbm.Batch {
	if !s.read() {
		return stoppedBatch{}
	}
	defer s.mu.RUnlock()
	return &stoppingBatch{s: s, b: s.db.NewBatch()}
}

// Close closes the database once the reads and writes in progress
// returned; closing it again does nothing.
func (s *stoppingDB) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.db.Close()
}

// stoppingBatch is a batch of a stoppingDB: written only while the
// database is open.
type stoppingBatch struct {
	s *stoppingDB
	b dbm.Batch
}

func (b *stoppingBatch) Set(k, v []byte) error { return b.b.Set(k, v) }
func (b *stoppingBatch) Delete(k []byte) error { return b.b.Delete(k) }
func (b *stoppingBatch) Write() error          { return b.s.write(b.b.Write) }
func (b *stoppingBatch) WriteSync() error      { return b.s.write(b.b.WriteSync) }
func (b *stoppingBatch) Close() error          { return b.b.Close() }

// stoppedBatch is a batch of a database already closed.
type stoppedBatch struct{}

func (stoppedBatch) Set(k, v []byte) error { return errStopped }
func (stoppedBatch) Delete(k []byte) error { return errStopped }
func (stoppedBatch) Write() error          { return errStopped }
func (stoppedBatch) WriteSync() error      { return errStopped }
func (stoppedBatch) Close() error          { return nil }

func (t *dbTracker) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, db := range t.dbs {
		_ = db.Close() // some are closed already by the node; closing again does nothing
	}
	t.dbs = nil
}

// RPCAddress is the node's RPC listen address (tcp://host:port).
func (n *Node) RPCAddress() string { return n.cmt.Config().RPC.ListenAddress }

// ChainID is the chain id of the node's genesis.
func (n *Node) ChainID() string { return n.cmt.GenesisDoc().ChainID }

// App returns the in-process application.
func (n *Node) App() *abciapp.App { return n.app }

// Status is where a running node stands: what a ledger that makes no
// blocks is asked first.
type Status struct {
	Height  int64 // last block stored
	Peers   int   // peers connected
	Syncing bool  // still catching up from peers, not yet voting
}

func (s Status) String() string {
	syncing := ""
	if s.Syncing {
		syncing = ", catching up"
	}
	return fmt.Sprintf("height %d, %d peers%s", s.Height, s.Peers, syncing)
}

// Status reports the node's height, its peers and whether it is still
// catching up.
func (n *Node) Status() Status {
	return Status{Height: n.cmt.BlockStore().Height(), Peers: n.cmt.Switch().Peers().Size(), Syncing: n.cmt.ConsensusReactor().WaitSync()}
}

// New builds (does not start) the node of home with the given hooks.
func New(home string, hooks ledger.Hooks, log *slog.Logger) (*Node, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	conf, err := LoadConfig(home)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(conf.DBDir(), 0o755); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	db, err := dbm.NewGoLevelDB("verdict-app", conf.DBDir())
	if err != nil {
		return nil, fmt.Errorf("node: open application database: %w", err)
	}
	app, err := abciapp.New(db, hooks, log.With("module", "ledger"))
	if err != nil {
		db.Close()
		return nil, err
	}
	pv := privval.LoadFilePV(conf.PrivValidatorKeyFile(), conf.PrivValidatorStateFile())
	nk, err := p2p.LoadNodeKey(conf.NodeKeyFile())
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("node: %w", err)
	}
	dbs := &dbTracker{}
	cmt, err := cmtnode.NewNode(conf, pv, nk, clientCreator(app),
		cmtnode.DefaultGenesisDocProviderFunc(conf), dbs.provide,
		cmtnode.DefaultMetricsProvider(conf.Instrumentation), slogAdapter{log.With("module", "cometbft")})
	if err != nil {
		dbs.closeAll()
		db.Close()
		return nil, fmt.Errorf("node: %w", err)
	}
	n := &Node{cmt: cmt, app: app, db: db, dbs: dbs}
	if ml, ok := hooks.Models.(ModelLister); ok && ml != nil {
		key := ed25519.PrivateKey(pv.Key.PrivKey.Bytes())
		n.att = &attester{app: app, mempool: cmt.Mempool, key: key, addr: ledger.Address(key.Public().(ed25519.PublicKey)),
			models: ml, log: log.With("module", "attest")}
	}
	return n, nil
}

// Run starts the node and blocks until ctx ends, then stops it.
func (n *Node) Run(ctx context.Context) error {
	if err := n.cmt.Start(); err != nil {
		// CometBFT serves RPC before it listens for peers: a node whose
		// peer address is taken would go on answering RPC at its genesis
		// height, looking alive to every client. Release what the start
		// began.
		n.cmt.OnStop()
		n.dbs.closeAll()
		n.db.Close()
		return fmt.Errorf("node start: %w", err)
	}
	var attesting sync.WaitGroup
	if n.att != nil {
		attesting.Add(1)
		go func() {
			defer attesting.Done()
			n.att.run(ctx, n.AttestInterval)
		}()
	}
	<-ctx.Done()
	attesting.Wait()
	err := n.cmt.Stop()
	n.cmt.Wait()
	n.dbs.closeAll()
	if cerr := n.db.Close(); err == nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("node stop: %w", err)
	}
	return nil
}

// ValidatorKey returns the ed25519 private key of a home's validator, which
// is also its ledger account.
func ValidatorKey(home string) (ed25519.PrivateKey, error) {
	conf, err := LoadConfig(home)
	if err != nil {
		return nil, err
	}
	pv := privval.LoadFilePV(conf.PrivValidatorKeyFile(), conf.PrivValidatorStateFile())
	return ed25519.PrivateKey(pv.Key.PrivKey.Bytes()), nil
}

// slogAdapter sends CometBFT's logs to slog, its chatty Info at Debug.
type slogAdapter struct{ l *slog.Logger }

func (s slogAdapter) Debug(msg string, kv ...any) { s.l.Debug(msg, kv...) }
func (s slogAdapter) Info(msg string, kv ...any)  { s.l.Debug(msg, kv...) }
func (s slogAdapter) Error(msg string, kv ...any) {
	switch {
	case shutdownNoise(msg, kv):
		s.l.Debug(msg, kv...)
	case peerGone(msg, kv):
		s.l.Warn("peer disconnected", kv...)
	case signRegression(msg, kv):
		s.l.Warn("refused to sign at an earlier step than signed before the restart (double-sign protection)", append([]any{"was", msg}, kv...)...)
	default:
		s.l.Error(msg, kv...)
	}
}

// peerGone reports whether an error CometBFT logs is a peer closing its
// connection (a node stopped or restarted): worth a warning, not an error.
func peerGone(msg string, kv []any) bool {
	if msg != "Stopping peer for error" {
		return false
	}
	for i := 1; i < len(kv); i += 2 {
		if err, ok := kv[i].(error); ok && errors.Is(err, io.EOF) {
			return true
		}
	}
	return false
}

// signRegression reports whether an error CometBFT logs is its file
// private validator refusing to sign a vote or proposal at a height, round
// or step before the last one it signed. After a crash (the WAL may miss
// what the validator had signed) consensus replays a step it had passed;
// refusing is the double-sign protection doing its job, and consensus
// goes on with the signature it gave before: a warning, not an error.
func signRegression(msg string, kv []any) bool {
	if msg != "failed signing vote" && msg != "propose step; failed signing proposal" {
		return false
	}
	for i := 1; i < len(kv); i += 2 {
		if err, ok := kv[i].(error); ok {
			e := err.Error()
			return strings.Contains(e, "height regression") || strings.Contains(e, "round regression") || strings.Contains(e, "step regression")
		}
	}
	return false
}

// shutdownNoise reports whether an error CometBFT logs is only its listeners
// noticing that they were closed on purpose during a clean stop.
func shutdownNoise(msg string, kv []any) bool {
	// BaseService.Stop of a service a stopping node never started.
	if msg == "Stopped accept routine, as transport is closed" || strings.HasPrefix(msg, "Not stopping ") {
		return true
	}
	for i := 1; i < len(kv); i += 2 {
		if err, ok := kv[i].(error); ok && (errors.Is(err, net.ErrClosed) || errors.Is(err, service.ErrAlreadyStopped) || errors.Is(err, service.ErrNotStarted)) {
			return true
		}
	}
	return false
}
func (s slogAdapter) With(kv ...any) cmtlog.Logger {
	return slogAdapter{s.l.With(kv...)}
}

// clientCreator connects CometBFT to app with a lock per connection
// (consensus, mempool, query, snapshot), not one over all four: app takes
// its own locks (its consensus lock, and for queries the committed
// state's), so a query never waits for a block, nor a block for a query.
// With one lock over all, every abci_query from the node's RPC, open to
// anyone, was serialised with FinalizeBlock and Commit, and slow queries
// held block production back.
func clientCreator(app abcitypes.Application) proxy.ClientCreator {
	return proxy.NewConnSyncLocalClientCreator(app)
}
