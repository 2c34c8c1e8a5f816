package disputeplay

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/disputegame"
	"github.com/verdictnet/verdict/internal/merkle"
)

// The toy computation of these tests: cell i's state is a hash of the
// state before it; the referee recomputes one cell.
func cell(i int, in []byte) []byte {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(i))
	h := sha256.Sum256(append(append([]byte{}, in...), b[:]...))
	return h[:16]
}

var input = []byte("agreed input....")

const cells = 29

type referee struct{}

func (referee) Inputs(i int) []int {
	if i == 0 {
		return nil
	}
	return []int{i - 1}
}

func (referee) Recompute(i int, ins [][]byte) ([]byte, error) {
	in := input
	if i > 0 {
		if len(ins) != 1 {
			return nil, errors.New("want one input")
		}
		in = ins[0]
	}
	return cell(i, in), nil
}

// trace returns a party's leaves, wrong from cell lieAt on (-1: honest).
func trace(lieAt int) [][]byte {
	s := make([][]byte, cells)
	prev := input
	for i := range s {
		s[i] = cell(i, prev)
		if i == lieAt {
			s[i][0] ^= 1
		}
		prev = s[i]
	}
	return s
}

func responder(p dispute.Party, leaves [][]byte) *dispute.Responder {
	hs := make([]merkle.Hash, len(leaves))
	for i, l := range leaves {
		hs[i] = merkle.LeafHash(l)
	}
	return &dispute.Responder{Party: p, Tree: merkle.NewTree(hs), Value: func(i int) ([]byte, error) { return leaves[i], nil }}
}

// game is a dispute between an honest worker and a challenger whose trace
// is wrong from cell 11: the receipt and the commitment are the two roots.
type game struct {
	g       disputegame.Game
	players map[ledger.Side]*Player
	state   []byte
}

func newGame(t testing.TB) *game {
	t.Helper()
	a, b := responder(dispute.A, trace(-1)), responder(dispute.B, trace(11))
	ra, rb := a.Tree.Root(), b.Tree.Root()
	setup := func(receipt, commitment []byte) (dispute.Config, dispute.Referee, error) {
		if len(receipt) != 32 || len(commitment) != 32 {
			return dispute.Config{}, nil, errors.New("toy setup: want two roots")
		}
		return dispute.Config{Cells: cells, Roots: [2]merkle.Hash{merkle.Hash(receipt), merkle.Hash(commitment)}}, referee{}, nil
	}
	g := disputegame.Game{Setup: setup}
	state, err := g.Start(ra[:], rb[:], 1, 5)
	if err != nil {
		t.Fatal(err)
	}
	return &game{g: g, state: state, players: map[ledger.Side]*Player{
		ledger.SideWorker:     {Side: ledger.SideWorker, Setup: setup, Timeout: 5, Responder: a},
		ledger.SideChallenger: {Side: ledger.SideChallenger, Setup: setup, Timeout: 5, Responder: b},
	}}
}

func (g *game) move(t *testing.T, side ledger.Side) ([]byte, bool) {
	t.Helper()
	msg, ok, err := g.players[side].Move(context.Background(), &ledger.Dispute{Status: ledger.DisputeOpen, Game: g.state})
	if err != nil {
		t.Fatalf("%s: %v", side, err)
	}
	return msg, ok
}

// forge appends an entry to a stored transcript, bypassing the validators'
// Step (which refuses it): what a player that replays transcripts itself
// must still judge as the validators would.
func forge(t *testing.T, state []byte, from ledger.Side, msg []byte, height uint64) []byte {
	t.Helper()
	var tr map[string]any
	if err := json.Unmarshal(state, &tr); err != nil {
		t.Fatal(err)
	}
	entries, _ := tr["entries"].([]any)
	tr["entries"] = append(entries, map[string]any{"height": height, "from": from, "msg": msg})
	b, err := json.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPlayerPlaysTheLedgersGame: both players answer every query the
// ledger's game asks, with answers the validators take, until the lying
// challenger loses; at every step the player's query is the ledger's.
func TestPlayerPlaysTheLedgersGame(t *testing.T) {
	g := newGame(t)
	for h := uint64(2); h < 100; h++ {
		st, err := g.g.Status(g.state)
		if err != nil {
			t.Fatal(err)
		}
		if st.Done {
			if !st.Lost[1] || st.Lost[0] {
				t.Fatalf("outcome %+v: want the challenger to lose", st)
			}
			return
		}
		q, ok, err := g.g.Outstanding(g.state)
		if err != nil || !ok {
			t.Fatalf("outstanding: %v %v", ok, err)
		}
		moved := false
		for _, side := range []ledger.Side{ledger.SideWorker, ledger.SideChallenger} {
			msg, ok := g.move(t, side)
			if !ok {
				continue
			}
			m, err := dispute.ParseMessage(msg)
			if err != nil || m.Round != q.Round {
				t.Fatalf("%s answers round %v (%v), the ledger asks round %d", side, m, err, q.Round)
			}
			if g.state, err = g.g.Step(g.state, side, msg, h); err != nil {
				t.Fatalf("%s: the validators refuse the player's answer: %v", side, err)
			}
			moved = true
		}
		if !moved {
			t.Fatalf("height %d: nobody moved", h)
		}
	}
	t.Fatal("dispute did not end")
}

// TestPlayerDivergences covers the two ways the worker's former copy of the
// transcript replay parted from the ledger's: it skipped messages the
// machine ignores (dispute.ErrIgnored) and it took a message as the
// party's it claimed to be from, whichever side sent it. In both a player
// that believed it (or its opponent) had answered would wait while the
// ledger still waited for it, and lose on time. The player now sees what
// the validators see: the refused message changes nothing, and a
// transcript holding one is an error for the player as for the validators.
func TestPlayerDivergences(t *testing.T) {
	for _, tc := range []struct {
		name string
		// bad returns the message to slip in and the side that sends it.
		bad func(t *testing.T, g *game) ([]byte, ledger.Side)
		// want is what the validators' error says.
		want string
	}{
		{"the challenger sends the worker's answer", func(t *testing.T, g *game) ([]byte, ledger.Side) {
			msg, ok := g.move(t, ledger.SideWorker)
			if !ok {
				t.Fatal("no worker answer")
			}
			g.players[ledger.SideWorker] = &Player{Side: ledger.SideWorker, Setup: g.players[ledger.SideWorker].Setup, Timeout: 5, Responder: g.players[ledger.SideWorker].Responder}
			return msg, ledger.SideChallenger
		}, "claims to be from party"},
		{"an answer to no outstanding query (ignored)", func(t *testing.T, g *game) ([]byte, ledger.Side) {
			q, _, err := g.g.Outstanding(g.state)
			if err != nil {
				t.Fatal(err)
			}
			a, err := g.players[ledger.SideWorker].Responder.Answer(q)
			if err != nil {
				t.Fatal(err)
			}
			a.Round = q.Round + 5 // a round not asked yet
			b, err := a.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			return b, ledger.SideWorker
		}, dispute.ErrIgnored.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGame(t)
			msg, side := tc.bad(t, g)
			// The validators refuse it; the game is unchanged and the
			// worker still answers the outstanding query.
			if _, err := g.g.Step(g.state, side, msg, 2); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("validators: %v, want an error saying %q", err, tc.want)
			}
			want, _, _ := g.g.Outstanding(g.state)
			ans, ok := g.move(t, ledger.SideWorker)
			if !ok {
				t.Fatal("the worker does not answer the query the ledger still waits for")
			}
			if m, err := dispute.ParseMessage(ans); err != nil || m.Round != want.Round || m.From != dispute.A {
				t.Fatalf("worker answers %+v (%v), want round %d from A", m, err, want.Round)
			}
			// A transcript holding the refused message: the validators
			// cannot replay it, and neither can the player.
			forged := forge(t, g.state, side, msg, 2)
			_, vErr := g.g.Status(forged)
			if vErr == nil {
				t.Fatal("validators replay the forged transcript")
			}
			p := &Player{Side: ledger.SideWorker, Setup: g.players[ledger.SideWorker].Setup, Timeout: 5, Responder: g.players[ledger.SideWorker].Responder}
			if _, ok, err := p.Move(context.Background(), &ledger.Dispute{Status: ledger.DisputeOpen, Game: forged}); err == nil || ok {
				t.Fatalf("player on a transcript the validators refuse (%v): ok %v, err %v", vErr, ok, err)
			}
		})
	}
}

// TestPlayerWaitsForItsAnswer: an answer is not sent twice within a few
// seconds, and a player with no trace refuses to answer.
func TestPlayerWaitsForItsAnswer(t *testing.T) {
	g := newGame(t)
	if _, ok := g.move(t, ledger.SideWorker); !ok {
		t.Fatal("no first answer")
	}
	if _, ok := g.move(t, ledger.SideWorker); ok {
		t.Fatal("answered the same query twice at once")
	}
	p := &Player{Side: ledger.SideWorker, Setup: g.players[ledger.SideWorker].Setup, Timeout: 5}
	if _, ok, err := p.Move(context.Background(), &ledger.Dispute{Status: ledger.DisputeOpen, Game: g.state}); err == nil || ok {
		t.Fatalf("player without a trace: ok %v, err %v", ok, err)
	}
	if _, ok, err := p.Move(context.Background(), &ledger.Dispute{Status: ledger.DisputeWorkerLost, Game: g.state}); err != nil || ok {
		t.Fatalf("settled dispute: ok %v, err %v", ok, err)
	}
}

// FuzzPlayerMove feeds arbitrary transcripts to a player: errors, never a
// panic.
func FuzzPlayerMove(f *testing.F) {
	f.Add([]byte(`{"receipt":"","commitment":"","start":1,"entries":[]}`))
	f.Add([]byte(`{"entries":[{"height":3,"from":1,"msg":"e30="}]}`))
	f.Add([]byte(`[]`))
	g := newGame(f)
	f.Add(g.state)
	setup := g.players[ledger.SideWorker].Setup
	f.Fuzz(func(t *testing.T, game []byte) {
		p := &Player{Side: ledger.SideWorker, Setup: setup, Timeout: 5, Responder: responder(dispute.A, trace(-1))}
		p.Move(context.Background(), &ledger.Dispute{Status: ledger.DisputeOpen, Game: game})
	})
}
