package ledger

import (
	"encoding/hex"
	"fmt"
)

// State keys. Heights and ids are zero-padded to 20 digits so that the
// sorted key order is the numeric order.
const (
	keyChain  = "chain"
	keyParams = "params"
	keyTotals = "totals"
)

func keyAccount(a Address) string { return "acct/" + a.String() }
func keyModel(id Hash) string     { return "model/" + id.String() }

// keyModelName is the model id registered under a name (hex-encoded in
// the key, so that any name makes a printable key of its own).
func keyModelName(name string) string { return "modelname/" + hex.EncodeToString([]byte(name)) }
func keyAgent(id uint64) string       { return fmt.Sprintf("agent/%020d", id) }
func keyAgentMeta(id uint64, k string) string {
	return fmt.Sprintf("agentmeta/%020d/%x", id, k)
}
func keyFeedback(agent uint64, client Address, idx uint64) string {
	return fmt.Sprintf("fb/%020d/%s/%020d", agent, client, idx)
}
func keyFeedbackLast(agent uint64, client Address) string {
	return fmt.Sprintf("fblast/%020d/%s", agent, client)
}
func keyResponseCount(agent uint64, client Address, idx uint64) string {
	return fmt.Sprintf("fbresponses/%020d/%s/%020d", agent, client, idx)
}
func keyFeedbackClients(agent uint64) string { return fmt.Sprintf("fbclients/%020d", agent) }
func keyValidation(h Hash) string            { return "validation/" + h.String() }
func keyAgentValidations(agent uint64) string {
	return fmt.Sprintf("agentvalidations/%020d", agent)
}
func keyValidatorRequests(v Address) string { return "validatorrequests/" + v.String() }
func keyStake(a Address) string             { return "stake/" + a.String() }
func keyEscrow(id Hash) string              { return "escrow/" + id.String() }
func keyReceipt(id Hash) string             { return "receipt/" + id.String() }
func keyReceiptData(id Hash) string         { return "receiptdata/" + id.String() }
func keyAudit(id Hash) string               { return "audit/" + id.String() }
func keyDispute(id Hash) string             { return "dispute/" + id.String() }
func keyRevealed(id Hash) string            { return "revealed/" + id.String() }
func keyBeacon(id Hash) string              { return "beacon/" + id.String() }
func keyQueue(kind string, h uint64) string { return fmt.Sprintf("queue/%s/%020d", kind, h) }

// keyListItem is item i of the list whose count is under key: lists grow
// by one key per item, never by rewriting a value.
func keyListItem(key string, i uint64) string { return fmt.Sprintf("%s/%020d", key, i) }
func keyQueueItem(kind string, h, i uint64) string {
	return fmt.Sprintf("queue/%s/%020d/%020d", kind, h, i)
}

// Queue kinds: ids to process at a height.
const (
	qAudit   = "audit"   // receipts published at h-1: select audits at h
	qOpening = "opening" // audits whose openings are due by h
	qFinal   = "final"   // receipts whose window ends at h
	qEscrow  = "escrow"  // escrows expiring at h
	qMove    = "move"    // disputes whose move is due by h
	qUnbond  = "unbond"  // accounts with unbondings maturing at h
	qReveal  = "reveal"  // receipts whose requester's audit secret was due by h-1
)
