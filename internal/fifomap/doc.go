// Package fifomap is a map that holds its last n keys: putting a new key
// into a full one forgets the oldest. The services use it for what they
// remember of requests anyone may make (a gateway's receipt owners, a
// verifier's replay results): bounded, the oldest entries going first.
package fifomap
