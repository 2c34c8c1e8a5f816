package explorer

import (
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/verdictnet/verdict/internal/audit"
	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/disputegame"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

// validatorRow is one consensus validator.
type validatorRow struct {
	Address ledger.Address
	Power   int64
	Share   string // of the total power, in percent
}

type overviewPage struct {
	Height       int64
	BlockTime    time.Time
	Interval     string // mean time between the charted blocks
	From         int64
	Validators   []validatorRow
	TotalPower   int64
	Chart        chart
	Receipts     int
	AuditsPassed uint64
	AuditsFailed uint64
	AuditsMissed uint64
	OpenDisputes []disputeRow
	Recent       []receiptRow
}

type disputeRow struct {
	ID, Receipt ledger.Hash
	Worker      ledger.Address
	Height      int64
}

type receiptRow struct {
	ID     ledger.Hash
	Worker ledger.Address
	Model  string
	Height int64
	Status string
}

// chainInfo reads the "chain" query: the last block the state applied.
func (e *Explorer) chainInfo(r *http.Request) (ledger.ChainInfo, error) {
	var ci ledger.ChainInfo
	b, err := e.o.Ledger.Query(r.Context(), "chain", nil)
	if err != nil {
		return ci, nodeError(err)
	}
	if err := json.Unmarshal(b, &ci); err != nil {
		return ci, fmt.Errorf("chain info: %w", err)
	}
	return ci, nil
}

func (e *Explorer) overview(r *http.Request) (string, any, error) {
	ci, err := e.chainInfo(r)
	if err != nil {
		return "", nil, err
	}
	vals, err := e.o.Ledger.Validators(r.Context())
	if err != nil {
		return "", nil, nodeError(err)
	}
	s := e.o.Index.snapshot()
	p := overviewPage{Height: int64(ci.Height), BlockTime: time.Unix(ci.Time, 0).UTC(), From: s.From,
		Receipts: s.Receipts, AuditsPassed: s.AuditsPassed, AuditsFailed: s.AuditsFailed, AuditsMissed: s.AuditsMissed}
	if n := len(s.Blocks); n > 0 && s.Blocks[n-1].Height == p.Height {
		p.BlockTime = s.Blocks[n-1].Time.UTC() // the header's time, finer than the state's seconds
	}
	for _, v := range vals {
		p.TotalPower += v.Power
	}
	for _, v := range vals {
		p.Validators = append(p.Validators, validatorRow{Address: v.PubKey, Power: v.Power, Share: percent(uint64(v.Power), uint64(p.TotalPower))})
	}
	p.Chart = rateChart(s.Blocks)
	if n := len(s.Blocks); n > 1 {
		d := s.Blocks[n-1].Time.Sub(s.Blocks[0].Time) / time.Duration(n-1)
		p.Interval = d.Round(time.Millisecond).String()
	}
	for _, d := range s.OpenDisputes {
		p.OpenDisputes = append(p.OpenDisputes, disputeRow{ID: d.ID, Receipt: d.Receipt, Worker: d.Worker, Height: d.Height})
	}
	names := e.modelNames(r)
	for _, ri := range s.Recent {
		p.Recent = append(p.Recent, receiptRow{ID: ri.ID, Worker: ri.Worker, Model: names(ri.Model), Height: ri.Height,
			Status: e.receiptStatus(r.Context(), ri)})
	}
	return "Overview", p, nil
}

// modelNames returns a lookup of model names (the id, shortened, when the
// model is not registered).
func (e *Explorer) modelNames(r *http.Request) func(ledger.Hash) string {
	names := map[ledger.Hash]string{}
	return func(id ledger.Hash) string {
		if n, ok := names[id]; ok {
			return n
		}
		n := short(id.String())
		if m, found, err := e.model(r.Context(), id); err == nil && found && m.Name != "" {
			n = m.Name
		}
		names[id] = n
		return n
	}
}

func percent(part, total uint64) string {
	if total == 0 {
		return "0%"
	}
	// Integer arithmetic: one decimal, rounded half up.
	t := (part*1000 + total/2) / total
	return fmt.Sprintf("%d.%d%%", t/10, t%10)
}

type modelRow struct {
	ID          ledger.Hash
	Name        string
	SpecVersion uint32
	Active      bool
	Attesters   int
	Attested    int64 // their current voting power
	Share       string
	Receipts    uint64
	Held        bool // this explorer holds the model (decodes its text)
}

// modelsPerPage is the number of rows on a page of the models list.
const modelsPerPage = 100

// modelsPage is one page of the models list, by registration.
type modelsPage struct {
	paging
	Models     []modelRow
	TotalPower int64
}

// models lists the registered models in the order they were registered,
// a page of modelsPerPage at a time (?page=N): registering one costs a
// fee, and a page lists a hundred of them however many there are. The
// list comes from the index; the ledger is asked for the validators and
// the page's model records that changed since they were last read.
func (e *Explorer) models(r *http.Request) (string, any, error) {
	page, err := pageNumber(r)
	if err != nil {
		return "", nil, err
	}
	ids, counts, total := e.o.Index.modelList(page, modelsPerPage)
	p := modelsPage{paging: newPaging("models", "Models", page, total, modelsPerPage)}
	if page > p.Pages {
		return "", nil, notFound("There is no page %d of models: %d pages.", page, p.Pages)
	}
	vals, err := e.o.Ledger.Validators(r.Context())
	if err != nil {
		return "", nil, nodeError(err)
	}
	power := map[ledger.Address]int64{}
	for _, v := range vals {
		power[v.PubKey] = v.Power
		p.TotalPower += v.Power
	}
	for i, id := range ids {
		m, found, err := e.model(r.Context(), id)
		if err != nil {
			return "", nil, nodeError(err)
		}
		if !found {
			continue
		}
		row := modelRow{ID: id, Name: m.Name, SpecVersion: m.SpecVersion, Active: m.Active, Attesters: len(m.Attesters), Receipts: counts[i], Held: e.o.Models[id] != nil}
		for _, a := range m.Attesters {
			row.Attested += power[a]
		}
		row.Share = percent(uint64(row.Attested), uint64(p.TotalPower))
		p.Models = append(p.Models, row)
	}
	return p.title(), p, nil
}

// paging is where a page of a long list stands, for the pager.
type paging struct {
	List  string // the list's path under the prefix: "workers", "models"
	Name  string // its name: "Workers", "Models"
	Total int    // rows on all the pages
	Page  int    // from 1
	Pages int
	First int // the rank of the page's first row, from 1
	Last  int
}

func newPaging(list, name string, page, total, per int) paging {
	p := paging{List: list, Name: name, Total: total, Page: page, Pages: max(1, (total+per-1)/per)}
	if page <= p.Pages {
		p.First, p.Last = (page-1)*per+1, min(page*per, total)
	}
	return p
}

// title is the page's title: the list's name, and the page when there
// are several.
func (p paging) title() string {
	if p.Pages > 1 {
		return fmt.Sprintf("%s, page %d of %d", p.Name, p.Page, p.Pages)
	}
	return p.Name
}

// pageNumber reads ?page=N (default 1); anything but a page number is a
// 404 page.
func pageNumber(r *http.Request) (int, error) {
	v := r.URL.Query().Get("page")
	if v == "" {
		return 1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, notFound("%q is not a page number.", v)
	}
	return n, nil
}

type workerRow struct {
	Address    ledger.Address
	AgentIDs   []uint64
	AgentName  string
	AgentURI   string
	Stake      ledger.Stake
	Jailed     bool
	Reputation string // the mean of its feedback, or "none"
	Feedback   uint64
	Validation string // mean validation response 0..100, or "none"
	Stats      workerStats
}

// decimal writes an integer string with dec decimals ("1234", 2: "12.34").
func decimal(v string, dec uint8) string {
	n, ok := new(big.Int).SetString(v, 10)
	if !ok {
		return v
	}
	neg := n.Sign() < 0
	s := new(big.Int).Abs(n).String()
	if dec > 0 {
		for len(s) <= int(dec) {
			s = "0" + s
		}
		s = s[:len(s)-int(dec)] + "." + s[len(s)-int(dec):]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// workersPerPage is the number of rows on a page of the workers list.
const workersPerPage = 100

// workersPage is one page of the workers list, by stake.
type workersPage struct {
	paging
	Workers []workerRow
}

// workers lists the accounts that published, bonded or own an agent, by
// bonded stake (most first), a page of workersPerPage rows at a time
// (?page=N). The rows, their agents and counts come from the index; the
// ledger is asked for the height, the stakes that changed since they were
// last read (all of them once, on the first drawing), and the names and
// summaries of the page's agents that changed.
func (e *Explorer) workers(r *http.Request) (string, any, error) {
	page, err := pageNumber(r)
	if err != nil {
		return "", nil, err
	}
	ctx := r.Context()
	height, err := e.o.Ledger.Height(ctx)
	if err != nil {
		return "", nil, nodeError(err)
	}
	list := e.o.Index.workerList()
	rows := make([]workerRow, 0, len(list))
	for _, iw := range list {
		st, err := e.stake(ctx, iw.Address, iw.Staked)
		if err != nil {
			return "", nil, nodeError(err)
		}
		rows = append(rows, workerRow{Address: iw.Address, AgentIDs: iw.Agents, Stake: st, Jailed: uint64(height) < st.JailedUntil,
			Reputation: "none", Validation: "none", Stats: iw.Stats})
	}
	slices.SortFunc(rows, func(a, b workerRow) int {
		if a.Stake.Bonded != b.Stake.Bonded {
			if a.Stake.Bonded > b.Stake.Bonded {
				return -1
			}
			return 1
		}
		return slices.Compare(a.Address[:], b.Address[:])
	})
	p := workersPage{paging: newPaging("workers", "Workers", page, len(rows), workersPerPage)}
	if page > p.Pages {
		return "", nil, notFound("There is no page %d of workers: %d pages.", page, p.Pages)
	}
	p.Workers = rows[(page-1)*workersPerPage : min(page*workersPerPage, len(rows))]
	shown := map[ledger.Address]*agentInfo{}
	for _, iw := range list {
		shown[iw.Address] = iw.Shown
	}
	for i := range p.Workers {
		w := &p.Workers[i]
		if ag := shown[w.Address]; ag != nil {
			w.AgentURI, w.AgentName = ag.URI, e.agentName(ctx, *ag)
			rep := e.reputation(ctx, *ag)
			w.Reputation, w.Feedback, w.Validation = rep.Rep, rep.Feedback, rep.Validation
		}
	}
	return p.title(), p, nil
}

// tokenizers builds each held model's tokenizer once.
type tokenizers struct {
	models map[ledger.Hash]*model.Model
	mu     sync.Mutex
	toks   map[ledger.Hash]*tokenizer.Tokenizer
}

func newTokenizers(m map[ledger.Hash]*model.Model) *tokenizers {
	return &tokenizers{models: m, toks: map[ledger.Hash]*tokenizer.Tokenizer{}}
}

func (t *tokenizers) decode(id ledger.Hash, toks []int) (string, bool) {
	t.mu.Lock()
	tk := t.toks[id]
	if tk == nil {
		if m := t.models[id]; m != nil && m.Vocab != nil {
			tk, _ = tokenizer.New(m.Vocab)
			t.toks[id] = tk
		}
	}
	t.mu.Unlock()
	if tk == nil {
		return "", false
	}
	s, err := tk.Decode(toks)
	if err != nil {
		return "", false
	}
	return strings.ToValidUTF8(s, "\uFFFD"), true
}

type receiptPage struct {
	ID        ledger.Hash
	Record    ledger.ReceiptRecord
	Status    string
	ModelName string
	Receipt   *receipt.Receipt
	Requester ledger.Address
	Prompt    string
	Output    string
	Decoded   bool
	Steps     []Step
	Audit     *auditView
	Disputes  []disputeView
	Verify    string
	JSONName  string
	Size      int
}

type auditView struct {
	ledger.Audit
	Cells []string // the audited cells, when the explorer holds the model
}

type disputeView struct {
	ledger.Dispute
	Reason string // why it ended, worded from its fault codes
	Start  uint64
	Rounds []roundView
	Chart  chart
	Cells  int    // cells of the trace tree (the first round's range), 0 before any answer
	Leaf   string // the leaf the traces first differ at, described, when known
}

// roundView is one round of a bisection: the interval both parties
// answered for.
type roundView struct {
	Round      int
	Start, End int
	From       []string // who answered ("worker", "challenger")
	Height     uint64
	Leaf       bool // the last round: the single disputed leaf
}

func (e *Explorer) receipt(r *http.Request) (string, any, error) {
	idText := r.PathValue("id")
	id, err := ledger.ParseHash(idText)
	if err != nil {
		return "", nil, notFound("%q is not a receipt id: %v.", idText, err)
	}
	rec, found, err := e.o.Ledger.Receipt(r.Context(), id)
	if err != nil {
		return "", nil, nodeError(err)
	}
	if !found {
		return "", nil, notFound("The ledger has no receipt %s.", id)
	}
	data, err := e.o.Ledger.ReceiptData(r.Context(), id)
	if err != nil {
		return "", nil, nodeError(err)
	}
	rc, err := receipt.Parse(data)
	if err != nil {
		return "", nil, fmt.Errorf("receipt %s on the ledger: %w", id, err)
	}
	p := receiptPage{ID: id, Record: rec, Status: rec.Shown(), Receipt: rc, ModelName: e.modelNames(r)(rec.ModelID), Size: len(data),
		JSONName: "receipt-" + id.String() + ".json"}
	if info, ok := e.o.Index.receipt(id); ok {
		p.Steps, p.Requester = info.Steps, info.Requester
	}
	if pt, ok := e.toks.decode(rec.ModelID, rc.Prompt); ok {
		p.Prompt, p.Decoded = pt, true
		p.Output, _ = e.toks.decode(rec.ModelID, rc.Output)
	}
	modelPath := "MODEL.gguf"
	m := e.o.Models[rec.ModelID]
	if m != nil && m.Path != "" {
		modelPath = m.Path
	}
	p.Verify = fmt.Sprintf("verdict verify %s --model %s", p.JSONName, shellQuote(modelPath))
	if rec.Audited {
		a, found, err := e.o.Ledger.Audit(r.Context(), id)
		if err != nil {
			return "", nil, nodeError(err)
		}
		if found {
			av := &auditView{Audit: a}
			if m != nil && !a.Seed.IsZero() {
				lay := audit.NewLayout(m.Config, len(rc.Prompt), len(rc.Output))
				for _, c := range lay.Select(id, audit.SeedOf(a.Seed), int(a.Cells)) {
					if cell, err := lay.Cell(c); err == nil {
						if cell.Logits {
							av.Cells = append(av.Cells, fmt.Sprintf("cell %d: the logits of output token %d", c, cell.Layer))
						} else {
							av.Cells = append(av.Cells, fmt.Sprintf("cell %d: layer %d at position %d", c, cell.Layer, cell.P))
						}
					}
				}
			}
			p.Audit = av
		}
	}
	dids := []ledger.Hash{}
	if info, ok := e.o.Index.receipt(id); ok {
		dids = info.Disputes
	}
	if !rec.DisputeID.IsZero() && !slices.Contains(dids, rec.DisputeID) {
		dids = append(dids, rec.DisputeID)
	}
	for _, did := range dids {
		d, found, err := e.o.Ledger.Dispute(r.Context(), did)
		if err != nil {
			return "", nil, nodeError(err)
		}
		if !found {
			continue
		}
		p.Disputes = append(p.Disputes, e.disputeView(d, m, rc))
	}
	return "Receipt " + short(id.String()), p, nil
}

// disputeView reads a dispute's rounds from its stored game.
func (e *Explorer) disputeView(d ledger.Dispute, m *model.Model, rc *receipt.Receipt) disputeView {
	v := disputeView{Dispute: d, Reason: faultWords(d.WorkerFault, d.ChallengerFault, d.VoidFault)}
	start, answers, err := disputegame.Answers(d.Game)
	if err != nil {
		e.log.Warn("explorer: dispute transcript", "dispute", d.DisputeID.String(), "err", err)
		return v
	}
	v.Start = start
	for _, a := range answers {
		msg := a.Msg
		n := len(v.Rounds)
		if n == 0 || v.Rounds[n-1].Round != msg.Round {
			v.Rounds = append(v.Rounds, roundView{Round: msg.Round, Start: msg.Start, End: msg.End, Height: a.Height, Leaf: msg.Kind == dispute.LeafValues})
			n++
		}
		v.Rounds[n-1].From = append(v.Rounds[n-1].From, a.From.String())
	}
	if len(v.Rounds) > 0 {
		v.Cells = v.Rounds[0].End
		v.Chart = roundsChart(v.Rounds, v.Cells)
		if last := v.Rounds[len(v.Rounds)-1]; last.Leaf && m != nil {
			lay := audit.NewLayout(m.Config, len(rc.Prompt), len(rc.Output))
			if last.Start < lay.Leaves() {
				kind, layer, h, pos := lay.Leaf(last.Start)
				what := map[byte]string{'x': "hidden state", 'k': "keys and values", 'a': "attention output"}[kind]
				v.Leaf = fmt.Sprintf("leaf %d: the %s of layer %d, head %d, position %d", last.Start, what, layer, h, pos)
			}
		}
	}
	return v
}

// shellQuote quotes a path for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./~+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// receiptJSON serves a receipt's canonical bytes as a download, the file
// `verdict verify` reads.
func (e *Explorer) receiptJSON(w http.ResponseWriter, r *http.Request) {
	idText := r.PathValue("id")
	id, err := ledger.ParseHash(idText)
	if err != nil {
		e.fail(w, r, notFound("%q is not a receipt id: %v.", idText, err))
		return
	}
	release, ok := e.enter(w, r)
	if !ok {
		return
	}
	defer release()
	_, found, err := e.o.Ledger.Receipt(r.Context(), id)
	if err != nil {
		e.fail(w, r, nodeError(err))
		return
	}
	if !found {
		e.fail(w, r, notFound("The ledger has no receipt %s.", id))
		return
	}
	data, err := e.o.Ledger.ReceiptData(r.Context(), id)
	if err != nil {
		e.fail(w, r, nodeError(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", `attachment; filename="receipt-`+id.String()+`.json"`)
	w.Write(data)
}

type agentView struct {
	ledger.Agent
	Name string
}

// accountAgents is the number of an account's agents its page lists.
const accountAgents = 100

type accountPage struct {
	Address    ledger.Address
	Account    ledger.Account
	Stake      ledger.Stake
	Jailed     bool
	Validator  *validatorRow
	Agents     []agentView
	MoreAgents int // agents of the account not listed
	Stats      *workerStats
	Receipts   []receiptRow
}

func (e *Explorer) account(r *http.Request) (string, any, error) {
	text := r.PathValue("addr")
	a, err := ledger.ParseAddress(text)
	if err != nil {
		return "", nil, notFound("%q is not an account: %v.", text, err)
	}
	ctx := r.Context()
	acct, err := e.o.Ledger.Account(ctx, a)
	if err != nil {
		return "", nil, nodeError(err)
	}
	st, err := e.o.Ledger.Stake(ctx, a)
	if err != nil {
		return "", nil, nodeError(err)
	}
	height, err := e.o.Ledger.Height(ctx)
	if err != nil {
		return "", nil, nodeError(err)
	}
	p := accountPage{Address: a, Account: acct, Stake: st, Jailed: uint64(height) < st.JailedUntil}
	vals, err := e.o.Ledger.Validators(ctx)
	if err != nil {
		return "", nil, nodeError(err)
	}
	var total int64
	for _, v := range vals {
		total += v.Power
	}
	for _, v := range vals {
		if v.PubKey == a {
			p.Validator = &validatorRow{Address: a, Power: v.Power, Share: percent(uint64(v.Power), uint64(total))}
		}
	}
	// The account's agents are looked up in the index, in memory: an
	// unknown account costs no query per agent registered.
	ags, owned := e.o.Index.agentsOf(a, accountAgents)
	for _, ag := range ags {
		p.Agents = append(p.Agents, agentView{Agent: ledger.Agent{AgentID: ag.ID, Owner: ag.Owner, AgentURI: ag.URI, AgentWallet: ag.Wallet},
			Name: e.agentName(ctx, ag)})
	}
	p.MoreAgents = owned - len(ags)
	if ws, ok := e.o.Index.workerStat(a); ok {
		p.Stats = &ws
	}
	names := e.modelNames(r)
	for _, ri := range e.o.Index.receiptsOf(a, 50) {
		p.Receipts = append(p.Receipts, receiptRow{ID: ri.ID, Worker: ri.Worker, Model: names(ri.Model), Height: ri.Height,
			Status: e.receiptStatus(ctx, ri)})
	}
	known := acct != (ledger.Account{}) || st.Bonded > 0 || len(st.Unbonding) > 0 || st.Final > 0 || st.Slashed > 0 ||
		p.Validator != nil || len(p.Agents) > 0 || p.Stats != nil || len(p.Receipts) > 0
	if !known {
		return "", nil, notFound("The ledger has no account %s: no balance, stake, agent or receipt.", a)
	}
	return "Account " + short(a.String()), p, nil
}
