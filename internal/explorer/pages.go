package explorer

import (
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"slices"
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
		row := receiptRow{ID: ri.ID, Worker: ri.Worker, Model: names(ri.Model), Height: ri.Height}
		if rec, found, err := e.o.Ledger.Receipt(r.Context(), ri.ID); err == nil && found {
			row.Status = rec.Shown()
		}
		p.Recent = append(p.Recent, row)
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
		if m, found, err := e.o.Ledger.Model(r.Context(), id); err == nil && found && m.Name != "" {
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

func (e *Explorer) models(r *http.Request) (string, any, error) {
	vals, err := e.o.Ledger.Validators(r.Context())
	if err != nil {
		return "", nil, nodeError(err)
	}
	power := map[ledger.Address]int64{}
	var total int64
	for _, v := range vals {
		power[v.PubKey] = v.Power
		total += v.Power
	}
	s := e.o.Index.snapshot()
	var rows []modelRow
	for _, id := range s.Models {
		m, found, err := e.o.Ledger.Model(r.Context(), id)
		if err != nil {
			return "", nil, nodeError(err)
		}
		if !found {
			continue
		}
		row := modelRow{ID: id, Name: m.Name, SpecVersion: m.SpecVersion, Active: m.Active, Attesters: len(m.Attesters), Receipts: s.ModelN[id], Held: e.o.Models[id] != nil}
		for _, a := range m.Attesters {
			row.Attested += power[a]
		}
		row.Share = percent(uint64(row.Attested), uint64(total))
		rows = append(rows, row)
	}
	return "Models", struct {
		Models     []modelRow
		TotalPower int64
	}{rows, total}, nil
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

// agentName reads an agent's "name" metadata (ERC-8004 getMetadata), ""
// when it has none. (The registration file at its URI names it too; the
// explorer does not fetch URIs from the ledger.)
func (e *Explorer) agentName(r *http.Request, id uint64) string {
	b, err := e.o.Ledger.Query(r.Context(), fmt.Sprintf("agent/%d/metadata/name", id), nil)
	if err != nil {
		return ""
	}
	var v []byte
	if json.Unmarshal(b, &v) != nil {
		return ""
	}
	return strings.ToValidUTF8(string(v), "\uFFFD")
}

// reputation reads ERC-8004 getSummary and the Validation registry's
// summary of an agent.
func (e *Explorer) reputation(r *http.Request, agent uint64) (rep string, n uint64, val string, err error) {
	rep, val = "none", "none"
	req, _ := json.Marshal(ledger.SummaryRequest{AgentID: agent})
	b, err := e.o.Ledger.Query(r.Context(), "summary", req)
	if err != nil {
		return rep, 0, val, nil // an agent with too many clients to sum: shown as none
	}
	var s ledger.Summary
	if json.Unmarshal(b, &s) == nil && s.Count > 0 {
		rep, n = decimal(string(s.SummaryValue), s.SummaryValueDecimals), s.Count
	}
	vreq, _ := json.Marshal(ledger.ValidationSummaryRequest{AgentID: agent})
	if b, err := e.o.Ledger.Query(r.Context(), "validationSummary", vreq); err == nil {
		var vs ledger.ValidationSummary
		if json.Unmarshal(b, &vs) == nil && vs.Count > 0 {
			val = fmt.Sprintf("%d/100 (%d responses)", vs.AvgResponse, vs.Count)
		}
	}
	return rep, n, val, nil
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

func (e *Explorer) workers(r *http.Request) (string, any, error) {
	height, err := e.o.Ledger.Height(r.Context())
	if err != nil {
		return "", nil, nodeError(err)
	}
	s := e.o.Index.snapshot()
	rows := map[ledger.Address]*workerRow{}
	row := func(a ledger.Address) *workerRow {
		if rows[a] == nil {
			rows[a] = &workerRow{Address: a, Reputation: "none", Validation: "none", Stats: s.Workers[a]}
		}
		return rows[a]
	}
	for a := range s.Workers {
		row(a)
	}
	for _, id := range s.Agents {
		ag, found, err := e.o.Ledger.Agent(r.Context(), id)
		if err != nil {
			return "", nil, nodeError(err)
		}
		if !found {
			continue
		}
		w := row(ag.Owner)
		w.AgentIDs = append(w.AgentIDs, id)
		if w.AgentURI == "" {
			w.AgentURI, w.AgentName = ag.AgentURI, e.agentName(r, id)
			if w.Reputation, w.Feedback, w.Validation, err = e.reputation(r, id); err != nil {
				return "", nil, err
			}
		}
	}
	var out []workerRow
	for _, w := range rows {
		st, err := e.o.Ledger.Stake(r.Context(), w.Address)
		if err != nil {
			return "", nil, nodeError(err)
		}
		w.Stake, w.Jailed = st, uint64(height) < st.JailedUntil
		out = append(out, *w)
	}
	slices.SortFunc(out, func(a, b workerRow) int {
		if a.Stake.Bonded != b.Stake.Bonded {
			if a.Stake.Bonded > b.Stake.Bonded {
				return -1
			}
			return 1
		}
		return slices.Compare(a.Address[:], b.Address[:])
	})
	return "Workers", struct{ Workers []workerRow }{out}, nil
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
	v := disputeView{Dispute: d}
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

type accountPage struct {
	Address   ledger.Address
	Account   ledger.Account
	Stake     ledger.Stake
	Jailed    bool
	Validator *validatorRow
	Agents    []agentView
	Stats     *workerStats
	Receipts  []receiptRow
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
	s := e.o.Index.snapshot()
	for _, id := range s.Agents {
		ag, found, err := e.o.Ledger.Agent(ctx, id)
		if err != nil {
			return "", nil, nodeError(err)
		}
		if found && (ag.Owner == a || ag.AgentWallet == a) {
			p.Agents = append(p.Agents, agentView{Agent: ag, Name: e.agentName(r, id)})
		}
	}
	if ws, ok := s.Workers[a]; ok {
		p.Stats = &ws
	}
	names := e.modelNames(r)
	for _, ri := range e.o.Index.receiptsOf(a, 50) {
		row := receiptRow{ID: ri.ID, Worker: ri.Worker, Model: names(ri.Model), Height: ri.Height}
		if rec, found, err := e.o.Ledger.Receipt(ctx, ri.ID); err == nil && found {
			row.Status = rec.Shown()
		}
		p.Receipts = append(p.Receipts, row)
	}
	known := acct != (ledger.Account{}) || st.Bonded > 0 || len(st.Unbonding) > 0 || st.Final > 0 || st.Slashed > 0 ||
		p.Validator != nil || len(p.Agents) > 0 || p.Stats != nil || len(p.Receipts) > 0
	if !known {
		return "", nil, notFound("The ledger has no account %s: no balance, stake, agent or receipt.", a)
	}
	return "Account " + short(a.String()), p, nil
}
