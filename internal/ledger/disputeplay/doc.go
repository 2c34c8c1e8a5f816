// Package disputeplay plays one side of a ledger dispute: a Player answers
// the query the dispute waits for from the party's own trace (a
// dispute.Responder), a DisputeBook holds the disputes one account plays and
// sends their moves (PlayDispute) through the account's ledger client
// Sender. The worker defends its receipts with it; the verifier challenges
// with it. Both keep their trace's tree alone and, when the game reaches
// the disputed leaf, regenerate the values of its inputs once
// (Player.Reload), so a long receipt's whole trace need not fit in memory.
//
// The player does not keep its own copy of the game: it reads the query
// from the ledger's stored transcript with the validators' own replay
// (disputegame.Game.Outstanding), so it sees exactly the game the ledger
// sees: a message the validators would refuse (one that answers no
// outstanding query, dispute.ErrIgnored, or one sent by the other side)
// never counts as an answer. TraceSetup is the setup for receipts of a
// model, the same as the validators' (proofhooks), without importing the
// validator side.
package disputeplay
