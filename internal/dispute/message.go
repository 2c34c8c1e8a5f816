package dispute

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/verdictnet/verdict/internal/merkle"
)

// Party names one side of a dispute.
type Party int

// The two parties.
const (
	A Party = 0
	B Party = 1
)

func (p Party) String() string {
	switch p {
	case A:
		return "A"
	case B:
		return "B"
	}
	return fmt.Sprintf("party(%d)", int(p))
}

// Kind is the type of a message.
type Kind string

// Message kinds. Queries go from the referee to both parties; answers from
// one party to the referee.
const (
	// OpenNode asks for the two children of node [Start, End).
	OpenNode Kind = "open_node"
	// Node answers OpenNode with Left and Right.
	Node Kind = "node"
	// OpenLeaves asks for the values of Leaves (all before the disputed
	// leaf Start) with a multi-proof.
	OpenLeaves Kind = "open_leaves"
	// LeafValues answers OpenLeaves with Values and Proof.
	LeafValues Kind = "leaf_values"
)

// Limits on decoded messages.
const (
	MaxMessage = 64 << 20
	MaxValues  = 48 << 20 // bytes of values in one answer
	MaxLeaves  = 1 << 20  // leaves in one query
)

// Message is one protocol message.
type Message struct {
	Kind     Kind
	From     Party // answers: the sender
	Round    int
	Start    int // node range [Start, End); leaf queries: the disputed leaf, End = Start+1
	End      int
	Deadline uint64 // queries: the last height at which an answer counts
	Left     merkle.Hash
	Right    merkle.Hash
	Leaves   []int    // OpenLeaves and LeafValues: the leaves asked for, ascending
	Values   [][]byte // LeafValues: their values
	Proof    []merkle.Hash
}

type wire struct {
	Kind     Kind     `json:"kind"`
	From     int      `json:"from"`
	Round    int      `json:"round"`
	Start    int      `json:"start"`
	End      int      `json:"end"`
	Deadline uint64   `json:"deadline,omitempty"`
	Left     string   `json:"left,omitempty"`
	Right    string   `json:"right,omitempty"`
	Leaves   []int    `json:"leaves,omitempty"`
	Values   []string `json:"values,omitempty"`
	Proof    []string `json:"proof,omitempty"`
}

func (m *Message) check() error {
	zero := merkle.Hash{}
	switch m.Kind {
	case OpenNode:
		if m.From != A || m.Left != zero || m.Right != zero || m.Leaves != nil || m.Values != nil || m.Proof != nil {
			return fmt.Errorf("open_node carries other fields")
		}
	case OpenLeaves:
		if m.From != A || m.Left != zero || m.Right != zero || m.Values != nil || m.Proof != nil {
			return fmt.Errorf("open_leaves carries other fields")
		}
	case Node:
		if m.Leaves != nil || m.Values != nil || m.Proof != nil || m.Deadline != 0 {
			return fmt.Errorf("node answer carries other fields")
		}
	case LeafValues:
		if m.Left != zero || m.Right != zero || m.Deadline != 0 {
			return fmt.Errorf("leaf_values answer carries other fields")
		}
		if len(m.Values) != len(m.Leaves) {
			return fmt.Errorf("%d values for %d leaves", len(m.Values), len(m.Leaves))
		}
		total := 0
		for _, v := range m.Values {
			total += len(v)
		}
		if total > MaxValues {
			return fmt.Errorf("values of %d bytes, at most %d allowed", total, MaxValues)
		}
		if len(m.Proof) > merkle.MaxMultiProof {
			return fmt.Errorf("proof of %d hashes is too long", len(m.Proof))
		}
	default:
		return fmt.Errorf("unknown message kind %.40q", m.Kind)
	}
	if m.From != A && m.From != B {
		return fmt.Errorf("unknown party %d", int(m.From))
	}
	if m.Round < 0 || m.Start < 0 || m.End <= m.Start {
		return fmt.Errorf("round %d range [%d,%d) is invalid", m.Round, m.Start, m.End)
	}
	if m.Kind == OpenLeaves || m.Kind == LeafValues {
		if m.End != m.Start+1 {
			return fmt.Errorf("disputed leaf range [%d,%d) is not one leaf", m.Start, m.End)
		}
		if len(m.Leaves) == 0 || len(m.Leaves) > MaxLeaves {
			return fmt.Errorf("%d leaves asked for", len(m.Leaves))
		}
		for i, l := range m.Leaves {
			if l < 0 || l >= m.Start || (i > 0 && l <= m.Leaves[i-1]) {
				return fmt.Errorf("leaves must be ascending and before leaf %d", m.Start)
			}
		}
	}
	return nil
}

// Marshal returns the canonical JSON encoding of m.
func (m *Message) Marshal() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("dispute message: %w", err)
	}
	return m.encode(), nil
}

func (m *Message) encode() []byte {
	w := wire{Kind: m.Kind, From: int(m.From), Round: m.Round, Start: m.Start, End: m.End, Deadline: m.Deadline}
	if m.Kind == Node {
		w.Left, w.Right = m.Left.String(), m.Right.String()
	}
	w.Leaves = m.Leaves
	if m.Values != nil {
		w.Values = make([]string, len(m.Values))
		for i, v := range m.Values {
			w.Values[i] = base64.StdEncoding.EncodeToString(v)
		}
	}
	if len(m.Proof) > 0 {
		w.Proof = merkle.HexHashes(m.Proof)
	}
	b, err := json.Marshal(w)
	if err != nil {
		panic("dispute: encoding a message: " + err.Error()) // only strings and ints
	}
	return b
}

// ParseMessage decodes a message and checks that data is its canonical
// encoding.
func ParseMessage(data []byte) (*Message, error) {
	if len(data) > MaxMessage {
		return nil, fmt.Errorf("dispute message: %d bytes, at most %d allowed", len(data), MaxMessage)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var w wire
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("dispute message: not a message: %w", err)
	}
	m := &Message{Kind: w.Kind, From: Party(w.From), Round: w.Round, Start: w.Start, End: w.End, Deadline: w.Deadline}
	var err error
	if w.Left != "" || w.Right != "" {
		if m.Left, err = merkle.ParseHash(w.Left); err != nil {
			return nil, fmt.Errorf("dispute message: left: %w", err)
		}
		if m.Right, err = merkle.ParseHash(w.Right); err != nil {
			return nil, fmt.Errorf("dispute message: right: %w", err)
		}
	}
	m.Leaves = w.Leaves
	if w.Values != nil {
		m.Values = make([][]byte, len(w.Values))
		for i, v := range w.Values {
			if m.Values[i], err = base64.StdEncoding.Strict().DecodeString(v); err != nil {
				return nil, fmt.Errorf("dispute message: value %d: %w", i, err)
			}
		}
	}
	if w.Proof != nil {
		if m.Proof, err = merkle.ParseHexHashes(w.Proof, merkle.MaxMultiProof); err != nil {
			return nil, fmt.Errorf("dispute message: proof: %w", err)
		}
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("dispute message: %w", err)
	}
	if !bytes.Equal(m.encode(), data) {
		return nil, fmt.Errorf("dispute message: not in canonical form")
	}
	return m, nil
}

// equal reports whether two answers say the same thing.
func equal(a, b *Message) bool { return bytes.Equal(a.encode(), b.encode()) }
