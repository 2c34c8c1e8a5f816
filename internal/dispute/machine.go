package dispute

import (
	"errors"
	"fmt"

	"github.com/verdictnet/verdict/internal/merkle"
)

// Referee recomputes one cell. Inputs lists the leaves (all before cell,
// ascending) whose values the recomputation reads; both parties' trees agree
// on every leaf before the disputed one, so either party's proven opening of
// them will do. Recompute returns the value leaf cell must hold.
type Referee interface {
	Inputs(cell int) []int
	Recompute(cell int, inputs [][]byte) (output []byte, err error)
}

// Folder is implemented by a Referee that can recompute some leaves from
// their inputs read in parts, keeping a small state between parts, for a
// leaf whose inputs would not fit in one answer (docs/protocol.md 8). The
// game then asks for the inputs part by part, one round each: part k of a
// pass is Inputs(d)[k*size : (k+1)*size] (the last part shorter), and
// every pass reads all parts in order.
type Folder interface {
	// Parts returns how leaf d's inputs are read: passes over them, in
	// parts of at most size leaves. passes 0, or a single part, means at
	// once, through Recompute.
	Parts(d int) (passes, size int)
	// Fold folds the values of part k of pass (the inputs it covers, in
	// order) into state (nil before the first part) and returns the new
	// state.
	Fold(d, pass, part int, values [][]byte, state []byte) ([]byte, error)
	// Finish returns the value leaf d must hold from the state after the
	// last part of the last pass.
	Finish(d int, state []byte) ([]byte, error)
}

// Config describes a dispute.
type Config struct {
	Cells   int            // N, the number of leaves of both trees
	Roots   [2]merkle.Hash // the roots A and B committed to
	Timeout uint64         // heights a party has to answer each query
	// Forfeit decides the game at once: a party with a loss here (a
	// party Fault) has committed to something no computation can produce
	// (for a receipt: more positions than the model's context, a token
	// outside its vocabulary) and loses with no query. Cells, Roots and
	// the referee are then not used.
	Forfeit [2]Loss
}

// Outcome is the result of a dispute.
type Outcome struct {
	Done bool
	// Lost says which parties lost, Fault why (the code, consensus
	// data) and Reason the same in words (for people: logs and events).
	Lost   [2]bool
	Fault  [2]Fault
	Reason [2]string
	// Cell is the first cell where the traces differ, once known; -1 before.
	Cell int
	// Err is set when the referee could not recompute the cell; nobody
	// loses, and Void is FaultRefereeFailed.
	Err  error
	Void Fault
}

// ErrIgnored is returned (wrapped) by Step for a message that does not
// answer the current query (stale, early, wrong kind or range); it changes
// nothing.
var ErrIgnored = errors.New("message ignored")

// Machine is the referee's state.
type Machine struct {
	cfg     Config
	ref     Referee
	now     uint64
	round   int
	query   Message        // the outstanding query
	node    [2]merkle.Hash // each party's hash of the current node
	start   int
	end     int
	answers [2]map[int]*Message // by round
	got     [2]*Message         // answers to the current round
	out     Outcome
	work    int // referee recomputations
	// Reading the inputs of the disputed leaf in parts (Folder): its
	// inputs, the passes and part size, the part asked for, the state.
	ins          []int
	passes, size int
	pass, part   int
	fold         []byte
	partsRead    int
}

// New starts a dispute at the given height and returns the first queries
// (none when the game is decided without one).
func New(cfg Config, ref Referee, height uint64) (*Machine, []Message, error) {
	for _, p := range []Party{A, B} {
		if f := cfg.Forfeit[p]; (f.Fault != "" || f.Why != "") && !f.Fault.IsParty() {
			return nil, nil, fmt.Errorf("dispute: party %s forfeits with %q, not a party fault", p, f.Fault)
		}
	}
	if cfg.Forfeit[A].Fault != "" || cfg.Forfeit[B].Fault != "" {
		m := &Machine{cfg: cfg, now: height}
		m.out.Cell = -1
		for _, p := range []Party{A, B} {
			if f := cfg.Forfeit[p]; f.Fault != "" {
				m.lose(p, f.Fault, f.Why)
			}
		}
		return m, nil, nil
	}
	if cfg.Cells < 1 || cfg.Cells > 1<<40 {
		return nil, nil, fmt.Errorf("dispute: %d cells", cfg.Cells)
	}
	if cfg.Roots[A] == cfg.Roots[B] {
		return nil, nil, fmt.Errorf("dispute: both parties committed to root %s; nothing to dispute", cfg.Roots[A])
	}
	if cfg.Timeout == 0 {
		return nil, nil, fmt.Errorf("dispute: zero timeout")
	}
	if ref == nil {
		return nil, nil, fmt.Errorf("dispute: no referee")
	}
	m := &Machine{cfg: cfg, ref: ref, now: height, node: cfg.Roots, start: 0, end: cfg.Cells}
	m.out.Cell = -1
	m.answers = [2]map[int]*Message{{}, {}}
	return m, m.next(), nil
}

// Outcome returns the current outcome.
func (m *Machine) Outcome() Outcome { return m.out }

// Rounds is the number of queries issued so far.
func (m *Machine) Rounds() int { return m.round }

// RefereeWork is the number of cells the referee recomputed (0 or 1).
func (m *Machine) RefereeWork() int { return m.work }

// Query returns the outstanding query; ok is false when the game is over.
func (m *Machine) Query() (q Message, ok bool) { return m.query, !m.out.Done }

// next issues the query for the current node, or concludes at a leaf.
func (m *Machine) next() []Message {
	m.got = [2]*Message{}
	if m.end-m.start > 1 {
		return m.issue(Message{Kind: OpenNode, Start: m.start, End: m.end})
	}
	// At leaf d: the traces agree before it and differ at it.
	d := m.start
	m.out.Cell = d
	ins := m.ref.Inputs(d)
	for i, l := range ins {
		if l < 0 || l >= d || (i > 0 && l <= ins[i-1]) || len(ins) > MaxLeaves {
			m.fail(fmt.Errorf("dispute: referee asks for leaves that are not ascending and before %d", d))
			return nil
		}
	}
	if len(ins) == 0 {
		m.judge(nil)
		return nil
	}
	if f, ok := m.ref.(Folder); ok {
		if passes, size := f.Parts(d); passes > 0 && size > 0 && size < len(ins) {
			m.ins, m.passes, m.size = ins, passes, size
			return m.issuePart()
		}
	}
	return m.issue(Message{Kind: OpenLeaves, Start: d, End: d + 1, Leaves: append([]int(nil), ins...)})
}

// issuePart asks for the current part of the disputed leaf's inputs.
func (m *Machine) issuePart() []Message {
	m.got = [2]*Message{}
	lo := m.part * m.size
	hi := min(lo+m.size, len(m.ins))
	d := m.out.Cell
	return m.issue(Message{Kind: OpenLeaves, Start: d, End: d + 1, Leaves: append([]int(nil), m.ins[lo:hi]...)})
}

// InParts reports whether the game is reading the disputed leaf's inputs
// in parts (the outstanding query asks for one part).
func (m *Machine) InParts() bool { return m.passes > 0 && !m.out.Done }

// PartsRead is the number of parts of the disputed leaf's inputs taken so
// far (each one answer).
func (m *Machine) PartsRead() int { return m.partsRead }

// PartState returns the referee's state after the parts read so far (nil
// before the first).
func (m *Machine) PartState() []byte { return m.fold }

// advancePart takes state as the state after the current part and asks
// for the next one, or finishes the leaf after the last.
func (m *Machine) advancePart(state []byte) []Message {
	m.fold = state
	m.partsRead++
	m.part++
	if m.part*m.size >= len(m.ins) {
		m.part = 0
		m.pass++
	}
	if m.pass < m.passes {
		return m.issuePart()
	}
	d := m.out.Cell
	m.work++
	out, err := m.ref.(Folder).Finish(d, m.fold)
	m.decide(out, err)
	return nil
}

// SkipPart replays a part's answer accepted earlier (its proof checked and
// its values folded when it was first delivered) from the state it left,
// without its values: a stored game keeps the state instead of the
// values. from answered the part asked for in round.
func (m *Machine) SkipPart(from Party, round int, state []byte) ([]Message, error) {
	if !m.InParts() || round != m.query.Round || (from != A && from != B) {
		return nil, fmt.Errorf("dispute: %w: no part is asked for in round %d", ErrIgnored, round)
	}
	return m.advancePart(state), nil
}

func (m *Machine) issue(q Message) []Message {
	m.round++
	q.Round = m.round
	q.Deadline = m.now + m.cfg.Timeout
	m.query = q
	return []Message{q}
}

func (m *Machine) lose(p Party, f Fault, why string) {
	m.out.Lost[p] = true
	m.out.Fault[p] = f
	m.out.Reason[p] = why
	m.out.Done = true
}

// fail ends the game with no loser: the referee could not go on.
func (m *Machine) fail(err error) {
	m.out.Done = true
	m.out.Err = err
	m.out.Void = FaultRefereeFailed
}

// judge recomputes cell d from the agreed leaves before it.
func (m *Machine) judge(inputs [][]byte) {
	m.work++
	out, err := m.ref.Recompute(m.out.Cell, inputs)
	m.decide(out, err)
}

// decide ends the game on the referee's value out of the disputed leaf.
func (m *Machine) decide(out []byte, err error) {
	d := m.out.Cell
	m.out.Done = true
	if err != nil {
		m.fail(fmt.Errorf("dispute: referee could not recompute cell %d: %w", d, err))
		return
	}
	h := merkle.LeafHash(out)
	for _, p := range []Party{A, B} {
		if m.node[p] != h {
			m.lose(p, FaultStateMismatch, fmt.Sprintf("committed a state after cell %d that differs from the referee's recomputation", d))
		}
	}
}

// Step delivers a party's message. It returns the next queries. A message
// that does not answer the current query returns ErrIgnored, except that a
// second, different answer to any query loses the game (equivocation).
func (m *Machine) Step(msg Message) ([]Message, error) {
	if err := msg.check(); err != nil {
		return nil, fmt.Errorf("dispute: %w: %w", ErrIgnored, err)
	}
	if msg.Kind != Node && msg.Kind != LeafValues {
		return nil, fmt.Errorf("dispute: %w: %s is not an answer", ErrIgnored, msg.Kind)
	}
	if m.out.Done {
		return nil, fmt.Errorf("dispute: %w: the game is over", ErrIgnored)
	}
	p := msg.From
	if prev, ok := m.answers[p][msg.Round]; ok {
		if equal(prev, &msg) {
			return nil, fmt.Errorf("dispute: %w: duplicate answer from %s", ErrIgnored, p)
		}
		m.lose(p, FaultEquivocated, fmt.Sprintf("equivocated: two different answers in round %d", msg.Round))
		return nil, nil
	}
	if m.InParts() {
		return m.stepPart(msg)
	}
	q := m.query
	if msg.Round != q.Round || msg.Start != q.Start || msg.End != q.End || (msg.Kind == Node) != (q.Kind == OpenNode) || !sameInts(msg.Leaves, q.Leaves) {
		return nil, fmt.Errorf("dispute: %w: %s from %s does not answer round %d", ErrIgnored, msg.Kind, p, q.Round)
	}
	cp := msg
	m.answers[p][msg.Round] = &cp
	if msg.Kind == Node {
		if merkle.NodeHash(msg.Left, msg.Right) != m.node[p] {
			m.lose(p, FaultBadChildren, fmt.Sprintf("opened children of node [%d,%d) that do not hash to its committed node", q.Start, q.End))
			return nil, nil
		}
		m.got[p] = &cp
		if m.got[A] == nil || m.got[B] == nil {
			return nil, nil
		}
		k := merkle.SplitPoint(m.end - m.start)
		a, b := m.got[A], m.got[B]
		if a.Left != b.Left {
			m.end = m.start + k
			m.node = [2]merkle.Hash{a.Left, b.Left}
		} else {
			// Equal left halves: the right halves must differ, since the
			// parents did.
			m.start += k
			m.node = [2]merkle.Hash{a.Right, b.Right}
		}
		return m.next(), nil
	}
	// Leaf values: any valid opening of the agreed leaves will do.
	hs := make([]merkle.Hash, len(msg.Values))
	for i, v := range msg.Values {
		hs[i] = merkle.LeafHash(v)
	}
	if err := merkle.VerifyMulti(m.cfg.Roots[p], m.cfg.Cells, msg.Leaves, hs, msg.Proof); err != nil {
		m.lose(p, FaultBadLeafProof, fmt.Sprintf("opened the inputs of leaf %d with an invalid proof", msg.Start))
		return nil, nil
	}
	m.judge(msg.Values)
	return nil, nil
}

// stepPart takes an answer to a part of the disputed leaf's inputs: the
// first valid one (from either party: both trees agree on these leaves)
// is folded and the next part asked for; an answer with an invalid proof
// loses. Parts are not kept for equivocation: a valid answer can only
// hold the committed values.
func (m *Machine) stepPart(msg Message) ([]Message, error) {
	q, p := m.query, msg.From
	if msg.Kind != LeafValues || msg.Round != q.Round || msg.Start != q.Start || msg.End != q.End || !sameInts(msg.Leaves, q.Leaves) {
		return nil, fmt.Errorf("dispute: %w: %s from %s does not answer round %d", ErrIgnored, msg.Kind, p, q.Round)
	}
	hs := make([]merkle.Hash, len(msg.Values))
	for i, v := range msg.Values {
		hs[i] = merkle.LeafHash(v)
	}
	if err := merkle.VerifyMulti(m.cfg.Roots[p], m.cfg.Cells, msg.Leaves, hs, msg.Proof); err != nil {
		m.lose(p, FaultBadPartProof, fmt.Sprintf("opened part %d of pass %d of the inputs of leaf %d with an invalid proof", m.part, m.pass, msg.Start))
		return nil, nil
	}
	state, err := m.ref.(Folder).Fold(q.Start, m.pass, m.part, msg.Values, m.fold)
	if err != nil {
		m.fail(fmt.Errorf("dispute: referee could not read part %d of pass %d of the inputs of leaf %d: %w", m.part, m.pass, q.Start, err))
		return nil, nil
	}
	return m.advancePart(state), nil
}

func sameInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Tick tells the machine the current height. A party that has not answered
// the outstanding query by its deadline loses. An opening of leaves needs
// only one party's answer, so it is lost only by both at once.
func (m *Machine) Tick(height uint64) []Message {
	if height > m.now {
		m.now = height
	}
	if m.out.Done || m.now <= m.query.Deadline {
		return nil
	}
	for _, p := range []Party{A, B} {
		if m.got[p] == nil {
			m.lose(p, FaultTimeout, fmt.Sprintf("did not answer round %d by height %d", m.query.Round, m.query.Deadline))
		}
	}
	return nil
}
