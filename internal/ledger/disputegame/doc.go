// Package disputegame runs the bisection referee of internal/dispute as the
// ledger's DisputeGame. The ledger stores a game as its transcript (the
// receipt, the challenger's commitment, the start height and every message
// and tick with its height) and the adapter replays it into a fresh
// dispute.Machine on each call, so the state in the ledger is plain bytes
// and every node reaches the same outcome. The worker is party A, the
// challenger party B.
//
// What a commitment is, how many cells a receipt has, the agreed input and
// the referee (which recomputes one cell with the deterministic engine)
// come from the proofs layer through a Setup function
// (proofhooks.Models.DisputeSetup, built on audit.DisputeSetup). A party
// reads the query it must answer with Game.Outstanding.
//
// The stored transcript is the JSON {receipt, commitment, start, timeout,
// entries: [{height, from, msg}]} (byte strings in base64), documented in
// docs/ledger.md.
package disputegame
