package multigw

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/verdictnet/verdict/internal/gateway"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/client"
)

// Agent metadata keys a worker sets on the ledger (`verdict worker` does).
const (
	MetaRole  = "verdict.role"  // "worker"
	MetaModel = "verdict.model" // the model id served, 64 hex digits
	MetaPrice = "verdict.price" // price per token, decimal
	// RoleWorker is MetaRole's value for a worker.
	RoleWorker = "worker"
)

// Ledger is what the gateway reads from, and signs against, a ledger node
// (client.Client has it).
type Ledger interface {
	Chain(ctx context.Context) (ledger.ChainInfo, error)
	Params(ctx context.Context) (ledger.Params, error)
	Agent(ctx context.Context, id uint64) (ledger.Agent, bool, error)
	Model(ctx context.Context, id ledger.Hash) (ledger.Model, bool, error)
	Stake(ctx context.Context, a ledger.Address) (ledger.Stake, error)
	Query(ctx context.Context, path string, data []byte) ([]byte, error)
	Sign(ctx context.Context, key ed25519.PrivateKey, m ledger.Msg, fee uint64, nonce int64) (*ledger.Tx, error)
	// BroadcastCommit submits a signed transaction and returns once it is
	// in a block (a payer's nonce burned before a failover).
	BroadcastCommit(ctx context.Context, tx *ledger.Tx) (client.Result, error)
	Receipt(ctx context.Context, id ledger.Hash) (ledger.ReceiptRecord, bool, error)
	ReceiptData(ctx context.Context, id ledger.Hash) ([]byte, error)
}

var _ Ledger = (*client.Client)(nil)

// Worker is a worker as discovered: its agent, the model it serves, its
// price, where its API is and what the ledger says of it.
type Worker struct {
	AgentID   uint64
	Address   ledger.Address
	Name      string
	Endpoint  string // the OpenAI-compatible API's base, .../v1
	ModelID   ledger.Hash
	ModelName string // as registered on the ledger
	// ModelHeight is the height the model was registered at: of two
	// models under one name (a ledger from before names were unique),
	// the name is the first's.
	ModelHeight uint64
	Price       uint64
	Stake       uint64
	Final       uint64
	Slashed     uint64
	Jailed      bool
}

// Candidate is the worker as gateway.Rank scores it.
func (w Worker) Candidate() gateway.Candidate {
	return gateway.Candidate{Address: w.Address, Price: w.Price, Stake: w.Stake, Final: w.Final, Slashed: w.Slashed, Jailed: w.Jailed}
}

// Score is gateway.Candidate.Score.
func (w Worker) Score() float64 { return w.Candidate().Score() }

// Discovery finds the workers on the ledger.
type Discovery struct {
	Ledger Ledger
	// Net is where registration files may be fetched from (the zero
	// value: public addresses only) and, at discovery, which endpoints a
	// worker may give (an endpoint at an IP address Net refuses leaves the
	// worker out).
	Net NetPolicy
	// HTTP fetches registration files (default: Net's client: at most
	// MaxRegistrationRedirects redirects, each checked, within
	// RegistrationTimeout). A client given here is used as it is: Net
	// does not apply to it.
	HTTP *http.Client
	// MaxAgents bounds the agent ids read from the ledger per Discover
	// (default DefaultMaxAgents). A ledger with more agents is read
	// across rounds, each going on from the id where the last stopped
	// and wrapping round to 1, so that every agent is read again every
	// ceil(agents / MaxAgents) rounds; the workers found are kept in the
	// pool between their reads.
	MaxAgents uint64
	// Within bounds the registration fetches of one Discover (default
	// DiscoverWithin).
	Within time.Duration
	// Keep is how long an accepted registration file is used without a
	// fetch (default RegistrationKeep); a change of the agent's agentURI
	// on the ledger ends it at once.
	Keep   time.Duration
	Logger *slog.Logger

	mu      sync.Mutex
	skipped map[uint64]string // agent id -> the reason last logged
	hc      *http.Client      // the default HTTP, made once
	// retry holds, for each agent whose registration file could not be
	// had, when to fetch it again (see FetchBackoff).
	retry map[uint64]backoff
	// served holds the agents whose last registration file was accepted.
	served map[uint64]bool
	// kept holds each accepted registration file, by agent, until Keep
	// has passed since its fetch.
	kept map[uint64]keptRegistration
	now  func() time.Time // time.Now; tests set it

	// round serializes Discover, which alone uses cursor and listed.
	round sync.Mutex
	// cursor is the agent id the next Discover reads first.
	cursor uint64
	// listed holds, by agent id, the agents found to be workers (role,
	// model and price) at their last read.
	listed map[uint64]listing
}

// listing is an agent the ledger lists as a worker: its agent, the
// model it advertises (by id, name and registration height) and its
// price.
type listing struct {
	id    uint64
	agent ledger.Agent
	model ledger.Hash
	name  string
	mh    uint64 // the model's registration height
	price uint64
}

// keptRegistration is an accepted registration file: the agentURI and
// chain it was fetched for, and when.
type keptRegistration struct {
	uri, chain string
	reg        Registration
	at         time.Time
}

// RegistrationKeep is Discovery.Keep's default. Fetching every accepted
// file at every refresh let agents whose files are accepted but answer
// slowly fill every round's DiscoverWithin, fetched first each time, so
// that a new worker was never reached; kept, they cost one fetch per
// RegistrationKeep.
const RegistrationKeep = 5 * time.Minute

// keptFor returns agent id's kept registration file when it was fetched
// from uri on chain less than Keep before t.
func (d *Discovery) keptFor(id uint64, uri, chain string, t time.Time) (Registration, bool) {
	keep := d.Keep
	if keep <= 0 {
		keep = RegistrationKeep
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	k, ok := d.kept[id]
	if !ok || k.uri != uri || k.chain != chain || !t.Before(k.at.Add(keep)) {
		return Registration{}, false
	}
	return k.reg, true
}

// keep records agent id's accepted registration file, fetched at t.
func (d *Discovery) keep(id uint64, k keptRegistration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.kept == nil {
		d.kept = map[uint64]keptRegistration{}
	}
	d.kept[id] = k
}

// backoff is when an agent's registration file is fetched again, and how
// many fetches of it failed in a row.
type backoff struct {
	at    time.Time
	fails int
}

// An agent whose registration file could not be fetched or was refused
// is left out, without a fetch, for FetchBackoff, then twice as long after
// each failure in a row, up to MaxFetchBackoff: agents whose files answer
// slowly or never cost the gateway one fetch each per backoff, not one
// per refresh. A worker whose file is fetched again is back at once.
const (
	FetchBackoff    = 2 * time.Second
	MaxFetchBackoff = time.Minute
)

func (d *Discovery) clock() time.Time {
	if d.now != nil {
		return d.now()
	}
	return time.Now()
}

// waiting reports whether agent id's registration file is not to be
// fetched at t.
func (d *Discovery) waiting(id uint64, t time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.retry[id]
	return ok && t.Before(b.at)
}

// fetched records the outcome of a fetch of agent id's registration file
// made at t.
func (d *Discovery) fetched(id uint64, t time.Time, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil {
		delete(d.retry, id)
		if d.served == nil {
			d.served = map[uint64]bool{}
		}
		d.served[id] = true
		return
	}
	delete(d.served, id)
	delete(d.kept, id)
	if d.retry == nil {
		d.retry = map[uint64]backoff{}
	}
	b := d.retry[id]
	b.fails++
	wait := MaxFetchBackoff
	if b.fails <= 6 { // 2 s << 5 = 64 s: the cap from the sixth failure on
		wait = min(FetchBackoff<<(b.fails-1), MaxFetchBackoff)
	}
	b.at = t.Add(wait)
	d.retry[id] = b
}

// DefaultMaxAgents is Discovery.MaxAgents's default. It bounds the
// ledger queries of one round (a few per agent), not the agents read:
// reading agents 1 to 4096 only, every round, let anyone who registered
// that many empty agents (cheap) hide every later worker from every
// gateway.
const DefaultMaxAgents = 4096

func (d *Discovery) log() *slog.Logger {
	if d.Logger == nil {
		return slog.Default()
	}
	return d.Logger
}

// skip logs that agent id is left out, once per reason.
func (d *Discovery) skip(id uint64, reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.skipped == nil {
		d.skipped = map[uint64]string{}
	}
	if d.skipped[id] == reason {
		return
	}
	d.skipped[id] = reason
	d.log().Warn("worker skipped", "agent", id, "reason", reason)
}

func (d *Discovery) ok(id uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, was := d.skipped[id]; was {
		delete(d.skipped, id)
		d.log().Info("worker back in the pool", "agent", id)
	}
}

// client returns HTTP, or Net's registration client.
func (d *Discovery) client() *http.Client {
	if d.HTTP != nil {
		return d.HTTP
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.hc == nil {
		d.hc = d.Net.registrationClient()
	}
	return d.hc
}

// checkEndpoint refuses an endpoint whose host is an IP address Net does
// not allow (a name is checked when the gateway connects to it).
func (d *Discovery) checkEndpoint(ep string) error {
	u, err := url.Parse(ep)
	if err != nil {
		return err
	}
	return d.Net.checkHost(u)
}

// meta reads an agent's metadata value (nil when unset).
func meta(ctx context.Context, l Ledger, id uint64, key string) ([]byte, error) {
	b, err := l.Query(ctx, fmt.Sprintf("agent/%d/metadata/%s", id, key), nil)
	if err != nil {
		var qe *client.QueryError
		if errors.As(err, &qe) && qe.Code == ledger.Code(ledger.ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	var v []byte
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("metadata %s: %w", key, err)
	}
	return v, nil
}

// DiscoverFetches is how many registration files Discover fetches at once:
// an agent whose agentURI answers slowly (or never, until
// RegistrationTimeout) holds up only its own fetch, so that a few such
// agents cannot keep the gateway from finding the workers listed after
// them.
const DiscoverFetches = 16

// DiscoverWithin is how long the registration fetches of one Discover may
// take (Discovery.Within): fetches still running then are cancelled and
// count as failed (FetchBackoff), agents not reached are left out of this
// round. The fetches go in this order: the agents whose last file was
// accepted, then those never fetched, then those whose last fetch failed
// (by agent id within each), so that agents whose files never answer can
// neither keep a gateway from starting nor push known workers out of its
// pool, and a new worker listed after many of them is reached within a few
// rounds as they go into their backoffs.
const DiscoverWithin = 15 * time.Second

// errRound is the error of a fetch cut by the end of its round.
var errRound = errors.New("not fetched within the discovery round")

// fetchRank is the order in which Discover fetches agent id's file: 0 for
// an agent whose last file was accepted, 1 never fetched, 2 failed.
func (d *Discovery) fetchRank(id uint64) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch _, failed := d.retry[id]; {
	case d.served[id]:
		return 0
	case !failed:
		return 1
	}
	return 2
}

// Discover returns every worker the ledger lists that advertises a model
// and a price and serves a registration file the gateway accepts, jailed
// or not (Rank leaves the jailed out), in agent id order. It reads up to
// MaxAgents agents from the ledger, from where the last Discover stopped
// (the workers read in earlier rounds are kept), then fetches the
// registration files, DiscoverFetches at a time, but those of agents in a
// FetchBackoff. An agent the ledger could not be asked about is skipped
// (its last listing kept) with a log line; an error means the ledger
// could not be read at all.
func (d *Discovery) Discover(ctx context.Context) ([]Worker, error) {
	d.round.Lock()
	defer d.round.Unlock()
	ch, err := d.Ledger.Chain(ctx)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	d.scan(ctx, ch.NextAgent)
	type listed struct {
		listing
		reg  Registration
		err  error
		kept bool // reg was kept, not fetched
	}
	var cands []listed
	start := d.clock()
	for _, l := range d.listed {
		if d.waiting(l.id, start) {
			continue // its last fetch failed: left out until its backoff ends
		}
		c := listed{listing: l}
		c.reg, c.kept = d.keptFor(l.id, l.agent.AgentURI, ch.ChainID, start)
		cands = append(cands, c)
	}
	slices.SortFunc(cands, func(a, b listed) int { return cmp.Compare(a.id, b.id) })
	// Their registration files, several at a time, within the round.
	hc := d.client()
	within := d.Within
	if within <= 0 {
		within = DiscoverWithin
	}
	fctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	order := make([]int, len(cands))
	ranks := make([]int, len(cands))
	for i := range cands {
		order[i], ranks[i] = i, d.fetchRank(cands[i].id)
	}
	slices.SortStableFunc(order, func(a, b int) int { return ranks[a] - ranks[b] })
	sem := make(chan struct{}, DiscoverFetches)
	var wg sync.WaitGroup
	for _, i := range order {
		c := &cands[i]
		if c.kept {
			continue
		}
		placed := false
		select {
		case sem <- struct{}{}:
			placed = true
		case <-fctx.Done():
		}
		// Both cases are ready once a fetch cut by the round's end gives
		// up its place, and select takes either: the round's end decides.
		if fctx.Err() != nil {
			if placed {
				<-sem
			}
			c.err = errRound // not reached: left out, not backed off
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c.reg, c.err = fetchRegistration(fctx, hc, c.agent.AgentURI, ch.ChainID, c.id)
			if c.err != nil && fctx.Err() != nil {
				c.err = fmt.Errorf("%w (%v): %w", errRound, within, c.err)
			}
			if ctx.Err() == nil {
				d.fetched(c.id, start, c.err)
				if c.err == nil && d.checkEndpoint(c.reg.Endpoint) == nil {
					d.keep(c.id, keptRegistration{uri: c.agent.AgentURI, chain: ch.ChainID, reg: c.reg, at: start})
				}
			}
		}()
	}
	wg.Wait()
	var out []Worker
	for _, c := range cands {
		if c.err != nil {
			d.skip(c.id, fmt.Sprintf("agentURI %q: %v", trunc(c.agent.AgentURI, 120), c.err))
			continue
		}
		if err := d.checkEndpoint(c.reg.Endpoint); err != nil {
			d.fetched(c.id, start, err)
			d.skip(c.id, fmt.Sprintf("%s endpoint %q: %v", gateway.ServiceOpenAI, trunc(c.reg.Endpoint, 120), err))
			continue
		}
		st, err := d.Ledger.Stake(ctx, c.agent.Owner)
		if err != nil {
			d.skip(c.id, fmt.Sprintf("reading the stake of %s: %v", c.agent.Owner, err))
			continue
		}
		d.ok(c.id)
		out = append(out, Worker{AgentID: c.id, Address: c.agent.Owner, Name: c.reg.Name, Endpoint: c.reg.Endpoint, ModelID: c.model, ModelName: c.name, ModelHeight: c.mh,
			Price: c.price, Stake: st.Bonded, Final: st.Final, Slashed: st.Slashed, Jailed: ch.Height < st.JailedUntil})
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("discovery: %w", ctx.Err())
	}
	return out, nil
}

// scan reads up to MaxAgents agents from the ledger, going on from the
// cursor and wrapping round past the last agent (next - 1), and updates
// listed: an agent that is a worker is listed, one that is not (or no
// longer) is dropped, and one the ledger could not be asked about keeps
// its last listing and is logged.
func (d *Discovery) scan(ctx context.Context, next uint64) {
	if next <= 1 {
		return
	}
	n := d.MaxAgents
	if n == 0 {
		n = DefaultMaxAgents
	}
	n = min(n, next-1)
	if d.listed == nil {
		d.listed = map[uint64]listing{}
	}
	models := map[ledger.Hash]ledger.Model{} // this round's, by id
	id := d.cursor
	for range n {
		if id < 1 || id >= next {
			id = 1
		}
		l, ok, err := d.read(ctx, id, models)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			d.skip(id, fmt.Sprintf("reading it from the ledger: %v", err))
		case ok:
			d.listed[id] = l
		default:
			delete(d.listed, id)
		}
		id++
	}
	d.cursor = id
}

// read reads agent id from the ledger: its listing, and whether it is a
// worker that advertises a model (registered and active) and a price.
// An agent that is not is logged (but one that is not a worker at all).
// models caches the models read.
func (d *Discovery) read(ctx context.Context, id uint64, models map[ledger.Hash]ledger.Model) (listing, bool, error) {
	a, found, err := d.Ledger.Agent(ctx, id)
	if err != nil || !found {
		return listing{}, false, err
	}
	role, err := meta(ctx, d.Ledger, id, MetaRole)
	if err != nil || string(role) != RoleWorker {
		return listing{}, false, err
	}
	mb, err1 := meta(ctx, d.Ledger, id, MetaModel)
	pb, err2 := meta(ctx, d.Ledger, id, MetaPrice)
	if err := errors.Join(err1, err2); err != nil {
		return listing{}, false, err
	}
	if mb == nil || pb == nil {
		d.skip(id, "it advertises no model or no price (metadata "+MetaModel+", "+MetaPrice+")")
		return listing{}, false, nil
	}
	mid, err := ledger.ParseHash(string(mb))
	if err != nil {
		d.skip(id, fmt.Sprintf("metadata %s: %v", MetaModel, err))
		return listing{}, false, nil
	}
	price, err := strconv.ParseUint(string(pb), 10, 64)
	if err != nil || price == 0 {
		d.skip(id, fmt.Sprintf("metadata %s %q: want a positive decimal integer", MetaPrice, trunc(string(pb), 40)))
		return listing{}, false, nil
	}
	m, ok := models[mid]
	if !ok {
		var found bool
		if m, found, err = d.Ledger.Model(ctx, mid); err != nil {
			return listing{}, false, fmt.Errorf("model %s: %w", mid, err)
		}
		if !found {
			m = ledger.Model{} // not registered: not active
		}
		models[mid] = m
	}
	if !m.Active {
		d.skip(id, fmt.Sprintf("model %s is not registered and active", mid))
		return listing{}, false, nil
	}
	return listing{id: id, agent: a, model: mid, name: m.Name, mh: m.Height, price: price}, true, nil
}
