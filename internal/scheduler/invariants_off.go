//go:build !invariants

package scheduler

// checkLocked checks the scheduler's accounting when built with -tags
// invariants (invariants.go); here it does nothing.
func (s *Scheduler) checkLocked() {}
