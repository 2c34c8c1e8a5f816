package ledger

import (
	"bytes"
	"encoding/hex"
)

// deadlineKinds are the messages that must land by a deadline: a late
// audit opening or dispute answer slashes an honest party.
var deadlineKinds = map[string]bool{"postOpenings": true, "disputeMove": true}

// Propose chooses and orders the transactions of a block proposal from the
// mempool's txs (in arrival order), at most maxBytes in all: first every
// deadline transaction (postOpenings, disputeMove) with the transactions
// of its sender that precede it, then the rest in arrival order. Each
// sender's transactions keep their order (their nonces), and once one does
// not fit, its sender's later ones are left out. So transactions that
// flood the mempool ahead of a party's audit opening or dispute answer do
// not push it past its deadline. Only the proposer runs it; the result
// need not be the same on every node.
func Propose(txs [][]byte, maxBytes int64) [][]byte {
	type entry struct {
		signer   string
		deadline bool
	}
	entries := make([]entry, len(txs))
	bySigner := map[string][]int{}
	for i, raw := range txs {
		signer, kind := peekTx(raw)
		entries[i] = entry{signer, deadlineKinds[kind]}
		if signer != "" {
			bySigner[signer] = append(bySigner[signer], i)
		}
	}
	var out [][]byte
	var used int64
	taken := make([]bool, len(txs))
	blocked := map[string]bool{}
	take := func(i int) bool {
		if taken[i] {
			return true
		}
		if n := int64(len(txs[i])); used+n <= maxBytes {
			used += n
			taken[i] = true
			out = append(out, txs[i])
			return true
		}
		return false
	}
	// add takes i and, first, its sender's earlier transactions.
	add := func(i int) {
		s := entries[i].signer
		if s == "" {
			if !take(i) {
				taken[i] = true // does not fit: left out
			}
			return
		}
		if blocked[s] {
			return
		}
		for _, j := range bySigner[s] {
			if j > i {
				break
			}
			if !take(j) {
				blocked[s] = true
				return
			}
		}
	}
	for i := range txs {
		if entries[i].deadline {
			add(i)
		}
	}
	for i := range txs {
		add(i)
	}
	return out
}

// peekTx reads the signer and message kind of a canonically encoded
// transaction without decoding it ("" when it cannot). Inside a JSON
// string every quote is escaped, so the first `"signer":"` and `"msg":{"`
// are the fields.
func peekTx(raw []byte) (signer, kind string) {
	const sk, mk = `"signer":"`, `"msg":{"`
	i := bytes.Index(raw, []byte(sk))
	if i < 0 || len(raw) < i+len(sk)+64 {
		return "", ""
	}
	s := raw[i+len(sk) : i+len(sk)+64]
	if _, err := hex.DecodeString(string(s)); err != nil {
		return "", ""
	}
	j := bytes.Index(raw, []byte(mk))
	if j < 0 {
		return string(s), ""
	}
	rest := raw[j+len(mk):]
	k := bytes.IndexByte(rest, '"')
	if k < 0 {
		return string(s), ""
	}
	return string(s), string(rest[:k])
}
