package disputegame

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/ledger"
)

// Setup derives a dispute's configuration (cells, both roots with the
// worker's as Roots[0], agreed input) and its referee from the published
// receipt and the challenger's commitment. Config.Timeout is overridden by
// the game's timeout. An error wrapping ledger.ErrModelUnavailable means
// this node cannot referee the game (see ledger.DisputeGame).
type Setup func(receipt, commitment []byte) (dispute.Config, dispute.Referee, error)

// Game implements ledger.DisputeGame.
type Game struct {
	Setup Setup
	// Timeout is the blocks a party has to answer each query when the
	// transcript does not say: Start stores the ledger's moveWindow in the
	// transcript, and that is what counts.
	Timeout uint64
}

// MaxEntries caps a transcript; a game takes about log2(cells)+3 rounds of
// two answers, plus one answer per part when the disputed leaf's inputs
// are read in parts (at most 3 passes of 64 parts of 2 MiB for the
// 131072 positions of llama3.1-8b's context), so this is far above any
// honest game.
const MaxEntries = 4096

// transcript is the stored state.
type transcript struct {
	Receipt    []byte  `json:"receipt"`
	Commitment []byte  `json:"commitment"`
	Start      uint64  `json:"start"`
	Timeout    uint64  `json:"timeout,omitempty"` // blocks per answer (the chain's moveWindow)
	Entries    []entry `json:"entries"`
}

// entry is a message from a party, or a tick (Msg and Round empty). An
// answer to a part of the disputed leaf's inputs (dispute.Folder) is kept
// without its values, which would make the transcript as large as the
// receipt's whole key/value cache: as its round and, in the last such
// entry only, Fold, the referee's state after it (the state it leaves is
// all the parts that follow read; the values were checked against the
// sender's root when the answer was delivered).
type entry struct {
	Height uint64      `json:"height"`
	From   ledger.Side `json:"from,omitempty"`
	Msg    []byte      `json:"msg,omitempty"`
	Round  int         `json:"round,omitempty"`
	Fold   []byte      `json:"fold,omitempty"`
}

var _ ledger.DisputeGame = Game{}

func (g Game) replay(state []byte) (*transcript, *dispute.Machine, error) {
	var t transcript
	if err := json.Unmarshal(state, &t); err != nil {
		return nil, nil, fmt.Errorf("dispute transcript: %w", err)
	}
	m, err := g.start(&t)
	if err != nil {
		return nil, nil, err
	}
	for i, e := range t.Entries {
		m.Tick(e.Height)
		if e.Round > 0 {
			party, err := side(e.From)
			if err != nil {
				return nil, nil, fmt.Errorf("dispute transcript entry %d: %w", i, err)
			}
			if _, err := m.SkipPart(party, e.Round, e.Fold); err != nil {
				return nil, nil, fmt.Errorf("dispute transcript entry %d: %w", i, err)
			}
			continue
		}
		if len(e.Msg) == 0 {
			continue
		}
		msg, err := message(e.From, e.Msg)
		if err != nil {
			return nil, nil, fmt.Errorf("dispute transcript entry %d: %w", i, err)
		}
		if _, err := m.Step(*msg); err != nil {
			return nil, nil, fmt.Errorf("dispute transcript entry %d: %w", i, err)
		}
	}
	return &t, m, nil
}

func (g Game) start(t *transcript) (*dispute.Machine, error) {
	if g.Setup == nil {
		return nil, errors.New("dispute game has no setup")
	}
	cfg, ref, err := g.Setup(t.Receipt, t.Commitment)
	if err != nil {
		return nil, err
	}
	cfg.Timeout = t.Timeout
	if cfg.Timeout == 0 {
		cfg.Timeout = g.Timeout
	}
	m, _, err := dispute.New(cfg, ref, t.Start)
	return m, err
}

// side is the party of a ledger side: the worker is A, the challenger B.
func side(from ledger.Side) (dispute.Party, error) {
	switch from {
	case ledger.SideWorker:
		return dispute.A, nil
	case ledger.SideChallenger:
		return dispute.B, nil
	}
	return 0, fmt.Errorf("message from side %d", from)
}

func message(from ledger.Side, b []byte) (*dispute.Message, error) {
	msg, err := dispute.ParseMessage(b)
	if err != nil {
		return nil, err
	}
	want, err := side(from)
	if err != nil {
		return nil, err
	}
	if msg.From != want {
		return nil, fmt.Errorf("message claims to be from party %s but the %s sent it", msg.From, from)
	}
	return msg, nil
}

// Start implements ledger.DisputeGame.
func (g Game) Start(receipt, commitment []byte, height, moveWindow uint64) ([]byte, error) {
	t := &transcript{Receipt: receipt, Commitment: commitment, Start: height, Timeout: moveWindow}
	if _, err := g.start(t); err != nil {
		return nil, err
	}
	return json.Marshal(t)
}

// Step implements ledger.DisputeGame: a message the machine ignores (it
// does not answer the outstanding query) is an error.
func (g Game) Step(state []byte, from ledger.Side, msg []byte, height uint64) ([]byte, error) {
	t, m, err := g.replay(state)
	if err != nil {
		return nil, err
	}
	if len(t.Entries) >= MaxEntries {
		return nil, fmt.Errorf("dispute transcript is full (%d entries)", MaxEntries)
	}
	parsed, err := message(from, msg)
	if err != nil {
		return nil, err
	}
	m.Tick(height)
	if m.Outcome().Done {
		return nil, errors.New("dispute is over")
	}
	read := m.PartsRead()
	if _, err := m.Step(*parsed); err != nil {
		return nil, err
	}
	if m.PartsRead() > read {
		// A part taken: keep the state it left instead of its values (an
		// answer that lost by its proof or that the referee could not
		// read is kept whole, and replays to the same end).
		for i := range t.Entries {
			t.Entries[i].Fold = nil
		}
		t.Entries = append(t.Entries, entry{Height: height, From: from, Round: parsed.Round, Fold: m.PartState()})
		return json.Marshal(t)
	}
	t.Entries = append(t.Entries, entry{Height: height, From: from, Msg: append([]byte{}, msg...)})
	return json.Marshal(t)
}

// Tick implements ledger.DisputeGame.
func (g Game) Tick(state []byte, height uint64) ([]byte, error) {
	t, m, err := g.replay(state)
	if err != nil {
		return nil, err
	}
	if m.Outcome().Done || len(t.Entries) >= MaxEntries {
		return state, nil
	}
	t.Entries = append(t.Entries, entry{Height: height})
	return json.Marshal(t)
}

// Status implements ledger.DisputeGame.
func (g Game) Status(state []byte) (ledger.DisputeStatus, error) {
	_, m, err := g.replay(state)
	if err != nil {
		return ledger.DisputeStatus{}, err
	}
	o := m.Outcome()
	// The codes are the status's consensus data; the words, which carry
	// rounds, heights and the referee's error chain, are for the event.
	st := ledger.DisputeStatus{Done: o.Done, Lost: o.Lost, Faults: o.Fault, Void: o.Void}
	switch {
	case o.Err != nil:
		st.Reason = "referee: " + o.Err.Error()
	case o.Lost[0] && o.Lost[1]:
		st.Reason = o.Reason[0] + "; " + o.Reason[1]
	case o.Lost[0]:
		st.Reason = o.Reason[0]
	case o.Lost[1]:
		st.Reason = o.Reason[1]
	}
	if q, ok := m.Query(); ok {
		st.Deadline = q.Deadline
	}
	return st, nil
}

// Outstanding returns the query a stored game waits for, or ok false when
// the game is over: what each party reads to answer (with a
// dispute.Responder over its trace) before sending its disputeMove. The
// query's Deadline is the last height at which an answer counts.
func (g Game) Outstanding(state []byte) (q dispute.Message, ok bool, err error) {
	_, m, err := g.replay(state)
	if err != nil {
		return dispute.Message{}, false, err
	}
	q, ok = m.Query()
	return q, ok, nil
}

// Inputs returns the leaves the referee of a stored game reads to
// recompute leaf d (Referee.Inputs): the values a party needs for every
// opening of leaf d's inputs, all parts included, which a party that keeps
// the tree alone regenerates once (audit.RegenerateLeaves).
func (g Game) Inputs(state []byte, d int) ([]int, error) {
	var t transcript
	if err := json.Unmarshal(state, &t); err != nil {
		return nil, fmt.Errorf("dispute transcript: %w", err)
	}
	if g.Setup == nil {
		return nil, errors.New("dispute game has no setup")
	}
	_, ref, err := g.Setup(t.Receipt, t.Commitment)
	if err != nil {
		return nil, err
	}
	if ref == nil {
		return nil, errors.New("dispute game decided at setup: no leaf is opened")
	}
	return ref.Inputs(d), nil
}

// Rounds returns the number of queries a stored game has issued.
func (g Game) Rounds(state []byte) (int, error) {
	_, m, err := g.replay(state)
	if err != nil {
		return 0, err
	}
	return m.Rounds(), nil
}

// Answer is one party's message in a stored game and the height at which
// it landed.
type Answer struct {
	Height uint64
	From   ledger.Side
	Msg    *dispute.Message
}

// Answers decodes a stored game's transcript without refereeing it (no
// model needed): the height the game started at and the parties' messages
// in the order they landed, ticks left out. Each node answer names the
// range [Start, End) of the round it answers, so the rounds can be drawn
// as a narrowing interval; the first round's range is every cell.
func Answers(state []byte) (start uint64, answers []Answer, err error) {
	var t transcript
	if err := json.Unmarshal(state, &t); err != nil {
		return 0, nil, fmt.Errorf("dispute transcript: %w", err)
	}
	for i, e := range t.Entries {
		if len(e.Msg) == 0 {
			continue
		}
		msg, err := message(e.From, e.Msg)
		if err != nil {
			return 0, nil, fmt.Errorf("dispute transcript entry %d: %w", i, err)
		}
		answers = append(answers, Answer{Height: e.Height, From: e.From, Msg: msg})
	}
	return t.Start, answers, nil
}
