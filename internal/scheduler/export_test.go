package scheduler

// Overdrawn is the number of steps after which a sequence held more
// key/value cache than s counted for it.
func Overdrawn(s *Scheduler) uint64 { return s.overdrawn.Load() }

// HoldSteps keeps s from starting a step until release is called, so that
// a test can queue requests that the first step then finds together.
func HoldSteps(s *Scheduler) (release func()) {
	h := make(chan struct{})
	s.mu.Lock()
	s.hold = h
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.hold = nil
		s.mu.Unlock()
		close(h)
	}
}
