// Package slots hands out a fixed number of slots (the right to run one
// piece of heavy work: a forward pass over a receipt) to the goroutines
// waiting for them, earliest deadline first.
//
// A worker's proof work has deadlines on the ledger, as block heights: an
// audit's openings must land by the audit's deadline or the worker is
// slashed, and each dispute move by the dispute's. A first-come queue (or
// a Go channel used as a semaphore, whose blocked senders are woken in no
// promised order) lets work that is cheap for others to cause (disputes,
// a verifier's minimum stake each) take every slot while an audit waits
// past its deadline. A Scheduler grants each freed slot to the waiter
// whose deadline is earliest, ties in the order the waiters came; a
// waiter whose context ends leaves the queue and never holds a slot.
package slots
