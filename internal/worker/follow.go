package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/disputegame"
)

// Player plays one side of a ledger dispute from its trace.
type Player struct {
	Side      ledger.Side
	Setup     disputegame.Setup
	Timeout   uint64 // the chain's moveWindow, for transcripts that do not record it
	Responder *dispute.Responder
	answered  map[string]time.Time
}

// transcript mirrors the dispute game's stored state
// (internal/ledger/disputegame).
type transcript struct {
	Receipt    []byte `json:"receipt"`
	Commitment []byte `json:"commitment"`
	Start      uint64 `json:"start"`
	Timeout    uint64 `json:"timeout,omitempty"`
	Entries    []struct {
		Height uint64      `json:"height"`
		From   ledger.Side `json:"from,omitempty"`
		Msg    []byte      `json:"msg,omitempty"`
	} `json:"entries"`
}

// Move returns the player's answer to the dispute's outstanding query, or
// ok false when there is none or it was answered already.
func (p *Player) Move(d *ledger.Dispute) (msg []byte, ok bool, err error) {
	if d.Status != ledger.DisputeOpen {
		return nil, false, nil
	}
	var t transcript
	if err := json.Unmarshal(d.Game, &t); err != nil {
		return nil, false, fmt.Errorf("dispute %s: transcript: %w", d.DisputeID, err)
	}
	cfg, ref, err := p.Setup(t.Receipt, t.Commitment)
	if err != nil {
		return nil, false, fmt.Errorf("dispute %s: %w", d.DisputeID, err)
	}
	cfg.Timeout = p.Timeout
	if t.Timeout != 0 {
		cfg.Timeout = t.Timeout
	}
	m, _, err := dispute.New(cfg, ref, t.Start)
	if err != nil {
		return nil, false, fmt.Errorf("dispute %s: %w", d.DisputeID, err)
	}
	for i, e := range t.Entries {
		m.Tick(e.Height)
		if len(e.Msg) == 0 {
			continue
		}
		msg, err := dispute.ParseMessage(e.Msg)
		if err != nil {
			return nil, false, fmt.Errorf("dispute %s entry %d: %w", d.DisputeID, i, err)
		}
		if _, err := m.Step(*msg); err != nil && !errors.Is(err, dispute.ErrIgnored) {
			return nil, false, fmt.Errorf("dispute %s entry %d: %w", d.DisputeID, i, err)
		}
	}
	q, ok := m.Query()
	if !ok {
		return nil, false, nil
	}
	qb, _ := q.Marshal()
	key := d.DisputeID.String() + string(qb)
	if at, ok := p.answered[key]; ok && time.Since(at) < 3*time.Second {
		return nil, false, nil
	}
	a, err := p.Responder.Answer(q)
	if err != nil {
		return nil, false, fmt.Errorf("dispute %s: answering: %w", d.DisputeID, err)
	}
	b, err := a.Marshal()
	if err != nil {
		return nil, false, err
	}
	if p.answered == nil {
		p.answered = map[string]time.Time{}
	}
	p.answered[key] = time.Now()
	return b, true, nil
}
